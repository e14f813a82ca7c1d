//! The S3 backend: AWS S3, MinIO, Ceph RGW and anything else that speaks SigV4.
//!
//! Create-if-absent is `PutObject` with `If-None-Match: *` (412 = the key exists; AWS's 409
//! `ConditionalRequestConflict` is retried). A conditional CopyObject destination is honoured
//! only by AWS (and silently ignored by MinIO and moto), so this store reports
//! [`Store::atomic_conditional_copy`] as false and refuses a create-if-absent copy with
//! [`StoreError::Unsupported`]: the portable claim is GET + PUT-if-absent + DELETE.
//!
//! Every request is built by a pure method of [`S3Requests`] so it can be checked without a
//! network; [`S3Store`] is the shared [`HttpStore`] speaking this dialect.

use std::sync::Arc;
use std::time::SystemTime;

use super::credentials::{self, CredentialCache};
use super::http::{configured_endpoint, Dialect, HttpStore};
use super::sign::uri_encode;
use super::transport::endpoint::{BucketAddress, Endpoint, Style};
use super::transport::request::{add_user_meta, check_key, Response};
use super::transport::{On412, RequestSpec, Signer, TransportConfig};
use super::{CopyOptions, Op, RequestStats, Result, StoreError, StoreKind, WriteMode};
use crate::config::{Addressing, StoreConfig};

/// Header prefix of user metadata on S3.
pub const META_PREFIX: &str = "x-amz-meta-";

/// Region signed when the config names none (MinIO's and moto's default).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Builds every S3 request as a pure function of its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Requests {
    address: BucketAddress,
    bucket: String,
}

impl S3Requests {
    /// Requests for `bucket` at `endpoint`: `auto` is path-style (`/bucket/key`) on an IP or
    /// `localhost` and virtual-hosted (`bucket.host/key`) on a DNS name, as the AWS SDKs do.
    pub fn new(endpoint: Endpoint, bucket: &str, addressing: Addressing) -> Self {
        S3Requests {
            address: BucketAddress::new(&endpoint, bucket, addressing, Style::VirtualHosted),
            bucket: bucket.to_owned(),
        }
    }

    /// How the bucket is addressed.
    pub fn style(&self) -> Style {
        self.address.style()
    }
}

impl Dialect for S3Requests {
    const KIND: StoreKind = StoreKind::S3;
    const META_PREFIX: &'static str = META_PREFIX;
    const ATOMIC_CONDITIONAL_COPY: bool = false;

    /// A bucket-level request (`/bucket` path-style, `/` virtual-hosted).
    fn bucket_request(&self, op: Op, method: &'static str) -> RequestSpec {
        self.address.bucket_request(op, method)
    }

    /// An object request; the key is checked and encoded once, `/` kept.
    fn object_request(&self, op: Op, method: &'static str, key: &str) -> Result<RequestSpec> {
        self.address.object_request(op, method, key)
    }

    /// `If-None-Match: *`; S3 refuses with 412.
    fn mark_create_if_absent(spec: &mut RequestSpec) {
        spec.header("if-none-match", "*");
        spec.create_if_absent = true;
        spec.on_412 = On412::AlreadyExists;
    }

    /// CopyObject with metadata REPLACE and an optional source ETag condition. A
    /// create-if-absent copy is refused: most S3 servers ignore a destination condition.
    fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<RequestSpec> {
        if opts.mode == WriteMode::CreateIfAbsent {
            return Err(StoreError::Unsupported {
                what:
                    "a create-if-absent copy on S3 (claim with get + create-if-absent put + delete)"
                        .into(),
            });
        }
        check_key(source)?;
        let mut spec = self.object_request(Op::Copy, "PUT", dest)?;
        spec.header(
            "x-amz-copy-source",
            format!("/{}/{}", self.bucket, uri_encode(source, false)),
        );
        spec.header("x-amz-metadata-directive", "REPLACE");
        if let Some(etag) = &opts.source_if_match {
            spec.header("x-amz-copy-source-if-match", quote_etag(etag));
        }
        if let Some(ct) = &opts.content_type {
            spec.header("content-type", ct.clone());
        }
        add_user_meta(&mut spec, META_PREFIX, &opts.user_meta)?;
        spec.error_in_ok_body = true;
        Ok(spec)
    }

    /// HeadBucket: the cheapest request whose `Date` gives the store's clock.
    fn clock(&self) -> RequestSpec {
        self.bucket_request(Op::Head, "HEAD")
    }

