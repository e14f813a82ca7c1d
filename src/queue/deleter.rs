//! Deletes, batched by group commit.
//!
//! Every task costs two deletes: the pending key when it is claimed and the lock when it is
//! settled. Sent one by one they would be half of all requests; here they are gathered into
//! DeleteObjects batches. There is no fixed window: while one batch is in flight, new deletes
//! queue up and go out together in the next one, so batches grow exactly as fast as the load.
//!
//! Two kinds of delete:
//! - **now**: the caller waits for it (the pending key of a claim must be gone before the
//!   handler starts);
//! - **later**: fire and forget, not before a given instant (a settled lock). A lock delete
//!   rides along with the next "now" batch once due, or goes on its own `linger` after that, so
//!   at any load it costs next to nothing. Holding settled locks a moment is also what makes
//!   the S3 claim safe: see [`crate::queue::claim`].
//!
//! A claim announces its coming "now" delete when it starts ([`Deleter::expect`]). A batch
//! with a "now" delete in it waits, at most [`Deleter::new`]'s `gather`, for the claims under
//! way to join it, so concurrent claims share one request instead of racing each other into
//! several small ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::store::{Store, StoreError, MAX_DELETE_BATCH};

/// Retries of a failed "later" delete before it is logged and dropped at shutdown.
const FLUSH_ATTEMPTS: u32 = 5;

/// Wait before retrying a failed "later" delete while running.
const RETRY_LATER: Duration = Duration::from_secs(1);

