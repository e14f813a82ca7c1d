//! One listing page as the scanner works through it: which keys are claimable, which locks
//! look stale, and in what order to try the candidates.
//!
//! Workers that list the same page at the same moment must not all reach for the same first
//! key, so each starts its walk at a random offset and, after losing a race, re-lists and
//! starts elsewhere.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

use super::layout::{KeyKind, Layout};
use crate::store::{ListPage, ObjectMeta};

/// A claimable task seen in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Task id.
    pub id: String,
    /// The pending object as listed.
    pub listed: ObjectMeta,
}

/// A lock seen in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLock {
    /// Task id.
    pub id: String,
    /// The lock object as listed.
    pub listed: ObjectMeta,
}

/// One page of a queue's listing, and the walk through its candidates.
#[derive(Debug, Clone)]
pub struct PageView {
    /// The key this page was listed after (`None` for the first page): listing again from
    /// here refreshes the same stretch of keys.
    pub start_after: Option<String>,
    /// Local time of the listing.
    pub listed_at: Instant,
    /// The store's clock when it answered.
    pub server_time: SystemTime,
    /// Last key of the page, where the next page starts; `None` if the page was empty.
    pub last_key: Option<String>,
    /// True when more keys follow this page.
    pub more: bool,
    /// Pending tasks without a lock beside them, in key order.
    candidates: Vec<Candidate>,
    /// Locks on this page.
    pub locks: Vec<ListedLock>,
    /// Index of the next candidate to try.
    cursor: usize,
    /// Candidates not yet handed out.
    left: usize,
}

impl PageView {
    /// Read a page: classify its keys and start the walk at a random candidate.
    pub fn new(
        layout: &Layout,
        page: ListPage,
        start_after: Option<String>,
        listed_at: Instant,
        rng: &mut impl Rng,
    ) -> PageView {
        let last_key = page.objects.last().map(|o| o.key.clone());
        let mut pending = Vec::new();
        let mut locks = Vec::new();
        for object in page.objects {
            match layout.classify(&object.key) {
                KeyKind::Pending(id) => pending.push(Candidate { id, listed: object }),
                KeyKind::Lock(id) => locks.push(ListedLock { id, listed: object }),
                KeyKind::Other => {}
            }
        }
        // A pending key with its lock beside it is being claimed (or its claim crashed); it is
        // not a candidate, and the reaper looks after it through the lock.
        let locked: BTreeSet<&str> = locks.iter().map(|l| l.id.as_str()).collect();
        let candidates: Vec<Candidate> = pending
            .into_iter()
            .filter(|c| !locked.contains(c.id.as_str()))
            .collect();
        let left = candidates.len();
        let cursor = if left == 0 { 0 } else { rng.gen_range(0..left) };
        PageView {
            start_after,
            listed_at,
            server_time: page.server_time,
            last_key,
            more: page.next.is_some(),
            candidates,
            locks,
            cursor,
            left,
        }
    }

    /// The next candidate of the walk, if any are left.
    pub fn next_candidate(&mut self) -> Option<Candidate> {
        if self.left == 0 {
            return None;
        }
        let c = self.candidates[self.cursor].clone();
        self.cursor = (self.cursor + 1) % self.candidates.len();
        self.left -= 1;
        Some(c)
    }

    /// Candidates not yet handed out.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// Claimable tasks on the page (handed out or not).
    pub fn pending_count(&self) -> usize {
        self.candidates.len()
    }

    /// LastModified of the oldest claimable task on the page.
    pub fn oldest_pending(&self) -> Option<SystemTime> {
        self.candidates.iter().map(|c| c.listed.last_modified).min()
    }

    /// Locks whose LastModified is more than `lease` before the page's server time.
    pub fn stale_locks(&self, lease: Duration) -> impl Iterator<Item = &ListedLock> {
        let now = self.server_time;
        self.locks.iter().filter(move |l| {
            now.duration_since(l.listed.last_modified)
                .is_ok_and(|age| age > lease)
        })
    }

    /// How long ago (local time) the page was listed.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.listed_at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn layout() -> Layout {
        Layout {
            prefix: "q/".into(),
            suffix: ".task".into(),
            failed_prefix: "failed/".into(),
            done_prefix: "done/".into(),
        }
    }

    fn obj(key: &str, secs: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            etag: "e".into(),
            last_modified: UNIX_EPOCH + Duration::from_secs(secs),
            size: 1,
        }
    }

    fn page(keys: &[(&str, u64)], now: u64, more: bool) -> ListPage {
        ListPage {
            objects: keys.iter().map(|(k, s)| obj(k, *s)).collect(),
            next: more.then(|| "token".to_owned()),
            server_time: UNIX_EPOCH + Duration::from_secs(now),
        }
    }

    #[test]
    fn candidates_exclude_locked_tasks_and_foreign_keys() {
        let p = page(
            &[
                ("q/1.lock", 10),
                ("q/1.task", 5),
                ("q/2.task", 6),
                ("q/3.json", 7),
                ("q/4.lock", 900),
                ("q/5.task", 8),
            ],
            1000,
            true,
        );
        let mut rng = StdRng::seed_from_u64(1);
        let mut view = PageView::new(&layout(), p, None, Instant::now(), &mut rng);
        assert_eq!(view.pending_count(), 2);
        assert_eq!(view.remaining(), 2);
        let mut ids = vec![];
        while let Some(c) = view.next_candidate() {
            ids.push(c.id);
        }
        ids.sort();
        assert_eq!(ids, vec!["2", "5"]);
        assert_eq!(
            view.oldest_pending(),
            Some(UNIX_EPOCH + Duration::from_secs(6))
        );
        assert_eq!(view.last_key.as_deref(), Some("q/5.task"));
        assert!(view.more);
        let stale: Vec<&str> = view
            .stale_locks(Duration::from_secs(300))
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(stale, vec!["1"], "only the lock older than the lease");
    }

    #[test]
    fn walks_start_at_different_offsets_and_visit_each_candidate_once() {
        let keys: Vec<String> = (0..50).map(|i| format!("q/{i:02}.task")).collect();
        let refs: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
        let mut firsts = BTreeSet::new();
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut view = PageView::new(
                &layout(),
                page(&refs, 2, false),
                None,
                Instant::now(),
                &mut rng,
            );
            let mut seen = BTreeSet::new();
            let first = view.next_candidate().expect("a candidate").id;
            seen.insert(first.clone());
            while let Some(c) = view.next_candidate() {
                assert!(seen.insert(c.id), "each candidate once");
            }
            assert_eq!(seen.len(), 50);
            firsts.insert(first);
        }
        assert!(firsts.len() > 10, "start points spread: {firsts:?}");
    }

    #[test]
    fn an_empty_page_has_nothing_to_hand_out() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut view = PageView::new(
            &layout(),
            page(&[], 5, false),
            None,
            Instant::now(),
            &mut rng,
        );
        assert!(view.next_candidate().is_none());
        assert_eq!(view.last_key, None);
        assert!(!view.more);
    }
}
