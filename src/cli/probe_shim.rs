//! TEMPORARY stand-in for `bucketq::store::probe::probe_create_if_absent`, which the `local`
//! branch provides with this exact signature. When that lands, delete this file and import
//! `bucketq::store::probe::{probe_create_if_absent, ProbeOutcome}` in `doctor.rs` instead.

use bytes::Bytes;

use bucketq::store::{PutOptions, Store, StoreError, WriteMode};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The second create-if-absent write was refused: claims are exclusive.
    Exclusive,
    /// The store cannot be trusted with claims.
    NotExclusive {
        /// What the store did.
        reason: String,
    },
}

/// Write a unique key under `prefix` twice with create-if-absent; the second write must be
/// refused. The probe key is deleted afterwards.
pub async fn probe_create_if_absent(
    store: &dyn Store,
    prefix: &str,
) -> Result<ProbeOutcome, StoreError> {
    let key = format!("{prefix}bucketq-probe-{:016x}", rand::random::<u64>());
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    };
    let outcome = async {
        store.put(&key, Bytes::from_static(b"first"), &opts).await?;
        match store.put(&key, Bytes::from_static(b"second"), &opts).await {
            Err(StoreError::AlreadyExists { .. }) => Ok(ProbeOutcome::Exclusive),
            Ok(_) => Ok(ProbeOutcome::NotExclusive {
                reason: "a second create-if-absent write of the same key was accepted".into(),
            }),
            Err(StoreError::Unsupported { what }) => Ok(ProbeOutcome::NotExclusive {
                reason: format!("{what} is not supported"),
            }),
            Err(e) => Err(e),
        }
    }
    .await;
    let _ = store.delete(&key).await;
    outcome
}
