//! Turning an error answer into a decision: give up with a semantic [`StoreError`], or retry.
//!
//! The decision reads the error `<Code>` first and the HTTP status second, because the status
//! alone lies in both directions: a 409 is a lost claim on OSS (`FileAlreadyExists`) but a
//! "please retry" on AWS (`ConditionalRequestConflict`); a 501 `NotImplemented` is a 5xx that no
//! retry will fix; a CopyObject can fail with status 200.

use crate::store::xml::ErrorBody;
use crate::store::{Op, StoreError};

use super::request::On412;

/// What to do about one failed attempt.
#[derive(Debug)]
pub enum Decision {
    /// Final: report this error.
    Fail(StoreError),
    /// Worth another attempt.
    Retry {
        /// What happened, for the error reported if retries run out.
        message: String,
        /// True when the store may have applied the request anyway (5xx, no answer), so a
        /// later "already exists" on a create-if-absent may be our own first write.
        maybe_applied: bool,
    },
}

/// Codes that mean the store does not accept who we are or how we signed.
const UNAUTHENTICATED_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidAccessKeyID",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "InvalidSecurity",
    "InvalidToken",
    "InvalidSecurityToken",
    "ExpiredToken",
    "SecurityTokenExpired",
    "TokenRefreshRequired",
    "MissingSecurityHeader",
    "RequestTimeTooSkewed",
    "InvalidArgument.Credential",
    "AccessKeyIdDisabled",
];

/// Codes that say "slow down / try again" and mean the request was not applied.
const THROTTLE_CODES: &[&str] = &[
    "SlowDown",
    "TotalQpsLimitExceeded",
    "MetaOperationQpsLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "ConditionalRequestConflict",
    "OperationAborted",
    "RequestTimeout",
];

/// Codes of server-side failures after which the request may or may not have been applied.
const SERVER_FAILURE_CODES: &[&str] = &["InternalError", "ServiceUnavailable", "InternalFailure"];

/// Decide about an error answer (`status`, parsed `<Error>` if any) to a request for `key`.
pub fn classify(
    op: Op,
    key: &str,
    on_412: On412,
    status: u16,
    error: Option<&ErrorBody>,
) -> Decision {
    let code = error.map(|e| e.code.as_str()).unwrap_or("");
    let message = describe(status, error);
    let fail = |e: StoreError| Decision::Fail(e);

    if UNAUTHENTICATED_CODES.contains(&code) || status == 401 {
        return fail(StoreError::Unauthenticated {
            key: key.to_owned(),
            code: code_or_status(code, status),
            message: error.map(|e| e.message.clone()).unwrap_or(message),
        });
    }
    if THROTTLE_CODES.contains(&code) || (code.is_empty() && status == 429) {
        return Decision::Retry {
            message,
            maybe_applied: false,
        };
    }
    if SERVER_FAILURE_CODES.contains(&code) {
        return Decision::Retry {
            message,
            maybe_applied: true,
        };
    }
    if code == "NotImplemented" || (code.is_empty() && status == 501) {
        return fail(StoreError::Unsupported {
            what: format!("{op} as sent ({message})"),
        });
    }
    match (status, code) {
        (403, _) | (_, "AccessDenied") => fail(StoreError::Forbidden {
            key: key.to_owned(),
            code: code_or_status(code, status),
            message: error
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "access denied (no error body)".into()),
        }),
        (_, "FileAlreadyExists") => fail(StoreError::AlreadyExists {
            key: key.to_owned(),
        }),
        (412, _) | (_, "PreconditionFailed") => match on_412 {
            On412::AlreadyExists => fail(StoreError::AlreadyExists {
                key: key.to_owned(),
            }),
            On412::PreconditionFailed => fail(StoreError::PreconditionFailed {
                key: key.to_owned(),
            }),
        },
        // The transport names the bucket (see `super::decide`).
        (_, "NoSuchBucket") => fail(StoreError::NoSuchBucket {
            bucket: String::new(),
            message,
        }),
        (404, _) | (_, "NoSuchKey") => fail(StoreError::NotFound {
            key: key.to_owned(),
        }),
        (500..=599, _) => Decision::Retry {
            message,
            maybe_applied: true,
        },
        (400..=499, _) => fail(StoreError::Refused {
            key: key.to_owned(),
            op,
            status,
            code: code.to_owned(),
            message,
        }),
        _ => fail(StoreError::Unexpected {
            key: key.to_owned(),
            op,
            message,
        }),
    }
}

