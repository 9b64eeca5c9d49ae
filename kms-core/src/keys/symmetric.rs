//! Envelope encryption: Encrypt, Decrypt, GenerateDataKey*, ReEncrypt.

use base64::Engine;
use zeroize::Zeroizing;

use crate::api::*;
use crate::crypto::blob;
use crate::engine::{CachedKey, CachedVersion, Kms};
use crate::keys::usable::UsableKey;
use crate::policy::{Action, Caller};
use std::sync::Arc;

use crate::crypto::SecretBytes;
use crate::crypto::NONCE_LEN;
use crate::error::KmsError;
use crate::keys::model::{KeyUsage, ProtectionLevel};
use crate::validate;

/// Runs `op`; with DryRun set, reports what the real call would have done instead of its
/// result: `DryRunOperationError` for success, `AccessDeniedError` for a denial,
/// `ValidationError` for any other failure. Crypto operations change no state, so running
/// them in full is the surest way to perform every check.
pub(crate) fn dry_run<T>(
    dry_run: Option<bool>,
    op: impl FnOnce() -> Result<T, KmsError>,
) -> Result<T, KmsError> {
    if dry_run != Some(true) {
        return op();
    }
    match op() {
        Ok(_) => Err(KmsError::DryRunOperation),
        Err(e @ KmsError::NoPermission { .. }) => Err(KmsError::AccessDenied {
            reason: e.to_string(),
        }),
        Err(e) => Err(KmsError::Validation {
            reason: format!("{}: {e}", e.code()),
        }),
    }
}

pub(crate) fn data_key_len(
    number_of_bytes: Option<i64>,
    key_spec: Option<&str>,
) -> Result<usize, KmsError> {
    if let Some(n) = number_of_bytes {
        if !validate::DATA_KEY_BYTES.contains(&n) {
            return Err(KmsError::invalid(
                "NumberOfBytes",
                format!("{n} is outside 1 to 1024"),
            ));
        }
        return usize::try_from(n).map_err(|_| KmsError::invalid("NumberOfBytes", "too large"));
    }
    match key_spec.filter(|s| !s.is_empty()).map(DataKeySpec::parse) {
        None => Ok(32),
        Some(spec) => Ok(spec?.len()),
    }
}

wire_enum!(
    /// The KeySpec of GenerateDataKey and its kin: the data key's length.
    DataKeySpec, "KeySpec", {
        /// 32 bytes (the default).
        Aes256 => "AES_256",
        /// 16 bytes.
        Aes128 => "AES_128",
    }
);

impl DataKeySpec {
    /// The data key's length in bytes.
    fn len(self) -> usize {
        match self {
            DataKeySpec::Aes256 => 32,
            DataKeySpec::Aes128 => 16,
        }
    }
}

/// The associated data of an external key's blob: the header without its IV, then the
/// context.
fn external_aad(header: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, KmsError> {
    let without_iv = header
        .len()
        .checked_sub(NONCE_LEN)
        .and_then(|n| header.get(..n))
        .ok_or(KmsError::InvalidCiphertext {
            reason: "the blob is truncated",
        })?;
    Ok(blob::associated_data(without_iv, context))
}

/// A blob made under a key version.
pub(crate) struct Sealed {
    pub(crate) blob: Vec<u8>,
    pub(crate) key_id: String,
    pub(crate) version_id: String,
}

/// A plaintext to seal or a blob to open: borrowed (copied) or handed over (worked on in its
/// own buffer).
enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Body<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Borrowed(b) => b,
            Body::Owned(v) => v,
        }
    }

    /// `header | plaintext` with room for the tag; the plaintext's own buffer when it has
    /// that room, a new one (and the old wiped) when it does not.
    fn into_blob_buffer(self, header: &[u8]) -> Vec<u8> {
        let need = header.len() + self.bytes().len() + crate::crypto::TAG_LEN;
        match self {
            Body::Owned(mut v) if v.capacity() >= need => {
                let len = v.len();
                v.resize(header.len() + len, 0);
                v.copy_within(..len, header.len());
                if let Some(head) = v.get_mut(..header.len()) {
                    head.copy_from_slice(header);
                }
                v
            }
            other => {
                let mut out = Vec::with_capacity(need);
                out.extend_from_slice(header);
                out.extend_from_slice(other.bytes());
                if let Body::Owned(v) = other {
                    crate::crypto::wipe_vec(v);
                }
                out
            }
        }
    }
}

