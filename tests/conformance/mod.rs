//! One store conformance suite, run against every backend (local, memory, S3 servers).
//!
//! Each check is a `pub async fn` taking the store as `Arc<dyn Store>` and a key prefix that no
//! other test uses (make one with [`unique_prefix`]). A check panics with a message naming what
//! the store did wrong, and leaves nothing behind under its prefix when it passes.
//!
//! # Calling it from a backend's test file
//!
//! ```ignore
//! // tests/store_s3.rs
//! #[path = "conformance/mod.rs"]
//! mod conformance;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn paging_across_2500_keys() {
//!     let store = my_store().await; // Arc<dyn Store>
//!     conformance::list_pages_across_2500_keys(store, &conformance::unique_prefix("paging")).await;
//! }
//! ```
//!
//! Use a multi-threaded runtime: the race checks need real parallelism. Checks that write many
//! keys ([`list_pages_across_2500_keys`], [`delete_many_removes_1500_keys`]) issue up to
//! [`WRITE_CONCURRENCY`] requests at once. [`copy_onto_itself_moves_last_modified`] sleeps just
//! over a second because HTTP dates have one-second resolution. The race
//! ([`create_if_absent_race_has_one_winner`]) is for stores whose conditional writes are
//! atomic under load; callers pick which backends run it.

// Each backend's test file calls only the checks that apply to it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bucketq::store::probe::{probe_create_if_absent, ProbeOutcome};
use bucketq::store::{
    CopyOptions, ListRequest, Metadata, ObjectHead, PutOptions, Store, StoreError, WriteMode,
    MAX_DELETE_BATCH, MAX_LIST_KEYS,
};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use rand::Rng;
use tokio::sync::Barrier;

/// Requests in flight at once when a check writes or deletes many keys.
pub const WRITE_CONCURRENCY: usize = 16;

/// Racers per round in [`create_if_absent_race_has_one_winner`].
pub const RACERS: usize = 16;

/// Rounds in [`create_if_absent_race_has_one_winner`].
pub const RACE_ROUNDS: usize = 50;

/// A prefix no other test run uses: `conformance-<name>-<random>/`.
pub fn unique_prefix(name: &str) -> String {
    let nonce: u64 = rand::thread_rng().gen();
    format!("conformance-{name}-{nonce:016x}/")
}

/// Run every check, each under its own sub-prefix of `prefix` (the race included).
pub async fn run_all(store: Arc<dyn Store>, prefix: &str) {
    let sub = |name: &str| format!("{prefix}{name}/");
    put_get_head_round_trip(Arc::clone(&store), &sub("round-trip")).await;
    create_if_absent_twice_is_already_exists(Arc::clone(&store), &sub("cia-twice")).await;
    missing_key_is_not_found(Arc::clone(&store), &sub("missing")).await;
    copy_replaces_metadata(Arc::clone(&store), &sub("copy-replace")).await;
    copy_onto_itself_moves_last_modified(Arc::clone(&store), &sub("copy-self")).await;
    conditional_copy_is_honoured_or_unsupported(Arc::clone(&store), &sub("copy-cond")).await;
    list_pages_across_2500_keys(Arc::clone(&store), &sub("paging")).await;
    list_with_start_after_and_partial_prefix(Arc::clone(&store), &sub("start-after")).await;
    delete_is_idempotent(Arc::clone(&store), &sub("delete")).await;
    delete_many_removes_1500_keys(Arc::clone(&store), &sub("delete-many")).await;
    odd_keys_round_trip(Arc::clone(&store), &sub("odd-keys")).await;
    create_if_absent_race_has_one_winner(Arc::clone(&store), &sub("race")).await;
    probe_reports_exclusive(Arc::clone(&store), &sub("probe")).await;
}

