//! Log output: readable text on a terminal, JSON for journald and Docker log collectors.
//!
//! - `BUCKETQ_LOG_FORMAT=json` selects one JSON object per line; `text` (the default) selects
//!   human text, coloured only when stderr is a terminal.
//! - `BUCKETQ_LOG` (or, when unset, `RUST_LOG`) is an `EnvFilter` directive such as `debug` or
//!   `info,bucketq::store=debug`; the default level is chosen by the command (info for `run`).
//!
//! Logs go to stderr so that command output on stdout (`enqueue` prints the key, `status
//! --json`) stays machine-readable.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Variable selecting the output format.
pub const FORMAT_VAR: &str = "BUCKETQ_LOG_FORMAT";
/// Variable holding the filter; takes precedence over `RUST_LOG`.
pub const FILTER_VAR: &str = "BUCKETQ_LOG";
/// The conventional filter variable, read when [`FILTER_VAR`] is unset.
pub const RUST_LOG_VAR: &str = "RUST_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human text; `ansi` colours it.
    Text {
        /// Colour escapes on (stderr is a terminal).
        ansi: bool,
    },
    /// One JSON object per line.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The format variable holds something else than `text` or `json`.
    #[error("{FORMAT_VAR}={value:?} is not a log format; use \"text\" or \"json\"")]
    Format {
        /// The value found.
        value: String,
    },
    /// The filter directive does not parse.
    #[error("{var} is not a valid log filter (e.g. \"info\" or \"info,bucketq=debug\"): {source}")]
    Filter {
        /// The variable it came from.
        var: &'static str,
        /// The parser's error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was installed already (a bug in the caller).
    #[error("logging was initialised twice")]
    AlreadySet,
}

/// What [`init`] reads, passed in so it can be tested without touching the process.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// Value of [`FORMAT_VAR`], if set.
    pub format: Option<String>,
    /// Value of [`FILTER_VAR`], if set.
    pub filter: Option<String>,
    /// Value of [`RUST_LOG_VAR`], if set.
    pub rust_log: Option<String>,
    /// Whether stderr is a terminal.
    pub terminal: bool,
}

impl LogSettings {
    /// The settings of this process.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        LogSettings {
            format: var(FORMAT_VAR),
            filter: var(FILTER_VAR),
            rust_log: var(RUST_LOG_VAR),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// The output format these settings select.
    pub fn log_format(&self) -> Result<LogFormat, LoggingError> {
        match self
            .format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => Ok(LogFormat::Text {
                ansi: self.terminal,
            }),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(LoggingError::Format {
                value: self.format.clone().unwrap_or_default(),
            }),
        }
    }

    /// The filter these settings select, `default` when neither variable is set.
    pub fn env_filter(&self, default: &str) -> Result<EnvFilter, LoggingError> {
        let (var, directive) = match (&self.filter, &self.rust_log) {
            (Some(f), _) => (FILTER_VAR, f.as_str()),
            (None, Some(f)) => (RUST_LOG_VAR, f.as_str()),
            (None, None) => ("the default filter", default),
        };
        EnvFilter::builder()
            .parse(directive)
            .map_err(|source| LoggingError::Filter {
                var: if var == "the default filter" {
                    FILTER_VAR
                } else {
                    var
                },
                source,
            })
    }
}

/// stderr, where a failed write counts as written: logging must never stop the daemon.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Install the global subscriber writing to stderr.
pub fn init(settings: &LogSettings, default_filter: &str) -> Result<LogFormat, LoggingError> {
    let format = settings.log_format()?;
    let filter = settings.env_filter(default_filter)?;
    // A log line that cannot be written (stderr closed: `bucketq run 2>&1 | head -1`, a gone
    // journal) is dropped. tracing's default reports such a failure with `eprintln!`, which
    // panics on the same closed stderr and took the daemon down.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text { ansi } => builder.with_ansi(ansi).with_target(false).try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadySet)?;
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_variable_and_the_terminal() {
        let mut s = LogSettings {
            terminal: true,
            ..Default::default()
        };
        assert_eq!(s.log_format().unwrap(), LogFormat::Text { ansi: true });
        s.terminal = false;
        assert_eq!(s.log_format().unwrap(), LogFormat::Text { ansi: false });
        s.format = Some("JSON".into());
        assert_eq!(s.log_format().unwrap(), LogFormat::Json);
        s.format = Some("xml".into());
        let err = s.log_format().unwrap_err().to_string();
        assert!(
            err.contains("BUCKETQ_LOG_FORMAT") && err.contains("xml"),
            "{err}"
        );
    }

    #[test]
    fn bucketq_log_wins_over_rust_log_and_bad_filters_name_their_variable() {
        let s = LogSettings {
            filter: Some("debug".into()),
            rust_log: Some("error".into()),
            ..Default::default()
        };
        assert_eq!(s.env_filter("info").unwrap().to_string(), "debug");
        let s = LogSettings {
            rust_log: Some("warn".into()),
            ..Default::default()
        };
        assert_eq!(s.env_filter("info").unwrap().to_string(), "warn");
        assert_eq!(
            LogSettings::default()
                .env_filter("info")
                .unwrap()
                .to_string(),
            "info"
        );
        let s = LogSettings {
            rust_log: Some("bucketq=notalevel".into()),
            ..Default::default()
        };
        assert!(s
            .env_filter("info")
            .unwrap_err()
            .to_string()
            .contains("RUST_LOG"));
    }
}
