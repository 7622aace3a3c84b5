//! A short per-process cache of what a tool call needs before it can send anything: the server
//! row, its checked URL and the unsealed credential. It spares the hot path the database round
//! trip (and the unsealing). Bounded in time (`connectors.mcp.reach_cache_ttl_ms`, and never past
//! the credential's refresh margin) and in size; dropped locally whenever this process changes
//! the server or its credential. Another process learns of a change only when the entry runs out.

use super::models::ServerRow;
use crate::connectors::vault::Plain;
use crate::db::ids::UserId;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use url::Url;

/// What a call needs to reach one server.
#[derive(Clone)]
pub struct Reached {
    pub row: ServerRow,
    pub url: Url,
    pub bearer: Option<Plain>,
}

struct Entry {
    reached: Reached,
    until: DateTime<Utc>,
}

pub struct ReachCache {
    max: usize,
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every invalidation: a lookup that started before one does not store its
    /// (possibly stale) result.
    generation: AtomicU64,
}

impl ReachCache {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The entry for `id` if it is still good at `now` and belongs to `owner` (another owner's
    /// id is a miss, so the database answers it: 404).
    pub fn get(&self, id: &str, owner: &UserId, now: DateTime<Utc>) -> Option<Reached> {
        let map = self.entries.lock().ok()?;
        let e = map.get(id)?;
        (e.until > now && e.reached.row.owner_id == *owner).then(|| e.reached.clone())
    }

    /// Taken before reading the database; [`Self::put`] stores only if nothing was invalidated
    /// meanwhile.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn put(&self, generation: u64, reached: Reached, until: DateTime<Utc>, now: DateTime<Utc>) {
        if until <= now {
            return;
        }
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        // Checked under the lock that `invalidate` also takes after bumping it.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.max && !map.contains_key(&reached.row.id) {
            map.retain(|_, e| e.until > now);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(reached.row.id.clone(), Entry { reached, until });
    }

    pub fn invalidate(&self, id: &str) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(id);
    }
}
