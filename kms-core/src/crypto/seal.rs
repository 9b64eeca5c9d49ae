//! Sealing of stored records: a keyring of data-sealing keys under the root key.
//!
//! Every value the engine writes is `term u32 BE | nonce | AES-256-GCM(ciphertext) | tag` with
//! the term and the record key as associated data, so a backend sees only ciphertext and a
//! value moved under another record key fails to open.
//!
//! The keyring (`m/keyring`) maps terms to 256-bit sealing keys and is itself sealed under the
//! root key (term [`ROOT_TERM`]). Nonces are random, so one sealing key must not seal more than
//! 2^32 values; the keyring counts seals with a hi-lo scheme: the engine reserves a block of
//! [`SEAL_BLOCK`] seals by writing the keyring, spends it in memory, and reserves again when it
//! runs out. A crash wastes at most one block. When a term's reservations pass
//! [`SEALS_PER_TERM`], a new term (a new random key) begins; old terms stay for reading.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::backend::{self, AeadKey, CryptoProvider};
use crate::crypto::root_key::RootSeal;
use crate::crypto::{AeadAlgorithm, RandomSource, NONCE_LEN, TAG_LEN};
use crate::error::KmsError;
use crate::keys::model::KeyMaterial;
use crate::storage::{Batch, Precondition, Storage, StorageError};

/// The record key of the keyring.
use crate::schema::KEYRING as KEYRING_KEY;
/// The term number that marks a value sealed directly under the root key.
pub const ROOT_TERM: u32 = 0;
/// Seals reserved per keyring write.
pub const SEAL_BLOCK: u64 = 1 << 20;
/// Seals under one term before a new term starts (well under the 2^32 random-nonce bound).
pub const SEALS_PER_TERM: u64 = 1 << 31;

const HEADER_LEN: usize = 4;
const SCHEMA_V1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct KeyringDoc {
    current_term: u32,
    /// Seals reserved so far under `current_term`.
    reserved: u64,
    terms: BTreeMap<u32, KeyMaterial>,
}

struct Budget {
    current_term: u32,
    /// Seals still available in memory from the last reservation.
    remaining: u64,
}

/// Seals and opens stored values. Shared by the engine; safe from many threads.
pub(crate) struct Sealer {
    crypto: CryptoProvider,
    root: RootSeal,
    storage: Arc<dyn Storage>,
    rng: Arc<dyn RandomSource>,
    /// Each term's sealing key with its key schedule built (wiped when replaced or dropped).
    terms: RwLock<Terms>,
    budget: Mutex<Budget>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

type Terms = BTreeMap<u32, Box<dyn AeadKey>>;

fn seal_with(
    rng: &dyn RandomSource,
    key: &dyn AeadKey,
    term: u32,
    record_key: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let aad = aad(term, record_key);
    backend::seal_with(key, &nonce, &aad, &mut out, start)
        .map_err(|_| KmsError::internal("sealing a record failed"))?;
    Ok(out)
}

fn aad(term: u32, record_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + record_key.len());
    aad.extend_from_slice(&term.to_be_bytes());
    aad.extend_from_slice(record_key);
    aad
}

fn split_sealed(sealed: &[u8]) -> Option<(u32, [u8; NONCE_LEN], &[u8])> {
    let (term, rest) = sealed.split_first_chunk::<HEADER_LEN>()?;
    let (nonce, body) = rest.split_first_chunk::<NONCE_LEN>()?;
    Some((u32::from_be_bytes(*term), *nonce, body))
}

fn tampered(record_key: &[u8]) -> KmsError {
    KmsError::RecordCorrupt {
        reason: format!(
            "stored record {} failed authentication (tampered, moved, or sealed under another \
             root key)",
            String::from_utf8_lossy(record_key)
        ),
    }
}

fn encode_doc(doc: &KeyringDoc) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let mut out = Zeroizing::new(vec![SCHEMA_V1]);
    serde_json::to_writer(&mut *out, doc)
        .map_err(|e| KmsError::internal(format!("encoding the keyring failed: {e}")))?;
    Ok(out)
}

