//! The memory store's clock: the store's idea of "now", which tests move at will.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the clock advances between the test's own moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// Follows tokio's clock (`tokio::time::Instant`), so a runtime with paused time moves it
    /// exactly as it moves every timer, and a real-time test sees real seconds pass.
    FollowTokio,
    /// Stands still until the test calls [`MemoryClock::advance`] or [`MemoryClock::set`].
    Manual,
}

/// The store's clock. Every LastModified and every listing's `server_time` is read from it, so a
/// test decides how old a lock is without sleeping.
///
/// A std `Mutex`: the critical sections are one addition and nothing awaits while it is held.
#[derive(Debug)]
pub struct MemoryClock {
    mode: ClockMode,
    /// Store time at `start`.
    base: SystemTime,
    /// tokio instant the clock started at ([`ClockMode::FollowTokio`] only).
    start: tokio::time::Instant,
    /// Everything the test added with [`MemoryClock::advance`] (may be set back by `set`).
    offset: Mutex<Duration>,
}

impl MemoryClock {
    /// A clock starting at `base` (the store time right now), moving as `mode` says.
    pub fn new(mode: ClockMode, base: SystemTime) -> Self {
        MemoryClock {
            mode,
            base,
            start: tokio::time::Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// A clock that follows tokio time from a fixed, recognisable start (2030-01-01), so runs
    /// with the same seed see the same timestamps.
    pub fn following_tokio() -> Self {
        Self::new(ClockMode::FollowTokio, fixed_epoch())
    }

    /// A clock that only moves when told, starting at 2030-01-01.
    pub fn manual() -> Self {
        Self::new(ClockMode::Manual, fixed_epoch())
    }

    /// The store's current time.
    pub fn now(&self) -> SystemTime {
        let followed = match self.mode {
            ClockMode::FollowTokio => self.start.elapsed(),
            ClockMode::Manual => Duration::ZERO,
        };
        self.base + followed + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Move the store's clock forward by `by` (a lease expiring without anyone waiting).
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    /// Set the store's clock to `to`, which must not be before the clock's starting point.
    pub fn set(&self, to: SystemTime) {
        let now = self.now();
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        match to.duration_since(now) {
            Ok(forward) => *offset += forward,
            Err(back) => *offset = offset.saturating_sub(back.duration()),
        }
    }
}

/// 2030-01-01T00:00:00Z: a start far from any real clock, so a test that wrongly compares
/// store time with local time fails loudly.
fn fixed_epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = MemoryClock::manual();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), t0 + Duration::from_secs(90));
        clock.set(t0 + Duration::from_secs(10));
        assert_eq!(clock.now(), t0 + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn following_clock_moves_with_paused_tokio_time() {
        let clock = MemoryClock::following_tokio();
        let t0 = clock.now();
        tokio::time::sleep(Duration::from_secs(300)).await;
        let moved = clock.now().duration_since(t0).expect("forward");
        assert!(moved >= Duration::from_secs(300) && moved < Duration::from_secs(301));
    }
}
