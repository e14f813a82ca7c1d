//! The Alibaba OSS backend, native API.
//!
//! Signature V4 (`OSS4-HMAC-SHA256`) by default, V1 on request for old buckets. Requests are
//! virtual-hosted (`<bucket>.oss-<region>.aliyuncs.com`); an endpoint outside `aliyuncs.com` is
//! taken as a custom domain (CNAME) already bound to the bucket and used as it is. Create-if-
//! absent is `x-oss-forbid-overwrite: true` on PutObject and CopyObject (409 `FileAlreadyExists`
//! = the key exists), and CopyObject takes `x-oss-copy-source-if-match`, so a claim is one
//! atomic copy ([`Store::atomic_conditional_copy`] is true). OSS ignores forbid-overwrite on a
//! bucket whose versioning was ever enabled: [`Store::versioning`] lets startup refuse those.
//!
//! Every request is built by a pure method of [`OssRequests`], tested against the reference's
//! request shapes and signature vectors; [`OssStore`] is the shared [`HttpStore`] speaking
//! this dialect.

use std::sync::Arc;
use std::time::SystemTime;

use super::credentials::{self, CredentialCache};
use super::http::{configured_endpoint, Dialect, HttpStore};
use super::s3::quote_etag;
use super::sign::uri_encode;
use super::transport::endpoint::{BucketAddress, Endpoint, Style};
use super::transport::request::{add_user_meta, check_key, Response};
use super::transport::{RequestSpec, Signer, TransportConfig};
use super::{CopyOptions, Op, RequestStats, Result, StoreError, StoreKind, WriteMode};
use crate::config::{Addressing, OssSignature, StoreConfig};

/// Header prefix of user metadata on OSS.
pub const META_PREFIX: &str = "x-oss-meta-";

/// The key the clock probe HEADs. It normally does not exist: OSS answers 404 with a `Date`,
/// and does not bill 4xx answers.
pub const CLOCK_PROBE_KEY: &str = "bucketq-clock-probe";

/// Domain of Alibaba's own endpoints; anything else is a custom domain (CNAME).
const ALIYUN_DOMAIN: &str = ".aliyuncs.com";

/// What `addressing = "auto"` means on OSS for a DNS name: Alibaba's own endpoints
/// (`*.aliyuncs.com`) are virtual-hosted (OSS refuses path-style there); any other host is a
/// custom domain bound to the bucket. (IPs and `localhost` are path-style, as in the SDKs.)
pub fn auto_style(host: &str) -> Style {
    if host.ends_with(ALIYUN_DOMAIN) {
        Style::VirtualHosted
    } else {
        Style::Cname
    }
}

/// The signing region named by an Alibaba endpoint host: `oss-cn-hangzhou.aliyuncs.com`,
/// `oss-cn-hangzhou-internal.aliyuncs.com` or `bucket.oss-cn-hangzhou.aliyuncs.com` give
/// `cn-hangzhou`. `None` for custom domains and the global acceleration endpoints.
pub fn region_from_host(host: &str) -> Option<String> {
    let rest = host.strip_suffix(ALIYUN_DOMAIN)?;
    let label = rest.rsplit('.').next()?;
    let region = label.strip_prefix("oss-")?;
    let region = region.strip_suffix("-internal").unwrap_or(region);
    let global = region.starts_with("accelerate") || region.is_empty();
    (!global).then(|| region.to_owned())
}

/// Builds every OSS request as a pure function of its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssRequests {
    address: BucketAddress,
    bucket: String,
}

impl OssRequests {
    /// Requests for `bucket` at `endpoint`, addressed as `addressing` says (see
    /// [`auto_style`] for `auto`).
    pub fn new(endpoint: &Endpoint, bucket: &str, addressing: Addressing) -> Self {
        OssRequests {
            address: BucketAddress::new(endpoint, bucket, addressing, auto_style(&endpoint.host)),
            bucket: bucket.to_owned(),
        }
    }

    /// How the bucket is addressed.
    pub fn style(&self) -> Style {
        self.address.style()
    }

    /// GetBucketVersioning (`GET /?versioning`).
    pub fn versioning(&self) -> RequestSpec {
        let mut spec = self.bucket_request(Op::Versioning, "GET");
        spec.param("versioning", "");
        spec
    }
}

impl Dialect for OssRequests {
    const KIND: StoreKind = StoreKind::Oss;
    const META_PREFIX: &'static str = META_PREFIX;
    const ATOMIC_CONDITIONAL_COPY: bool = true;

