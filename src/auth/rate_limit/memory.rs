//! The per-process store, like Better Auth's default memory storage: sharded, bounded, and
//! pruned of expired entries as it goes.

use super::{Decision, Hit, PRUNE_EVERY, RateLimitStore, Rule};
use std::collections::HashMap;
use std::future::ready;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

/// Shards of the memory store, so concurrent workers rarely wait on the same mutex.
const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    last_ms: i64,
    window_ms: i64,
}

impl Entry {
    fn expired(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_ms) >= self.window_ms
    }

    /// Better Auth's algorithm: a window past since the last allowed request starts afresh; a full
    /// window refuses without moving `last_ms`; otherwise count it and slide the window to now.
    fn apply(&mut self, rule: Rule, now_ms: i64) -> Decision {
        self.window_ms = rule.window_ms;
        if self.expired(now_ms) {
            self.count = 1;
            self.last_ms = now_ms;
            Decision::Allowed
        } else if self.count >= rule.max {
            let left_ms = self
                .last_ms
                .saturating_add(rule.window_ms)
                .saturating_sub(now_ms);
            Decision::Limited {
                retry_after_secs: left_ms.saturating_add(999) / 1000,
            }
        } else {
            self.count += 1;
            self.last_ms = now_ms;
            Decision::Allowed
        }
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<str>, Entry>,
    hits: u32,
}

impl Shard {
    fn prune(&mut self, now_ms: i64) {
        self.map.retain(|_, e| !e.expired(now_ms));
    }

    /// Called when the shard is full: drop expired entries, and if it is still full (a flood of
    /// distinct addresses) drop the least recently used eighth, so each insert stays O(1) amortised.
    fn make_room(&mut self, now_ms: i64, cap: usize) {
        self.prune(now_ms);
        if self.map.len() < cap {
            return;
        }
        let mut lasts: Vec<i64> = self.map.values().map(|e| e.last_ms).collect();
        let nth = lasts.len() / 8;
        let (_, cutoff, _) = lasts.select_nth_unstable(nth);
        let cutoff = *cutoff;
        self.map.retain(|_, e| e.last_ms > cutoff);
    }
}

/// Better Auth's memory storage, sharded by key hash and bounded to about `max_entries`.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
    hasher: RandomState,
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_cap: max_entries.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The whole decision in one short critical section.
    pub fn check(&self, key: &str, rule: Rule, now_ms: i64) -> Decision {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.hits = shard.hits.wrapping_add(1);
        if shard.hits.is_multiple_of(PRUNE_EVERY) {
            shard.prune(now_ms);
        }
        if let Some(entry) = shard.map.get_mut(key) {
            return entry.apply(rule, now_ms);
        }
        if shard.map.len() >= self.shard_cap {
            shard.make_room(now_ms, self.shard_cap);
        }
        let first = Entry {
            count: 1,
            last_ms: now_ms,
            window_ms: rule.window_ms,
        };
        shard.map.insert(key.into(), first);
        Decision::Allowed
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }
}

impl RateLimitStore for MemoryStore {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule, now_ms: i64) -> Hit<'a> {
        Box::pin(ready(self.check(key, rule, now_ms)))
    }
}
