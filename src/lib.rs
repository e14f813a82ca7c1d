//! bucketq turns an object-storage bucket into a task queue.
//!
//! Producers write task objects (`mail/<id>.task`); bucketq lists the bucket by prefix, claims
//! each task by renaming it to `mail/<id>.lock` with a conditional write only one worker can
//! win, runs the handler registered for the queue with bounded concurrency, then deletes the
//! task or moves it to `failed/` once its attempts are spent.
//!
//! # Guarantees
//!
//! - **No loss**: every task ends either handled successfully or in `failed/` with its payload
//!   and error, as long as some worker keeps running. No transition deletes a key before its
//!   successor exists.
//! - **At-least-once**: a handler may run again for a task whose worker crashed, was killed, or
//!   was cut off from the store for longer than `lease`. Handlers should be idempotent.
//! - **Exactly-once in the common case**: with no crashes and no partition longer than
//!   `lease`, each task's handler runs once, however many workers compete.
//!
//! # Layout
//!
//! - [`store`]: the object-store trait and its backends (OSS, S3, local, memory); knows nothing
//!   of queues.
//! - [`queue`]: the only code that knows the key layout and the claim protocol.
//! - [`worker`]: the poll loop, bounded concurrency, lease refresh, shutdown drain.
//! - [`handlers`] and [`payload`]: what runs for a task.
//! - [`config`], [`metrics`], [`http`], [`notify`], [`logging`]: the daemon around it.
//! - [`tls`]: the trust store (system roots plus a `ca_file`) every TLS client shares.

pub mod config;
pub mod handlers;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod payload;
pub mod queue;
pub mod secret;
pub mod store;
pub mod tls;
pub mod worker;