    /// A bucket-level request: `/` on the bucket's host, `/<bucket>/` path-style (with the
    /// slash, as both Alibaba SDKs send it).
    fn bucket_request(&self, op: Op, method: &'static str) -> RequestSpec {
        let mut spec = self.address.bucket_request(op, method);
        if self.address.style() == Style::Path {
            spec.path.push('/');
        }
        spec
    }

    /// An object request: the key encoded once, `/` kept, the same encoding the signers use.
    fn object_request(&self, op: Op, method: &'static str, key: &str) -> Result<RequestSpec> {
        // The shared builder, not `bucket_request` above: its path gets the key appended.
        self.address.object_request(op, method, key)
    }

    /// `x-oss-forbid-overwrite: true`; OSS refuses with 409 `FileAlreadyExists`.
    fn mark_create_if_absent(spec: &mut RequestSpec) {
        spec.header("x-oss-forbid-overwrite", "true");
        spec.create_if_absent = true;
    }

    /// CopyObject: `x-oss-copy-source: /<bucket>/<UriEncode(source)>`, metadata REPLACE, and
    /// optionally `x-oss-forbid-overwrite` and `x-oss-copy-source-if-match`.
    fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<RequestSpec> {
        check_key(source)?;
        let mut spec = self.object_request(Op::Copy, "PUT", dest)?;
        spec.header(
            "x-oss-copy-source",
            format!("/{}/{}", self.bucket, uri_encode(source, false)),
        );
        if opts.mode == WriteMode::CreateIfAbsent {
            Self::mark_create_if_absent(&mut spec);
        }
        if let Some(etag) = &opts.source_if_match {
            spec.header("x-oss-copy-source-if-match", quote_etag(etag));
        }
        spec.header("x-oss-metadata-directive", "REPLACE");
        if let Some(ct) = &opts.content_type {
            spec.header("content-type", ct.clone());
        }
        add_user_meta(&mut spec, META_PREFIX, &opts.user_meta)?;
        spec.error_in_ok_body = true;
        Ok(spec)
    }

    /// HEAD of [`CLOCK_PROBE_KEY`]: its `Date` is the store's clock; 404 is an answer here.
    fn clock(&self) -> RequestSpec {
        let mut spec = self
            .object_request(Op::Head, "HEAD", CLOCK_PROBE_KEY)
            .expect("the clock probe key is a valid key");
        spec.accept_status = vec![404];
        spec
    }

    /// The `Date` of the clock probe's answer; a missing bucket is said so (the probe's 404
    /// is otherwise an answer).
    fn server_time(resp: &Response) -> Result<SystemTime> {
        let missing_bucket = resp
            .header("x-oss-err")
            .and_then(super::xml::parse_oss_err_header)
            .filter(|e| e.code == "NoSuchBucket");
        if let Some(e) = missing_bucket {
            return Err(StoreError::NoSuchBucket {
                bucket: String::new(),
                message: format!("{}: {}", e.code, e.message),
            });
        }
        resp.require_server_time(Op::Head, CLOCK_PROBE_KEY)
    }

    fn versioning_request(&self) -> Option<RequestSpec> {
        Some(self.versioning())
    }
}

/// How requests are signed, from `[store]`: V4 needs a region (given, or derived from an
/// `oss-<region>.aliyuncs.com` endpoint); V1 needs none.
fn signer(cfg: &StoreConfig, endpoint: &Endpoint) -> Result<Signer> {
    match cfg.signature {
        OssSignature::V1 => Ok(Signer::OssV1),
        OssSignature::V4 => {
            let configured = cfg
                .region
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| r.strip_prefix("oss-").unwrap_or(r).to_owned());
            let region = configured
                .or_else(|| region_from_host(&endpoint.host))
                .ok_or_else(|| StoreError::Misconfigured {
                    field: "region",
                    reason: format!(
                        "cannot derive the V4 signing region from {:?}; set store.region to the bucket's region, e.g. \"cn-hangzhou\"",
                        endpoint.host
                    ),
                })?;
            Ok(Signer::OssV4 { region })
        }
    }
}

/// An Alibaba OSS bucket over the native API.
pub type OssStore = HttpStore<OssRequests>;