    fn server_time(resp: &Response) -> Result<SystemTime> {
        resp.require_server_time(Op::Head, "")
    }
}

impl S3Requests {
    /// CreateBucket (no location constraint: the endpoint's default region). For test and
    /// setup tools; the daemon never creates buckets.
    pub fn create_bucket(&self) -> RequestSpec {
        self.bucket_request(Op::Put, "PUT")
    }

    /// DeleteBucket (must be empty). For test and setup tools.
    pub fn delete_bucket(&self) -> RequestSpec {
        self.bucket_request(Op::Delete, "DELETE")
    }
}

/// ETag conditions are sent quoted, as the stores compare them.
pub(crate) fn quote_etag(etag: &str) -> String {
    format!("\"{}\"", etag.trim().trim_matches('"'))
}

/// An S3-compatible bucket.
pub type S3Store = HttpStore<S3Requests>;

impl HttpStore<S3Requests> {
    /// Open from `[store]`: `endpoint`, `bucket`, both keys required; `region` defaults to
    /// `us-east-1`; `path_style` for MinIO, Ceph and test servers.
    pub fn from_config(cfg: &StoreConfig, stats: Arc<RequestStats>) -> Result<Self> {
        let transport = TransportConfig::for_store(cfg)?;
        Self::with_transport(cfg, transport, stats)
    }

    /// [`S3Store::from_config`] with explicit transport settings (clock, retry delays).
    pub fn with_transport(
        cfg: &StoreConfig,
        transport: TransportConfig,
        stats: Arc<RequestStats>,
    ) -> Result<Self> {
        let endpoint = configured_endpoint(
            cfg,
            "an s3 store needs an endpoint, e.g. \"https://s3.us-east-1.amazonaws.com\" or \"http://127.0.0.1:9000\"",
        )?;
        let region = cfg
            .region
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or(DEFAULT_REGION)
            .trim()
            .to_owned();
        let signer = Signer::SigV4 { region };
        let requests = S3Requests::new(endpoint, &cfg.bucket, cfg.addressing());
        let credentials =
            CredentialCache::new(credentials::provider_for(cfg, &transport.extra_roots)?);
        HttpStore::open(requests, signer, credentials, transport, stats, &cfg.bucket)
    }

    /// Create the bucket (test and setup tools; the daemon never does).
    pub async fn create_bucket(&self) -> Result<()> {
        self.send(&self.requests().create_bucket()).await?;
        Ok(())
    }

