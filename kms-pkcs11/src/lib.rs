//! A PKCS#11 key provider for kms-core: `ProtectionLevel: HSM` keys whose material is made
//! inside a real token (an HSM, a smart card, SoftHSM2) and never leaves it, and a root key
//! held in the token so that the store alone decrypts nothing.
//!
//! - [`Pkcs11Provider`] implements [`kms_core::KeyProvider`]. Each key version's material is
//!   a token object (`CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`)
//!   labelled `<KeyId>/<KeyVersionId>` with a random `CKA_ID`; the engine stores only
//!   `p11:<hex CKA_ID>`. AES-GCM, ECDSA (P-256, secp256k1), RSA PSS and PKCS#1 v1.5 of a
//!   digest, RSA OAEP and HMAC-SHA256 run in the token. BYOK unwraps inside the token with an
//!   RSA-2048 wrapping key made there (`CKM_RSA_PKCS_OAEP` or `CKM_RSA_PKCS`), so imported
//!   material is never in process memory in clear.
//! - [`Pkcs11RootKey`] implements [`kms_core::RootKeyProvider`]: an AES-256 key in the token
//!   (label `kms-root` by default) seals the engine's keyring with AES-GCM, as Vault's PKCS#11
//!   seal does.
//!
//! Sessions are pooled. A session error that means the token or the session is gone
//! (`CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`, `CKR_SESSION_HANDLE_INVALID`...) drops the
//! connection, answers [`KmsError::KeyProviderUnavailable`] (`ServiceUnavailable`, 503) and
//! the next call connects again (finalizing and reinitializing the module when no session of
//! the old connection is still in use), so a token that comes back is used again.

mod der_util;
mod oaep;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use kms_core::api::KeySpec;
use kms_core::{
    AeadAlgorithm, EncryptionAlgorithm, ImportedMaterial, KeyProvider, KmsError, PublicKey,
    RootKeyProvider, SigningAlgorithm, NONCE_LEN,
};
use token::OpError;
use zeroize::{Zeroize, Zeroizing};

pub use token::Token;

/// The prefix of the handles this provider gives the engine.
const HANDLE_PREFIX: &[u8] = b"p11:";
/// Length of the random `CKA_ID` of each object.
const ID_LEN: usize = 16;
/// GCM tags are 128 bits.
const TAG_BITS: u64 = 128;
/// The message a key check value is computed over.
const CHECK_MESSAGE: &[u8] = b"kms-pkcs11 key check value";

/// How to reach a token.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
    /// Idle sessions kept open for reuse (more are opened under load and closed after).
    pub max_idle_sessions: usize,
    /// One operation at a time, for modules that are not safe for concurrent use although
    /// they say so: SoftHSM 2.6 with its file object store (the only one Debian builds)
    /// answers `CKR_GENERAL_ERROR` when sessions of one process make objects while others
    /// use them. Off by default; [`Pkcs11Config::new`] turns it on for SoftHSM's module.
    pub serialize: bool,
}

impl Pkcs11Config {
    /// A configuration with 8 idle sessions, serialized when the module is SoftHSM's
    /// (`libsofthsm2`).
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: impl Into<String>,
    ) -> Self {
        let module = module.into();
        let serialize = module
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("softhsm2"));
        Pkcs11Config {
            module,
            token_label: token_label.into(),
            pin: Zeroizing::new(pin.into()),
            max_idle_sessions: 8,
            serialize,
        }
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"..redacted..")
            .field("serialize", &self.serialize)
            .finish()
    }
}

/// A [`KeyProvider`] whose material lives in a PKCS#11 token.
#[derive(Clone)]
pub struct Pkcs11Provider {
    token: Arc<Token>,
    /// Public keys read from the token, by handle (public data).
    public_keys: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
    /// The token's OAEP has no SHA-256 (SoftHSM 2.6): RSAES_OAEP_SHA_256 decrypts with raw
    /// RSA in the token and the padding removed here.
    no_oaep_sha256: Arc<AtomicBool>,
}

