//! The bounded key cache: decoded keys by id, evicting the least recently used (CLOCK).
//!
//! A hit takes the read lock and sets the entry's reference bit (a store only when the bit is
//! clear, so a hot key costs no shared write). Inserting past the capacity evicts with the
//! CLOCK algorithm: keys wait in a ring in insertion order; the hand skips (and clears) keys
//! used since it last passed and evicts the first that was not, amortized O(1) per insert.
//! An evicted key's material is zeroized when the last reference to it drops.
//!
//! Every write after a commit (and every removal) bumps an epoch; a loader that read a record
//! from storage inserts it only if the epoch did not move meanwhile, so an entry written by a
//! concurrent commit (and then evicted) is never replaced by the older record the loader read.
//! Loads do not bump it, so concurrent loads of other keys never keep a key from being cached.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::CachedKey;

/// Default bound on cached keys.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 100_000;

struct Slot {
    key: Arc<CachedKey>,
    referenced: AtomicBool,
}

/// The cache's state, behind the engine's `RwLock`.
pub(crate) struct KeyCache {
    /// Hashed with foldhash (seeded per map): a lookup is on every call, and SipHash costs
    /// several times as much for a 36-byte id. The ids are the engine's own UUIDs, so a
    /// client cannot choose colliding keys to insert.
    map: HashMap<String, Slot, foldhash::fast::RandomState>,
    /// Key ids in CLOCK order; may hold ids already removed (skipped when reached).
    ring: VecDeque<String>,
    capacity: usize,
    epoch: u64,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        KeyCache {
            map: HashMap::default(),
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            epoch: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A hit (read lock suffices).
    pub(crate) fn get(&self, key_id: &str) -> Option<Arc<CachedKey>> {
        let slot = self.map.get(key_id)?;
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.key.clone())
    }

    /// The cached entry without counting a use.
    pub(crate) fn peek(&self, key_id: &str) -> Option<&Arc<CachedKey>> {
        self.map.get(key_id).map(|s| &s.key)
    }

    /// Inserts or replaces a key, evicting others past the capacity. `committed` for the
    /// record of a commit (bumps the epoch); not for one a loader read.
    pub(crate) fn insert(&mut self, key: Arc<CachedKey>, committed: bool) {
        if committed {
            self.epoch = self.epoch.wrapping_add(1);
        }
        let id = key.record.key_id.clone();
        match self.map.get_mut(&id) {
            Some(slot) => {
                slot.key = key;
                slot.referenced.store(true, Ordering::Relaxed);
            }
            None => {
                self.map.insert(
                    id.clone(),
                    Slot {
                        key,
                        referenced: AtomicBool::new(false),
                    },
                );
                self.ring.push_back(id);
                self.evict();
            }
        }
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.map.clear();
        self.ring.clear();
    }

    pub(crate) fn remove(&mut self, key_id: &str) {
        self.epoch = self.epoch.wrapping_add(1);
        self.map.remove(key_id);
        // The ring keeps the id until the hand reaches it; bound its stale entries.
        if self.ring.len() > 2 * self.capacity.max(self.map.len()) {
            let map = &self.map;
            self.ring.retain(|id| map.contains_key(id));
        }
    }

    fn evict(&mut self) {
        // Each pass of the hand clears a bit or evicts, so this ends within two turns.
        let mut steps = 2 * self.ring.len() + 1;
        while self.map.len() > self.capacity && steps > 0 {
            steps -= 1;
            let Some(id) = self.ring.pop_front() else {
                return;
            };
            let Some(slot) = self.map.get(&id) else {
                continue; // removed earlier
            };
            if slot.referenced.swap(false, Ordering::Relaxed) {
                self.ring.push_back(id);
            } else {
                self.map.remove(&id);
            }
        }
    }
}