impl HttpStore<OssRequests> {
    /// Open from `[store]`: `endpoint` (an `oss-<region>.aliyuncs.com` endpoint or a custom
    /// domain), `bucket`, both keys; `region` when it cannot be derived; `signature`.
    pub fn from_config(cfg: &StoreConfig, stats: Arc<RequestStats>) -> Result<Self> {
        let transport = TransportConfig::for_store(cfg)?;
        Self::with_transport(cfg, transport, stats)
    }

    /// [`OssStore::from_config`] with explicit transport settings (clock, retry delays).
    pub fn with_transport(
        cfg: &StoreConfig,
        transport: TransportConfig,
        stats: Arc<RequestStats>,
    ) -> Result<Self> {
        let endpoint = configured_endpoint(
            cfg,
            "an oss store needs an endpoint, e.g. \"https://oss-cn-hangzhou.aliyuncs.com\" or the bucket's custom domain",
        )?;
        let signer = signer(cfg, &endpoint)?;
        let requests = OssRequests::new(&endpoint, &cfg.bucket, cfg.addressing());
        let credentials =
            CredentialCache::new(credentials::provider_for(cfg, &transport.extra_roots)?);
        HttpStore::open(requests, signer, credentials, transport, stats, &cfg.bucket)
    }
}

#[cfg(test)]
mod tests {
    //! Each operation's request checked against `shared/reference/oss-s3-api.md`: the shapes of
    //! §3.1–§3.7 and the daemon-shaped signature vectors of §1.4 (V1) and §2.5 (V4), produced by
    //! Alibaba's Python SDK v2 signer.

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::secret::Secret;
    use crate::store::sign::{content_md5, Credentials};
    use crate::store::{ListRequest, Metadata, PutOptions, Store};
    use bytes::Bytes;

