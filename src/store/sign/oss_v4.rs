//! Alibaba OSS signature V4 (`OSS4-HMAC-SHA256`).
//!
//! Shaped like SigV4 but different in the details that matter: the canonical URI is always
//! `/bucket/key` (even for virtual-hosted and CNAME requests), an empty query value is written
//! as a bare name (no `=`), only `x-oss-*`, `content-type`, `content-md5` and the named
//! "additional headers" are signed, and the key chain starts from `"aliyun_v4" + secret`.
//! Each stage is public and tested against `shared/reference/oss-s3-api.md` §2.4 (the SDK
//! vectors and the official doc example) and §2.5.

use std::time::SystemTime;

use super::{header_value, hex, hmac_sha256, iso8601_basic, uri_encode, Credentials, RequestParts};
use crate::secret::Secret;

/// The algorithm name that opens the string to sign and the Authorization header.
pub const ALGORITHM: &str = "OSS4-HMAC-SHA256";

/// The only payload hash OSS accepts in `x-oss-content-sha256` (EC `0002-00000214`).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Product string of the scope for ordinary OSS (CloudBox uses `oss-cloudbox`).
pub const PRODUCT: &str = "oss";

/// Less common signing choices, for [`sign_with`].
#[derive(Debug, Clone, Copy)]
pub struct SignOptions<'a> {
    /// Region ID without the `oss-` prefix, e.g. `cn-hangzhou`.
    pub region: &'a str,
    /// Scope product, [`PRODUCT`] unless signing for CloudBox.
    pub product: &'a str,
    /// Extra headers to sign (e.g. `host`); default-signed and absent names are dropped.
    pub additional_headers: &'a [&'a str],
}

/// Sign `req` for `region` (e.g. `cn-hangzhou`) at `now`, with an unsigned payload. Returns the
/// headers to add: `x-oss-date`, `x-oss-content-sha256`, `authorization`.
///
/// No additional headers are signed (in particular not `host`), so the same signature works
/// for the default endpoint and a CNAME.
pub fn sign(
    req: &RequestParts<'_>,
    creds: &Credentials,
    region: &str,
    now: SystemTime,
) -> Vec<(String, String)> {
    let opts = SignOptions {
        region,
        product: PRODUCT,
        additional_headers: &[],
    };
    sign_with(req, creds, &opts, now)
}

/// [`sign`] with a product and additional headers. Any `x-oss-date` or `x-oss-content-sha256`
/// in `req.headers` is replaced by the values computed here, so a retry re-signs cleanly.
pub fn sign_with(
    req: &RequestParts<'_>,
    creds: &Credentials,
    opts: &SignOptions<'_>,
    now: SystemTime,
) -> Vec<(String, String)> {
    let oss_date = iso8601_basic(now);
    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| !is_signer_owned(name))
        .copied()
        .collect();
    headers.push(("x-oss-date", &oss_date));
    headers.push(("x-oss-content-sha256", UNSIGNED_PAYLOAD));
    let token = creds.security_token.as_ref().map(|t| t.expose());
    if let Some(token) = token {
        // An `x-oss-*` header, so signed like the others (reference §4.5).
        headers.push((SECURITY_TOKEN, token));
    }
    let signed_req = RequestParts {
        headers: &headers,
        ..*req
    };

    let additional = additional_headers(&headers, opts.additional_headers);
    let canonical = canonical_request(&signed_req, &additional);
    let date = &oss_date[..8];
    let scope = scope(date, opts.region, opts.product);
    let to_sign = string_to_sign(&oss_date, &scope, &canonical);
    let key = signing_key(&creds.secret, date, opts.region, opts.product);
    let auth = authorization(
        &creds.access_key_id,
        &scope,
        &additional,
        &signature(&key, &to_sign),
    );
    let mut out = vec![
        ("x-oss-date".to_owned(), oss_date.clone()),
        (
            "x-oss-content-sha256".to_owned(),
            UNSIGNED_PAYLOAD.to_owned(),
        ),
    ];
    if let Some(token) = token {
        out.push((SECURITY_TOKEN.to_owned(), token.to_owned()));
    }
    out.push(("authorization".to_owned(), auth));
    out
}

/// The header that carries an STS token on OSS (V4 and V1 alike).
pub const SECURITY_TOKEN: &str = "x-oss-security-token";