/// Put with metadata and content type, then get and head return the same body, ETag (hex MD5
/// of the body), size, metadata, content type, and a LastModified near the store's clock.
pub async fn put_get_head_round_trip(store: Arc<dyn Store>, prefix: &str) {
    let key = format!("{prefix}object.json");
    let body = Bytes::from_static(b"{\"to\": \"someone@example.com\", \"n\": 42}");
    let meta = metadata(&[("bq-token", "t-123"), ("bq-attempt", "2")]);
    let opts = PutOptions {
        mode: WriteMode::Overwrite,
        user_meta: meta.clone(),
        content_type: Some("application/json".into()),
    };
    let written = store
        .put(&key, body.clone(), &opts)
        .await
        .expect("put of a new key");
    if let Some(etag) = &written.etag {
        assert_etag_is_md5(etag, &body, "put's returned ETag");
    }

    let got = store.get(&key).await.expect("get of the key just put");
    assert_eq!(got.body, body, "get returns the body put");
    assert_eq!(got.head.meta.key, key, "get names the key");
    assert_eq!(
        got.head.meta.size,
        body.len() as u64,
        "get reports the size"
    );
    assert_eq!(got.head.user_meta, meta, "get returns the user metadata");
    assert_eq!(
        got.head.content_type.as_deref(),
        Some("application/json"),
        "get returns the content type"
    );
    assert_etag_is_md5(&got.head.meta.etag, &body, "get's ETag");
    assert_near_store_clock(&store, got.head.meta.last_modified, "get's LastModified").await;

    let head = store.head(&key).await.expect("head of the key just put");
    assert_eq!(head.meta.key, key);
    assert_eq!(head.meta.size, body.len() as u64, "head reports the size");
    assert_eq!(
        head.meta.etag, got.head.meta.etag,
        "head and get agree on the ETag"
    );
    assert_eq!(
        head.meta.last_modified, got.head.meta.last_modified,
        "head and get agree on LastModified"
    );
    assert_eq!(head.user_meta, meta, "head returns the user metadata");
    assert_eq!(head.content_type.as_deref(), Some("application/json"));

    // Overwrite replaces body and metadata.
    let body2 = Bytes::from_static(b"second body");
    store
        .put(&key, body2.clone(), &PutOptions::default())
        .await
        .expect("overwrite of an existing key");
    let got2 = store.get(&key).await.expect("get after overwrite");
    assert_eq!(got2.body, body2, "overwrite replaces the body");
    assert!(
        got2.head.user_meta.is_empty(),
        "overwrite without metadata drops the old metadata, got {:?}",
        got2.head.user_meta
    );
    assert_etag_is_md5(&got2.head.meta.etag, &body2, "ETag after overwrite");

    // An empty body is an object too.
    let empty_key = format!("{prefix}empty");
    store
        .put(&empty_key, Bytes::new(), &PutOptions::default())
        .await
        .expect("put of an empty body");
    let empty = store.get(&empty_key).await.expect("get of an empty object");
    assert!(empty.body.is_empty(), "empty body round trips");
    assert_eq!(empty.head.meta.size, 0);
    assert_etag_is_md5(&empty.head.meta.etag, b"", "ETag of an empty body");

    delete_all(&store, &[key, empty_key]).await;
    assert_prefix_empty(&store, prefix).await;
}

/// A second create-if-absent write of a key fails with `AlreadyExists` and leaves the first
/// body and metadata in place; create-if-absent onto a fresh key succeeds.
pub async fn create_if_absent_twice_is_already_exists(store: Arc<dyn Store>, prefix: &str) {
    let key = format!("{prefix}claim.lock");
    let first = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        user_meta: metadata(&[("bq-token", "first")]),
        content_type: None,
    };
    store
        .put(&key, Bytes::from_static(b"first"), &first)
        .await
        .expect("create-if-absent of a fresh key succeeds");

    let second = PutOptions {
        user_meta: metadata(&[("bq-token", "second")]),
        ..first.clone()
    };
    let err = store
        .put(&key, Bytes::from_static(b"second"), &second)
        .await
        .expect_err("a second create-if-absent write must be refused");
    assert!(
        matches!(&err, StoreError::AlreadyExists { key: k } if *k == key),
        "second create-if-absent write: expected AlreadyExists naming the key, got {err:?}"
    );
    let got = store.get(&key).await.expect("get after the refused write");
    assert_eq!(
        got.body.as_ref(),
        b"first",
        "the refused write left the body"
    );
    assert_eq!(
        got.head.user_meta.get("bq-token").map(String::as_str),
        Some("first"),
        "the refused write left the metadata"
    );

    // After a delete the key is absent again and can be created once more.
    store.delete(&key).await.expect("delete of the lock");
    store
        .put(&key, Bytes::from_static(b"third"), &first)
        .await
        .expect("create-if-absent after delete succeeds");
    delete_all(&store, &[key]).await;
    assert_prefix_empty(&store, prefix).await;
}