enum Request {
    Now {
        key: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Later {
        key: String,
        not_before: Instant,
        deadline: Instant,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// Claims under way that will send a "now" delete, and a signal when one gives up.
#[derive(Debug, Default)]
struct Expecting {
    count: AtomicUsize,
    changed: Notify,
}

/// Handle for queueing deletes; cheap to clone.
#[derive(Debug, Clone)]
pub struct Deleter {
    tx: mpsc::UnboundedSender<Request>,
    expecting: Arc<Expecting>,
}

/// A "now" delete announced in advance; see [`Deleter::expect`]. Dropping it unused withdraws
/// the announcement.
#[derive(Debug)]
pub struct Expected {
    expecting: Arc<Expecting>,
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.expecting.count.fetch_sub(1, Ordering::SeqCst);
        self.expecting.changed.notify_waiters();
    }
}

/// Why a delete could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("the delete batcher has stopped")]
pub struct DeleterStopped;

impl Deleter {
    /// A deleter on `store` and the task that sends its batches (run it alongside the engine;
    /// it ends when every handle is dropped, after sending what is queued).
    /// `linger`: how long a due "later" delete waits for company; `gather`: how long a batch
    /// with a "now" delete waits for announced ones.
    pub fn new(
        store: Arc<dyn Store>,
        linger: Duration,
        gather: Duration,
    ) -> (Deleter, DeleterTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let expecting = Arc::new(Expecting::default());
        (
            Deleter {
                tx,
                expecting: Arc::clone(&expecting),
            },
            DeleterTask {
                rx,
                store,
                linger,
                gather,
                expecting,
                later: Vec::new(),
                now: Vec::new(),
                flushes: Vec::new(),
            },
        )
    }

    /// Announce a "now" delete that will follow shortly (a claim starting).
    pub fn expect(&self) -> Expected {
        self.expecting.count.fetch_add(1, Ordering::SeqCst);
        Expected {
            expecting: Arc::clone(&self.expecting),
        }
    }

    /// [`Deleter::delete_now`] for an announced delete.
    pub async fn delete_expected(&self, expected: Expected, key: &str) -> Result<(), StoreError> {
        let sent = self.send_now(key);
        drop(expected);
        sent?.await
    }

    /// Delete `key` in the next batch and wait for the answer.
    pub async fn delete_now(&self, key: &str) -> Result<(), StoreError> {
        self.send_now(key)?.await
    }

    /// Queue a "now" delete; the returned future is its answer.
    fn send_now(
        &self,
        key: &str,
    ) -> Result<impl std::future::Future<Output = Result<(), StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Transient {
            key: key.to_owned(),
            op: crate::store::Op::DeleteMany,
            message: DeleterStopped.to_string(),
        };
        self.tx
            .send(Request::Now {
                key: key.to_owned(),
                reply,
            })
            .map_err(|_| stopped())?;
        let key = key.to_owned();
        Ok(async move {
            rx.await.map_err(|_| StoreError::Transient {
                key,
                op: crate::store::Op::DeleteMany,
                message: DeleterStopped.to_string(),
            })?
        })
    }

    /// Delete `key` some time after `not_before`, batched with other deletes, and sent before
    /// `deadline` (the end of the lock's lease: past it, the key may hold someone else's lock).
    /// A delete that has not succeeded by the deadline is dropped, leaving the lock to the
    /// reaper.
    pub fn delete_later(&self, key: &str, not_before: Instant, deadline: Instant) {
        let sent = self.tx.send(Request::Later {
            key: key.to_owned(),
            not_before,
            deadline,
        });
        if sent.is_err() {
            tracing::warn!(key = %key, "delete batcher stopped; lock left for the reaper");
        }
    }

    /// Wait until every "later" delete queued so far has been sent (each once due).
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Flush { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A queued "later" delete.
struct Later {
    key: String,
    not_before: Instant,
    /// When it goes even without company: after the linger, but never past the deadline.
    send_by: Instant,
    deadline: Instant,
    failures: u32,
}

/// The task that sends batches; see [`Deleter::new`].
pub struct DeleterTask {
    rx: mpsc::UnboundedReceiver<Request>,
    store: Arc<dyn Store>,
    linger: Duration,
    gather: Duration,
    expecting: Arc<Expecting>,
    later: Vec<Later>,
    now: Vec<(String, oneshot::Sender<Result<(), StoreError>>)>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl DeleterTask {
    /// Send batches until every [`Deleter`] is dropped, then send what is left and return.
    pub async fn run(mut self) {
        loop {
            let wake = self.next_wake();
            let open = tokio::select! {
                biased;
                msg = self.rx.recv() => match msg {
                    Some(msg) => { self.absorb(msg); true }
                    None => false,
                },
                _ = sleep_until_opt(wake) => true,
            };
            // Group commit: take everything that queued while we waited or sent.
            while let Ok(msg) = self.rx.try_recv() {
                self.absorb(msg);
            }
            if open {
                self.gather_announced().await;
            }
            self.send_due(!open).await;
            if !open && self.now.is_empty() && self.later.is_empty() {
                self.answer_flushes();
                return;
            }
        }
    }

    /// With a "now" delete queued, wait (at most `gather`) for announced ones to arrive.
    async fn gather_announced(&mut self) {
        if self.now.is_empty() || self.gather.is_zero() {
            return;
        }
        let until = Instant::now() + self.gather;
        loop {
            let changed = self.expecting.changed.notified();
            if self.expecting.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::select! {
                biased;
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.absorb(msg),
                    None => return,
                },
                () = changed => {}
                () = tokio::time::sleep_until(until) => return,
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.absorb(msg);
            }
        }
    }

    fn absorb(&mut self, msg: Request) {
        match msg {
            Request::Now { key, reply } => self.now.push((key, reply)),
            Request::Later {
                key,
                not_before,
                deadline,
            } => self.later.push(Later {
                key,
                not_before,
                send_by: not_before.max((not_before + self.linger).min(deadline)),
                deadline,
                failures: 0,
            }),
            Request::Flush { reply } => self.flushes.push(reply),
        }
    }

    /// When a queued "later" delete must go even without company, or when a flush can next
    /// make progress.
    fn next_wake(&self) -> Option<Instant> {
        let flushing = !self.flushes.is_empty();
        self.later
            .iter()
            .map(|l| if flushing { l.not_before } else { l.send_by })
            .min()
    }

    /// Send every "now" delete and every due "later" one, in batches of at most
    /// [`MAX_DELETE_BATCH`].
    async fn send_due(&mut self, closing: bool) {
        let now = Instant::now();
        let flushing = closing || !self.flushes.is_empty();
        let riding = !self.now.is_empty();
        let (due, waiting): (Vec<Later>, Vec<Later>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|l| l.not_before <= now && (riding || flushing || l.send_by <= now));
        self.later = waiting;
        let urgent = std::mem::take(&mut self.now);
        if due.is_empty() && urgent.is_empty() {
            if closing {
                // Nothing due yet: wait for the earliest "later" delete before looking again.
                if let Some(wake) = self.next_wake() {
                    tokio::time::sleep_until(wake).await;
                }
            }
            if flushing && self.later.is_empty() {
                self.answer_flushes();
            }
            return;
        }
        let mut keys: Vec<String> = urgent.iter().map(|(k, _)| k.clone()).collect();
        keys.extend(due.iter().map(|l| l.key.clone()));
        let mut errors: Vec<(String, StoreError)> = Vec::new();
        for chunk in keys.chunks(MAX_DELETE_BATCH) {
            errors.extend(self.send(chunk).await);
        }
        for (key, reply) in urgent {
            let answer = match errors.iter().position(|(k, _)| *k == key) {
                Some(i) => Err(errors.swap_remove(i).1),
                None => Ok(()),
            };
            let _ = reply.send(answer);
        }
        for mut l in due {
            if let Some(i) = errors.iter().position(|(k, _)| *k == l.key) {
                let (_, e) = errors.swap_remove(i);
                l.failures += 1;
                let retry_at = Instant::now() + RETRY_LATER * l.failures.min(30);
                if retry_at >= l.deadline {
                    tracing::warn!(key = %l.key, error = %e, "could not delete a settled lock before its lease ends; the reaper will remove it");
                    continue;
                }
                tracing::warn!(key = %l.key, error = %e, failures = l.failures, "could not delete a settled lock; will retry");
                l.not_before = retry_at;
                l.send_by = retry_at;
                self.later.push(l);
            }
        }
        if flushing && self.later.iter().all(|l| l.failures >= FLUSH_ATTEMPTS) {
            self.give_up();
        }
    }

    /// One request: DELETE for a single key, DeleteObjects for several. A failed request
    /// fails every key in it.
    async fn send(&self, keys: &[String]) -> Vec<(String, StoreError)> {
        let result = match keys {
            [one] => self.store.delete(one).await.map(|()| Vec::new()),
            many => self.store.delete_many(many).await,
        };
        match result {
            Ok(failed) => failed,
            Err(e) => {
                let message = e.to_string();
                keys.iter()
                    .map(|k| {
                        (
                            k.clone(),
                            StoreError::Transient {
                                key: k.clone(),
                                op: crate::store::Op::DeleteMany,
                                message: message.clone(),
                            },
                        )
                    })
                    .collect()
            }
        }
    }

    fn answer_flushes(&mut self) {
        for reply in self.flushes.drain(..) {
            let _ = reply.send(());
        }
    }

    fn give_up(&mut self) {
        for l in self.later.drain(..) {
            tracing::error!(key = %l.key, "giving up deleting a settled lock; the reaper will remove it after the lease");
        }
        self.answer_flushes();
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
