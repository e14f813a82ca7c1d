//! Alibaba OSS signature V4 (`OSS4-HMAC-SHA256`).

use std::time::SystemTime;

use super::{Credentials, RequestParts};

/// Sign `req` for `region` (e.g. `cn-hangzhou`) at `now`, with an unsigned payload. Returns the
/// headers to add: `x-oss-date`, `x-oss-content-sha256`, `authorization`.
pub fn sign(
    _req: &RequestParts<'_>,
    _creds: &Credentials,
    _region: &str,
    _now: SystemTime,
) -> Vec<(String, String)> {
    unimplemented!("oss v4 signing is being built")
}
