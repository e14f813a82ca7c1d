//! Delays: the retry backoff of a task and the polling interval of an idle queue.
//!
//! Pure functions of their inputs and a random source, so tests pin them exactly.

use std::time::Duration;

use rand::Rng;

/// Delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed: `base`
/// doubled per attempt, capped at `cap`, then "equal jitter" (half fixed, half random) so
/// retries of tasks that failed together do not hit the downstream together again.
pub fn retry_delay(base: Duration, cap: Duration, attempt: u32, rng: &mut impl Rng) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let full = base
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(cap)
        .min(cap);
    let half = full / 2;
    half + half.mul_f64(rng.gen_range(0.0..=1.0))
}

/// The wait after a handler asked for `after` (e.g. `Retry-After`): honoured, but capped so a
/// misbehaving server cannot park a task for ever.
pub fn requested_delay(after: Duration, cap: Duration) -> Duration {
    after.min(cap)
}

/// The next idle polling interval: doubled from `current`, between `min` and `max`.
pub fn next_idle_interval(current: Duration, min: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).clamp(min, max.max(min))
}

/// `interval` with up to ±10 % of jitter, so workers started together drift apart instead of
/// listing in lockstep.
pub fn jittered(interval: Duration, rng: &mut impl Rng) -> Duration {
    interval.mul_f64(rng.gen_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn retry_delay_doubles_is_capped_and_stays_within_its_jitter_band() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(600);
        for (attempt, full) in [(1, 10), (2, 20), (3, 40), (4, 80), (7, 600), (40, 600)] {
            for _ in 0..50 {
                let d = retry_delay(base, cap, attempt, &mut rng);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_delays_of_tasks_failing_together_differ() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = retry_delay(
            Duration::from_secs(10),
            Duration::from_secs(60),
            1,
            &mut rng,
        );
        let b = retry_delay(
            Duration::from_secs(10),
            Duration::from_secs(60),
            1,
            &mut rng,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn idle_interval_doubles_up_to_the_maximum() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        let mut d = min;
        let mut seen = vec![];
        for _ in 0..6 {
            d = next_idle_interval(d, min, max);
            seen.push(d.as_secs());
        }
        assert_eq!(seen, vec![2, 4, 8, 10, 10, 10]);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10), &mut rng);
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }

    #[test]
    fn requested_delays_are_capped() {
        let cap = Duration::from_secs(600);
        assert_eq!(
            requested_delay(Duration::from_secs(5), cap),
            Duration::from_secs(5)
        );
        assert_eq!(requested_delay(Duration::from_secs(86_400), cap), cap);
    }
}
