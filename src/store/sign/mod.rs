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

/// An access key pair, and the security token that temporary (STS) keys come with. The
/// secret and token are [`Secret`]s so they cannot reach logs.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id (sent in clear in the Authorization header).
    pub access_key_id: String,
    /// Access key secret (only ever used as an HMAC key).
    pub secret: Secret,
    /// The STS security token of temporary keys: sent (and signed) as `x-oss-security-token`
    /// or `x-amz-security-token`. `None` for a long-lived key pair.
    pub security_token: Option<Secret>,
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

/// Lower-case hex of `bytes`: every signature and payload hash is spelled this way.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Hex SHA-256 of a body: the `x-amz-content-sha256` value S3 wants for a signed payload.
pub fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(body))
}

/// Base64 MD5 of a body: the `Content-MD5` header DeleteObjects requires (both S3 and OSS
/// refuse a multi-delete without it).
pub fn content_md5(body: &[u8]) -> String {
    use base64::Engine;
    use md5::{Digest, Md5};
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

/// HMAC-SHA256 of `data` under `key`: the one primitive both V4 signers chain.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `now` as ISO 8601 basic UTC (`20231216T162057Z`), the timestamp SigV4 and OSS V4 sign.
/// Derived from humantime's RFC 3339 form so no calendar code lives here.
pub fn iso8601_basic(now: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(signable_time(now))
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// `now` clamped to 1970-01-01 ..= 9999-12-31T23:59:59Z, the range the date formatters accept
/// (they panic outside it). A clock that far off yields a request the store rejects as skewed,
/// which is the right failure, instead of a panic in the signer.
pub(crate) fn signable_time(now: std::time::SystemTime) -> std::time::SystemTime {
    use std::time::{Duration, UNIX_EPOCH};
    const LAST_SECOND_OF_9999: u64 = 253_402_300_799;
    let latest = UNIX_EPOCH + Duration::from_secs(LAST_SECOND_OF_9999);
    now.clamp(UNIX_EPOCH, latest)
}

/// Value of header `name` (case-insensitive) in `headers`, when present; repeated headers are
/// joined with `,` as HTTP allows.
pub(crate) fn header_value(headers: &[(&str, &str)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn uri_encode_keeps_unreserved_and_encodes_the_rest_upper_case() {
        assert_eq!(uri_encode("aZ09-._~", true), "aZ09-._~");
        assert_eq!(uri_encode("a b+c/d", false), "a%20b%2Bc/d");
        assert_eq!(uri_encode("a b+c/d", true), "a%20b%2Bc%2Fd");
        assert_eq!(uri_encode("test$file", false), "test%24file");
        assert_eq!(uri_encode("é", false), "%C3%A9");
    }

    #[test]
    fn iso8601_basic_matches_the_vector_times() {
        // OSS V4-1 (Go v2 signer_test.go TestV4AuthHeader): 1702743657 = 20231216T162057Z.
        let t = UNIX_EPOCH + Duration::from_secs(1_702_743_657);
        assert_eq!(iso8601_basic(t), "20231216T162057Z");
        // Sub-second parts are dropped, not rounded.
        let t = UNIX_EPOCH + Duration::from_millis(1_440_938_160_999);
        assert_eq!(iso8601_basic(t), "20150830T123600Z");
    }

    #[test]
    fn times_outside_the_formatters_range_are_clamped_not_panicking() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(iso8601_basic(before_epoch), "19700101T000000Z");
        let far_future = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(iso8601_basic(far_future), "99991231T235959Z");
        assert_eq!(
            httpdate::fmt_http_date(signable_time(far_future)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn sha256_hex_of_empty_body_is_the_well_known_hash() {
        // AWS S3 API reference, sig-v4-header-based-auth: the empty-body hash.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // §6.4 example 2 body.
        assert_eq!(
            sha256_hex(b"Welcome to Amazon S3."),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
    }

    #[test]
    fn content_md5_of_empty_body_matches_the_oss_lock_vector() {
        // §1.4 PutObject lock vector sends Content-MD5 1B2M2Y8AsgTpgAmY7PhCfg== for an empty body.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_ne!(content_md5(b"x"), content_md5(b""));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: crate::secret::Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            security_token: None,
        };
        let shown = format!("{creds:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }

    #[test]
    fn header_value_is_case_insensitive_and_joins_repeats() {
        let h = [("Content-Type", " text/plain "), ("X-A", "1"), ("x-a", "2")];
        assert_eq!(
            header_value(&h, "content-type").as_deref(),
            Some("text/plain")
        );
        assert_eq!(header_value(&h, "x-a").as_deref(), Some("1,2"));
        assert_eq!(header_value(&h, "missing"), None);
    }
}