    /// `2025-03-01T08:00:00Z`, the time of the §1.4/§2.5 vectors.
    fn vector_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_740_816_000)
    }

    fn vector_creds() -> Credentials {
        Credentials {
            access_key_id: "LTAI5tExampleAKID".into(),
            secret: Secret::new("ExampleSecretKey1234567890abcd"),
            security_token: None,
        }
    }

    fn requests() -> OssRequests {
        let e = Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com").expect("endpoint");
        OssRequests::new(&e, "examplebucket", Addressing::Auto)
    }

    fn v1() -> Signer {
        Signer::OssV1
    }

    fn v4() -> Signer {
        Signer::OssV4 {
            region: "cn-hangzhou".into(),
        }
    }

    fn authorization(signer: &Signer, spec: &RequestSpec) -> String {
        signer
            .sign(spec, &vector_creds(), vector_time())
            .into_iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v)
            .expect("signers return an authorization header")
    }

    const V4_PREFIX: &str = "OSS4-HMAC-SHA256 Credential=LTAI5tExampleAKID/20250301/cn-hangzhou/oss/aliyun_v4_request,Signature=";

    fn sorted_headers(spec: &RequestSpec) -> Vec<(&str, &str)> {
        let mut h: Vec<(&str, &str)> = spec
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.sort();
        h
    }

    /// The same request without one header or query parameter this store adds beyond the
    /// vector (so the rest can be compared byte for byte).
    fn without(spec: &RequestSpec, name: &str) -> RequestSpec {
        let mut s = spec.clone();
        s.headers.retain(|(n, _)| n != name);
        s.query.retain(|(n, _)| n != name);
        s
    }

    #[test]
    fn addressing_is_virtual_hosted_on_aliyun_and_as_is_on_a_cname() {
        let r = requests();
        assert_eq!(r.style(), Style::VirtualHosted);
        let spec = r.get("k").expect("valid");
        assert_eq!(
            spec.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/k"
        );
        assert_eq!(
            spec.header_value("host"),
            Some("examplebucket.oss-cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(spec.bucket.as_deref(), Some("examplebucket"));

        let cname = Endpoint::parse("https://files.example.com").expect("endpoint");
        let r = OssRequests::new(&cname, "examplebucket", Addressing::Auto);
        assert_eq!(r.style(), Style::Cname);
        let spec = r.get("k").expect("valid");
        assert_eq!(spec.url(), "https://files.example.com/k");
        assert_eq!(spec.header_value("host"), Some("files.example.com"));
        // The canonical resource still names the bucket.
        assert_eq!(spec.bucket.as_deref(), Some("examplebucket"));

        // An endpoint that already carries the bucket is not prefixed twice.
        let e = Endpoint::parse("https://examplebucket.oss-cn-hangzhou.aliyuncs.com").expect("e");
        let spec = OssRequests::new(&e, "examplebucket", Addressing::Auto)
            .get("k")
            .expect("valid");
        assert_eq!(
            spec.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/k"
        );
    }

    #[test]
    fn region_is_derived_from_alibaba_endpoints_only() {
        assert_eq!(
            region_from_host("oss-cn-hangzhou.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            region_from_host("oss-cn-hongkong-internal.aliyuncs.com").as_deref(),
            Some("cn-hongkong")
        );
        assert_eq!(
            region_from_host("bkt.oss-ap-southeast-1.aliyuncs.com").as_deref(),
            Some("ap-southeast-1")
        );
        assert_eq!(region_from_host("oss-accelerate.aliyuncs.com"), None);
        assert_eq!(region_from_host("files.example.com"), None);
        assert_eq!(region_from_host("127.0.0.1"), None);
    }

    #[test]
    fn list_request_matches_the_reference_and_its_signatures() {
        let page1 = requests().list(&ListRequest {
            prefix: "mail/".into(),
            max_keys: 100,
            ..ListRequest::default()
        });
        assert_eq!(page1.method, "GET");
        assert_eq!(
            page1.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/?list-type=2&prefix=mail%2F&max-keys=100&encoding-type=url"
        );
        assert_eq!(
            sorted_headers(&page1),
            vec![("host", "examplebucket.oss-cn-hangzhou.aliyuncs.com")]
        );
        // V1 does not sign list parameters: the whole request matches §1.4.
        assert_eq!(
            authorization(&v1(), &page1),
            "OSS LTAI5tExampleAKID:q5lhBaUmRwlVPTkJ6wChasJpI98="
        );
        // V4 signs every parameter; without encoding-type it is §2.5's request.
        assert_eq!(
            authorization(&v4(), &without(&page1, "encoding-type")),
            format!("{V4_PREFIX}fddb223b8d44e2770b2d3568b03e2c4c04b2622407a0731be4999ab6d894ca36")
        );

        let page2 = requests().list(&ListRequest {
            prefix: "mail/".into(),
            continuation: Some("ChRtYWlsLzAwMDEudGFzaw--".into()),
            max_keys: 100,
            ..ListRequest::default()
        });
        assert!(page2
            .url()
            .ends_with("&continuation-token=ChRtYWlsLzAwMDEudGFzaw--"));
        assert_eq!(
            authorization(&v1(), &page2),
            "OSS LTAI5tExampleAKID:otBHhsBLd6cwWUrq9C0RPPa/W3k="
        );
        assert_eq!(
            authorization(&v4(), &without(&page2, "encoding-type")),
            format!("{V4_PREFIX}f664b878e0ee4ea24c40a4e43068fa14f3ab8399cb8f36fd828eca148faddef0")
        );

        let capped = requests().list(&ListRequest {
            prefix: "p/".into(),
            start_after: Some("p/a b".into()),
            max_keys: 0,
            ..ListRequest::default()
        });
        assert_eq!(
            capped.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/?list-type=2&prefix=p%2F&max-keys=1000&encoding-type=url&start-after=p%2Fa%20b"
        );
    }

    #[test]
    fn create_if_absent_put_matches_the_lock_vector() {
        let opts = PutOptions {
            mode: WriteMode::CreateIfAbsent,
            user_meta: Metadata::new(),
            content_type: Some("application/json".into()),
        };
        let spec = requests()
            .put("mail/0001.lock", Bytes::new(), &opts)
            .expect("valid put");
        assert_eq!(spec.method, "PUT");
        assert_eq!(
            spec.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/mail/0001.lock"
        );
        assert_eq!(
            sorted_headers(&spec),
            vec![
                ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                ("content-type", "application/json"),
                ("host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"),
                ("x-oss-forbid-overwrite", "true"),
            ]
        );
        assert!(spec.create_if_absent);
        assert_eq!(
            authorization(&v1(), &spec),
            "OSS LTAI5tExampleAKID:85LcMRqp5yiS2nG8f/2NTkxRxXc="
        );
        assert_eq!(
            authorization(&v4(), &spec),
            format!("{V4_PREFIX}043e240b3ab6e4ef28b48899457bd569747e0192e74b69b5e51eddd443fe5be7")
        );

        let mut meta = Metadata::new();
        meta.insert("bq-token".into(), "t-1".into());
        let plain = requests()
            .put(
                "k",
                Bytes::from_static(b"body"),
                &PutOptions {
                    user_meta: meta,
                    ..PutOptions::default()
                },
            )
            .expect("valid put");
        assert_eq!(
            sorted_headers(&plain),
            vec![
                ("content-md5", content_md5(b"body").as_str()),
                ("host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"),
                ("x-oss-meta-bq-token", "t-1"),
            ]
        );
        assert!(!plain.create_if_absent);
        assert_eq!(plain.body.as_ref(), b"body");
    }

    #[test]
    fn claim_copy_matches_the_copy_vector_plus_metadata_replace() {
        let mut meta = Metadata::new();
        meta.insert("bq-token".into(), "tok".into());
        let opts = CopyOptions {
            mode: WriteMode::CreateIfAbsent,
            source_if_match: Some("5B3C1A2E053D763E1B002CC607C5A0FE".into()),
            user_meta: meta,
            content_type: Some("application/json".into()),
        };
        let spec = requests()
            .copy("mail/0001.task", "mail/0001.lock", &opts)
            .expect("valid copy");
        assert_eq!(spec.method, "PUT");
        assert_eq!(
            spec.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/mail/0001.lock"
        );
        assert_eq!(
            sorted_headers(&spec),
            vec![
                ("content-type", "application/json"),
                ("host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"),
                ("x-oss-copy-source", "/examplebucket/mail/0001.task"),
                (
                    "x-oss-copy-source-if-match",
                    "\"5B3C1A2E053D763E1B002CC607C5A0FE\""
                ),
                ("x-oss-forbid-overwrite", "true"),
                ("x-oss-meta-bq-token", "tok"),
                ("x-oss-metadata-directive", "REPLACE"),
            ]
        );
        assert!(spec.create_if_absent);
        assert!(spec.error_in_ok_body);
        assert!(spec.body.is_empty());

        // Without what bucketq adds for its bookkeeping, it is the §1.4/§2.5 claim request.
        let bare = without(
            &without(
                &without(&spec, "x-oss-metadata-directive"),
                "x-oss-meta-bq-token",
            ),
            "content-type",
        );
        assert_eq!(
            authorization(&v1(), &bare),
            "OSS LTAI5tExampleAKID:Y8jp0NLJVEUJBx81UBIfUkuFS6c="
        );
        assert_eq!(
            authorization(&v4(), &bare),
            format!("{V4_PREFIX}e161e80be0948f2465f6503bbc568d0224a43cfe9f961e07e2df3fbad2496f4a")
        );

        // A quoted ETag is not quoted twice; odd source keys are encoded once, `/` kept.
        let spec = requests()
            .copy(
                "mail/a b+c.task",
                "mail/a b+c.task",
                &CopyOptions {
                    source_if_match: Some("\"abc\"".into()),
                    ..CopyOptions::default()
                },
            )
            .expect("valid copy");
        assert_eq!(
            spec.header_value("x-oss-copy-source"),
            Some("/examplebucket/mail/a%20b%2Bc.task")
        );
        assert_eq!(
            spec.header_value("x-oss-copy-source-if-match"),
            Some("\"abc\"")
        );
        assert_eq!(spec.header_value("x-oss-forbid-overwrite"), None);
        assert!(!spec.create_if_absent);
    }

    #[test]
    fn delete_get_and_head_match_the_vectors() {
        let del = requests().delete("mail/0001.task").expect("valid");
        assert_eq!(del.method, "DELETE");
        assert_eq!(
            sorted_headers(&del),
            vec![("host", "examplebucket.oss-cn-hangzhou.aliyuncs.com")]
        );
        assert_eq!(
            authorization(&v1(), &del),
            "OSS LTAI5tExampleAKID:LEbY94ReGoPYZVFysIBONm0VzHE="
        );
        assert_eq!(
            authorization(&v4(), &del),
            format!("{V4_PREFIX}04d3c1343a31d02ce55c6d0f94ba60a612ddffd229504f79d336ae4af05ec6dd")
        );

        let get = requests().get("mail/a b+c.task").expect("valid");
        assert_eq!(get.method, "GET");
        assert_eq!(
            get.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/mail/a%20b%2Bc.task"
        );
        assert_eq!(
            authorization(&v1(), &get),
            "OSS LTAI5tExampleAKID:7XskScudYcz0fnfbPFgBBYYlfpY="
        );
        assert_eq!(
            authorization(&v4(), &get),
            format!("{V4_PREFIX}09d40ef5af27c332dd61955f554f3b9b502595f1e6f3457cd40644b271345619")
        );

        let head = requests().head("mail/a b+c.task").expect("valid");
        assert_eq!(head.method, "HEAD");
        assert_eq!(head.url(), get.url());
        assert_eq!(sorted_headers(&head), sorted_headers(&get));
    }

    #[test]
    fn delete_many_versioning_and_clock_requests() {
        let keys = vec!["mail/1.task".to_owned(), "a<b".to_owned()];
        let spec = requests().delete_many(&keys).expect("valid");
        assert_eq!(spec.method, "POST");
        assert_eq!(
            spec.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/?delete"
        );
        assert_eq!(
            sorted_headers(&spec),
            vec![
                ("content-md5", content_md5(&spec.body).as_str()),
                ("content-type", "application/xml"),
                ("host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"),
            ]
        );
        let body = String::from_utf8(spec.body.to_vec()).expect("utf-8");
        assert!(body.contains("<Quiet>true</Quiet>"), "{body}");
        assert!(body.contains("<Key>mail/1.task</Key>"), "{body}");
        assert!(body.contains("<Key>a&lt;b</Key>"), "{body}");

        let v = requests().versioning();
        assert_eq!(v.method, "GET");
        assert_eq!(v.op, Op::Versioning);
        assert_eq!(
            v.url(),
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/?versioning"
        );
        // V1 signs `versioning` as a sub-resource.
        let v1_sts = crate::store::sign::oss_v1::string_to_sign(
            &crate::store::sign::RequestParts {
                method: "GET",
                bucket: Some("examplebucket"),
                key: "",
                path: "/",
                query: &[("versioning", "")],
                headers: &[],
            },
            "D",
        );
        assert!(v1_sts.ends_with("/examplebucket/?versioning"), "{v1_sts}");

        let clock = requests().clock();
        assert_eq!(clock.method, "HEAD");
        assert_eq!(clock.accept_status, vec![404]);
        assert!(clock.url().ends_with("/bucketq-clock-probe"));
    }

    #[test]
    fn config_picks_signature_and_region() {
        let stats = Arc::new(RequestStats::default());
        let mut cfg = StoreConfig {
            kind: crate::config::StoreBackend::Oss,
            endpoint: Some("https://oss-cn-hongkong.aliyuncs.com".into()),
            bucket: "tasks".into(),
            access_key_id: Secret::new("LTAIid"),
            access_key_secret: Secret::new("shh-secret"),
            ..StoreConfig::default()
        };
        let store = OssStore::from_config(&cfg, Arc::clone(&stats)).expect("derived region");
        let dbg = format!("{store:?}");
        assert!(dbg.contains("OssV4(cn-hongkong)"), "{dbg}");
        assert!(
            !dbg.contains("shh-secret") && !dbg.contains("LTAIid"),
            "{dbg}"
        );
        assert!(store.atomic_conditional_copy());

        cfg.endpoint = Some("https://files.example.com".into());
        match OssStore::from_config(&cfg, Arc::clone(&stats)) {
            Err(StoreError::Misconfigured {
                field: "region", ..
            }) => {}
            other => panic!("a CNAME without region: {other:?}"),
        }
        cfg.region = Some("oss-cn-shanghai".into());
        let store = OssStore::from_config(&cfg, Arc::clone(&stats)).expect("region given");
        assert!(format!("{store:?}").contains("OssV4(cn-shanghai)"));
        cfg.region = None;
        cfg.signature = OssSignature::V1;
        let store = OssStore::from_config(&cfg, Arc::clone(&stats)).expect("v1 needs no region");
        assert!(format!("{store:?}").contains("OssV1"));
        assert_eq!(store.requests().style(), Style::Cname);

        // A private OSS on an IP is addressed path-style, as both Alibaba SDKs do.
        cfg.endpoint = Some("http://10.0.0.5:8080".into());
        let store = OssStore::from_config(&cfg, Arc::clone(&stats)).expect("ip endpoint");
        assert_eq!(store.requests().style(), Style::Path);
        let spec = store.requests().get("mail/1.task").expect("valid");
        assert_eq!(spec.url(), "http://10.0.0.5:8080/tasks/mail/1.task");

        cfg.endpoint = None;
        match OssStore::from_config(&cfg, stats) {
            Err(StoreError::Misconfigured {
                field: "endpoint", ..
            }) => {}
            other => panic!("no endpoint: {other:?}"),
        }
    }
}