/// Reads and opens the keyring; `None` when the store has none yet.
fn load_keyring(
    crypto: CryptoProvider,
    storage: &dyn Storage,
    root: &RootSeal,
) -> Result<Option<(KeyringDoc, u64)>, KmsError> {
    let Some(entry) = storage.get(KEYRING_KEY)? else {
        return Ok(None);
    };
    let (term, nonce, body) = split_sealed(&entry.value).ok_or_else(|| tampered(KEYRING_KEY))?;
    if term != ROOT_TERM {
        return Err(tampered(KEYRING_KEY));
    }
    let plain = root
        .open(crypto, &nonce, &aad(term, KEYRING_KEY), body)
        .map_err(|e| match e {
            KmsError::InvalidCiphertext { .. } => KmsError::internal(format!(
                "the keyring does not open under {} (the wrong root key?)",
                root.describe()
            )),
            other => other,
        })?;
    let (&schema, json) = plain.split_first().ok_or_else(|| tampered(KEYRING_KEY))?;
    if schema != SCHEMA_V1 {
        return Err(KmsError::internal(
            "the keyring has an unknown schema version",
        ));
    }
    let doc: KeyringDoc = serde_json::from_slice(json)
        .map_err(|e| KmsError::internal(format!("the keyring is malformed: {e}")))?;
    Ok(Some((doc, entry.revision)))
}

