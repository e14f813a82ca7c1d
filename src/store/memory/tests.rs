use std::time::Duration;

use super::*;

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn create() -> PutOptions {
    PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    }
}

#[tokio::test]
async fn fail_next_fails_that_many_requests_before_they_apply() {
    let store = MemoryStore::new(Arc::default());
    store.fail_next(2);
    for _ in 0..2 {
        let err = store
            .put("a", Bytes::from_static(b"x"), &PutOptions::default())
            .await
            .expect_err("injected failure");
        assert!(err.is_transient(), "{err:?}");
    }
    assert!(
        store.object("a").is_none(),
        "a refused request applied nothing"
    );
    store
        .put("a", Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .expect("third request goes through");
    assert_eq!(store.stats().total(Op::Put), 3);
    assert_eq!(store.stats().snapshot()[&(Op::Put, "503".to_owned())], 2);
}

#[tokio::test]
async fn a_lost_answer_after_a_winning_create_is_reported_ambiguous() {
    let store = MemoryStore::new(Arc::default());
    let mut first = true;
    store.set_fault_hook(Box::new(move |_| {
        if std::mem::take(&mut first) {
            Fault::RetriedAfterLoss
        } else {
            Fault::None
        }
    }));
    let err = store
        .put("l", Bytes::from_static(b"x"), &create())
        .await
        .expect_err("the retry finds the first write");
    assert!(
        matches!(err, StoreError::Ambiguous { ref key } if key == "l"),
        "{err:?}"
    );
    assert!(store.object("l").is_some(), "the first attempt won");
    // A plain losing create stays AlreadyExists.
    let err = store
        .put("l", Bytes::from_static(b"y"), &create())
        .await
        .expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
}

#[tokio::test]
async fn fail_after_applies_the_request_and_reports_transient() {
    let store = MemoryStore::new(Arc::default());
    store.set_fault_hook(Box::new(|_| Fault::FailAfter));
    let err = store
        .put("k", Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .expect_err("lost answer");
    assert!(err.is_transient());
    assert!(store.object("k").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_crashed_client_never_answers_again_but_others_do() {
    let store = MemoryStore::new(Arc::default());
    let other = store.client("other", Arc::default(), 1);
    store.set_fault_hook(Box::new(|info| {
        if info.seq == 1 {
            Fault::CrashAfter
        } else {
            Fault::None
        }
    }));
    store
        .put("a", Bytes::from_static(b"1"), &PutOptions::default())
        .await
        .expect("first request");
    let second = tokio::time::timeout(
        Duration::from_secs(60),
        store.put("b", Bytes::from_static(b"2"), &PutOptions::default()),
    )
    .await;
    assert!(second.is_err(), "a crashing request never answers");
    assert!(store.crashed());
    assert!(store.object("b").is_some(), "crash-after applied the write");
    let third = tokio::time::timeout(Duration::from_secs(60), store.head("a")).await;
    assert!(third.is_err(), "nor does any later request");
    other.head("a").await.expect("another client is unaffected");
}

#[tokio::test]
async fn last_modified_comes_from_the_controllable_clock() {
    let store = MemoryStore::builder().clock(MemoryClock::manual()).build();
    let t0 = store.clock().now();
    store
        .put("k", Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .expect("put");
    store.clock().advance(Duration::from_millis(2_500));
    let page = store.list(&ListRequest::default()).await.expect("list");
    assert_eq!(page.server_time, t0 + Duration::from_millis(2_500));
    assert_eq!(page.objects[0].last_modified, t0);
    store
        .copy("k", "k", &CopyOptions::default())
        .await
        .expect("copy onto itself");
    let head = store.head("k").await.expect("head");
    assert_eq!(
        head.meta.last_modified,
        t0 + Duration::from_secs(2),
        "whole seconds"
    );
    let full = store.object("k").expect("object");
    assert_eq!(
        full.head.meta.last_modified,
        t0 + Duration::from_millis(2_500)
    );
}

#[tokio::test]
async fn s3_mode_refuses_create_if_absent_copies_but_honours_source_if_match() {
    let store = MemoryStore::builder().atomic_copy(false).build();
    store.insert("s", Bytes::from_static(b"body"), Metadata::new(), None);
    let err = store
        .copy(
            "s",
            "d",
            &CopyOptions {
                mode: WriteMode::CreateIfAbsent,
                ..CopyOptions::default()
            },
        )
        .await
        .expect_err("unsupported");
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
    let err = store
        .copy(
            "s",
            "d",
            &CopyOptions {
                source_if_match: Some("0000".into()),
                ..CopyOptions::default()
            },
        )
        .await
        .expect_err("stale etag");
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err:?}"
    );
    let etag = store.object("s").expect("s").head.meta.etag;
    store
        .copy(
            "s",
            "d",
            &CopyOptions {
                source_if_match: Some(format!("\"{etag}\"")),
                user_meta: meta(&[("bq-token", "t")]),
                ..CopyOptions::default()
            },
        )
        .await
        .expect("matching etag");
    assert_eq!(
        store.object("d").expect("d").head.user_meta["bq-token"],
        "t"
    );
}

#[tokio::test]
async fn listing_pages_reach_every_key_once() {
    let store = MemoryStore::new(Arc::default());
    for i in 0..25 {
        store.insert(&format!("q/{i:03}"), Bytes::new(), Metadata::new(), None);
    }
    store.insert("r/zzz", Bytes::new(), Metadata::new(), None);
    let mut seen = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .list(&ListRequest {
                prefix: "q/".into(),
                continuation: continuation.clone(),
                max_keys: 10,
                ..ListRequest::default()
            })
            .await
            .expect("list");
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(next) => continuation = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("q/{i:03}")).collect();
    assert_eq!(seen, expected);
    let after = store
        .list(&ListRequest {
            prefix: "q/".into(),
            start_after: Some("q/020".into()),
            ..ListRequest::default()
        })
        .await
        .expect("list");
    assert_eq!(after.objects.len(), 4);
    assert!(after.next.is_none());
}

#[tokio::test]
async fn delete_many_counts_one_request_and_refuses_oversized_batches() {
    let store = MemoryStore::new(Arc::default());
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    for k in &keys {
        store.insert(k, Bytes::new(), Metadata::new(), None);
    }
    let failed = store.delete_many(&keys).await.expect("batch");
    assert!(failed.is_empty());
    assert!(store.keys("").is_empty());
    assert_eq!(store.stats().grand_total(), 1);
    let too_many: Vec<String> = (0..=MAX_DELETE_BATCH).map(|i| i.to_string()).collect();
    assert!(store.delete_many(&too_many).await.is_err());
}

#[tokio::test]
async fn trace_records_requests_in_order() {
    let store = MemoryStore::new(Arc::default());
    store.enable_trace();
    store.put("a", Bytes::new(), &create()).await.expect("put");
    let _ = store.put("a", Bytes::new(), &create()).await;
    let trace = store.trace();
    assert_eq!(trace.len(), 2);
    assert_eq!(trace[0].result, "ok");
    assert_eq!(trace[1].result, "409");
    assert_eq!(trace[1].op, Op::Put);
}

#[tokio::test]
async fn a_swallowed_write_answers_ok_and_changes_nothing() {
    let store = MemoryStore::new(Arc::default());
    store.insert("keep", Bytes::from_static(b"x"), Metadata::new(), None);
    store.set_fault_hook(Box::new(|_| Fault::Swallow));
    store
        .put("new", Bytes::from_static(b"y"), &PutOptions::default())
        .await
        .expect("a lying store says yes");
    store.delete("keep").await.expect("yes again");
    assert_eq!(store.keys(""), vec!["keep".to_owned()]);
}

#[tokio::test]
async fn a_broken_store_can_ignore_create_if_absent() {
    let store = MemoryStore::builder()
        .honour_create_if_absent(false)
        .build();
    store
        .put("k", Bytes::from_static(b"1"), &create())
        .await
        .expect("first");
    store
        .put("k", Bytes::from_static(b"2"), &create())
        .await
        .expect("a broken store lets the second create through");
    assert_eq!(store.object("k").expect("k").body.as_ref(), b"2");
}
