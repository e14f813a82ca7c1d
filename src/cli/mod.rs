//! The command line: argument definitions, dispatch and exit codes.
//!
//! Each command lives in its own file and returns a [`CliError`], whose
//! [`exit_code`](CliError::exit_code) tells an operator (or systemd) what kind of failure it was.

mod config_check;
mod doctor;
mod enqueue;
mod error;
mod failed;
mod health;
mod output;
mod run;
mod status;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use bucketq::config::{self, LoadedConfig};
use bucketq::logging::{self, LogSettings};

pub use error::CliError;

/// bucketq turns an object-storage bucket (Alibaba OSS, S3, MinIO, Ceph, or a local directory)
/// into a task queue: it lists the bucket by prefix, claims each task with a conditional write
/// only one worker can win, runs the queue's handler and deletes the task, or moves it to
/// failed/ once its attempts are spent.
///
/// Without a config file it runs a demo on the local store in ./bucketq-data.
#[derive(Debug, Parser)]
#[command(
    name = "bucketq",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 ok; 1 other failure; 69 the store cannot make claims exclusive; \
                  77 the store refused the credentials; 78 the configuration is invalid.\n\
                  Logging: BUCKETQ_LOG (or RUST_LOG) sets the filter, BUCKETQ_LOG_FORMAT=json \
                  writes JSON lines."
)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/bucketq/bucketq.toml if it exists, else the built-in
    /// demo (local store in ./bucketq-data, queue `demo`, `log` handler).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "BUCKETQ_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: poll the queues and handle tasks until SIGTERM or SIGINT.
    ///
    /// The first signal stops claiming and gives running handlers worker.shutdown_grace to
    /// finish; a second signal exits at once.
    Run(RunArgs),
    /// Write one task (JSON) to a queue and print its key.
    Enqueue(EnqueueArgs),
    /// Show each queue's pending, running, stale and failed tasks and the oldest pending age.
    ///
    /// Computed from the bucket alone, so it works with every daemon stopped.
    Status(StatusArgs),
    /// List failed tasks or send them back to pending.
    #[command(subcommand)]
    Failed(FailedCommand),
    /// Check the config, credentials, bucket, create-if-absent support, OSS versioning and
    /// the handlers' targets; one line per check.
    Doctor,
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask the running daemon whether it is ready (`/readyz` of `[http] listen`); exit 0 if
    /// so, 1 if not. For a container HEALTHCHECK.
    Health(HealthArgs),
}

/// `bucketq health`.
#[derive(Debug, Args)]
struct HealthArgs {
    /// The daemon's listener, e.g. `http://127.0.0.1:9464` (default: from `[http] listen`).
    #[arg(long)]
    url: Option<String>,
    /// Ask `/healthz` (the process is up) instead of `/readyz` (it is serving the bucket).
    #[arg(long)]
    live: bool,
}

/// `bucketq run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Start even if the store cannot make claims exclusive. Safe only when this is the
    /// only bucketq process serving the bucket.
    #[arg(long)]
    single_worker: bool,
}

/// `bucketq enqueue`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["json", "file", "stdin"])))]
struct EnqueueArgs {
    /// Queue name (as in `[[queue]] name`).
    queue: String,
    /// The payload as a JSON string.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
    /// Read the payload from a file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// `-`: read the payload from stdin.
    #[arg(value_name = "-", value_parser = clap::builder::PossibleValuesParser::new(["-"]))]
    stdin: Option<String>,
    /// Task id (default: a new time-sortable id). The key is PREFIX + ID + SUFFIX; an
    /// existing task is never overwritten.
    #[arg(long)]
    id: Option<String>,
}

