//! The OSS store through the real transport against a canned OSS on 127.0.0.1 (OSS itself
//! cannot be reached from here). Each test checks the request that arrived (method, path,
//! every header and query parameter that matters, and a signature recomputed from the wire
//! form) and how the store read the answer: url-encoded listing pages, `x-oss-err` HEAD errors,
//! 409 `FileAlreadyExists`, copy-source 404/412, versioning, DeleteMultipleObjects results.
//! The request shapes follow `shared/reference/oss-s3-api.md` §3; the pure request builders are
//! also checked against its signature vectors in `src/store/oss.rs`.

#[path = "support/fake_http.rs"]
mod fake_http;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bucketq::config::{Addressing, OssSignature, StoreBackend, StoreConfig};
use bucketq::secret::Secret;
use bucketq::store::oss::OssStore;
use bucketq::store::sign::{self, Credentials, RequestParts};
use bucketq::store::transport::{RetryPolicy, TransportConfig};
use bucketq::store::{
    CopyOptions, ListRequest, Metadata, Op, PutOptions, RequestStats, Store, StoreError,
    Versioning, WriteMode,
};
use bytes::Bytes;
use fake_http::{decode, FakeServer, Recorded, Reply};

const BUCKET: &str = "examplebucket";
const KEY_ID: &str = "LTAI5tFakeKeyId";
const SECRET: &str = "FakeOssSecret0123456789abcdef";
const REGION: &str = "cn-hangzhou";

/// `[store]` for the canned server, signed as `signature`, addressed as `addressing`.
fn config_for(server: &FakeServer, signature: OssSignature, addressing: Addressing) -> StoreConfig {
    StoreConfig {
        kind: StoreBackend::Oss,
        endpoint: Some(server.endpoint()),
        bucket: BUCKET.into(),
        region: Some(REGION.into()),
        access_key_id: Secret::new(KEY_ID),
        access_key_secret: Secret::new(SECRET),
        signature,
        addressing,
        ..StoreConfig::default()
    }
}

fn store_for(server: &FakeServer, signature: OssSignature) -> (OssStore, Arc<RequestStats>) {
    // The canned server stands for a custom domain bound to the bucket; an IP endpoint would
    // otherwise be addressed path-style (see `an_ip_endpoint_is_addressed_path_style`).
    let cfg = config_for(server, signature, Addressing::Cname);
    let transport = TransportConfig {
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        },
        ..TransportConfig::new(Duration::from_secs(5), 3)
    };
    let stats = Arc::new(RequestStats::default());
    let store = OssStore::with_transport(&cfg, transport, Arc::clone(&stats)).expect("opens");
    (store, stats)
}

fn creds() -> Credentials {
    Credentials {
        access_key_id: KEY_ID.into(),
        secret: Secret::new(SECRET),
        security_token: None,
    }
}

/// `20250301T080000Z` as a time.
fn parse_basic_iso(s: &str) -> SystemTime {
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).expect("x-oss-date is ISO 8601 basic")
}

/// Recompute the request's signature from what arrived on the wire (path and query decoded
/// back, headers as received) and compare with the `Authorization` it carried: proves the wire
/// form and the signed form agree.
fn assert_signed(req: &Recorded, signature: OssSignature) {
    // Path-style requests carry the bucket as the first segment; the key is the rest.
    let path_style_prefix = format!("/{BUCKET}/");
    let key = decode(
        req.path()
            .strip_prefix(&path_style_prefix)
            .unwrap_or_else(|| req.path().trim_start_matches('/')),
    );
    let query = req.query();
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| n != "authorization")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let parts = RequestParts {
        method: &req.method,
        bucket: Some(BUCKET),
        key: &key,
        path: req.path(),
        query: &query,
        headers: &headers,
    };
    let expected = match signature {
        OssSignature::V4 => {
            let date = req.header("x-oss-date").expect("V4 sends x-oss-date");
            assert_eq!(req.header("x-oss-content-sha256"), Some("UNSIGNED-PAYLOAD"));
            sign::oss_v4::sign(&parts, &creds(), REGION, parse_basic_iso(date))
        }
        OssSignature::V1 => {
            let date = req.header("date").expect("V1 sends Date");
            let t = httpdate::parse_http_date(date).expect("RFC 1123 date");
            sign::oss_v1::sign(&parts, &creds(), t)
        }
    };
    let auth = expected
        .into_iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v)
        .expect("an authorization header");
    assert_eq!(
        req.header("authorization"),
        Some(auth.as_str()),
        "{} {}: signature does not match the wire form",
        req.method,
        req.target
    );
    match signature {
        OssSignature::V4 => assert!(auth.starts_with(&format!(
            "OSS4-HMAC-SHA256 Credential={KEY_ID}/{}/{REGION}/oss/aliyun_v4_request,Signature=",
            &req.header("x-oss-date").expect("date")[..8]
        ))),
        OssSignature::V1 => assert!(auth.starts_with(&format!("OSS {KEY_ID}:"))),
    }
}

