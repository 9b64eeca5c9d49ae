//! Replay refusal: the signature nonces seen within the timestamp window, per access key, and
//! what carries them across a restart.
//!
//! **In memory.** Each configured access key has its own cache (its own lock), so one key's
//! traffic never touches another's. A nonce is remembered until the request that carried it
//! could no longer pass the timestamp check (its signed time plus the window), and then
//! forgotten: entries sit in one-second buckets of a ring that covers every possible expiry
//! (at most two windows ahead), and each insert first empties the buckets whose second has
//! passed, so forgetting costs amortized O(1) per request and there is never a sweep. Each key
//! holds at most `capacity` nonces; past that its requests are refused with
//! `Throttling.User` (HTTP 429) until its older nonces expire, and no other key is affected.
//! Memory is bounded by (configured keys × capacity) whatever the request rate: about 50 bytes
//! a nonce.
//!
//! **Across a restart.** A clean stop writes the live nonces to `replay.nonces` and marks
//! `replay.state` stopped; the next start loads them, so a request accepted before the stop is
//! still refused after it. While serving, `replay.state` records for each access key a
//! *reservation*: a signed time that none of its accepted requests exceeds, moved a few seconds
//! ahead (written and synced) before a request signed later than it is accepted. After an
//! unclean stop (kill -9, power loss) the nonces are gone, so the next start refuses each key's
//! requests signed at or before its reservation: whatever the crashed process accepted from it.
//! Reservations are per key so that a key signing far ahead of time (a skewed clock, or an
//! attacker holding any valid key) only delays itself after a crash. One write moves every
//! key's reservation to at least `now +` [`RESERVATION_STEP_SECS`], so under steady traffic the
//! state is written about once per step whatever the number of keys. Clients whose clocks are
//! right see at most [`RESERVATION_STEP_SECS`] seconds of `InvalidTimeStamp.Expired` after a
//! crash, and nothing at all after a clean restart.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use ring::digest;

use crate::response::ApiError;

/// How far a request's time may be from the server's: 15 minutes either way.
pub const TIMESTAMP_WINDOW_SECS: i64 = 15 * 60;

/// Default bound on the nonces remembered for one access key within the window.
pub const DEFAULT_NONCE_CAPACITY: usize = 1_000_000;

/// How far ahead of the latest accepted signed time the persisted reservation is moved.
pub const RESERVATION_STEP_SECS: i64 = 2;

/// The file that records whether the server is serving (and its reservation) or stopped.
pub const STATE_FILE: &str = "replay.state";
/// The nonces written at a clean stop.
pub const NONCES_FILE: &str = "replay.nonces";

/// Ring length in seconds: every expiry of an accepted request lies within
/// `[now, now + 2 × window]`.
const RING_SECS: usize = (2 * TIMESTAMP_WINDOW_SECS as usize) + 2;

const SNAPSHOT_MAGIC: &[u8; 8] = b"KMSRPL01";

type NonceId = [u8; 16];

/// One access key's nonces.
#[derive(Debug)]
struct KeyNonces {
    /// nonce id → the second it expires.
    seen: HashMap<NonceId, i64>,
    /// `ring[s % RING_SECS]` holds the ids that expire in second `s` (tagged with `s`).
    ring: Vec<(i64, Vec<NonceId>)>,
    /// Every bucket of a second up to and including this one has been emptied.
    expired_through: i64,
}

impl KeyNonces {
    fn new() -> Self {
        KeyNonces {
            seen: HashMap::new(),
            ring: (0..RING_SECS).map(|_| (i64::MIN, Vec::new())).collect(),
            expired_through: i64::MIN,
        }
    }

    fn slot(second: i64) -> usize {
        usize::try_from(second.rem_euclid(RING_SECS as i64)).unwrap_or(0)
    }

    /// Forgets every nonce that expired before `now`. Each entry is removed once, so the
    /// cost is amortized over the inserts.
    fn expire(&mut self, now: i64) {
        let through = now - 1;
        if through <= self.expired_through {
            return;
        }
        let from = if self.expired_through == i64::MIN
            || through - self.expired_through >= RING_SECS as i64
        {
            // Long idle (or first use): every bucket may be stale; look at each once.
            through - RING_SECS as i64 + 1
        } else {
            self.expired_through + 1
        };
        for second in from..=through {
            let Some((tag, ids)) = self.ring.get_mut(Self::slot(second)) else {
                continue;
            };
            if *tag <= through {
                for id in ids.drain(..) {
                    if self.seen.get(&id).is_some_and(|exp| *exp <= through) {
                        self.seen.remove(&id);
                    }
                }
                *tag = i64::MIN;
            }
        }
        self.expired_through = through;
    }

