//! The `log` handler: logs the task and succeeds. For demos and smoke tests.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Handler, Outcome, Task};

/// Logs each task (queue, key, attempt, payload size) and reports it done.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogHandler;

#[async_trait]
impl Handler for LogHandler {
    async fn handle(&self, task: &Task, _cancel: CancellationToken) -> Outcome {
        tracing::info!(
            queue = %task.queue,
            key = %task.key,
            attempt = task.attempt,
            bytes = task.payload.len(),
            payload = %String::from_utf8_lossy(&task.payload[..task.payload.len().min(512)]),
            "handled task"
        );
        Outcome::Done
    }
}
