//! Operator actions on queues, computed from the bucket alone so they work with every daemon
//! stopped: enqueue a task, count each queue's states, list failed tasks and send them back.
//!
//! Every write here follows the rule the engine follows: no key is deleted before its
//! successor exists, and a new key is written create-if-absent so nothing is overwritten.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::layout::{KeyKind, Layout};
use super::meta;
use crate::config::{Config, QueueConfig, WorkerConfig};
use crate::store::{
    ListRequest, ObjectMeta, PutOptions, Store, StoreError, WriteMode, MAX_LIST_KEYS,
};

/// Longest key OSS and S3 accept, in bytes.
pub const MAX_KEY_BYTES: usize = 1023;

/// Failed tasks retried at once by [`retry_all`].
pub const RETRY_CONCURRENCY: usize = 16;

/// Crockford's base32 alphabet: sortable as ASCII, no I, L, O or U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A queue's name with its key layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// `[[queue]] name`.
    pub name: String,
    /// Its keys.
    pub layout: Layout,
    /// The handler reads the payload as an object (a dict: `mail`), so `enqueue` refuses any
    /// other JSON value instead of writing a task that can only fail.
    pub needs_object: bool,
}

/// The key layout a queue's config implies.
pub fn layout_of(queue: &QueueConfig, worker: &WorkerConfig) -> Layout {
    Layout {
        prefix: queue.prefix.clone(),
        suffix: queue.suffix.clone(),
        failed_prefix: worker.failed_prefix.clone(),
        done_prefix: worker.done_prefix.clone(),
    }
}

/// Every configured queue with its layout, in config order.
pub fn queues_of(config: &Config) -> Vec<QueueRef> {
    config
        .queues
        .iter()
        .map(|q| QueueRef {
            name: q.name.clone(),
            layout: layout_of(q, &config.worker),
            needs_object: matches!(q.handler, crate::config::HandlerConfig::Mail(_)),
        })
        .collect()
}

/// Why an operator action failed. Store failures keep the store's error as the source.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No queue has that name.
    #[error("no queue is named {name:?}; the queues are {known:?}")]
    UnknownQueue {
        /// The name given.
        name: String,
        /// The configured names.
        known: Vec<String>,
    },
    /// The payload is not JSON.
    #[error("the payload for queue {queue:?} is not valid JSON")]
    NotJson {
        /// The queue.
        queue: String,
        /// The parser's error (position, what was expected).
        #[source]
        source: serde_json::Error,
    },
    /// The payload is JSON but not an object, and the queue's handler reads an object.
    #[error("queue {queue:?} is served by a handler that reads a JSON object (a dict, like {{\"to_email\": ...}}); the payload is a JSON {kind}")]
    NotAnObject {
        /// The queue.
        queue: String,
        /// What the payload is (`array`, `string`, ...).
        kind: &'static str,
    },
    /// The payload is larger than the worker would accept.
    #[error("the payload is {size} bytes, over worker.max_payload_bytes ({limit}); the worker would fail it without running the handler")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// `--id` cannot be used in a key.
    #[error("task id {id:?} cannot be used: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why.
        reason: String,
    },
    /// A task with that id is already pending.
    #[error("{key} exists already; it was not overwritten (choose another --id, or leave --id out for a fresh one)")]
    Exists {
        /// The key.
        key: String,
    },
    /// A key given to `failed retry` is no queue's failed key.
    #[error("{key} is not a failed task of any queue; failed keys look like {example}")]
    NotFailedKey {
        /// The key given.
        key: String,
        /// A key of the right shape.
        example: String,
    },
    /// The store failed while doing `action`.
    #[error("{action}")]
    Store {
        /// What was being done, with the key.
        action: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

impl AdminError {
    /// The store error inside, if this is one (for choosing an exit code).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            AdminError::Store { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn store_err(action: impl Into<String>) -> impl FnOnce(StoreError) -> AdminError {
    let action = action.into();
    move |source| AdminError::Store { action, source }
}

/// The queue named `name`.
pub fn find_queue<'a>(queues: &'a [QueueRef], name: &str) -> Result<&'a QueueRef, AdminError> {
    queues
        .iter()
        .find(|q| q.name == name)
        .ok_or_else(|| AdminError::UnknownQueue {
            name: name.to_owned(),
            known: queues.iter().map(|q| q.name.clone()).collect(),
        })
}

