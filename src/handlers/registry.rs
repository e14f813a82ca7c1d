//! Handlers by name: the built-in ones made from a queue's config, plus Rust handlers an
//! embedder registers before `run`.

use std::collections::HashMap;
use std::sync::Arc;

use super::exec::{ExecConfigError, ExecHandler};
use super::log::LogHandler;
use super::mail::{MailConfigError, MailHandler};
use super::webhook::{WebhookConfigError, WebhookHandler};
use super::Handler;
use crate::config::{HandlerConfig, QueueConfig};

/// Why a queue's handler could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `handler = { type = "custom", name = "..." }` names nothing registered.
    #[error("queue {queue:?}: no Rust handler is registered under the name {name:?}")]
    UnknownCustom {
        /// The queue.
        queue: String,
        /// The name it asked for.
        name: String,
    },
    /// A built-in handler's configuration is unusable.
    #[error("queue {queue:?}: {message}")]
    Invalid {
        /// The queue.
        queue: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The `mail` handler's configuration is unusable.
    #[error("queue {queue:?}: {source}")]
    Mail {
        /// The queue.
        queue: String,
        /// What is wrong.
        #[source]
        source: MailConfigError,
    },
    /// The `webhook` handler's configuration is unusable.
    #[error("queue {queue:?}: {source}")]
    Webhook {
        /// The queue.
        queue: String,
        /// What is wrong.
        #[source]
        source: WebhookConfigError,
    },
    /// The `exec` handler's configuration is unusable.
    #[error("queue {queue:?}: {source}")]
    Exec {
        /// The queue.
        queue: String,
        /// What is wrong.
        #[source]
        source: ExecConfigError,
    },
}

/// Handlers registered by name, and the factory for built-in ones.
#[derive(Default, Clone)]
pub struct HandlerRegistry {
    custom: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerRegistry")
            .field("custom", &self.custom.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl HandlerRegistry {
    /// An empty registry (built-in handlers are always available).
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a Rust handler; queues select it with `handler = { type = "custom", name }`.
    pub fn register(&mut self, name: impl Into<String>, handler: Arc<dyn Handler>) {
        self.custom.insert(name.into(), handler);
    }

    /// The handler a queue runs, made from its config. Call it once per queue and keep the
    /// result: built-in handlers hold connection pools (SMTP, HTTP) meant to serve every task
    /// of the queue.
    pub fn build(&self, queue: &QueueConfig) -> Result<Arc<dyn Handler>, RegistryError> {
        let name = || queue.name.clone();
        match &queue.handler {
            HandlerConfig::Log => Ok(Arc::new(LogHandler)),
            HandlerConfig::Custom { name: wanted } => {
                self.custom
                    .get(wanted)
                    .cloned()
                    .ok_or_else(|| RegistryError::UnknownCustom {
                        queue: name(),
                        name: wanted.clone(),
                    })
            }
            HandlerConfig::Mail(cfg) => match MailHandler::new(cfg) {
                Ok(h) => Ok(Arc::new(h)),
                Err(source) => Err(RegistryError::Mail {
                    queue: name(),
                    source,
                }),
            },
            HandlerConfig::Webhook(cfg) => match WebhookHandler::new(cfg) {
                Ok(h) => Ok(Arc::new(h)),
                Err(source) => Err(RegistryError::Webhook {
                    queue: name(),
                    source,
                }),
            },
            HandlerConfig::Exec(cfg) => match ExecHandler::new(cfg) {
                Ok(h) => Ok(Arc::new(h)),
                Err(source) => Err(RegistryError::Exec {
                    queue: name(),
                    source,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(handler: &str) -> QueueConfig {
        let text = format!("name = \"q\"\nprefix = \"q/\"\nhandler = {handler}\n");
        toml_queue(&text)
    }

    fn toml_queue(text: &str) -> QueueConfig {
        let cfg = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .expect("toml");
        cfg.try_deserialize().expect("queue config")
    }

    #[test]
    fn builds_every_builtin_from_toml_and_names_the_queue_on_errors() {
        let reg = HandlerRegistry::new();
        for ok in [
            r#"{ type = "log" }"#,
            r#"{ type = "mail", host = "smtp.example.com", port = 587, tls = "starttls", username = "u", password = "p", from = "Trotter <noreply@example.com>" }"#,
            r#"{ type = "webhook", url = "https://example.com/hook", headers = { Authorization = "Bearer x" }, body = "json", timeout = "5s" }"#,
            r#"{ type = "exec", command = ["sh", "-c", "cat"], event = "fc", region = "cn-hangzhou" }"#,
        ] {
            reg.build(&queue(ok))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = |h: &str| match reg.build(&queue(h)) {
            Ok(_) => panic!("{h} must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err(r#"{ type = "mail", from = "a@b.c" }"#)
            .starts_with("queue \"q\": mail handler: `host`"));
        assert!(err(r#"{ type = "webhook", url = "nope" }"#).contains("`url`"));
        assert!(err(r#"{ type = "exec", command = [] }"#).contains("`command` is empty"));
        assert!(err(r#"{ type = "custom", name = "mine" }"#).contains("\"mine\""));
    }

    #[test]
    fn unknown_handler_fields_are_refused() {
        let text = "name = \"q\"\nprefix = \"q/\"\nhandler = { type = \"mail\", hots = \"x\" }\n";
        let cfg = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .expect("toml");
        let err = cfg.try_deserialize::<QueueConfig>().expect_err("typo");
        assert!(err.to_string().contains("hots"), "{err}");
    }
}
