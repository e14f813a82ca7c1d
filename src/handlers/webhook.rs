//! The `webhook` handler (to be built).

use serde::Deserialize;

/// Configuration of the `webhook` handler.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConfig {}
