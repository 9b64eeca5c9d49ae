//! Indexes kept beside the records and committed in the same atomic batch: dense sequences
//! that page the lists in O(page) with their TotalCount, and a due-date index that lets
//! maintenance find due work in O(due).
//!
//! | record key | value |
//! | --- | --- |
//! | `i/c/<sequence>` | the number of members of the sequence |
//! | `i/e/<sequence>/<position>` | the member at a position (16 hex digits, from 0): [`IndexEntry`] |
//! | `i/b/<record key>` | where a record is indexed: [`IndexBack`] |
//! | `i/d/<when>/<record key>` | the record has time-driven work at `when` (16 hex digits): [`DueKind`] |
//! | `m/index` | the index format, written once the indexes are complete |
//!
//! Sequences: `K,<KeyState>,<KeySpec>,<KeyUsage>,<ProtectionLevel>,<CreatorType>` holds the
//! keys of one combination of the values ListKeys filters on (so a filter picks whole
//! sequences and TotalCount is a sum of counts), `A` the aliases, `S` the secrets and
//! `V,<key id>` a key's versions. A member joins at the end; when one leaves, the last member
//! moves into its place. So positions stay dense and a page at any depth is one short scan,
//! and lists come in creation order except where a removal moved the newest member forward
//! (after a rebuild: keys, aliases and secrets by id or name, versions oldest first).
//!
//! The indexes are derived from the records by [`Kms::commit`] itself: whatever writes a
//! record, its index entries change with it, in the same batch, under revision
//! preconditions. An index can always be rebuilt from the records ([`Kms::rebuild_indexes`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::Kms;
use crate::error::KmsError;
use crate::keys::byok::ImportToken;
use crate::keys::model::{
    AliasRecord, AutomaticRotation, CreatorType, KeyRecord, KeySpec, KeyState, KeyUsage,
    ProtectionLevel, VersionRecord,
};
use crate::keys::rules;
use crate::schema::INDEX_MARKER;
use crate::schema::{self, DUE, INDEX_BACK as BACK, INDEX_COUNT as COUNT, INDEX_ENTRY as ENTRY};
use crate::secrets::rules::SecretRecord;
use crate::storage::{Batch, Op, Precondition};
use crate::time::UnixTime;

/// The index format this engine writes; a store without it (or with another) is reindexed
/// when the engine opens.
const INDEX_FORMAT: u32 = 1;

/// The sequence of the aliases.
pub(crate) const ALIASES: &str = "A";
/// The sequence of the secrets.
pub(crate) const SECRETS: &str = "S";

/// One member of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    /// The member's id (key id, alias name, secret name, version id).
    pub(crate) id: String,
    /// What a list shows without reading the record (an alias's key id, a version's
    /// creation date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) extra: Option<String>,
}

/// Where one record is indexed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexBack {
    /// The sequence and the position in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<(String, u64)>,
    /// The entry's extra, to see when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra: Option<String>,
    /// The due-date entries of the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    due: Vec<(i64, DueKind)>,
}

/// What is due at a due-date entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum DueKind {
    /// A key or a secret is gone (DeleteDate, PlannedDeleteTime).
    Purge,
    /// A key or a secret rotates.
    Rotate,
    /// Imported material expires.
    Expire,
    /// An import token expires.
    TokenExpiry,
}

/// How a record is indexed, derived from its content.
struct Indexed {
    seq: Option<(String, IndexEntry)>,
    due: Vec<(i64, DueKind)>,
}

/// The sequence of the keys with this record's filterable values.
pub(crate) fn key_sequence(
    state: KeyState,
    spec: KeySpec,
    usage: KeyUsage,
    level: ProtectionLevel,
    creator: CreatorType,
) -> String {
    // Wire names hold no ',' or '+'; a '/' (in KeyUsage) would look like a path separator.
    format!(
        "K,{},{},{},{},{}",
        state.as_str(),
        spec.as_str(),
        usage.as_str().replace('/', "+"),
        level.as_str(),
        creator.as_str()
    )
}