/// A blob's plaintext and the key version that opened it.
pub(crate) struct Opened {
    pub(crate) plaintext: SecretBytes,
    pub(crate) key_id: String,
    pub(crate) version_id: String,
}

impl Kms {
    fn check_symmetric(key: &CachedKey) -> Result<crate::crypto::AeadAlgorithm, KmsError> {
        match (key.record.key_spec.aead(), key.record.key_usage) {
            (Some(_), KeyUsage::EncryptDecrypt) if key.record.external_key_id.is_some() => {
                Ok(crate::crypto::AeadAlgorithm::ExternalAes256Gcm)
            }
            (Some(alg), KeyUsage::EncryptDecrypt) => Ok(alg),
            _ => Err(KmsError::UnsupportedOperation {
                reason: format!(
                    "key {} is {} / {}; this operation needs a symmetric ENCRYPT/DECRYPT key",
                    key.record.key_id, key.record.key_spec, key.record.key_usage
                ),
            }),
        }
    }

    pub(crate) fn primary_version(&self, key: &CachedKey) -> Result<Arc<CachedVersion>, KmsError> {
        let primary =
            key.record
                .primary_version_id
                .as_deref()
                .ok_or_else(|| KmsError::PendingImport {
                    key_id: key.record.key_id.clone(),
                })?;
        self.load_version(key, primary)
    }