impl fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("token", &self.token.label())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Provider {
    /// Connects to the token (loads the module, finds the token by label, logs in).
    ///
    /// Errors: `KeyProviderUnavailable` when the module does not load, the token is absent or
    /// the PIN is refused.
    pub fn connect(config: Pkcs11Config) -> Result<Self, KmsError> {
        Ok(Self::on(Arc::new(Token::open(config)?)))
    }

    /// A provider on an open token (shared with a [`Pkcs11RootKey`]).
    pub fn on(token: Arc<Token>) -> Self {
        Pkcs11Provider {
            token,
            public_keys: Arc::default(),
            no_oaep_sha256: Arc::default(),
        }
    }

    /// The token this provider uses.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    fn new_id(&self) -> Result<Vec<u8>, KmsError> {
        let mut id = vec![0u8; ID_LEN];
        kms_core::CryptoProvider::default().random().fill(&mut id)?;
        Ok(id)
    }

    fn handle_of(id: &[u8]) -> Vec<u8> {
        let mut h = HANDLE_PREFIX.to_vec();
        for b in id {
            h.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        h
    }

    /// Generates a secret key or a key pair for `spec`; returns the new object's `CKA_ID`.
    fn generate_objects(
        &self,
        spec: KeySpec,
        label: &str,
        wrapping: bool,
    ) -> Result<Vec<u8>, KmsError> {
        let id = self.new_id()?;
        let common = |class: ObjectClass| {
            vec![
                Attribute::Class(class),
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ]
        };
        let secret_private = [
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ];
        self.token.run_writing(|s| {
            match spec {
                KeySpec::Aes256 | KeySpec::Aes192 | KeySpec::Aes128 | KeySpec::HmacSha256 => {
                    let len = spec.symmetric_key_len().unwrap_or(32);
                    let (key_type, mech) = if spec == KeySpec::HmacSha256 {
                        (KeyType::GENERIC_SECRET, Mechanism::GenericSecretKeyGen)
                    } else {
                        (KeyType::AES, Mechanism::AesKeyGen)
                    };
                    let mut t = secret_key_template(key_type, label, Some(&id), false);
                    t.push(Attribute::ValueLen((len as u64).into()));
                    s.generate_key(&mech, &t)?;
                }
                KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                    let bits: u64 = match spec {
                        KeySpec::Rsa2048 => 2048,
                        KeySpec::Rsa3072 => 3072,
                        _ => 4096,
                    };
                    let mut public = common(ObjectClass::PUBLIC_KEY);
                    public.extend([
                        Attribute::KeyType(KeyType::RSA),
                        Attribute::ModulusBits(bits.into()),
                        Attribute::PublicExponent(vec![1, 0, 1]),
                        Attribute::Private(false),
                    ]);
                    let mut private = common(ObjectClass::PRIVATE_KEY);
                    private.extend_from_slice(&secret_private);
                    private.push(Attribute::KeyType(KeyType::RSA));
                    if wrapping {
                        public.extend([Attribute::Wrap(true), Attribute::Encrypt(true)]);
                        private.extend([
                            Attribute::Unwrap(true),
                            Attribute::Decrypt(false),
                            Attribute::Sign(false),
                        ]);
                    } else {
                        public.extend([Attribute::Verify(true), Attribute::Encrypt(true)]);
                        private.extend([Attribute::Sign(true), Attribute::Decrypt(true)]);
                    }
                    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)?;
                }
                KeySpec::EcP256 | KeySpec::EcP256K => {
                    let mut public = common(ObjectClass::PUBLIC_KEY);
                    public.extend([
                        Attribute::KeyType(KeyType::EC),
                        Attribute::EcParams(der_util::curve_params(spec).to_vec()),
                        Attribute::Verify(true),
                        Attribute::Private(false),
                    ]);
                    let mut private = common(ObjectClass::PRIVATE_KEY);
                    private.extend_from_slice(&secret_private);
                    private.extend([Attribute::KeyType(KeyType::EC), Attribute::Sign(true)]);
                    s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
                }
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// The public key of the pair `id`, as SubjectPublicKeyInfo DER.
    fn read_public_spki(&self, id: &[u8], spec: KeySpec) -> Result<Vec<u8>, KmsError> {
        let attrs = self.token.run(|s| {
            let object = self.token.find(s, ObjectClass::PUBLIC_KEY, id)?;
            let types: &[AttributeType] = if spec.is_rsa() {
                &[AttributeType::Modulus, AttributeType::PublicExponent]
            } else {
                &[AttributeType::EcPoint]
            };
            Ok(s.get_attributes(object, types)?)
        })?;
        let mut modulus = None;
        let mut exponent = None;
        let mut point = None;
        for a in attrs {
            match a {
                Attribute::Modulus(m) => modulus = Some(m),
                Attribute::PublicExponent(e) => exponent = Some(e),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        match (modulus, exponent, point) {
            (Some(n), Some(e), _) => der_util::rsa_spki(&n, &e),
            (_, _, Some(p)) => der_util::ec_spki(spec, &p),
            _ => Err(KmsError::internal(
                "the token did not report the public key's attributes",
            )),
        }
    }

    /// A decryption answered `CKR_GENERAL_ERROR` (`general`), which SoftHSM gives for a tag
    /// that does not match but a failing token gives too: it is a failed authentication when
    /// the token still answers, and the token's unavailability otherwise.
    fn ambiguous_general_error<T>(
        &self,
        result: Result<T, KmsError>,
        general: &AtomicBool,
    ) -> Result<T, KmsError> {
        match result {
            Err(KmsError::InvalidCiphertext { .. })
                if general.load(Ordering::Relaxed) && !self.token.is_available() =>
            {
                Err(KmsError::KeyProviderUnavailable {
                    reason: "the token failed during a decryption".into(),
                })
            }
            other => other,
        }
    }

    /// A key check value of the secret key `object`, computed inside the token.
    fn check_value(
        s: &Session,
        object: ObjectHandle,
        spec: KeySpec,
    ) -> cryptoki::error::Result<[u8; 32]> {
        use sha2::Digest;
        let raw = if spec == KeySpec::HmacSha256 {
            s.sign(&Mechanism::Sha256Hmac, object, CHECK_MESSAGE)?
        } else {
            // The tag of an empty message under the all-zero IV: E_K(J0) masked by GHASH of
            // the fixed associated data; reveals nothing about K. Nonces of the engine's own
            // encryptions are random, so this IV is never used for data.
            let mut iv = [0u8; NONCE_LEN];
            let params = GcmParams::new(&mut iv, CHECK_MESSAGE, TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), object, &[])?
        };
        let mut h = sha2::Sha256::new();
        h.update(b"kms-pkcs11 check value v1");
        h.update(&raw);
        Ok(h.finalize().into())
    }
}

/// The template of a secret key the token keeps: a token object, private and sensitive,
/// extractable only when asked (while an unwrapped key is measured), with its type's usage
/// (AES: encrypt and decrypt; generic secret, for HMAC: sign and verify).
fn secret_key_template(
    key_type: KeyType,
    label: &str,
    id: Option<&[u8]>,
    extractable: bool,
) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(extractable),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    t.extend(id.map(|id| Attribute::Id(id.to_vec())));
    if key_type == KeyType::AES {
        t.extend([Attribute::Encrypt(true), Attribute::Decrypt(true)]);
    } else {
        t.extend([Attribute::Sign(true), Attribute::Verify(true)]);
    }
    t
}

/// The search for the root key labelled `label`.
fn root_key_query(label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// The key type of material imported into the token: AES only (an HMAC key's length, which
/// the engine checks, cannot be measured inside the token).
fn import_key_type(spec: KeySpec) -> Result<KeyType, KmsError> {
    match spec {
        s if s.aead().is_some() => Ok(KeyType::AES),
        other => Err(KmsError::UnsupportedOperation {
            reason: format!("importing {other} material into the PKCS#11 token is not supported"),
        }),
    }
}

/// The length of the secret key `object` (extractable, not yet used), measured inside the
/// token: the AES key wrap (RFC 3394) of it under a session key made for this, 8 bytes
/// longer than the key. The wrapped bytes are wiped; the session key is destroyed.
fn measured_len(s: &Session, object: ObjectHandle) -> Result<usize, OpError> {
    let kek = s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32u64.into()),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
        ],
    )?;
    let wrapped = s
        .wrap_key(&Mechanism::AesKeyWrap, kek, object)
        .map(Zeroizing::new);
    let _ = s.destroy_object(kek);
    Ok(wrapped?.len().saturating_sub(8))
}

