//! What can make a command fail, and the exit code each failure maps to.
//!
//! The codes follow BSD `sysexits.h`, which systemd and shell scripts already understand:
//! a bad configuration (78) must not be retried in a restart loop the way a flaky network (1)
//! may be.

use std::error::Error as _;

use bucketq::config::view::ViewError;
use bucketq::config::ConfigError;
use bucketq::http::HttpError;
use bucketq::logging::LoggingError;
use bucketq::notify::NotifyError;
use bucketq::queue::admin::AdminError;
use bucketq::store::StoreError;
use bucketq::worker::WorkerError;

/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// `EX_UNAVAILABLE`: the store cannot make claims exclusive.
pub const EX_UNAVAILABLE: u8 = 69;
/// `EX_NOPERM`: the store refused the credentials.
pub const EX_NOPERM: u8 = 77;
/// `EX_CONFIG`: the configuration is invalid.
pub const EX_CONFIG: u8 = 78;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Logging could not be set up (bad BUCKETQ_LOG / BUCKETQ_LOG_FORMAT).
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// The systemd notification socket is unusable.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened or failed.
    #[error("{action}")]
    Store {
        /// What was being done.
        action: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// An operator action failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The engine stopped with an error.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The metrics listener could not start.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Printing the effective config failed.
    #[error(transparent)]
    View(#[from] ViewError),
    /// The payload could not be read.
    #[error("cannot read the payload from {from}")]
    Input {
        /// File name or stdin.
        from: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A handler the config names cannot be built.
    #[error(transparent)]
    Handler(#[from] bucketq::handlers::registry::RegistryError),
    /// The daemon was stopped by a second signal without draining.
    #[error("stopped by a second signal without draining; the locks of interrupted tasks are reaped after worker.lease")]
    Aborted,
    /// Some of the work asked for was not done; the output says which.
    #[error("{0}")]
    Incomplete(String),
    /// `doctor` found a problem; its lines say which. Carries the exit code of the first.
    #[error("doctor found {failures} problem(s)")]
    Doctor {
        /// How many checks failed.
        failures: usize,
        /// Exit code of the first failure.
        code: u8,
    },
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Logging(_) | CliError::Handler(_) => EX_CONFIG,
            CliError::Http(HttpError::BadAddress { .. }) => EX_CONFIG,
            CliError::Worker(WorkerError::Auth(_)) => EX_NOPERM,
            CliError::Worker(WorkerError::NotExclusive { .. }) => EX_UNAVAILABLE,
            CliError::Worker(WorkerError::ClaimsRefused { .. }) => EX_UNAVAILABLE,
            CliError::Worker(WorkerError::Handler(_)) => EX_CONFIG,
            CliError::Worker(WorkerError::Store(e)) => store_code(e),
            CliError::Store { source, .. } => store_code(source),
            CliError::Admin(e) => e.store_error().map_or(EXIT_FAILURE, store_code),
            CliError::Doctor { code, .. } => *code,
            _ => EXIT_FAILURE,
        }
    }

    /// The message and its causes on one line, each cause once, and what to check when the
    /// store refused the credentials.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Some errors repeat their cause in their own message; print it once.
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = cause.source();
        }
        if let Some(hint) = self.store_error().and_then(StoreError::credential_hint) {
            if !out.contains(hint) {
                out.push_str("; ");
                out.push_str(hint);
            }
        }
        out
    }

    /// The store error underneath, if the failure was the store's.
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            CliError::Store { source, .. } => Some(source),
            CliError::Admin(e) => e.store_error(),
            CliError::Worker(WorkerError::Store(e) | WorkerError::Auth(e)) => Some(e),
            _ => None,
        }
    }
}

/// 77 when the store refused who we are, 78 when its settings cannot work or the configured
/// bucket does not exist, else 1.
pub fn store_code(e: &StoreError) -> u8 {
    if e.is_auth() {
        EX_NOPERM
    } else if matches!(
        e,
        StoreError::NoSuchBucket { .. } | StoreError::Misconfigured { .. }
    ) {
        EX_CONFIG
    } else {
        EXIT_FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_sysexits() {
        let auth = StoreError::Unauthenticated {
            key: String::new(),
            code: "InvalidAccessKeyId".into(),
            message: "no such key".into(),
        };
        assert_eq!(
            CliError::Worker(WorkerError::Auth(auth)).exit_code(),
            EX_NOPERM
        );
        let not_exclusive = WorkerError::NotExclusive {
            reason: "versioning".into(),
        };
        assert_eq!(CliError::Worker(not_exclusive).exit_code(), EX_UNAVAILABLE);
        let admin = AdminError::Store {
            action: "listing".into(),
            source: StoreError::Forbidden {
                key: "x".into(),
                code: "AccessDenied".into(),
                message: String::new(),
            },
        };
        assert_eq!(CliError::Admin(admin).exit_code(), EX_NOPERM);
        assert_eq!(CliError::Aborted.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn report_prints_each_cause_once() {
        let e = CliError::Store {
            action: "opening the store".into(),
            source: StoreError::Io {
                key: "k".into(),
                source: std::io::Error::other("disk on fire"),
            },
        };
        assert_eq!(e.report(), "opening the store: k: disk on fire");
    }
}
