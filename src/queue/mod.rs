//! The queue protocol: the only code that knows the key layout and the claim protocol
//! (design §2–3). The engine in [`crate::worker`] drives it; the store knows nothing of it.
//!
//! One file per step: [`claim`], [`lease`], [`settle`], [`reap`]; [`scan`] reads listing pages;
//! [`deleter`] batches deletes; [`startup`] checks the store can make claims exclusive.

pub mod admin;
pub mod backoff;
pub mod claim;
pub mod clock;
pub mod context;
pub mod deleter;
pub mod error;
pub mod held;
pub mod layout;
pub mod lease;
pub mod meta;
pub mod reap;
pub mod scan;
pub mod settle;
pub mod startup;

pub use context::{Limits, QueueCtx, Recipe};
pub use error::QueueError;
pub use held::Held;
pub use layout::{KeyKind, Layout};
