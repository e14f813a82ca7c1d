//! The queue protocol: the only code that knows the key layout and the claim protocol
//! (design §2–3). The engine in [`crate::worker`] drives it; the store knows nothing of it.
//!
//! One file per step: [`claim`], [`lease`], [`settle`], [`reap`]; [`scan`] reads listing pages;
//! [`deleter`] batches deletes; [`startup`] checks the store can make claims exclusive;
//! [`health`] spaces repeatable steps out while the store fails ([`observed`] tells it how
//! each request went).
//!
//! # The protocol in brief
//!
//! - **Claim** ([`claim`]): GET the pending key, create the lock with create-if-absent (one
//!   conditional CopyObject on OSS and the local store, a PUT of the body on S3), delete the
//!   pending key, then run. Two requests per task plus a share of a batched delete.
//! - **Lease** ([`lease`]): while a task is held, copy the lock onto itself every `lease / 3`.
//!   The lease counts from the *send* time of the last such write, minus a margin
//!   ([`held::lease_margin`]); no lease write is sent, or counted, outside it.
//! - **Settle** ([`settle`]): success deletes the lock (batched); failure copies it to
//!   `failed/` first; shutdown recreates the pending key first. Nothing is deleted before its
//!   successor exists.
//! - **Reap** ([`reap`]): a lock a lease old on the store's clock is re-read; the pending key
//!   is recreated from it with create-if-absent (one reaper wins), and only the lock that was
//!   read is deleted.
//!
//! # What it relies on
//!
//! 1. The store makes create-if-absent atomic and is read-after-write consistent (checked at
//!    startup by [`startup`], except consistency).
//! 2. The local monotonic clock and the store's clock run at rates within a tenth of each
//!    other over one lease (their offsets do not matter: ages are measured on one clock).
//! 3. A store request takes effect within the transport's budget (request timeout times its
//!    tries) of being sent, or not at all. The lease margin is at least that budget, so a
//!    lease write sent inside the lease lands before any reaper may act.
//!
//! Under these, no task is lost while some worker runs, and no two workers run a task while
//! both hold a valid lease (the simulation in `tests/simulation.rs` checks both). A task runs
//! more than once only after a fault: a worker crashed or was cut off from the store for
//! longer than `lease` minus the margin, or a request took longer than the budget.

pub mod admin;
pub mod backoff;
pub mod claim;
pub mod clock;
pub mod context;
pub mod deleter;
pub mod error;
pub mod health;
pub mod held;
pub mod layout;
pub mod lease;
pub mod meta;
pub mod observed;
pub mod reap;
pub mod scan;
pub mod settle;
pub mod startup;

pub use context::{Limits, QueueCtx, Recipe};
pub use error::QueueError;
pub use held::Held;
pub use layout::{KeyKind, Layout};