/// The filterable values of a key sequence's name; `None` for a name that is not one.
pub(crate) fn parse_key_sequence(
    name: &str,
) -> Option<(KeyState, KeySpec, KeyUsage, ProtectionLevel, CreatorType)> {
    let mut parts = name.strip_prefix("K,")?.split(',');
    let state = KeyState::parse(parts.next()?).ok()?;
    let spec = KeySpec::parse(parts.next()?).ok()?;
    let usage = KeyUsage::parse(&parts.next()?.replace('+', "/")).ok()?;
    let level = ProtectionLevel::parse(parts.next()?).ok()?;
    let creator = CreatorType::parse(parts.next()?).ok()?;
    parts
        .next()
        .is_none()
        .then_some((state, spec, usage, level, creator))
}

/// The sequence of a key's versions.
pub(crate) fn version_sequence(key_id: &str) -> String {
    format!("V,{key_id}")
}

/// The record a member of `seq` is.
fn member_record_key(seq: &str, id: &str) -> Vec<u8> {
    if seq.starts_with("K,") {
        schema::key(id)
    } else if let Some(key_id) = seq.strip_prefix("V,") {
        schema::version(key_id, id)
    } else if seq == ALIASES {
        schema::alias(id)
    } else {
        schema::secret(id)
    }
}

fn parse_position(entry_key: &[u8]) -> Option<u64> {
    let hex = entry_key.get(entry_key.len().checked_sub(16)?..)?;
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// True for the records the indexes are derived from.
fn is_indexed(record_key: &[u8]) -> bool {
    matches!(
        schema::kind_of(record_key),
        Some(schema::KEY | schema::ALIAS | schema::SECRET | schema::VERSION | schema::IMPORT_TOKEN)
    )
}

fn sorted(mut due: Vec<(i64, DueKind)>) -> Vec<(i64, DueKind)> {
    due.sort();
    due.dedup();
    due
}

/// The time-driven work a key has: its purge, its rotation, its material's expiry.
fn key_due(r: &KeyRecord) -> Vec<(i64, DueKind)> {
    let mut due = Vec::new();
    if r.state == KeyState::PendingDeletion {
        if let Some(d) = r.delete_date {
            due.push((d.secs(), DueKind::Purge));
        }
    }
    if rules::automatic_rotation(r) == AutomaticRotation::Enabled {
        if let Some(d) = r.next_rotation_date {
            due.push((d.secs(), DueKind::Rotate));
        }
    }
    if r.has_material {
        if let Some(d) = r.material_expire_time {
            due.push((d.secs(), DueKind::Expire));
        }
    }
    sorted(due)
}

fn secret_due(r: &SecretRecord) -> Vec<(i64, DueKind)> {
    let mut due = Vec::new();
    match (r.planned_delete_time, r.next_rotation_date) {
        (Some(d), _) => due.push((d.secs(), DueKind::Purge)),
        (None, Some(d)) => due.push((d.secs(), DueKind::Rotate)),
        (None, None) => {}
    }
    due
}

/// One index record as a batch saw it: the revision and plaintext read (`None`: absent), and
/// the plaintext now (`None`: deleted).
type Touched = (Option<(u64, Vec<u8>)>, Option<Vec<u8>>);

/// Reads and writes of index records within one batch, seen in order, emitted at the end as
/// guarded writes (`Absent` for new records, the read revision for existing ones).
struct Overlay<'k> {
    kms: &'k Kms,
    touched: BTreeMap<Vec<u8>, Touched>,
}

impl<'k> Overlay<'k> {
    fn new(kms: &'k Kms) -> Self {
        Overlay {
            kms,
            touched: BTreeMap::new(),
        }
    }

    fn load(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KmsError> {
        if let Some((_, current)) = self.touched.get(key) {
            return Ok(current.clone());
        }
        let original = match self.kms.storage.get(key)? {
            None => None,
            Some(entry) => {
                let plain = self.kms.sealer.open(key, &entry.value).map_err(|e| {
                    KmsError::RecordCorrupt {
                        reason: format!(
                            "index record {} does not open ({e}); run `kms fsck --reindex`",
                            String::from_utf8_lossy(key)
                        ),
                    }
                })?;
                Some((entry.revision, plain.to_vec()))
            }
        };
        let current = original.as_ref().map(|(_, p)| p.clone());
        self.touched
            .insert(key.to_vec(), (original, current.clone()));
        Ok(current)
    }

    fn get<T: DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, KmsError> {
        match self.load(key)? {
            None => Ok(None),
            Some(plain) => plain
                .split_first()
                .filter(|(schema, _)| **schema == super::SCHEMA_V1)
                .ok_or_else(|| serde_json::Error::io(std::io::ErrorKind::InvalidData.into()))
                .and_then(|(_, json)| serde_json::from_slice(json))
                .map(Some)
                .map_err(|e| KmsError::RecordCorrupt {
                    reason: format!(
                        "index record {} is malformed: {e}; run `kms fsck --reindex`",
                        String::from_utf8_lossy(key)
                    ),
                }),
        }
    }

    fn set(&mut self, key: &[u8], plain: Option<Vec<u8>>) -> Result<(), KmsError> {
        self.load(key)?;
        if let Some((_, current)) = self.touched.get_mut(key) {
            *current = plain;
        }
        Ok(())
    }

    fn put<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), KmsError> {
        // The format of every record: a schema byte, then JSON.
        let mut plain = vec![super::SCHEMA_V1];
        serde_json::to_writer(&mut plain, value)
            .map_err(|e| KmsError::internal(format!("encoding an index record failed: {e}")))?;
        self.set(key, Some(plain))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), KmsError> {
        self.set(key, None)
    }