// ---------------------------------------------------------------------------------------
// enqueue

/// A task to write.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    /// The queue.
    pub queue: &'a QueueRef,
    /// The id, or `None` for [`new_task_id`].
    pub id: Option<&'a str>,
    /// The payload; must be JSON.
    pub payload: Bytes,
    /// `worker.max_payload_bytes`.
    pub max_payload_bytes: u64,
    /// Now, for the generated id.
    pub now: SystemTime,
}

impl NewTask<'_> {
    /// Everything that can be checked without the store: the payload is JSON within the size
    /// limit, and the id makes a valid pending key.
    pub fn check(&self) -> Result<(), AdminError> {
        let value =
            serde_json::from_slice::<serde_json::Value>(&self.payload).map_err(|source| {
                AdminError::NotJson {
                    queue: self.queue.name.clone(),
                    source,
                }
            })?;
        if self.queue.needs_object && !value.is_object() {
            let kind = match value {
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::Bool(_) => "boolean",
                _ => "null",
            };
            return Err(AdminError::NotAnObject {
                queue: self.queue.name.clone(),
                kind,
            });
        }
        if self.payload.len() as u64 > self.max_payload_bytes {
            return Err(AdminError::TooLarge {
                size: self.payload.len(),
                limit: self.max_payload_bytes,
            });
        }
        match self.id {
            Some(id) => check_id(id, &self.queue.layout),
            None => Ok(()),
        }
    }
}

/// Write a pending task with create-if-absent and return its key.
pub async fn enqueue(store: &dyn Store, task: NewTask<'_>) -> Result<String, AdminError> {
    task.check()?;
    let id = match task.id {
        Some(id) => id.to_owned(),
        None => new_task_id(task.now, rand::random()),
    };
    let key = task.queue.layout.pending_key(&id);
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        content_type: Some("application/json".into()),
        ..PutOptions::default()
    };
    match store.put(&key, task.payload, &opts).await {
        Ok(_) => Ok(key),
        Err(StoreError::AlreadyExists { .. }) => Err(AdminError::Exists { key }),
        Err(e) => Err(store_err(format!("writing {key}"))(e)),
    }
}

