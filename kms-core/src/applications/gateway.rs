//! The instance API: the cryptographic operations an application calls on a KMS instance
//! (Alibaba's KMS 3.0 "instance gateway", `dkms-gcs-0.2`), as engine methods. The server
//! speaks its protobuf protocol over them (`kms serve --instance-listen`).
//!
//! Two kinds of ciphertext, as Alibaba's:
//! - **Encrypt** (and GenerateDataKey, GenerateDataKeyPair): AES-GCM under the key's
//!   *initial* version (the one a tuple of KeyId, IV and ciphertext can always name), with the
//!   caller's AAD; the IV is returned beside the ciphertext (`ciphertext || tag`), and Decrypt
//!   takes the same tuple. RSA keys encrypt with RSA-OAEP, also under the initial version.
//! - **AdvanceEncrypt** (and the Advance data keys): a self-describing blob under the key's
//!   *primary* version, so that rotation never strands a ciphertext; AdvanceDecrypt also
//!   opens Encrypt's tuples. The blob has the layout Alibaba's SDKs expect (their
//!   TransferClient strips and restores its first three bytes): `24 00 02` (magic `$`,
//!   format 0, AES-GCM), the key id (36 characters), the 12-byte IV, then ciphertext and tag.
//!   The header is authenticated with the caller's AAD. The version is found by
//!   authentication: the primary version first, then the others.
//!
//! Sign, Verify, GetPublicKey and Hmac use the key's primary version.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::asym::{EncryptionAlgorithm, PrivateKey, SigningAlgorithm};
use crate::crypto::{blob, SecretBytes, NONCE_LEN};
use crate::engine::{CachedKey, CachedVersion, Kms};
use crate::error::KmsError;
use crate::keys::model::{KeySpec, KeyUsage, VersionRecord};
use crate::keys::usable::UsableKey;
use crate::policy::{AccessRequest, Action, Caller, Principal};
use crate::schema;
use crate::validate;

/// The symmetric algorithm of the instance API.
pub const AES_GCM: &str = "AES_GCM";
/// Most plaintext bytes Encrypt takes.
pub const MAX_PLAINTEXT: usize = 6144;
/// Most AAD bytes.
pub const MAX_AAD: usize = 8192;
/// The first bytes of an Advance blob: magic `$`, format 0, algorithm AES-GCM.
pub const ADVANCE_MAGIC: [u8; 3] = [b'$', 0, 2];
/// The length of an Advance blob's header: magic and the 36-character key id.
const ADVANCE_HEADER_LEN: usize = 3 + 36;
/// GenerateRandom's range of lengths.
pub const RANDOM_LENGTH: std::ops::RangeInclusive<i64> = 1..=1024;

/// Encrypt and AdvanceEncrypt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncryptRequest {
    /// The key: id, ARN or alias.
    pub key_id: String,
    /// What to encrypt.
    pub plaintext: SecretBytes,
    /// `AES_GCM` (the default) for symmetric keys; `RSAES_OAEP_SHA_256` or
    /// `RSAES_OAEP_SHA_1` for RSA keys.
    pub algorithm: String,
    /// Additional authenticated data.
    pub aad: Vec<u8>,
    /// A 12-byte IV to use instead of a random one (Encrypt only; never reuse one).
    pub iv: Vec<u8>,
    /// Accepted for compatibility: GCM and OAEP have no padding mode.
    pub padding_mode: String,
}

/// Encrypt's and AdvanceEncrypt's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// Encrypt: `ciphertext || tag`; AdvanceEncrypt: the self-describing blob.
    pub ciphertext_blob: Vec<u8>,
    /// The IV (empty for RSA).
    pub iv: Vec<u8>,
    /// The algorithm used.
    pub algorithm: String,
    /// The padding mode, as given.
    pub padding_mode: String,
    /// The key version used.
    pub key_version_id: String,
}

/// Decrypt and AdvanceDecrypt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecryptRequest {
    /// The ciphertext (Encrypt's `ciphertext || tag`, or AdvanceEncrypt's blob).
    pub ciphertext_blob: Vec<u8>,
    /// The key (needed for Encrypt's tuples; checked against an Advance blob's).
    pub key_id: String,
    /// As at encryption.
    pub algorithm: String,
    /// As at encryption.
    pub aad: Vec<u8>,
    /// Encrypt's IV (not needed for an Advance blob).
    pub iv: Vec<u8>,
    /// As at encryption.
    pub padding_mode: String,
}

/// Decrypt's and AdvanceDecrypt's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DecryptResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// The plaintext.
    pub plaintext: SecretBytes,
    /// The algorithm.
    pub algorithm: String,
    /// The padding mode, as given.
    pub padding_mode: String,
    /// The key version that decrypted.
    pub key_version_id: String,
}

