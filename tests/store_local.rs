//! The local store: the conformance suite on a temporary directory, a create-if-absent race
//! between OS processes, and the local store's own rules (keys that would escape the directory,
//! the on-disk layout, request counting).

#[path = "conformance/mod.rs"]
mod conformance;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::store::local::LocalStore;
use bucketq::store::open::open;
use bucketq::store::{
    CopyOptions, ListRequest, Op, PutOptions, RequestStats, Store, StoreError, StoreKind, WriteMode,
};
use bytes::Bytes;
use tempfile::TempDir;

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn fresh_store() -> (TempDir, Arc<dyn Store>) {
    let (dir, store, _) = fresh_store_with_stats();
    (dir, store)
}

fn fresh_store_with_stats() -> (TempDir, Arc<dyn Store>, Arc<RequestStats>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stats = Arc::new(RequestStats::default());
    let store = LocalStore::open(&dir.path().join("bucket"), Arc::clone(&stats))
        .expect("open the local store");
    (dir, Arc::new(store), stats)
}

// ---------------------------------------------------------------------------------------------
// The conformance suite.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_get_head_round_trip() {
    let (_dir, store) = fresh_store();
    conformance::put_get_head_round_trip(store, &conformance::unique_prefix("rt")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_if_absent_twice_is_already_exists() {
    let (_dir, store) = fresh_store();
    conformance::create_if_absent_twice_is_already_exists(store, "cia/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_key_is_not_found() {
    let (_dir, store) = fresh_store();
    conformance::missing_key_is_not_found(store, "missing/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_replaces_metadata() {
    let (_dir, store) = fresh_store();
    conformance::copy_replaces_metadata(store, "copy/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_onto_itself_moves_last_modified() {
    let (_dir, store) = fresh_store();
    conformance::copy_onto_itself_moves_last_modified(store, "self/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_copy_is_honoured() {
    let (_dir, store) = fresh_store();
    assert!(store.atomic_conditional_copy());
    conformance::conditional_copy_is_honoured_or_unsupported(store, "cond/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pages_across_2500_keys() {
    let (_dir, store) = fresh_store();
    conformance::list_pages_across_2500_keys(store, "paging/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_with_start_after_and_partial_prefix() {
    let (_dir, store) = fresh_store();
    conformance::list_with_start_after_and_partial_prefix(store, "after/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_is_idempotent() {
    let (_dir, store) = fresh_store();
    conformance::delete_is_idempotent(store, "del/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_many_removes_1500_keys() {
    let (_dir, store) = fresh_store();
    conformance::delete_many_removes_1500_keys(store, "many/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_keys_round_trip() {
    let (_dir, store) = fresh_store();
    conformance::odd_keys_round_trip(store, "odd/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_if_absent_race_has_one_winner() {
    let (_dir, store) = fresh_store();
    conformance::create_if_absent_race_has_one_winner(store, "race/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probe_reports_exclusive() {
    let (_dir, store) = fresh_store();
    conformance::probe_reports_exclusive(store, "probe/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_suite_runs_on_one_store_at_the_root_prefix() {
    // Every check at once on one directory, the race included: checks must not disturb each
    // other, and an empty prefix (the bucket root) must work.
    let (_dir, store) = fresh_store();
    conformance::run_all(Arc::clone(&store), "").await;
    conformance::assert_prefix_empty(&store, "").await;
}

// ---------------------------------------------------------------------------------------------
// Create-if-absent between OS processes.

/// Set in a child process: it then races instead of coordinating. Value:
/// `<dir>|<racer id>|<start, ns since the epoch>`.
const RACER_ENV: &str = "BUCKETQ_LOCAL_STORE_RACER";

/// Name of the test below, which re-runs itself as each racer.
const PROCESS_RACE_TEST: &str = "create_if_absent_race_between_processes_has_one_winner";

/// Racing processes.
const PROCESS_RACERS: usize = 8;

/// Rounds; every racer tries every round.
const PROCESS_ROUNDS: usize = 100;

/// Time between rounds; all racers wake at the same instants.
const ROUND_PERIOD: Duration = Duration::from_millis(15);

/// [`PROCESS_RACERS`] copies of this test binary open the same directory and, at the same
/// instants, create-if-absent the same key, [`PROCESS_ROUNDS`] rounds: exactly one process wins
/// each round, every other one gets `AlreadyExists`, and the stored body is the winner's.
#[test]
fn create_if_absent_race_between_processes_has_one_winner() {
    if let Ok(spec) = std::env::var(RACER_ENV) {
        race_as_child(&spec);
        return;
    }
    let (dir, _store) = fresh_store();
    let bucket = dir.path().join("bucket");
    // Far enough ahead that every child has started on a loaded two-core machine.
    let start = SystemTime::now() + Duration::from_secs(2);
    let start_ns = start
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_nanos();
    let children: Vec<_> = (0..PROCESS_RACERS)
        .map(|id| {
            Command::new(std::env::current_exe().expect("the test binary's path"))
                .args([
                    "--exact",
                    PROCESS_RACE_TEST,
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(RACER_ENV, format!("{}|{id}|{start_ns}", bucket.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a racer process")
        })
        .collect();

    let mut winners: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut losses = 0;
    let mut finished = 0;
    for child in children {
        let output = child.wait_with_output().expect("wait for a racer");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "a racer failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        for line in stdout.lines() {
            match parse_racer_line(line) {
                Some(RacerLine::Won { round, id }) => winners.entry(round).or_default().push(id),
                Some(RacerLine::Lost) => losses += 1,
                Some(RacerLine::Done) => finished += 1,
                None => {}
            }
        }
    }
    assert_eq!(finished, PROCESS_RACERS, "every racer ran all its rounds");
    let bad: Vec<_> = (0..PROCESS_ROUNDS)
        .filter(|r| winners.get(r).map_or(0, Vec::len) != 1)
        .map(|r| (r, winners.get(&r).cloned().unwrap_or_default()))
        .collect();
    assert!(bad.is_empty(), "rounds without exactly one winner: {bad:?}");
    assert_eq!(
        losses,
        PROCESS_ROUNDS * (PROCESS_RACERS - 1),
        "all others lost"
    );

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let store = LocalStore::open(&bucket, Arc::new(RequestStats::default())).expect("reopen");
    for (round, ids) in &winners {
        let got = runtime
            .block_on(store.get(&race_key(*round)))
            .expect("the raced key exists");
        assert_eq!(
            got.body,
            Bytes::from(format!("racer {}", ids[0])),
            "round {round}"
        );
    }
}

fn race_key(round: usize) -> String {
    format!("race/round-{round:03}.lock")
}

/// One line a racer prints.
enum RacerLine {
    Won { round: usize, id: usize },
    Lost,
    Done,
}

fn parse_racer_line(line: &str) -> Option<RacerLine> {
    // libtest may print "test <name> ... " on the same line before the first one.
    const TAG: &str = "bucketq-racer ";
    let rest = &line[line.find(TAG)? + TAG.len()..];
    let mut words = rest.split(' ');
    match words.next()? {
        "won" => Some(RacerLine::Won {
            round: words.next()?.parse().ok()?,
            id: words.next()?.parse().ok()?,
        }),
        "lost" => Some(RacerLine::Lost),
        "done" => Some(RacerLine::Done),
        _ => None,
    }
}

/// The child side: wake at each round's instant and try to create the round's key.
fn race_as_child(spec: &str) {
    let mut parts = spec.split('|');
    let (Some(dir), Some(id), Some(start_ns)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("malformed {RACER_ENV}: {spec:?}");
    };
    let id: usize = id.parse().expect("racer id");
    let start_ns: u64 = start_ns.parse().expect("start time");
    let start = UNIX_EPOCH + Duration::from_nanos(start_ns);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = LocalStore::open(Path::new(dir), Arc::new(RequestStats::default()))
        .expect("open the shared directory");
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    };
    for round in 0..PROCESS_ROUNDS {
        let instant = start + ROUND_PERIOD * round as u32;
        if let Ok(wait) = instant.duration_since(SystemTime::now()) {
            std::thread::sleep(wait);
        }
        let body = Bytes::from(format!("racer {id}"));
        match runtime.block_on(store.put(&race_key(round), body, &opts)) {
            Ok(_) => println!("bucketq-racer won {round} {id}"),
            Err(StoreError::AlreadyExists { .. }) => println!("bucketq-racer lost"),
            Err(e) => panic!("racer {id}, round {round}: {e:?}"),
        }
    }
    println!("bucketq-racer done");
}

// ---------------------------------------------------------------------------------------------
// The local store's own rules.

/// Keys that would leave the directory, or name the store's own files, are refused by every
/// operation, and nothing outside the store is read, written or deleted.
#[tokio::test]
async fn escaping_and_reserved_keys_are_rejected_by_every_operation() {
    let (dir, store) = fresh_store();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "do not touch").expect("write the sentinel");
    store
        .put(
            "ok/key",
            Bytes::from_static(b"fine"),
            &PutOptions::default(),
        )
        .await
        .expect("a valid key");
    let long_segment = format!("q/{}", "x".repeat(256));
    let bad_keys = [
        "",
        "../outside.txt",
        "ok/../../outside.txt",
        "/etc/passwd",
        "ok//key",
        "ok/./key",
        "ok/",
        "nul\0byte",
        ".bucketq-tmp-1-2",
        "ok/.bucketq-tmp-1-2",
        long_segment.as_str(),
    ];
    for key in bad_keys {
        let body = Bytes::from_static(b"evil");
        assert_invalid(
            key,
            store.put(key, body.clone(), &PutOptions::default()).await,
        );
        let create = PutOptions {
            mode: WriteMode::CreateIfAbsent,
            ..PutOptions::default()
        };
        assert_invalid(key, store.put(key, body, &create).await);
        assert_invalid(key, store.get(key).await);
        assert_invalid(key, store.head(key).await);
        assert_invalid(key, store.delete(key).await);
        assert_invalid(
            key,
            store.copy("ok/key", key, &CopyOptions::default()).await,
        );
        assert_invalid(
            key,
            store.copy(key, "ok/copy", &CopyOptions::default()).await,
        );
        let failed = store
            .delete_many(&[key.to_owned()])
            .await
            .expect("delete_many reports per key");
        assert!(
            matches!(failed.as_slice(), [(k, StoreError::InvalidKey { .. })] if k == key),
            "{key:?}: {failed:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&outside).expect("the sentinel survives"),
        "do not touch"
    );
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read the temp dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["bucket", "outside.txt"],
        "nothing written beside the store"
    );
    let listed = conformance::list_pages(&store, "", None, 1000)
        .await
        .concat();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["ok/key"], "only the valid key was stored");
}

fn assert_invalid<T: std::fmt::Debug>(key: &str, result: Result<T, StoreError>) {
    assert!(
        matches!(&result, Err(StoreError::InvalidKey { .. })),
        "{key:?}: expected InvalidKey, got {result:?}"
    );
}

/// Keys with `/` are files in subdirectories; a delete removes the directories it emptied, and
/// the store's directory itself stays.
#[tokio::test]
async fn keys_are_files_in_subdirectories_and_deletes_prune_empty_ones() {
    let (dir, store) = fresh_store();
    let bucket = dir.path().join("bucket");
    store
        .put(
            "mail/2024/42.task",
            Bytes::from_static(b"x"),
            &PutOptions::default(),
        )
        .await
        .expect("put");
    store
        .put(
            "mail/43.task",
            Bytes::from_static(b"y"),
            &PutOptions::default(),
        )
        .await
        .expect("put");
    assert!(bucket.join("mail/2024/42.task").is_file());
    store.delete("mail/2024/42.task").await.expect("delete");
    assert!(
        !bucket.join("mail/2024").exists(),
        "emptied directory removed"
    );
    assert!(
        bucket.join("mail").is_dir(),
        "a directory still in use stays"
    );
    store.delete("mail/43.task").await.expect("delete");
    assert!(!bucket.join("mail").exists());
    assert!(bucket.is_dir(), "the store's root is never removed");
    conformance::assert_prefix_empty(&store, "").await;
}

/// Writers and deleters working in the same directories at once never trip over a directory a
/// delete just pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_and_deletes_in_one_directory_all_succeed() {
    let (_dir, store) = fresh_store();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..150 {
                    let key = format!("churn/a/b/{w}-{i}");
                    store
                        .put(&key, Bytes::from_static(b"c"), &PutOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
                    store
                        .delete(&key)
                        .await
                        .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker panicked");
    }
    conformance::assert_prefix_empty(&store, "").await;
}

/// The store's temporary files never show in listings, even when a crash left one behind.
#[tokio::test]
async fn leftover_temporary_files_are_not_listed() {
    let (dir, store) = fresh_store();
    store
        .put("q/1.task", Bytes::from_static(b"1"), &PutOptions::default())
        .await
        .expect("put");
    let temp = dir.path().join("bucket/q/.bucketq-tmp-99-0000000000000000");
    std::fs::write(&temp, "half a write").expect("a crashed writer's file");
    let listed = conformance::list_pages(&store, "q/", None, 1000)
        .await
        .concat();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["q/1.task"]);
}

/// A file an operator copied in by hand is an object with no metadata.
#[tokio::test]
async fn a_file_copied_in_by_hand_is_an_object() {
    let (dir, store) = fresh_store();
    let demo = dir.path().join("bucket/demo");
    std::fs::create_dir_all(&demo).expect("mkdir");
    std::fs::write(demo.join("1.task"), "{\"hello\": 1}").expect("write");
    let listed = conformance::list_pages(&store, "demo/", None, 1000)
        .await
        .concat();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "demo/1.task");
    assert_eq!(listed[0].size, 12);
    conformance::assert_etag_is_md5(&listed[0].etag, b"{\"hello\": 1}", "bare file");
    let got = store.get("demo/1.task").await.expect("get");
    assert_eq!(got.body.as_ref(), b"{\"hello\": 1}");
    assert!(got.head.user_meta.is_empty());
    assert_eq!(got.head.content_type, None);
}

/// LastModified is the file's mtime, nanoseconds included, in get, head and list alike.
#[tokio::test]
async fn last_modified_is_the_file_mtime_to_the_nanosecond() {
    let (dir, store) = fresh_store();
    store
        .put("t/1", Bytes::from_static(b"1"), &PutOptions::default())
        .await
        .expect("put");
    let mtime = std::fs::metadata(dir.path().join("bucket/t/1"))
        .expect("stat")
        .modified()
        .expect("mtime");
    let head = store.head("t/1").await.expect("head");
    assert_eq!(head.meta.last_modified, mtime);
    let got = store.get("t/1").await.expect("get");
    assert_eq!(got.head.meta.last_modified, mtime);
    let listed = conformance::list_pages(&store, "t/", None, 10)
        .await
        .concat();
    assert_eq!(listed[0].last_modified, mtime);
    let page = store
        .list(&ListRequest {
            prefix: "t/".into(),
            max_keys: 10,
            ..ListRequest::default()
        })
        .await
        .expect("list");
    assert!(
        page.server_time >= mtime,
        "the listing's clock is not behind the file"
    );
}

/// A key cannot also be a leading part of another key; the refusal says so and changes
/// nothing.
#[tokio::test]
async fn a_key_and_a_key_under_it_cannot_coexist() {
    let (_dir, store) = fresh_store();
    store
        .put("a/b", Bytes::from_static(b"leaf"), &PutOptions::default())
        .await
        .expect("put");
    for mode in [WriteMode::Overwrite, WriteMode::CreateIfAbsent] {
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        assert_invalid("a", store.put("a", Bytes::from_static(b"x"), &opts).await);
        assert_invalid(
            "a/b/c",
            store.put("a/b/c", Bytes::from_static(b"x"), &opts).await,
        );
    }
    let err = store
        .get("a")
        .await
        .expect_err("a directory is not an object");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store.get("a/b/c").await.expect_err("nothing under a file");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store
        .delete("a")
        .await
        .expect("deleting a directory's name is a no-op");
    let got = store.get("a/b").await.expect("the leaf is intact");
    assert_eq!(got.body.as_ref(), b"leaf");
}

/// A create-if-absent copy onto its own source is refused (the key exists).
#[tokio::test]
async fn create_if_absent_copy_onto_itself_is_already_exists() {
    let (_dir, store) = fresh_store();
    store
        .put("k", Bytes::from_static(b"v"), &PutOptions::default())
        .await
        .expect("put");
    let err = store
        .copy(
            "k",
            "k",
            &CopyOptions {
                mode: WriteMode::CreateIfAbsent,
                ..CopyOptions::default()
            },
        )
        .await
        .expect_err("the destination exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
}

/// More than one DeleteObjects batch in one call is refused, as the real stores do.
#[tokio::test]
async fn delete_many_refuses_more_than_one_batch() {
    let (_dir, store) = fresh_store();
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let err = store.delete_many(&keys).await.expect_err("1001 keys");
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
}

/// Every call is counted under its operation and result.
#[tokio::test]
async fn every_call_is_counted_by_operation_and_result() {
    let (_dir, store, stats) = fresh_store_with_stats();
    let create = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    };
    store.put("c/1", Bytes::new(), &create).await.expect("put");
    let _ = store.put("c/1", Bytes::new(), &create).await;
    let _ = store.get("c/missing").await;
    let _ = store.head("c/1").await;
    let _ = store.get("../x").await;
    let _ = store
        .list(&ListRequest {
            prefix: "c/".into(),
            ..ListRequest::default()
        })
        .await;
    let stale = CopyOptions {
        source_if_match: Some("0".repeat(32)),
        ..CopyOptions::default()
    };
    let _ = store.copy("c/1", "c/2", &stale).await;
    let _ = store.delete("c/1").await;
    let _ = store.delete_many(&["c/3".to_owned()]).await;

    let counted: BTreeMap<(Op, String), u64> = stats.snapshot();
    let expected: BTreeMap<(Op, String), u64> = [
        ((Op::Put, "ok"), 1),
        ((Op::Put, "already_exists"), 1),
        ((Op::Get, "not_found"), 1),
        ((Op::Get, "invalid_key"), 1),
        ((Op::Head, "ok"), 1),
        ((Op::List, "ok"), 1),
        ((Op::Copy, "precondition_failed"), 1),
        ((Op::Delete, "ok"), 1),
        ((Op::DeleteMany, "ok"), 1),
    ]
    .into_iter()
    .map(|((op, label), n)| ((op, label.to_owned()), n))
    .collect();
    assert_eq!(counted, expected);
}

/// The directory is the state: a second store on the same directory (another process, a
/// restart) sees what the first wrote, and `store::open` opens the configured directory.
#[tokio::test]
async fn a_second_store_on_the_same_directory_shares_its_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let config = StoreConfig {
        kind: StoreBackend::Local,
        path: path.clone(),
        ..StoreConfig::default()
    };
    let first = open(&config, Arc::new(RequestStats::default())).expect("open from config");
    assert_eq!(first.kind(), StoreKind::Local);
    assert!(path.is_dir(), "open creates the directory");
    assert_eq!(
        Path::new(first.bucket()),
        std::fs::canonicalize(&path).expect("canonical path")
    );
    let meta = conformance::metadata(&[("bq-token", "t")]);
    first
        .put(
            "q/1.lock",
            Bytes::from_static(b"claimed"),
            &PutOptions {
                user_meta: meta.clone(),
                content_type: Some("text/plain".into()),
                ..PutOptions::default()
            },
        )
        .await
        .expect("put");
    let second = LocalStore::open(&path, Arc::new(RequestStats::default())).expect("reopen");
    let got = second
        .get("q/1.lock")
        .await
        .expect("get through the second store");
    assert_eq!(got.body.as_ref(), b"claimed");
    assert_eq!(got.head.user_meta, meta);
    assert_eq!(got.head.content_type.as_deref(), Some("text/plain"));
}
