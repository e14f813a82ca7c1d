//! The S3 store against real S3 servers over HTTP: moto with SigV4 checking on (signatures,
//! general conformance, wrong credentials) and LocalStack (the create-if-absent race: the only
//! server here whose conditional writes are atomic under load). Both are started by
//! `./scripts/test`; each test makes its own randomly named bucket so concurrent runs do not
//! meet.

#[path = "conformance/mod.rs"]
mod conformance;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::secret::Secret;
use bucketq::store::s3::S3Store;
use bucketq::store::{ListRequest, Op, PutOptions, RequestStats, Store, StoreError, WriteMode};
use bytes::Bytes;
use rand::Rng;

/// A test server's address and keys, from the environment `./scripts/test` sets.
struct Server {
    endpoint: String,
    key_id: String,
    secret: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run ./scripts/test, which starts the test servers")
    })
}

/// moto, SigV4 checking on.
fn moto() -> Server {
    Server {
        endpoint: env("BUCKETQ_TEST_S3_ENDPOINT"),
        key_id: env("BUCKETQ_TEST_S3_ACCESS_KEY_ID"),
        secret: env("BUCKETQ_TEST_S3_SECRET_ACCESS_KEY"),
    }
}

/// LocalStack: any key works.
fn localstack() -> Server {
    Server {
        endpoint: env("BUCKETQ_TEST_LOCALSTACK_ENDPOINT"),
        key_id: "test".into(),
        secret: "test".into(),
    }
}

fn config(server: &Server, bucket: &str) -> StoreConfig {
    StoreConfig {
        kind: StoreBackend::S3,
        endpoint: Some(server.endpoint.clone()),
        bucket: bucket.into(),
        region: Some("us-east-1".into()),
        path_style: true,
        access_key_id: Secret::new(server.key_id.clone()),
        access_key_secret: Secret::new(server.secret.clone()),
        ..StoreConfig::default()
    }
}

/// A bucket made for one test, with the store that reaches it and its request counters.
struct TestBucket {
    store: Arc<S3Store>,
    stats: Arc<RequestStats>,
}

impl TestBucket {
    /// Create `bq-<label>-<random>` on `server`.
    async fn create(server: &Server, label: &str) -> TestBucket {
        let nonce: u64 = rand::thread_rng().gen();
        let name = format!("bq-{label}-{nonce:016x}");
        let stats = Arc::new(RequestStats::default());
        let store = S3Store::from_config(&config(server, &name), Arc::clone(&stats))
            .expect("the test store opens");
        store
            .create_bucket()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name} on {}: {e}", server.endpoint));
        TestBucket {
            store: Arc::new(store),
            stats,
        }
    }

    fn dyn_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store) as Arc<dyn Store>
    }

    /// Empty and delete the bucket.
    async fn remove(self) {
        let mut keys = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .store
                .list(&ListRequest {
                    continuation: next.take(),
                    ..ListRequest::default()
                })
                .await
                .expect("list for cleanup");
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        let failed = self.store.delete_many(&keys).await.expect("cleanup");
        assert!(failed.is_empty(), "cleanup failures: {failed:?}");
        self.store
            .delete_bucket()
            .await
            .expect("delete the test bucket");
    }

    /// Print the request counts (the report quotes them) and return them.
    fn report(&self, what: &str) -> String {
        let counts: Vec<String> = self
            .stats
            .snapshot()
            .iter()
            .map(|((op, result), n)| format!("{op}/{result}={n}"))
            .collect();
        let line = format!("requests for {what}: {}", counts.join(" "));
        eprintln!("{line}");
        line
    }
}

