//! XML bodies of ListObjectsV2, errors, CopyObject, DeleteObjects and versioning, parsed with
//! quick-xml ignoring namespaces (S3 sends one, OSS does not).

use super::ObjectMeta;

/// Why a body could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Malformed XML or a missing/invalid field.
    #[error("invalid {what} XML: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed ListObjectsV2 page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Objects, keys URL-decoded when the response says `EncodingType=url`.
    pub objects: Vec<ObjectMeta>,
    /// `IsTruncated`.
    pub is_truncated: bool,
    /// `NextContinuationToken` (URL-decoded when encoded).
    pub next_continuation_token: Option<String>,
}

/// An `<Error>` body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `<Code>`.
    pub code: String,
    /// `<Message>`.
    pub message: String,
    /// `<RequestId>`, for support tickets.
    pub request_id: Option<String>,
    /// OSS `<EC>`.
    pub ec: Option<String>,
}

/// Parse a ListObjectsV2 body.
pub fn parse_list(_body: &[u8]) -> Result<ListResult, XmlError> {
    unimplemented!("being built")
}

/// Parse an `<Error>` body; `None` when the body is not one (used on 200 CopyObject answers).
pub fn parse_error(_body: &[u8]) -> Option<ErrorBody> {
    unimplemented!("being built")
}

/// Parse a `<CopyObjectResult>`; returns its unquoted ETag.
pub fn parse_copy_result(_body: &[u8]) -> Result<Option<String>, XmlError> {
    unimplemented!("being built")
}

/// Parse a `<DeleteResult>`: the `(key, code, message)` of each `<Error>` entry.
pub fn parse_delete_result(_body: &[u8]) -> Result<Vec<(String, String, String)>, XmlError> {
    unimplemented!("being built")
}

/// Build a quiet `<Delete>` request body for DeleteObjects (keys XML-escaped).
pub fn build_delete_request(_keys: &[String]) -> String {
    unimplemented!("being built")
}

/// Parse a `GetBucketVersioning` body.
pub fn parse_versioning(_body: &[u8]) -> Result<super::Versioning, XmlError> {
    unimplemented!("being built")
}