fn oss_err_header(code: &str) -> String {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{code} (fake)</Message>\n  <RequestId>6556E3AED11E553933CCDEDF</RequestId>\n  <HostId>{BUCKET}.oss-cn-hangzhou.aliyuncs.com</HostId>\n  <EC>0026-00000001</EC>\n</Error>"
    );
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn count(stats: &RequestStats, op: Op, result: &str) -> u64 {
    stats
        .snapshot()
        .get(&(op, result.to_owned()))
        .copied()
        .unwrap_or(0)
}

/// Page 1 of a url-encoded listing (shape of Go SDK v2 `testMockListObjectsV2SuccessCases`).
const LIST_PAGE_1: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
  <Name>examplebucket</Name>
  <Prefix>mail%2F</Prefix>
  <MaxKeys>1000</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>ChRtYWlsL2EgYitjLnRhc2s%3D</NextContinuationToken>
  <KeyCount>2</KeyCount>
  <Contents>
    <Key>mail/0001.task</Key>
    <LastModified>2020-06-22T11:42:32.000Z</LastModified>
    <ETag>"5B3C1A2E053D763E1B002CC607C5A0FE"</ETag>
    <Type>Normal</Type>
    <Size>344606</Size>
    <StorageClass>Standard</StorageClass>
  </Contents>
  <Contents>
    <Key>mail/a%20b%2Bc.task</Key>
    <LastModified>2020-06-22T11:42:33.000Z</LastModified>
    <ETag>"6C4D2B3F164E874F2C113DD718D6B10F"</ETag>
    <Type>Normal</Type>
    <Size>7</Size>
    <StorageClass>Standard</StorageClass>
  </Contents>
</ListBucketResult>"#;

const LIST_PAGE_2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
  <Name>examplebucket</Name>
  <Prefix>mail%2F</Prefix>
  <MaxKeys>1000</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>false</IsTruncated>
  <ContinuationToken>ChRtYWlsL2EgYitjLnRhc2s%3D</ContinuationToken>
  <KeyCount>1</KeyCount>
  <Contents>
    <Key>mail/%E6%B5%8B%E8%AF%95/%E4%BB%BB%E5%8A%A1.task</Key>
    <LastModified>2020-06-22T11:42:34.000Z</LastModified>
    <ETag>"7D5E3C40275F985F3D224EE829E7C210"</ETag>
    <Type>Normal</Type>
    <Size>12</Size>
    <StorageClass>Standard</StorageClass>
  </Contents>
</ListBucketResult>"#;

