//! The `exec` handler (to be built).

use serde::Deserialize;

/// Configuration of the `exec` handler.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecConfig {}
