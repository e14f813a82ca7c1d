//! A task this worker holds the lock of.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;

use super::meta;
use crate::store::Metadata;

/// A claimed task: its keys, the claim's token and attempt, the payload (kept in memory so a
/// lock deleted by mistake can be restored, and a failed task written, without reading it
/// again), and how long the lease is known to be ours.
#[derive(Debug, Clone)]
pub struct Held {
    /// Task id.
    pub id: String,
    /// `P I S`.
    pub pending_key: String,
    /// `P I .lock`.
    pub lock_key: String,
    /// Random per claim; written as `bq-token`.
    pub token: String,
    /// 1-based number of the attempt that is running or ran last.
    pub attempt: u32,
    /// The payload.
    pub body: Bytes,
    /// ETag of the payload (the same on pending, lock and failed objects).
    pub etag: String,
    /// When the producer wrote the task (store clock).
    pub created_at: SystemTime,
    /// When this claim was made (store clock estimate).
    pub claimed_at: SystemTime,
    /// Local time until which the lock is provably ours: the send time of the last write that
    /// moved its LastModified, plus the lease, minus a margin for clock-rate differences. No
    /// other worker may reap the lock before then, because reaping needs the lock's
    /// LastModified (which is after that send time) to be a whole lease old on the store.
    pub valid_until: Instant,
    /// Local send time of the last write that moved the lock's LastModified.
    pub confirmed_at: Instant,
    /// When the claim's delete of the pending key was answered: the settled lock is kept
    /// until [`crate::queue::QueueCtx::settle_hold`] after this.
    pub pending_gone_at: Instant,
}

impl Held {
    /// The metadata of the lock: token, owner, attempt and times.
    pub fn lock_meta(&self, owner: &str) -> Metadata {
        let mut m = Metadata::new();
        m.insert(meta::TOKEN.into(), self.token.clone());
        m.insert(meta::OWNER.into(), owner.to_owned());
        m.insert(meta::ATTEMPT.into(), self.attempt.to_string());
        m.insert(meta::CLAIMED_AT.into(), meta::format_time(self.claimed_at));
        m.insert(meta::CREATED_AT.into(), meta::format_time(self.created_at));
        m
    }

    /// True while the lease is provably ours (see [`Held::valid_until`]).
    pub fn lease_valid(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// Record that a write sent at `sent` moved the lock's LastModified.
    pub fn confirm_lease(&mut self, sent: Instant, lease: Duration) {
        self.confirmed_at = sent;
        self.valid_until = sent + lease.saturating_sub(lease_margin(lease));
    }
}

/// How much shorter than the lease this worker trusts its own lease to be: a tenth, for the
/// difference in clock rates between this host and the store over one lease.
pub fn lease_margin(lease: Duration) -> Duration {
    lease / 10
}

/// Metadata of a pending key recreated from a lock (reap, release): the attempts it has used,
/// its original creation time and who recreated it.
pub fn pending_meta(attempts: u32, created_at: SystemTime, token: &str) -> Metadata {
    let mut m = Metadata::new();
    m.insert(meta::ATTEMPT.into(), attempts.to_string());
    m.insert(meta::CREATED_AT.into(), meta::format_time(created_at));
    m.insert(meta::TOKEN.into(), token.to_owned());
    m
}