/// `bucketq status`.
#[derive(Debug, Args)]
struct StatusArgs {
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum FailedCommand {
    /// List failed tasks with their attempts, time of failure and last error.
    List {
        /// Only this queue.
        queue: Option<String>,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send failed tasks back to pending with their attempt count reset.
    ///
    /// Each task is written back create-if-absent, then its failed copy is deleted, so an
    /// interruption never loses one (run the command again to finish).
    Retry {
        /// Failed keys (failed/mail/42.task) or the tasks' pending keys (mail/42.task); with
        /// --all, at most one queue name.
        #[arg(required_unless_present = "all", value_name = "KEY|QUEUE")]
        keys: Vec<String>,
        /// Retry every failed task (of one queue when a name is given).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with defaults filled in and secrets redacted.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Toml,
    Json,
}

/// Parse the arguments, run the command, and turn its result into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread exists: remove_var is only sound while the process is single-threaded.
    let notifier = match &cli.command {
        Command::Run(_) => run::take_notifier(),
        _ => Ok(None),
    };
    let default_filter = match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    };
    let result = logging::init(&LogSettings::from_env(), default_filter)
        .map_err(CliError::from)
        .and_then(|_| notifier.map_err(CliError::from))
        .and_then(|notifier| dispatch(cli, notifier));
    match result {
        Ok(code) => code,
        Err(e) => {
            // Not `eprintln!`, which panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "bucketq: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli, notifier: Option<bucketq::notify::SdNotify>) -> Result<ExitCode, CliError> {
    let path = cli.config.as_deref();
    if let Command::Config(ConfigCommand::Check { format }) = cli.command {
        return config_check::run(path, format);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Runtime { source })?;
    runtime.block_on(async move {
        match cli.command {
            Command::Doctor => doctor::run(path).await,
            Command::Run(args) => run::run(load(path)?, args.single_worker, notifier).await,
            Command::Enqueue(args) => enqueue::run(&load(path)?, args).await,
            Command::Status(args) => status::run(&load(path)?, args.json).await,
            Command::Failed(FailedCommand::List { queue, json }) => {
                failed::list(&load(path)?, queue.as_deref(), json).await
            }
            Command::Failed(FailedCommand::Retry { keys, all }) => {
                failed::retry(&load(path)?, keys, all).await
            }
            Command::Health(args) => {
                // With --url the config is not needed (and may be unreadable to a probe).
                let loaded = match &args.url {
                    Some(_) => None,
                    None => Some(load(path)?),
                };
                health::run(loaded.as_ref(), args.url.as_deref(), args.live).await
            }
            Command::Config(_) => unreachable!("handled before the runtime starts"),
        }
    })
}

/// Load and validate the configuration, logging where it came from.
fn load(path: Option<&std::path::Path>) -> Result<LoadedConfig, CliError> {
    let loaded = config::load(path)?;
    tracing::debug!(source = %loaded.source, env = ?loaded.env_applied, "configuration loaded");
    Ok(loaded)
}

/// Open the configured store for a one-shot command (its request counts are not reported).
fn open_store(
    config: &bucketq::config::Config,
) -> Result<std::sync::Arc<dyn bucketq::store::Store>, CliError> {
    let stats = std::sync::Arc::new(bucketq::store::RequestStats::default());
    bucketq::store::open::open(&config.store, stats).map_err(|source| CliError::Store {
        action: "opening the store".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn enqueue_takes_exactly_one_input() {
        assert!(Cli::try_parse_from(["bucketq", "enqueue", "q", "--json", "{}"]).is_ok());
        assert!(Cli::try_parse_from(["bucketq", "enqueue", "q", "-"]).is_ok());
        assert!(Cli::try_parse_from(["bucketq", "enqueue", "q"]).is_err());
        assert!(Cli::try_parse_from(["bucketq", "enqueue", "q", "--json", "{}", "-"]).is_err());
        assert!(Cli::try_parse_from(["bucketq", "enqueue", "q", "x"]).is_err());
    }

    #[test]
    fn failed_retry_needs_keys_or_all() {
        assert!(Cli::try_parse_from(["bucketq", "failed", "retry"]).is_err());
        assert!(Cli::try_parse_from(["bucketq", "failed", "retry", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["bucketq", "failed", "retry", "failed/a/1.task"]).is_ok());
    }

    #[test]
    fn config_is_global() {
        let cli = Cli::try_parse_from(["bucketq", "status", "--config", "/x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
    }
}
