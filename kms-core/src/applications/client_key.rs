//! Client keys: the RSA key pair an application authenticates to the instance gateway with.
//!
//! As Alibaba's, the private key leaves the engine exactly once, as a PKCS#12 file protected
//! by the caller's password (PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC; HMAC-SHA256 MAC),
//! holding the key and a self-signed certificate of it for the validity window. The engine
//! keeps only the certificate (the public key). `p12-keystore` writes the file: a maintained PKCS#12 writer on
//! the RustCrypto crates the engine already uses (der, pkcs8, pkcs5), so both crypto providers
//! share it and nothing in it compiles C.

use base64::Engine;

use crate::crypto::asym::PrivateKey;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::keys::model::KeySpec;
use crate::time::UnixTime;

/// The one client key algorithm: `RSA_2048`.
pub const KEY_ALGORITHM: &str = "RSA_2048";

/// A new client key: the PKCS#12 file for the caller and the public key to keep.
pub(crate) struct MadeClientKey {
    pub(crate) pkcs12_base64: String,
    pub(crate) certificate_pem: String,
}

fn p12_err(e: impl std::fmt::Display) -> KmsError {
    KmsError::internal(format!("the client key file cannot be written: {e}"))
}

/// Makes a key pair for client key `id` and its PKCS#12 file under `password`.
pub(crate) fn generate(
    kms: &Kms,
    id: &str,
    password: &str,
    not_before: UnixTime,
    not_after: UnixTime,
) -> Result<MadeClientKey, KmsError> {
    let (key, pkcs8) = PrivateKey::generate(kms.crypto, KeySpec::Rsa2048, &*kms.rng)?;
    let mut serial = [0u8; 16];
    kms.rng.fill(&mut serial)?;
    // Positive, and not starting with a zero byte.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let cert_der = crate::certificates::x509::self_signed_certificate(
        &key, id, not_before, not_after, &serial,
    )?;
    let certificate_pem =
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert_der)
            .map_err(p12_err)?;
    let cert = p12_keystore::Certificate::from_der(&cert_der).map_err(p12_err)?;
    let p12_key = p12_keystore::PrivateKey::from_der(pkcs8.expose()).map_err(p12_err)?;
    let chain = p12_keystore::PrivateKeyChain::new(serial.to_vec(), p12_key, [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(id, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let file = store
        .writer(password)
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .write()
        .map_err(p12_err)?;
    Ok(MadeClientKey {
        pkcs12_base64: base64::engine::general_purpose::STANDARD.encode(file),
        certificate_pem,
    })
}