/// A time-sortable unique id: a ULID (48-bit milliseconds since the epoch, then 80 random
/// bits, in Crockford base32, 26 characters), so keys list in the order they were made.
pub fn new_task_id(now: SystemTime, random: u128) -> String {
    let millis = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        & ((1u128 << 48) - 1);
    let value = (millis << 80) | (random & ((1u128 << 80) - 1));
    (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

fn check_id(id: &str, layout: &Layout) -> Result<(), AdminError> {
    let reason = if id.is_empty() {
        Some("it is empty".to_owned())
    } else if id.chars().any(char::is_control) {
        Some("it contains control characters".to_owned())
    } else if id.starts_with('/') || id.split('/').any(|seg| seg == ".." || seg == ".") {
        Some("it starts with / or has a . or .. segment".to_owned())
    } else if layout.pending_key(id).len() > MAX_KEY_BYTES {
        Some(format!("the key would exceed {MAX_KEY_BYTES} bytes"))
    } else if layout.classify(&layout.pending_key(id)) != KeyKind::Pending(id.to_owned()) {
        Some("the key it makes would not be read as a pending task".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AdminError::InvalidId {
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// status

/// One queue's state, counted from the bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    /// Queue name.
    pub queue: String,
    /// Queue prefix.
    pub prefix: String,
    /// Pending tasks.
    pub pending: u64,
    /// Locks younger than the lease: running, or waiting for a retry.
    pub running: u64,
    /// Locks older than the lease: their worker died or was cut off; a worker will reap them.
    pub stale: u64,
    /// Tasks under the failed prefix.
    pub failed: u64,
    /// Age of the oldest pending task on the store's clock, in seconds.
    pub oldest_pending_age_secs: Option<f64>,
}

/// Count one queue's pending tasks, fresh and stale locks and failed tasks, paging through
/// every page. Ages are measured on the store's clock (each page's `server_time`).
pub async fn queue_status(
    store: &dyn Store,
    queue: &QueueRef,
    lease: Duration,
) -> Result<QueueStatus, AdminError> {
    let layout = &queue.layout;
    let mut status = QueueStatus {
        queue: queue.name.clone(),
        prefix: layout.prefix.clone(),
        pending: 0,
        running: 0,
        stale: 0,
        failed: 0,
        oldest_pending_age_secs: None,
    };
    let mut oldest: Option<Duration> = None;
    for_each_object(store, &layout.prefix, |obj, server_time| {
        let age = server_time
            .duration_since(obj.last_modified)
            .unwrap_or_default();
        match layout.classify(&obj.key) {
            KeyKind::Pending(_) => {
                status.pending += 1;
                oldest = oldest.max(Some(age));
            }
            KeyKind::Lock(_) if age >= lease => status.stale += 1,
            KeyKind::Lock(_) => status.running += 1,
            KeyKind::Other => {}
        }
    })
    .await?;
    for_each_object(store, &layout.failed_queue_prefix(), |obj, _| {
        if layout.failed_id(&obj.key).is_some() {
            status.failed += 1;
        }
    })
    .await?;
    status.oldest_pending_age_secs = oldest.map(|d| d.as_secs_f64());
    Ok(status)
}

/// Call `f` for every object under `prefix`, page by page, with the page's server time.
async fn for_each_object(
    store: &dyn Store,
    prefix: &str,
    mut f: impl FnMut(&ObjectMeta, SystemTime),
) -> Result<(), AdminError> {
    let mut continuation = None;
    loop {
        let req = ListRequest {
            prefix: prefix.to_owned(),
            start_after: None,
            continuation: continuation.take(),
            max_keys: MAX_LIST_KEYS,
        };
        let page = store
            .list(&req)
            .await
            .map_err(store_err(format!("listing {prefix:?}")))?;
        for obj in &page.objects {
            f(obj, page.server_time);
        }
        match page.next {
            Some(next) => continuation = Some(next),
            None => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// failed tasks

/// A task in the failed prefix, with the bookkeeping the worker left on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedTask {
    /// Queue name.
    pub queue: String,
    /// The failed key (`failed/mail/42.task`).
    pub key: String,
    /// The task id.
    pub id: String,
    /// Attempts started (`bq-attempt`).
    pub attempts: Option<u32>,
    /// When it failed (`bq-failed-at`).
    pub failed_at: Option<String>,
    /// Last error (`bq-error`).
    pub error: Option<String>,
    /// Payload size in bytes.
    pub size: u64,
}

/// The keys of a queue's failed tasks, in key order.
pub async fn failed_keys(store: &dyn Store, queue: &QueueRef) -> Result<Vec<String>, AdminError> {
    let mut keys = Vec::new();
    for_each_object(store, &queue.layout.failed_queue_prefix(), |obj, _| {
        if queue.layout.failed_id(&obj.key).is_some() {
            keys.push(obj.key.clone());
        }
    })
    .await?;
    Ok(keys)
}

/// Every failed task of a queue with its metadata (one HEAD per task). A task retried by
/// someone else meanwhile is left out.
pub async fn list_failed(
    store: &dyn Store,
    queue: &QueueRef,
) -> Result<Vec<FailedTask>, AdminError> {
    let mut out = Vec::new();
    for key in failed_keys(store, queue).await? {
        let head = match store.head(&key).await {
            Ok(head) => head,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(store_err(format!("reading {key}"))(e)),
        };
        let get = |name: &str| head.user_meta.get(name).cloned();
        out.push(FailedTask {
            queue: queue.name.clone(),
            id: queue.layout.failed_id(&key).unwrap_or_default(),
            attempts: get(meta::ATTEMPT).and_then(|a| a.parse().ok()),
            failed_at: get(meta::FAILED_AT),
            error: get(meta::ERROR),
            size: head.meta.size,
            key,
        });
    }
    Ok(out)
}

/// Find the queue and failed key an operator means: a failed key (`failed/mail/42.task`) or
/// the task's pending key (`mail/42.task`).
pub fn resolve_failed_key<'a>(
    queues: &'a [QueueRef],
    key: &str,
) -> Result<(&'a QueueRef, String), AdminError> {
    for q in queues {
        if q.layout.failed_id(key).is_some() {
            return Ok((q, key.to_owned()));
        }
    }
    for q in queues {
        if let KeyKind::Pending(id) = q.layout.classify(key) {
            return Ok((q, q.layout.failed_key(&id)));
        }
    }
    let example = queues
        .first()
        .map(|q| q.layout.failed_key("ID"))
        .unwrap_or_else(|| "failed/QUEUE/ID.task".into());
    Err(AdminError::NotFailedKey {
        key: key.to_owned(),
        example,
    })
}

/// What [`retry_failed`] did with one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RetryOutcome {
    /// Pending again with its attempt count reset; the failed key is gone.
    Requeued {
        /// The failed key.
        failed_key: String,
        /// The pending key written.
        pending_key: String,
    },
    /// A different task is pending under the same key; the failed task was left in place.
    PendingExists {
        /// The failed key.
        failed_key: String,
        /// The pending key that exists.
        pending_key: String,
    },
    /// The failed key no longer exists (retried or deleted meanwhile).
    Gone {
        /// The failed key.
        failed_key: String,
    },
}

/// Send one failed task back to pending: write the pending key create-if-absent from the
/// failed object's body (no bookkeeping metadata, so the attempt count starts again), then
/// delete the failed key. Interrupted between the two, the task exists twice and running this
/// again finishes the job; it is never lost.
pub async fn retry_failed(
    store: &dyn Store,
    queue: &QueueRef,
    failed_key: &str,
) -> Result<RetryOutcome, AdminError> {
    let Some(id) = queue.layout.failed_id(failed_key) else {
        return Err(AdminError::NotFailedKey {
            key: failed_key.to_owned(),
            example: queue.layout.failed_key("ID"),
        });
    };
    let failed = match store.get(failed_key).await {
        Ok(obj) => obj,
        Err(StoreError::NotFound { .. }) => {
            return Ok(RetryOutcome::Gone {
                failed_key: failed_key.to_owned(),
            })
        }
        Err(e) => return Err(store_err(format!("reading {failed_key}"))(e)),
    };
    let pending_key = queue.layout.pending_key(&id);
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        user_meta: Default::default(),
        content_type: failed.head.content_type.clone(),
    };
    match store.put(&pending_key, failed.body.clone(), &opts).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. }) => {
            // Ours from an interrupted earlier retry (or a lost answer) if the body matches.
            if !pending_has_body(store, &pending_key, &failed.body).await? {
                return Ok(RetryOutcome::PendingExists {
                    failed_key: failed_key.to_owned(),
                    pending_key,
                });
            }
        }
        Err(e) => return Err(store_err(format!("writing {pending_key}"))(e)),
    }
    store.delete(failed_key).await.map_err(store_err(format!(
        "deleting {failed_key} after writing {pending_key}"
    )))?;
    Ok(RetryOutcome::Requeued {
        failed_key: failed_key.to_owned(),
        pending_key,
    })
}

async fn pending_has_body(store: &dyn Store, key: &str, body: &Bytes) -> Result<bool, AdminError> {
    match store.get(key).await {
        Ok(obj) => Ok(obj.body == *body),
        // Claimed by a worker in the meantime: it is not ours to judge; keep the failed copy.
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(store_err(format!("reading {key}"))(e)),
    }
}

/// Each failed key with what retrying it did.
pub type RetryResults = Vec<(String, Result<RetryOutcome, AdminError>)>;

/// Retry every failed task of `queue`, [`RETRY_CONCURRENCY`] at a time; each key with its
/// result, in key order.
pub async fn retry_all(store: &dyn Store, queue: &QueueRef) -> Result<RetryResults, AdminError> {
    let keys = failed_keys(store, queue).await?;
    let mut results: RetryResults = stream::iter(keys)
        .map(|key| async move {
            let result = retry_failed(store, queue, &key).await;
            (key, result)
        })
        .buffer_unordered(RETRY_CONCURRENCY)
        .collect()
        .await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        CopyOptions, ListPage, Metadata, Object, ObjectHead, StoreKind, WriteResult,
    };
    use async_trait::async_trait;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Body, metadata, LastModified and Content-Type of a stored object.
    type Stored = (Bytes, Metadata, SystemTime, Option<String>);

    /// A small in-memory store with a settable clock and tiny pages, so paging is exercised.
    #[derive(Debug)]
    struct TestStore {
        objects: Mutex<BTreeMap<String, Stored>>,
        clock: Mutex<SystemTime>,
        page: usize,
    }

    impl TestStore {
        fn new() -> Self {
            TestStore {
                objects: Mutex::new(BTreeMap::new()),
                clock: Mutex::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
                page: 2,
            }
        }
        fn now_value(&self) -> SystemTime {
            *self.clock.lock().unwrap()
        }
        fn advance(&self, d: Duration) {
            *self.clock.lock().unwrap() += d;
        }
        fn seed(&self, key: &str, body: &str, meta: &[(&str, &str)]) {
            let meta = meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.objects.lock().unwrap().insert(
                key.into(),
                (Bytes::from(body.to_owned()), meta, self.now_value(), None),
            );
        }
        fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }
        fn body(&self, key: &str) -> Option<Bytes> {
            self.objects.lock().unwrap().get(key).map(|o| o.0.clone())
        }
        fn head_of(&self, key: &str) -> Result<ObjectHead, StoreError> {
            let objects = self.objects.lock().unwrap();
            let (body, meta, at, ct) = objects
                .get(key)
                .ok_or(StoreError::NotFound { key: key.into() })?;
            Ok(ObjectHead {
                meta: ObjectMeta {
                    key: key.into(),
                    etag: format!("{:x}", body.len()),
                    last_modified: *at,
                    size: body.len() as u64,
                },
                user_meta: meta.clone(),
                content_type: ct.clone(),
            })
        }
    }

    #[async_trait]
    impl Store for TestStore {
        fn kind(&self) -> StoreKind {
            StoreKind::Memory
        }
        fn bucket(&self) -> &str {
            "test"
        }
        fn atomic_conditional_copy(&self) -> bool {
            true
        }
        async fn list(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
            let objects = self.objects.lock().unwrap();
            let after = req.continuation.clone().or(req.start_after.clone());
            let matching: Vec<String> = objects
                .keys()
                .filter(|k| k.starts_with(&req.prefix))
                .filter(|k| after.as_ref().map_or(true, |a| k.as_str() > a.as_str()))
                .cloned()
                .collect();
            drop(objects);
            let take = self.page.min(req.max_keys as usize);
            let page: Vec<ObjectMeta> = matching
                .iter()
                .take(take)
                .map(|k| self.head_of(k).unwrap().meta)
                .collect();
            let next = (matching.len() > take).then(|| page.last().unwrap().key.clone());
            Ok(ListPage {
                objects: page,
                next,
                server_time: self.now_value(),
            })
        }
        async fn get(&self, key: &str) -> Result<Object, StoreError> {
            let head = self.head_of(key)?;
            Ok(Object {
                head,
                body: self.body(key).unwrap(),
            })
        }
        async fn head(&self, key: &str) -> Result<ObjectHead, StoreError> {
            self.head_of(key)
        }
        async fn put(
            &self,
            key: &str,
            body: Bytes,
            opts: &PutOptions,
        ) -> Result<WriteResult, StoreError> {
            let mut objects = self.objects.lock().unwrap();
            if opts.mode == WriteMode::CreateIfAbsent && objects.contains_key(key) {
                return Err(StoreError::AlreadyExists { key: key.into() });
            }
            objects.insert(
                key.into(),
                (
                    body,
                    opts.user_meta.clone(),
                    self.now_value(),
                    opts.content_type.clone(),
                ),
            );
            Ok(WriteResult { etag: None })
        }
        async fn copy(
            &self,
            _s: &str,
            _d: &str,
            _o: &CopyOptions,
        ) -> Result<WriteResult, StoreError> {
            unreachable!("admin never copies")
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }
        async fn delete_many(
            &self,
            keys: &[String],
        ) -> Result<Vec<(String, StoreError)>, StoreError> {
            for k in keys {
                self.objects.lock().unwrap().remove(k);
            }
            Ok(vec![])
        }
        async fn now(&self) -> Result<SystemTime, StoreError> {
            Ok(self.now_value())
        }
    }

    fn mail() -> QueueRef {
        QueueRef {
            name: "mail".into(),
            layout: Layout {
                prefix: "mail/".into(),
                suffix: ".task".into(),
                failed_prefix: "failed/".into(),
                done_prefix: "done/".into(),
            },
            needs_object: true,
        }
    }

    fn task<'a>(q: &'a QueueRef, id: Option<&'a str>, payload: &str) -> NewTask<'a> {
        NewTask {
            queue: q,
            id,
            payload: Bytes::from(payload.to_owned()),
            max_payload_bytes: 1024,
            now: UNIX_EPOCH + Duration::from_millis(1_469_918_176_385),
        }
    }

    #[test]
    fn ids_are_ulids_that_sort_by_time() {
        // The ULID specification's example timestamp encodes as 01ARYZ6S41.
        let t = UNIX_EPOCH + Duration::from_millis(1_469_918_176_385);
        let id = new_task_id(t, 0);
        assert_eq!(id, "01ARYZ6S410000000000000000");
        assert_eq!(new_task_id(t, u128::MAX), "01ARYZ6S41ZZZZZZZZZZZZZZZZ");
        let later = new_task_id(t + Duration::from_millis(1), 0);
        assert!(later > new_task_id(t, u128::MAX));
    }

    #[tokio::test]
    async fn enqueue_writes_once_and_never_overwrites() {
        let store = TestStore::new();
        let q = mail();
        let key = enqueue(&store, task(&q, Some("42"), r#"{"a":1}"#))
            .await
            .unwrap();
        assert_eq!(key, "mail/42.task");
        let err = enqueue(&store, task(&q, Some("42"), r#"{"a":2}"#))
            .await
            .unwrap_err();
        assert!(matches!(err, AdminError::Exists { .. }), "{err}");
        assert_eq!(store.body("mail/42.task").unwrap(), r#"{"a":1}"#);

        let generated = enqueue(&store, task(&q, None, "{}")).await.unwrap();
        assert!(generated.starts_with("mail/01ARYZ6S41") && generated.ends_with(".task"));
    }

    #[tokio::test]
    async fn enqueue_rejects_bad_json_large_payloads_and_bad_ids() {
        let store = TestStore::new();
        let q = mail();
        let err = enqueue(&store, task(&q, None, "{nope")).await.unwrap_err();
        assert!(matches!(err, AdminError::NotJson { .. }));
        let err = enqueue(&store, task(&q, None, "[1,2]")).await.unwrap_err();
        assert!(
            matches!(err, AdminError::NotAnObject { kind: "array", .. }),
            "{err}"
        );
        let anything = QueueRef {
            needs_object: false,
            ..mail()
        };
        enqueue(&store, task(&anything, Some("list"), "[1,2]"))
            .await
            .expect("a handler reading bytes takes any JSON");
        store.delete("mail/list.task").await.unwrap();
        let big = format!("{{\"x\":\"{}\"}}", "x".repeat(2000));
        assert!(matches!(
            enqueue(&store, task(&q, None, &big)).await.unwrap_err(),
            AdminError::TooLarge { .. }
        ));
        for id in ["", "../x", "/abs", "a\nb", "a/./b"] {
            let err = enqueue(&store, task(&q, Some(id), "{}")).await.unwrap_err();
            assert!(matches!(err, AdminError::InvalidId { .. }), "{id:?}: {err}");
        }
        assert!(store.keys().is_empty());
    }

    #[tokio::test]
    async fn status_counts_every_state_across_pages_on_the_store_clock() {
        let store = TestStore::new();
        let q = mail();
        let lease = Duration::from_secs(300);
        store.seed("mail/1.task", "{}", &[]);
        store.seed("mail/old.lock", "{}", &[]);
        store.advance(Duration::from_secs(400));
        store.seed("mail/2.task", "{}", &[]);
        store.seed("mail/3.task", "{}", &[]);
        store.seed("mail/new.lock", "{}", &[]);
        store.seed("mail/readme.txt", "", &[]);
        store.seed("failed/mail/9.task", "{}", &[]);
        store.seed("failed/other/9.task", "{}", &[]);
        store.advance(Duration::from_secs(5));
        let s = queue_status(&store, &q, lease).await.unwrap();
        assert_eq!(
            (s.pending, s.running, s.stale, s.failed),
            (3, 1, 1, 1),
            "{s:?}"
        );
        assert_eq!(s.oldest_pending_age_secs, Some(405.0));
    }

    #[tokio::test]
    async fn failed_list_reads_metadata() {
        let store = TestStore::new();
        let q = mail();
        store.seed(
            "failed/mail/7.task",
            "{}",
            &[
                (meta::ATTEMPT, "3"),
                (meta::ERROR, "550 no such user"),
                (meta::FAILED_AT, "2024-01-01T00:00:00Z"),
            ],
        );
        let list = list_failed(&store, &q).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, "7");
        assert_eq!(list[0].attempts, Some(3));
        assert_eq!(list[0].error.as_deref(), Some("550 no such user"));
    }

    #[tokio::test]
    async fn retry_requeues_with_reset_attempts_and_is_safe_to_repeat() {
        let store = TestStore::new();
        let q = mail();
        store.seed("failed/mail/7.task", r#"{"x":1}"#, &[(meta::ATTEMPT, "3")]);
        let out = retry_failed(&store, &q, "failed/mail/7.task")
            .await
            .unwrap();
        assert_eq!(
            out,
            RetryOutcome::Requeued {
                failed_key: "failed/mail/7.task".into(),
                pending_key: "mail/7.task".into()
            }
        );
        assert_eq!(store.keys(), vec!["mail/7.task"]);
        assert!(store.head_of("mail/7.task").unwrap().user_meta.is_empty());
        let again = retry_failed(&store, &q, "failed/mail/7.task")
            .await
            .unwrap();
        assert!(matches!(again, RetryOutcome::Gone { .. }));
    }

    #[tokio::test]
    async fn retry_after_an_interrupted_retry_finishes_it() {
        let store = TestStore::new();
        let q = mail();
        // Interrupted: the pending copy was written, the failed key not yet deleted.
        store.seed("failed/mail/7.task", r#"{"x":1}"#, &[]);
        store.seed("mail/7.task", r#"{"x":1}"#, &[]);
        let out = retry_failed(&store, &q, "failed/mail/7.task")
            .await
            .unwrap();
        assert!(matches!(out, RetryOutcome::Requeued { .. }));
        assert_eq!(store.keys(), vec!["mail/7.task"]);
    }

    #[tokio::test]
    async fn retry_keeps_the_failed_task_when_another_is_pending() {
        let store = TestStore::new();
        let q = mail();
        store.seed("failed/mail/7.task", r#"{"x":1}"#, &[]);
        store.seed("mail/7.task", r#"{"x":2}"#, &[]);
        let out = retry_failed(&store, &q, "failed/mail/7.task")
            .await
            .unwrap();
        assert!(matches!(out, RetryOutcome::PendingExists { .. }));
        assert_eq!(store.body("failed/mail/7.task").unwrap(), r#"{"x":1}"#);
        assert_eq!(store.body("mail/7.task").unwrap(), r#"{"x":2}"#);
    }

    #[tokio::test]
    async fn retry_all_pages_through_every_failed_task() {
        let store = TestStore::new();
        let q = mail();
        for i in 0..5 {
            store.seed(&format!("failed/mail/{i}.task"), "{}", &[]);
        }
        let results = retry_all(&store, &q).await.unwrap();
        assert_eq!(results.len(), 5);
        assert!(results
            .iter()
            .all(|(_, r)| matches!(r, Ok(RetryOutcome::Requeued { .. }))));
        assert_eq!(store.keys().len(), 5);
        assert!(store.keys().iter().all(|k| k.starts_with("mail/")));
    }

    #[test]
    fn resolves_failed_and_pending_style_keys() {
        let queues = vec![mail()];
        let (q, key) = resolve_failed_key(&queues, "failed/mail/7.task").unwrap();
        assert_eq!(
            (q.name.as_str(), key.as_str()),
            ("mail", "failed/mail/7.task")
        );
        let (_, key) = resolve_failed_key(&queues, "mail/7.task").unwrap();
        assert_eq!(key, "failed/mail/7.task");
        let err = resolve_failed_key(&queues, "other/7.task").unwrap_err();
        assert!(err.to_string().contains("failed/mail/ID.task"), "{err}");
    }
}