#[tokio::test]
async fn listing_decodes_keys_and_follows_the_cursor() {
    let server = FakeServer::start(|req, _| {
        if req.param("continuation-token").is_some() {
            Reply::xml(200, LIST_PAGE_2)
        } else {
            Reply::xml(200, LIST_PAGE_1)
        }
    })
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    let first = store
        .list(&ListRequest {
            prefix: "mail/".into(),
            ..ListRequest::default()
        })
        .await
        .expect("page 1");
    let keys: Vec<&str> = first.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["mail/0001.task", "mail/a b+c.task"]);
    assert_eq!(first.objects[0].etag, "5B3C1A2E053D763E1B002CC607C5A0FE");
    assert_eq!(first.objects[0].size, 344_606);
    let age = SystemTime::now()
        .duration_since(first.server_time)
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(5),
        "server_time is the Date header"
    );
    let cursor = first.next.clone().expect("a truncated page has a cursor");
    assert_eq!(
        cursor, "ChRtYWlsL2EgYitjLnRhc2s=",
        "the token is url-decoded"
    );

    let second = store
        .list(&ListRequest {
            prefix: "mail/".into(),
            continuation: Some(cursor),
            ..ListRequest::default()
        })
        .await
        .expect("page 2");
    assert_eq!(second.objects[0].key, "mail/测试/任务.task");
    assert_eq!(second.next, None, "the last page has no cursor");

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.method, "GET");
        assert_eq!(req.path(), "/", "CNAME addressing: the bucket is the host");
        assert_eq!(req.header("host"), Some(server.authority().as_str()));
        assert_eq!(req.param("list-type").as_deref(), Some("2"));
        assert_eq!(req.param("prefix").as_deref(), Some("mail/"));
        assert_eq!(req.param("max-keys").as_deref(), Some("1000"));
        assert_eq!(req.param("encoding-type").as_deref(), Some("url"));
        assert_signed(req, OssSignature::V4);
    }
    assert_eq!(seen[0].param("continuation-token"), None);
    assert_eq!(
        seen[1].param("continuation-token").as_deref(),
        Some("ChRtYWlsL2EgYitjLnRhc2s="),
        "page 2 asks with the decoded token"
    );
    assert!(
        seen[1]
            .raw_query()
            .contains("continuation-token=ChRtYWlsL2EgYitjLnRhc2s%3D"),
        "the token is encoded once on the wire: {}",
        seen[1].raw_query()
    );
    assert_eq!(count(&stats, Op::List, "ok"), 2);
}

#[tokio::test]
async fn get_reads_body_etag_metadata_and_content_type() {
    let server = FakeServer::scripted(vec![Reply::Answer {
        status: 200,
        headers: vec![
            ("ETag".into(), "\"5B3C1A2E053D763E1B002CC607C5A0FE\"".into()),
            (
                "Last-Modified".into(),
                "Sat, 01 Mar 2025 08:00:00 GMT".into(),
            ),
            ("Content-Type".into(), "application/json".into()),
            ("x-oss-meta-bq-token".into(), "tok-1".into()),
            ("x-oss-meta-bq-attempt".into(), "2".into()),
            ("x-oss-object-type".into(), "Normal".into()),
        ],
        body: b"{\"n\":1}".to_vec(),
    }])
    .await;
    let (store, _) = store_for(&server, OssSignature::V4);
    let obj = store.get("mail/a b+c.lock").await.expect("get");
    assert_eq!(obj.body.as_ref(), b"{\"n\":1}");
    assert_eq!(obj.head.meta.key, "mail/a b+c.lock");
    assert_eq!(obj.head.meta.etag, "5B3C1A2E053D763E1B002CC607C5A0FE");
    assert_eq!(obj.head.meta.size, 7);
    assert_eq!(
        obj.head.meta.last_modified,
        httpdate::parse_http_date("Sat, 01 Mar 2025 08:00:00 GMT").expect("date")
    );
    let mut meta = Metadata::new();
    meta.insert("bq-token".into(), "tok-1".into());
    meta.insert("bq-attempt".into(), "2".into());
    assert_eq!(obj.head.user_meta, meta);
    assert_eq!(obj.head.content_type.as_deref(), Some("application/json"));

    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path(), "/mail/a%20b%2Bc.lock");
    assert_eq!(req.raw_query(), "");
    assert_signed(req, OssSignature::V4);
}

#[tokio::test]
async fn head_errors_come_from_x_oss_err() {
    let server = FakeServer::start(|req, _| {
        if req.path().ends_with("missing") {
            Reply::empty(404)
                .with_header("x-oss-err", &oss_err_header("NoSuchKey"))
                .with_header("x-oss-ec", "0026-00000001")
        } else {
            Reply::empty(403).with_header("x-oss-err", &oss_err_header("SignatureDoesNotMatch"))
        }
    })
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    let err = store.head("mail/missing").await.expect_err("missing");
    assert!(
        matches!(&err, StoreError::NotFound { key } if key == "mail/missing"),
        "{err:?}"
    );
    let err = store.head("mail/denied").await.expect_err("bad signature");
    match &err {
        StoreError::Unauthenticated { code, message, .. } => {
            assert_eq!(code, "SignatureDoesNotMatch");
            assert!(message.contains("(fake)"), "{message}");
        }
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 2, "neither was retried");
    assert_eq!(count(&stats, Op::Head, "404"), 1);
    assert_eq!(count(&stats, Op::Head, "403"), 1);
    for req in server.requests() {
        assert_eq!(req.method, "HEAD");
        assert_signed(&req, OssSignature::V4);
    }
}