/// Parses a handle this provider made.
fn id_of(handle: &[u8]) -> Result<Vec<u8>, KmsError> {
    let hex = handle
        .strip_prefix(HANDLE_PREFIX)
        .ok_or_else(|| KmsError::internal("the key's handle is not a PKCS#11 handle"))?;
    if hex.len() != 2 * ID_LEN {
        return Err(KmsError::internal("the key's PKCS#11 handle is malformed"));
    }
    hex.chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| KmsError::internal("the key's PKCS#11 handle is malformed"))
        })
        .collect()
}

/// The answers of a GCM decryption whose tag does not match. SoftHSM answers
/// `CKR_GENERAL_ERROR` for it, which also means a broken token: see
/// [`Pkcs11Provider::ambiguous_general_error`].
fn gcm_failed(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::GeneralError,
            _
        )
    )
}

fn oaep(alg: EncryptionAlgorithm) -> Mechanism<'static> {
    match alg {
        EncryptionAlgorithm::RsaesOaepSha1 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )),
        EncryptionAlgorithm::RsaesOaepSha256 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        )),
        EncryptionAlgorithm::RsaesPkcs1V15 => Mechanism::RsaPkcs,
    }
}

impl KeyProvider for Pkcs11Provider {
    fn generate(&self, spec: KeySpec, label: &str) -> Result<Vec<u8>, KmsError> {
        Ok(Self::handle_of(&self.generate_objects(spec, label, false)?))
    }