    fn insert(
        &mut self,
        id: NonceId,
        expires: i64,
        now: i64,
        capacity: usize,
    ) -> Result<(), Refusal> {
        self.expire(now);
        if self.seen.get(&id).is_some_and(|exp| *exp >= now) {
            return Err(Refusal::Used);
        }
        if expires < now {
            // Outside the window already; the timestamp check refuses such requests.
            return Ok(());
        }
        if self.seen.len() >= capacity {
            return Err(Refusal::Full);
        }
        let slot = Self::slot(expires);
        if let Some((tag, ids)) = self.ring.get_mut(slot) {
            if *tag != expires {
                // The slot held a second that has passed (emptied above) or nothing; forget
                // whatever it still names, so nothing stays in `seen` without a bucket.
                for old in ids.drain(..) {
                    if self.seen.get(&old) == Some(tag) {
                        self.seen.remove(&old);
                    }
                }
                *tag = expires;
            }
            ids.push(id);
        }
        self.seen.insert(id, expires);
        Ok(())
    }
}

enum Refusal {
    Used,
    Full,
}

/// One access key's replay state.
#[derive(Debug)]
struct KeySlot {
    nonces: Mutex<KeyNonces>,
    /// Requests signed at or before this second are refused (after an unclean stop).
    floor: i64,
    /// The reservation last written for this key; read without a lock on the hot path.
    reserved: AtomicI64,
}

impl KeySlot {
    fn new() -> Self {
        KeySlot {
            nonces: Mutex::new(KeyNonces::new()),
            floor: i64::MIN,
            reserved: AtomicI64::new(i64::MIN),
        }
    }
}

/// The persisted side: where the state file is.
#[derive(Debug)]
struct Persisted {
    dir: PathBuf,
    /// Held while the state file is rewritten.
    write: Mutex<()>,
}

/// How the previous process stopped, as found at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviousStop {
    /// No previous process used this data directory.
    None,
    /// It stopped cleanly and its nonces were loaded.
    Clean {
        /// How many unexpired nonces were loaded.
        loaded: usize,
    },
    /// It did not stop cleanly: each key's requests signed at or before its floor are refused.
    Unclean {
        /// The latest floor of any key: the latest signed time the previous process could
        /// have accepted.
        floor: i64,
    },
}

