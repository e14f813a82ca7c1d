//! The queue protocol: the only code that knows the key layout and the claim protocol
//! (design §2–3). The engine in [`crate::worker`] drives it; the store knows nothing of it.

pub mod admin;
pub mod layout;
pub mod meta;

pub use layout::{KeyKind, Layout};