/// Get, head and copy of a missing key fail with `NotFound` naming the key.
pub async fn missing_key_is_not_found(store: Arc<dyn Store>, prefix: &str) {
    let key = format!("{prefix}never-written");
    let err = store.get(&key).await.expect_err("get of a missing key");
    assert!(
        matches!(&err, StoreError::NotFound { key: k } if *k == key),
        "get of a missing key: expected NotFound, got {err:?}"
    );
    let err = store.head(&key).await.expect_err("head of a missing key");
    assert!(
        matches!(&err, StoreError::NotFound { .. }),
        "head of a missing key: expected NotFound, got {err:?}"
    );
    let dest = format!("{prefix}copy-dest");
    let err = store
        .copy(&key, &dest, &CopyOptions::default())
        .await
        .expect_err("copy from a missing key");
    assert!(
        matches!(&err, StoreError::NotFound { .. }),
        "copy from a missing key: expected NotFound, got {err:?}"
    );
    assert_prefix_empty(&store, prefix).await;
}

/// Copy to a new key with metadata REPLACE: same body and ETag, the new metadata and content
/// type, none of the source's; the source is untouched.
pub async fn copy_replaces_metadata(store: Arc<dyn Store>, prefix: &str) {
    let source = format!("{prefix}42.task");
    let dest = format!("{prefix}42.lock");
    let body = Bytes::from_static(b"payload of task 42");
    let source_opts = PutOptions {
        mode: WriteMode::Overwrite,
        user_meta: metadata(&[("origin", "producer"), ("keep", "no")]),
        content_type: Some("text/plain".into()),
    };
    store
        .put(&source, body.clone(), &source_opts)
        .await
        .expect("put of the copy source");

    let copy_opts = CopyOptions {
        user_meta: metadata(&[("bq-token", "abc"), ("bq-owner", "host-1")]),
        content_type: Some("application/octet-stream".into()),
        ..CopyOptions::default()
    };
    let written = store
        .copy(&source, &dest, &copy_opts)
        .await
        .expect("copy to a new key");
    if let Some(etag) = &written.etag {
        assert_etag_is_md5(etag, &body, "copy's returned ETag");
    }
    let copied = store.get(&dest).await.expect("get of the copy");
    assert_eq!(copied.body, body, "the copy has the source's body");
    assert_eq!(
        copied.head.user_meta, copy_opts.user_meta,
        "the copy has exactly the REPLACE metadata"
    );
    assert_eq!(
        copied.head.content_type.as_deref(),
        Some("application/octet-stream"),
        "the copy has the REPLACE content type"
    );
    assert_etag_is_md5(&copied.head.meta.etag, &body, "the copy's ETag");

    let source_after = store.head(&source).await.expect("head of the source");
    assert_eq!(
        source_after.user_meta, source_opts.user_meta,
        "copy leaves the source's metadata alone"
    );

    // Copy over an existing destination (Overwrite) replaces it.
    let other = Bytes::from_static(b"other");
    store
        .put(&dest, other, &PutOptions::default())
        .await
        .expect("overwrite of the destination");
    store
        .copy(&source, &dest, &copy_opts)
        .await
        .expect("copy over an existing destination");
    let again = store.get(&dest).await.expect("get after the second copy");
    assert_eq!(
        again.body, body,
        "copy over an existing key replaces its body"
    );

    delete_all(&store, &[source, dest]).await;
    assert_prefix_empty(&store, prefix).await;
}

