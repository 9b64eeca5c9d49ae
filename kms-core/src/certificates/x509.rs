//! X.509 for the certificate manager: subjects (RFC 2253/4514 distinguished names), PKCS#10
//! requests signed by the certificate's key, and parsing of uploaded certificates and chains.
//! Everything here takes untrusted text and answers with an error, never a panic.

use std::str::FromStr;

use der::{Decode, Encode, EncodePem};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::Builder;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::ext::pkix::{SubjectAltName, SubjectKeyIdentifier};
use x509_cert::name::Name;
use x509_cert::request::RequestBuilder;
use x509_cert::Certificate;

use crate::crypto::asym::{PrivateKey, SigningAlgorithm};
use crate::error::KmsError;
use crate::time::UnixTime;

/// Most SubjectAlternativeNames on one certificate.
pub const MAX_SANS: usize = 10;

/// Parses an RFC 2253 subject and checks it names CN, C, O and OU.
///
/// Errors: `InvalidParameter` naming `Subject`.
pub fn parse_subject(subject: &str) -> Result<Name, KmsError> {
    if subject.trim().is_empty() {
        return Err(KmsError::missing("Subject"));
    }
    let name = Name::from_str(subject).map_err(|e| {
        KmsError::invalid(
            "Subject",
            format!("is not an RFC 2253 distinguished name: {e}"),
        )
    })?;
    // A required attribute with an empty (or blank) value is as good as missing; X.520
    // strings are at least one character.
    let text = |r: der::Result<Option<DirectoryString>>| {
        r.ok()
            .flatten()
            .map(|v| v.value().trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let country = name.country().ok().flatten().map(|c| c.as_str().to_owned());
    let missing: Vec<&str> = [
        ("CN", text(name.common_name()).is_some()),
        (
            "C",
            country.as_deref().is_some_and(|c| !c.trim().is_empty()),
        ),
        ("O", text(name.organization()).is_some()),
        ("OU", text(name.organization_unit()).is_some()),
    ]
    .iter()
    .filter(|(_, ok)| !ok)
    .map(|(n, _)| *n)
    .collect();
    if !missing.is_empty() {
        return Err(KmsError::invalid(
            "Subject",
            format!("must name CN, C, O and OU; missing {}", missing.join(", ")),
        ));
    }
    // countryName is a two-letter code (X.520: PrintableString (SIZE (2))).
    if let Some(c) = country.filter(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(KmsError::invalid(
            "Subject",
            format!("C must be a two-letter country code, got {c:?}"),
        ));
    }
    Ok(name)
}

/// Checks a DNS name: labels of letters, digits and hyphens, optionally a leading `*.`.
fn valid_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && name.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// Checks SubjectAlternativeNames: at most 10 DNS names.
///
/// Errors: `InvalidParameter` naming `SubjectAlternativeNames`.
pub fn check_sans(sans: &[String]) -> Result<(), KmsError> {
    if sans.len() > MAX_SANS {
        return Err(KmsError::invalid(
            "SubjectAlternativeNames",
            format!("at most {MAX_SANS} names are allowed, got {}", sans.len()),
        ));
    }
    if let Some(bad) = sans.iter().find(|s| !valid_dns_name(s)) {
        return Err(KmsError::invalid(
            "SubjectAlternativeNames",
            format!("{bad:?} is not a DNS name"),
        ));
    }
    Ok(())
}

fn x509_err(e: impl std::fmt::Display) -> KmsError {
    KmsError::internal(format!("building the certificate request failed: {e}"))
}

/// The public half of a key as x509-cert's builder asks for it: the DER SubjectPublicKeyInfo.
#[derive(Clone)]
struct SpkiDer(Vec<u8>);

impl spki::EncodePublicKey for SpkiDer {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        der::Document::try_from(self.0.clone()).map_err(spki::Error::from)
    }
}

/// What x509-cert's builder needs of a signer (the public key and the signature algorithm);
/// the signature itself is made by the crypto provider over the digest of the finalized
/// request, so any provider signs certificates.
struct ProviderSigner {
    spki: SpkiDer,
    rsa: bool,
}

impl ProviderSigner {
    fn new(key: &PrivateKey) -> Result<Self, KmsError> {
        Ok(ProviderSigner {
            spki: SpkiDer(key.public_key_der()?),
            rsa: key.is_rsa(),
        })
    }
}

impl signature::Keypair for ProviderSigner {
    type VerifyingKey = SpkiDer;

    fn verifying_key(&self) -> SpkiDer {
        self.spki.clone()
    }
}

/// sha256WithRSAEncryption (RFC 4055; parameters NULL).
const SHA256_WITH_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// ecdsa-with-SHA256 (RFC 5758; no parameters).
const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

impl spki::DynSignatureAlgorithmIdentifier for ProviderSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<spki::AlgorithmIdentifierOwned> {
        Ok(if self.rsa {
            spki::AlgorithmIdentifierOwned {
                oid: SHA256_WITH_RSA,
                parameters: Some(der::asn1::Null.into()),
            }
        } else {
            spki::AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            }
        })
    }
}

