//! Alibaba OSS signature V1 (`Authorization: OSS <AccessKeyId>:<Signature>`), opt-in for old
//! buckets.
//!
//! Closed to new accounts since 2025-03 and to new buckets since 2025-09, so V4 is the default;
//! this exists for buckets that still only take V1. Each stage is public and tested against
//! `shared/reference/oss-s3-api.md` §1.4 (the SDK vectors and the daemon-shaped ones).

use std::time::SystemTime;

use base64::Engine;
use hmac::{Hmac, Mac};

use super::oss_v4::SECURITY_TOKEN;
use super::{header_value, Credentials, RequestParts};
use crate::secret::Secret;

/// Query parameters that are part of the canonicalized resource: the Go SDK v2 set
/// (`oss/signer/v1.go` `requiredSignedParametersMap`) plus `resourceGroup`, which the SDK
/// vectors sign as an extra sub-resource. Every parameter starting with `x-oss-` is also
/// signed. Anything else (`list-type`, `prefix`, `max-keys`, ...) is not.
pub const SUB_RESOURCES: &[&str] = &[
    "acl",
    "append",
    "bucketInfo",
    "callback",
    "callback-var",
    "cloudboxes",
    "continuation-token",
    "delete",
    "location",
    "objectMeta",
    "partNumber",
    "position",
    "regionList",
    "resourceGroup",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "stat",
    "symlink",
    "tagging",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
];

/// Sign `req` at `now`. Returns the headers to add: `date`, `authorization`.
///
/// `date` is `now` in RFC 1123 form; if `req.headers` carries an `x-oss-date`, that value is
/// what gets signed instead (as OSS itself does).
pub fn sign(req: &RequestParts<'_>, creds: &Credentials, now: SystemTime) -> Vec<(String, String)> {
    let date = httpdate::fmt_http_date(super::signable_time(now));
    let token = creds.security_token.as_ref().map(|t| t.expose());
    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| !name.trim().eq_ignore_ascii_case(SECURITY_TOKEN))
        .copied()
        .collect();
    if let Some(token) = token {
        // An `x-oss-*` header, so part of the canonicalized headers (reference §4.5).
        headers.push((SECURITY_TOKEN, token));
    }
    let signed_req = RequestParts {
        headers: &headers,
        ..*req
    };
    let to_sign = string_to_sign(&signed_req, &date);
    let auth = authorization(&creds.access_key_id, &signature(&creds.secret, &to_sign));
    let mut out = vec![("date".to_owned(), date)];
    if let Some(token) = token {
        out.push((SECURITY_TOKEN.to_owned(), token.to_owned()));
    }
    out.push(("authorization".to_owned(), auth));
    out
}

/// The string to sign: verb, `Content-MD5`, `Content-Type`, date, canonicalized `x-oss-`
/// headers and canonicalized resource. `date` fills the date slot unless `req.headers` has an
/// `x-oss-date` (presigned URLs pass their `Expires` here).
pub fn string_to_sign(req: &RequestParts<'_>, date: &str) -> String {
    let md5 = header_value(req.headers, "content-md5").unwrap_or_default();
    let content_type = header_value(req.headers, "content-type").unwrap_or_default();
    let date = header_value(req.headers, "x-oss-date").unwrap_or_else(|| date.to_owned());
    format!(
        "{}\n{md5}\n{content_type}\n{date}\n{}{}",
        req.method,
        canonicalized_oss_headers(req.headers),
        canonicalized_resource(req.bucket, req.key, req.query)
    )
}

/// Every `x-oss-*` header as `name:value\n`: names lower-cased, values trimmed, repeats joined
/// with `,`, sorted by name; empty when there are none.
pub fn canonicalized_oss_headers(headers: &[(&str, &str)]) -> String {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.trim().to_ascii_lowercase())
        .filter(|n| n.starts_with("x-oss-"))
        .collect();
    names.sort();
    names.dedup();
    names
        .iter()
        .map(|n| format!("{n}:{}\n", header_value(headers, n).unwrap_or_default()))
        .collect()
}

