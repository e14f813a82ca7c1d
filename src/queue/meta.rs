//! Names of the bookkeeping metadata bucketq keeps on lock and failed objects (design §2),
//! without the `x-oss-meta-` / `x-amz-meta-` prefix the store adds.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_non_ascii_and_caps_length() {
        assert_eq!(escape_error("550 bad\nuser é"), "550 bad\\u{a}user \\u{e9}");
        assert_eq!(escape_error(&"x".repeat(5000)).len(), MAX_ERROR_BYTES);
    }
}