/// Headers whose value [`sign_with`] decides.
fn is_signer_owned(name: &str) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case("x-oss-date")
        || name.eq_ignore_ascii_case("x-oss-content-sha256")
        || name.eq_ignore_ascii_case(SECURITY_TOKEN)
        || name.eq_ignore_ascii_case("authorization")
}

/// True for the headers OSS V4 always signs: `x-oss-*`, `content-type`, `content-md5`
/// (`name` already lower-case).
fn is_default_signed(name: &str) -> bool {
    name.starts_with("x-oss-") || name == "content-type" || name == "content-md5"
}

/// The canonical request: method, URI, query, headers, additional header names and payload
/// hash. `additional` must come from [`additional_headers`].
pub fn canonical_request(req: &RequestParts<'_>, additional: &[String]) -> String {
    let payload = header_value(req.headers, "x-oss-content-sha256")
        .unwrap_or_else(|| UNSIGNED_PAYLOAD.to_owned());
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.bucket, req.key),
        canonical_query(req.query),
        canonical_headers(req.headers, additional),
        additional.join(";"),
        payload
    )
}

/// Canonical URI: `UriEncode("/" + bucket + "/" + key)` keeping `/`; `/bucket/` for
/// bucket-level requests, `/` without a bucket. The bucket is included even though requests
/// are virtual-hosted.
pub fn canonical_uri(bucket: Option<&str>, key: &str) -> String {
    match bucket {
        Some(bucket) => uri_encode(&format!("/{bucket}/{key}"), false),
        None => "/".to_owned(),
    }
}

/// Canonical query: every parameter, names and values URI-encoded (`/` too), sorted by encoded
/// name, `name=value` or the bare `name` when the value is empty, joined with `&`.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The additional headers actually signed: `requested` lower-cased, minus default-signed names
/// and names absent from `headers`, sorted and deduplicated (OSS rejects a listed-but-absent
/// or default-signed name, EC `0002-00000209`/`210`).
pub fn additional_headers(headers: &[(&str, &str)], requested: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = requested
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !is_default_signed(n) && header_value(headers, n).is_some())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Canonical headers: the default-signed headers plus `additional`, as lower-cased
/// `name:trimmed value\n` lines sorted by name, repeated names joined with `,`.
pub fn canonical_headers(headers: &[(&str, &str)], additional: &[String]) -> String {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.trim().to_ascii_lowercase())
        .filter(|n| is_default_signed(n) || additional.contains(n))
        .collect();
    names.sort();
    names.dedup();
    let mut block = String::new();
    for name in &names {
        block.push_str(name);
        block.push(':');
        block.push_str(&header_value(headers, name).unwrap_or_default());
        block.push('\n');
    }
    block
}

/// Scope `<yyyymmdd>/<region>/<product>/aliyun_v4_request`.
pub fn scope(date: &str, region: &str, product: &str) -> String {
    format!("{date}/{region}/{product}/aliyun_v4_request")
}

/// The string to sign: algorithm, `x-oss-date`, scope and the hex SHA-256 of the canonical
/// request.
pub fn string_to_sign(oss_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{oss_date}\n{scope}\n{}",
        super::sha256_hex(canonical_request.as_bytes())
    )
}

/// The signing key: HMAC chain of `"aliyun_v4" + secret` over date, region, product and
/// `aliyun_v4_request`.
pub fn signing_key(secret: &Secret, date: &str, region: &str, product: &str) -> [u8; 32] {
    let k_secret = format!("aliyun_v4{}", secret.expose());
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_product = hmac_sha256(&k_region, product.as_bytes());
    hmac_sha256(&k_product, b"aliyun_v4_request")
}

