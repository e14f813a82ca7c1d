//! The wire description of one store request and the answer it got.
//!
//! Stores build a [`RequestSpec`] with a pure function (method, URL parts, every header and query
//! parameter), so each operation's request can be checked against the reference without a
//! network; the [`super::Transport`] signs and sends it.

use std::time::SystemTime;

use bytes::Bytes;

use crate::store::sign::uri_encode;
use crate::store::{Metadata, ObjectHead, ObjectMeta, Op, StoreError};

/// What a `412 Precondition Failed` answer to this request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum On412 {
    /// A source or `If-Match` condition failed: [`StoreError::PreconditionFailed`].
    #[default]
    PreconditionFailed,
    /// The request was an S3 create-if-absent (`If-None-Match: *`): the key exists,
    /// [`StoreError::AlreadyExists`].
    AlreadyExists,
}

/// One request, fully described before it is signed. Header names are lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The operation it is counted under.
    pub op: Op,
    /// `GET`, `HEAD`, `PUT`, `POST` or `DELETE`.
    pub method: &'static str,
    /// `scheme://host[:port]`, no trailing slash.
    pub origin: String,
    /// The bucket, for the OSS signers' canonical resource (`None` for service requests).
    pub bucket: Option<String>,
    /// The object key, not encoded (`""` for bucket-level requests); the OSS signers put it in
    /// the canonical resource.
    pub key: String,
    /// What errors name: the key, or the prefix of a listing.
    pub subject: String,
    /// The URI path as sent, percent-encoded with [`uri_encode`].
    pub path: String,
    /// Query parameters, not encoded; `""` for a valueless parameter such as `versioning`.
    pub query: Vec<(String, String)>,
    /// Headers to send and sign, `host` included, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body (empty for GET, HEAD, DELETE).
    pub body: Bytes,
    /// True for a create-if-absent write: a retry after an attempt that may have been applied
    /// turns "already exists" into [`StoreError::Ambiguous`].
    pub create_if_absent: bool,
    /// How to read a 412.
    pub on_412: On412,
    /// A CopyObject may answer 200 with an `<Error>` body; parse every 2xx body for one.
    pub error_in_ok_body: bool,
    /// Non-2xx statuses returned as answers rather than errors (the clock probe's 404).
    pub accept_status: Vec<u16>,
}

impl RequestSpec {
    /// A request with no body, headers other than `host`, or special handling.
    pub fn new(op: Op, method: &'static str, origin: &str, host: &str, path: String) -> Self {
        RequestSpec {
            op,
            method,
            origin: origin.to_owned(),
            bucket: None,
            key: String::new(),
            subject: String::new(),
            path,
            query: Vec::new(),
            headers: vec![("host".to_owned(), host.to_owned())],
            body: Bytes::new(),
            create_if_absent: false,
            on_412: On412::default(),
            error_in_ok_body: false,
            accept_status: Vec::new(),
        }
    }

    /// Add a header (name lower-cased).
    pub fn header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Add a query parameter.
    pub fn param(&mut self, name: &str, value: impl Into<String>) {
        self.query.push((name.to_owned(), value.into()));
    }

    /// The host name requests go to (the origin without scheme and port).
    pub fn host(&self) -> &str {
        let authority = self
            .origin
            .split_once("://")
            .map_or(self.origin.as_str(), |(_, rest)| rest);
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    }

    /// Value of a header this request carries.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query string as sent: names and values encoded with the same [`uri_encode`] the
    /// signers use (so the wire form and the signed form agree), a valueless parameter as a bare
    /// name, in the order added.
    pub fn query_string(&self) -> String {
        self.query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    uri_encode(k, true)
                } else {
                    format!("{}={}", uri_encode(k, true), uri_encode(v, true))
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The full URL.
    pub fn url(&self) -> String {
        let query = self.query_string();
        if query.is_empty() {
            format!("{}{}", self.origin, self.path)
        } else {
            format!("{}{}?{}", self.origin, self.path, query)
        }
    }
}

/// Add user metadata as `<prefix><name>` headers (`x-amz-meta-`, `x-oss-meta-`). Names and values
/// travel in HTTP headers, so they must be printable ASCII (bucketq's bookkeeping is, by
/// design); anything else is refused here rather than mangled on the wire.
pub fn add_user_meta(
    spec: &mut RequestSpec,
    prefix: &str,
    meta: &Metadata,
) -> Result<(), StoreError> {
    for (name, value) in meta {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(StoreError::InvalidKey {
                key: spec.subject.clone(),
                reason: format!("user metadata name {name:?} must be letters, digits, - or _"),
            });
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(StoreError::InvalidKey {
                key: spec.subject.clone(),
                reason: format!("user metadata {name:?} must be printable ASCII"),
            });
        }
        spec.header(&format!("{prefix}{}", name.to_ascii_lowercase()), value);
    }
    Ok(())
}

/// Refuse keys an HTTP store cannot address faithfully: empty, longer than 1024 bytes, or with
/// a `.`/`..` path segment (URL parsers collapse those, so another key would be touched).
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        Some("a key cannot be empty")
    } else if key.len() > 1024 {
        Some("a key is at most 1024 bytes")
    } else if key.split('/').any(|seg| seg == "." || seg == "..") {
        Some("a key cannot contain a \".\" or \"..\" path segment")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// An answer from the store.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
    /// The store's clock (the `Date` header), when it sent one.
    pub server_time: Option<SystemTime>,
}