/// GenerateDataKey and AdvanceGenerateDataKey.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateDataKeyRequest {
    /// The symmetric key that encrypts the data key.
    pub key_id: String,
    /// `AES_GCM` (the default).
    pub algorithm: String,
    /// 1 to 1024 (default 32).
    pub number_of_bytes: i32,
    /// Additional authenticated data.
    pub aad: Vec<u8>,
}

/// GenerateDataKey's and AdvanceGenerateDataKey's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateDataKeyResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// The IV.
    pub iv: Vec<u8>,
    /// The data key.
    pub plaintext: SecretBytes,
    /// The data key encrypted (as Encrypt's or AdvanceEncrypt's answer).
    pub ciphertext_blob: Vec<u8>,
    /// `AES_GCM`.
    pub algorithm: String,
    /// The key version used.
    pub key_version_id: String,
}

/// GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext and their Advance variants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateDataKeyPairRequest {
    /// The symmetric key that encrypts the private key.
    pub key_id: String,
    /// `AES_GCM` (the default).
    pub algorithm: String,
    /// `RSA_2048`, `RSA_3072`, `RSA_4096`, `EC_P256` or `EC_P256K`.
    pub key_pair_spec: String,
    /// `PEM` (the default) or `DER`.
    pub key_format: String,
    /// Additional authenticated data.
    pub aad: Vec<u8>,
}

/// The answer of the data key pair operations.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateDataKeyPairResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// The IV.
    pub iv: Vec<u8>,
    /// The pair's spec.
    pub key_pair_spec: String,
    /// The private key (PKCS#8), unless WithoutPlaintext.
    pub private_key_plaintext: Option<SecretBytes>,
    /// The private key encrypted.
    pub private_key_ciphertext_blob: Vec<u8>,
    /// The public key (SubjectPublicKeyInfo).
    pub public_key: Vec<u8>,
    /// `AES_GCM`.
    pub algorithm: String,
    /// The key version used.
    pub key_version_id: String,
}

/// Sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignRequest {
    /// The SIGN/VERIFY key.
    pub key_id: String,
    /// `RSA_PSS_SHA_256`, `RSA_PKCS1_SHA_256` or `ECDSA_SHA_256`.
    pub algorithm: String,
    /// The message (RAW) or its SHA-256 digest (DIGEST).
    pub message: Vec<u8>,
    /// `RAW` (the default) or `DIGEST`.
    pub message_type: String,
}

/// Sign's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// The signature.
    pub signature: Vec<u8>,
    /// The algorithm.
    pub algorithm: String,
    /// The message type.
    pub message_type: String,
    /// The key version used.
    pub key_version_id: String,
}

/// Verify.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRequest {
    /// The SIGN/VERIFY key.
    pub key_id: String,
    /// As at signing.
    pub algorithm: String,
    /// The message or digest.
    pub message: Vec<u8>,
    /// `RAW` (the default) or `DIGEST`.
    pub message_type: String,
    /// The signature to check.
    pub signature: Vec<u8>,
}

/// Verify's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// Whether the signature is valid.
    pub value: bool,
    /// The algorithm.
    pub algorithm: String,
    /// The message type.
    pub message_type: String,
    /// The key version used.
    pub key_version_id: String,
}

/// GetPublicKey's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// The public key, PEM.
    pub public_key: String,
    /// The key version.
    pub key_version_id: String,
}

/// Hmac's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key's id.
    pub key_id: String,
    /// HMAC-SHA256 of the message.
    pub signature: Vec<u8>,
}

/// GenerateRandom's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomResponse {
    /// The id of this call.
    pub request_id: String,
    /// The random bytes.
    pub random: SecretBytes,
}

/// GetSecretValue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetSecretValueRequest {
    /// The secret.
    pub secret_name: String,
    /// The stage (default `ACSCurrent`).
    pub version_stage: String,
    /// Or a version id.
    pub version_id: String,
    /// Also answer the rotation settings and ExtendedConfig.
    pub fetch_extended_config: bool,
}

/// GetSecretValue's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GetSecretValueResponse {
    /// The id of this call.
    pub request_id: String,
    /// The secret.
    pub secret_name: String,
    /// `Generic`, `Rds`...
    pub secret_type: String,
    /// The value.
    pub secret_data: crate::secrets::api::SecretData,
    /// `text` or `binary`.
    pub secret_data_type: String,
    /// The version's stages.
    pub version_stages: Vec<String>,
    /// The version.
    pub version_id: String,
    /// When the version was created.
    pub create_time: crate::time::UnixTime,
    /// `Enabled` or `Disabled` (with `fetch_extended_config`).
    pub automatic_rotation: Option<String>,
    /// `<n>s`, when rotation is on (with `fetch_extended_config`).
    pub rotation_interval: Option<String>,
    /// Last rotation (with `fetch_extended_config`).
    pub last_rotation_date: Option<crate::time::UnixTime>,
    /// Next rotation (with `fetch_extended_config`).
    pub next_rotation_date: Option<crate::time::UnixTime>,
    /// ExtendedConfig (with `fetch_extended_config`, when the secret has one).
    pub extended_config: Option<String>,
}

