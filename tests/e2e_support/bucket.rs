//! A LocalStack bucket made for one test, filled and inspected through the crate's own S3
//! store, and emptied and removed when the test ends.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::queue::admin::{self, NewTask, QueueRef};
use bucketq::queue::Layout;
use bucketq::secret::Secret;
use bucketq::store::s3::S3Store;
use bucketq::store::{ListRequest, ObjectHead, RequestStats, Store, StoreError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{localstack_endpoint, rt};

/// How many PUTs the fill keeps in flight.
const FILL_PARALLELISM: usize = 32;

/// A bucket on LocalStack with a random name.
pub struct TestBucket {
    /// Its name.
    pub name: String,
    /// LocalStack's endpoint.
    pub endpoint: String,
    store: Arc<S3Store>,
}

impl TestBucket {
    /// Create `bq-e2e-<label>-<random>`.
    pub fn create(label: &str) -> TestBucket {
        let endpoint = localstack_endpoint();
        let name = format!("bq-e2e-{label}-{:08x}", rand::random::<u32>());
        let cfg = StoreConfig {
            kind: StoreBackend::S3,
            endpoint: Some(endpoint.clone()),
            bucket: name.clone(),
            region: Some("us-east-1".into()),
            path_style: true,
            access_key_id: Secret::new("test".to_owned()),
            access_key_secret: Secret::new("test".to_owned()),
            ..StoreConfig::default()
        };
        let store = S3Store::from_config(&cfg, Arc::new(RequestStats::default()))
            .expect("the test store opens");
        rt().block_on(store.create_bucket())
            .unwrap_or_else(|e| panic!("create bucket {name} on {endpoint}: {e}"));
        TestBucket {
            name,
            endpoint,
            store: Arc::new(store),
        }
    }

    fn dyn_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store) as Arc<dyn Store>
    }

    /// Enqueue `count` JSON tasks with ids `<stem>0000`, `<stem>0001`, ... into the queue
    /// `queue` (prefix `queue/`), the way `bucketq enqueue` writes them, many PUTs at once.
    /// Returns their pending keys.
    pub fn enqueue(&self, queue: &str, stem: &str, count: usize) -> BTreeSet<String> {
        let queue_ref = QueueRef {
            name: queue.to_owned(),
            layout: Layout {
                prefix: format!("{queue}/"),
                suffix: ".task".into(),
                failed_prefix: "failed/".into(),
                done_prefix: "done/".into(),
            },
            needs_object: false,
        };
        let store = self.dyn_store();
        let keys: Vec<String> = rt()
            .block_on(
                futures::stream::iter(0..count)
                    .map(|i| {
                        let store = Arc::clone(&store);
                        let queue_ref = &queue_ref;
                        async move {
                            let id = format!("{stem}{i:04}");
                            let payload = Bytes::from(format!("{{\"n\":{i}}}"));
                            admin::enqueue(
                                store.as_ref(),
                                NewTask {
                                    queue: queue_ref,
                                    id: Some(&id),
                                    payload,
                                    max_payload_bytes: 1024,
                                    now: SystemTime::now(),
                                },
                            )
                            .await
                        }
                    })
                    .buffer_unordered(FILL_PARALLELISM)
                    .try_collect(),
            )
            .unwrap_or_else(|e| panic!("enqueue into {}: {e}", self.name));
        assert_eq!(keys.len(), count);
        keys.into_iter().collect()
    }

    /// Every key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        rt().block_on(list_all(self.store.as_ref()))
            .unwrap_or_else(|e| panic!("list {}: {e}", self.name))
    }

    /// Facts and metadata of one object.
    pub fn head(&self, key: &str) -> ObjectHead {
        rt().block_on(self.store.head(key))
            .unwrap_or_else(|e| panic!("head {key}: {e}"))
    }
}

async fn list_all(store: &S3Store) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut next = None;
    loop {
        let page = store
            .list(&ListRequest {
                continuation: next.take(),
                ..ListRequest::default()
            })
            .await?;
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(keys),
        }
    }
}

impl Drop for TestBucket {
    /// Empty and remove the bucket (LocalStack keeps everything in memory). Best effort: a
    /// failing test keeps its own message.
    fn drop(&mut self) {
        let store = Arc::clone(&self.store);
        let _ = rt().block_on(async move {
            let keys = list_all(&store).await?;
            for chunk in keys.chunks(1000) {
                store.delete_many(chunk).await?;
            }
            store.delete_bucket().await
        });
    }
}