/// A PKCS#10 request (PEM) for `subject` and `sans`, signed by `key` (SHA-256).
pub(crate) fn build_csr(
    key: &PrivateKey,
    subject: Name,
    sans: &[String],
) -> Result<String, KmsError> {
    let mut builder = RequestBuilder::new(subject).map_err(x509_err)?;
    if !sans.is_empty() {
        let names = sans
            .iter()
            .map(|s| {
                der::asn1::Ia5String::new(s)
                    .map(GeneralName::DnsName)
                    .map_err(|_| KmsError::invalid("SubjectAlternativeNames", "must be ASCII"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        builder
            .add_extension(&SubjectAltName(names))
            .map_err(x509_err)?;
    }
    let signer = ProviderSigner::new(key)?;
    let tbs = builder.finalize(&signer).map_err(x509_err)?;
    let bits = provider_signature(key, &tbs)?;
    let req = builder.assemble(bits, &signer).map_err(x509_err)?;
    req.to_pem(der::pem::LineEnding::LF).map_err(x509_err)
}

/// The signature (SHA-256 with RSA PKCS#1 v1.5, or ECDSA) of a finalized to-be-signed
/// structure, made by the key's crypto provider.
fn provider_signature(key: &PrivateKey, tbs: &[u8]) -> Result<der::asn1::BitString, KmsError> {
    let digest: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(tbs).into()
    };
    let alg = if key.is_rsa() {
        SigningAlgorithm::RsaPkcs1Sha256
    } else {
        SigningAlgorithm::EcdsaSha256
    };
    let signature = key.sign(alg, &digest)?;
    der::asn1::BitString::from_bytes(&signature).map_err(x509_err)
}

/// A self-signed profile: issuer = subject, no extensions.
struct SelfSigned(Name);

impl x509_cert::builder::profile::BuilderProfile for SelfSigned {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.0.clone()
    }

    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        Ok(Vec::new())
    }
}

fn x509_time(t: UnixTime) -> Result<x509_cert::time::Time, KmsError> {
    let secs = u64::try_from(t.secs()).map_err(|_| KmsError::internal("a time before 1970"))?;
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(x509_cert::time::Time::from)
        .map_err(x509_err)
}

/// A self-signed X.509 certificate (DER) of `key` for `common_name`, valid from `not_before`
/// to `not_after`, with the serial number `serial` (big-endian, positive).
pub(crate) fn self_signed_certificate(
    key: &PrivateKey,
    common_name: &str,
    not_before: UnixTime,
    not_after: UnixTime,
    serial: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let subject = Name::from_str(&format!("CN={common_name}")).map_err(x509_err)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?).map_err(x509_err)?;
    let validity = x509_cert::time::Validity::new(x509_time(not_before)?, x509_time(not_after)?);
    let serial = x509_cert::serial_number::SerialNumber::new(serial).map_err(x509_err)?;
    let mut builder =
        x509_cert::builder::CertificateBuilder::new(SelfSigned(subject), serial, validity, spki)
            .map_err(x509_err)?;
    let signer = ProviderSigner::new(key)?;
    let tbs = builder.finalize(&signer).map_err(x509_err)?;
    let bits = provider_signature(key, &tbs)?;
    let cert = builder.assemble(bits, &signer).map_err(x509_err)?;
    cert.to_der().map_err(x509_err)
}

