//! `bucketq failed list [QUEUE]` and `bucketq failed retry (KEY... | --all [QUEUE])`.

use std::process::ExitCode;

use clap::CommandFactory;

use bucketq::config::LoadedConfig;
use bucketq::queue::admin::{self, AdminError, QueueRef, RetryOutcome};

use super::output::{table, Align};
use super::{open_store, Cli, CliError};

/// Longest error shown in the table; `--json` has the whole text.
const ERROR_COLUMN_CHARS: usize = 80;

/// The queues a command covers: the named one, or all.
fn selected(loaded: &LoadedConfig, name: Option<&str>) -> Result<Vec<QueueRef>, CliError> {
    let queues = admin::queues_of(&loaded.config);
    match name {
        Some(name) => Ok(vec![admin::find_queue(&queues, name)?.clone()]),
        None => Ok(queues),
    }
}

/// Print the failed tasks of one queue or all, with attempts, time and last error.
pub async fn list(
    loaded: &LoadedConfig,
    queue: Option<&str>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let queues = selected(loaded, queue)?;
    let store = open_store(&loaded.config)?;
    let mut tasks = Vec::new();
    for q in &queues {
        tasks.extend(admin::list_failed(&*store, q).await?);
    }
    if json {
        let text = serde_json::to_string_pretty(&tasks).expect("failed tasks serialize");
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        println!("no failed tasks");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.key.clone(),
                t.attempts.map_or("-".into(), |a| a.to_string()),
                t.failed_at.clone().unwrap_or_else(|| "-".into()),
                shorten(t.error.as_deref().unwrap_or("-")),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                ("KEY", Align::Left),
                ("ATTEMPTS", Align::Right),
                ("FAILED AT", Align::Left),
                ("ERROR", Align::Left),
            ],
            &rows,
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= ERROR_COLUMN_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(ERROR_COLUMN_CHARS - 1).collect();
    format!("{cut}…")
}

/// Send failed tasks back to pending and say what happened to each.
pub async fn retry(
    loaded: &LoadedConfig,
    keys: Vec<String>,
    all: bool,
) -> Result<ExitCode, CliError> {
    if all && keys.len() > 1 {
        Cli::command()
            .error(
                clap::error::ErrorKind::TooManyValues,
                "with --all, give at most one queue name",
            )
            .exit();
    }
    let store = open_store(&loaded.config)?;
    let mut results: Vec<(String, Result<RetryOutcome, AdminError>)> = Vec::new();
    if all {
        for q in selected(loaded, keys.first().map(String::as_str))? {
            results.extend(admin::retry_all(&*store, &q).await?);
        }
    } else {
        let queues = admin::queues_of(&loaded.config);
        for key in keys {
            let result = match admin::resolve_failed_key(&queues, &key) {
                Ok((q, failed_key)) => admin::retry_failed(&*store, q, &failed_key).await,
                Err(e) => Err(e),
            };
            results.push((key, result));
        }
    }
    report(results)
}

/// One line per key on stdout, a summary on stderr; not every task requeued is a failure.
fn report(results: Vec<(String, Result<RetryOutcome, AdminError>)>) -> Result<ExitCode, CliError> {
    let (mut requeued, mut kept, mut gone, mut errors) = (0, 0, 0, 0);
    for (key, result) in results {
        match result {
            Ok(RetryOutcome::Requeued {
                failed_key,
                pending_key,
            }) => {
                requeued += 1;
                println!("requeued {failed_key} -> {pending_key}");
            }
            Ok(RetryOutcome::PendingExists {
                failed_key,
                pending_key,
            }) => {
                kept += 1;
                println!(
                    "kept     {failed_key}: a different task is pending at {pending_key}; retry it once that one is done, or copy it by hand"
                );
            }
            Ok(RetryOutcome::Gone { failed_key }) => {
                gone += 1;
                println!("gone     {failed_key}: no longer exists (retried or deleted already)");
            }
            Err(e) => {
                errors += 1;
                println!("error    {key}: {}", CliError::Admin(e).report());
            }
        }
    }
    eprintln!("bucketq: {requeued} requeued, {kept} kept, {gone} gone, {errors} error(s)");
    if kept + errors > 0 {
        return Err(CliError::Incomplete(format!(
            "{} task(s) were not requeued; see the lines above",
            kept + errors
        )));
    }
    Ok(ExitCode::SUCCESS)
}