/// Copy of a key onto itself with REPLACE metadata moves LastModified forward and changes the
/// metadata while the body and ETag stay (how a lease is refreshed).
pub async fn copy_onto_itself_moves_last_modified(store: Arc<dyn Store>, prefix: &str) {
    let key = format!("{prefix}7.lock");
    let body = Bytes::from_static(b"lease holder body");
    store
        .put(
            &key,
            body.clone(),
            &PutOptions {
                user_meta: metadata(&[("bq-token", "tok"), ("bq-attempt", "1")]),
                ..PutOptions::default()
            },
        )
        .await
        .expect("put of the lock");
    let before = store.head(&key).await.expect("head before the refresh");

    // HTTP dates have one-second resolution; wait past it so any store must show a move.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed_meta = metadata(&[("bq-token", "tok"), ("bq-attempt", "2")]);
    store
        .copy(
            &key,
            &key,
            &CopyOptions {
                user_meta: refreshed_meta.clone(),
                ..CopyOptions::default()
            },
        )
        .await
        .expect("copy onto itself with REPLACE");
    let after = store.get(&key).await.expect("get after the refresh");
    assert!(
        after.head.meta.last_modified > before.meta.last_modified,
        "copy onto itself must move LastModified: before {:?}, after {:?}",
        before.meta.last_modified,
        after.head.meta.last_modified
    );
    assert_eq!(
        after.head.user_meta, refreshed_meta,
        "metadata was replaced"
    );
    assert_eq!(after.body, body, "the body is unchanged");
    assert_eq!(
        after.head.meta.etag.to_ascii_lowercase(),
        before.meta.etag.to_ascii_lowercase(),
        "the ETag is unchanged"
    );
    delete_all(&store, &[key]).await;
    assert_prefix_empty(&store, prefix).await;
}

/// On stores with [`Store::atomic_conditional_copy`]: a copy whose `source_if_match` does not
/// match fails with `PreconditionFailed`, one that matches succeeds, and a create-if-absent copy
/// onto an existing key fails with `AlreadyExists` without changing it. On other stores a
/// create-if-absent copy is refused with `Unsupported` rather than silently ignored.
pub async fn conditional_copy_is_honoured_or_unsupported(store: Arc<dyn Store>, prefix: &str) {
    let source = format!("{prefix}9.task");
    let dest = format!("{prefix}9.lock");
    let body = Bytes::from_static(b"task nine");
    store
        .put(&source, body.clone(), &PutOptions::default())
        .await
        .expect("put of the copy source");
    let etag = store
        .head(&source)
        .await
        .expect("head of the source")
        .meta
        .etag;

    if !store.atomic_conditional_copy() {
        let err = store
            .copy(
                &source,
                &dest,
                &CopyOptions {
                    mode: WriteMode::CreateIfAbsent,
                    ..CopyOptions::default()
                },
            )
            .await
            .expect_err("a create-if-absent copy on a store without atomic conditional copy");
        assert!(
            matches!(err, StoreError::Unsupported { .. }),
            "create-if-absent copy without atomic conditional copy: expected Unsupported, got {err:?}"
        );
        delete_all(&store, &[source, dest]).await;
        assert_prefix_empty(&store, prefix).await;
        return;
    }

    let stale = md5_hex(b"some older body");
    let err = store
        .copy(
            &source,
            &dest,
            &CopyOptions {
                mode: WriteMode::CreateIfAbsent,
                source_if_match: Some(stale),
                ..CopyOptions::default()
            },
        )
        .await
        .expect_err("copy with a stale source ETag");
    assert!(
        matches!(&err, StoreError::PreconditionFailed { .. }),
        "copy with a stale source_if_match: expected PreconditionFailed, got {err:?}"
    );
    let err = store
        .head(&dest)
        .await
        .expect_err("the failed copy wrote nothing");
    assert!(matches!(err, StoreError::NotFound { .. }), "got {err:?}");

    let claim = CopyOptions {
        mode: WriteMode::CreateIfAbsent,
        source_if_match: Some(etag.clone()),
        user_meta: metadata(&[("bq-token", "winner")]),
        content_type: None,
    };
    store
        .copy(&source, &dest, &claim)
        .await
        .expect("conditional copy with the current ETag onto a fresh key");
    let lock = store.get(&dest).await.expect("get of the claimed lock");
    assert_eq!(lock.body, body);
    assert_eq!(
        lock.head.user_meta.get("bq-token").map(String::as_str),
        Some("winner")
    );

    let loser = CopyOptions {
        user_meta: metadata(&[("bq-token", "loser")]),
        ..claim.clone()
    };
    let err = store
        .copy(&source, &dest, &loser)
        .await
        .expect_err("a create-if-absent copy onto an existing key");
    assert!(
        matches!(&err, StoreError::AlreadyExists { key } if *key == dest),
        "create-if-absent copy onto an existing key: expected AlreadyExists naming the destination, got {err:?}"
    );
    let lock = store
        .head(&dest)
        .await
        .expect("head after the refused copy");
    assert_eq!(
        lock.user_meta.get("bq-token").map(String::as_str),
        Some("winner"),
        "the refused copy left the winner's lock alone"
    );
    delete_all(&store, &[source, dest]).await;
    assert_prefix_empty(&store, prefix).await;
}

