//! The `mail` handler (to be built).

use serde::Deserialize;

/// Configuration of the `mail` handler.
#[derive(Debug, Clone, Deserialize)]
pub struct MailConfig {}
