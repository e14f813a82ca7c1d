//! The engine's spawned tasks, all accounted for: the drain waits for them, and dropping the
//! engine (a second signal, or a simulated crash) aborts every one, so nothing the engine
//! started keeps touching the store after it is gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

/// Tasks spawned by the engine. A std `Mutex`: nothing awaits while it is held.
#[derive(Debug, Default)]
pub struct TaskSet {
    inner: Mutex<Inner>,
    idle: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    running: BTreeMap<u64, AbortHandle>,
}

/// Removes a finished task from the set, however it finished (returned, panicked, aborted).
struct Finished {
    set: Arc<TaskSet>,
    id: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        let now_idle = {
            let mut inner = self.set.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.running.remove(&self.id);
            inner.running.is_empty()
        };
        if now_idle {
            self.set.idle.notify_waiters();
        }
    }
}

impl TaskSet {
    /// An empty set.
    pub fn new() -> Arc<TaskSet> {
        Arc::new(TaskSet::default())
    }

    /// Spawn `fut` as a member of the set.
    pub fn spawn<F>(self: &Arc<Self>, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Held across the spawn so the task cannot finish before it is registered.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = inner.next;
        inner.next += 1;
        let finished = Finished {
            set: Arc::clone(self),
            id,
        };
        let handle = tokio::spawn(async move {
            let _finished = finished;
            fut.await
        });
        inner.running.insert(id, handle.abort_handle());
        handle
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
            .len()
    }

    /// True when no task is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until no task is running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Abort every running task.
    pub fn abort_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for handle in inner.running.values() {
            handle.abort();
        }
    }
}

/// Aborts every task of the set when dropped: held by the engine's future.
#[derive(Debug)]
pub struct AbortOnDrop(pub Arc<TaskSet>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_idle_waits_for_every_task_including_panicking_ones() {
        let set = TaskSet::new();
        set.spawn(tokio::time::sleep(Duration::from_secs(5)));
        set.spawn(async { panic!("a handler bug") });
        let inner = Arc::clone(&set);
        set.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            inner.spawn(tokio::time::sleep(Duration::from_secs(10)));
        });
        let start = tokio::time::Instant::now();
        set.wait_idle().await;
        assert_eq!(start.elapsed(), Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_guard_aborts_everything() {
        let set = TaskSet::new();
        let touched = Arc::new(AtomicBool::new(false));
        let t = Arc::clone(&touched);
        set.spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            t.store(true, Ordering::SeqCst);
        });
        drop(AbortOnDrop(Arc::clone(&set)));
        set.wait_idle().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            !touched.load(Ordering::SeqCst),
            "an aborted task never runs again"
        );
    }
}
