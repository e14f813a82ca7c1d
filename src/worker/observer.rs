//! Hooks that let a test watch the engine's view of its leases (the simulation's checker uses
//! them to prove no two workers run a task while both hold a valid lease).

use tokio::time::Instant;

/// Told about every handler run and every lease confirmation. Every method defaults to
/// nothing; calls happen on the engine's tasks, so keep them short.
pub trait Observer: Send + Sync {
    /// A handler starts attempt `attempt` of task `id` under the claim `token`; the lease is
    /// provably ours until `valid_until` (local time).
    fn attempt_started(
        &self,
        _queue: &str,
        _id: &str,
        _token: &str,
        _attempt: u32,
        _valid_until: Instant,
    ) {
    }

    /// A lease write succeeded: the lease of `token` is provably ours until `valid_until`.
    fn lease_confirmed(&self, _queue: &str, _id: &str, _token: &str, _valid_until: Instant) {}

    /// The engine stopped waiting for the handler of `token` (it returned, timed out, or was
    /// cancelled).
    fn attempt_ended(&self, _queue: &str, _id: &str, _token: &str) {}
}
