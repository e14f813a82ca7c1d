//! Claims the store refuses with an answer no retry of the same request can change.
//!
//! The store-health gate ([`crate::queue::health`]) spaces requests out while the store
//! *fails* (5xx, timeouts), and opens again at the first answer of any request. A claim the
//! store *refuses* (an unexpected 4xx: `411 MissingContentLength`, `400`, `403` on the lock
//! key, a retention refusal) is an answer, so that gate stays open, and a worker that simply
//! went on would send GET + copy for every pending task on every poll: 268 requests a second
//! for 30 tasks was measured before this existed. So each queue keeps its own record:
//!
//! - after a refusal, no claim of the queue starts for `delay` (doubling from `poll_interval`
//!   to `max_poll_interval`), and then only one at a time, a probe, until a claim gets through
//!   the store (won or lost to another worker, either way the store took the request);
//! - a refusal that says the request as bucketq builds it cannot pass on this store
//!   ([`StoreError::is_malformed_request`]), met on [`STOP_AFTER`] consecutive claims of at
//!   least two different tasks, stops the worker with the error: waiting cannot fix it, the
//!   operator must (a key-specific refusal of one task never stops the worker).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::StoreError;

/// Consecutive malformed-request refusals, on at least two tasks, that stop the worker.
pub const STOP_AFTER: u32 = 3;

/// What the scanner may do with its next candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Claim it.
    Go,
    /// Claim nothing before this instant.
    WaitUntil(Instant),
}

/// What a refusal leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Claims wait this long, then probe one at a time.
    BackOff(Duration),
    /// The worker must stop: the store can never take these claims as sent.
    Stop,
}

/// One queue's record of refused claims; see the module docs.
#[derive(Debug)]
pub struct ClaimRefusals {
    base: Duration,
    max: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Refusals since the last claim the store took.
    consecutive: u32,
    /// Of those, the malformed-request ones in a row, and the tasks they were met on.
    malformed: u32,
    malformed_keys: BTreeSet<String>,
    delay: Duration,
    /// No claim before this.
    paused_until: Option<Instant>,
    /// A probe claim is out (while refusing, one at a time).
    probe_out: bool,
}

impl ClaimRefusals {
    /// A record whose pauses double from `base` to `max` (the poll intervals).
    pub fn new(base: Duration, max: Duration) -> Self {
        ClaimRefusals {
            base,
            max: max.max(base),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a claim start now? While claims are being refused: not before the pause ends, and
    /// then only one at a time.
    pub fn admit(&self, now: Instant) -> Admit {
        let mut s = self.state();
        if s.consecutive == 0 {
            return Admit::Go;
        }
        let until = s.paused_until.unwrap_or(now);
        if until > now || s.probe_out {
            return Admit::WaitUntil(until.max(now + self.base));
        }
        s.probe_out = true;
        Admit::Go
    }

    /// The store took a claim (won, or lost to another worker): refusals are over.
    pub fn accepted(&self) {
        let mut s = self.state();
        *s = State::default();
    }

    /// A claim of `key` ended without an answer that says anything about refusals (a store
    /// failure, a payload refused locally): let the next probe go.
    pub fn inconclusive(&self) {
        self.state().probe_out = false;
    }

    /// The store refused a claim of `key` with `error`, at `now`.
    pub fn refused(&self, key: &str, error: &StoreError, now: Instant) -> Verdict {
        let mut s = self.state();
        s.consecutive = s.consecutive.saturating_add(1);
        s.probe_out = false;
        if error.is_malformed_request() {
            s.malformed = s.malformed.saturating_add(1);
            if s.malformed_keys.len() < 2 {
                s.malformed_keys.insert(key.to_owned());
            }
        } else {
            s.malformed = 0;
            s.malformed_keys.clear();
        }
        if s.malformed >= STOP_AFTER && s.malformed_keys.len() >= 2 {
            return Verdict::Stop;
        }
        s.delay = if s.delay.is_zero() {
            self.base
        } else {
            (s.delay * 2).min(self.max)
        };
        s.paused_until = Some(now + s.delay);
        Verdict::BackOff(s.delay)
    }

    /// Refusals since the last accepted claim (for logging only the first and every
    /// doubling).
    pub fn consecutive(&self) -> u32 {
        self.state().consecutive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;

    fn refusal(status: u16, code: &str) -> StoreError {
        StoreError::Refused {
            key: "q/1.lock".into(),
            op: Op::Copy,
            status,
            code: code.into(),
            message: format!("HTTP {status} {code}"),
        }
    }

    fn forbidden() -> StoreError {
        StoreError::Forbidden {
            key: "q/1.lock".into(),
            code: "AccessDenied".into(),
            message: "no write".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_pauses_claims_then_lets_one_probe_through_at_a_time() {
        let r = ClaimRefusals::new(Duration::from_secs(1), Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.admit(t0), Admit::Go);
        assert_eq!(
            r.refused("q/1.task", &forbidden(), t0),
            Verdict::BackOff(Duration::from_secs(1))
        );
        assert!(matches!(r.admit(t0), Admit::WaitUntil(t) if t == t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(r.admit(t1), Admit::Go, "the probe");
        assert!(
            matches!(r.admit(t1), Admit::WaitUntil(_)),
            "only one probe at a time"
        );
        assert_eq!(
            r.refused("q/2.task", &forbidden(), t1),
            Verdict::BackOff(Duration::from_secs(2))
        );
        for _ in 0..10 {
            r.refused("q/2.task", &forbidden(), t1);
        }
        assert_eq!(
            r.refused("q/2.task", &forbidden(), t1),
            Verdict::BackOff(Duration::from_secs(10)),
            "capped"
        );
        r.accepted();
        assert_eq!(r.admit(t1), Admit::Go);
        assert_eq!(r.admit(t1), Admit::Go, "no limit once a claim got through");
        assert_eq!(r.consecutive(), 0);
    }

    #[test]
    fn a_malformed_request_on_several_tasks_stops_the_worker() {
        let r = ClaimRefusals::new(Duration::from_secs(1), Duration::from_secs(10));
        let now = Instant::now();
        let missing_length = refusal(411, "MissingContentLength");
        assert!(matches!(
            r.refused("q/1.task", &missing_length, now),
            Verdict::BackOff(_)
        ));
        assert!(matches!(
            r.refused("q/2.task", &missing_length, now),
            Verdict::BackOff(_)
        ));
        assert_eq!(r.refused("q/3.task", &missing_length, now), Verdict::Stop);
    }

    #[test]
    fn one_task_refused_again_and_again_never_stops_the_worker() {
        let r = ClaimRefusals::new(Duration::from_secs(1), Duration::from_secs(10));
        let now = Instant::now();
        let bad_name = refusal(400, "InvalidObjectName");
        for _ in 0..20 {
            assert!(matches!(
                r.refused("q/odd.task", &bad_name, now),
                Verdict::BackOff(_)
            ));
        }
    }

    #[test]
    fn a_refusal_that_waiting_may_fix_never_stops_the_worker() {
        let r = ClaimRefusals::new(Duration::from_secs(1), Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..20 {
            let verdict = r.refused(&format!("q/{i}.task"), &forbidden(), now);
            assert!(matches!(verdict, Verdict::BackOff(_)), "{verdict:?}");
            let verdict = r.refused(
                &format!("q/{i}.task"),
                &refusal(409, "ObjectImmutable"),
                now,
            );
            assert!(matches!(verdict, Verdict::BackOff(_)), "{verdict:?}");
        }
    }
}