    /// Appends a member; returns its position.
    fn push(&mut self, seq: &str, entry: &IndexEntry) -> Result<u64, KmsError> {
        let ck = schema::index_count(seq);
        let count: u64 = self.get(&ck)?.unwrap_or(0);
        self.put(&schema::index_entry(seq, count), entry)?;
        self.put(&ck, &(count + 1))?;
        Ok(count)
    }

    /// Removes the member at `pos`, moving the last member into its place.
    fn remove(&mut self, seq: &str, pos: u64) -> Result<(), KmsError> {
        let ck = schema::index_count(seq);
        let count: u64 = self.get(&ck)?.unwrap_or(0);
        let inconsistent = || KmsError::RecordCorrupt {
            reason: format!("index sequence {seq} has no position {pos}; run `kms fsck --reindex`"),
        };
        let last = count.checked_sub(1).ok_or_else(inconsistent)?;
        if pos > last {
            return Err(inconsistent());
        }
        if pos != last {
            let lk = schema::index_entry(seq, last);
            let moved: IndexEntry = self.get(&lk)?.ok_or_else(inconsistent)?;
            let moved_back = schema::index_back(&member_record_key(seq, &moved.id));
            let mut back: IndexBack = self.get(&moved_back)?.ok_or_else(inconsistent)?;
            back.seq = Some((seq.to_owned(), pos));
            self.put(&moved_back, &back)?;
            self.put(&schema::index_entry(seq, pos), &moved)?;
        }
        self.delete(&schema::index_entry(seq, last))?;
        if last == 0 {
            self.delete(&ck)
        } else {
            self.put(&ck, &last)
        }
    }

    /// Moves one record's index entries from what `old` says to what `new` says.
    fn apply(&mut self, record_key: &[u8], new: Option<Indexed>) -> Result<(), KmsError> {
        let bk = schema::index_back(record_key);
        let old: Option<IndexBack> = self.get(&bk)?;
        let (old_seq, old_extra, old_due) = match old {
            Some(b) => (b.seq, b.extra, b.due),
            None => (None, None, Vec::new()),
        };
        let (new_seq, new_due) = match new {
            Some(n) => (n.seq, n.due),
            None => (None, Vec::new()),
        };
        let seq = match (old_seq, new_seq) {
            (Some((os, pos)), Some((ns, entry))) if os == ns => {
                if old_extra != entry.extra {
                    self.put(&schema::index_entry(&ns, pos), &entry)?;
                }
                Some((ns, pos, entry.extra))
            }
            (old, new) => {
                if let Some((os, pos)) = old {
                    self.remove(&os, pos)?;
                }
                match new {
                    Some((ns, entry)) => {
                        let pos = self.push(&ns, &entry)?;
                        Some((ns, pos, entry.extra))
                    }
                    None => None,
                }
            }
        };
        // One entry per time; when two kinds fall on one time, it names the first (a purge
        // before a rotation before an expiry: `due` is sorted).
        let by_time = |due: &[(i64, DueKind)]| {
            let mut m = BTreeMap::new();
            for (when, kind) in due {
                m.entry(*when).or_insert(*kind);
            }
            m
        };
        let (was, now) = (by_time(&old_due), by_time(&new_due));
        for when in was.keys().filter(|w| !now.contains_key(w)) {
            self.delete(&schema::due(*when, record_key))?;
        }
        for (when, kind) in &now {
            if was.get(when) != Some(kind) {
                self.put(&schema::due(*when, record_key), kind)?;
            }
        }
        match seq {
            None if new_due.is_empty() => self.delete(&bk),
            seq => {
                let (seq, extra) = match seq {
                    Some((s, pos, extra)) => (Some((s, pos)), extra),
                    None => (None, None),
                };
                self.put(
                    &bk,
                    &IndexBack {
                        seq,
                        extra,
                        due: new_due,
                    },
                )
            }
        }
    }

