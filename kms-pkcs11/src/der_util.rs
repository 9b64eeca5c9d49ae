//! The DER the token's raw answers need: SubjectPublicKeyInfo from modulus and exponent or
//! from an EC point, DigestInfo for PKCS#1 v1.5 signatures, and ECDSA `r || s` as DER.

use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use kms_core::api::KeySpec;
use kms_core::KmsError;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");

/// The DER `CKA_EC_PARAMS` (the named curve's OID) of an EC spec.
pub(crate) fn curve_params(spec: KeySpec) -> &'static [u8] {
    match spec {
        KeySpec::EcP256K => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        _ => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    }
}

fn malformed(what: &str) -> KmsError {
    KmsError::internal(format!("the token reported a malformed {what}"))
}

fn spki(algorithm: AlgorithmIdentifierOwned, key: &[u8]) -> Result<Vec<u8>, KmsError> {
    SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(key).map_err(|_| malformed("public key"))?,
    }
    .to_der()
    .map_err(|_| malformed("public key"))
}

/// SubjectPublicKeyInfo of an RSA key.
pub(crate) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, KmsError> {
    let key = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(modulus).map_err(|_| malformed("RSA modulus"))?,
        public_exponent: pkcs1::UintRef::new(exponent).map_err(|_| malformed("RSA exponent"))?,
    }
    .to_der()
    .map_err(|_| malformed("RSA public key"))?;
    spki(
        AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        &key,
    )
}

/// SubjectPublicKeyInfo of an EC key from `CKA_EC_POINT` (a DER OCTET STRING holding the
/// uncompressed point; some modules give the bare point).
pub(crate) fn ec_spki(spec: KeySpec, ec_point: &[u8]) -> Result<Vec<u8>, KmsError> {
    let point = match OctetString::from_der(ec_point) {
        Ok(o) => o.as_bytes().to_vec(),
        Err(_) => ec_point.to_vec(),
    };
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err(malformed("EC point"));
    }
    let curve = if spec == KeySpec::EcP256K {
        SECP256K1
    } else {
        P256
    };
    spki(
        AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(curve.into()),
        },
        &point,
    )
}

/// The DigestInfo of a SHA-256 digest (RFC 8017, section 9.2, note 1).
pub(crate) fn digest_info(digest: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(digest);
    out
}

/// An ECDSA signature `r || s` from the token as ASN.1 DER, low-S for secp256k1 as the
/// engine's software keys sign.
pub(crate) fn ecdsa_der(spec: KeySpec, raw: &[u8]) -> Result<Vec<u8>, KmsError> {
    match spec {
        KeySpec::EcP256K => {
            let sig =
                k256::ecdsa::Signature::from_slice(raw).map_err(|_| malformed("signature"))?;
            let sig = sig.normalize_s();
            Ok(sig.to_der().as_bytes().to_vec())
        }
        _ => {
            let sig =
                p256::ecdsa::Signature::from_slice(raw).map_err(|_| malformed("signature"))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
    }
}
