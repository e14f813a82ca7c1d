//! `bucketq config check [--format toml|json]`.

use std::path::Path;
use std::process::ExitCode;

use bucketq::config::{self, view, StoreBackend};
use bucketq::handlers::HandlerRegistry;

use super::{CliError, Format};

/// Validate and print the effective configuration, secrets redacted. Problems go to stderr
/// and exit 78.
///
/// Every check `run` makes before touching the network is made here too, so a unit's gate
/// (or an operator) never passes a config the daemon then refuses: the file, then opening the
/// store (endpoint, region, addressing, ca_file, the credentials source) and building each
/// queue's handler (hosts, URLs, programs, CA files). Nothing is sent anywhere.
pub fn run(path: Option<&Path>, format: Format) -> Result<ExitCode, CliError> {
    let loaded = config::load(path)?;
    if loaded.config.store.kind != StoreBackend::Local {
        // The local store would create its directory when opened; its settings were validated.
        super::open_store(&loaded.config)?;
    }
    // Handlers set up their clients as the daemon would; some need a runtime to exist.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Runtime { source })?;
    runtime.block_on(async {
        let registry = HandlerRegistry::new();
        for queue in &loaded.config.queues {
            registry.build(queue)?;
        }
        Ok::<_, CliError>(())
    })?;
    let format = match format {
        Format::Toml => view::Format::Toml,
        Format::Json => view::Format::Json,
    };
    print!("{}", view::render(&loaded, format)?);
    if format == view::Format::Json {
        println!();
    }
    eprintln!("bucketq: configuration from {} is valid", loaded.source);
    Ok(ExitCode::SUCCESS)
}