/// Seals the encoded keyring under the root (term [`ROOT_TERM`], a fresh nonce).
fn seal_keyring(
    crypto: CryptoProvider,
    rng: &dyn RandomSource,
    root: &RootSeal,
    plain: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let body = root.seal(crypto, &nonce, &aad(ROOT_TERM, KEYRING_KEY), plain)?;
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + body.len());
    out.extend_from_slice(&ROOT_TERM.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Moves a store's keyring from one root to another (a root key file to an HSM-held key, or
/// back) in one conditional write: the keyring is opened under `from`, sealed under `to`, and
/// written only if no one changed it meanwhile. Records sealed under the keyring's terms are
/// untouched, so this costs one record whatever the store's size. Run it with the store's
/// engines stopped: an engine still running holds the old root and could not reserve seals.
///
/// Errors: `InternalFailure` when the keyring does not open under `from` or changed during
/// the move (nothing was written); `InvalidParameter` for a store without a keyring.
pub fn rewrap_keyring(
    storage: &dyn Storage,
    from: &RootSeal,
    to: &RootSeal,
) -> Result<(), KmsError> {
    let crypto = CryptoProvider::default();
    let (doc, revision) = load_keyring(crypto, storage, from)?.ok_or_else(|| {
        KmsError::invalid("Storage", "the store has no keyring yet: nothing to move")
    })?;
    let plain = encode_doc(&doc)?;
    let sealed = seal_keyring(crypto, crypto.random(), to, &plain)?;
    // Proof before the write: the new seal opens under `to`.
    let (_, nonce, body) = split_sealed(&sealed).ok_or_else(|| tampered(KEYRING_KEY))?;
    to.open(crypto, &nonce, &aad(ROOT_TERM, KEYRING_KEY), body)?;
    let mut batch = Batch::new();
    batch.put_if(KEYRING_KEY, sealed, Precondition::Revision(revision));
    storage.commit(batch).map_err(|e| match e {
        StorageError::Conflict { .. } => KmsError::internal(
            "the keyring changed during the move (is an engine still running?); nothing was written",
        ),
        other => other.into(),
    })
}

impl Sealer {
    /// Opens the keyring in `storage`, creating it on first use, and reserves a block of
    /// seals.
    ///
    /// Errors: `InternalFailure` when the keyring does not open under `root` (wrong root key or
    /// tampering) or storage fails.
    pub fn load(
        crypto: CryptoProvider,
        root: RootSeal,
        storage: Arc<dyn Storage>,
        rng: Arc<dyn RandomSource>,
    ) -> Result<Self, KmsError> {
        let sealer = Sealer {
            crypto,
            root,
            storage,
            rng,
            terms: RwLock::new(BTreeMap::new()),
            budget: Mutex::new(Budget {
                current_term: 0,
                remaining: 0,
            }),
        };
        sealer.reserve()?;
        Ok(sealer)
    }

    fn load_doc(&self) -> Result<Option<(KeyringDoc, u64)>, KmsError> {
        load_keyring(self.crypto, &*self.storage, &self.root)
    }

    fn fresh_key(&self) -> Result<KeyMaterial, KmsError> {
        let mut k = Zeroizing::new(vec![0u8; 32]);
        self.rng.fill(&mut k)?;
        Ok(KeyMaterial::new(k))
    }

    /// Reserves a new block of seals (and starts a new term when the current one is spent).
    fn reserve(&self) -> Result<(), KmsError> {
        for _ in 0..8 {
            let (mut doc, precondition) = match self.load_doc()? {
                Some((doc, rev)) => (doc, Precondition::Revision(rev)),
                None => {
                    let mut terms = BTreeMap::new();
                    terms.insert(1, self.fresh_key()?);
                    (
                        KeyringDoc {
                            current_term: 1,
                            reserved: 0,
                            terms,
                        },
                        Precondition::Absent,
                    )
                }
            };
            if doc.reserved.saturating_add(SEAL_BLOCK) > SEALS_PER_TERM {
                let next = doc
                    .current_term
                    .checked_add(1)
                    .ok_or_else(|| KmsError::internal("the keyring ran out of terms"))?;
                doc.terms.insert(next, self.fresh_key()?);
                doc.current_term = next;
                doc.reserved = 0;
            }
            doc.reserved += SEAL_BLOCK;
            let plain = encode_doc(&doc)?;
            let sealed = seal_keyring(self.crypto, &*self.rng, &self.root, &plain)?;
            let mut batch = Batch::new();
            batch.put_if(KEYRING_KEY, sealed, precondition);
            match self.storage.commit(batch) {
                Ok(()) => {}
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut budget = self
                .budget
                .lock()
                .map_err(|_| KmsError::internal("keyring lock poisoned"))?;
            *budget = Budget {
                current_term: doc.current_term,
                remaining: SEAL_BLOCK,
            };
            drop(budget);
            let prepared = self.prepare_terms(&doc.terms)?;
            *self
                .terms
                .write()
                .map_err(|_| KmsError::internal("keyring lock poisoned"))? = prepared;
            return Ok(());
        }
        Err(KmsError::internal(
            "the keyring is being changed concurrently; try again",
        ))
    }

    /// Takes one seal from the budget, reserving a new block when it is spent; returns the term
    /// to seal under.
    fn take_seal(&self) -> Result<u32, KmsError> {
        {
            let mut b = self
                .budget
                .lock()
                .map_err(|_| KmsError::internal("keyring lock poisoned"))?;
            if b.remaining > 0 {
                b.remaining -= 1;
                return Ok(b.current_term);
            }
        }
        self.reserve()?;
        self.take_seal()
    }

    /// Seals `plaintext` for storage under `record_key`.
    pub fn seal(&self, record_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let term = self.take_seal()?;
        let terms = self
            .terms
            .read()
            .map_err(|_| KmsError::internal("keyring lock poisoned"))?;
        let key = terms
            .get(&term)
            .ok_or_else(|| KmsError::internal("the keyring lost its current term"))?;
        seal_with(&*self.rng, &**key, term, record_key, plaintext)
    }

    fn prepare(&self, key: &[u8]) -> Result<Box<dyn AeadKey>, KmsError> {
        self.crypto
            .aead
            .key(AeadAlgorithm::Aes256Gcm, key)
            .map_err(|_| KmsError::internal("a keyring key is malformed"))
    }

    fn prepare_terms(&self, terms: &BTreeMap<u32, KeyMaterial>) -> Result<Terms, KmsError> {
        terms
            .iter()
            .map(|(&term, key)| Ok((term, self.prepare(key.expose())?)))
            .collect()
    }

    /// Opens a value stored under `record_key`.
    ///
    /// Errors: `InternalFailure` when the value fails authentication (tampered with, moved
    /// from another record key, or from another store).
    pub fn open(&self, record_key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let (term, nonce, body) = split_sealed(sealed).ok_or_else(|| tampered(record_key))?;
        let open_with = |terms: &Terms| {
            terms.get(&term).map(|key| {
                backend::open_with(&**key, &nonce, &aad(term, record_key), body)
                    .map_err(|_| tampered(record_key))
            })
        };
        let first = open_with(
            &*self
                .terms
                .read()
                .map_err(|_| KmsError::internal("keyring lock poisoned"))?,
        );
        match first {
            Some(result) => result,
            None => {
                // Another process may have started a term since this one loaded the keyring.
                self.reload_terms()?;
                open_with(
                    &*self
                        .terms
                        .read()
                        .map_err(|_| KmsError::internal("keyring lock poisoned"))?,
                )
                .unwrap_or_else(|| Err(tampered(record_key)))
            }
        }
    }

    fn reload_terms(&self) -> Result<(), KmsError> {
        if let Some((doc, _)) = self.load_doc()? {
            let prepared = self.prepare_terms(&doc.terms)?;
            *self
                .terms
                .write()
                .map_err(|_| KmsError::internal("keyring lock poisoned"))? = prepared;
        }
        Ok(())
    }
}