#[tokio::test]
async fn create_if_absent_put_sends_forbid_overwrite_and_reads_409_as_exists() {
    let server = FakeServer::scripted(vec![
        Reply::empty(200).with_header("ETag", "\"D41D8CD98F00B204E9800998ECF8427E\""),
        Reply::error(409, "FileAlreadyExists"),
    ])
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    let mut meta = Metadata::new();
    meta.insert("bq-token".into(), "t-1".into());
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        user_meta: meta,
        content_type: Some("application/json".into()),
    };
    let first = store
        .put("mail/0001.lock", Bytes::from_static(b"{}"), &opts)
        .await
        .expect("first create");
    assert_eq!(
        first.etag.as_deref(),
        Some("D41D8CD98F00B204E9800998ECF8427E")
    );
    let err = store
        .put("mail/0001.lock", Bytes::from_static(b"{}"), &opts)
        .await
        .expect_err("second create");
    assert!(
        matches!(&err, StoreError::AlreadyExists { key } if key == "mail/0001.lock"),
        "{err:?}"
    );
    assert_eq!(
        count(&stats, Op::Put, "409"),
        1,
        "a lost create is not retried"
    );

    for req in server.requests() {
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path(), "/mail/0001.lock");
        assert_eq!(req.header("x-oss-forbid-overwrite"), Some("true"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("x-oss-meta-bq-token"), Some("t-1"));
        assert_eq!(
            req.header("content-md5"),
            Some(sign::content_md5(b"{}").as_str())
        );
        assert_eq!(req.body, b"{}");
        assert!(
            req.header("if-none-match").is_none(),
            "OSS rejects S3 conditions"
        );
        assert_signed(&req, OssSignature::V4);
    }
}

#[tokio::test]
async fn claim_copy_outcomes() {
    // The server answers by destination key.
    let server = FakeServer::start(|req, _| match req.path() {
        "/mail/won.lock" => Reply::xml(
            200,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><ETag>\"F2064A169EE92E9775EE5324D0B1AAAA\"</ETag><LastModified>2023-02-24T09:41:56.000Z</LastModified></CopyObjectResult>",
        ),
        "/mail/taken.lock" => Reply::error(409, "FileAlreadyExists"),
        "/mail/gone.lock" => Reply::error(404, "NoSuchKey"),
        _ => Reply::error(412, "PreconditionFailed"),
    })
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    let mut meta = Metadata::new();
    meta.insert("bq-token".into(), "tok".into());
    let claim = CopyOptions {
        mode: WriteMode::CreateIfAbsent,
        source_if_match: Some("5B3C1A2E053D763E1B002CC607C5A0FE".into()),
        user_meta: meta,
        content_type: None,
    };
    let won = store
        .copy("mail/won.task", "mail/won.lock", &claim)
        .await
        .expect("won");
    assert_eq!(
        won.etag.as_deref(),
        Some("F2064A169EE92E9775EE5324D0B1AAAA")
    );
    let err = store
        .copy("mail/taken.task", "mail/taken.lock", &claim)
        .await
        .expect_err("lock exists");
    assert!(
        matches!(&err, StoreError::AlreadyExists { key } if key == "mail/taken.lock"),
        "{err:?}"
    );
    let err = store
        .copy("mail/gone.task", "mail/gone.lock", &claim)
        .await
        .expect_err("source gone");
    assert!(
        matches!(&err, StoreError::NotFound { key } if key == "mail/gone.task"),
        "a copy's 404 names the source: {err:?}"
    );
    let err = store
        .copy("mail/changed.task", "mail/changed.lock", &claim)
        .await
        .expect_err("source changed");
    assert!(
        matches!(&err, StoreError::PreconditionFailed { key } if key == "mail/changed.lock"),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 4, "no outcome was retried");
    assert_eq!(count(&stats, Op::Copy, "ok"), 1);

    for req in server.requests() {
        let id = req
            .path()
            .trim_start_matches("/mail/")
            .trim_end_matches(".lock")
            .to_owned();
        assert_eq!(req.method, "PUT");
        assert_eq!(
            req.header("x-oss-copy-source"),
            Some(format!("/{BUCKET}/mail/{id}.task").as_str())
        );
        assert_eq!(req.header("x-oss-forbid-overwrite"), Some("true"));
        assert_eq!(
            req.header("x-oss-copy-source-if-match"),
            Some("\"5B3C1A2E053D763E1B002CC607C5A0FE\"")
        );
        assert_eq!(req.header("x-oss-metadata-directive"), Some("REPLACE"));
        assert_eq!(req.header("x-oss-meta-bq-token"), Some("tok"));
        assert!(req.body.is_empty());
        // OSS refuses a PUT without a length (EC 0017-00000101); hyper sends none for an
        // empty body unless told.
        assert_eq!(
            req.header("content-length"),
            Some("0"),
            "a bodiless copy must say Content-Length: 0: {:?}",
            req.headers
        );
        assert_eq!(req.header("transfer-encoding"), None);
        assert_signed(&req, OssSignature::V4);
    }
}