    /// Seals `plaintext` under the key's primary version into a blob.
    pub(crate) fn seal_blob(
        &self,
        key: &UsableKey,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Sealed, KmsError> {
        self.seal_into(key, Body::Borrowed(plaintext), context)
    }

    /// Seals a plaintext the caller hands over: in its own buffer when that has room for the
    /// blob's header and tag (nothing is copied and no plaintext is left behind, since every
    /// byte it held is overwritten by header or ciphertext); otherwise into a new buffer, and
    /// the old one is wiped in bulk. Either way the plaintext is gone when this returns.
    pub(crate) fn seal_owned(
        &self,
        key: &UsableKey,
        plaintext: Vec<u8>,
        context: &EncryptionContext,
    ) -> Result<Sealed, KmsError> {
        self.seal_into(key, Body::Owned(plaintext), context)
    }

    fn seal_into(
        &self,
        key: &UsableKey,
        plaintext: Body<'_>,
        context: &EncryptionContext,
    ) -> Result<Sealed, KmsError> {
        let alg = Self::check_symmetric(key)?;
        let version = self.primary_version(key)?;
        if let Some(external_id) = &key.record.external_key_id {
            return self.seal_external(key, &version, external_id, plaintext.bytes(), context);
        }
        let mut iv = [0u8; NONCE_LEN];
        self.rng.fill(&mut iv)?;
        let len = plaintext.bytes().len();
        let header = blob::encode_header(&key.record.key_id, version.version_id(), alg, &iv, 0)?;
        let header_len = header.len();
        let aad = blob::associated_data(&header, context);
        let mut out = plaintext.into_blob_buffer(&header);
        if let Err(e) = self.version_seal(key, &version, &iv, &aad, &mut out, header_len) {
            crate::crypto::wipe_vec(out);
            return Err(e);
        }
        debug_assert_eq!(out.len(), header_len + len + crate::crypto::TAG_LEN);
        Ok(Sealed {
            blob: out,
            key_id: key.record.key_id.clone(),
            version_id: version.version_id().to_owned(),
        })
    }

    /// Encrypts through the external key store. The store chooses the IV, so the associated
    /// data is the header without its IV, then the context; the IV is still authenticated by
    /// GCM itself.
    fn seal_external(
        &self,
        key: &UsableKey,
        version: &CachedVersion,
        external_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Sealed, KmsError> {
        let alg = crate::crypto::AeadAlgorithm::ExternalAes256Gcm;
        let draft = blob::encode_header(
            &key.record.key_id,
            version.version_id(),
            alg,
            &[0; NONCE_LEN],
            0,
        )?;
        let aad = external_aad(&draft, context)?;
        let sealed = self
            .external_store()?
            .encrypt(external_id, &aad, plaintext)?;
        if sealed.ciphertext_and_tag.len() != plaintext.len() + crate::crypto::TAG_LEN {
            return Err(KmsError::ExternalKeyStoreUnavailable {
                reason: "the external key store answered a ciphertext of the wrong length".into(),
            });
        }
        let mut out = blob::encode_header(
            &key.record.key_id,
            version.version_id(),
            alg,
            &sealed.iv,
            sealed.ciphertext_and_tag.len(),
        )?;
        out.extend_from_slice(&sealed.ciphertext_and_tag);
        Ok(Sealed {
            blob: out,
            key_id: key.record.key_id.clone(),
            version_id: version.version_id().to_owned(),
        })
    }

    /// Decrypts an external key's blob through the external key store, with the associated
    /// data [`Kms::seal_external`] used.
    fn open_external(
        &self,
        external_id: &str,
        parsed: &blob::Blob<'_>,
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let aad = external_aad(parsed.header, context)?;
        let plaintext = self.external_store()?.decrypt(
            external_id,
            &aad,
            &crate::crypto::external::ExternalCiphertext {
                iv: parsed.iv,
                ciphertext_and_tag: parsed.ciphertext_and_tag.to_vec(),
            },
        )?;
        if plaintext.len() + crate::crypto::TAG_LEN != parsed.ciphertext_and_tag.len() {
            return Err(KmsError::ExternalKeyStoreUnavailable {
                reason: "the external key store answered a plaintext of the wrong length".into(),
            });
        }
        Ok(plaintext)
    }

    /// Opens a blob: finds its key and version, checks state and authorization for `action`,
    /// and authenticates header and context.
    pub(crate) fn open_blob(
        &self,
        caller: &Caller,
        action: Action,
        bytes: &[u8],
        context: &EncryptionContext,
    ) -> Result<Opened, KmsError> {
        self.open_into(caller, action, Body::Borrowed(bytes), context)
    }

    /// [`Kms::open_blob`] of a blob the caller hands over: a software key decrypts it in its
    /// own buffer, which becomes the plaintext (no copy); it is wiped if authentication fails.
    pub(crate) fn open_owned(
        &self,
        caller: &Caller,
        action: Action,
        blob: Vec<u8>,
        context: &EncryptionContext,
    ) -> Result<Opened, KmsError> {
        self.open_into(caller, action, Body::Owned(blob), context)
    }

    fn open_into(
        &self,
        caller: &Caller,
        action: Action,
        body: Body<'_>,
        context: &EncryptionContext,
    ) -> Result<Opened, KmsError> {
        let bytes = body.bytes();
        if bytes.is_empty() {
            return Err(KmsError::missing("CiphertextBlob"));
        }
        validate::encryption_context("EncryptionContext", context)?;
        let parsed = blob::decode(bytes)?;
        if !crate::ids::is_uuid(parsed.key_id) {
            return Err(KmsError::InvalidCiphertext {
                reason: "the blob names a malformed key id",
            });
        }
        let key = self.usable_key(caller, action, "CiphertextBlob", parsed.key_id)?;
        let alg = Self::check_symmetric(&key)?;
        if alg != parsed.algorithm {
            return Err(KmsError::InvalidCiphertext {
                reason: "the blob's algorithm does not match its key",
            });
        }
        let version = match self.load_version(&key, parsed.version_id) {
            Ok(v) => v,
            Err(KmsError::KeyVersionNotFound { .. }) => {
                return Err(KmsError::InvalidCiphertext {
                    reason: "the blob names a key version that does not exist",
                })
            }
            Err(e) => return Err(e),
        };
        let plaintext = match &key.record.external_key_id {
            Some(external_id) => self.open_external(external_id, &parsed, context)?.into(),
            None => {
                let aad = blob::associated_data(parsed.header, context);
                let (iv, header_len) = (parsed.iv, parsed.header.len());
                match body {
                    Body::Owned(buf)
                        if key.record.protection_level == ProtectionLevel::Software =>
                    {
                        self.version_open_owned(&key, &version, &iv, &aad, buf, header_len)?
                    }
                    _ => self
                        .version_open(&key, &version, &iv, &aad, parsed.ciphertext_and_tag)?
                        .into(),
                }
            }
        };
        Ok(Opened {
            plaintext,
            key_id: key.record.key_id.clone(),
            version_id: version.version_id().to_owned(),
        })
    }

    /// Encrypt: at most 6144 bytes under the key's primary version.
    ///
    /// Errors: `MissingParameter`, `InvalidParameter` (sizes, context), the state errors,
    /// `Rejected.UnsupportedOperation` (not a symmetric ENCRYPT/DECRYPT key),
    /// `Forbidden.NoPermission`; with DryRun the DryRun errors.
    pub fn encrypt(
        &self,
        caller: &Caller,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        dry_run(req.dry_run, || {
            if req.plaintext.is_empty() {
                return Err(KmsError::missing("Plaintext"));
            }
            if req.plaintext.len() > validate::MAX_PLAINTEXT {
                return Err(KmsError::invalid(
                    "Plaintext",
                    format!(
                        "is {} bytes; at most {} are allowed",
                        req.plaintext.len(),
                        validate::MAX_PLAINTEXT
                    ),
                ));
            }
            validate::encryption_context("EncryptionContext", &req.encryption_context)?;
            let key = self.usable_key(caller, Action::Encrypt, "KeyId", &req.key_id)?;
            let mut req = req;
            // Handed over, so it is sealed in place or wiped in bulk, not byte by byte.
            let plaintext = std::mem::take(&mut *req.plaintext);
            let sealed = self.seal_owned(&key, plaintext, &req.encryption_context)?;
            Ok(EncryptResponse {
                request_id: self.request_id(),
                ciphertext_blob: sealed.blob,
                key_id: sealed.key_id,
                key_version_id: sealed.version_id,
            })
        })
    }

    /// Decrypt: finds the key and version in the blob, so data encrypted before a rotation
    /// still decrypts.
    ///
    /// Errors: `InvalidCiphertext` (malformed, altered, or other context),
    /// `Forbidden.KeyNotFound`, the state errors, `Forbidden.NoPermission`.
    pub fn decrypt(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        dry_run(req.dry_run, || {
            let mut req = req;
            // Handed over, so a software key decrypts in the blob's own buffer.
            let blob = std::mem::take(&mut req.ciphertext_blob);
            let opened = self.open_owned(caller, Action::Decrypt, blob, &req.encryption_context)?;
            Ok(DecryptResponse {
                request_id: self.request_id(),
                plaintext: opened.plaintext,
                key_id: opened.key_id,
                key_version_id: opened.version_id,
            })
        })
    }

    /// A fresh data key of `len` bytes and its blob under `key_id`'s primary version.
    pub(crate) fn make_data_key(
        &self,
        caller: &Caller,
        action: Action,
        key_id: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, Sealed), KmsError> {
        validate::encryption_context("EncryptionContext", context)?;
        let key = self.usable_key(caller, action, "KeyId", key_id)?;
        let mut data_key = Zeroizing::new(vec![0u8; len]);
        self.rng.fill(&mut data_key)?;
        // As Alibaba KMS does: the blob holds the Base64 text of the data key.
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*data_key));
        let sealed = self.seal_blob(&key, text.as_bytes(), context)?;
        Ok((data_key, sealed))
    }