/// A failure with no answer at all (timeout, reset, refused connection). `sent` is false only
/// when the connection was never established, so the store cannot have seen the request.
pub fn classify_no_answer(message: String, sent: bool) -> Decision {
    Decision::Retry {
        message,
        maybe_applied: sent,
    }
}

/// The error of one failed entry of a DeleteObjects answer (`<Error><Key/><Code/><Message/>`).
pub fn entry_error(op: Op, key: &str, code: &str, message: &str) -> StoreError {
    let body = ErrorBody {
        code: code.to_owned(),
        message: message.to_owned(),
        request_id: None,
        ec: None,
    };
    match classify(op, key, On412::default(), 200, Some(&body)) {
        Decision::Fail(e) => e,
        Decision::Retry { message, .. } => StoreError::Transient {
            key: key.to_owned(),
            op,
            message,
        },
    }
}

/// `HTTP 409 FileAlreadyExists: message (request id)`; never headers, never the request.
fn describe(status: u16, error: Option<&ErrorBody>) -> String {
    match error {
        Some(e) => {
            let mut s = format!("HTTP {status} {}", e.code);
            if !e.message.is_empty() {
                s.push_str(": ");
                s.push_str(&e.message);
            }
            if let Some(ec) = &e.ec {
                s.push_str(&format!(" (EC {ec})"));
            }
            if let Some(id) = &e.request_id {
                s.push_str(&format!(" [request id {id}]"));
            }
            s
        }
        None => format!("HTTP {status} (no error body)"),
    }
}