/// Which version an operation uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Encrypt's tuples: the initial version.
    Tuple,
    /// Self-describing blobs: the primary version.
    Advance,
}

fn message_digest(message: &[u8], message_type: &str) -> Result<(Vec<u8>, &'static str), KmsError> {
    if message.is_empty() {
        return Err(KmsError::missing("Message"));
    }
    match message_type {
        "" | "RAW" => {
            use sha2::Digest;
            Ok((sha2::Sha256::digest(message).to_vec(), "RAW"))
        }
        "DIGEST" => {
            if message.len() != 32 {
                return Err(KmsError::invalid(
                    "Message",
                    "a DIGEST message must be a 32-byte SHA-256 digest",
                ));
            }
            Ok((message.to_vec(), "DIGEST"))
        }
        other => Err(KmsError::invalid(
            "MessageType",
            format!("{other:?} is not one of RAW, DIGEST"),
        )),
    }
}

fn check_aad(aad: &[u8]) -> Result<(), KmsError> {
    if aad.len() > MAX_AAD {
        return Err(KmsError::invalid(
            "Aad",
            format!("is {} bytes; at most {MAX_AAD} are allowed", aad.len()),
        ));
    }
    Ok(())
}

fn symmetric_algorithm(algorithm: &str) -> Result<&'static str, KmsError> {
    match algorithm {
        "" | AES_GCM => Ok(AES_GCM),
        other => Err(KmsError::invalid(
            "Algorithm",
            format!("{other:?} is not supported; symmetric keys use {AES_GCM}"),
        )),
    }
}

fn oaep(algorithm: &str) -> Result<EncryptionAlgorithm, KmsError> {
    match EncryptionAlgorithm::parse_as("Algorithm", algorithm)? {
        EncryptionAlgorithm::RsaesPkcs1V15 => Err(KmsError::invalid(
            "Algorithm",
            "must be RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1",
        )),
        alg => Ok(alg),
    }
}

fn iv_of(param: &'static str, iv: &[u8]) -> Result<[u8; NONCE_LEN], KmsError> {
    <[u8; NONCE_LEN]>::try_from(iv).map_err(|_| {
        KmsError::invalid(
            param,
            format!("must be {NONCE_LEN} bytes, not {}", iv.len()),
        )
    })
}

impl Kms {
    /// The version a mode uses: the initial one (sequence 0) or the primary one.
    fn mode_version(&self, key: &CachedKey, mode: Mode) -> Result<Arc<CachedVersion>, KmsError> {
        match mode {
            Mode::Advance => self.primary_version(key),
            Mode::Tuple => self.initial_version(key),
        }
    }

    /// The key's first version.
    fn initial_version(&self, key: &CachedKey) -> Result<Arc<CachedVersion>, KmsError> {
        if key.record.version_count == 1 {
            return self.primary_version(key);
        }
        let cached = key
            .versions
            .read()
            .map_err(|_| KmsError::internal("a lock is poisoned"))?
            .values()
            .find(|v| v.record.seq == 0)
            .cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        let first = self
            .scan_all::<VersionRecord>(&schema::versions_of(&key.record.key_id))?
            .into_iter()
            .map(|(_, v, _)| v)
            .find(|v| v.seq == 0)
            .ok_or_else(|| KmsError::PendingImport {
                key_id: key.record.key_id.clone(),
            })?;
        self.load_version(key, &first.version_id)
    }

    fn symmetric_key(
        &self,
        caller: &Caller,
        action: Action,
        key_id: &str,
    ) -> Result<UsableKey, KmsError> {
        let key = self.usable_key(caller, action, "KeyId", key_id)?;
        check_symmetric(&key)?;
        Ok(key)
    }