/// `/bucket/key` with the raw (not encoded) key, `/bucket/` for bucket requests, `/` without a
/// bucket; then `?` and the signed sub-resources sorted by name, `k=v` with raw values or bare
/// `k` when empty, joined with `&`.
pub fn canonicalized_resource(bucket: Option<&str>, key: &str, query: &[(&str, &str)]) -> String {
    let mut resource = match bucket {
        Some(bucket) => format!("/{bucket}/{key}"),
        None => "/".to_owned(),
    };
    let mut subs: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| SUB_RESOURCES.contains(k) || k.starts_with("x-oss-"))
        .copied()
        .collect();
    subs.sort();
    if !subs.is_empty() {
        let joined: Vec<String> = subs
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    (*k).to_owned()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        resource.push('?');
        resource.push_str(&joined.join("&"));
    }
    resource
}

/// Base64 HMAC-SHA1 of the string to sign under the access key secret.
pub fn signature(secret: &Secret, string_to_sign: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` value `OSS <AccessKeyId>:<Signature>`.
pub fn authorization(access_key_id: &str, signature: &str) -> String {
    format!("OSS {access_key_id}:{signature}")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const SDK_DATE: &str = "Wed, 28 Dec 2022 10:27:41 GMT";

    /// Headers of Go v2 `oss/signer/signer_test.go` TestV1AuthHeader (reference §1.4 V1-1).
    const SDK_PUT_HEADERS: &[(&str, &str)] = &[
        ("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw=="),
        ("Content-Type", "text/html"),
        ("x-oss-meta-author", "alice"),
        ("x-oss-meta-magic", "abracadabra"),
        ("x-oss-date", SDK_DATE),
    ];

    fn req<'a>(
        method: &'a str,
        key: &'a str,
        query: &'a [(&'a str, &'a str)],
        headers: &'a [(&'a str, &'a str)],
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            bucket: Some("examplebucket"),
            key,
            path: "",
            query,
            headers,
        }
    }

    fn sdk_secret() -> Secret {
        Secret::new("sk")
    }

    #[test]
    fn sdk_v1_1_every_stage() {
        // Go v2 signer_test.go TestV1AuthHeader (line 38), Python v2 test_v1.py
        // test_auth_header_1, Go v1 conn_test.go TestAuthV1Header: reference §1.4 V1-1.
        let r = req("PUT", "nelson", &[], SDK_PUT_HEADERS);
        assert_eq!(
            canonicalized_oss_headers(r.headers),
            "x-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\n\
             x-oss-meta-magic:abracadabra\n"
        );
        assert_eq!(
            canonicalized_resource(r.bucket, r.key, r.query),
            "/examplebucket/nelson"
        );
        // x-oss-date wins over the date passed in.
        let sts = string_to_sign(&r, "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            sts,
            "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\n\
             x-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\n\
             x-oss-meta-magic:abracadabra\n/examplebucket/nelson"
        );
        assert_eq!(
            authorization("ak", &signature(&sdk_secret(), &sts)),
            "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M="
        );
    }

    #[test]
    fn sdk_v1_2_acl_sub_resource() {
        // Go v2 signer_test.go TestV1AuthHeader, second case: reference §1.4 V1-2.
        let r = req("PUT", "nelson", &[("acl", "")], SDK_PUT_HEADERS);
        let sts = string_to_sign(&r, "");
        assert!(sts.ends_with("\n/examplebucket/nelson?acl"));
        assert_eq!(
            signature(&sdk_secret(), &sts),
            "/afkugFbmWDQ967j1vr6zygBLQk="
        );
    }

    #[test]
    fn sdk_v1_3_unknown_parameters_are_not_signed() {
        // Go v2 signer_test.go TestV1AuthHeader, third case: reference §1.4 V1-3.
        let headers = [("x-oss-date", SDK_DATE)];
        let query = [("resourceGroup", ""), ("non-resousce", "null")];
        let r = req("GET", "", &query, &headers);
        let sts = string_to_sign(&r, "");
        assert_eq!(
            sts,
            "GET\n\n\nWed, 28 Dec 2022 10:27:41 GMT\n\
             x-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\n/examplebucket/?resourceGroup"
        );
        assert_eq!(
            signature(&sdk_secret(), &sts),
            "vkQmfuUDyi1uDi3bKt67oemssIs="
        );
    }

    #[test]
    fn sdk_v1_4_sub_resources_sorted() {
        // Go v2 signer_test.go TestV1AuthHeader, fourth case: reference §1.4 V1-4.
        let headers = [("x-oss-date", SDK_DATE)];
        let query = [("resourceGroup", ""), ("acl", "")];
        let sts = string_to_sign(&req("GET", "", &query, &headers), "");
        assert!(sts.ends_with("\n/examplebucket/?acl&resourceGroup"));
        assert_eq!(
            signature(&sdk_secret(), &sts),
            "x3E5TgOvl/i7PN618s5mEvpJDYk="
        );
    }

    #[test]
    fn sdk_presign_vectors_through_the_stages() {
        // Go v2 signer_test.go TestV1AuthQuery (line 171): reference §1.4 V1-Q1 and V1-Q2; the
        // date slot holds Expires.
        let q1 = [("versionId", "versionId")];
        let r = RequestParts {
            bucket: Some("bucket"),
            ..req("GET", "key", &q1, &[])
        };
        let sts = string_to_sign(&r, "1699807420");
        assert_eq!(sts, "GET\n\n\n1699807420\n/bucket/key?versionId=versionId");
        assert_eq!(
            signature(&sdk_secret(), &sts),
            "dcLTea+Yh9ApirQ8o8dOPqtvJXQ="
        );

        let q2 = [("versionId", "versionId"), ("security-token", "token")];
        let r = RequestParts {
            bucket: Some("bucket"),
            ..req("GET", "key+123", &q2, &[])
        };
        let sts = string_to_sign(&r, "1699808204");
        assert_eq!(
            sts,
            "GET\n\n\n1699808204\n/bucket/key+123?security-token=token&versionId=versionId"
        );
        assert_eq!(
            signature(&sdk_secret(), &sts),
            "jzKYRrM5y6Br0dRFPaTGOsbrDhY="
        );
    }

    /// One §1.4 daemon-shaped vector (Python SDK v2 SignerV1 output).
    struct DaemonCase {
        method: &'static str,
        key: &'static str,
        query: &'static [(&'static str, &'static str)],
        headers: &'static [(&'static str, &'static str)],
        string_to_sign: &'static str,
        authorization: &'static str,
    }

    const DAEMON_CASES: &[DaemonCase] = &[
        DaemonCase {
            method: "GET",
            key: "",
            query: &[("list-type", "2"), ("max-keys", "100"), ("prefix", "mail/")],
            headers: &[],
            string_to_sign: "GET\n\n\nSat, 01 Mar 2025 08:00:00 GMT\n/examplebucket/",
            authorization: "OSS LTAI5tExampleAKID:q5lhBaUmRwlVPTkJ6wChasJpI98=",
        },
        DaemonCase {
            method: "GET",
            key: "",
            query: &[
                ("continuation-token", "ChRtYWlsLzAwMDEudGFzaw--"),
                ("list-type", "2"),
                ("max-keys", "100"),
                ("prefix", "mail/"),
            ],
            headers: &[],
            string_to_sign: "GET\n\n\nSat, 01 Mar 2025 08:00:00 GMT\n\
                /examplebucket/?continuation-token=ChRtYWlsLzAwMDEudGFzaw--",
            authorization: "OSS LTAI5tExampleAKID:otBHhsBLd6cwWUrq9C0RPPa/W3k=",
        },
        DaemonCase {
            method: "PUT",
            key: "mail/0001.lock",
            query: &[],
            headers: &[
                ("x-oss-copy-source", "/examplebucket/mail/0001.task"),
                ("x-oss-forbid-overwrite", "true"),
                (
                    "x-oss-copy-source-if-match",
                    "\"5B3C1A2E053D763E1B002CC607C5A0FE\"",
                ),
            ],
            string_to_sign: "PUT\n\n\nSat, 01 Mar 2025 08:00:00 GMT\n\
                x-oss-copy-source:/examplebucket/mail/0001.task\n\
                x-oss-copy-source-if-match:\"5B3C1A2E053D763E1B002CC607C5A0FE\"\n\
                x-oss-forbid-overwrite:true\n/examplebucket/mail/0001.lock",
            authorization: "OSS LTAI5tExampleAKID:Y8jp0NLJVEUJBx81UBIfUkuFS6c=",
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
            string_to_sign: "PUT\n1B2M2Y8AsgTpgAmY7PhCfg==\napplication/json\n\
                Sat, 01 Mar 2025 08:00:00 GMT\nx-oss-forbid-overwrite:true\n\
                /examplebucket/mail/0001.lock",
            authorization: "OSS LTAI5tExampleAKID:85LcMRqp5yiS2nG8f/2NTkxRxXc=",
        },
        DaemonCase {
            method: "DELETE",
            key: "mail/0001.task",
            query: &[],
            headers: &[],
            string_to_sign:
                "DELETE\n\n\nSat, 01 Mar 2025 08:00:00 GMT\n/examplebucket/mail/0001.task",
            authorization: "OSS LTAI5tExampleAKID:LEbY94ReGoPYZVFysIBONm0VzHE=",
        },
        DaemonCase {
            method: "GET",
            key: "mail/a b+c.task",
            query: &[],
            headers: &[],
            string_to_sign:
                "GET\n\n\nSat, 01 Mar 2025 08:00:00 GMT\n/examplebucket/mail/a b+c.task",
            authorization: "OSS LTAI5tExampleAKID:7XskScudYcz0fnfbPFgBBYYlfpY=",
        },
    ];

    #[test]
    fn daemon_shaped_vectors_through_sign() {
        // Reference §1.4 second table: Python SDK v2 SignerV1, 2025-03-01T08:00:00Z.
        let creds = Credentials {
            access_key_id: "LTAI5tExampleAKID".into(),
            secret: Secret::new("ExampleSecretKey1234567890abcd"),
            security_token: None,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_740_816_000);
        for case in DAEMON_CASES {
            let mut headers = case.headers.to_vec();
            headers.push(("Host", "examplebucket.oss-cn-hangzhou.aliyuncs.com"));
            let r = req(case.method, case.key, case.query, &headers);
            assert_eq!(
                string_to_sign(&r, "Sat, 01 Mar 2025 08:00:00 GMT"),
                case.string_to_sign
            );
            let out = sign(&r, &creds, now);
            assert_eq!(
                out,
                vec![
                    (
                        "date".to_owned(),
                        "Sat, 01 Mar 2025 08:00:00 GMT".to_owned()
                    ),
                    ("authorization".to_owned(), case.authorization.to_owned()),
                ],
                "{} {}",
                case.method,
                case.key
            );
        }
    }

    #[test]
    fn resource_without_bucket_is_slash() {
        assert_eq!(canonicalized_resource(None, "", &[]), "/");
        assert_eq!(
            canonicalized_resource(Some("b"), "", &[("versioning", "")]),
            "/b/?versioning"
        );
        assert_eq!(
            canonicalized_resource(Some("b"), "", &[("delete", ""), ("x-oss-process", "a/b")]),
            "/b/?delete&x-oss-process=a/b"
        );
    }

    #[test]
    fn repeated_and_mixed_case_oss_headers() {
        let h = [
            ("X-OSS-Meta-B", " 2 "),
            ("x-oss-meta-a", "1"),
            ("x-oss-meta-b", "3"),
        ];
        assert_eq!(
            canonicalized_oss_headers(&h),
            "x-oss-meta-a:1\nx-oss-meta-b:2,3\n"
        );
        assert_eq!(canonicalized_oss_headers(&[("Host", "h")]), "");
    }
}
