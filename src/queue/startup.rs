//! Startup checks: can this store make claims exclusive? (design §3, last paragraph)
//!
//! Every claim is a create-if-absent write, so a store that silently ignores the condition
//! would let two workers run the same task. Before serving, bucketq writes a probe key twice
//! (the second write must be refused) and, on OSS, refuses a bucket whose versioning is or was
//! enabled, where `x-oss-forbid-overwrite` is ignored.

use crate::store::probe::{probe_create_if_absent, ProbeOutcome};
use crate::store::{Store, StoreError, StoreKind, Versioning};

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusivity {
    /// Claims are exclusive.
    Exclusive,
    /// The create-if-absent probe was not refused, and why (for the operator). A lost answer
    /// can make a sound store look like this once, so the caller may probe again.
    NotExclusive(String),
    /// A definite answer that claims cannot be exclusive (OSS versioning): probing again cannot
    /// change it.
    Refused(String),
}

/// Run the versioning check (OSS only) and the create-if-absent probe under `prefix`.
pub async fn check_exclusive(store: &dyn Store, prefix: &str) -> Result<Exclusivity, StoreError> {
    if store.kind() == StoreKind::Oss {
        match store.versioning().await? {
            Versioning::Never => {}
            state => {
                return Ok(Exclusivity::Refused(format!(
                    "bucket {} has versioning {}; OSS ignores x-oss-forbid-overwrite on such \
                     buckets, so two workers could claim the same task. Use a bucket that never \
                     had versioning",
                    store.bucket(),
                    if state == Versioning::Enabled {
                        "enabled"
                    } else {
                        "suspended"
                    }
                )))
            }
        }
    }
    Ok(match probe_create_if_absent(store, prefix).await? {
        ProbeOutcome::Exclusive => Exclusivity::Exclusive,
        ProbeOutcome::NotExclusive { reason } => {
            Exclusivity::NotExclusive(format!("store {}: {reason}", store.bucket()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_correct_store_is_exclusive_and_the_probe_leaves_nothing() {
        let store = MemoryStore::builder().build();
        assert_eq!(
            check_exclusive(&store, "q/").await.expect("checked"),
            Exclusivity::Exclusive
        );
        assert!(store.keys("").is_empty());
    }

    #[tokio::test]
    async fn a_versioned_oss_bucket_is_refused_with_the_reason() {
        for state in [Versioning::Enabled, Versioning::Suspended] {
            let store = MemoryStore::builder().kind(StoreKind::Oss).build();
            store.set_versioning(state);
            let Exclusivity::Refused(reason) =
                check_exclusive(&store, "q/").await.expect("checked")
            else {
                panic!("versioning {state:?} must be refused");
            };
            assert!(reason.contains("forbid-overwrite"), "{reason}");
        }
    }

    #[tokio::test]
    async fn versioning_is_only_a_problem_on_oss() {
        let store = MemoryStore::builder().kind(StoreKind::S3).build();
        store.set_versioning(Versioning::Enabled);
        assert_eq!(
            check_exclusive(&store, "q/").await.expect("checked"),
            Exclusivity::Exclusive
        );
    }
}