    /// AES-GCM under `mode`'s version: `(ciphertext || tag or blob, iv, version id)`.
    fn instance_seal(
        &self,
        key: &UsableKey,
        mode: Mode,
        plaintext: &[u8],
        aad: &[u8],
        iv: Option<[u8; NONCE_LEN]>,
    ) -> Result<(Vec<u8>, [u8; NONCE_LEN], String), KmsError> {
        let version = self.mode_version(key, mode)?;
        let iv = match iv {
            Some(iv) => iv,
            None => {
                let mut iv = [0u8; NONCE_LEN];
                self.rng.fill(&mut iv)?;
                iv
            }
        };
        let (mut out, full_aad, start) = match mode {
            Mode::Tuple => (
                Vec::with_capacity(plaintext.len() + crate::crypto::TAG_LEN),
                aad.to_vec(),
                0,
            ),
            Mode::Advance => {
                let id = key.record.key_id.as_bytes();
                if id.len() != ADVANCE_HEADER_LEN - 3 {
                    return Err(KmsError::internal("a key id is not a UUID"));
                }
                let mut out = Vec::with_capacity(
                    ADVANCE_HEADER_LEN + NONCE_LEN + plaintext.len() + crate::crypto::TAG_LEN,
                );
                out.extend_from_slice(&ADVANCE_MAGIC);
                out.extend_from_slice(id);
                let full = blob::associated_data_bytes(&out, aad);
                out.extend_from_slice(&iv);
                let start = out.len();
                (out, full, start)
            }
        };
        out.extend_from_slice(plaintext);
        if let Err(e) = self.version_seal(key, &version, &iv, &full_aad, &mut out, start) {
            crate::crypto::wipe_vec(out);
            return Err(e);
        }
        Ok((out, iv, version.version_id().to_owned()))
    }

    /// Encrypt: see the module documentation.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (KeyId, Plaintext over 6144 bytes,
    /// Algorithm, Iv, Aad), `Rejected.UnsupportedOperation` (a key that cannot encrypt),
    /// `Forbidden.NoPermission` and the key's state errors.
    pub fn instance_encrypt(
        &self,
        caller: &Caller,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        self.encrypt_mode(caller, req, Mode::Tuple)
    }

    /// AdvanceEncrypt: see the module documentation.
    ///
    /// Errors: as [`Kms::instance_encrypt`].
    pub fn instance_advance_encrypt(
        &self,
        caller: &Caller,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        self.encrypt_mode(caller, req, Mode::Advance)
    }