    /// GenerateDataKey: a random data key, returned in plain and wrapped under the key.
    ///
    /// The blob encrypts the Base64 text of the data key, as Alibaba KMS does, so Decrypt of
    /// the blob returns that text on the wire and in Rust alike.
    ///
    /// Errors: as [`Kms::encrypt`], plus `InvalidParameter` for KeySpec/NumberOfBytes.
    pub fn generate_data_key(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        dry_run(req.dry_run, || {
            let len = data_key_len(req.number_of_bytes, req.key_spec.as_deref())?;
            let (plaintext, sealed) = self.make_data_key(
                caller,
                Action::GenerateDataKey,
                &req.key_id,
                len,
                &req.encryption_context,
            )?;
            Ok(GenerateDataKeyResponse {
                request_id: self.request_id(),
                ciphertext_blob: sealed.blob,
                plaintext: plaintext.into(),
                key_id: sealed.key_id,
                key_version_id: sealed.version_id,
            })
        })
    }

    /// GenerateDataKeyWithoutPlaintext: as GenerateDataKey, returning only the wrapped key.
    ///
    /// Errors: as [`Kms::generate_data_key`].
    pub fn generate_data_key_without_plaintext(
        &self,
        caller: &Caller,
        req: GenerateDataKeyWithoutPlaintextRequest,
    ) -> Result<GenerateDataKeyWithoutPlaintextResponse, KmsError> {
        dry_run(req.dry_run, || {
            let len = data_key_len(req.number_of_bytes, req.key_spec.as_deref())?;
            let (_plaintext, sealed) = self.make_data_key(
                caller,
                Action::GenerateDataKeyWithoutPlaintext,
                &req.key_id,
                len,
                &req.encryption_context,
            )?;
            Ok(GenerateDataKeyWithoutPlaintextResponse {
                request_id: self.request_id(),
                ciphertext_blob: sealed.blob,
                key_id: sealed.key_id,
                key_version_id: sealed.version_id,
            })
        })
    }