#[tokio::test]
async fn a_throttled_claim_retries_and_a_later_409_is_a_clean_loss() {
    let server = FakeServer::scripted(vec![
        Reply::error(503, "TotalQpsLimitExceeded"),
        Reply::error(409, "FileAlreadyExists"),
    ])
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    let claim = CopyOptions {
        mode: WriteMode::CreateIfAbsent,
        ..CopyOptions::default()
    };
    let err = store
        .copy("mail/1.task", "mail/1.lock", &claim)
        .await
        .expect_err("lost");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(count(&stats, Op::Copy, "503"), 1);
    assert_eq!(count(&stats, Op::Copy, "409"), 1);
}

#[tokio::test]
async fn a_claim_retried_after_a_5xx_that_finds_the_lock_is_ambiguous() {
    let server = FakeServer::scripted(vec![
        Reply::error(500, "InternalError"),
        Reply::error(409, "FileAlreadyExists"),
    ])
    .await;
    let (store, _) = store_for(&server, OssSignature::V4);
    let claim = CopyOptions {
        mode: WriteMode::CreateIfAbsent,
        ..CopyOptions::default()
    };
    let err = store
        .copy("mail/1.task", "mail/1.lock", &claim)
        .await
        .expect_err("ambiguous");
    assert!(
        matches!(&err, StoreError::Ambiguous { key } if key == "mail/1.lock"),
        "{err:?}"
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_ne!(
        seen[0].header("authorization"),
        None,
        "every attempt is signed"
    );
    for req in &seen {
        assert_signed(req, OssSignature::V4);
    }
}

#[tokio::test]
async fn versioning_states() {
    let server = FakeServer::scripted(vec![
        Reply::xml(200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration/>"),
        Reply::xml(200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
        Reply::xml(200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"),
    ])
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    assert_eq!(store.versioning().await.expect("never"), Versioning::Never);
    assert_eq!(
        store.versioning().await.expect("enabled"),
        Versioning::Enabled
    );
    assert_eq!(
        store.versioning().await.expect("suspended"),
        Versioning::Suspended
    );
    assert_eq!(count(&stats, Op::Versioning, "ok"), 3);
    for req in server.requests() {
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/?versioning");
        assert_signed(&req, OssSignature::V4);
    }
}

#[tokio::test]
async fn delete_and_delete_many() {
    let server = FakeServer::start(|req, _| match req.method.as_str() {
        "DELETE" => Reply::empty(204),
        _ => Reply::xml(
            200,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult><Error><Key>mail/locked.task</Key><Code>AccessDenied</Code><Message>Access denied</Message></Error><Error><Key>mail/gone.task</Key><Code>NoSuchKey</Code><Message>gone</Message></Error></DeleteResult>",
        ),
    })
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    store.delete("mail/a b.task").await.expect("delete");
    let keys: Vec<String> = ["mail/1.task", "mail/locked.task", "mail/gone.task", "a&b"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let failed = store.delete_many(&keys).await.expect("delete_many");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "mail/locked.task");
    assert!(
        matches!(failed[0].1, StoreError::Forbidden { .. }),
        "{:?}",
        failed[0].1
    );
    assert!(
        store.delete_many(&[]).await.expect("nothing").is_empty(),
        "an empty batch sends nothing"
    );

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(seen[0].path(), "/mail/a%20b.task");
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].target, "/?delete");
    assert_eq!(
        seen[1].header("content-md5"),
        Some(sign::content_md5(&seen[1].body).as_str()),
        "Content-MD5 covers the body as received"
    );
    let body = String::from_utf8(seen[1].body.clone()).expect("utf-8");
    assert!(body.contains("<Quiet>true</Quiet>"), "{body}");
    assert!(body.contains("<Key>a&amp;b</Key>"), "{body}");
    for req in &seen {
        assert_signed(req, OssSignature::V4);
    }
    assert_eq!(count(&stats, Op::Delete, "ok"), 1);
    assert_eq!(count(&stats, Op::DeleteMany, "ok"), 1);
}

#[tokio::test]
async fn now_reads_the_date_of_a_free_404() {
    let server = FakeServer::start(|req, _| {
        if req.path() == "/bucketq-clock-probe" {
            Reply::empty(404).with_header("x-oss-err", &oss_err_header("NoSuchKey"))
        } else {
            Reply::empty(404).with_header("x-oss-err", &oss_err_header("NoSuchBucket"))
        }
    })
    .await;
    let (store, stats) = store_for(&server, OssSignature::V4);
    let t = store.now().await.expect("a 404 still carries the clock");
    let skew = SystemTime::now()
        .duration_since(t)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(5), "{skew:?}");
    assert_eq!(count(&stats, Op::Head, "404"), 1);
    assert_eq!(server.requests()[0].method, "HEAD");
}

#[tokio::test]
async fn v1_signing_end_to_end() {
    let server = FakeServer::start(|req, _| match req.method.as_str() {
        "GET" => Reply::xml(200, LIST_PAGE_2),
        _ => Reply::empty(200).with_header("ETag", "\"x\""),
    })
    .await;
    let (store, _) = store_for(&server, OssSignature::V1);
    store
        .list(&ListRequest {
            prefix: "mail/".into(),
            continuation: Some("ChRtYWlsL2EgYitjLnRhc2s=".into()),
            ..ListRequest::default()
        })
        .await
        .expect("list");
    store
        .put(
            "mail/测试 +.lock",
            Bytes::from_static(b"x"),
            &PutOptions {
                mode: WriteMode::CreateIfAbsent,
                content_type: Some("text/plain".into()),
                ..PutOptions::default()
            },
        )
        .await
        .expect("put");
    for req in server.requests() {
        assert!(
            req.header("x-oss-date").is_none(),
            "V1 signs the Date header"
        );
        assert_signed(&req, OssSignature::V1);
    }
}

#[tokio::test]
async fn an_ip_endpoint_is_addressed_path_style() {
    let server = FakeServer::start(|req, _| match req.method.as_str() {
        "GET" => Reply::xml(200, LIST_PAGE_2),
        _ => Reply::empty(200).with_header("ETag", "\"x\""),
    })
    .await;
    for signature in [OssSignature::V4, OssSignature::V1] {
        let cfg = config_for(&server, signature, Addressing::Auto);
        let store = OssStore::from_config(&cfg, Arc::new(RequestStats::default())).expect("opens");
        store
            .put(
                "mail/1.task",
                Bytes::from_static(b"{}"),
                &PutOptions::default(),
            )
            .await
            .expect("put");
        store
            .list(&ListRequest {
                prefix: "mail/".into(),
                ..ListRequest::default()
            })
            .await
            .expect("list");
    }
    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    for req in &seen {
        assert_eq!(req.header("host"), Some(server.authority().as_str()));
        assert_signed(
            req,
            if req.header("x-oss-date").is_some() {
                OssSignature::V4
            } else {
                OssSignature::V1
            },
        );
    }
    assert_eq!(seen[0].path(), format!("/{BUCKET}/mail/1.task"));
    assert_eq!(
        seen[1].path(),
        format!("/{BUCKET}/"),
        "the SDKs' bucket path"
    );
}
