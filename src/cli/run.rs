//! `bucketq run`: wire the store, metrics, HTTP listener, systemd notification and signals
//! around the engine, then wait for it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio_util::sync::CancellationToken;

use bucketq::config::{ConfigSource, LoadedConfig};
use bucketq::handlers::HandlerRegistry;
use bucketq::http::{self, HttpState};
use bucketq::metrics::Metrics;
use bucketq::notify::{NotifyError, SdNotify};
use bucketq::queue::admin::{self, NewTask};
use bucketq::store::{open::open, RequestStats, Store};
use bucketq::worker::{self, Lifecycle, NoLifecycle, Shutdown, WorkerContext};

use super::error::{CliError, EXIT_FAILURE};

/// After the second signal, the engine gets this long to return before the process exits
/// anyway.
const ABORT_EXIT_AFTER: Duration = Duration::from_secs(3);

/// The sample task the built-in demo enqueues on start.
const DEMO_PAYLOAD: &[u8] = br#"{"hello":"world","from":"the bucketq demo"}"#;

/// The systemd notifier, with the variables removed from the environment so that exec
/// handlers do not inherit them. Call before any thread starts.
pub fn take_notifier() -> Result<Option<SdNotify>, NotifyError> {
    let notifier = SdNotify::from_env();
    SdNotify::unset_env();
    notifier
}

/// Run the daemon until a signal stops it.
pub async fn run(
    loaded: LoadedConfig,
    single_worker: bool,
    notifier: Option<SdNotify>,
) -> Result<ExitCode, CliError> {
    // First of all: SIGHUP's default action kills the process, leaving its locks to expire
    // and their tasks to run twice. Terminals, log-rotation habits and `systemctl reload` send
    // it; it must never stop the daemon.
    let signals =
        Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(|source| CliError::Runtime { source })?;
    let config = Arc::new(loaded.config.clone());
    let stats = Arc::new(RequestStats::default());
    let store = open(&config.store, Arc::clone(&stats)).map_err(|source| CliError::Store {
        action: "opening the store".into(),
        source,
    })?;
    let metrics = Arc::new(Metrics::new(stats));
    let notifier = notifier.map(Arc::new);
    let lifecycle: Arc<dyn Lifecycle> = match &notifier {
        Some(n) => Arc::clone(n) as Arc<dyn Lifecycle>,
        None => Arc::new(NoLifecycle),
    };
    // Stops the listener and the watchdog once the engine has returned.
    let background = CancellationToken::new();
    if let Some(listen) = &config.http.listen {
        let listener = http::bind(listen).await?;
        let state = HttpState::new(Arc::clone(&metrics), config.worker.max_poll_interval);
        tracing::info!(listen = %listen, "serving /metrics, /healthz and /readyz");
        tokio::spawn(http::serve(listener, Arc::new(state), background.clone()));
    }
    if let Some(n) = &notifier {
        n.status("starting");
        let n = Arc::clone(n);
        let stop = background.clone();
        tokio::spawn(async move { n.run_watchdog(stop).await });
    }
    let shutdown = Shutdown::default();
    tokio::spawn(watch_signals(
        signals,
        shutdown.clone(),
        Arc::clone(&lifecycle),
        config.worker.shutdown_grace,
    ));
    log_start(&loaded, &*store);
    if loaded.source == ConfigSource::BuiltinDemo {
        seed_demo_task(&*store, &loaded).await?;
    }
    let ctx = WorkerContext {
        config: Arc::clone(&config),
        store,
        handlers: HandlerRegistry::new(),
        metrics,
        lifecycle,
        single_worker,
    };
    let result = worker::run(ctx, shutdown.clone()).await;
    background.cancel();
    result?;
    if shutdown.abort.is_cancelled() {
        return Err(CliError::Aborted);
    }
    tracing::info!("stopped after a clean drain");
    Ok(ExitCode::SUCCESS)
}

fn log_start(loaded: &LoadedConfig, store: &dyn Store) {
    let queues: Vec<&str> = loaded
        .config
        .queues
        .iter()
        .map(|q| q.name.as_str())
        .collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %loaded.source,
        store = ?store.kind(),
        bucket = %store.bucket(),
        // Comma-joined: tracing has no stable array value, and a Debug string (`["a"]`) is
        // neither a list nor readable text in JSON logs.
        queues = %queues.join(","),
        queue_count = queues.len(),
        "bucketq starting"
    );
}

/// In the built-in demo, put one task in the queue so the log shows it flowing through.
async fn seed_demo_task(store: &dyn Store, loaded: &LoadedConfig) -> Result<(), CliError> {
    let queues = admin::queues_of(&loaded.config);
    let Some(queue) = queues.first() else {
        return Ok(());
    };
    let key = admin::enqueue(
        store,
        NewTask {
            queue,
            id: None,
            payload: Bytes::from_static(DEMO_PAYLOAD),
            max_payload_bytes: loaded.config.worker.max_payload_bytes,
            now: SystemTime::now(),
        },
    )
    .await?;
    tracing::info!(
        key = %key,
        data = %loaded.config.store.path.display(),
        "demo mode (no config file): enqueued a sample task; add more from another terminal with: bucketq enqueue demo --json '{{\"hello\":\"world\"}}'"
    );
    Ok(())
}

/// First SIGTERM/SIGINT: drain. Second: abort, and exit shortly after even if the engine
/// does not return. SIGHUP: logged, nothing else.
async fn watch_signals(
    mut signals: Signals,
    shutdown: Shutdown,
    lifecycle: Arc<dyn Lifecycle>,
    grace: Duration,
) {
    let mut seen = 0;
    while let Some(signal) = signals.next().await {
        if signal == SIGHUP {
            tracing::warn!(
                signal,
                "SIGHUP received: carrying on with the configuration bucketq started with (live reload is not supported yet; restart to apply changes)"
            );
            continue;
        }
        seen += 1;
        if seen == 1 {
            tracing::info!(
                signal,
                grace = %humantime::format_duration(grace),
                "stop requested; send the signal again to stop at once without draining"
            );
            lifecycle.stopping();
            shutdown.drain.cancel();
        } else {
            tracing::warn!(signal, "second signal: stopping at once");
            shutdown.abort.cancel();
            tokio::time::sleep(ABORT_EXIT_AFTER).await;
            tracing::error!("the engine did not stop after the second signal; exiting");
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }
}
