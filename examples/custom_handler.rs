//! Embed bucketq as a library and serve a queue with your own Rust handler.
//!
//! ```text
//! cargo run --example custom_handler [DIR]
//! ```
//!
//! It uses the `local` store (a directory used as a bucket; a temporary one unless `DIR` is
//! given), writes five tasks as a producer would, registers a [`Handler`] written below under
//! the name `greeter`, runs the engine, and stops once every task was handled. Point the same
//! config at OSS or S3 (`[store] kind = "oss"`, ...) and nothing else changes.
//!
//! The handler shows the three verdicts: [`Outcome::Done`], [`Outcome::Retry`] (the task comes
//! back after the queue's backoff, here one of them fails its first attempt on purpose), and
//! [`Outcome::Fail`] (straight to `failed/`, with the reason in the failed object's metadata).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bucketq::config::Config;
use bucketq::handlers::{Handler, HandlerRegistry, Outcome, Task};
use bucketq::metrics::Metrics;
use bucketq::payload::{self, Limits};
use bucketq::store::{PutOptions, RequestStats};
use bucketq::worker::{self, NoLifecycle, Shutdown, WorkerContext};
use tokio_util::sync::CancellationToken;

/// Greets the `name` in each task's payload (a JSON object or a pickled dict).
struct Greeter {
    /// Tasks settled so far (done or failed for good).
    settled: AtomicUsize,
    /// How many tasks the example wrote; when all are settled, `finished` fires.
    expected: usize,
    finished: CancellationToken,
}

impl Greeter {
    fn settle(&self, outcome: Outcome) -> Outcome {
        if self.settled.fetch_add(1, Ordering::SeqCst) + 1 == self.expected {
            self.finished.cancel();
        }
        outcome
    }
}

#[async_trait]
impl Handler for Greeter {
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome {
        // The same decoder the built-in handlers use: JSON, or a pickle read without running it.
        let decoded = match payload::decode_for(&task.key, &task.payload, &Limits::default()) {
            Ok(decoded) => decoded,
            Err(e) => return self.settle(Outcome::fail(e.to_string())),
        };
        let Some(name) = decoded.fields.get("name").and_then(|v| v.as_str()) else {
            return self.settle(Outcome::fail(format!("{}: no \"name\" field", task.key)));
        };
        if decoded.fields.get("flaky") == Some(&serde_json::Value::Bool(true)) && task.attempt == 1
        {
            return Outcome::retry("flaky on its first attempt (on purpose)");
        }
        // Real work goes here; stop promptly when the engine cancels (timeout, shutdown).
        tokio::select! {
            () = cancel.cancelled() => return Outcome::retry("cancelled"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        println!(
            "hello, {name}  (task {}, attempt {})",
            task.key, task.attempt
        );
        self.settle(Outcome::Done)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("bucketq-example-{}", std::process::id())),
    };
    let config = example_config(&dir)?;

    // A producer: write tasks into the bucket (JSON here; pickled dicts work the same).
    let stats = Arc::new(RequestStats::default());
    let store = bucketq::store::open::open(&config.store, Arc::clone(&stats))?;
    let names = ["Ada", "Grace", "Linus", "Margaret", "Ken"];
    for (i, name) in names.iter().enumerate() {
        let body = serde_json::json!({ "name": name, "flaky": i == 1 }).to_string();
        store
            .put(
                &format!("greet/{i}.task"),
                body.into(),
                &PutOptions::default(),
            )
            .await?;
    }
    // One with no name, which the handler fails for good (it ends in failed/greet/bad.task).
    store
        .put("greet/bad.task", "{}".into(), &PutOptions::default())
        .await?;

    // Register the handler by the name the queue's config asks for, then run the engine.
    let shutdown = Shutdown::default();
    let greeter = Arc::new(Greeter {
        settled: AtomicUsize::new(0),
        expected: names.len() + 1,
        finished: shutdown.drain.clone(),
    });
    let mut handlers = HandlerRegistry::new();
    handlers.register("greeter", Arc::clone(&greeter) as Arc<dyn Handler>);

    let ctx = WorkerContext {
        config: Arc::new(config),
        store,
        handlers,
        metrics: Arc::new(Metrics::new(stats)),
        lifecycle: Arc::new(NoLifecycle),
        single_worker: false,
    };
    // `drain` fires when every task is settled (in a daemon: on SIGTERM).
    worker::run(ctx, shutdown).await?;
    println!(
        "all {} tasks settled; the bucket is {}",
        greeter.settled.load(Ordering::SeqCst),
        dir.display()
    );
    Ok(())
}

/// The configuration, as it would be written in `bucketq.toml`.
fn example_config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let toml = format!(
        r#"
[store]
kind = "local"
path = {path:?}

[worker]
poll_interval = "100ms"
max_poll_interval = "500ms"
shutdown_grace = "5s"

[[queue]]
name = "greet"
prefix = "greet/"
timeout = "10s"
max_attempts = 3
backoff = "200ms"
handler = {{ type = "custom", name = "greeter" }}
"#,
        path = dir.display().to_string()
    );
    let config = config::Config::builder()
        .add_source(config::File::from_str(&toml, config::FileFormat::Toml))
        .build()?
        .try_deserialize()?;
    Ok(config)
}
