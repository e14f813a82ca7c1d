//! Handlers by name: the built-in ones made from a queue's config, plus Rust handlers an
//! embedder registers before `run`.

use std::collections::HashMap;
use std::sync::Arc;

use super::log::LogHandler;
use super::mail::MailHandler;
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
    /// The `mail` handler's configuration is unusable.
    #[error("queue {queue:?}: {source}")]
    Mail {
        /// The queue.
        queue: String,
        /// What is wrong.
        #[source]
        source: super::mail::MailConfigError,
    },
    /// A built-in handler's configuration is unusable.
    #[error("queue {queue:?}: {message}")]
    Invalid {
        /// The queue.
        queue: String,
        /// What is wrong and how to fix it.
        message: String,
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

    /// The handler a queue runs, made from its config.
    pub fn build(&self, queue: &QueueConfig) -> Result<Arc<dyn Handler>, RegistryError> {
        match &queue.handler {
            HandlerConfig::Log => Ok(Arc::new(LogHandler)),
            HandlerConfig::Custom { name } => {
                self.custom
                    .get(name)
                    .cloned()
                    .ok_or_else(|| RegistryError::UnknownCustom {
                        queue: queue.name.clone(),
                        name: name.clone(),
                    })
            }
            HandlerConfig::Mail(cfg) => MailHandler::new(cfg)
                .map(|h| Arc::new(h) as Arc<dyn Handler>)
                .map_err(|source| RegistryError::Mail {
                    queue: queue.name.clone(),
                    source,
                }),
            HandlerConfig::Webhook(_) | HandlerConfig::Exec(_) => Err(RegistryError::Invalid {
                queue: queue.name.clone(),
                message: "handler not built yet".into(),
            }),
        }
    }
}
