//! `bucketq health [--url URL] [--live]`: ask a running daemon whether it is ready, for a
//! container's HEALTHCHECK or a probe script (the image has no curl).

use std::process::ExitCode;
use std::time::Duration;

use bucketq::config::LoadedConfig;

use super::error::{EXIT_FAILURE, EX_CONFIG};
use super::CliError;

/// GET `/readyz` (or `/healthz` with `live`) of the daemon's listener and exit 0 on 200, 1
/// otherwise, saying what came back. The address is `--url`, else `[http] listen` (a wildcard
/// address is asked on loopback).
pub async fn run(
    loaded: Option<&LoadedConfig>,
    url: Option<&str>,
    live: bool,
) -> Result<ExitCode, CliError> {
    let path = if live { "/healthz" } else { "/readyz" };
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let listen = loaded.and_then(|l| l.config.http.listen.as_deref());
            let Some(listen) = listen else {
                eprintln_safe("bucketq: no [http] listen is configured; set http.listen (BUCKETQ_HTTP__LISTEN=127.0.0.1:9464) or pass --url");
                return Ok(ExitCode::from(EX_CONFIG));
            };
            format!("http://{}", loopback_for(listen))
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| CliError::Runtime {
            source: std::io::Error::other(e),
        })?;
    match client.get(format!("{base}{path}")).send().await {
        Ok(resp) if resp.status().is_success() => {
            println_safe(&format!("ok {base}{path}"));
            Ok(ExitCode::SUCCESS)
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            eprintln_safe(&format!(
                "bucketq: {base}{path} answered {status}: {}",
                body.trim()
            ));
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        Err(e) => {
            eprintln_safe(&format!("bucketq: no answer from {base}{path}: {e}"));
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// `0.0.0.0:9464` is reached at `127.0.0.1:9464`, `[::]:9464` at `[::1]:9464`.
fn loopback_for(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_owned()
    }
}

fn println_safe(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn eprintln_safe(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_asked_on_loopback() {
        assert_eq!(loopback_for("0.0.0.0:9464"), "127.0.0.1:9464");
        assert_eq!(loopback_for("[::]:9464"), "[::1]:9464");
        assert_eq!(loopback_for("127.0.0.1:9000"), "127.0.0.1:9000");
    }
}
