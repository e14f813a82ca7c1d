//! Names of the bookkeeping metadata bucketq keeps on lock and failed objects (design §2),
//! without the `x-oss-meta-` / `x-amz-meta-` prefix the store adds.

use std::time::SystemTime;

use crate::store::Metadata;

/// Random per claim; proves a lock is still ours.
pub const TOKEN: &str = "bq-token";
/// Worker id: host + pid + random.
pub const OWNER: &str = "bq-owner";
/// 1-based count of attempts started.
pub const ATTEMPT: &str = "bq-attempt";
/// When the current claim was made (RFC 3339, store clock where known).
pub const CLAIMED_AT: &str = "bq-claimed-at";
/// Last error of a failed task: at most 1 KiB of escaped printable ASCII.
pub const ERROR: &str = "bq-error";
/// When the task was moved to failed (RFC 3339).
pub const FAILED_AT: &str = "bq-failed-at";
/// When the producer wrote the task (RFC 3339, store clock). Kept across claims, reaps and
/// releases so `max_age` counts from the first write, not from the last re-creation.
pub const CREATED_AT: &str = "bq-created-at";
/// Largest `bq-error` value stored.
pub const MAX_ERROR_BYTES: usize = 1024;

/// Make an error message safe for a metadata header: printable ASCII only (others escaped as
/// `\u{..}`), at most [`MAX_ERROR_BYTES`] bytes.
pub fn escape_error(message: &str) -> String {
    let mut out = String::new();
    for c in message.chars() {
        let piece = if c == '\\' {
            "\\\\".to_owned()
        } else if c.is_ascii_graphic() || c == ' ' {
            c.to_string()
        } else {
            format!("\\u{{{:x}}}", c as u32)
        };
        if out.len() + piece.len() > MAX_ERROR_BYTES {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The attempts a task object records (`bq-attempt`), 0 when absent or unreadable: a task
/// fresh from a producer has started no attempt.
pub fn attempt(meta: &Metadata) -> u32 {
    meta.get(ATTEMPT)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The time a metadata value records, if it is one (RFC 3339).
pub fn time(meta: &Metadata, name: &str) -> Option<SystemTime> {
    meta.get(name)
        .and_then(|v| humantime::parse_rfc3339_weak(v.trim()).ok())
}

/// A time as bucketq writes it into metadata: RFC 3339, UTC, milliseconds.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attempts_and_times_back() {
        let mut m = Metadata::new();
        assert_eq!(attempt(&m), 0);
        m.insert(ATTEMPT.into(), "3".into());
        assert_eq!(attempt(&m), 3);
        m.insert(ATTEMPT.into(), "x".into());
        assert_eq!(attempt(&m), 0);
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_893_456_000_123);
        m.insert(CREATED_AT.into(), format_time(t));
        assert_eq!(time(&m, CREATED_AT), Some(t));
        assert_eq!(m[CREATED_AT], "2030-01-01T00:00:00.123Z");
    }

    #[test]
    fn escapes_non_ascii_and_caps_length() {
        assert_eq!(escape_error("550 bad\nuser é"), "550 bad\\u{a}user \\u{e9}");
        assert_eq!(escape_error(&"x".repeat(5000)).len(), MAX_ERROR_BYTES);
    }
}