    /// Delete the (empty) bucket (test and setup tools).
    pub async fn delete_bucket(&self) -> Result<()> {
        self.send(&self.requests().delete_bucket()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sign::content_md5;
    use crate::store::{ListRequest, Metadata, PutOptions};
    use bytes::Bytes;

    fn path_style() -> S3Requests {
        let e = Endpoint::parse("http://127.0.0.1:5055").expect("endpoint");
        S3Requests::new(e, "bkt", Addressing::Path)
    }

    fn virtual_hosted() -> S3Requests {
        let e = Endpoint::parse("https://s3.us-east-1.amazonaws.com").expect("endpoint");
        S3Requests::new(e, "bkt", Addressing::VirtualHosted)
    }

    fn headers(spec: &RequestSpec) -> Vec<(&str, &str)> {
        let mut h: Vec<(&str, &str)> = spec
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.sort();
        h
    }

    #[test]
    fn list_asks_for_url_encoding_and_carries_the_cursor() {
        let req = ListRequest {
            prefix: "mail/".into(),
            start_after: Some("mail/a b".into()),
            continuation: Some("tok+/=".into()),
            max_keys: 5000,
        };
        let spec = path_style().list(&req);
        assert_eq!(spec.method, "GET");
        assert_eq!(
            spec.url(),
            "http://127.0.0.1:5055/bkt?list-type=2&prefix=mail%2F&max-keys=1000&encoding-type=url&continuation-token=tok%2B%2F%3D&start-after=mail%2Fa%20b"
        );
        assert_eq!(headers(&spec), vec![("host", "127.0.0.1:5055")]);
        let spec = virtual_hosted().list(&ListRequest::default());
        assert_eq!(
            spec.url(),
            "https://bkt.s3.us-east-1.amazonaws.com/?list-type=2&max-keys=1000&encoding-type=url"
        );
        assert_eq!(
            headers(&spec),
            vec![("host", "bkt.s3.us-east-1.amazonaws.com")]
        );
    }

    #[test]
    fn create_if_absent_put_sends_if_none_match_and_reads_412_as_exists() {
        let mut meta = Metadata::new();
        meta.insert("bq-token".into(), "t1".into());
        let opts = PutOptions {
            mode: WriteMode::CreateIfAbsent,
            user_meta: meta,
            content_type: Some("application/json".into()),
        };
        let spec = path_style()
            .put("mail/a b+c.lock", Bytes::from_static(b""), &opts)
            .expect("valid put");
        assert_eq!(spec.method, "PUT");
        assert_eq!(spec.url(), "http://127.0.0.1:5055/bkt/mail/a%20b%2Bc.lock");
        assert_eq!(
            headers(&spec),
            vec![
                ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                ("content-type", "application/json"),
                ("host", "127.0.0.1:5055"),
                ("if-none-match", "*"),
                ("x-amz-meta-bq-token", "t1"),
            ]
        );
        assert!(spec.create_if_absent);
        assert_eq!(spec.on_412, On412::AlreadyExists);

        let plain = virtual_hosted()
            .put("k", Bytes::from_static(b"x"), &PutOptions::default())
            .expect("valid put");
        assert_eq!(plain.url(), "https://bkt.s3.us-east-1.amazonaws.com/k");
        assert!(plain.header_value("if-none-match").is_none());
        assert!(!plain.create_if_absent);
        assert_eq!(plain.on_412, On412::PreconditionFailed);
    }

    #[test]
    fn copy_replaces_metadata_with_optional_source_condition() {
        let opts = CopyOptions {
            source_if_match: Some("abc".into()),
            ..CopyOptions::default()
        };
        let spec = path_style()
            .copy("mail/1 +.task", "mail/1 +.lock", &opts)
            .expect("valid copy");
        assert_eq!(spec.url(), "http://127.0.0.1:5055/bkt/mail/1%20%2B.lock");
        assert_eq!(
            headers(&spec),
            vec![
                ("host", "127.0.0.1:5055"),
                ("x-amz-copy-source", "/bkt/mail/1%20%2B.task"),
                ("x-amz-copy-source-if-match", "\"abc\""),
                ("x-amz-metadata-directive", "REPLACE"),
            ]
        );
        assert!(spec.error_in_ok_body);
        let err = path_style()
            .copy(
                "a",
                "b",
                &CopyOptions {
                    mode: WriteMode::CreateIfAbsent,
                    ..CopyOptions::default()
                },
            )
            .expect_err("conditional copy");
        assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
    }

    #[test]
    fn delete_many_posts_a_quiet_delete_with_content_md5() {
        let keys = vec!["a".to_owned(), "b&c".to_owned()];
        let spec = path_style().delete_many(&keys).expect("valid");
        assert_eq!(spec.method, "POST");
        assert_eq!(spec.url(), "http://127.0.0.1:5055/bkt?delete");
        assert_eq!(
            spec.header_value("content-md5"),
            Some(content_md5(&spec.body).as_str())
        );
        let body = String::from_utf8(spec.body.to_vec()).expect("utf-8");
        assert!(body.contains("<Quiet>true</Quiet>"), "{body}");
        assert!(body.contains("<Key>b&amp;c</Key>"), "{body}");
    }

    #[test]
    fn bad_keys_are_refused_before_sending() {
        assert!(path_style().get("").is_err());
        assert!(path_style().get("a/../b").is_err());
        assert!(path_style()
            .delete_many(&["ok".into(), "..".into()])
            .is_err());
    }

    #[test]
    fn config_errors_name_the_setting() {
        let stats = Arc::new(RequestStats::default());
        let mut cfg = StoreConfig {
            kind: crate::config::StoreBackend::S3,
            ..StoreConfig::default()
        };
        let field = |cfg: &StoreConfig| match S3Store::from_config(cfg, Arc::clone(&stats)) {
            Err(StoreError::Misconfigured { field, .. }) => field,
            other => panic!("expected Misconfigured, got {other:?}"),
        };
        assert_eq!(field(&cfg), "endpoint");
        cfg.endpoint = Some("http://127.0.0.1:9000".into());
        assert_eq!(field(&cfg), "bucket");
        cfg.bucket = "b".into();
        assert_eq!(field(&cfg), "access_key_id");
        cfg.access_key_id = crate::secret::Secret::new("id");
        assert_eq!(field(&cfg), "access_key_secret");
        cfg.access_key_secret = crate::secret::Secret::new("secret");
        let store = S3Store::from_config(&cfg, Arc::clone(&stats)).expect("complete config");
        let dbg = format!("{store:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
    }
}
