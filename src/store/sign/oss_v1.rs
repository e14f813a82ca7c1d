//! Alibaba OSS signature V1 (`Authorization: OSS <AccessKeyId>:<Signature>`), opt-in for old
//! buckets.

use std::time::SystemTime;

use super::{Credentials, RequestParts};

/// Sign `req` at `now`. Returns the headers to add: `date`, `authorization`.
pub fn sign(
    _req: &RequestParts<'_>,
    _creds: &Credentials,
    _now: SystemTime,
) -> Vec<(String, String)> {
    unimplemented!("oss v1 signing is being built")
}
