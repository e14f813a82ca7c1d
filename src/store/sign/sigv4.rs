//! AWS Signature Version 4 for S3 (`AWS4-HMAC-SHA256`), header-based.
//!
//! Each stage is public and tested against a published vector: the AWS signing test suite
//! (`awslabs/aws-c-auth` `tests/aws-signing-test-suite/v4/`) and the four worked examples of the
//! S3 API reference (`sig-v4-header-based-auth.html`), both quoted in
//! `shared/reference/oss-s3-api.md` §6.3 and §6.4.

use std::time::SystemTime;

use super::{header_value, hex, hmac_sha256, iso8601_basic, uri_encode, Credentials, RequestParts};
use crate::secret::Secret;

/// The algorithm name that opens the string to sign and the Authorization header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Payload hash for bodies the signature does not cover.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Sign `req` for `region`/`service` at `now`. `payload_sha256` is the hex SHA-256 of the body
/// or `UNSIGNED-PAYLOAD`. Returns the headers to add: `x-amz-date`, `x-amz-content-sha256`,
/// `authorization`.
///
/// Every header in `req.headers` is signed (so `host`, `content-type`, `content-md5`,
/// `x-amz-*` and conditional headers must all be passed); any `x-amz-date` or
/// `x-amz-content-sha256` given there is replaced by the values computed here, so a retry
/// re-signs cleanly with a fresh `now`.
pub fn sign(
    req: &RequestParts<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    payload_sha256: &str,
    now: SystemTime,
) -> Vec<(String, String)> {
    let amz_date = iso8601_basic(now);
    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| !is_signer_owned(name))
        .copied()
        .collect();
    headers.push(("x-amz-date", &amz_date));
    headers.push(("x-amz-content-sha256", payload_sha256));
    let token = creds.security_token.as_ref().map(|t| t.expose());
    if let Some(token) = token {
        // Temporary credentials: the session token travels in a signed header.
        headers.push((SECURITY_TOKEN, token));
    }
    let signed_req = RequestParts {
        headers: &headers,
        ..*req
    };

    let canonical = canonical_request(&signed_req, payload_sha256);
    let scope = credential_scope(&amz_date[..8], region, service);
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(&creds.secret, &amz_date[..8], region, service);
    let signed_headers = canonical_headers(&headers).signed;
    let auth = authorization(
        &creds.access_key_id,
        &scope,
        &signed_headers,
        &signature(&key, &to_sign),
    );
    let mut out = vec![
        ("x-amz-date".to_owned(), amz_date.clone()),
        ("x-amz-content-sha256".to_owned(), payload_sha256.to_owned()),
    ];
    if let Some(token) = token {
        out.push((SECURITY_TOKEN.to_owned(), token.to_owned()));
    }
    out.push(("authorization".to_owned(), auth));
    out
}

/// The header that carries a session token on S3.
pub const SECURITY_TOKEN: &str = "x-amz-security-token";

/// Headers whose value [`sign`] decides; a caller's copy would be signed twice.
fn is_signer_owned(name: &str) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case("x-amz-date")
        || name.eq_ignore_ascii_case("x-amz-content-sha256")
        || name.eq_ignore_ascii_case(SECURITY_TOKEN)
        || name.eq_ignore_ascii_case("authorization")
}

/// The canonical request: method, URI, query, headers, signed header names and payload hash,
/// one per line. The URI is `req.path` exactly as sent (S3 encodes once and never normalizes);
/// every header in `req.headers` is signed.
pub fn canonical_request(req: &RequestParts<'_>, payload_sha256: &str) -> String {
    let headers = canonical_headers(req.headers);
    let path = if req.path.is_empty() { "/" } else { req.path };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.query),
        headers.block,
        headers.signed,
        payload_sha256
    )
}

/// Canonical query string: names and values URI-encoded (`/` too), sorted by name then value,
/// always `name=value` even when the value is empty (`lifecycle=`), joined with `&`.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical header block and the signed-header list derived from the same headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHeaders {
    /// `name:value\n` per header, lower-cased names, sorted; ends with a newline.
    pub block: String,
    /// Lower-cased names joined with `;`, the `SignedHeaders` value.
    pub signed: String,
}