/// Lower-case hex HMAC-SHA256 of the string to sign under the signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The `Authorization` value in the Go v2 SDK form (`,` without spaces); `AdditionalHeaders=`
/// only when there are some, since an empty one is rejected (EC `0002-00000209`).
pub fn authorization(
    access_key_id: &str,
    scope: &str,
    additional: &[String],
    signature: &str,
) -> String {
    let additional = if additional.is_empty() {
        String::new()
    } else {
        format!(",AdditionalHeaders={}", additional.join(";"))
    };
    format!("{ALGORITHM} Credential={access_key_id}/{scope}{additional},Signature={signature}")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn creds(ak: &str, sk: &str) -> Credentials {
        Credentials {
            access_key_id: ak.into(),
            secret: Secret::new(sk),
            security_token: None,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn auth_of(out: &[(String, String)]) -> &str {
        out.iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str())
            .expect("sign returns authorization")
    }

    /// Common inputs of the SDK vectors (Go v2 `oss/signer/signer_test.go` TestV4AuthHeader*,
    /// Python v2 `tests/unit/signer/test_v4.py`).
    const SDK_HEADERS: &[(&str, &str)] = &[
        ("x-oss-head1", "value"),
        ("abc", "value"),
        ("ZAbc", "value"),
        ("XYZ", "value"),
        ("content-type", "text/plain"),
        ("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    const SDK_QUERY: &[(&str, &str)] = &[
        ("param1", "value1"),
        ("+param1", "value3"),
        ("|param1", "value4"),
        ("+param2", ""),
        ("|param2", ""),
        ("param2", ""),
    ];

    fn sdk_request<'a>(headers: &'a [(&'a str, &'a str)]) -> RequestParts<'a> {
        RequestParts {
            method: "PUT",
            bucket: Some("bucket"),
            key: "1234+-/123/1.txt",
            path: "/1234%2B-/123/1.txt",
            query: SDK_QUERY,
            headers,
        }
    }

    /// `headers` plus the x-oss-date the signer adds, for the stage functions.
    fn with_date<'a>(headers: &[(&'a str, &'a str)], date: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut all = headers.to_vec();
        all.push(("x-oss-date", date));
        all
    }

    #[test]
    fn sdk_v4_1_every_stage() {
        // Go v2 signer_test.go TestV4AuthHeader / Python v2 test_auth_header: reference §2.4 V4-1.
        let headers = with_date(SDK_HEADERS, "20231216T162057Z");
        let req = sdk_request(&headers);
        let additional = additional_headers(&headers, &[]);
        let canonical = canonical_request(&req, &additional);
        assert_eq!(
            canonical,
            "PUT\n/bucket/1234%2B-/123/1.txt\n\
             %2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\n\
             content-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\n\
             x-oss-date:20231216T162057Z\nx-oss-head1:value\n\n\nUNSIGNED-PAYLOAD"
        );
        let scope = scope("20231216", "cn-hangzhou", PRODUCT);
        let sts = string_to_sign("20231216T162057Z", &scope, &canonical);
        assert_eq!(
            sts,
            "OSS4-HMAC-SHA256\n20231216T162057Z\n20231216/cn-hangzhou/oss/aliyun_v4_request\n\
             f4613657f1b108998e8dbd10a1aa5da621dc2c6e02c9ddec0f163664848704c4"
        );
        let key = signing_key(&Secret::new("sk"), "20231216", "cn-hangzhou", PRODUCT);
        assert_eq!(
            hex(&key),
            "b412a03b134ebddd720f5167b5de6db66620ebb3b01cff4d49e3ccb09f8de97f"
        );
        assert_eq!(
            signature(&key, &sts),
            "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
        );
    }

    #[test]
    fn sdk_v4_1_through_sign() {
        // Go v2 signer_test.go TestV4AuthHeader: the whole Authorization value.
        let out = sign(
            &sdk_request(SDK_HEADERS),
            &creds("ak", "sk"),
            "cn-hangzhou",
            at(1_702_743_657),
        );
        assert_eq!(out[0], ("x-oss-date".into(), "20231216T162057Z".into()));
        assert_eq!(
            out[1],
            ("x-oss-content-sha256".into(), "UNSIGNED-PAYLOAD".into())
        );
        assert_eq!(
            auth_of(&out),
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,\
             Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
        );
    }

    #[test]
    fn sdk_v4_2_security_token_is_a_signed_header() {
        // Go v2 signer_test.go TestV4AuthHeaderToken: reference §2.4 V4-2. The token comes
        // with the credentials; the signer adds (and signs) the header itself.
        let mut headers = SDK_HEADERS.to_vec();
        headers.push(("x-oss-security-token", "token"));
        let req = sdk_request(SDK_HEADERS);
        let sts_creds = Credentials {
            security_token: Some(Secret::new("token")),
            ..creds("ak", "sk")
        };
        let out = sign(&req, &sts_creds, "cn-hangzhou", at(1_702_784_856));
        assert!(out.contains(&("x-oss-security-token".into(), "token".into())));
        // A caller's own copy of the header is replaced, not signed twice.
        let stale = sign(
            &sdk_request(&headers),
            &sts_creds,
            "cn-hangzhou",
            at(1_702_784_856),
        );
        assert_eq!(auth_of(&stale), auth_of(&out));
        let signed = with_date(&headers, "20231217T034736Z");
        let canonical = canonical_request(
            &RequestParts {
                headers: &signed,
                ..req
            },
            &[],
        );
        assert!(canonical.contains("\nx-oss-security-token:token\n"));
        let sts = string_to_sign(
            "20231217T034736Z",
            "20231217/cn-hangzhou/oss/aliyun_v4_request",
            &canonical,
        );
        assert!(sts.ends_with("\n69494678fb11579d4ee12996e2796d9e2ba43c34aa4c723c4aec018f3d6b86b8"));
        assert_eq!(
            auth_of(&out),
            "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,\
             Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"
        );
    }

    #[test]
    fn sdk_v4_3_additional_headers() {
        // Go v2 signer_test.go TestV4AuthHeaderWithAdditionalHeaders: reference §2.4 V4-3.
        let headers = with_date(SDK_HEADERS, "20231216T172512Z");
        let additional = additional_headers(&headers, &["ZAbc", "abc"]);
        assert_eq!(additional, ["abc", "zabc"]);
        let canonical = canonical_request(&sdk_request(&headers), &additional);
        assert_eq!(
            canonical,
            "PUT\n/bucket/1234%2B-/123/1.txt\n\
             %2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\n\
             abc:value\ncontent-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\n\
             x-oss-date:20231216T172512Z\nx-oss-head1:value\nzabc:value\n\n\
             abc;zabc\nUNSIGNED-PAYLOAD"
        );
        let expected = "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,\
             AdditionalHeaders=abc;zabc,\
             Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f";
        for requested in [
            &["ZAbc", "abc"][..],
            // Default-signed and absent names are dropped (same vector, second request list).
            &["x-oss-no-exist", "ZAbc", "x-oss-head1", "abc"][..],
        ] {
            let opts = SignOptions {
                region: "cn-hangzhou",
                product: PRODUCT,
                additional_headers: requested,
            };
            let out = sign_with(
                &sdk_request(SDK_HEADERS),
                &creds("ak", "sk"),
                &opts,
                at(1_702_747_512),
            );
            assert_eq!(auth_of(&out), expected);
        }
    }

    #[test]
    fn sdk_v4_4_cloudbox_product() {
        // Go v2 signer_test.go CloudBox case: reference §2.4 V4-4.
        let opts = SignOptions {
            region: "cb-123",
            product: "oss-cloudbox",
            additional_headers: &[],
        };
        let out = sign_with(
            &sdk_request(SDK_HEADERS),
            &creds("ak", "sk"),
            &opts,
            at(1_702_743_657),
        );
        assert_eq!(
            auth_of(&out),
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cb-123/oss-cloudbox/aliyun_v4_request,\
             Signature=94ce1f12c17d148ea681030275a94449d3357f5b5b21133996eec80af3e08a43"
        );
    }

    #[test]
    fn official_doc_put_object_example() {
        // Alibaba doc "Include a V4 signature in the Authorization header" (zh), PutObject
        // example: reference §2.4 (b). Content-MD5 without `==` as printed in the doc.
        let headers = [
            ("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw"),
            ("Content-Type", "text/html"),
            ("x-oss-meta-author", "alice"),
            ("x-oss-meta-magic", "abracadabra"),
            ("Host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"),
        ];
        let req = RequestParts {
            method: "PUT",
            bucket: Some("examplebucket"),
            key: "exampleobject",
            path: "/exampleobject",
            query: &[],
            headers: &headers,
        };
        let mut signed = headers.to_vec();
        signed.push(("x-oss-date", "20231203T121212Z"));
        signed.push(("x-oss-content-sha256", UNSIGNED_PAYLOAD));
        let additional = additional_headers(&signed, &["host"]);
        let canonical = canonical_request(
            &RequestParts {
                headers: &signed,
                ..req
            },
            &additional,
        );
        assert_eq!(
            canonical,
            "PUT\n/examplebucket/exampleobject\n\n\
             content-md5:eB5eJF1ptWaXm4bijSPyxw\ncontent-type:text/html\n\
             host:examplebucket.oss-cn-hangzhou.aliyuncs.com\n\
             x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20231203T121212Z\n\
             x-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n\nhost\nUNSIGNED-PAYLOAD"
        );
        let scope = scope("20231203", "cn-hangzhou", PRODUCT);
        let sts = string_to_sign("20231203T121212Z", &scope, &canonical);
        assert!(sts.ends_with("\n129b14df88496f434606e999e35dee010ea1cecfd3ddc378e5ed4989609c1db3"));
        let key = signing_key(
            &Secret::new("accesskeysecret"),
            "20231203",
            "cn-hangzhou",
            PRODUCT,
        );
        assert_eq!(
            hex(&key),
            "5958da611f250a3f580b93d44b645265000d61bba1f4384c1718d4d4db5929f7"
        );
        assert_eq!(
            signature(&key, &sts),
            "4b663e424d2db9967401ff6ce1c86f8c83cabd77d9908475239d9110642c63fa"
        );
        // 2023-12-03T12:12:12Z through sign_with.
        let opts = SignOptions {
            region: "cn-hangzhou",
            product: PRODUCT,
            additional_headers: &["host"],
        };
        let out = sign_with(
            &req,
            &creds("accesskeyid", "accesskeysecret"),
            &opts,
            at(1_701_605_532),
        );
        assert_eq!(
            auth_of(&out),
            "OSS4-HMAC-SHA256 Credential=accesskeyid/20231203/cn-hangzhou/oss/aliyun_v4_request,\
             AdditionalHeaders=host,\
             Signature=4b663e424d2db9967401ff6ce1c86f8c83cabd77d9908475239d9110642c63fa"
        );
    }

    /// One §2.5 daemon-shaped vector: Python SDK v2 SignerV4 output, reference §2.5.
    struct DaemonCase {
        method: &'static str,
        key: &'static str,
        query: &'static [(&'static str, &'static str)],
        headers: &'static [(&'static str, &'static str)],
        canonical: &'static str,
        sts_hash: &'static str,
        signature: &'static str,
    }

    const LIST_P1: &[(&str, &str)] =
        &[("list-type", "2"), ("max-keys", "100"), ("prefix", "mail/")];
    const LIST_P2: &[(&str, &str)] = &[
        ("continuation-token", "ChRtYWlsLzAwMDEudGFzaw--"),
        ("list-type", "2"),
        ("max-keys", "100"),
        ("prefix", "mail/"),
    ];

    const DAEMON_CASES: &[DaemonCase] = &[
        DaemonCase {
            method: "GET",
            key: "",
            query: LIST_P1,
            headers: &[],
            canonical: "GET\n/examplebucket/\nlist-type=2&max-keys=100&prefix=mail%2F\n\
                x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20250301T080000Z\n\n\nUNSIGNED-PAYLOAD",
            sts_hash: "d492fac9c35a167f49a6b4a5e2c49c36c70c85d6e38f3ea56ba91d8148b37794",
            signature: "fddb223b8d44e2770b2d3568b03e2c4c04b2622407a0731be4999ab6d894ca36",
        },
        DaemonCase {
            method: "GET",
            key: "",
            query: LIST_P2,
            headers: &[],
            canonical: "GET\n/examplebucket/\n\
                continuation-token=ChRtYWlsLzAwMDEudGFzaw--&list-type=2&max-keys=100&prefix=mail%2F\n\
                x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20250301T080000Z\n\n\nUNSIGNED-PAYLOAD",
            sts_hash: "52cd27b37f210c3459f0f4644cdda0a9e1526ca5e50257afd2c0ff290237aff0",
            signature: "f664b878e0ee4ea24c40a4e43068fa14f3ab8399cb8f36fd828eca148faddef0",
        },
        DaemonCase {
            method: "PUT",
            key: "mail/0001.lock",
            query: &[],
            headers: &[
                ("x-oss-copy-source", "/examplebucket/mail/0001.task"),
                ("x-oss-forbid-overwrite", "true"),
                ("x-oss-copy-source-if-match", "\"5B3C1A2E053D763E1B002CC607C5A0FE\""),
            ],
            canonical: "PUT\n/examplebucket/mail/0001.lock\n\n\
                x-oss-content-sha256:UNSIGNED-PAYLOAD\n\
                x-oss-copy-source:/examplebucket/mail/0001.task\n\
                x-oss-copy-source-if-match:\"5B3C1A2E053D763E1B002CC607C5A0FE\"\n\
                x-oss-date:20250301T080000Z\nx-oss-forbid-overwrite:true\n\n\nUNSIGNED-PAYLOAD",
            sts_hash: "c0f569fbb9cdfa29956fc4287cc86cdb282e69dfe8b83efa721ad298f521769f",
            signature: "e161e80be0948f2465f6503bbc568d0224a43cfe9f961e07e2df3fbad2496f4a",
        },
        DaemonCase {
            method: "PUT",
            key: "mail/0001.lock",
            query: &[],
            headers: &[
                ("Content-Type", "application/json"),
                ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                ("x-oss-forbid-overwrite", "true"),
            ],
            canonical: "PUT\n/examplebucket/mail/0001.lock\n\n\
                content-md5:1B2M2Y8AsgTpgAmY7PhCfg==\ncontent-type:application/json\n\
                x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20250301T080000Z\n\
                x-oss-forbid-overwrite:true\n\n\nUNSIGNED-PAYLOAD",
            sts_hash: "a12a1f40f434c0a6126735840ec85585b4d31e21dff53beffbb3e7560146c976",
            signature: "043e240b3ab6e4ef28b48899457bd569747e0192e74b69b5e51eddd443fe5be7",
        },
        DaemonCase {
            method: "DELETE",
            key: "mail/0001.task",
            query: &[],
            headers: &[],
            canonical: "DELETE\n/examplebucket/mail/0001.task\n\n\
                x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20250301T080000Z\n\n\nUNSIGNED-PAYLOAD",
            sts_hash: "b9dee344764354c0955a909dd8b83999d0d2ea45963a92e1b79a915a2e35d403",
            signature: "04d3c1343a31d02ce55c6d0f94ba60a612ddffd229504f79d336ae4af05ec6dd",
        },
        DaemonCase {
            method: "GET",
            key: "mail/a b+c.task",
            query: &[],
            headers: &[],
            canonical: "GET\n/examplebucket/mail/a%20b%2Bc.task\n\n\
                x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20250301T080000Z\n\n\nUNSIGNED-PAYLOAD",
            sts_hash: "e85f46c274c5e997b576cdb5be7deb9b44b54f95e6ef0026a11282abc99a3333",
            signature: "09d40ef5af27c332dd61955f554f3b9b502595f1e6f3457cd40644b271345619",
        },
    ];

    #[test]
    fn daemon_shaped_vectors_every_stage() {
        // Reference §2.5: Python SDK v2 SignerV4, 2025-03-01T08:00:00Z, cn-hangzhou.
        let now = at(1_740_816_000);
        let key = signing_key(
            &Secret::new("ExampleSecretKey1234567890abcd"),
            "20250301",
            "cn-hangzhou",
            PRODUCT,
        );
        let scope = scope("20250301", "cn-hangzhou", PRODUCT);
        for case in DAEMON_CASES {
            // The host header is sent but not signed by default.
            let mut headers = case.headers.to_vec();
            headers.push(("Host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"));
            let path = format!("/{}", uri_encode(case.key, false));
            let req = RequestParts {
                method: case.method,
                bucket: Some("examplebucket"),
                key: case.key,
                path: &path,
                query: case.query,
                headers: &headers,
            };
            let signed = with_date(&headers, "20250301T080000Z");
            let mut signed = signed;
            signed.push(("x-oss-content-sha256", UNSIGNED_PAYLOAD));
            let canonical = canonical_request(
                &RequestParts {
                    headers: &signed,
                    ..req
                },
                &[],
            );
            assert_eq!(canonical, case.canonical, "{} {}", case.method, case.key);
            let sts = string_to_sign("20250301T080000Z", &scope, &canonical);
            assert_eq!(sts.rsplit('\n').next(), Some(case.sts_hash));
            assert_eq!(signature(&key, &sts), case.signature);
            let out = sign(
                &req,
                &creds("LTAI5tExampleAKID", "ExampleSecretKey1234567890abcd"),
                "cn-hangzhou",
                now,
            );
            assert_eq!(
                auth_of(&out),
                format!(
                    "OSS4-HMAC-SHA256 Credential=LTAI5tExampleAKID/20250301/cn-hangzhou/oss/\
                     aliyun_v4_request,Signature={}",
                    case.signature
                )
            );
        }
    }

    #[test]
    fn canonical_uri_shapes() {
        // Reference §2.2: key `1234+-/123/1.txt` -> `/bucket/1234%2B-/123/1.txt`.
        assert_eq!(
            canonical_uri(Some("bucket"), "1234+-/123/1.txt"),
            "/bucket/1234%2B-/123/1.txt"
        );
        assert_eq!(canonical_uri(Some("bucket"), ""), "/bucket/");
        assert_eq!(canonical_uri(None, ""), "/");
        assert_eq!(canonical_uri(Some("b"), "ü é"), "/b/%C3%BC%20%C3%A9");
    }

    #[test]
    fn versioning_query_is_a_bare_name() {
        assert_eq!(canonical_query(&[("versioning", "")]), "versioning");
        assert_eq!(
            canonical_query(&[("delete", ""), ("a", "x y")]),
            "a=x%20y&delete"
        );
    }

    #[test]
    fn empty_additional_headers_are_not_written() {
        let auth = authorization("ak", "s", &[], "sig");
        assert!(!auth.contains("AdditionalHeaders"));
        assert_eq!(auth, "OSS4-HMAC-SHA256 Credential=ak/s,Signature=sig");
    }

    #[test]
    fn callers_date_and_payload_headers_are_replaced() {
        let stale = [
            ("X-Oss-Date", "19990101T000000Z"),
            ("x-oss-content-sha256", "deadbeef"),
        ];
        let req = RequestParts {
            method: "GET",
            bucket: Some("b"),
            key: "k",
            path: "/k",
            query: &[],
            headers: &stale,
        };
        let clean = RequestParts {
            headers: &[],
            ..req
        };
        let c = creds("ak", "sk");
        assert_eq!(
            sign(&req, &c, "cn-hangzhou", at(1_740_816_000)),
            sign(&clean, &c, "cn-hangzhou", at(1_740_816_000))
        );
        assert_ne!(
            sign(&clean, &c, "cn-hangzhou", at(1_740_816_000)),
            sign(&clean, &c, "cn-beijing", at(1_740_816_000))
        );
    }

    /// Canonical request of a presigned (query-signed) URL: the signing parameters live in
    /// the query and no date/payload headers are added.
    fn presign_signature(time: u64, extra_query: &[(&str, &str)], additional: &[&str]) -> String {
        let headers = [
            ("x-oss-head1", "value"),
            ("abc", "value"),
            ("ZAbc", "value"),
            ("XYZ", "value"),
            ("content-type", "application/octet-stream"),
        ];
        let date = iso8601_basic(at(time));
        let scope = scope(&date[..8], "cn-hangzhou", PRODUCT);
        let credential = format!("ak/{scope}");
        let additional = additional_headers(&headers, additional);
        let joined = additional.join(";");
        let mut query = SDK_QUERY.to_vec();
        query.extend([
            ("x-oss-credential", credential.as_str()),
            ("x-oss-date", date.as_str()),
            ("x-oss-expires", "599"),
            ("x-oss-signature-version", ALGORITHM),
        ]);
        query.extend_from_slice(extra_query);
        if !additional.is_empty() {
            query.push(("x-oss-additional-headers", &joined));
        }
        let req = RequestParts {
            query: &query,
            ..sdk_request(&headers)
        };
        let canonical = canonical_request(&req, &additional);
        let key = signing_key(&Secret::new("sk"), &date[..8], "cn-hangzhou", PRODUCT);
        signature(&key, &string_to_sign(&date, &scope, &canonical))
    }

    #[test]
    fn sdk_presign_vectors_through_the_stages() {
        // Go v2 signer_test.go TestV4AuthQuery*, Python v2 test_auth_query*: reference §2.4 (c).
        // They exercise the canonical query with `x-oss-*` parameters (`/` -> `%2F`).
        assert_eq!(
            presign_signature(1_702_781_677, &[], &[]),
            "a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe"
        );
        assert_eq!(
            presign_signature(1_702_785_388, &[("x-oss-security-token", "token")], &[]),
            "3817ac9d206cd6dfc90f1c09c00be45005602e55898f26f5ddb06d7892e1f8b5"
        );
        assert_eq!(
            presign_signature(1_702_783_809, &[], &["ZAbc", "abc"]),
            "6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7"
        );
    }
}
