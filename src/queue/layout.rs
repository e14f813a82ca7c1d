//! Key layout of one queue (design §2): which keys are tasks, and the lock, failed and done
//! keys of a task.
//!
//! | state   | key                          |
//! |---------|------------------------------|
//! | pending | `P I S`   (`mail/42.task`)   |
//! | claimed | `P I .lock` (`mail/42.lock`) |
//! | failed  | `F P I S` (`failed/mail/42.task`) |
//! | done    | deleted, or `D P I S`        |

/// Suffix of claimed tasks.
pub const LOCK_SUFFIX: &str = ".lock";

/// The longest key S3 and OSS store (bytes of UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;

/// The key layout of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Queue prefix `P`, e.g. `mail/`.
    pub prefix: String,
    /// Pending suffix `S`, e.g. `.task`.
    pub suffix: String,
    /// Failed prefix `F`, e.g. `failed/`.
    pub failed_prefix: String,
    /// Done prefix `D`, e.g. `done/`.
    pub done_prefix: String,
}

/// What a listed key is, for this queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A pending task with this id.
    Pending(String),
    /// A claimed task (lock) with this id.
    Lock(String),
    /// Anything else: not ours to touch.
    Other,
}

impl Layout {
    /// Classify a key found under the queue prefix. A key counts as a task only if it starts
    /// with `P`, ends with `S`, is not a lock, and does not lie under the failed or done
    /// prefix, so bucketq never triggers itself.
    pub fn classify(&self, key: &str) -> KeyKind {
        if self.is_archived(key) {
            return KeyKind::Other;
        }
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return KeyKind::Other;
        };
        // An empty id (`mail/.task`) is a task like any other: the suffix is never empty, so
        // a folder marker (`mail/`) cannot be mistaken for one.
        if let Some(id) = rest.strip_suffix(LOCK_SUFFIX) {
            return KeyKind::Lock(id.to_owned());
        }
        if self.suffix != LOCK_SUFFIX {
            if let Some(id) = rest.strip_suffix(self.suffix.as_str()) {
                return KeyKind::Pending(id.to_owned());
            }
        }
        KeyKind::Other
    }

    /// True when the key lies under the failed or done prefix (never a task).
    pub fn is_archived(&self, key: &str) -> bool {
        (!self.failed_prefix.is_empty() && key.starts_with(&self.failed_prefix))
            || (!self.done_prefix.is_empty() && key.starts_with(&self.done_prefix))
    }

    /// `P I S`.
    pub fn pending_key(&self, id: &str) -> String {
        format!("{}{}{}", self.prefix, id, self.suffix)
    }

    /// `P I .lock`.
    pub fn lock_key(&self, id: &str) -> String {
        format!("{}{}{}", self.prefix, id, LOCK_SUFFIX)
    }

    /// `F P I S`; see [`Layout::archived_key`] for a task key too long to fit.
    pub fn failed_key(&self, id: &str) -> String {
        self.archived_key(&self.failed_prefix, id)
    }

    /// `D P I S`; see [`Layout::archived_key`].
    pub fn done_key(&self, id: &str) -> String {
        self.archived_key(&self.done_prefix, id)
    }

    /// `<archive> P I S`, within [`MAX_KEY_BYTES`]. A task key can be up to 1024 bytes, and
    /// prefixing it would make a key no store accepts: the move could never succeed, and the
    /// task would be reaped and run again for ever. Such an id keeps as many of its first bytes
    /// as fit and ends in `~` and 16 hex digits of its MD5, so the archived key is still of
    /// this queue, stable, and distinct for distinct ids.
    pub fn archived_key(&self, archive: &str, id: &str) -> String {
        let full = format!("{archive}{}", self.pending_key(id));
        if full.len() <= MAX_KEY_BYTES {
            return full;
        }
        use md5::{Digest, Md5};
        let digest = Md5::digest(id.as_bytes());
        let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let fixed = archive.len() + self.prefix.len() + self.suffix.len() + 1 + tag.len();
        let mut keep = MAX_KEY_BYTES.saturating_sub(fixed).min(id.len());
        while !id.is_char_boundary(keep) {
            keep -= 1;
        }
        format!(
            "{archive}{}{}~{tag}{}",
            self.prefix,
            &id[..keep],
            self.suffix
        )
    }

    /// The prefix under which this queue's failed tasks lie (`F P`).
    pub fn failed_queue_prefix(&self) -> String {
        format!("{}{}", self.failed_prefix, self.prefix)
    }

    /// The task id of a failed key of this queue, if it is one.
    pub fn failed_id(&self, key: &str) -> Option<String> {
        key.strip_prefix(self.failed_prefix.as_str())
            .and_then(|rest| rest.strip_prefix(self.prefix.as_str()))
            .and_then(|rest| rest.strip_suffix(self.suffix.as_str()))
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Layout {
        Layout {
            prefix: "mail/".into(),
            suffix: ".task".into(),
            failed_prefix: "failed/".into(),
            done_prefix: "done/".into(),
        }
    }

    #[test]
    fn classifies_pending_lock_and_other_keys() {
        let l = mail();
        assert_eq!(l.classify("mail/42.task"), KeyKind::Pending("42".into()));
        assert_eq!(l.classify("mail/42.lock"), KeyKind::Lock("42".into()));
        assert_eq!(l.classify("mail/a/b.task"), KeyKind::Pending("a/b".into()));
        assert_eq!(l.classify("mail/.task"), KeyKind::Pending(String::new()));
        assert_eq!(l.classify("mail/.lock"), KeyKind::Lock(String::new()));
        assert_eq!(l.classify("mail/"), KeyKind::Other, "a folder marker");
        assert_eq!(l.classify("mail/42.json"), KeyKind::Other);
        assert_eq!(l.classify("other/42.task"), KeyKind::Other);
    }

    #[test]
    fn never_treats_its_own_archive_as_tasks() {
        // A queue whose prefix is the bucket root must not pick up failed/ or done/ keys.
        let l = Layout {
            prefix: String::new(),
            ..mail()
        };
        assert_eq!(l.classify("failed/mail/42.task"), KeyKind::Other);
        assert_eq!(l.classify("done/mail/42.task"), KeyKind::Other);
        assert_eq!(l.classify("42.task"), KeyKind::Pending("42".into()));
    }

    #[test]
    fn builds_every_state_key() {
        let l = mail();
        assert_eq!(l.pending_key("42"), "mail/42.task");
        assert_eq!(l.lock_key("42"), "mail/42.lock");
        assert_eq!(l.failed_key("42"), "failed/mail/42.task");
        assert_eq!(l.done_key("42"), "done/mail/42.task");
        assert_eq!(l.failed_id("failed/mail/42.task"), Some("42".into()));
        assert_eq!(l.failed_id("failed/other/42.task"), None);
    }

    #[test]
    fn an_archived_key_always_fits_and_stays_distinct() {
        let l = mail();
        // "mail/" + 1010 bytes + ".task" = 1020 bytes: a valid task key, too long for failed/.
        let long = "a".repeat(1010);
        assert_eq!(l.pending_key(&long).len(), 1020);
        let failed = l.failed_key(&long);
        assert!(failed.len() <= MAX_KEY_BYTES, "{}", failed.len());
        assert!(
            failed.starts_with("failed/mail/aaaa") && failed.ends_with(".task"),
            "{failed}"
        );
        assert_eq!(l.failed_key(&long), failed, "stable");
        let other = format!("{}b", "a".repeat(1009));
        assert_ne!(l.failed_key(&other), failed, "distinct ids stay distinct");
        let id = l
            .failed_id(&failed)
            .expect("still a failed key of this queue");
        assert!(l.pending_key(&id).len() <= MAX_KEY_BYTES);
        // Multi-byte characters are never split.
        let wide = "测".repeat(337);
        assert!(l.pending_key(&wide).len() <= MAX_KEY_BYTES);
        let failed = l.failed_key(&wide);
        assert!(
            failed.len() <= MAX_KEY_BYTES && failed.contains('~'),
            "{failed}"
        );
        // Keys that fit are untouched.
        assert_eq!(l.failed_key("42"), "failed/mail/42.task");
    }
}