    /// The guarded, sealed writes that take the store from what was read to what is now.
    fn into_ops(self) -> Result<Vec<Op>, KmsError> {
        let mut ops = Vec::new();
        for (key, (original, current)) in self.touched {
            match (original, current) {
                (None, None) => {}
                (None, Some(plain)) => ops.push(Op::Put {
                    value: self.kms.sealer.seal(&key, &plain)?,
                    key,
                    precondition: Some(Precondition::Absent),
                }),
                (Some((revision, was)), Some(plain)) => {
                    if was != plain {
                        ops.push(Op::Put {
                            value: self.kms.sealer.seal(&key, &plain)?,
                            key,
                            precondition: Some(Precondition::Revision(revision)),
                        });
                    }
                }
                (Some((revision, _)), None) => ops.push(Op::Delete {
                    key,
                    precondition: Some(Precondition::Revision(revision)),
                }),
            }
        }
        Ok(ops)
    }
}

/// Where a page starts: the sequences in order with their counts, and positions to skip.
pub(crate) struct Selection {
    /// (sequence, count), in list order.
    pub(crate) sequences: Vec<(String, u64)>,
    /// Positions not to show, per sequence (records gone or failing to open).
    pub(crate) hidden: BTreeMap<String, BTreeSet<u64>>,
}

impl Selection {
    fn hidden_in(&self, seq: &str, count: u64) -> usize {
        self.hidden.get(seq).map_or(0, |h| h.range(..count).count())
    }

    /// Members shown across every sequence.
    pub(crate) fn total(&self) -> u64 {
        self.sequences
            .iter()
            .map(|(s, c)| c.saturating_sub(self.hidden_in(s, *c) as u64))
            .sum()
    }
}

impl Kms {
    /// The index writes `ops` need, derived from the records they write.
    pub(crate) fn index_ops(&self, ops: &[Op]) -> Result<Vec<Op>, KmsError> {
        if !ops.iter().any(|op| is_indexed(op.key())) {
            return Ok(Vec::new());
        }
        let mut overlay = Overlay::new(self);
        for op in ops {
            let key = op.key();
            if !is_indexed(key) {
                continue;
            }
            let new = match op {
                Op::Put { value, .. } => self.indexed(key, value)?,
                Op::Delete { .. } => None,
            };
            overlay.apply(key, new)?;
        }
        overlay.into_ops()
    }

    /// How the record `value` under `key` is indexed.
    fn indexed(&self, key: &[u8], value: &[u8]) -> Result<Option<Indexed>, KmsError> {
        Ok(Some(match schema::kind_of(key) {
            Some(schema::KEY) => {
                let r: KeyRecord = self.decode(key, value)?;
                Indexed {
                    seq: Some((
                        key_sequence(
                            r.state,
                            r.key_spec,
                            r.key_usage,
                            r.protection_level,
                            r.creator_type,
                        ),
                        IndexEntry {
                            id: r.key_id.clone(),
                            extra: None,
                        },
                    )),
                    due: key_due(&r),
                }
            }
            Some(schema::ALIAS) => {
                let r: AliasRecord = self.decode(key, value)?;
                Indexed {
                    seq: Some((
                        ALIASES.to_owned(),
                        IndexEntry {
                            id: r.alias_name,
                            extra: Some(r.key_id),
                        },
                    )),
                    due: Vec::new(),
                }
            }
            Some(schema::SECRET) => {
                let r: SecretRecord = self.decode(key, value)?;
                Indexed {
                    due: secret_due(&r),
                    seq: Some((
                        SECRETS.to_owned(),
                        IndexEntry {
                            id: r.name,
                            extra: None,
                        },
                    )),
                }
            }
            Some(schema::VERSION) => {
                let r: VersionRecord = self.decode(key, value)?;
                Indexed {
                    seq: Some((
                        version_sequence(&r.key_id),
                        IndexEntry {
                            id: r.version_id,
                            extra: Some(r.creation_date.secs().to_string()),
                        },
                    )),
                    due: Vec::new(),
                }
            }
            Some(schema::IMPORT_TOKEN) => {
                let r: ImportToken = self.decode(key, value)?;
                Indexed {
                    seq: None,
                    due: vec![(r.expires.secs(), DueKind::TokenExpiry)],
                }
            }
            _ => return Ok(None),
        }))
    }