/// Canonicalize headers: lower-case names, trimmed values with inner runs of spaces collapsed,
/// repeated names joined with `,`, sorted by name.
pub fn canonical_headers(headers: &[(&str, &str)]) -> CanonicalHeaders {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let mut block = String::new();
    for name in &names {
        let value = header_value(headers, name).unwrap_or_default();
        block.push_str(name);
        block.push(':');
        block.push_str(&collapse_spaces(&value));
        block.push('\n');
    }
    CanonicalHeaders {
        block,
        signed: names.join(";"),
    }
}

/// Replace every run of spaces/tabs with one space, as SigV4 canonical headers require.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Credential scope `<yyyymmdd>/<region>/<service>/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign: algorithm, timestamp, scope and the hex SHA-256 of the canonical
/// request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        super::sha256_hex(canonical_request.as_bytes())
    )
}

/// The signing key: HMAC chain of `"AWS4" + secret` over date, region, service and
/// `aws4_request`. Valid for one day and scope, so callers could cache it; bucketq does not
/// need to.
pub fn signing_key(secret: &Secret, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_secret = format!("AWS4{}", secret.expose());
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Lower-case hex HMAC-SHA256 of the string to sign under the signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The `Authorization` header value, in the `", "`-separated form AWS documents.
pub fn authorization(
    access_key_id: &str,
    scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::store::sign::sha256_hex;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// AWS signing test suite (aws-c-auth `tests/aws-signing-test-suite/v4/`, context.json).
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_DATE: &str = "20150830T123600Z";

    /// S3 API reference `sig-v4-header-based-auth.html` examples (note `/` where the suite has `+`).
    const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const S3_HOST: &str = "examplebucket.s3.amazonaws.com";

    fn s3_creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: Secret::new(S3_SECRET),
            security_token: None,
        }
    }

    /// 2013-05-24T00:00:00Z, the time of every S3 API reference example.
    fn s3_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn parts<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
        headers: &'a [(&'a str, &'a str)],
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            bucket: None,
            key: "",
            path,
            query,
            headers,
        }
    }

    /// Signature of a suite case from its canonical request, through every stage.
    fn suite_signature(canonical: &str) -> String {
        let scope = credential_scope("20150830", "us-east-1", "service");
        let sts = string_to_sign(SUITE_DATE, &scope, canonical);
        let key = signing_key(
            &Secret::new(SUITE_SECRET),
            "20150830",
            "us-east-1",
            "service",
        );
        signature(&key, &sts)
    }

    #[test]
    fn suite_get_vanilla_every_stage() {
        // aws-c-auth suite v4/get-vanilla (header-canonical-request.txt, header-string-to-sign.txt,
        // header-signature.txt).
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ];
        let canonical = canonical_request(&parts("GET", "/", &[], &headers), EMPTY_SHA256);
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let scope = credential_scope("20150830", "us-east-1", "service");
        let sts = string_to_sign(SUITE_DATE, &scope, &canonical);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let key = signing_key(
            &Secret::new(SUITE_SECRET),
            "20150830",
            "us-east-1",
            "service",
        );
        let sig = signature(&key, &sts);
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            authorization("AKIDEXAMPLE", &scope, "host;x-amz-date", &sig),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn suite_get_vanilla_query_order_key_case() {
        // aws-c-auth suite v4/get-vanilla-query-order-key-case: `/?Param2=value2&Param1=value1`.
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ];
        let query = [("Param2", "value2"), ("Param1", "value1")];
        assert_eq!(canonical_query(&query), "Param1=value1&Param2=value2");
        let canonical = canonical_request(&parts("GET", "/", &query, &headers), EMPTY_SHA256);
        assert_eq!(
            suite_signature(&canonical),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn suite_get_vanilla_empty_query_key() {
        // aws-c-auth suite v4/get-vanilla-empty-query-key: `/?Param1=value1`.
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ];
        let query = [("Param1", "value1")];
        let canonical = canonical_request(&parts("GET", "/", &query, &headers), EMPTY_SHA256);
        assert_eq!(
            suite_signature(&canonical),
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"
        );
    }

    #[test]
    fn suite_get_vanilla_with_session_token() {
        // aws-c-auth suite v4/get-vanilla-with-session-token: the token is a signed header.
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
            (
                "X-Amz-Security-Token",
                "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
            ),
        ];
        let canonical = canonical_request(&parts("GET", "/", &[], &headers), EMPTY_SHA256);
        assert!(canonical.contains("\nhost;x-amz-date;x-amz-security-token\n"));
        assert_eq!(
            suite_signature(&canonical),
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
    }

    #[test]
    fn suite_post_vanilla() {
        // aws-c-auth suite v4/post-vanilla.
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ];
        let canonical = canonical_request(&parts("POST", "/", &[], &headers), EMPTY_SHA256);
        assert_eq!(
            suite_signature(&canonical),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn suite_get_space_unnormalized_signs_the_path_as_given() {
        // aws-c-auth suite v4/get-space-unnormalized: `/example space/` sent as
        // `/example%20space/`, not normalized and not encoded again (S3 behaviour).
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ];
        let canonical = canonical_request(
            &parts("GET", "/example%20space/", &[], &headers),
            EMPTY_SHA256,
        );
        assert!(canonical.starts_with("GET\n/example%20space/\n"));
        assert_eq!(
            suite_signature(&canonical),
            "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
        );
    }

    #[test]
    fn s3_signing_key_matches_the_api_reference() {
        // S3 API reference sig-v4-header-based-auth.html: SigningKey for 20130524/us-east-1/s3.
        let key = signing_key(&Secret::new(S3_SECRET), "20130524", "us-east-1", "s3");
        assert_eq!(
            hex(&key),
            "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378"
        );
    }

    /// Run `sign` and return (canonical request, string to sign, authorization) for checks.
    fn sign_s3(req: &RequestParts<'_>, payload: &str) -> (String, String, String) {
        let out = sign(req, &s3_creds(), "us-east-1", "s3", payload, s3_time());
        let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
        headers.extend(out.iter().take(2).map(|(n, v)| (n.as_str(), v.as_str())));
        let canonical = canonical_request(
            &RequestParts {
                headers: &headers,
                ..*req
            },
            payload,
        );
        let sts = string_to_sign(
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            &canonical,
        );
        let auth = out
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
            .expect("sign returns authorization");
        (canonical, sts, auth)
    }

    #[test]
    fn s3_example_1_get_object_with_range() {
        // S3 API reference sig-v4-header-based-auth.html, example "GET Object".
        let headers = [("Host", S3_HOST), ("Range", "bytes=0-9")];
        let req = parts("GET", "/test.txt", &[], &headers);
        let (canonical, sts, auth) = sign_s3(&req, EMPTY_SHA256);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sts.ends_with("\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"));
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn s3_example_2_put_object() {
        // S3 API reference sig-v4-header-based-auth.html, example "PUT Object".
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        let headers = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Host", S3_HOST),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        let req = parts("PUT", "/test%24file.text", &[], &headers);
        let (canonical, sts, auth) = sign_s3(&req, &payload);
        assert_eq!(
            canonical,
            "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n\
             host:examplebucket.s3.amazonaws.com\n\
             x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n\
             x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n\
             date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n\
             44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        assert!(sts.ends_with("\n9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"));
        assert!(auth.ends_with(
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        ));
    }

    #[test]
    fn s3_example_3_get_bucket_lifecycle_writes_empty_value_with_equals() {
        // S3 API reference sig-v4-header-based-auth.html, example "GET Bucket Lifecycle".
        let headers = [("Host", S3_HOST)];
        let query = [("lifecycle", "")];
        let req = parts("GET", "/", &query, &headers);
        let (canonical, sts, auth) = sign_s3(&req, EMPTY_SHA256);
        assert!(canonical.starts_with("GET\n/\nlifecycle=\n"));
        assert!(sts.ends_with("\n9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"));
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date, "));
        assert!(auth.ends_with(
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ));
    }

    #[test]
    fn s3_example_4_list_objects() {
        // S3 API reference sig-v4-header-based-auth.html, example "Get Bucket (List Objects)".
        let headers = [("Host", S3_HOST)];
        let query = [("prefix", "J"), ("max-keys", "2")];
        let req = parts("GET", "/", &query, &headers);
        let (canonical, sts, auth) = sign_s3(&req, EMPTY_SHA256);
        assert!(canonical.starts_with("GET\n/\nmax-keys=2&prefix=J\n"));
        assert!(sts.ends_with("\ndf57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"));
        assert!(auth.ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn sign_returns_date_and_payload_headers_and_replaces_callers_copies() {
        let headers = [
            ("Host", S3_HOST),
            ("X-Amz-Date", "19990101T000000Z"),
            ("x-amz-content-sha256", "stale"),
        ];
        let req = parts("GET", "/", &[], &headers);
        let out = sign(
            &req,
            &s3_creds(),
            "us-east-1",
            "s3",
            UNSIGNED_PAYLOAD,
            s3_time(),
        );
        assert_eq!(out[0], ("x-amz-date".into(), "20130524T000000Z".into()));
        assert_eq!(
            out[1],
            ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into())
        );
        assert!(out[2]
            .1
            .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date, "));
        // The result equals signing without the stale copies.
        let clean = [("Host", S3_HOST)];
        let again = sign(
            &parts("GET", "/", &[], &clean),
            &s3_creds(),
            "us-east-1",
            "s3",
            UNSIGNED_PAYLOAD,
            s3_time(),
        );
        assert_eq!(out, again);
    }

    #[test]
    fn query_values_encode_slash_space_and_plus() {
        let query = [
            ("prefix", "mail/a b+c"),
            ("list-type", "2"),
            ("continuation-token", "a/b=="),
        ];
        assert_eq!(
            canonical_query(&query),
            "continuation-token=a%2Fb%3D%3D&list-type=2&prefix=mail%2Fa%20b%2Bc"
        );
    }

    #[test]
    fn canonical_headers_trim_collapse_and_join_repeats() {
        let h = canonical_headers(&[
            ("X-Amz-Meta-A", "  two   words  "),
            ("host", "h"),
            ("x-amz-meta-a", "second"),
        ]);
        assert_eq!(h.block, "host:h\nx-amz-meta-a:two words,second\n");
        assert_eq!(h.signed, "host;x-amz-meta-a");
    }

    #[test]
    fn signature_changes_with_time_region_and_secret() {
        let headers = [("Host", S3_HOST)];
        let req = parts("GET", "/k", &[], &headers);
        let base = sign(
            &req,
            &s3_creds(),
            "us-east-1",
            "s3",
            EMPTY_SHA256,
            s3_time(),
        );
        let later = sign(
            &req,
            &s3_creds(),
            "us-east-1",
            "s3",
            EMPTY_SHA256,
            s3_time() + Duration::from_secs(1),
        );
        let other_region = sign(
            &req,
            &s3_creds(),
            "eu-west-1",
            "s3",
            EMPTY_SHA256,
            s3_time(),
        );
        let other_secret = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: Secret::new("different"),
            security_token: None,
        };
        let other = sign(
            &req,
            &other_secret,
            "us-east-1",
            "s3",
            EMPTY_SHA256,
            s3_time(),
        );
        assert_ne!(base[2], later[2]);
        assert_ne!(base[2], other_region[2]);
        assert_ne!(base[2], other[2]);
        assert!(!base[2].1.contains(S3_SECRET));
    }

    /// One daemon-shaped request signed by botocore 1.44.8 `S3SigV4Auth` (an independent
    /// implementation; run from the moto venv with the clock fixed at 2025-03-01T08:00:00Z,
    /// suite credentials, region us-east-1, service s3, empty-body payload hash).
    struct BotocoreCase {
        method: &'static str,
        path: &'static str,
        query: &'static [(&'static str, &'static str)],
        headers: &'static [(&'static str, &'static str)],
        signed_headers: &'static str,
        signature: &'static str,
    }

    const BOTOCORE_CASES: &[BotocoreCase] = &[
        // Create-if-absent PutObject of a key with space, `+` and non-ASCII.
        BotocoreCase {
            method: "PUT",
            path: "/bucketq-test/mail/a%20b%2Bc%20%C3%A9.task",
            query: &[],
            headers: &[
                ("host", "127.0.0.1:5055"),
                ("content-type", "application/json"),
                ("if-none-match", "*"),
                ("x-amz-meta-claim-token", "0f8c"),
                ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ],
            signed_headers: "content-md5;content-type;host;if-none-match;x-amz-content-sha256;\
                             x-amz-date;x-amz-meta-claim-token",
            signature: "bfb7ed9c34cb0e3b0c908a2700c74b5e555bffe7dd7981680d070a8576fde8da",
        },
        // ListObjectsV2 page 2: token with `+`, `/`, `=`; prefix and start-after with `/`, space.
        BotocoreCase {
            method: "GET",
            path: "/bucketq-test",
            query: &[
                ("list-type", "2"),
                ("prefix", "mail/"),
                ("max-keys", "1000"),
                ("encoding-type", "url"),
                ("start-after", "mail/a b"),
                ("continuation-token", "1ueGcxL+PRx1Tr/XY="),
            ],
            headers: &[("host", "127.0.0.1:5055")],
            signed_headers: "host;x-amz-content-sha256;x-amz-date",
            signature: "3a6516f44496b6b3b86141ea83dec7e09a3de2cc3a1b75ddb059087bd922f6a3",
        },
        // CopyObject with a source condition and metadata REPLACE.
        BotocoreCase {
            method: "PUT",
            path: "/bucketq-test/mail/0001.lock",
            query: &[],
            headers: &[
                ("host", "127.0.0.1:5055"),
                ("x-amz-copy-source", "/bucketq-test/mail/0001%2B%C3%A9.task"),
                ("x-amz-copy-source-if-match", "\"5b3c\""),
                ("x-amz-metadata-directive", "REPLACE"),
            ],
            signed_headers: "host;x-amz-content-sha256;x-amz-copy-source;\
                             x-amz-copy-source-if-match;x-amz-date;x-amz-metadata-directive",
            signature: "71b48c5813d20a1c349a5578d03b1326a1d45bb79f02e4f151830da9dbff8852",
        },
        // DeleteObjects: valueless `?delete` signs as `delete=`.
        BotocoreCase {
            method: "POST",
            path: "/bucketq-test",
            query: &[("delete", "")],
            headers: &[
                ("host", "127.0.0.1:5055"),
                ("content-md5", "abc=="),
                ("content-type", "application/xml"),
            ],
            signed_headers: "content-md5;content-type;host;x-amz-content-sha256;x-amz-date",
            signature: "2e1bd2bcaa9b9e6338fb8fd64063739f97416bfc1f42a2e475b5157abd1c5855",
        },
    ];

    #[test]
    fn daemon_shaped_requests_match_botocore() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: Secret::new(SUITE_SECRET),
            security_token: None,
        };
        // 2025-03-01T08:00:00Z
        let now = UNIX_EPOCH + Duration::from_secs(1_740_816_000);
        for case in BOTOCORE_CASES {
            let req = parts(case.method, case.path, case.query, case.headers);
            let out = sign(&req, &creds, "us-east-1", "s3", EMPTY_SHA256, now);
            assert_eq!(
                out[2].1,
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250301/us-east-1/s3/aws4_request, \
                     SignedHeaders={}, Signature={}",
                    case.signed_headers, case.signature
                ),
                "{} {}",
                case.method,
                case.path
            );
        }
    }
}