    fn import(&self, spec: KeySpec, material: &[u8], label: &str) -> Result<Vec<u8>, KmsError> {
        let key_type = match spec {
            KeySpec::HmacSha256 => KeyType::GENERIC_SECRET,
            s if s.aead().is_some() => KeyType::AES,
            other => {
                return Err(KmsError::UnsupportedOperation {
                    reason: format!("importing {other} material into the token"),
                })
            }
        };
        let id = self.new_id()?;
        let mut t = secret_key_template(key_type, label, Some(&id), false);
        // The one copy of the material outside the token, wiped once the token has it.
        t.push(Attribute::Value(material.to_vec()));
        let made = self.token.run_writing(|s| Ok(s.create_object(&t)?));
        if let Some(Attribute::Value(v)) = t.last_mut() {
            v.zeroize();
        }
        made?;
        Ok(Self::handle_of(&id))
    }

    fn create_wrapping_key(
        &self,
        spec: KeySpec,
        alg: EncryptionAlgorithm,
        label: &str,
    ) -> Result<Option<(Vec<u8>, PublicKey)>, KmsError> {
        import_key_type(spec)?;
        let id = self.generate_objects(KeySpec::Rsa2048, label, true)?;
        let made = self.read_public_spki(&id, KeySpec::Rsa2048).and_then(|spki| {
            // The token must unwrap with `alg` itself; a token whose OAEP lacks SHA-256
            // refuses it here rather than at ImportKeyMaterial.
            let usable = self.token.run_with(
                |s| {
                    let public = self.token.find(s, ObjectClass::PUBLIC_KEY, &id)?;
                    s.encrypt(&oaep(alg), public, &[0u8; 32])?;
                    Ok(true)
                },
                |e| {
                    matches!(
                        e,
                        CkError::Pkcs11(
                            RvError::ArgumentsBad
                                | RvError::MechanismParamInvalid
                                | RvError::MechanismInvalid,
                            _
                        )
                    )
                    .then(|| KmsError::UnsupportedOperation {
                        reason: format!(
                            "the PKCS#11 token cannot unwrap with {alg}; use another WrappingAlgorithm \
                             (RSAES_OAEP_SHA_1)"
                        ),
                    })
                },
            );
            usable.map(|_| spki)
        });
        // Only the private half is needed from now on; the public one is returned.
        let spki = match made {
            Ok(spki) => {
                self.token.run_writing(|s| {
                    let public = self.token.find(s, ObjectClass::PUBLIC_KEY, &id)?;
                    Ok(s.destroy_object(public)?)
                })?;
                self.token.forget(&id);
                spki
            }
            Err(e) => {
                let _ = self.destroy(&Self::handle_of(&id));
                return Err(e);
            }
        };
        Ok(Some((
            Self::handle_of(&id),
            PublicKey::from_spki_der("PublicKey", &spki)?,
        )))
    }

