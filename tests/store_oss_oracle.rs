//! The OSS store against the signature oracle (`tests/support/oss_oracle.py`): an OSS
//! emulation that recomputes every request's signature with Alibaba's own SDK signers
//! (`alibabacloud-oss-v2` for V4, `oss2` for V1) and refuses what OSS refuses (a PUT without a
//! length, S3's `If-None-Match`, a bad Content-MD5, an unknown key, a wrong STS token).
//!
//! The whole store conformance suite runs against it with V4 and with V1, with a long-lived key
//! and with STS keys, on an IP endpoint (path-style, as the SDKs address it); afterwards every
//! request the oracle saw must have verified.

#[path = "conformance/mod.rs"]
mod conformance;
#[path = "support/oss_oracle.rs"]
mod oss_oracle;

use std::sync::Arc;

use bucketq::config::{OssSignature, StoreBackend, StoreConfig};
use bucketq::queue::startup::{check_exclusive, Exclusivity};
use bucketq::secret::Secret;
use bucketq::store::oss::OssStore;
use bucketq::store::{ListRequest, RequestStats, Store, StoreError};
use oss_oracle::{Key, Options, Oracle, BUCKET, KEY_ID, REGION, SECRET};

/// Statuses the conformance suite provokes on purpose: missing keys, lost creates, changed
/// sources, the clock probe's 404.
const EXPECTED_REFUSALS: &[u64] = &[404, 409, 412];

fn config(oracle: &Oracle, signature: OssSignature, key: &Key) -> StoreConfig {
    StoreConfig {
        kind: StoreBackend::Oss,
        endpoint: Some(oracle.endpoint()),
        bucket: BUCKET.into(),
        region: Some(REGION.into()),
        access_key_id: Secret::new(&key.id),
        access_key_secret: Secret::new(&key.secret),
        security_token: Secret::new(key.token.as_deref().unwrap_or("")),
        signature,
        ..StoreConfig::default()
    }
}

fn open(cfg: &StoreConfig) -> Arc<dyn Store> {
    Arc::new(OssStore::from_config(cfg, Arc::new(RequestStats::default())).expect("opens"))
}

fn sts_key() -> Key {
    Key {
        id: "STS.NUpbWiqSnkxVVyFmUCanTmvNa".into(),
        secret: "StsSecretFromAssumeRole0123456789".into(),
        token: Some("CAIS+gF1q6Ft5B2yfSjIr5bkG/temporary+token/==".into()),
        expires: None,
    }
}

async fn conformance_with(signature: OssSignature, key: Key) {
    let oracle = Oracle::start(std::slice::from_ref(&key), Options::default());
    let store = open(&config(&oracle, signature, &key));
    conformance::run_all(Arc::clone(&store), &conformance::unique_prefix("oracle")).await;
    let checked = oracle.assert_all_sound(EXPECTED_REFUSALS);
    let signed = oracle
        .log()
        .iter()
        .filter(|e| {
            e["signature"].as_str()
                == Some(if signature == OssSignature::V4 {
                    "v4"
                } else {
                    "v1"
                })
        })
        .count();
    assert_eq!(signed, checked, "every request verified by the SDK signer");
    assert!(checked > 5000, "the suite sent {checked} requests");
    if key.token.is_some() {
        let with_token = oracle
            .log()
            .iter()
            .filter(|e| e["headers"]["x-oss-security-token"].as_str() == key.token.as_deref())
            .count();
        assert_eq!(with_token, checked, "every request carried the STS token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_v4_long_lived_key() {
    conformance_with(OssSignature::V4, Key::long_lived()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_v1_long_lived_key() {
    conformance_with(OssSignature::V1, Key::long_lived()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_v4_sts_token() {
    conformance_with(OssSignature::V4, sts_key()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_v1_sts_token() {
    conformance_with(OssSignature::V1, sts_key()).await;
}

#[tokio::test]
async fn the_oracle_refuses_a_wrong_secret_and_a_missing_token() {
    let oracle = Oracle::start(&[Key::long_lived(), sts_key()], Options::default());
    let list = ListRequest {
        prefix: "q/".into(),
        ..ListRequest::default()
    };
    for signature in [OssSignature::V4, OssSignature::V1] {
        let mut wrong = Key::long_lived();
        wrong.secret = "NotTheSecret".into();
        let err = open(&config(&oracle, signature, &wrong))
            .list(&list)
            .await
            .expect_err("a wrong secret is refused");
        assert!(
            matches!(&err, StoreError::Unauthenticated { code, .. } if code == "SignatureDoesNotMatch"),
            "{signature:?}: {err:?}"
        );
        let hint = err.credential_hint().expect("a hint");
        assert!(hint.contains("store.access_key_secret"), "{hint}");
        assert!(!err.to_string().starts_with(':'), "{err}");

        let mut tokenless = sts_key();
        tokenless.token = None;
        let err = open(&config(&oracle, signature, &tokenless))
            .list(&list)
            .await
            .expect_err("STS keys without their token are refused");
        assert!(
            matches!(&err, StoreError::Unauthenticated { code, .. } if code == "InvalidSecurityToken"),
            "{signature:?}: {err:?}"
        );
        assert!(err
            .credential_hint()
            .expect("hint")
            .contains("store.security_token"));
    }
    // The right key still verifies: the refusals above were the oracle's judgement.
    let store = open(&config(&oracle, OssSignature::V4, &Key::long_lived()));
    store.list(&list).await.expect("the right key lists");
    assert_eq!(KEY_ID, Key::long_lived().id);
    assert_eq!(SECRET, Key::long_lived().secret);
}

#[tokio::test]
async fn a_versioned_bucket_is_refused_at_once_with_the_reason() {
    let oracle = Oracle::plain();
    let store = open(&config(&oracle, OssSignature::V4, &Key::long_lived()));
    assert_eq!(
        check_exclusive(store.as_ref(), "failed/")
            .await
            .expect("checked"),
        Exclusivity::Exclusive
    );
    for state in ["Enabled", "Suspended"] {
        oracle.set_versioning(state);
        match check_exclusive(store.as_ref(), "failed/")
            .await
            .expect("checked")
        {
            Exclusivity::Refused(reason) => {
                assert!(reason.contains("versioning"), "{reason}");
                assert!(reason.contains(&state.to_ascii_lowercase()), "{reason}");
            }
            other => panic!("versioning {state}: {other:?}"),
        }
    }
    oracle.assert_all_sound(&[404, 409]);
}