impl Response {
    /// A response from its parts; `server_time` is read from the `Date` header.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Bytes) -> Self {
        let mut resp = Response {
            status,
            headers,
            body,
            server_time: None,
        };
        resp.server_time = resp
            .header("date")
            .and_then(|d| httpdate::parse_http_date(d).ok());
        resp
    }

    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `ETag` header without quotes.
    pub fn etag(&self) -> Option<String> {
        self.header("etag")
            .map(|e| e.trim().trim_matches('"').to_owned())
    }

    /// User metadata from the headers starting with `prefix` (`x-amz-meta-`), prefix removed.
    pub fn user_meta(&self, prefix: &str) -> Metadata {
        self.headers
            .iter()
            .filter_map(|(n, v)| {
                let lower = n.to_ascii_lowercase();
                lower
                    .strip_prefix(prefix)
                    .map(|name| (name.to_owned(), v.clone()))
            })
            .collect()
    }

    /// Key, ETag, LastModified, size, user metadata (`meta_prefix`, e.g. `x-oss-meta-`) and
    /// content type of a GET or HEAD answer. `size` is the body length for a GET; a HEAD's comes
    /// from `Content-Length`.
    pub fn object_head(
        &self,
        op: Op,
        key: &str,
        meta_prefix: &str,
        size: Option<u64>,
    ) -> Result<ObjectHead, StoreError> {
        let bad = |message: &str| StoreError::Unexpected {
            key: key.to_owned(),
            op,
            message: message.to_owned(),
        };
        let etag = self.etag().ok_or_else(|| bad("the answer has no ETag"))?;
        let last_modified = self
            .header("last-modified")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .ok_or_else(|| bad("the answer has no valid Last-Modified"))?;
        let size = match size {
            Some(n) => n,
            None => self
                .header("content-length")
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| bad("the answer has no valid Content-Length"))?,
        };
        Ok(ObjectHead {
            meta: ObjectMeta {
                key: key.to_owned(),
                etag,
                last_modified,
                size,
            },
            user_meta: self.user_meta(meta_prefix),
            content_type: self.header("content-type").map(str::to_owned),
        })
    }

    /// The store's clock, or an error naming what is missing: every S3 and OSS answer carries a
    /// `Date`, and lock ages are meaningless without it.
    pub fn require_server_time(&self, op: Op, key: &str) -> Result<SystemTime, StoreError> {
        self.server_time.ok_or_else(|| StoreError::Unexpected {
            key: key.to_owned(),
            op,
            message: "the answer has no valid Date header".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_query_like_the_signers_and_keeps_bare_names() {
        let mut spec = RequestSpec::new(Op::List, "GET", "http://h:1", "h:1", "/b".into());
        spec.param("list-type", "2");
        spec.param("prefix", "mail/a b+c");
        spec.param("versioning", "");
        assert_eq!(
            spec.url(),
            "http://h:1/b?list-type=2&prefix=mail%2Fa%20b%2Bc&versioning"
        );
    }

    #[test]
    fn user_meta_refuses_non_ascii_values_and_odd_names() {
        let mut spec = RequestSpec::new(Op::Put, "PUT", "http://h", "h", "/k".into());
        let mut meta = Metadata::new();
        meta.insert("bq-token".into(), "abc".into());
        add_user_meta(&mut spec, "x-amz-meta-", &meta).expect("ascii metadata");
        assert_eq!(spec.header_value("x-amz-meta-bq-token"), Some("abc"));

        meta.insert("bq-error".into(), "caf\u{e9}".into());
        let err = add_user_meta(&mut spec, "x-amz-meta-", &meta).expect_err("non-ascii");
        assert!(err.to_string().contains("printable ASCII"), "{err}");

        let mut odd = Metadata::new();
        odd.insert("a b".into(), "v".into());
        assert!(add_user_meta(&mut spec, "x-amz-meta-", &odd).is_err());
    }

    #[test]
    fn keys_with_dot_segments_or_empty_are_refused() {
        assert!(check_key("mail/1.task").is_ok());
        assert!(check_key("a/.hidden/..x").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a/../b").is_err());
        assert!(check_key("./b").is_err());
        assert!(check_key("a/..").is_err());
        assert!(check_key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn response_reads_date_etag_and_meta() {
        let resp = Response::new(
            200,
            vec![
                ("date".into(), "Sat, 01 Mar 2025 08:00:00 GMT".into()),
                ("etag".into(), "\"ABC\"".into()),
                ("x-oss-meta-bq-token".into(), "t".into()),
                ("X-Oss-Meta-Other".into(), "o".into()),
            ],
            Bytes::new(),
        );
        assert_eq!(
            resp.server_time,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_740_816_000))
        );
        assert_eq!(resp.etag().as_deref(), Some("ABC"));
        let meta = resp.user_meta("x-oss-meta-");
        assert_eq!(meta.get("bq-token").map(String::as_str), Some("t"));
        assert_eq!(meta.get("other").map(String::as_str), Some("o"));
        assert_eq!(meta.len(), 2);
    }
}