fn ok_count(stats: &RequestStats, op: Op) -> u64 {
    stats
        .snapshot()
        .get(&(op, "ok".to_owned()))
        .copied()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// moto (signatures checked): the conformance suite, except the race.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_paging_across_2500_keys_sees_every_key_once_in_order() {
    let b = TestBucket::create(&moto(), "paging").await;
    conformance::list_pages_across_2500_keys(b.dyn_store(), "p/").await;
    b.report("2,500-key paging on moto");
    // 2,500 puts, each answered once; deletes in three DeleteObjects batches.
    assert_eq!(ok_count(&b.stats, Op::Put), 1 + 2500, "bucket + objects");
    assert!(ok_count(&b.stats, Op::DeleteMany) >= 3);
    // Pages of 1,000: 3 requests; then a 5-key page; then the partial prefix in sevens.
    assert!(ok_count(&b.stats, Op::List) >= 4);
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_metadata_round_trip() {
    let b = TestBucket::create(&moto(), "meta").await;
    conformance::put_get_head_round_trip(b.dyn_store(), "rt/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_copy_replaces_metadata() {
    let b = TestBucket::create(&moto(), "copy").await;
    conformance::copy_replaces_metadata(b.dyn_store(), "copy/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_copy_onto_itself_moves_last_modified() {
    let b = TestBucket::create(&moto(), "self").await;
    conformance::copy_onto_itself_moves_last_modified(b.dyn_store(), "self/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_conditional_copy_is_unsupported() {
    let b = TestBucket::create(&moto(), "ccopy").await;
    conformance::conditional_copy_is_honoured_or_unsupported(b.dyn_store(), "cc/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_start_after_and_partial_prefix() {
    let b = TestBucket::create(&moto(), "after").await;
    conformance::list_with_start_after_and_partial_prefix(b.dyn_store(), "sa/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_delete_is_idempotent() {
    let b = TestBucket::create(&moto(), "del").await;
    conformance::delete_is_idempotent(b.dyn_store(), "del/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_delete_many_removes_1500_keys() {
    let b = TestBucket::create(&moto(), "delmany").await;
    conformance::delete_many_removes_1500_keys(b.dyn_store(), "dm/").await;
    b.report("delete-many of 1,502 keys on moto");
    assert_eq!(
        ok_count(&b.stats, Op::DeleteMany),
        2,
        "1,502 keys in two DeleteObjects requests"
    );
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_odd_keys_round_trip() {
    let b = TestBucket::create(&moto(), "odd").await;
    conformance::odd_keys_round_trip(b.dyn_store(), "odd keys/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_missing_key_is_not_found() {
    let b = TestBucket::create(&moto(), "missing").await;
    conformance::missing_key_is_not_found(b.dyn_store(), "m/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_second_create_if_absent_is_already_exists() {
    let b = TestBucket::create(&moto(), "cia").await;
    conformance::create_if_absent_twice_is_already_exists(b.dyn_store(), "cia/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_probe_reports_exclusive() {
    let b = TestBucket::create(&moto(), "probe").await;
    conformance::probe_reports_exclusive(b.dyn_store(), "probe/").await;
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_now_is_the_servers_clock() {
    let b = TestBucket::create(&moto(), "now").await;
    let t = b.store.now().await.expect("now");
    let skew = SystemTime::now()
        .duration_since(t)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(5),
        "moto runs on this machine: {skew:?}"
    );
    assert_eq!(ok_count(&b.stats, Op::Head), 1, "one HEAD request");
    b.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_wrong_credentials_are_unauthenticated_at_once() {
    let server = moto();
    let b = TestBucket::create(&server, "auth").await;
    b.store
        .put("k", Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .expect("put with the right key");

    let bucket = b.store.bucket().to_owned();
    let wrong_secret = Server {
        secret: "definitely-not-the-secret-0123456789".into(),
        ..moto()
    };
    let unknown_key = Server {
        key_id: "AKIAUNKNOWNKEY000000".into(),
        ..moto()
    };
    for (server, code) in [
        (wrong_secret, "SignatureDoesNotMatch"),
        (unknown_key, "InvalidAccessKeyId"),
    ] {
        let stats = Arc::new(RequestStats::default());
        let bad =
            S3Store::from_config(&config(&server, &bucket), Arc::clone(&stats)).expect("opens");
        let started = Instant::now();
        let list = bad.list(&ListRequest::default()).await.expect_err("list");
        let get = bad.get("k").await.expect_err("get");
        let put = bad
            .put(
                "k2",
                Bytes::from_static(b"y"),
                &PutOptions {
                    mode: WriteMode::CreateIfAbsent,
                    ..PutOptions::default()
                },
            )
            .await
            .expect_err("put");
        let head = bad.head("k").await.expect_err("head");
        let elapsed = started.elapsed();
        for (what, err) in [("list", &list), ("get", &get), ("put", &put)] {
            assert!(
                matches!(err, StoreError::Unauthenticated { code: c, .. } if c == code),
                "{what} with {code}: {err:?}"
            );
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&server.secret), "{text}");
            assert!(!text.contains("AWS4-HMAC-SHA256"), "{text}");
        }
        // HEAD answers carry no body: a bare 403 is still an auth failure, not retried.
        assert!(head.is_auth(), "head with {code}: {head:?}");
        assert!(
            elapsed < Duration::from_secs(2),
            "four refused requests took {elapsed:?}: a retry loop?"
        );
        assert_eq!(
            stats.grand_total(),
            4,
            "one request each: {:?}",
            stats.snapshot()
        );
        assert_eq!(stats.total(Op::List), 1);
    }
    b.remove().await;
}

// ---------------------------------------------------------------------------------------------
// LocalStack: the race (atomic conditional writes) and the whole suite.

/// One round's outcome for one racer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The write answered 200.
    Won,
    /// The write answered "exists".
    Lost,
    /// The write was retried after an attempt the store may have applied, then found the key:
    /// resolved as the engine does, by reading the object and comparing our own token (here
    /// the body).
    AmbiguousWon,
    /// As above, and the object is someone else's.
    AmbiguousLost,
}

/// [`conformance::RACERS`] tasks write the same key with create-if-absent at once,
/// [`conformance::RACE_ROUNDS`] rounds; every round must have exactly one winner, counting an
/// `Ambiguous` answer as a win only when the stored body is the racer's own (the token check
/// the engine makes). Over HTTP a reused connection the server has just closed gives an
/// unanswered first attempt now and then, so `Ambiguous` is a legitimate answer here, unlike on
/// the local store.
async fn race_with_token_check(store: Arc<dyn Store>, prefix: &str) -> Vec<Verdict> {
    let mut all = Vec::new();
    let mut bad_rounds = Vec::new();
    for round in 0..conformance::RACE_ROUNDS {
        let key = format!("{prefix}round-{round:03}.lock");
        let barrier = Arc::new(tokio::sync::Barrier::new(conformance::RACERS));
        let racers: Vec<_> = (0..conformance::RACERS)
            .map(|racer| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                let key = key.clone();
                tokio::spawn(async move {
                    let body = Bytes::from(format!("racer {racer} round {round}"));
                    let opts = PutOptions {
                        mode: WriteMode::CreateIfAbsent,
                        ..PutOptions::default()
                    };
                    barrier.wait().await;
                    match store.put(&key, body.clone(), &opts).await {
                        Ok(_) => Verdict::Won,
                        Err(StoreError::AlreadyExists { .. }) => Verdict::Lost,
                        Err(StoreError::Ambiguous { .. }) => {
                            let stored = store.get(&key).await.expect("get after Ambiguous");
                            if stored.body == body {
                                Verdict::AmbiguousWon
                            } else {
                                Verdict::AmbiguousLost
                            }
                        }
                        Err(e) => panic!("round {round}: racer {racer} failed with {e:?}"),
                    }
                })
            })
            .collect();
        let mut verdicts = Vec::new();
        for handle in racers {
            verdicts.push(handle.await.expect("racer task panicked"));
        }
        let winners = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Won | Verdict::AmbiguousWon))
            .count();
        if winners != 1 {
            bad_rounds.push((round, verdicts.clone()));
        }
        all.extend(verdicts);
        store.delete(&key).await.expect("delete of the raced key");
    }
    assert!(
        bad_rounds.is_empty(),
        "rounds without exactly one winner: {bad_rounds:?}"
    );
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn localstack_create_if_absent_race_has_one_winner_each_round() {
    let b = TestBucket::create(&localstack(), "race").await;
    let verdicts = race_with_token_check(b.dyn_store(), "race/").await;
    let line = b.report("16 racers x 50 rounds on LocalStack");
    let rounds = conformance::RACE_ROUNDS as u64;
    let racers = conformance::RACERS as u64;
    let tally = |v: Verdict| verdicts.iter().filter(|x| **x == v).count() as u64;
    eprintln!(
        "race verdicts: won {}, lost {}, ambiguous-won {}, ambiguous-lost {}",
        tally(Verdict::Won),
        tally(Verdict::Lost),
        tally(Verdict::AmbiguousWon),
        tally(Verdict::AmbiguousLost)
    );
    assert_eq!(verdicts.len() as u64, rounds * racers);
    // Every attempt that got an answer got 200 or 412; nothing else came back.
    let snapshot = b.stats.snapshot();
    let put_results: Vec<&String> = snapshot
        .keys()
        .filter(|(op, _)| *op == Op::Put)
        .map(|(_, r)| r)
        .collect();
    assert!(
        put_results
            .iter()
            .all(|r| ["ok", "412", "error"].contains(&r.as_str())),
        "{line}"
    );
    b.remove().await;
}

/// Every conformance check except the race (which runs above with the token check).
async fn conformance_without_race(store: Arc<dyn Store>, prefix: &str) {
    let sub = |name: &str| format!("{prefix}{name}/");
    conformance::put_get_head_round_trip(Arc::clone(&store), &sub("round-trip")).await;
    conformance::create_if_absent_twice_is_already_exists(Arc::clone(&store), &sub("cia")).await;
    conformance::missing_key_is_not_found(Arc::clone(&store), &sub("missing")).await;
    conformance::copy_replaces_metadata(Arc::clone(&store), &sub("copy")).await;
    conformance::copy_onto_itself_moves_last_modified(Arc::clone(&store), &sub("self")).await;
    conformance::conditional_copy_is_honoured_or_unsupported(Arc::clone(&store), &sub("cc")).await;
    conformance::list_pages_across_2500_keys(Arc::clone(&store), &sub("paging")).await;
    conformance::list_with_start_after_and_partial_prefix(Arc::clone(&store), &sub("after")).await;
    conformance::delete_is_idempotent(Arc::clone(&store), &sub("delete")).await;
    conformance::delete_many_removes_1500_keys(Arc::clone(&store), &sub("delete-many")).await;
    conformance::odd_keys_round_trip(Arc::clone(&store), &sub("odd")).await;
    conformance::probe_reports_exclusive(Arc::clone(&store), &sub("probe")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn localstack_conformance_suite() {
    let b = TestBucket::create(&localstack(), "suite").await;
    conformance_without_race(b.dyn_store(), "suite/").await;
    b.report("the conformance suite (without the race) on LocalStack");
    b.remove().await;
}