/// Why the replay state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{context} {}: {source}", path.display())]
pub struct ReplayError {
    context: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// The nonce caches of every configured access key, and the restart protection.
#[derive(Debug)]
pub struct ReplayGuard {
    keys: HashMap<String, KeySlot>,
    capacity: usize,
    persisted: Option<Persisted>,
    /// The latest server time seen: time never runs backwards for the window or the cache,
    /// so a clock stepped back cannot revive a request already forgotten.
    latest_now: AtomicI64,
    /// Set by [`ReplayGuard::save`]: no request is accepted after its nonces were saved.
    closed: std::sync::atomic::AtomicBool,
}

impl ReplayGuard {
    /// In-memory replay refusal for `access_key_ids`, at most `capacity` nonces each, with no
    /// protection across restarts.
    pub fn in_memory<'a>(
        access_key_ids: impl IntoIterator<Item = &'a str>,
        capacity: usize,
    ) -> Self {
        ReplayGuard {
            keys: access_key_ids
                .into_iter()
                .map(|id| (id.to_owned(), KeySlot::new()))
                .collect(),
            capacity: capacity.max(1),
            persisted: None,
            latest_now: AtomicI64::new(i64::MIN),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The server time to judge a request by: `wall`, or the latest time seen if the clock
    /// stepped back.
    pub fn now(&self, wall: i64) -> i64 {
        let seen = self.latest_now.load(Ordering::Acquire);
        if wall <= seen {
            return seen;
        }
        // Written once a second at most: the common case above only reads.
        self.latest_now.fetch_max(wall, Ordering::AcqRel).max(wall)
    }

    /// Replay refusal persisted in `dir` (the data directory): reads how the previous process
    /// stopped, loads its nonces after a clean stop or sets each key's floor after an unclean
    /// one, and marks the directory serving with reservations ahead of `now`.
    ///
    /// `store_existed` tells a directory whose store predates this start (a missing state
    /// file then means an older server that kept no state: the floor is `now`) from a new one.
    ///
    /// Errors: the state cannot be written (the message names the file).
    pub fn open<'a>(
        dir: &Path,
        access_key_ids: impl IntoIterator<Item = &'a str>,
        capacity: usize,
        now: i64,
        store_existed: bool,
    ) -> Result<(Self, PreviousStop), ReplayError> {
        let mut guard = Self::in_memory(access_key_ids, capacity);
        let state_path = dir.join(STATE_FILE);
        let nonces_path = dir.join(NONCES_FILE);
        let state = std::fs::read_to_string(&state_path).ok();
        let none = HashMap::new();
        let previous = match state.as_deref().map(parse_state) {
            None if !store_existed => PreviousStop::None,
            None => guard.set_floors(&none, now),
            Some(Some((Run::Stopped, reserved))) => {
                match guard.load_snapshot(&nonces_path, now) {
                    Some(loaded) => {
                        // The loaded nonces live only in memory until the next clean stop:
                        // carry the reservations on, so a crash in this run still refuses what
                        // the previous run accepted.
                        for (id, slot) in &guard.keys {
                            if let Some(r) = reserved.get(id) {
                                slot.reserved.store(*r, Ordering::Release);
                            }
                        }
                        PreviousStop::Clean { loaded }
                    }
                    // Stopped, but the nonces are lost: as after a crash.
                    None => guard.set_floors(&reserved, now),
                }
            }
            Some(Some((Run::Serving, reserved))) => guard.set_floors(&reserved, now),
            // Unreadable: assume the worst the previous process could have accepted.
            Some(None) => {
                guard.set_floors(&none, now + TIMESTAMP_WINDOW_SECS + RESERVATION_STEP_SECS)
            }
        };
        guard.persisted = Some(Persisted {
            dir: dir.to_owned(),
            write: Mutex::new(()),
        });
        // Serving (with the reservations) is on disk before the loaded nonces' file goes.
        guard
            .write_reservations(None, now)
            .map_err(|source| ReplayError {
                context: "cannot write",
                path: state_path.clone(),
                source,
            })?;
        let _ = std::fs::remove_file(&nonces_path);
        Ok((guard, previous))
    }

    /// After an unclean stop: each key's floor is its recorded reservation (`fallback` for a
    /// key without one), and never before `fallback`.
    fn set_floors(&mut self, reserved: &HashMap<String, i64>, fallback: i64) -> PreviousStop {
        let mut latest = fallback;
        for (id, slot) in self.keys.iter_mut() {
            let floor = reserved.get(id).copied().unwrap_or(fallback).max(fallback);
            slot.floor = floor;
            slot.reserved.store(floor, Ordering::Release);
            latest = latest.max(floor);
        }
        PreviousStop::Unclean { floor: latest }
    }

    /// Rewrites the state file: every key's reservation becomes at least `now + STEP`, and
    /// `bump`'s (key, signed time) at least `signed + STEP`. Called with the write lock held,
    /// or before the guard is shared.
    fn write_reservations(&self, bump: Option<(&str, i64)>, now: i64) -> std::io::Result<()> {
        self.write_state(Run::Serving, bump, now)
    }

    /// Writes the state file: `serving` or `stopped`, then each key's reservation.
    fn write_state(&self, run: Run, bump: Option<(&str, i64)>, now: i64) -> std::io::Result<()> {
        let Some(persisted) = &self.persisted else {
            return Ok(());
        };
        let base = now.saturating_add(RESERVATION_STEP_SECS);
        let mut next: Vec<(&KeySlot, i64)> = Vec::with_capacity(self.keys.len());
        let mut text = String::from(match run {
            Run::Serving => "serving\n",
            Run::Stopped => "stopped\n",
        });
        for (id, slot) in &self.keys {
            let mut r = slot.reserved.load(Ordering::Acquire).max(base);
            if let Some((bumped, signed)) = bump {
                if bumped == id {
                    r = r.max(signed.saturating_add(RESERVATION_STEP_SECS));
                }
            }
            text.push_str(&format!("{r} {}\n", crate::signature::hex(id.as_bytes())));
            next.push((slot, r));
        }
        write_atomically(&persisted.dir.join(STATE_FILE), text.as_bytes())?;
        for (slot, r) in next {
            slot.reserved.store(r, Ordering::Release);
        }
        Ok(())
    }

    /// Records a nonce of `access_key_id` signed at `signed` (seconds), at server time `now`.
    ///
    /// Errors: `InvalidTimeStamp.Expired` for a request signed before an unclean restart,
    /// `SignatureNonceUsed` for a nonce already seen within the window, `Throttling.User`
    /// (429) when this key's cache is full, `ServiceUnavailable` when the reservation cannot
    /// be persisted.
    pub fn check(
        &self,
        access_key_id: &str,
        nonce: &str,
        signed: i64,
        now: i64,
    ) -> Result<(), ApiError> {
        let slot = self
            .keys
            .get(access_key_id)
            .ok_or_else(|| ApiError::access_key_not_found(access_key_id))?;
        if signed <= slot.floor {
            return Err(ApiError::new(
                400,
                "InvalidTimeStamp.Expired",
                "the request was signed before the server restarted after an unclean stop, \
                 and may have been accepted already; sign it again",
            ));
        }
        let now = self.now(now);
        let mut cache = slot
            .nonces
            .lock()
            .map_err(|_| ApiError::new(500, "InternalFailure", "the nonce cache lock failed"))?;
        // Checked under the key's lock, which `save` takes after setting the flag: a nonce is
        // either in the saved snapshot or refused here.
        if self.closed.load(Ordering::Acquire) {
            return Err(ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is shutting down; try again",
            ));
        }
        let expires = signed.saturating_add(TIMESTAMP_WINDOW_SECS);
        match cache.insert(nonce_id(access_key_id, nonce), expires, now, self.capacity) {
            Ok(()) => {}
            Err(Refusal::Used) => return Err(ApiError::nonce_used()),
            Err(Refusal::Full) => {
                return Err(ApiError::new(
                    429,
                    "Throttling.User",
                    format!(
                        "the access key {access_key_id} sent more than {} signed requests \
                         within the {}-minute timestamp window; slow down",
                        self.capacity,
                        TIMESTAMP_WINDOW_SECS / 60
                    ),
                ))
            }
        }
        drop(cache);
        self.reserve(access_key_id, slot, signed, now)
    }

