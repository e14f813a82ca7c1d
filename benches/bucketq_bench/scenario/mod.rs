//! The measurements, one file per section of the report.

pub mod idle;
pub mod scale;
pub mod throughput;
pub mod trickle;

use anyhow::{Context, Result};

use bucketq::store::{ListRequest, Store, MAX_LIST_KEYS};

/// Keys under `prefix` (every page).
pub async fn count_keys(store: &dyn Store, prefix: &str) -> Result<usize> {
    let mut count = 0;
    let mut continuation = None;
    loop {
        let page = store
            .list(&ListRequest {
                prefix: prefix.to_owned(),
                start_after: None,
                continuation: continuation.take(),
                max_keys: MAX_LIST_KEYS,
            })
            .await
            .with_context(|| format!("listing {prefix}"))?;
        count += page.objects.len();
        match page.next {
            Some(next) => continuation = Some(next),
            None => return Ok(count),
        }
    }
}
