//! `bucketq status [--json]`.

use std::process::ExitCode;

use bucketq::config::LoadedConfig;
use bucketq::queue::admin::{self, QueueStatus};

use super::output::{age, table, Align};
use super::{open_store, CliError};

/// Count every queue's tasks from the bucket and print a table (or JSON).
pub async fn run(loaded: &LoadedConfig, json: bool) -> Result<ExitCode, CliError> {
    let store = open_store(&loaded.config)?;
    let mut statuses = Vec::new();
    for queue in admin::queues_of(&loaded.config) {
        statuses.push(admin::queue_status(&*store, &queue, loaded.config.worker.lease).await?);
    }
    if json {
        let text = serde_json::to_string_pretty(&statuses).expect("status serializes");
        println!("{text}");
    } else {
        print!("{}", render(&statuses));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(statuses: &[QueueStatus]) -> String {
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            vec![
                s.queue.clone(),
                s.prefix.clone(),
                s.pending.to_string(),
                s.running.to_string(),
                s.stale.to_string(),
                s.failed.to_string(),
                age(s.oldest_pending_age_secs),
            ]
        })
        .collect();
    table(
        &[
            ("QUEUE", Align::Left),
            ("PREFIX", Align::Left),
            ("PENDING", Align::Right),
            ("RUNNING", Align::Right),
            ("STALE", Align::Right),
            ("FAILED", Align::Right),
            ("OLDEST PENDING", Align::Right),
        ],
        &rows,
    )
}
