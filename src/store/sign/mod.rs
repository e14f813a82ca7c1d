//! Request signing: pure functions with the time passed in, each stage (canonical request,
//! string to sign, signature) public so it can be tested against the published vectors in
//! `shared/reference/oss-s3-api.md`.
//!
//! Every `sign` returns the headers the caller must add to the request (it never mutates a
//! request), so the transport can re-sign on each retry with a fresh time.

pub mod oss_v1;
pub mod oss_v4;
pub mod sigv4;

use crate::secret::Secret;

/// An access key pair. The secret is a [`Secret`] so it cannot reach logs.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id (sent in clear in the Authorization header).
    pub access_key_id: String,
    /// Access key secret (only ever used as an HMAC key).
    pub secret: Secret,
}

/// The parts of an HTTP request that signatures cover.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// `GET`, `PUT`, `HEAD`, `DELETE`, `POST`.
    pub method: &'a str,
    /// The bucket the request addresses (`None` for service-level requests).
    pub bucket: Option<&'a str>,
    /// The object key, not encoded (`""` for bucket-level requests such as ListObjectsV2).
    pub key: &'a str,
    /// The URI path exactly as sent on the wire, percent-encoded (`/bucket/key` path-style,
    /// `/key` virtual-hosted). SigV4 signs this; the OSS signers build their own resource from
    /// `bucket` and `key`.
    pub path: &'a str,
    /// Query parameters, not encoded; valueless parameters (`?versioning`) have `""`.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers that will be sent (any case), including `host` and `content-type` when sent.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Percent-encode per RFC 3986 as S3 and OSS expect: unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) kept, everything else `%XX` upper-case; `/` kept unless
/// `encode_slash`.
pub fn uri_encode(input: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
