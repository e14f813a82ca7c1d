//! Counting of store requests by operation and result, so the cost of each task is visible
//! (OSS and S3 bill per request).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

/// A store operation, as billed and as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// ListObjectsV2.
    List,
    /// GetObject.
    Get,
    /// HeadObject.
    Head,
    /// PutObject.
    Put,
    /// CopyObject.
    Copy,
    /// DeleteObject.
    Delete,
    /// DeleteObjects (batch).
    DeleteMany,
    /// GetBucketVersioning.
    Versioning,
    /// Fetching the store's keys (metadata service, STS, a credentials URI).
    Credentials,
}

impl Op {
    /// Every operation, for exhaustive reports.
    pub const ALL: [Op; 9] = [
        Op::List,
        Op::Get,
        Op::Head,
        Op::Put,
        Op::Copy,
        Op::Delete,
        Op::DeleteMany,
        Op::Versioning,
        Op::Credentials,
    ];

    /// Lower-case name used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::Copy => "copy",
            Op::Delete => "delete",
            Op::DeleteMany => "delete_many",
            Op::Versioning => "versioning",
            Op::Credentials => "credentials",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request counters keyed by (operation, result). The result is a short label: `"ok"`,
/// an HTTP status (`"409"`), or `"error"` for a request that got no answer.
///
/// A std `Mutex`, not a tokio one: nothing awaits while it is held and the critical section is
/// one map update.
#[derive(Debug, Default)]
pub struct RequestStats {
    counts: Mutex<BTreeMap<(Op, String), u64>>,
}

impl RequestStats {
    /// Count one request that went to the store (each retry counts: each is billed).
    pub fn record(&self, op: Op, result: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((op, result.to_owned())).or_default() += 1;
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> BTreeMap<(Op, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Total requests of one operation, whatever their result.
    pub fn total(&self, op: Op) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }

    /// Total requests of every operation.
    pub fn grand_total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}