    fn encrypt_mode(
        &self,
        caller: &Caller,
        req: EncryptRequest,
        mode: Mode,
    ) -> Result<EncryptResponse, KmsError> {
        validate::required("KeyId", &req.key_id)?;
        if req.plaintext.is_empty() {
            return Err(KmsError::missing("Plaintext"));
        }
        if req.plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::invalid(
                "Plaintext",
                format!(
                    "is {} bytes; at most {MAX_PLAINTEXT} are allowed",
                    req.plaintext.len()
                ),
            ));
        }
        check_aad(&req.aad)?;
        let key = self.usable_key(caller, Action::Encrypt, "KeyId", &req.key_id)?;
        if mode == Mode::Tuple && key.record.key_spec.is_rsa() {
            let alg = oaep(&req.algorithm)?;
            if key.record.key_usage != KeyUsage::EncryptDecrypt {
                return Err(not_for_encryption(&key));
            }
            let version = self.initial_version(&key)?;
            let ciphertext = self.version_public_key(&key, &version)?.encrypt(
                "Plaintext",
                alg,
                &req.plaintext,
            )?;
            return Ok(EncryptResponse {
                request_id: self.request_id(),
                key_id: key.record.key_id.clone(),
                ciphertext_blob: ciphertext,
                iv: Vec::new(),
                algorithm: alg.as_str().to_owned(),
                padding_mode: req.padding_mode,
                key_version_id: version.version_id().to_owned(),
            });
        }
        let algorithm = symmetric_algorithm(&req.algorithm)?;
        let iv = match (mode, req.iv.is_empty()) {
            (_, true) => None,
            (Mode::Tuple, false) => Some(iv_of("Iv", &req.iv)?),
            (Mode::Advance, false) => {
                return Err(KmsError::invalid("Iv", "AdvanceEncrypt chooses its own IV"))
            }
        };
        check_symmetric(&key)?;
        let (ciphertext, iv, version_id) =
            self.instance_seal(&key, mode, &req.plaintext, &req.aad, iv)?;
        Ok(EncryptResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            ciphertext_blob: ciphertext,
            iv: iv.to_vec(),
            algorithm: algorithm.to_owned(),
            padding_mode: req.padding_mode,
            key_version_id: version_id,
        })
    }

    /// Decrypt: Encrypt's tuple (KeyId, Iv, `ciphertext || tag`, Aad).
    ///
    /// Errors: `MissingParameter`/`InvalidParameter`, `InvalidCiphertext` when
    /// authentication fails, `Forbidden.NoPermission` and the key's state errors.
    pub fn instance_decrypt(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        validate::required("KeyId", &req.key_id)?;
        self.decrypt_tuple(caller, req)
    }

    /// AdvanceDecrypt: AdvanceEncrypt's blob, or Encrypt's tuple.
    ///
    /// Errors: as [`Kms::instance_decrypt`].
    pub fn instance_advance_decrypt(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        if req.ciphertext_blob.is_empty() {
            return Err(KmsError::missing("CiphertextBlob"));
        }
        check_aad(&req.aad)?;
        let Some(parsed) = parse_advance(&req.ciphertext_blob) else {
            validate::required("KeyId", &req.key_id)?;
            return self.decrypt_tuple(caller, req);
        };
        let key = self.symmetric_key(caller, Action::Decrypt, parsed.key_id)?;
        if !req.key_id.is_empty() && self.resolve_key_id("KeyId", &req.key_id)? != key.record.key_id
        {
            return Err(KmsError::InvalidCiphertext {
                reason: "the blob was made under another key",
            });
        }
        let aad = blob::associated_data_bytes(parsed.header, &req.aad);
        match self.open_any_version(&key, &parsed.iv, &aad, parsed.ciphertext_and_tag)? {
            Some((plaintext, version_id)) => Ok(DecryptResponse {
                request_id: self.request_id(),
                key_id: key.record.key_id.clone(),
                plaintext: plaintext.into(),
                algorithm: AES_GCM.to_owned(),
                padding_mode: req.padding_mode,
                key_version_id: version_id,
            }),
            // A tuple whose ciphertext happens to start like a blob.
            None if !req.key_id.is_empty() && !req.iv.is_empty() => self.decrypt_tuple(caller, req),
            None => Err(KmsError::InvalidCiphertext {
                reason: "authentication failed: the Aad differs or the blob was altered",
            }),
        }
    }

    /// Opens under whichever of the key's versions authenticates: the primary version, then
    /// the others, newest first.
    fn open_any_version(
        &self,
        key: &UsableKey,
        iv: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Option<Opened>, KmsError> {
        let primary = self.primary_version(key)?;
        let mut tried = vec![primary.version_id().to_owned()];
        match self.version_open(key, &primary, iv, aad, ciphertext_and_tag) {
            Ok(p) => return Ok(Some((p, primary.version_id().to_owned()))),
            Err(KmsError::InvalidCiphertext { .. }) => {}
            Err(e) => return Err(e),
        }
        if key.record.version_count <= 1 {
            return Ok(None);
        }
        let mut others: Vec<VersionRecord> = self
            .scan_all::<VersionRecord>(&schema::versions_of(&key.record.key_id))?
            .into_iter()
            .map(|(_, v, _)| v)
            .filter(|v| !tried.contains(&v.version_id))
            .collect();
        others.sort_by_key(|v| std::cmp::Reverse(v.seq));
        for v in others {
            let version = self.load_version(key, &v.version_id)?;
            tried.push(v.version_id);
            match self.version_open(key, &version, iv, aad, ciphertext_and_tag) {
                Ok(p) => return Ok(Some((p, version.version_id().to_owned()))),
                Err(KmsError::InvalidCiphertext { .. } | KmsError::PendingImport { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn decrypt_tuple(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        if req.ciphertext_blob.is_empty() {
            return Err(KmsError::missing("CiphertextBlob"));
        }
        check_aad(&req.aad)?;
        let key = self.usable_key(caller, Action::Decrypt, "KeyId", &req.key_id)?;
        if key.record.key_spec.is_rsa() {
            let alg = oaep(&req.algorithm)?;
            if key.record.key_usage != KeyUsage::EncryptDecrypt {
                return Err(not_for_encryption(&key));
            }
            let version = self.initial_version(&key)?;
            let plaintext = self.version_decrypt(&key, &version, alg, &req.ciphertext_blob)?;
            return Ok(DecryptResponse {
                request_id: self.request_id(),
                key_id: key.record.key_id.clone(),
                plaintext: plaintext.into(),
                algorithm: alg.as_str().to_owned(),
                padding_mode: req.padding_mode,
                key_version_id: version.version_id().to_owned(),
            });
        }
        let algorithm = symmetric_algorithm(&req.algorithm)?;
        validate::required_bytes("Iv", &req.iv)?;
        let iv = iv_of("Iv", &req.iv)?;
        check_symmetric(&key)?;
        let version = self.initial_version(&key)?;
        let plaintext = self.version_open(&key, &version, &iv, &req.aad, &req.ciphertext_blob)?;
        Ok(DecryptResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            plaintext: plaintext.into(),
            algorithm: algorithm.to_owned(),
            padding_mode: req.padding_mode,
            key_version_id: version.version_id().to_owned(),
        })
    }

    /// GenerateDataKey: a random data key, and it encrypted as by Encrypt.
    ///
    /// Errors: `InvalidParameter` (NumberOfBytes outside 1 to 1024, Algorithm, Aad); as
    /// [`Kms::instance_encrypt`].
    pub fn instance_generate_data_key(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        self.data_key_mode(caller, req, Mode::Tuple)
    }

    /// AdvanceGenerateDataKey: as GenerateDataKey, encrypted as by AdvanceEncrypt.
    ///
    /// Errors: as [`Kms::instance_generate_data_key`].
    pub fn instance_advance_generate_data_key(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        self.data_key_mode(caller, req, Mode::Advance)
    }

    fn data_key_mode(
        &self,
        caller: &Caller,
        req: GenerateDataKeyRequest,
        mode: Mode,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        validate::required("KeyId", &req.key_id)?;
        let algorithm = symmetric_algorithm(&req.algorithm)?;
        let n = match req.number_of_bytes {
            0 => 32,
            n if validate::DATA_KEY_BYTES.contains(&i64::from(n)) => n,
            n => {
                return Err(KmsError::invalid(
                    "NumberOfBytes",
                    format!("{n} is outside 1 to 1024"),
                ))
            }
        };
        check_aad(&req.aad)?;
        let key = self.symmetric_key(caller, Action::GenerateDataKey, &req.key_id)?;
        let mut data_key = Zeroizing::new(vec![0u8; usize::try_from(n).unwrap_or(32)]);
        self.rng.fill(&mut data_key)?;
        let (ciphertext, iv, version_id) =
            self.instance_seal(&key, mode, &data_key, &req.aad, None)?;
        Ok(GenerateDataKeyResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            iv: iv.to_vec(),
            plaintext: SecretBytes::new(std::mem::take(&mut *data_key)),
            ciphertext_blob: ciphertext,
            algorithm: algorithm.to_owned(),
            key_version_id: version_id,
        })
    }

    /// GenerateDataKeyPair (`with_plaintext`) or GenerateDataKeyPairWithoutPlaintext: a new
    /// key pair; the private key encrypted as by Encrypt.
    ///
    /// Errors: `InvalidParameter` (KeyPairSpec, KeyFormat, Algorithm, Aad); as
    /// [`Kms::instance_encrypt`].
    pub fn instance_generate_data_key_pair(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        self.key_pair_mode(caller, req, with_plaintext, Mode::Tuple)
    }

    /// The Advance variants of [`Kms::instance_generate_data_key_pair`]: the private key
    /// encrypted as by AdvanceEncrypt.
    ///
    /// Errors: as [`Kms::instance_generate_data_key_pair`].
    pub fn instance_advance_generate_data_key_pair(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        self.key_pair_mode(caller, req, with_plaintext, Mode::Advance)
    }

    fn key_pair_mode(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
        with_plaintext: bool,
        mode: Mode,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        validate::required("KeyId", &req.key_id)?;
        let algorithm = symmetric_algorithm(&req.algorithm)?;
        validate::required("KeyPairSpec", &req.key_pair_spec)?;
        let spec = match KeySpec::parse_as("KeyPairSpec", &req.key_pair_spec)? {
            s @ (KeySpec::Rsa2048
            | KeySpec::Rsa3072
            | KeySpec::Rsa4096
            | KeySpec::EcP256
            | KeySpec::EcP256K) => s,
            other => {
                return Err(KmsError::invalid(
                    "KeyPairSpec",
                    format!("{other} is not a key pair spec"),
                ))
            }
        };
        let pem = match req.key_format.as_str() {
            "" | "PEM" => true,
            "DER" => false,
            other => {
                return Err(KmsError::invalid(
                    "KeyFormat",
                    format!("{other:?} is not one of PEM, DER"),
                ))
            }
        };
        check_aad(&req.aad)?;
        let key = self.symmetric_key(caller, Action::GenerateDataKey, &req.key_id)?;
        let (pair, pkcs8) = PrivateKey::generate(self.crypto, spec, &*self.rng)?;
        let public = pair.public_key()?;
        let (private, public) = if pem {
            let private =
                der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, pkcs8.expose())
                    .map_err(|_| KmsError::internal("a private key cannot be encoded"))?;
            (
                Zeroizing::new(private.into_bytes()),
                public.to_pem()?.into_bytes(),
            )
        } else {
            (
                Zeroizing::new(pkcs8.expose().to_vec()),
                public.to_spki_der()?,
            )
        };
        let (ciphertext, iv, version_id) =
            self.instance_seal(&key, mode, &private, &req.aad, None)?;
        let mut private = private;
        Ok(GenerateDataKeyPairResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            iv: iv.to_vec(),
            key_pair_spec: spec.as_str().to_owned(),
            private_key_plaintext: with_plaintext
                .then(|| SecretBytes::new(std::mem::take(&mut *private))),
            private_key_ciphertext_blob: ciphertext,
            public_key: public,
            algorithm: algorithm.to_owned(),
            key_version_id: version_id,
        })
    }

    fn signing_key(
        &self,
        caller: &Caller,
        action: Action,
        key_id: &str,
    ) -> Result<(UsableKey, Arc<CachedVersion>), KmsError> {
        validate::required("KeyId", key_id)?;
        let key = self.usable_key(caller, action, "KeyId", key_id)?;
        if key.record.key_usage != KeyUsage::SignVerify {
            return Err(KmsError::UnsupportedOperation {
                reason: format!(
                    "key {} has KeyUsage {}; signing needs SIGN/VERIFY",
                    key.record.key_id, key.record.key_usage
                ),
            });
        }
        let version = self.primary_version(&key)?;
        Ok((key, version))
    }

    /// Sign: a RAW message is hashed with SHA-256 first; a DIGEST is signed as given.
    ///
    /// Errors: `InvalidParameter` (Algorithm, Message, MessageType),
    /// `Rejected.UnsupportedOperation` (not a SIGN/VERIFY key, or an algorithm of another key
    /// type), `Forbidden.NoPermission` and the key's state errors.
    pub fn instance_sign(
        &self,
        caller: &Caller,
        req: SignRequest,
    ) -> Result<SignResponse, KmsError> {
        let alg = SigningAlgorithm::parse(&req.algorithm)?;
        let (digest, message_type) = message_digest(&req.message, &req.message_type)?;
        let (key, version) = self.signing_key(caller, Action::AsymmetricSign, &req.key_id)?;
        let signature = self.version_sign(&key, &version, alg, &digest)?;
        Ok(SignResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            signature,
            algorithm: alg.as_str().to_owned(),
            message_type: message_type.to_owned(),
            key_version_id: version.version_id().to_owned(),
        })
    }

    /// Verify: `value: false` for a wrong or malformed signature (not an error).
    ///
    /// Errors: as [`Kms::instance_sign`].
    pub fn instance_verify(
        &self,
        caller: &Caller,
        req: VerifyRequest,
    ) -> Result<VerifyResponse, KmsError> {
        let alg = SigningAlgorithm::parse(&req.algorithm)?;
        let (digest, message_type) = message_digest(&req.message, &req.message_type)?;
        if req.signature.is_empty() {
            return Err(KmsError::missing("Signature"));
        }
        let (key, version) = self.signing_key(caller, Action::AsymmetricVerify, &req.key_id)?;
        let value =
            self.version_public_key(&key, &version)?
                .verify(alg, &digest, &req.signature)?;
        Ok(VerifyResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            value,
            algorithm: alg.as_str().to_owned(),
            message_type: message_type.to_owned(),
            key_version_id: version.version_id().to_owned(),
        })
    }

    /// GetPublicKey: the primary version's public key, PEM.
    ///
    /// Errors: `Rejected.UnsupportedOperation` for symmetric keys; `Forbidden.NoPermission`
    /// and the key's state errors.
    pub fn instance_get_public_key(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<PublicKeyResponse, KmsError> {
        validate::required("KeyId", key_id)?;
        let key = self.usable_key(caller, Action::GetPublicKey, "KeyId", key_id)?;
        if key.record.key_spec.is_symmetric() {
            return Err(KmsError::UnsupportedOperation {
                reason: format!(
                    "key {} is symmetric: it has no public key",
                    key.record.key_id
                ),
            });
        }
        let version = self.primary_version(&key)?;
        let public_key = self.version_public_key(&key, &version)?.to_pem()?;
        Ok(PublicKeyResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            public_key,
            key_version_id: version.version_id().to_owned(),
        })
    }

    /// Hmac: HMAC-SHA256 of the message under an HMAC key's primary version.
    ///
    /// Errors: `MissingParameter` (Message), `Rejected.UnsupportedOperation` (not an HMAC
    /// key), `Forbidden.NoPermission` and the key's state errors.
    pub fn instance_hmac(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
    ) -> Result<HmacResponse, KmsError> {
        validate::required("KeyId", key_id)?;
        if message.is_empty() {
            return Err(KmsError::missing("Message"));
        }
        if message.len() > validate::MAX_PLAINTEXT {
            return Err(KmsError::invalid(
                "Message",
                format!(
                    "is {} bytes; at most {} are allowed",
                    message.len(),
                    validate::MAX_PLAINTEXT
                ),
            ));
        }
        let key = self.usable_key(caller, Action::GenerateMac, "KeyId", key_id)?;
        if key.record.key_usage != KeyUsage::GenerateVerifyMac {
            return Err(KmsError::UnsupportedOperation {
                reason: format!(
                    "key {} is {} / {}; Hmac needs an HMAC_SHA256 key",
                    key.record.key_id, key.record.key_spec, key.record.key_usage
                ),
            });
        }
        let version = self.primary_version(&key)?;
        let signature = self.version_mac(&key, &version, message)?;
        Ok(HmacResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            signature,
        })
    }

    /// GenerateRandom: `length` random bytes (1 to 1024). An application needs only a valid
    /// client key; other callers need `kms:GetRandomPassword` (the account's random source).
    ///
    /// Errors: `InvalidParameter` (Length), `Forbidden.NoPermission`.
    pub fn instance_generate_random(
        &self,
        caller: &Caller,
        length: i64,
    ) -> Result<RandomResponse, KmsError> {
        if !RANDOM_LENGTH.contains(&length) {
            return Err(KmsError::invalid(
                "Length",
                format!("{length} is outside 1 to 1024"),
            ));
        }
        match &caller.principal {
            Principal::AccessPoint(who) => {
                let arn = "*";
                self.live_access_point(
                    &AccessRequest {
                        caller,
                        action: Action::GetRandomPassword,
                        resource: arn,
                        resource_account: &self.scope.account_id,
                        policy: None,
                        creator: None,
                        instance_id: None,
                    },
                    who,
                )?;
            }
            _ => self.authorize_account(caller, Action::GetRandomPassword, None)?,
        }
        let mut random = vec![0u8; usize::try_from(length).unwrap_or(0)];
        self.rng.fill(&mut random)?;
        Ok(RandomResponse {
            request_id: self.request_id(),
            random: SecretBytes::new(random),
        })
    }

    /// GetSecretValue for an application: its policy must allow the secret; the secret's
    /// encryption key is then used by the service itself (as the instance's secrets are).
    ///
    /// Errors: those of [`Kms::get_secret_value`].
    pub fn instance_get_secret_value(
        &self,
        caller: &Caller,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, KmsError> {
        let service = Caller::account_root(self.scope.account_id.clone());
        let r = self.get_secret_value_as(
            caller,
            &service,
            crate::api::GetSecretValueRequest {
                secret_name: req.secret_name,
                version_id: Some(req.version_id).filter(|s| !s.is_empty()),
                version_stage: Some(req.version_stage).filter(|s| !s.is_empty()),
                fetch_extended_config: Some(req.fetch_extended_config),
            },
        )?;
        Ok(GetSecretValueResponse {
            request_id: r.request_id,
            secret_name: r.secret_name,
            secret_type: r.secret_type,
            secret_data: r.secret_data,
            secret_data_type: r.secret_data_type,
            version_stages: r.version_stages.version_stage,
            version_id: r.version_id,
            create_time: r.create_time,
            automatic_rotation: r.automatic_rotation,
            rotation_interval: r.rotation_interval,
            last_rotation_date: r.last_rotation_date,
            next_rotation_date: r.next_rotation_date,
            extended_config: r.extended_config,
        })
    }
}