fn code_or_status(code: &str, status: u16) -> String {
    if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> ErrorBody {
        ErrorBody {
            code: code.into(),
            message: format!("{code} message"),
            request_id: Some("RID".into()),
            ec: None,
        }
    }

    fn decide(status: u16, code: Option<&str>, on_412: On412) -> Decision {
        let b = code.map(body);
        classify(Op::Put, "k", on_412, status, b.as_ref())
    }

    fn is_retry(d: &Decision, applied: bool) -> bool {
        matches!(d, Decision::Retry { maybe_applied, .. } if *maybe_applied == applied)
    }

    #[test]
    fn credentials_errors_are_final_and_unauthenticated() {
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "RequestTimeTooSkewed",
        ] {
            let d = decide(403, Some(code), On412::default());
            assert!(
                matches!(&d, Decision::Fail(StoreError::Unauthenticated { code: c, .. }) if c == code),
                "{code}: {d:?}"
            );
        }
        let d = decide(403, Some("AccessDenied"), On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::Forbidden { .. })),
            "{d:?}"
        );
        // A HEAD has no body: a bare 403 is still final.
        let d = decide(403, None, On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::Forbidden { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn conflicts_are_read_from_the_code_not_the_status() {
        let d = decide(409, Some("FileAlreadyExists"), On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::AlreadyExists { .. })),
            "{d:?}"
        );
        let d = decide(
            409,
            Some("ConditionalRequestConflict"),
            On412::AlreadyExists,
        );
        assert!(is_retry(&d, false), "{d:?}");
        let d = decide(409, Some("BucketNotEmpty"), On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::Refused { status: 409, .. })),
            "{d:?}"
        );
    }

    #[test]
    fn precondition_failed_means_what_the_request_asked() {
        let d = decide(412, Some("PreconditionFailed"), On412::AlreadyExists);
        assert!(
            matches!(d, Decision::Fail(StoreError::AlreadyExists { .. })),
            "{d:?}"
        );
        let d = decide(412, Some("PreconditionFailed"), On412::PreconditionFailed);
        assert!(
            matches!(d, Decision::Fail(StoreError::PreconditionFailed { .. })),
            "{d:?}"
        );
        // HEAD-style, no body.
        let d = decide(412, None, On412::PreconditionFailed);
        assert!(
            matches!(d, Decision::Fail(StoreError::PreconditionFailed { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn throttling_and_server_errors_retry() {
        assert!(is_retry(
            &decide(503, Some("SlowDown"), On412::default()),
            false
        ));
        assert!(is_retry(
            &decide(503, Some("TotalQpsLimitExceeded"), On412::default()),
            false
        ));
        assert!(is_retry(
            &decide(500, Some("InternalError"), On412::default()),
            true
        ));
        assert!(is_retry(&decide(502, None, On412::default()), true));
        assert!(is_retry(&decide(429, None, On412::default()), false));
        assert!(is_retry(
            &decide(400, Some("RequestTimeout"), On412::default()),
            false
        ));
        // A CopyObject's 200 with <Error><Code>InternalError</Code>.
        assert!(is_retry(
            &decide(200, Some("InternalError"), On412::default()),
            true
        ));
    }

    #[test]
    fn not_implemented_is_unsupported_not_retried() {
        let d = decide(501, Some("NotImplemented"), On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::Unsupported { .. })),
            "{d:?}"
        );
        let d = decide(400, Some("NotImplemented"), On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::Unsupported { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn missing_key_and_missing_bucket_differ() {
        let d = decide(404, Some("NoSuchKey"), On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::NotFound { .. })),
            "{d:?}"
        );
        let d = decide(404, None, On412::default());
        assert!(
            matches!(d, Decision::Fail(StoreError::NotFound { .. })),
            "{d:?}"
        );
        let d = decide(404, Some("NoSuchBucket"), On412::default());
        match d {
            Decision::Fail(e @ StoreError::NoSuchBucket { .. }) => {
                assert!(e.to_string().contains("does not exist"), "{e}")
            }
            other => panic!("NoSuchBucket: {other:?}"),
        }
    }

    #[test]
    fn delete_entries_map_like_answers() {
        let e = entry_error(Op::DeleteMany, "k", "AccessDenied", "no");
        assert!(matches!(e, StoreError::Forbidden { .. }), "{e:?}");
        let e = entry_error(Op::DeleteMany, "k", "InternalError", "try again");
        assert!(matches!(e, StoreError::Transient { .. }), "{e:?}");
        let e = entry_error(Op::DeleteMany, "k", "Weird", "?");
        assert!(matches!(e, StoreError::Unexpected { .. }), "{e:?}");
    }

    #[test]
    fn an_unexpected_4xx_is_a_refusal_and_a_missing_length_is_a_malformed_request() {
        let d = decide(411, Some("MissingContentLength"), On412::default());
        match d {
            Decision::Fail(e @ StoreError::Refused { status: 411, .. }) => {
                assert!(e.is_malformed_request(), "{e:?}");
                assert!(!e.is_transient());
            }
            other => panic!("{other:?}"),
        }
        let d = decide(403, Some("AccessDenied"), On412::default());
        match d {
            Decision::Fail(e) => assert!(!e.is_malformed_request() && e.is_auth(), "{e:?}"),
            other => panic!("{other:?}"),
        }
        let d = decide(409, Some("ObjectImmutable"), On412::default());
        match d {
            Decision::Fail(e @ StoreError::Refused { .. }) => assert!(!e.is_malformed_request()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_redirect_is_reported_with_its_message() {
        let d = decide(301, Some("PermanentRedirect"), On412::default());
        match d {
            Decision::Fail(StoreError::Unexpected { message, .. }) => {
                assert!(message.contains("301 PermanentRedirect"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_carry_code_and_request_id() {
        let d = decide(400, Some("InvalidArgument"), On412::default());
        match d {
            Decision::Fail(StoreError::Refused { message, .. }) => {
                assert_eq!(
                    message,
                    "HTTP 400 InvalidArgument: InvalidArgument message [request id RID]"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
