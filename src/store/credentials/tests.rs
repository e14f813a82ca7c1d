//! The cache's refresh rules with a scripted source and a hand-moved clock, and the RPC
//! signature against Alibaba's published example. The sources themselves are tested against
//! fake metadata and STS services on 127.0.0.1 in `tests/store_credentials.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::*;
use crate::secret::Secret;

/// A source answering from a script, counting its fetches.
#[derive(Debug, Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<Identity, CredentialError>>>,
    fetches: AtomicUsize,
}

#[async_trait]
impl Provider for Scripted {
    async fn fetch(&self, _now: SystemTime) -> Result<Identity, CredentialError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Err(CredentialError::failed("script", "no more answers")))
    }
}

fn keys(id: &str, expires_at: u64) -> Result<Identity, CredentialError> {
    Ok(Identity {
        credentials: Credentials {
            access_key_id: id.into(),
            secret: Secret::new(format!("{id}-secret")),
            security_token: Some(Secret::new(format!("{id}-token"))),
        },
        expires: Some(UNIX_EPOCH + Duration::from_secs(expires_at)),
        source: "script".into(),
    })
}

struct Fixture {
    cache: Arc<CredentialCache>,
    source: Arc<Scripted>,
    now: Arc<AtomicU64>,
}

impl Fixture {
    fn new(answers: Vec<Result<Identity, CredentialError>>) -> Self {
        let source = Arc::new(Scripted {
            answers: Mutex::new(answers.into()),
            fetches: AtomicUsize::new(0),
        });
        let now = Arc::new(AtomicU64::new(1_000));
        let clock_now = Arc::clone(&now);
        let cache = CredentialCache::with_clock(
            Arc::clone(&source) as Arc<dyn Provider>,
            Arc::new(move || UNIX_EPOCH + Duration::from_secs(clock_now.load(Ordering::SeqCst))),
        );
        Fixture { cache, source, now }
    }

    fn at(&self, secs: u64) {
        self.now.store(secs, Ordering::SeqCst);
    }

    async fn id(&self) -> Result<String, StoreError> {
        self.cache.get().await.map(|c| c.access_key_id)
    }

    fn fetches(&self) -> usize {
        self.source.fetches.load(Ordering::SeqCst)
    }

    /// Let a background refresh run.
    async fn settle(&self) {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn keys_are_fetched_once_and_refreshed_a_quarter_of_their_life_early() {
    // Fetched at 1000, valid until 1400: due at 1300.
    let f = Fixture::new(vec![keys("A", 1_400), keys("B", 1_800)]);
    assert_eq!(f.id().await.unwrap(), "A");
    f.at(1_299);
    assert_eq!(f.id().await.unwrap(), "A");
    assert_eq!(f.fetches(), 1, "not due yet");
    f.at(1_300);
    assert_eq!(
        f.id().await.unwrap(),
        "A",
        "the current keys sign while the refresh runs"
    );
    f.settle().await;
    assert_eq!(f.fetches(), 2);
    assert_eq!(f.id().await.unwrap(), "B");
    let status = f.cache.status().expect("status");
    assert_eq!(
        status.expires,
        Some(UNIX_EPOCH + Duration::from_secs(1_800))
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let f = Fixture::new(vec![keys("A", 5_000)]);
    let gets: Vec<_> = (0..16)
        .map(|_| {
            let cache = Arc::clone(&f.cache);
            tokio::spawn(async move { cache.get().await.map(|c| c.access_key_id) })
        })
        .collect();
    for g in gets {
        assert_eq!(g.await.unwrap().unwrap(), "A");
    }
    assert_eq!(f.fetches(), 1, "single flight");
}

#[tokio::test]
async fn a_failed_refresh_keeps_valid_keys_backs_off_and_then_fails_transiently_after_expiry() {
    let f = Fixture::new(vec![
        keys("A", 1_400),
        Err(CredentialError::failed("metadata", "HTTP 500")),
        Err(CredentialError::failed("metadata", "HTTP 500")),
        Err(CredentialError::failed("metadata", "HTTP 500")),
        keys("C", 2_000),
    ]);
    assert_eq!(f.id().await.unwrap(), "A");
    f.at(1_350);
    assert_eq!(f.id().await.unwrap(), "A");
    f.settle().await;
    assert_eq!(f.fetches(), 2, "the refresh failed");
    assert_eq!(f.id().await.unwrap(), "A", "still valid: still used");
    f.settle().await;
    assert_eq!(f.fetches(), 2, "no new attempt within the 1 s pause");
    f.at(1_352);
    assert_eq!(f.id().await.unwrap(), "A");
    f.settle().await;
    assert_eq!(f.fetches(), 3, "tried again after the pause");
    f.at(1_400);
    // Expired, and the refresh fails again: no keys, said so.
    let err = f.id().await.expect_err("expired");
    assert_eq!(f.fetches(), 4);
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("expired") && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(
        !text.contains("A-secret") && !text.contains("A-token"),
        "{text}"
    );
    f.id().await.expect_err("still expired");
    assert_eq!(
        f.fetches(),
        4,
        "callers after a failure wait out its pause, not hammer the source"
    );
    f.at(1_410);
    assert_eq!(f.id().await.unwrap(), "C", "recovered");
}

#[tokio::test]
async fn long_lived_keys_are_never_fetched_again() {
    let f = Fixture::new(vec![Ok(Identity {
        credentials: Credentials {
            access_key_id: "K".into(),
            secret: Secret::new("s"),
            security_token: None,
        },
        expires: None,
        source: "static".into(),
    })]);
    for t in [1_000, 10_000, 100_000_000] {
        f.at(t);
        assert_eq!(f.id().await.unwrap(), "K");
    }
    assert_eq!(f.fetches(), 1);
}

#[test]
fn rpc_signature_matches_alibabas_published_example() {
    // Alibaba Cloud API reference, "Request signatures" (RPC style), DescribeRegions example:
    // AccessKeyId testid, secret testsecret.
    let params: BTreeMap<String, String> = [
        ("AccessKeyId", "testid"),
        ("Action", "DescribeRegions"),
        ("Format", "XML"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2016-02-23T12:46:24Z"),
        ("Version", "2014-05-26"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        alibaba::rpc_signature("GET", &params, "testsecret"),
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    );
}

#[tokio::test]
async fn no_source_set_up_is_an_operator_error_not_a_wait() {
    let f = Fixture::new(vec![Err(CredentialError::not_configured(
        "default chain",
        "no source gave keys",
    ))]);
    let err = f.id().await.expect_err("nothing set up");
    assert!(err.is_auth() && !err.is_transient(), "{err:?}");
    assert!(err
        .credential_hint()
        .expect("hint")
        .contains("store.credentials"));
}