/// A plaintext and the version that opened it.
type Opened = (Zeroizing<Vec<u8>>, String);

/// The parts of an Advance blob.
struct AdvanceBlob<'a> {
    header: &'a [u8],
    key_id: &'a str,
    iv: [u8; NONCE_LEN],
    ciphertext_and_tag: &'a [u8],
}

fn parse_advance(bytes: &[u8]) -> Option<AdvanceBlob<'_>> {
    if !bytes.starts_with(&ADVANCE_MAGIC) {
        return None;
    }
    let header = bytes.get(..ADVANCE_HEADER_LEN)?;
    let key_id = std::str::from_utf8(header.get(3..)?).ok()?;
    if !crate::ids::is_uuid(key_id) {
        return None;
    }
    let iv =
        <[u8; NONCE_LEN]>::try_from(bytes.get(ADVANCE_HEADER_LEN..ADVANCE_HEADER_LEN + NONCE_LEN)?)
            .ok()?;
    let ciphertext_and_tag = bytes.get(ADVANCE_HEADER_LEN + NONCE_LEN..)?;
    if ciphertext_and_tag.len() < crate::crypto::TAG_LEN {
        return None;
    }
    Some(AdvanceBlob {
        header,
        key_id,
        iv,
        ciphertext_and_tag,
    })
}

/// Checks that a key can do the instance API's AES-GCM: a symmetric ENCRYPT/DECRYPT key whose
/// material the engine or its key provider holds (not an external key store's).
fn check_symmetric(key: &CachedKey) -> Result<(), KmsError> {
    if key.record.key_spec.aead().is_none()
        || key.record.key_usage != KeyUsage::EncryptDecrypt
        || key.record.external_key_id.is_some()
    {
        return Err(KmsError::UnsupportedOperation {
            reason: format!(
                "key {} is {} / {}; this operation needs a symmetric ENCRYPT/DECRYPT key of \
                 the instance",
                key.record.key_id, key.record.key_spec, key.record.key_usage
            ),
        });
    }
    Ok(())
}

fn not_for_encryption(key: &CachedKey) -> KmsError {
    KmsError::UnsupportedOperation {
        reason: format!(
            "key {} has KeyUsage {}; encryption needs ENCRYPT/DECRYPT",
            key.record.key_id, key.record.key_usage
        ),
    }
}