    /// ReEncrypt: decrypts under the blob's key (`kms:ReEncryptFrom`) and encrypts under the
    /// destination key (`kms:ReEncryptTo`) without exposing the plaintext.
    ///
    /// Errors: as [`Kms::decrypt`] for the source, as [`Kms::encrypt`] for the destination.
    pub fn re_encrypt(
        &self,
        caller: &Caller,
        req: ReEncryptRequest,
    ) -> Result<ReEncryptResponse, KmsError> {
        dry_run(req.dry_run, || {
            validate::required("DestinationKeyId", &req.destination_key_id)?;
            validate::encryption_context(
                "DestinationEncryptionContext",
                &req.destination_encryption_context,
            )?;
            let plaintext = if req.source_key_id.is_some()
                || req.source_key_version_id.is_some()
                || req.source_encryption_algorithm.is_some()
            {
                self.asymmetric_source_plaintext(caller, &req)?.into()
            } else {
                self.open_blob(
                    caller,
                    Action::ReEncryptFrom,
                    &req.ciphertext_blob,
                    &req.source_encryption_context,
                )?
                .plaintext
            };
            let dest = self.usable_key(
                caller,
                Action::ReEncryptTo,
                "DestinationKeyId",
                &req.destination_key_id,
            )?;
            let sealed = self.seal_blob(&dest, &plaintext, &req.destination_encryption_context)?;
            Ok(ReEncryptResponse {
                request_id: self.request_id(),
                ciphertext_blob: sealed.blob,
                key_id: sealed.key_id,
                key_version_id: sealed.version_id,
            })
        })
    }
}