    fn unwrap_import(
        &self,
        wrapping_handle: &[u8],
        alg: EncryptionAlgorithm,
        spec: KeySpec,
        wrapped: &[u8],
        label: &str,
    ) -> Result<ImportedMaterial, KmsError> {
        let wrapping_id = id_of(wrapping_handle)?;
        let key_type = import_key_type(spec)?;
        let id = self.new_id()?;
        // Unwrapped extractable so that its length can be measured by wrapping it under a
        // session key that never leaves the token (SoftHSM reports no CKA_VALUE_LEN for
        // unwrapped keys), then made non-extractable before anything else can use it.
        let template = secret_key_template(key_type, label, Some(&id), true);
        let unwrapped = self.token.run_writing_with(
            |s| {
                let wrapping = self.token.find(s, ObjectClass::PRIVATE_KEY, &wrapping_id)?;
                let object = s.unwrap_key(&oaep(alg), wrapping, wrapped, &template)?;
                let finish = || -> Result<(usize, [u8; 32]), OpError> {
                    let mut len = match s
                        .get_attributes(object, &[AttributeType::ValueLen])?
                        .first()
                    {
                        Some(Attribute::ValueLen(n)) => u64::from(*n) as usize,
                        _ => 0,
                    };
                    if len == 0 {
                        len = measured_len(s, object)?;
                    }
                    s.update_attributes(object, &[Attribute::Extractable(false)])?;
                    match s
                        .get_attributes(object, &[AttributeType::Extractable])?
                        .first()
                    {
                        Some(Attribute::Extractable(false)) => {}
                        _ => return Err(OpError::Missing),
                    }
                    Ok((len, Self::check_value(s, object, spec)?))
                };
                finish().inspect_err(|_| {
                    let _ = s.destroy_object(object);
                })
            },
            |e| match e {
                CkError::Pkcs11(
                    RvError::WrappedKeyInvalid
                    | RvError::WrappedKeyLenRange
                    | RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange
                    | RvError::DataLenRange
                    | RvError::KeySizeRange
                    | RvError::TemplateInconsistent
                    | RvError::AttributeValueInvalid
                    // SoftHSM's answers to a block that does not decode.
                    | RvError::ArgumentsBad
                    | RvError::GeneralError,
                    _,
                ) => Some(KmsError::InvalidKeyMaterial {
                    reason: format!(
                        "EncryptedKeyMaterial does not unwrap with the token's key and {alg}"
                    ),
                }),
                CkError::Pkcs11(RvError::MechanismParamInvalid | RvError::MechanismInvalid, _) => {
                    Some(KmsError::UnsupportedOperation {
                        reason: format!("the token cannot unwrap with {alg}"),
                    })
                }
                _ => None,
            },
        )?;
        Ok(ImportedMaterial {
            handle: Self::handle_of(&id),
            len: unwrapped.0,
            check_value: unwrapped.1,
        })
    }

    fn aead_seal(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), KmsError> {
        let _ = alg; // the object knows its length
        let id = id_of(handle)?;
        let plaintext = Zeroizing::new(buf.get(start..).unwrap_or_default().to_vec());
        let sealed = self.token.run(|s| {
            let key = self.token.find(s, ObjectClass::SECRET_KEY, &id)?;
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            Ok(s.encrypt(&Mechanism::AesGcm(params), key, &plaintext)?)
        })?;
        if let Some(tail) = buf.get_mut(start..) {
            tail.zeroize();
        }
        buf.truncate(start);
        buf.extend_from_slice(&sealed);
        Ok(())
    }

