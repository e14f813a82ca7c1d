//! `bucketq enqueue QUEUE (--json STR | --file F | -) [--id ID]`.

use std::io::Read;
use std::process::ExitCode;
use std::time::SystemTime;

use bytes::Bytes;

use bucketq::config::LoadedConfig;
use bucketq::queue::admin::{self, NewTask};

use super::{open_store, CliError, EnqueueArgs};

/// Write the task and print its key on stdout.
pub async fn run(loaded: &LoadedConfig, args: EnqueueArgs) -> Result<ExitCode, CliError> {
    let queues = admin::queues_of(&loaded.config);
    let queue = admin::find_queue(&queues, &args.queue)?;
    let task = NewTask {
        queue,
        id: args.id.as_deref(),
        payload: read_payload(&args)?,
        max_payload_bytes: loaded.config.worker.max_payload_bytes,
        now: SystemTime::now(),
    };
    // Refuse bad input before opening the store (which may create the local directory).
    task.check()?;
    let store = open_store(&loaded.config)?;
    let key = admin::enqueue(&*store, task).await?;
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

fn read_payload(args: &EnqueueArgs) -> Result<Bytes, CliError> {
    if let Some(json) = &args.json {
        return Ok(Bytes::from(json.clone()));
    }
    match args.file.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path)
                .map(Bytes::from)
                .map_err(|source| CliError::Input {
                    from: path.display().to_string(),
                    source,
                })
        }
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|source| CliError::Input {
                    from: "stdin".into(),
                    source,
                })?;
            Ok(Bytes::from(buf))
        }
    }
}