    /// Moves the key's persisted reservation past `signed` before the request is accepted.
    fn reserve(
        &self,
        access_key_id: &str,
        slot: &KeySlot,
        signed: i64,
        now: i64,
    ) -> Result<(), ApiError> {
        let Some(persisted) = &self.persisted else {
            return Ok(());
        };
        if signed <= slot.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let _writing = persisted
            .write
            .lock()
            .map_err(|_| ApiError::new(500, "InternalFailure", "the replay state lock failed"))?;
        if signed <= slot.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        self.write_reservations(Some((access_key_id, signed)), now)
            .map_err(|e| {
                let path = persisted.dir.join(STATE_FILE);
                tracing::error!(
                    file = %path.display(),
                    error = %e,
                    "cannot persist the replay reservation"
                );
                ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "the server cannot record replay protection state; try again later",
                )
            })
    }

    /// At a clean stop: writes the live nonces and marks the directory stopped, so the next
    /// start refuses their replays without refusing anything else.
    ///
    /// Errors: a file cannot be written (the next start then behaves as after a crash).
    pub fn save(&self, now: i64) -> Result<usize, ReplayError> {
        let Some(persisted) = &self.persisted else {
            return Ok(0);
        };
        self.closed.store(true, Ordering::Release);
        let _writing = persisted
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.now(now);
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        let mut count = 0usize;
        for (key, slot) in &self.keys {
            let Ok(cache) = slot.nonces.lock() else {
                continue;
            };
            let live: Vec<_> = cache.seen.iter().filter(|(_, exp)| **exp >= now).collect();
            if live.is_empty() {
                continue;
            }
            out.extend_from_slice(&(key.len() as u32).to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&(live.len() as u64).to_be_bytes());
            for (id, exp) in &live {
                out.extend_from_slice(&id[..]);
                out.extend_from_slice(&exp.to_be_bytes());
            }
            count += live.len();
        }
        let digest = digest::digest(&digest::SHA256, &out);
        out.extend_from_slice(digest.as_ref());
        let nonces = persisted.dir.join(NONCES_FILE);
        write_atomically(&nonces, &out).map_err(|source| ReplayError {
            context: "cannot write",
            path: nonces.clone(),
            source,
        })?;
        let state = persisted.dir.join(STATE_FILE);
        self.write_state(Run::Stopped, None, now)
            .map_err(|source| ReplayError {
                context: "cannot write",
                path: state.clone(),
                source,
            })?;
        Ok(count)
    }

    /// Loads a snapshot; `None` when it is missing or damaged.
    fn load_snapshot(&mut self, path: &Path, now: i64) -> Option<usize> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .read_to_end(&mut bytes)
            .ok()?;
        let body_len = bytes.len().checked_sub(32)?;
        let (body, sum) = bytes.split_at(body_len);
        if digest::digest(&digest::SHA256, body).as_ref() != sum {
            return None;
        }
        let mut rest = body.strip_prefix(SNAPSHOT_MAGIC.as_slice())?;
        let mut loaded = 0;
        while !rest.is_empty() {
            let key_len = u32::from_be_bytes(take::<4>(&mut rest)?) as usize;
            let key = std::str::from_utf8(rest.get(..key_len)?).ok()?.to_owned();
            rest = rest.get(key_len..)?;
            let count = u64::from_be_bytes(take::<8>(&mut rest)?);
            let slot = self.keys.get(&key);
            for _ in 0..count {
                let id = take::<16>(&mut rest)?;
                let exp = i64::from_be_bytes(take::<8>(&mut rest)?);
                if let Some(Ok(mut c)) = slot.map(|s| s.nonces.lock()) {
                    if exp >= now && c.insert(id, exp, now, usize::MAX).is_ok() {
                        loaded += 1;
                    }
                }
            }
        }
        Some(loaded)
    }

    /// A key's floor: its requests signed at or before it are refused (`i64::MIN` for none).
    pub fn floor(&self, access_key_id: &str) -> i64 {
        self.keys.get(access_key_id).map_or(i64::MIN, |s| s.floor)
    }

    /// Nonces held for one access key.
    pub fn held(&self, access_key_id: &str) -> usize {
        self.keys
            .get(access_key_id)
            .and_then(|s| s.nonces.lock().ok().map(|c| c.seen.len()))
            .unwrap_or(0)
    }
}