    fn aead_open(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let _ = alg;
        let id = id_of(handle)?;
        let general = AtomicBool::new(false);
        let opened = self.token.run_with(
            |s| {
                let key = self.token.find(s, ObjectClass::SECRET_KEY, &id)?;
                let mut iv = *nonce;
                let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
                Ok(Zeroizing::new(s.decrypt(
                    &Mechanism::AesGcm(params),
                    key,
                    ciphertext_and_tag,
                )?))
            },
            |e| {
                if matches!(e, CkError::Pkcs11(RvError::GeneralError, _)) {
                    general.store(true, Ordering::Relaxed);
                }
                gcm_failed(e).then_some(KmsError::InvalidCiphertext {
                    reason: "authentication failed: the EncryptionContext differs or the blob was altered",
                })
            },
        );
        self.ambiguous_general_error(opened, &general)
    }

    fn sign(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: SigningAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let id = id_of(handle)?;
        let (mechanism, input) = match alg {
            SigningAlgorithm::EcdsaSha256 => (Mechanism::Ecdsa, digest.to_vec()),
            SigningAlgorithm::RsaPssSha256 => (
                Mechanism::RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32u64.into(),
                }),
                digest.to_vec(),
            ),
            SigningAlgorithm::RsaPkcs1Sha256 => (Mechanism::RsaPkcs, der_util::digest_info(digest)),
        };
        let raw = self.token.run(|s| {
            let key = self.token.find(s, ObjectClass::PRIVATE_KEY, &id)?;
            Ok(s.sign(&mechanism, key, &input)?)
        })?;
        match alg {
            SigningAlgorithm::EcdsaSha256 => der_util::ecdsa_der(spec, &raw),
            _ => Ok(raw),
        }
    }

    fn decrypt(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let id = id_of(handle)?;
        let bad = || KmsError::InvalidCiphertext {
            reason: "the ciphertext does not decrypt with this key and algorithm",
        };
        let refused = |e: &CkError| {
            matches!(
                e,
                CkError::Pkcs11(
                    RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::DataLenRange
                        | RvError::DataInvalid
                        | RvError::GeneralError,
                    _
                )
            )
            .then(bad)
        };
        let raw_oaep = alg == EncryptionAlgorithm::RsaesOaepSha256
            && self.no_oaep_sha256.load(Ordering::Relaxed);
        if !raw_oaep {
            let mechanism = oaep(alg);
            let unsupported = AtomicBool::new(false);
            let r = self.token.run_with(
                |s| {
                    let key = self.token.find(s, ObjectClass::PRIVATE_KEY, &id)?;
                    Ok(Zeroizing::new(s.decrypt(&mechanism, key, ciphertext)?))
                },
                |e| {
                    if alg == EncryptionAlgorithm::RsaesOaepSha256
                        && matches!(
                            e,
                            CkError::Pkcs11(
                                RvError::ArgumentsBad | RvError::MechanismParamInvalid,
                                _
                            )
                        )
                    {
                        unsupported.store(true, Ordering::Relaxed);
                        return Some(bad());
                    }
                    refused(e)
                },
            );
            if !unsupported.load(Ordering::Relaxed) {
                return r;
            }
            self.no_oaep_sha256.store(true, Ordering::Relaxed);
        }
        // Raw RSA in the token, OAEP padding removed here.
        let k = match spec {
            KeySpec::Rsa2048 => 256,
            KeySpec::Rsa3072 => 384,
            _ => 512,
        };
        if ciphertext.len() != k {
            return Err(bad());
        }
        let em = self.token.run_with(
            |s| {
                let key = self.token.find(s, ObjectClass::PRIVATE_KEY, &id)?;
                Ok(Zeroizing::new(s.decrypt(
                    &Mechanism::RsaX509,
                    key,
                    ciphertext,
                )?))
            },
            refused,
        )?;
        let mut block = Zeroizing::new(vec![0u8; k.saturating_sub(em.len())]);
        block.extend_from_slice(&em);
        oaep::decode_sha256(&block, k).ok_or_else(bad)
    }

    fn mac(&self, handle: &[u8], message: &[u8]) -> Result<Vec<u8>, KmsError> {
        let id = id_of(handle)?;
        self.token.run(|s| {
            let key = self.token.find(s, ObjectClass::SECRET_KEY, &id)?;
            Ok(s.sign(&Mechanism::Sha256Hmac, key, message)?)
        })
    }

    fn public_key(&self, handle: &[u8], spec: KeySpec) -> Result<PublicKey, KmsError> {
        let cached = self
            .public_keys
            .lock()
            .ok()
            .and_then(|m| m.get(handle).cloned());
        let spki = match cached {
            Some(spki) => spki,
            None => {
                let spki = self.read_public_spki(&id_of(handle)?, spec)?;
                if let Ok(mut m) = self.public_keys.lock() {
                    m.insert(handle.to_vec(), spki.clone());
                }
                spki
            }
        };
        PublicKey::from_spki_der("PublicKey", &spki)
    }

    fn destroy(&self, handle: &[u8]) -> Result<(), KmsError> {
        let id = id_of(handle)?;
        if let Ok(mut m) = self.public_keys.lock() {
            m.remove(handle);
        }
        self.token.run_writing(|s| {
            for object in s.find_objects(&[Attribute::Token(true), Attribute::Id(id.clone())])? {
                s.destroy_object(object)?;
            }
            Ok(())
        })?;
        self.token.forget(&id);
        Ok(())
    }
}