/// What DescribeCertificate tells about an uploaded certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertificateInfo {
    /// Subject (RFC 4514).
    pub subject: String,
    /// Issuer (RFC 4514).
    pub issuer: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
    /// Signature algorithm (e.g. `SHA256withRSA`).
    pub signature_algorithm: String,
    /// Subject key identifier, upper-case hex (from the extension, or computed).
    pub subject_key_identifier: String,
    /// DNS SubjectAlternativeNames.
    pub subject_alternative_names: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn signature_algorithm_name(oid: &der::oid::ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.11" => "SHA256withRSA".into(),
        "1.2.840.113549.1.1.12" => "SHA384withRSA".into(),
        "1.2.840.113549.1.1.13" => "SHA512withRSA".into(),
        "1.2.840.113549.1.1.5" => "SHA1withRSA".into(),
        "1.2.840.113549.1.1.10" => "SHA256withRSA/PSS".into(),
        "1.2.840.10045.4.3.2" => "SHA256withECDSA".into(),
        "1.2.840.10045.4.3.3" => "SHA384withECDSA".into(),
        "1.2.840.10045.4.3.4" => "SHA512withECDSA".into(),
        other => other.to_owned(),
    }
}

fn bad_pem(param: &'static str) -> KmsError {
    KmsError::invalid(param, "is not a PEM X.509 certificate")
}

/// The PEM blocks of `text` re-wrapped as RFC 7468's strict grammar wants them (64-column
/// lines, no blanks), for PEM that lax writers make and openssl reads: 76-column (MIME) or
/// unwrapped lines, trailing spaces. `None` when there is no complete BEGIN..END block.
fn lax_pem(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut body: Option<String> = None;
    let mut blocks = 0;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") && line.ends_with("-----") {
            out.push_str(line);
            out.push('\n');
            body = Some(String::new());
        } else if line.starts_with("-----END ") && line.ends_with("-----") {
            let b = body.take()?;
            if !b.is_ascii() {
                return None;
            }
            for chunk in b.as_bytes().chunks(64) {
                out.push_str(std::str::from_utf8(chunk).ok()?);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
            blocks += 1;
        } else if let Some(b) = body.as_mut() {
            b.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
    }
    (blocks > 0 && body.is_none()).then_some(out)
}

/// Parses one PEM certificate.
///
/// Errors: `InvalidParameter` naming `param`.
pub fn parse_certificate(param: &'static str, pem: &str) -> Result<Certificate, KmsError> {
    use der::DecodePem;
    Certificate::from_pem(pem.trim().as_bytes())
        .ok()
        .or_else(|| Certificate::from_pem(lax_pem(pem)?.as_bytes()).ok())
        .ok_or_else(|| bad_pem(param))
}

/// Parses a PEM chain (one or more certificates; empty text is an empty chain).
///
/// Errors: `InvalidParameter` naming `CertificateChain`.
pub fn parse_chain(pem: &str) -> Result<Vec<Certificate>, KmsError> {
    if pem.trim().is_empty() {
        return Ok(Vec::new());
    }
    Certificate::load_pem_chain(pem.trim().as_bytes())
        .ok()
        .or_else(|| Certificate::load_pem_chain(lax_pem(pem)?.as_bytes()).ok())
        .filter(|chain| !chain.is_empty())
        .ok_or_else(|| bad_pem("CertificateChain"))
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn public_key_der(cert: &Certificate) -> Result<Vec<u8>, KmsError> {
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| KmsError::invalid("Certificate", "has a malformed public key"))
}

