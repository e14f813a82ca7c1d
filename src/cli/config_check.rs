//! `bucketq config check [--format toml|json]`.

use std::path::Path;
use std::process::ExitCode;

use bucketq::config::{self, view};

use super::{CliError, Format};

/// Validate and print the effective configuration, secrets redacted. Problems go to stderr
/// and exit 78.
pub fn run(path: Option<&Path>, format: Format) -> Result<ExitCode, CliError> {
    let loaded = config::load(path)?;
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
