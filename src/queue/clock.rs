//! The store's clock as this worker last saw it.
//!
//! Lock ages are measured on the store's clock (the `Date` of a listing), never the local one:
//! hosts disagree about the time, the store is the one clock every worker shares. Between
//! listings the estimate moves with the local monotonic clock, which drifts far less in a lease
//! than wall clocks differ between hosts.

use std::sync::Mutex;
use std::time::SystemTime;

use tokio::time::Instant;

/// The last store time seen and when (local monotonic time) it was seen.
#[derive(Debug, Default)]
pub struct StoreClock {
    seen: Mutex<Option<(SystemTime, Instant)>>,
}

impl StoreClock {
    /// A clock that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record the store's time from a response (`server_time` of a listing).
    pub fn observe(&self, server_time: SystemTime) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((server_time, Instant::now()));
    }

    /// The store's time now, estimated from the last observation. Before any listing it falls
    /// back to the local clock; nothing that ages a lock reads it then.
    pub fn now(&self) -> SystemTime {
        match *self.seen.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((server, at)) => server + at.elapsed(),
            None => SystemTime::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn moves_with_local_time_from_the_last_observation() {
        let clock = StoreClock::new();
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        clock.observe(server);
        tokio::time::sleep(Duration::from_secs(42)).await;
        assert_eq!(clock.now(), server + Duration::from_secs(42));
    }
}
