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
        if let Some(id) = rest.strip_suffix(LOCK_SUFFIX) {
            if !id.is_empty() {
                return KeyKind::Lock(id.to_owned());
            }
        }
        if self.suffix != LOCK_SUFFIX {
            if let Some(id) = rest.strip_suffix(self.suffix.as_str()) {
                if !id.is_empty() {
                    return KeyKind::Pending(id.to_owned());
                }
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

    /// `F P I S`.
    pub fn failed_key(&self, id: &str) -> String {
        format!("{}{}", self.failed_prefix, self.pending_key(id))
    }

    /// `D P I S`.
    pub fn done_key(&self, id: &str) -> String {
        format!("{}{}", self.done_prefix, self.pending_key(id))
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
            .filter(|id| !id.is_empty())
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
        assert_eq!(l.classify("mail/.task"), KeyKind::Other);
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
}