/// 2,500 keys in a mix of shapes (`0100`, `01/0105`, `01-0106`, `01.0107`: `-` and `.` sort
/// before `/`, digits after) listed in pages of 1,000: every key exactly once, in byte order,
/// every page reachable, sizes and ETags right. Then a prefix that ends mid-name, paged by 7.
pub async fn list_pages_across_2500_keys(store: Arc<dyn Store>, prefix: &str) {
    let base = format!("{prefix}page/");
    let expected: Vec<String> = (0..2500)
        .map(|i| format!("{base}{}", paging_name(i)))
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    let distinct: BTreeSet<&String> = sorted.iter().collect();
    assert_eq!(distinct.len(), 2500, "the generated names are distinct");
    put_many(&store, &sorted).await;

    let pages = list_pages(&store, &base, None, MAX_LIST_KEYS).await;
    assert_eq!(
        pages.len(),
        3,
        "2,500 keys in pages of 1,000 make 3 pages, got {:?}",
        pages.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(pages.iter().all(|p| p.len() <= MAX_LIST_KEYS as usize));
    let listed: Vec<String> = pages.concat().into_iter().map(|o| o.key).collect();
    assert_key_lists_equal(&listed, &sorted, "paged listing of 2,500 keys");

    // Sizes and ETags in the listing describe the bodies.
    let page = store
        .list(&ListRequest {
            prefix: base.clone(),
            max_keys: 5,
            ..ListRequest::default()
        })
        .await
        .expect("a short page");
    assert_eq!(page.objects.len(), 5);
    assert!(page.next.is_some(), "a truncated page has a cursor");
    for object in &page.objects {
        assert_eq!(
            object.size,
            object.key.len() as u64,
            "size of {}",
            object.key
        );
        assert_etag_is_md5(&object.etag, object.key.as_bytes(), "listed ETag");
    }

    // A prefix that ends in the middle of a name, paged in sevens.
    let partial = format!("{base}01");
    let expected_partial: Vec<String> = sorted
        .iter()
        .filter(|k| k.starts_with(&partial))
        .cloned()
        .collect();
    assert!(
        expected_partial.len() > 7 * 3,
        "the partial prefix spans several pages"
    );
    let listed_partial: Vec<String> = list_pages(&store, &partial, None, 7)
        .await
        .concat()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_key_lists_equal(
        &listed_partial,
        &expected_partial,
        "listing of a partial prefix",
    );

    delete_in_batches(&store, &sorted).await;
    assert_prefix_empty(&store, prefix).await;
}

/// `start_after` resumes strictly after a key (existing or not), combines with continuation,
/// and a prefix matching nothing lists nothing.
pub async fn list_with_start_after_and_partial_prefix(store: Arc<dyn Store>, prefix: &str) {
    let keys: Vec<String> = (0..40)
        .map(|i| format!("{prefix}s/{}", paging_name(i)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    put_many(&store, &sorted).await;

    let base = format!("{prefix}s/");
    for split in [0usize, 1, 17, 38, 39] {
        let after = sorted[split].clone();
        let listed: Vec<String> = list_pages(&store, &base, Some(after.clone()), 6)
            .await
            .concat()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_key_lists_equal(
            &listed,
            &sorted[split + 1..],
            &format!("listing after {after:?}"),
        );
    }
    // A start_after that is not itself a key.
    let between = format!("{}~", sorted[9]);
    let listed: Vec<String> = list_pages(&store, &base, Some(between.clone()), 1000)
        .await
        .concat()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let expected: Vec<String> = sorted.iter().filter(|k| **k > between).cloned().collect();
    assert_key_lists_equal(&listed, &expected, "listing after a non-key");

    let nothing = store
        .list(&ListRequest {
            prefix: format!("{prefix}no-such-prefix/"),
            max_keys: 10,
            ..ListRequest::default()
        })
        .await
        .expect("listing of an empty prefix");
    assert!(nothing.objects.is_empty(), "an unused prefix lists nothing");
    assert!(nothing.next.is_none(), "an empty listing has no next page");

    delete_in_batches(&store, &sorted).await;
    assert_prefix_empty(&store, prefix).await;
}

/// Delete removes a key; deleting it again, or a key never written, succeeds.
pub async fn delete_is_idempotent(store: Arc<dyn Store>, prefix: &str) {
    let key = format!("{prefix}gone");
    store
        .put(&key, Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .expect("put");
    store.delete(&key).await.expect("delete of an existing key");
    let err = store.head(&key).await.expect_err("head after delete");
    assert!(matches!(err, StoreError::NotFound { .. }), "got {err:?}");
    store
        .delete(&key)
        .await
        .expect("second delete of the same key");
    store
        .delete(&format!("{prefix}never-written"))
        .await
        .expect("delete of a key never written");
    assert_prefix_empty(&store, prefix).await;
}

/// 1,500 keys (some nested), deleted by `delete_many` in batches of at most 1,000 together with
/// keys that never existed: no failures reported and nothing left.
pub async fn delete_many_removes_1500_keys(store: Arc<dyn Store>, prefix: &str) {
    let keys: Vec<String> = (0..1500)
        .map(|i| format!("{prefix}d/{}", paging_name(i)))
        .collect();
    put_many(&store, &keys).await;
    let mut with_absent = keys.clone();
    with_absent.push(format!("{prefix}d/absent-1"));
    with_absent.push(format!("{prefix}d/absent/2"));
    let mut batches = 0;
    for batch in with_absent.chunks(MAX_DELETE_BATCH) {
        let failed = store.delete_many(batch).await.expect("delete_many");
        assert!(
            failed.is_empty(),
            "delete_many reported failures: {failed:?}"
        );
        batches += 1;
    }
    assert_eq!(batches, 2, "1,502 keys take two batches");
    assert_prefix_empty(&store, prefix).await;
}

/// Keys with spaces, `+`, unicode and `/` round trip through put, get, head, copy, list and
/// delete under their own names.
pub async fn odd_keys_round_trip(store: Arc<dyn Store>, prefix: &str) {
    let names = [
        "with space.task",
        "plus+sign.task",
        "both + and space",
        "测试/任务.task",
        "deep/a/b/c/d.task",
        "naïve café.task",
    ];
    let keys: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
    for key in &keys {
        store
            .put(
                key,
                Bytes::copy_from_slice(key.as_bytes()),
                &PutOptions {
                    user_meta: metadata(&[("name", "odd")]),
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("put of {key:?}: {e}"));
    }
    for key in &keys {
        let got = store
            .get(key)
            .await
            .unwrap_or_else(|e| panic!("get of {key:?}: {e}"));
        assert_eq!(got.body.as_ref(), key.as_bytes(), "body of {key:?}");
        assert_eq!(got.head.meta.key, *key, "get names {key:?}");
        let head = store
            .head(key)
            .await
            .unwrap_or_else(|e| panic!("head of {key:?}: {e}"));
        assert_eq!(
            head.user_meta,
            metadata(&[("name", "odd")]),
            "metadata of {key:?}"
        );
    }
    let mut sorted = keys.clone();
    sorted.sort();
    let listed: Vec<String> = list_pages(&store, prefix, None, 1000)
        .await
        .concat()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_key_lists_equal(&listed, &sorted, "listing of odd keys");

    let copy_dest = format!("{prefix}复制 + copy/of it");
    store
        .copy(&keys[3], &copy_dest, &CopyOptions::default())
        .await
        .expect("copy between odd keys");
    let copied = store.get(&copy_dest).await.expect("get of the odd copy");
    assert_eq!(copied.body.as_ref(), keys[3].as_bytes());

    let mut all = keys.clone();
    all.push(copy_dest);
    delete_all(&store, &all).await;
    assert_prefix_empty(&store, prefix).await;
}

/// [`RACERS`] tasks send a create-if-absent write of the same key at once, [`RACE_ROUNDS`]
/// rounds: exactly one wins each round, every loser gets `AlreadyExists`, and the stored body is
/// the winner's.
pub async fn create_if_absent_race_has_one_winner(store: Arc<dyn Store>, prefix: &str) {
    let mut bad_rounds = Vec::new();
    for round in 0..RACE_ROUNDS {
        let key = format!("{prefix}round-{round:03}.lock");
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|racer| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                let key = key.clone();
                tokio::spawn(async move {
                    let opts = PutOptions {
                        mode: WriteMode::CreateIfAbsent,
                        ..PutOptions::default()
                    };
                    barrier.wait().await;
                    let body = Bytes::from(format!("racer {racer}"));
                    (racer, store.put(&key, body, &opts).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for handle in racers {
            let (racer, result) = handle.await.expect("racer task panicked");
            match result {
                Ok(_) => winners.push(racer),
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => panic!("round {round}: racer {racer} failed with {e:?}"),
            }
        }
        if winners.len() != 1 {
            bad_rounds.push((round, winners));
            continue;
        }
        let got = store.get(&key).await.expect("get of the raced key");
        assert_eq!(
            got.body,
            Bytes::from(format!("racer {}", winners[0])),
            "round {round}: the stored body is the winner's"
        );
        store.delete(&key).await.expect("delete of the raced key");
    }
    assert!(
        bad_rounds.is_empty(),
        "rounds without exactly one winner (round, winners): {bad_rounds:?}"
    );
    assert_prefix_empty(&store, prefix).await;
}

/// The create-if-absent probe finds the store exclusive and cleans up after itself.
pub async fn probe_reports_exclusive(store: Arc<dyn Store>, prefix: &str) {
    let outcome = probe_create_if_absent(store.as_ref(), prefix)
        .await
        .expect("the probe runs");
    assert_eq!(outcome, ProbeOutcome::Exclusive, "probe outcome: {outcome}");
    assert_prefix_empty(&store, prefix).await;
}

// ---------------------------------------------------------------------------------------------
// Helpers (public so backend test files can reuse them).

/// Build user metadata from pairs.
pub fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Lower-case hex MD5, the ETag of a simple upload.
pub fn md5_hex(body: &[u8]) -> String {
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Assert an ETag is the MD5 of `body` (OSS spells it upper-case; quotes are not allowed).
pub fn assert_etag_is_md5(etag: &str, body: &[u8], what: &str) {
    assert_eq!(
        etag.to_ascii_lowercase(),
        md5_hex(body),
        "{what}: ETag must be the hex MD5 of the body, unquoted"
    );
}

/// Assert a time is within a minute of the store's clock.
pub async fn assert_near_store_clock(store: &Arc<dyn Store>, t: SystemTime, what: &str) {
    let now = store.now().await.expect("the store's clock");
    let gap = now.duration_since(t).unwrap_or_else(|e| e.duration());
    assert!(
        gap < Duration::from_secs(60),
        "{what} {t:?} is {gap:?} away from the store's clock {now:?}"
    );
}

/// Every object under `prefix`, following continuation cursors, as pages of at most
/// `max_keys`. Panics if a cursor repeats (a listing that never ends).
pub async fn list_pages(
    store: &Arc<dyn Store>,
    prefix: &str,
    start_after: Option<String>,
    max_keys: u32,
) -> Vec<Vec<bucketq::store::ObjectMeta>> {
    let mut pages = Vec::new();
    let mut continuation: Option<String> = None;
    let mut seen_cursors = BTreeSet::new();
    loop {
        let page = store
            .list(&ListRequest {
                prefix: prefix.to_owned(),
                start_after: start_after.clone(),
                continuation: continuation.clone(),
                max_keys,
            })
            .await
            .unwrap_or_else(|e| panic!("list of {prefix:?}: {e}"));
        assert!(
            page.objects.len() <= max_keys as usize,
            "a page holds at most max_keys ({max_keys}) objects, got {}",
            page.objects.len()
        );
        for object in &page.objects {
            assert!(
                object.key.starts_with(prefix),
                "listed key {:?} is outside prefix {prefix:?}",
                object.key
            );
        }
        let next = page.next.clone();
        pages.push(page.objects);
        match next {
            None => return pages,
            Some(cursor) => {
                assert!(
                    seen_cursors.insert(cursor.clone()),
                    "listing of {prefix:?} repeated the cursor {cursor:?}"
                );
                continuation = Some(cursor);
            }
        }
    }
}

/// Assert a listed sequence is exactly the expected one, with a readable diff on failure.
pub fn assert_key_lists_equal(listed: &[String], expected: &[String], what: &str) {
    if listed == expected {
        return;
    }
    let listed_set: BTreeSet<&String> = listed.iter().collect();
    let expected_set: BTreeSet<&String> = expected.iter().collect();
    let missing: Vec<_> = expected_set.difference(&listed_set).take(10).collect();
    let extra: Vec<_> = listed_set.difference(&expected_set).take(10).collect();
    let first_out_of_place = listed
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .map(|i| (i, listed[i].clone(), expected[i].clone()));
    panic!(
        "{what}: listed {} keys, expected {}; missing (first 10) {missing:?}; extra {extra:?}; \
         first difference (index, listed, expected) {first_out_of_place:?}",
        listed.len(),
        expected.len()
    );
}

/// Assert nothing is left under `prefix`.
pub async fn assert_prefix_empty(store: &Arc<dyn Store>, prefix: &str) {
    let page = store
        .list(&ListRequest {
            prefix: prefix.to_owned(),
            max_keys: 10,
            ..ListRequest::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list of {prefix:?}: {e}"));
    let left: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert!(left.is_empty(), "keys left under {prefix:?}: {left:?}");
}

/// Put each key with its own name as body, [`WRITE_CONCURRENCY`] at a time.
pub async fn put_many(store: &Arc<dyn Store>, keys: &[String]) {
    stream::iter(keys.iter().cloned())
        .map(|key| {
            let store = Arc::clone(store);
            async move {
                let body = Bytes::from(key.clone().into_bytes());
                store
                    .put(&key, body, &PutOptions::default())
                    .await
                    .map_err(|e| format!("put of {key:?}: {e}"))
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Delete keys with `delete_many` in batches of at most [`MAX_DELETE_BATCH`].
pub async fn delete_in_batches(store: &Arc<dyn Store>, keys: &[String]) {
    for batch in keys.chunks(MAX_DELETE_BATCH) {
        let failed = store.delete_many(batch).await.expect("delete_many");
        assert!(failed.is_empty(), "delete_many failures: {failed:?}");
    }
}

/// Delete keys one by one.
pub async fn delete_all(store: &Arc<dyn Store>, keys: &[String]) {
    for key in keys {
        store
            .delete(key)
            .await
            .unwrap_or_else(|e| panic!("delete of {key:?}: {e}"));
    }
}

/// The i-th name of the paging checks: four shapes so that `-`, `.` and digits (sorting before
/// and after `/`) interleave with nested keys.
pub fn paging_name(i: usize) -> String {
    let group = i % 50;
    match i % 4 {
        0 => format!("{i:04}"),
        1 => format!("{group:02}/{i:04}"),
        2 => format!("{group:02}-{i:04}"),
        _ => format!("{group:02}.{i:04}"),
    }
}

/// Head helper for callers that only need metadata.
pub async fn head_of(store: &Arc<dyn Store>, key: &str) -> ObjectHead {
    store
        .head(key)
        .await
        .unwrap_or_else(|e| panic!("head of {key:?}: {e}"))
}