/// Which state a run left the directory in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Serving,
    Stopped,
}

/// Reads a state file: `serving` or `stopped`, and each access key's reservation.
fn parse_state(text: &str) -> Option<(Run, HashMap<String, i64>)> {
    let mut lines = text.lines();
    let run = match lines.next()? {
        "serving" => Run::Serving,
        "stopped" => Run::Stopped,
        _ => return None,
    };
    let mut out = HashMap::new();
    for line in lines {
        let (r, id) = line.split_once(' ')?;
        let id = String::from_utf8(crate::signature::from_hex(id)?).ok()?;
        out.insert(id, r.parse().ok()?);
    }
    Some((run, out))
}

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let head: [u8; N] = rest.get(..N)?.try_into().ok()?;
    *rest = rest.get(N..)?;
    Some(head)
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600), syncs it, renames it over
/// `path` and syncs the directory, so `path` is either the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn nonce_id(access_key_id: &str, nonce: &str) -> NonceId {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(access_key_id.len() as u64).to_be_bytes());
    ctx.update(access_key_id.as_bytes());
    ctx.update(nonce.as_bytes());
    let full = ctx.finish();
    let mut id = [0u8; 16];
    for (dst, src) in id.iter_mut().zip(full.as_ref()) {
        *dst = *src;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = TIMESTAMP_WINDOW_SECS;

    #[test]
    fn a_nonce_is_refused_until_its_request_leaves_the_window() {
        let g = ReplayGuard::in_memory(["ak", "ak2"], 10);
        g.check("ak", "n1", 1_000, 1_000).unwrap();
        assert_eq!(
            g.check("ak", "n1", 1_000, 1_000).unwrap_err().code,
            "SignatureNonceUsed"
        );
        assert_eq!(
            g.check("ak", "n1", 1_000, 1_000 + W).unwrap_err().code,
            "SignatureNonceUsed"
        );
        // Another key's nonce of the same text is distinct.
        g.check("ak2", "n1", 1_000, 1_000).unwrap();
        // Once the request could no longer pass the timestamp check, it is forgotten.
        g.check("ak", "n1", 1_000 + W + 1, 1_000 + W + 1).unwrap();
    }

    #[test]
    fn expired_nonces_are_forgotten_so_a_sustained_rate_never_fills_the_cache() {
        // One request a second for three hours; each nonce lives W + 1 seconds, so a cache of
        // W + 2 is never full if expiry keeps up, and never holds more.
        let capacity = (W + 2) as usize;
        let g = ReplayGuard::in_memory(["ak"], capacity);
        for second in 0..(3 * 3_600i64) {
            g.check("ak", &second.to_string(), second, second).unwrap();
            assert!(g.held("ak") <= (W + 1) as usize);
        }
    }

    #[test]
    fn one_key_flooding_its_cache_is_throttled_and_others_are_not() {
        let g = ReplayGuard::in_memory(["flood", "calm"], 50);
        for i in 0..50 {
            g.check("flood", &format!("n{i}"), 10, 10).unwrap();
        }
        let e = g.check("flood", "one-more", 10, 10).unwrap_err();
        assert_eq!((e.status, &*e.code), (429, "Throttling.User"));
        for i in 0..50 {
            g.check("calm", &format!("n{i}"), 10, 10).unwrap();
        }
        // After the window the flooding key is served again.
        g.check("flood", "later", 10 + W + 1, 10 + W + 1).unwrap();
    }

    #[test]
    fn future_dated_requests_are_remembered_for_their_whole_window() {
        let g = ReplayGuard::in_memory(["ak"], 10);
        // Signed 15 minutes ahead: valid until 30 minutes from now.
        g.check("ak", "f", 1_000 + W, 1_000).unwrap();
        assert!(g.check("ak", "f", 1_000 + W, 1_000 + 2 * W).is_err());
        g.check("ak", "f", 1_000 + 2 * W + 1, 1_000 + 2 * W + 1)
            .unwrap();
    }

    #[test]
    fn a_long_idle_key_forgets_everything_at_once() {
        let g = ReplayGuard::in_memory(["ak"], 10);
        for i in 0..10 {
            g.check("ak", &format!("n{i}"), 0, 0).unwrap();
        }
        g.check("ak", "x", 1_000_000, 1_000_000).unwrap();
        assert_eq!(g.held("ak"), 1);
    }

    #[test]
    fn a_clean_restart_keeps_the_nonces_and_refuses_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (g, prev) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_000, false).unwrap();
        assert_eq!(prev, PreviousStop::None);
        g.check("ak", "n1", 1_000, 1_000).unwrap();
        assert_eq!(g.save(1_001).unwrap(), 1);
        let (g, prev) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_002, true).unwrap();
        assert_eq!(prev, PreviousStop::Clean { loaded: 1 });
        assert_eq!(
            g.check("ak", "n1", 1_000, 1_002).unwrap_err().code,
            "SignatureNonceUsed"
        );
        // Requests signed before the restart but not seen are fine.
        g.check("ak", "n2", 1_000, 1_002).unwrap();
    }

    #[test]
    fn after_an_unclean_stop_requests_the_crashed_process_could_have_accepted_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_000, false).unwrap();
        g.check("ak", "n1", 1_000, 1_000).unwrap();
        // Future-dated by ten minutes: the reservation moves past it before it is accepted.
        g.check("ak", "n2", 1_600, 1_000).unwrap();
        drop(g); // no save: a crash
        let (g, prev) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_010, true).unwrap();
        assert_eq!(
            prev,
            PreviousStop::Unclean {
                floor: 1_600 + RESERVATION_STEP_SECS
            }
        );
        for (nonce, signed) in [("n1", 1_000), ("n2", 1_600)] {
            let e = g.check("ak", nonce, signed, 1_010).unwrap_err();
            assert_eq!(e.code, "InvalidTimeStamp.Expired");
        }
        g.check("ak", "n3", 1_600 + RESERVATION_STEP_SECS + 1, 1_010)
            .unwrap();
    }

    #[test]
    fn a_damaged_snapshot_counts_as_an_unclean_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_000, false).unwrap();
        g.check("ak", "n1", 1_000, 1_000).unwrap();
        g.save(1_000).unwrap();
        let path = dir.path().join(NONCES_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let (g, prev) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_005, true).unwrap();
        // The stopped file still holds the reservation: n1 (signed at 1,000) stays refused.
        assert_eq!(prev, PreviousStop::Unclean { floor: 1_005 });
        assert!(g.check("ak", "n1", 1_000, 1_005).is_err());
    }

    #[test]
    fn a_crash_after_a_clean_restart_still_refuses_the_first_runs_requests() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_000, false).unwrap();
        // Signed fifteen minutes ahead, then a clean stop.
        g.check("ak", "f", 1_000 + W, 1_000).unwrap();
        g.save(1_001).unwrap();
        let (g, prev) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_005, true).unwrap();
        assert_eq!(prev, PreviousStop::Clean { loaded: 1 });
        drop(g); // a crash in the second run
        let (g, _) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_010, true).unwrap();
        let e = g.check("ak", "f", 1_000 + W, 1_010).unwrap_err();
        assert_eq!(e.code, "InvalidTimeStamp.Expired");
    }

    #[test]
    fn nothing_is_accepted_after_the_nonces_are_saved() {
        let dir = tempfile::tempdir().unwrap();
        let (g, _) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_000, false).unwrap();
        g.save(1_000).unwrap();
        let e = g.check("ak", "late", 1_000, 1_000).unwrap_err();
        assert_eq!(e.code, "ServiceUnavailable");
    }

    #[test]
    fn a_clock_stepped_back_does_not_revive_a_forgotten_nonce() {
        let g = ReplayGuard::in_memory(["ak"], 10);
        g.check("ak", "n", 1_000, 1_000).unwrap();
        // Much later the nonce is forgotten...
        g.check("ak", "other", 1_000 + W + 10, 1_000 + W + 10)
            .unwrap();
        // ...and a clock stepped back does not make the cache forget the time it has seen.
        assert_eq!(g.now(1_000), 1_000 + W + 10);
    }

    #[test]
    fn a_key_signing_far_ahead_delays_only_itself_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ["skewed", "honest"];
        let (g, _) = ReplayGuard::open(dir.path(), keys, 10, 1_000, false).unwrap();
        g.check("skewed", "far", 1_000 + W, 1_000).unwrap();
        g.check("honest", "now", 1_000, 1_000).unwrap();
        drop(g); // a crash
        let (g, _) = ReplayGuard::open(dir.path(), keys, 10, 1_005, true).unwrap();
        assert_eq!(g.floor("skewed"), 1_000 + W + RESERVATION_STEP_SECS);
        assert_eq!(g.floor("honest"), 1_005);
        g.check("honest", "later", 1_006, 1_006).unwrap();
        assert!(g.check("skewed", "later", 1_006, 1_006).is_err());
    }

    #[test]
    fn steady_traffic_writes_the_state_about_once_per_step_whatever_the_number_of_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
        let (g, _) = ReplayGuard::open(
            dir.path(),
            keys.iter().map(String::as_str),
            100,
            1_000,
            false,
        )
        .unwrap();
        let state = dir.path().join(STATE_FILE);
        let mut writes = 0;
        let mut last = std::fs::read_to_string(&state).unwrap();
        for second in 1_000..1_020i64 {
            for k in &keys {
                g.check(k, &format!("{second}"), second, second).unwrap();
            }
            let now = std::fs::read_to_string(&state).unwrap();
            if now != last {
                writes += 1;
                last = now;
            }
        }
        // 20 seconds of traffic from 50 keys: about one write per step, not one per key.
        let most = 20 / RESERVATION_STEP_SECS as usize + 1;
        assert!(writes <= most, "{writes} writes");
        assert!(writes >= 1);
    }

    #[test]
    fn an_unreadable_state_file_assumes_the_worst() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "serving\nnot a line\n").unwrap();
        let (g, prev) = ReplayGuard::open(dir.path(), ["ak"], 10, 1_000, true).unwrap();
        assert_eq!(
            prev,
            PreviousStop::Unclean {
                floor: 1_000 + W + RESERVATION_STEP_SECS
            }
        );
        assert!(g.check("ak", "n", 1_000 + W, 1_000).is_err());
    }
}