/// The serial number's value without the DER sign octet: `00 80` is the number 0x80, shown
/// as `80` (as `openssl x509 -serial` does).
fn serial_magnitude(der: &[u8]) -> &[u8] {
    match der {
        [0, rest @ ..] if rest.first().is_some_and(|b| b & 0x80 != 0) => rest,
        other => other,
    }
}

/// Extracts what DescribeCertificate shows.
pub fn describe(cert: &Certificate) -> Result<CertificateInfo, KmsError> {
    let tbs = cert.tbs_certificate();
    let mut ski = None;
    let mut sans = Vec::new();
    for ext in tbs.extensions().into_iter().flatten() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == der::oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER {
            if let Ok(id) = SubjectKeyIdentifier::from_der(value) {
                ski = Some(hex(id.0.as_bytes()));
            }
        } else if ext.extn_id == der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            if let Ok(names) = SubjectAltName::from_der(value) {
                sans.extend(names.0.iter().filter_map(|n| match n {
                    GeneralName::DnsName(d) => Some(d.to_string()),
                    _ => None,
                }));
            }
        }
    }
    let ski = match ski {
        Some(s) => s,
        None => {
            let spki: &SubjectPublicKeyInfoOwned = tbs.subject_public_key_info();
            let bits = spki.subject_public_key.raw_bytes();
            use sha1::Digest;
            hex(&sha1::Sha1::digest(bits))
        }
    };
    let secs = |t: x509_cert::time::Time| {
        UnixTime(i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX))
    };
    Ok(CertificateInfo {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: hex(serial_magnitude(tbs.serial_number().as_bytes())),
        not_before: secs(tbs.validity().not_before),
        not_after: secs(tbs.validity().not_after),
        signature_algorithm: signature_algorithm_name(&cert.signature_algorithm().oid),
        subject_key_identifier: ski,
        subject_alternative_names: sans,
    })
}

/// The PEM of a certificate.
pub fn to_pem(cert: &Certificate) -> Result<String, KmsError> {
    cert.to_pem(der::pem::LineEnding::LF)
        .map_err(|_| KmsError::internal("encoding a certificate failed"))
}

/// The SPKI DER of a private key's public half, for matching against a certificate.
pub(crate) fn key_spki_der(key: &PrivateKey) -> Result<Vec<u8>, KmsError> {
    key.public_key_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_need_cn_c_o_and_ou() {
        assert!(parse_subject("CN=example.com,OU=IT,O=Acme,C=CN").is_ok());
        assert!(parse_subject("CN=a\\,b,OU=IT,O=Acme\\, Inc.,C=CN,L=Hangzhou,ST=ZJ").is_ok());
        let e = parse_subject("CN=example.com,O=Acme,C=CN").unwrap_err();
        assert!(e.to_string().contains("OU"), "{e}");
        assert_eq!(parse_subject("").unwrap_err().code(), "MissingParameter");
        assert_eq!(
            parse_subject("not a dn").unwrap_err().code(),
            "InvalidParameter"
        );
        assert_eq!(parse_subject("CN=").unwrap_err().code(), "InvalidParameter");
    }

    #[test]
    fn sans_are_at_most_ten_dns_names() {
        assert!(check_sans(&["a.example.com".into(), "*.example.com".into()]).is_ok());
        let eleven: Vec<String> = (0..11).map(|i| format!("h{i}.example.com")).collect();
        assert!(check_sans(&eleven).is_err());
        for bad in ["", "-a.com", "a..com", "a b.com", "*", "ü.com"] {
            assert!(check_sans(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_pem_is_invalid_parameter() {
        for bad in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(
                parse_certificate("Certificate", bad).unwrap_err().code(),
                "InvalidParameter"
            );
        }
        assert!(parse_chain("").unwrap().is_empty());
        assert!(parse_chain("junk").is_err());
    }
}