    /// The number of members of one sequence.
    pub(crate) fn sequence_count(&self, seq: &str) -> Result<u64, KmsError> {
        Ok(self
            .read::<u64>(&schema::index_count(seq))?
            .map_or(0, |(count, _)| count))
    }

    /// Every key sequence with its count, in name order: O(combinations in use).
    pub(crate) fn key_sequences(&self) -> Result<Vec<(String, u64)>, KmsError> {
        let prefix = schema::index_count("K,");
        Ok(self
            .scan_all::<u64>(&prefix)?
            .into_iter()
            .filter_map(|(k, count, _)| {
                let name = std::str::from_utf8(k.get(COUNT.len()..)?).ok()?;
                Some((name.to_owned(), count))
            })
            .collect())
    }

    /// Where a record is indexed, when it is.
    fn back_of(&self, record_key: &[u8]) -> Result<Option<(String, u64)>, KmsError> {
        match self.read::<IndexBack>(&schema::index_back(record_key)) {
            Ok(Some((b, _))) => Ok(b.seq),
            Ok(None) => Ok(None),
            // A back-pointer that does not open hides nothing; fsck reports it.
            Err(KmsError::RecordCorrupt { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds to `hidden` the positions of the records under `prefix` that are known to fail to
    /// open (at most the 10,000 remembered).
    fn hide_corrupt(
        &self,
        prefix: &[u8],
        hidden: &mut BTreeMap<String, BTreeSet<u64>>,
    ) -> Result<(), KmsError> {
        let known: Vec<Vec<u8>> = self
            .corrupt
            .lock()
            .map(|c| {
                c.keys()
                    .filter(|k| k.starts_with(prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for k in known {
            self.hide(&k, hidden)?;
        }
        Ok(())
    }

    /// Adds a record's position to `hidden`.
    fn hide(
        &self,
        record_key: &[u8],
        hidden: &mut BTreeMap<String, BTreeSet<u64>>,
    ) -> Result<(), KmsError> {
        if let Some((seq, pos)) = self.back_of(record_key)? {
            hidden.entry(seq).or_default().insert(pos);
        }
        Ok(())
    }

    /// The records under `prefix` whose purge is due at `now` (gone, though maintenance has
    /// not removed them yet): O(due).
    pub(crate) fn overdue_purges(
        &self,
        now: UnixTime,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, KmsError> {
        let mut out = Vec::new();
        self.for_each_due(now, |record_key, kind| {
            if kind == DueKind::Purge && record_key.starts_with(prefix) {
                out.push(record_key.to_vec());
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every due-date entry at or before `now`, in time order; entries
    /// written meanwhile behind the cursor wait for the next call.
    pub(crate) fn for_each_due(
        &self,
        now: UnixTime,
        mut f: impl FnMut(&[u8], DueKind) -> Result<(), KmsError>,
    ) -> Result<(), KmsError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.storage.scan(DUE, after.as_deref(), super::SCAN_PAGE)?;
            let len = page.len();
            for (k, entry) in page {
                let Some((when, record_key)) = schema::parse_due(&k) else {
                    after = Some(k);
                    continue;
                };
                if when > now.secs() {
                    return Ok(());
                }
                match self.read_entry::<DueKind>(&k, &entry.value) {
                    Ok(kind) => f(record_key, kind)?,
                    // A due entry that does not open: the record's own rules still hold
                    // whenever it is read; fsck reports the entry.
                    Err(KmsError::RecordCorrupt { .. }) => {}
                    Err(e) => return Err(e),
                }
                after = Some(k);
            }
            if len < super::SCAN_PAGE {
                return Ok(());
            }
        }
    }

    /// One page of members across `sel`'s sequences, skipping `sel.hidden`: O(page +
    /// sequences + hidden).
    pub(crate) fn page_entries(
        &self,
        sel: &Selection,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, KmsError> {
        let mut out = Vec::with_capacity(limit.min(128));
        let mut skip = offset;
        let none = BTreeSet::new();
        for (seq, count) in &sel.sequences {
            if out.len() >= limit {
                break;
            }
            let hidden = sel.hidden.get(seq).unwrap_or(&none);
            let shown = count.saturating_sub(hidden.range(..*count).count() as u64);
            if skip >= shown {
                skip -= shown;
                continue;
            }
            // The raw position of the `skip`-th shown member.
            let mut start = skip;
            for h in hidden {
                if *h <= start {
                    start += 1;
                } else {
                    break;
                }
            }
            skip = 0;
            let prefix = schema::index_entries(seq);
            let after = start.checked_sub(1).map(|p| schema::index_entry(seq, p));
            let want = limit - out.len();
            let page =
                self.storage
                    .scan(&prefix, after.as_deref(), want.saturating_add(hidden.len()))?;
            for (k, entry) in page {
                if out.len() >= limit {
                    break;
                }
                if parse_position(&k).is_some_and(|p| hidden.contains(&p)) {
                    continue;
                }
                match self.read_entry::<IndexEntry>(&k, &entry.value) {
                    Ok(e) => out.push(e),
                    Err(KmsError::RecordCorrupt { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Brings the indexes to this engine's format when the store was written without them
    /// (or by another format): a one-time O(store) pass at open.
    pub(crate) fn ensure_indexes(&self) -> Result<(), KmsError> {
        match self.read::<u32>(INDEX_MARKER) {
            Ok(Some((format, _))) if format == INDEX_FORMAT => Ok(()),
            Ok(_) | Err(KmsError::RecordCorrupt { .. }) => self.rebuild_indexes().map(drop),
            Err(e) => Err(e),
        }
    }

    /// Host API: drops every index record and derives them again from the records
    /// (`kms fsck --reindex`, and at open for a store written without indexes). Reads the
    /// whole store; records that fail to open are left out (and reported by `fsck`).
    ///
    /// Returns the number of records indexed.
    ///
    /// Errors: storage failures (the indexes are then incomplete and are rebuilt again at the
    /// next open, since the format marker is written last).
    pub fn rebuild_indexes(&self) -> Result<usize, KmsError> {
        let _guard = self.write_guard()?;
        let mut batch = Batch::new();
        batch.delete(INDEX_MARKER.to_vec());
        self.commit_raw(batch)?;
        // Remove the old index records.
        loop {
            let page = self.storage.scan(schema::INDEX, None, super::SCAN_PAGE)?;
            if page.is_empty() {
                break;
            }
            let mut batch = Batch::new();
            for (k, _) in page {
                batch.delete(k);
            }
            self.commit_raw(batch)?;
        }
        let mut indexed = 0;
        // Keys, aliases, secrets and tokens in key order (so a rebuilt list of keys, aliases
        // or secrets comes by id or name); each key's versions right after the key, oldest
        // first, as ListKeyVersions shows them.
        for prefix in [
            schema::KEY,
            schema::ALIAS,
            schema::SECRET,
            schema::IMPORT_TOKEN,
        ] {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = self
                    .storage
                    .scan(prefix, after.as_deref(), super::SCAN_PAGE)?;
                let len = page.len();
                let mut overlay = Overlay::new(self);
                for (k, entry) in page {
                    match self.indexed(&k, &entry.value) {
                        Ok(new) => {
                            overlay.apply(&k, new)?;
                            indexed += 1;
                            if let Some(key_id) = k.strip_prefix(schema::KEY) {
                                indexed += self.index_versions(&mut overlay, key_id)?;
                            }
                        }
                        Err(e @ KmsError::RecordCorrupt { .. }) => self.note_corrupt(&k, &e),
                        Err(e) => return Err(e),
                    }
                    after = Some(k);
                }
                let ops = overlay.into_ops()?;
                if !ops.is_empty() {
                    self.commit_raw(Batch { ops })?;
                }
                if len < super::SCAN_PAGE {
                    break;
                }
            }
        }
        let mut batch = Batch::new();
        self.stage_put(
            &mut batch,
            INDEX_MARKER.to_vec(),
            &INDEX_FORMAT,
            Precondition::Absent,
        )?;
        self.commit_raw(batch)?;
        Ok(indexed)
    }
}

impl Kms {
    /// Indexes one key's versions in creation order (a rebuild); returns how many.
    fn index_versions(&self, overlay: &mut Overlay<'_>, key_id: &[u8]) -> Result<usize, KmsError> {
        let mut prefix = schema::VERSION.to_vec();
        prefix.extend_from_slice(key_id);
        prefix.push(b'/');
        let mut versions = Vec::new();
        for (k, entry) in self.storage.scan(&prefix, None, usize::MAX)? {
            match self.decode::<VersionRecord>(&k, &entry.value) {
                Ok(v) => versions.push((v.seq, k, entry.value)),
                Err(e @ KmsError::RecordCorrupt { .. }) => self.note_corrupt(&k, &e),
                Err(e) => return Err(e),
            }
        }
        versions.sort_by_key(|(seq, _, _)| *seq);
        for (_, k, value) in &versions {
            let new = self.indexed(k, value)?;
            overlay.apply(k, new)?;
        }
        Ok(versions.len())
    }

    /// Decodes an index record as the type its key holds (for fsck).
    pub(crate) fn check_index_record(&self, k: &[u8], v: &[u8]) -> Result<(), KmsError> {
        if k.starts_with(COUNT.as_bytes()) {
            self.decode::<u64>(k, v).map(drop)
        } else if k.starts_with(ENTRY.as_bytes()) {
            self.decode::<IndexEntry>(k, v).map(drop)
        } else if k.starts_with(BACK.as_bytes()) {
            self.decode::<IndexBack>(k, v).map(drop)
        } else if k.starts_with(DUE) {
            self.decode::<DueKind>(k, v).map(drop)
        } else {
            self.decode::<serde_json::Value>(k, v).map(drop)
        }
    }
}

impl Kms {
    /// One page of `sel`, with the paging fields of the answer.
    pub(crate) fn index_page(
        &self,
        sel: &Selection,
        page: crate::validate::Page,
    ) -> Result<crate::validate::Paged<IndexEntry>, KmsError> {
        let wide = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let offset = (page.number as u64 - 1).saturating_mul(page.size as u64);
        Ok(crate::validate::Paged {
            items: self.page_entries(sel, offset, page.size)?,
            page_number: wide(page.number as u64),
            page_size: wide(page.size as u64),
            total_count: wide(sel.total()),
        })
    }

    /// A selection of `sequences` (with their counts), hiding the records in `gone` and the
    /// records under `prefix` known to fail to open.
    pub(crate) fn selection(
        &self,
        sequences: Vec<(String, u64)>,
        prefix: &[u8],
        gone: &[Vec<u8>],
    ) -> Result<Selection, KmsError> {
        let mut hidden = BTreeMap::new();
        for record_key in gone {
            self.hide(record_key, &mut hidden)?;
        }
        self.hide_corrupt(prefix, &mut hidden)?;
        Ok(Selection { sequences, hidden })
    }

    /// [`Kms::selection`] of one sequence.
    pub(crate) fn single_selection(
        &self,
        seq: &str,
        prefix: &[u8],
        gone: &[Vec<u8>],
    ) -> Result<Selection, KmsError> {
        let count = self.sequence_count(seq)?;
        self.selection(vec![(seq.to_owned(), count)], prefix, gone)
    }
}

impl Kms {
    /// One page of `select()`, each member opened by `open` (`None` leaves it out). A member
    /// whose record fails to open is remembered by the read, so the next `select()` hides it:
    /// the page is read again, so that the page and TotalCount agree. Past a page's worth of
    /// passes (when the remembered set is full), the page is answered as it is.
    pub(crate) fn checked_page<T>(
        &self,
        page: crate::validate::Page,
        mut select: impl FnMut() -> Result<Selection, KmsError>,
        mut open: impl FnMut(&IndexEntry) -> Result<Option<T>, KmsError>,
    ) -> Result<crate::validate::Paged<T>, KmsError> {
        let mut passes = 0;
        loop {
            passes += 1;
            let paged = self.index_page(&select()?, page)?;
            let mut items = Vec::with_capacity(paged.items.len());
            let mut corrupt = false;
            for e in &paged.items {
                match open(e) {
                    Ok(Some(v)) => items.push(v),
                    Ok(None) => {}
                    Err(KmsError::RecordCorrupt { .. }) => corrupt = true,
                    Err(e) => return Err(e),
                }
            }
            if !corrupt || passes > page.size.min(100) {
                return Ok(crate::validate::Paged {
                    items,
                    page_number: paged.page_number,
                    page_size: paged.page_size,
                    total_count: paged.total_count,
                });
            }
        }
    }
}