/// A root key held in a PKCS#11 token: a non-extractable AES-256 key that seals the engine's
/// keyring ([`kms_core::RootSeal::Provider`]).
#[derive(Clone)]
pub struct Pkcs11RootKey {
    token: Arc<Token>,
    label: String,
}

impl fmt::Debug for Pkcs11RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The default label of the root key object.
pub const ROOT_KEY_LABEL: &str = "kms-root";

impl Pkcs11RootKey {
    /// The root key labelled `label` in the token, made there (AES-256, sensitive,
    /// non-extractable, usable only to encrypt and decrypt) when `create` and it does not
    /// exist yet.
    ///
    /// Errors: `InvalidParameter` (`Pkcs11RootKey`) when it is absent and not to be made, or
    /// when the label names more than one key; `KeyProviderUnavailable` for token errors.
    pub fn open(token: Arc<Token>, label: &str, create: bool) -> Result<Self, KmsError> {
        let found = token.run(|s| Ok(s.find_objects(&root_key_query(label))?.len()))?;
        match (found, create) {
            (1, _) => {}
            (0, true) => {
                token.run_writing(|s| {
                    let mut t = secret_key_template(KeyType::AES, label, None, false);
                    t.push(Attribute::ValueLen(32u64.into()));
                    s.generate_key(&Mechanism::AesKeyGen, &t)?;
                    Ok(())
                })?;
            }
            (0, false) => {
                return Err(KmsError::invalid(
                    "Pkcs11RootKey",
                    format!(
                        "the token {} has no root key labelled {label:?}",
                        token.label()
                    ),
                ))
            }
            (n, _) => {
                return Err(KmsError::invalid(
                    "Pkcs11RootKey",
                    format!(
                        "the token {} has {n} AES keys labelled {label:?}; a root key must be one",
                        token.label()
                    ),
                ))
            }
        }
        Ok(Pkcs11RootKey {
            token,
            label: label.to_owned(),
        })
    }

    fn key(&self, s: &Session) -> cryptoki::error::Result<Option<ObjectHandle>> {
        Ok(s.find_objects(&root_key_query(&self.label))?
            .first()
            .copied())
    }
}

impl RootKeyProvider for Pkcs11RootKey {
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.token.run(|s| {
            let key = self.key(s)?.ok_or(token::Missing)?;
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            Ok(s.encrypt(&Mechanism::AesGcm(params), key, plaintext)?)
        })
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.token.run_with(
            |s| {
                let key = self.key(s)?.ok_or(token::Missing)?;
                let mut iv = *nonce;
                let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
                Ok(Zeroizing::new(s.decrypt(
                    &Mechanism::AesGcm(params),
                    key,
                    ciphertext_and_tag,
                )?))
            },
            |e| {
                gcm_failed(e).then_some(KmsError::InvalidCiphertext {
                    reason: "the keyring does not authenticate under the token's root key",
                })
            },
        )
    }

    fn describe(&self) -> String {
        format!(
            "the PKCS#11 token {}'s key {}",
            self.token.label(),
            self.label
        )
    }
}
