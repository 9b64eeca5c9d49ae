#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! The certificate manager (docs/operations.md and docs/states.md, "Certificates"):
//! CreateCertificate and its PKCS#10 request, UploadCertificate of a certificate issued by a test
//! CA made with openssl, GetCertificate and DescribeCertificate against what openssl reads from the
//! same files, refusal of certificates for other keys and of malformed input (never a panic),
//! status rules, CertificatePrivateKeySign / CertificatePublicKeyVerify checked with openssl,
//! CertificatePublicKeyEncrypt / CertificatePrivateKeyDecrypt with openssl ciphertexts,
//! DeleteCertificate, tags through TagResource / UntagResource, sealed storage, and decoding of
//! Alibaba-style wire requests.
//!
//! The `openssl` command line is the independent implementation: a test that needs it fails
//! with a clear message when it is missing, never passes silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::*;
use kms_core::api::*;
use kms_core::KmsError;
use serde_json::json;
use sha2::Digest;

const PSS: &str = "RSA_PSS_SHA_256";
const PKCS1: &str = "RSA_PKCS1_SHA_256";
const ECDSA: &str = "ECDSA_SHA_256";
const OAEP1: &str = "RSAES_OAEP_SHA_1";
const OAEP256: &str = "RSAES_OAEP_SHA_256";

const SUBJECT: &str = "CN=www.example.com,OU=Security,O=Acme Ltd,C=CN";
const SPECS: [&str; 3] = ["RSA_2048", "EC_P256", "EC_P256K"];
const NO_SUCH_CERT: &str = "00000000-0000-4000-8000-000000000000";

// ---- openssl ---------------------------------------------------------------------------------

/// The `openssl` command line; fails the test (never skips it) when it is not installed.
fn openssl() -> Command {
    let found = Command::new("sh")
        .args(["-c", "command -v openssl"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the `openssl` command line tool is required by the certificate tests (it is the \
         independent implementation they check against) but was not found on PATH; install \
         it (e.g. `apt-get install openssl`)"
    );
    Command::new("openssl")
}

/// Runs `openssl args...` in `dir`, asserting success; returns stdout.
#[track_caller]
fn run_openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = openssl().current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `openssl args...` in `dir` as text, asserting success.
#[track_caller]
fn openssl_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(run_openssl(dir, args)).unwrap()
}

/// Runs `openssl args...` in `dir`; whether it succeeded, and its combined output.
fn try_openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = openssl().current_dir(dir).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A test certificate authority made with openssl, in its own directory.
struct Ca {
    dir: tempfile::TempDir,
    /// `rsa` or `ec`.
    kind: &'static str,
}

impl Ca {
    /// A self-signed RSA-2048 CA (`openssl req -x509 -newkey rsa:2048 -nodes`).
    fn rsa() -> Ca {
        let dir = tempfile::tempdir().unwrap();
        run_openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "365",
                "-sha256",
                "-subj",
                "/C=CN/O=Test CA Org/OU=PKI/CN=Test Root CA",
            ],
        );
        Ca { dir, kind: "rsa" }
    }

    /// A self-signed P-256 CA (`openssl ecparam` + `openssl req -x509`).
    fn ec() -> Ca {
        let dir = tempfile::tempdir().unwrap();
        run_openssl(
            dir.path(),
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ca.key",
            ],
        );
        run_openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "365",
                "-sha256",
                "-subj",
                "/C=US/O=EC Test CA/OU=PKI/CN=Test EC Root",
            ],
        );
        Ca { dir, kind: "ec" }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.file(name), data).unwrap();
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap()
    }

    /// The CA certificate (PEM).
    fn pem(&self) -> String {
        self.read("ca.pem")
    }

    /// Issues a certificate for a PKCS#10 request with
    /// `openssl x509 -req -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -copy_extensions copy`
    /// plus `extra` arguments; returns the certificate PEM (also left in `<name>.pem`).
    fn issue_with(&self, name: &str, csr_pem: &str, extra: &[&str]) -> String {
        let req = format!("{name}.csr");
        let out = format!("{name}.pem");
        self.write(&req, csr_pem);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &req,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-copy_extensions",
            "copy",
            "-out",
            &out,
        ];
        args.extend_from_slice(extra);
        run_openssl(self.path(), &args);
        self.read(&out)
    }

    fn issue(&self, name: &str, csr_pem: &str) -> String {
        self.issue_with(name, csr_pem, &[])
    }

    /// A request for a key openssl makes itself (`<name>.key`), for `subject` in openssl's
    /// slash form, signed by that key.
    fn foreign_csr(&self, name: &str, algorithm: &str, subject: &str) -> String {
        let key = format!("{name}.key");
        let req = format!("{name}.csr");
        let mut args = vec!["genpkey", "-out", &key, "-algorithm"];
        match algorithm {
            "rsa" => args.extend(["RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
            _ => args.extend(["EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        }
        run_openssl(self.path(), &args);
        run_openssl(
            self.path(),
            &["req", "-new", "-key", &key, "-subj", subject, "-out", &req],
        );
        self.read(&req)
    }
}

/// `openssl x509 -noout <flag> -nameopt RFC2253` of a certificate file, without `prefix=`.
fn x509_field(dir: &Path, cert_file: &str, flag: &str) -> String {
    let out = openssl_text(
        dir,
        &[
            "x509", "-in", cert_file, "-noout", flag, "-nameopt", "RFC2253",
        ],
    );
    let line = out.trim();
    match line.split_once('=') {
        Some((_, v)) => v.trim().to_owned(),
        None => panic!("unexpected openssl output for {flag}: {out}"),
    }
}

/// openssl's `notBefore=Jan  5 08:00:00 2027 GMT` as ISO 8601 (`2027-01-05T08:00:00Z`).
fn openssl_date_to_iso(text: &str) -> String {
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "unexpected openssl date {text:?}");
    assert_eq!(parts[4], "GMT", "{text}");
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[0])
    .unwrap()
        + 1;
    let day: u32 = parts[1].parse().unwrap();
    format!("{}-{month:02}-{day:02}T{}Z", parts[3], parts[2])
}

/// The hex digits of openssl's colon-separated `AB:CD:...` output, upper-case.
fn colon_hex(s: &str) -> String {
    s.trim().replace(':', "").to_ascii_uppercase()
}

/// The DER inside one PEM block, checking the armour label.
fn pem_body(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .unwrap_or_else(|| panic!("no {begin}: {pem}"))
        + begin.len();
    let stop = pem.find(&end).unwrap_or_else(|| panic!("no {end}: {pem}"));
    let body: String = pem[start..stop].split_whitespace().collect();
    b64d(&body)
}

/// Compares two PEM texts ignoring line endings and surrounding whitespace.
fn same_pem(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    norm(a) == norm(b)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64d(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn sha256(msg: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(msg).to_vec()
}

// ---- engine helpers --------------------------------------------------------------------------

fn sans(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn id_req(id: &str) -> CertificateIdRequest {
    CertificateIdRequest {
        certificate_id: id.into(),
    }
}

fn try_create(
    env: &Env,
    subject: &str,
    names: &[&str],
    spec: Option<&str>,
) -> Result<CreateCertificateResponse, KmsError> {
    env.kms.create_certificate(
        &env.me,
        CreateCertificateRequest {
            subject: subject.into(),
            subject_alternative_names: sans(names),
            key_spec: spec.map(str::to_owned),
            exportable_private_key: None,
        },
    )
}

fn create(env: &Env, spec: &str) -> CreateCertificateResponse {
    try_create(
        env,
        SUBJECT,
        &["www.example.com", "api.example.com"],
        Some(spec),
    )
    .unwrap()
}

fn describe(env: &Env, id: &str) -> DescribeCertificateResponse {
    env.kms.describe_certificate(&env.me, id_req(id)).unwrap()
}

fn get(env: &Env, id: &str) -> GetCertificateResponse {
    env.kms.get_certificate(&env.me, id_req(id)).unwrap()
}

fn status(env: &Env, id: &str) -> String {
    describe(env, id).status
}

fn upload(env: &Env, id: &str, cert: &str, chain: Option<&str>) -> Result<EmptyResponse, KmsError> {
    env.kms.upload_certificate(
        &env.me,
        UploadCertificateRequest {
            certificate_id: id.into(),
            certificate: cert.into(),
            certificate_chain: chain.map(str::to_owned),
        },
    )
}

fn set_status(env: &Env, id: &str, status: &str) -> Result<EmptyResponse, KmsError> {
    env.kms.update_certificate_status(
        &env.me,
        UpdateCertificateStatusRequest {
            certificate_id: id.into(),
            status: status.into(),
        },
    )
}

fn sign(
    env: &Env,
    id: &str,
    alg: &str,
    msg: &[u8],
    message_type: Option<&str>,
) -> Result<Vec<u8>, KmsError> {
    env.kms
        .certificate_private_key_sign(
            &env.me,
            CertificatePrivateKeySignRequest {
                certificate_id: id.into(),
                algorithm: alg.into(),
                message: msg.to_vec(),
                message_type: message_type.map(str::to_owned),
            },
        )
        .map(|r| r.signature_value)
}

fn verify(
    env: &Env,
    id: &str,
    alg: &str,
    msg: &[u8],
    message_type: Option<&str>,
    sig: &[u8],
) -> Result<bool, KmsError> {
    env.kms
        .certificate_public_key_verify(
            &env.me,
            CertificatePublicKeyVerifyRequest {
                certificate_id: id.into(),
                algorithm: alg.into(),
                message: msg.to_vec(),
                message_type: message_type.map(str::to_owned),
                signature_value: sig.to_vec(),
            },
        )
        .map(|r| r.signature_valid)
}

fn encrypt(env: &Env, id: &str, alg: &str, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
    env.kms
        .certificate_public_key_encrypt(
            &env.me,
            CertificatePublicKeyEncryptRequest {
                certificate_id: id.into(),
                algorithm: alg.into(),
                plaintext: plaintext.to_vec().into(),
            },
        )
        .map(|r| r.ciphertext_blob)
}

fn decrypt(env: &Env, id: &str, alg: &str, ciphertext: &[u8]) -> Result<Vec<u8>, KmsError> {
    env.kms
        .certificate_private_key_decrypt(
            &env.me,
            CertificatePrivateKeyDecryptRequest {
                certificate_id: id.into(),
                algorithm: alg.into(),
                ciphertext_blob: ciphertext.to_vec(),
            },
        )
        .map(|r| r.plaintext.to_vec())
}

fn tag_cert(env: &Env, id: &str, tags: &[(&str, &str)]) -> Result<EmptyResponse, KmsError> {
    env.kms.tag_resource(
        &env.me,
        TagResourceRequest {
            certificate_id: id.into(),
            tags: tag_list(tags),
            ..Default::default()
        },
    )
}

fn untag_cert(env: &Env, id: &str, keys: &[&str]) -> Result<EmptyResponse, KmsError> {
    env.kms.untag_resource(
        &env.me,
        UntagResourceRequest {
            certificate_id: id.into(),
            tag_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..Default::default()
        },
    )
}

fn cert_tags(env: &Env, id: &str) -> Vec<(String, String)> {
    describe(env, id)
        .tags
        .tag
        .into_iter()
        .map(|t| (t.tag_key, t.tag_value))
        .collect()
}

/// A certificate of `spec` issued by `ca` and uploaded: (CertificateId, certificate PEM).
fn active(env: &Env, ca: &Ca, spec: &str) -> (String, String) {
    let created = create(env, spec);
    let cert = ca.issue(&created.certificate_id, &created.csr);
    upload(env, &created.certificate_id, &cert, Some(&ca.pem())).unwrap();
    assert_eq!(status(env, &created.certificate_id), "ACTIVE");
    (created.certificate_id, cert)
}

/// The algorithms that apply to a key spec.
fn sign_algorithms(spec: &str) -> &'static [&'static str] {
    if spec.starts_with("RSA") {
        &[PKCS1, PSS]
    } else {
        &[ECDSA]
    }
}

// ---- CreateCertificate -----------------------------------------------------------------------

#[test]
fn create_certificate_makes_a_pending_csr_that_openssl_verifies_with_subject_and_sans() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = ["www.example.com", "*.api.example.com", "example-1.org"];
    for spec in SPECS {
        let created = try_create(&env, SUBJECT, &names, Some(spec)).unwrap();
        let id = &created.certificate_id;
        assert!(
            kms_core::internal::ids::is_uuid(id),
            "CertificateId {id} is a UUID"
        );
        assert_eq!(
            created.arn,
            format!("acs:kms:{REGION}:{ACCOUNT}:certificate/{id}")
        );
        assert!(!created.request_id.is_empty());
        assert!(
            created
                .csr
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"),
            "{}",
            created.csr
        );

        let csr_file = format!("{spec}.csr");
        std::fs::write(d.join(&csr_file), &created.csr).unwrap();
        // The request's signature verifies (made by the certificate's own key).
        let (ok, out) = try_openssl(d, &["req", "-in", &csr_file, "-verify", "-noout"]);
        assert!(ok, "openssl req -verify rejected the {spec} CSR: {out}");
        assert!(
            out.contains("verify OK")
                || out.contains("Certificate request self-signature verify OK"),
            "{spec}: {out}"
        );

        // Subject (RFC 2253 order kept: CN first in the string, C first in the DER).
        let subject = openssl_text(
            d,
            &[
                "req", "-in", &csr_file, "-noout", "-subject", "-nameopt", "RFC2253",
            ],
        );
        assert_eq!(subject.trim(), format!("subject={SUBJECT}"), "{spec}");
        let text = openssl_text(d, &["req", "-in", &csr_file, "-noout", "-text"]);
        for part in [
            "CN = www.example.com",
            "OU = Security",
            "O = Acme Ltd",
            "C = CN",
        ] {
            assert!(text.contains(part), "{spec}: {part} missing in\n{text}");
        }
        assert!(
            text.contains("Subject: C = CN, O = Acme Ltd, OU = Security, CN = www.example.com"),
            "{spec}: the DER order of the subject is not C, O, OU, CN:\n{text}"
        );
        assert!(text.contains("X509v3 Subject Alternative Name"), "{text}");
        assert!(
            text.contains("DNS:www.example.com, DNS:*.api.example.com, DNS:example-1.org"),
            "{spec}: SANs missing in\n{text}"
        );
        let key_line = match spec {
            "RSA_2048" => "Public-Key: (2048 bit)",
            "EC_P256" => "prime256v1",
            _ => "secp256k1",
        };
        assert!(text.contains(key_line), "{spec}: {key_line} in\n{text}");
        let sig_alg = if spec == "RSA_2048" {
            "sha256WithRSAEncryption"
        } else {
            "ecdsa-with-SHA256"
        };
        assert!(text.contains(sig_alg), "{spec}: {sig_alg} in\n{text}");

        // The request's public key is the certificate's key.
        let pubkey = openssl_text(d, &["req", "-in", &csr_file, "-noout", "-pubkey"]);
        let desc = describe(&env, id);
        assert!(same_pem(&pubkey, &desc.subject_public_key), "{spec}");

        // PENDING, with what was asked for and nothing from a certificate yet.
        assert_eq!(desc.status, "PENDING");
        assert_eq!(desc.key_spec, spec);
        assert_eq!(desc.subject, SUBJECT);
        assert_eq!(desc.subject_alternative_names, sans(&names));
        assert_eq!(desc.arn, created.arn);
        assert!(
            desc.exportable_private_key,
            "ExportablePrivateKey defaults to true"
        );
        assert_eq!(desc.created_at, START);
        assert_eq!(desc.updated_at, START);
        assert!(desc.issuer.is_none() && desc.serial.is_none());
        assert!(desc.not_before.is_none() && desc.not_after.is_none());
        assert!(desc.subject_key_identifier.is_none() && desc.signature_algorithm.is_none());
        assert!(desc.tags.tag.is_empty());
        let got = get(&env, id);
        assert_eq!(got.certificate_id, *id);
        assert_eq!(got.csr, created.csr);
        assert!(got.certificate.is_none() && got.certificate_chain.is_none());
    }
}

#[test]
fn create_certificate_defaults_to_rsa_2048_and_allows_no_sans() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    for spec in [None, Some("")] {
        let created = try_create(&env, SUBJECT, &[], spec).unwrap();
        let desc = describe(&env, &created.certificate_id);
        assert_eq!(desc.key_spec, "RSA_2048", "{spec:?}");
        assert!(desc.subject_alternative_names.is_empty());
        std::fs::write(dir.path().join("r.csr"), &created.csr).unwrap();
        let (ok, out) = try_openssl(dir.path(), &["req", "-in", "r.csr", "-verify", "-noout"]);
        assert!(ok, "{out}");
        let text = openssl_text(dir.path(), &["req", "-in", "r.csr", "-noout", "-text"]);
        assert!(!text.contains("Subject Alternative Name"), "{text}");
    }
}

#[test]
fn subjects_with_escapes_and_extra_attributes_reach_the_csr() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let subject = "CN=a\\,b.example.com,OU=R&D,O=Acme\\, Inc.,L=Hangzhou,ST=Zhejiang,C=CN";
    let created = try_create(&env, subject, &["a.example.com"], Some("EC_P256")).unwrap();
    std::fs::write(dir.path().join("r.csr"), &created.csr).unwrap();
    let (ok, out) = try_openssl(dir.path(), &["req", "-in", "r.csr", "-verify", "-noout"]);
    assert!(ok, "{out}");
    let shown = openssl_text(
        dir.path(),
        &[
            "req", "-in", "r.csr", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert_eq!(shown.trim(), format!("subject={subject}"));
}

#[test]
fn described_subjects_match_openssl_for_escaped_multi_valued_and_utf8_names() {
    let env = Env::new();
    let ca = Ca::rsa();
    for subject in [
        "cn=lower.example.com,ou=Sec,o=Acme,c=CN",
        "2.5.4.3=oid.example.com,OU=Sec,O=Acme,C=CN",
        "CN=a\\,b.example.com,OU=R&D,O=Acme\\, Inc.,L=Hangzhou,ST=Zhejiang,C=CN",
        "CN=\\#hash,OU=a\\+b,O=q\\\"uote,C=CN",
        "CN=阿里云.example,OU=安全,O=阿里巴巴,C=CN",
    ] {
        let created = try_create(&env, subject, &[], Some("EC_P256")).unwrap();
        ca.issue("s", &created.csr);
        let (ok, out) = try_openssl(ca.path(), &["req", "-in", "s.csr", "-verify", "-noout"]);
        assert!(ok, "{subject}: {out}");
        upload(&env, &created.certificate_id, &ca.read("s.pem"), None).unwrap();
        let desc = describe(&env, &created.certificate_id);
        // openssl escapes non-ASCII in RFC2253 output; compare with its UTF-8 form then.
        let out = openssl_text(
            ca.path(),
            &[
                "x509",
                "-in",
                "s.pem",
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253,-esc_msb,utf8",
            ],
        );
        let expected = out.trim().strip_prefix("subject=").unwrap();
        assert_eq!(desc.subject, expected, "{subject}");
    }
}

#[test]
fn subjects_without_cn_c_o_or_ou_are_invalid_parameter_naming_subject() {
    let env = Env::new();
    for bad in [
        "OU=Security,O=Acme,C=CN",
        "CN=www.example.com,O=Acme,C=CN",
        "CN=www.example.com,OU=Security,C=CN",
        "CN=www.example.com,OU=Security,O=Acme",
        "CN=www.example.com",
        "L=Hangzhou,ST=Zhejiang",
        "not a distinguished name",
        "CN=",
        "=x,OU=a,O=b,C=CN",
        "CN=x;OU=a;O=b;C=CN;;",
        "CN=x,,OU=a,O=b,C=CN",
        // Required attributes with empty or blank values are missing.
        "CN=,OU=Security,O=Acme,C=CN",
        "CN=x,OU=,O=Acme,C=CN",
        "CN=x,OU=Security,O=,C=CN",
        "CN=x,OU=Security,O=Acme,C=",
        "CN=x,OU=Security,O=\\ ,C=CN",
        // countryName is a two-letter code (X.520 PrintableString (SIZE (2))).
        "CN=x,OU=Security,O=Acme,C=China",
        "CN=x,OU=Security,O=Acme,C=C",
        "CN=x,OU=Security,O=Acme,C=1A",
        // RFC 2253 has no spaces around separators.
        "CN=x, OU=Security, O=Acme, C=CN",
    ] {
        let e = expect_param_err(
            try_create(&env, bad, &["a.example.com"], Some("EC_P256")),
            "InvalidParameter",
            "Subject",
        );
        assert_eq!(e.http_status(), 400, "{bad}");
    }
    for missing in ["", "   "] {
        expect_param_err(
            try_create(&env, missing, &[], Some("EC_P256")),
            "MissingParameter",
            "Subject",
        );
    }
    // Each missing attribute is named.
    let e = try_create(&env, "CN=x,O=Acme,C=CN", &[], None).unwrap_err();
    assert!(e.to_string().contains("OU"), "{e}");
    let e = try_create(&env, "CN=x,OU=a,O=Acme", &[], None).unwrap_err();
    assert!(e.to_string().contains('C'), "{e}");
}

#[test]
fn subject_alternative_names_are_at_most_ten_dns_names() {
    let env = Env::new();
    let ten: Vec<String> = (0..10).map(|i| format!("h{i}.example.com")).collect();
    let ten_refs: Vec<&str> = ten.iter().map(String::as_str).collect();
    let created = try_create(&env, SUBJECT, &ten_refs, Some("EC_P256")).unwrap();
    assert_eq!(
        describe(&env, &created.certificate_id).subject_alternative_names,
        ten
    );

    let eleven: Vec<String> = (0..11).map(|i| format!("h{i}.example.com")).collect();
    let eleven_refs: Vec<&str> = eleven.iter().map(String::as_str).collect();
    expect_param_err(
        try_create(&env, SUBJECT, &eleven_refs, Some("EC_P256")),
        "InvalidParameter",
        "SubjectAlternativeNames",
    );

    let long_label = format!("{}.example.com", "a".repeat(64));
    let long_name = format!("{}.com", ["abcdefghi"; 26].join("."));
    assert!(long_name.len() > 253);
    for bad in [
        "",
        "user@example.com",
        "https://www.example.com/",
        "www.example.com:443",
        "a b.example.com",
        "-lead.example.com",
        "trail-.example.com",
        "a..example.com",
        ".example.com",
        "*",
        "*.*.example.com",
        "www.*.example.com",
        "ünïcode.example.com",
        "under_score.example.com",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        expect_param_err(
            try_create(&env, SUBJECT, &["ok.example.com", bad], Some("EC_P256")),
            "InvalidParameter",
            "SubjectAlternativeNames",
        );
    }
}

#[test]
fn unknown_key_specs_are_invalid_parameter_naming_key_spec() {
    let env = Env::new();
    for bad in [
        "RSA_1024",
        "rsa_2048",
        "Aliyun_AES_256",
        "EC_SM2",
        "EC_P384",
        "ED25519",
        "bogus",
    ] {
        expect_param_err(
            try_create(&env, SUBJECT, &[], Some(bad)),
            "InvalidParameter",
            "KeySpec",
        );
    }
}

// ---- UploadCertificate, GetCertificate, DescribeCertificate ----------------------------------

/// Uploads a certificate for each key spec, issued by an RSA and by an EC test CA, and compares
/// every DescribeCertificate field with what openssl reads from the same certificate.
#[test]
fn uploaded_certificates_activate_and_describe_matches_openssl() {
    let env = Env::new();
    for ca in [Ca::rsa(), Ca::ec()] {
        for spec in SPECS {
            let created_at = env.now();
            let created = create(&env, spec);
            let id = &created.certificate_id;
            let name = format!("{}-{spec}", ca.kind);
            env.clock.advance(60);
            let upload_time = env.now();
            let cert = ca.issue(&name, &created.csr);
            let cert_file = format!("{name}.pem");
            upload(&env, id, &cert, Some(&ca.pem())).unwrap();

            // GetCertificate: the certificate, the chain and the request.
            let got = get(&env, id);
            assert_eq!(got.certificate_id, *id);
            assert!(
                same_pem(got.certificate.as_deref().unwrap(), &cert),
                "{name}"
            );
            assert!(
                same_pem(got.certificate_chain.as_deref().unwrap(), &ca.pem()),
                "{name}"
            );
            assert_eq!(got.csr, created.csr);
            // ...and openssl verifies the returned certificate against the returned chain.
            ca.write("got.pem", got.certificate.as_deref().unwrap());
            ca.write("chain.pem", got.certificate_chain.as_deref().unwrap());
            let (ok, out) = try_openssl(ca.path(), &["verify", "-CAfile", "chain.pem", "got.pem"]);
            assert!(ok, "{name}: {out}");

            let desc = describe(&env, id);
            assert_eq!(desc.status, "ACTIVE", "{name}");
            assert_eq!(desc.certificate_id, *id);
            assert_eq!(desc.arn, created.arn);
            assert_eq!(desc.key_spec, spec);
            assert_eq!(
                desc.subject,
                x509_field(ca.path(), &cert_file, "-subject"),
                "{name}"
            );
            assert_eq!(desc.subject, SUBJECT);
            let issuer = x509_field(ca.path(), &cert_file, "-issuer");
            assert_eq!(desc.issuer.as_deref(), Some(issuer.as_str()), "{name}");
            assert_eq!(issuer, x509_field(ca.path(), "ca.pem", "-subject"));
            assert_eq!(
                desc.serial.as_deref(),
                Some(x509_field(ca.path(), &cert_file, "-serial").as_str()),
                "{name}"
            );
            let not_before = openssl_date_to_iso(&x509_field(ca.path(), &cert_file, "-startdate"));
            let not_after = openssl_date_to_iso(&x509_field(ca.path(), &cert_file, "-enddate"));
            assert_eq!(desc.not_before.unwrap().to_string(), not_before, "{name}");
            assert_eq!(desc.not_after.unwrap().to_string(), not_after, "{name}");
            assert_eq!(
                desc.not_after.unwrap().secs() - desc.not_before.unwrap().secs(),
                30 * DAY
            );
            assert_eq!(
                desc.subject_alternative_names,
                sans(&["www.example.com", "api.example.com"])
            );
            let pubkey = openssl_text(ca.path(), &["x509", "-in", &cert_file, "-noout", "-pubkey"]);
            assert!(same_pem(&desc.subject_public_key, &pubkey), "{name}");
            let expected_alg = if ca.kind == "rsa" {
                "SHA256withRSA"
            } else {
                "SHA256withECDSA"
            };
            assert_eq!(desc.signature_algorithm.as_deref(), Some(expected_alg));
            let text = openssl_text(ca.path(), &["x509", "-in", &cert_file, "-noout", "-text"]);
            let openssl_alg = if ca.kind == "rsa" {
                "Signature Algorithm: sha256WithRSAEncryption"
            } else {
                "Signature Algorithm: ecdsa-with-SHA256"
            };
            assert!(text.contains(openssl_alg), "{text}");
            // The SubjectKeyIdentifier: the extension's value when present, else the RFC 5280
            // method 1 hash, which is what openssl's `subjectKeyIdentifier=hash` writes.
            let ski_out = openssl_text(
                ca.path(),
                &[
                    "x509",
                    "-in",
                    &cert_file,
                    "-noout",
                    "-ext",
                    "subjectKeyIdentifier",
                ],
            );
            let ski = if ski_out.contains("Subject Key Identifier") {
                colon_hex(ski_out.lines().nth(1).unwrap())
            } else {
                ca.write("ski.cnf", "subjectKeyIdentifier=hash\n");
                let with = ca.issue_with(
                    &format!("{name}-ski"),
                    &created.csr,
                    &["-extfile", "ski.cnf"],
                );
                assert!(!with.is_empty());
                let out = openssl_text(
                    ca.path(),
                    &[
                        "x509",
                        "-in",
                        &format!("{name}-ski.pem"),
                        "-noout",
                        "-ext",
                        "subjectKeyIdentifier",
                    ],
                );
                colon_hex(out.lines().nth(1).unwrap())
            };
            assert_eq!(
                desc.subject_key_identifier.as_deref(),
                Some(ski.as_str()),
                "{name}"
            );
            assert_eq!(
                desc.created_at, created_at,
                "CreatedAt is the creation time"
            );
            assert_eq!(desc.updated_at, upload_time, "UpdatedAt is the upload time");
            assert!(desc.created_at < desc.updated_at);
            assert!(desc.tags.tag.is_empty());
            assert!(desc.exportable_private_key);
        }
    }
}

#[test]
fn the_subject_key_identifier_is_computed_when_the_certificate_has_none_and_read_when_it_has() {
    let env = Env::new();
    let ca = Ca::rsa();
    ca.write("ski.cnf", "subjectKeyIdentifier=hash\n");
    // OpenSSL 3 adds a SubjectKeyIdentifier by default; `none` leaves it out.
    ca.write(
        "noski.cnf",
        "subjectKeyIdentifier=none\nauthorityKeyIdentifier=none\nbasicConstraints=CA:FALSE\n",
    );
    for spec in SPECS {
        let created = create(&env, spec);
        // openssl computes the method-1 hash into the extension of one certificate...
        ca.issue_with("with", &created.csr, &["-extfile", "ski.cnf"]);
        let out = openssl_text(
            ca.path(),
            &[
                "x509",
                "-in",
                "with.pem",
                "-noout",
                "-ext",
                "subjectKeyIdentifier",
            ],
        );
        assert!(out.contains("Subject Key Identifier"), "{out}");
        let openssl_ski = colon_hex(out.lines().nth(1).unwrap());
        // ...and the engine computes the same for a certificate without the extension.
        let without = ca.issue_with("without", &created.csr, &["-extfile", "noski.cnf"]);
        let out = openssl_text(
            ca.path(),
            &[
                "x509",
                "-in",
                "without.pem",
                "-noout",
                "-ext",
                "subjectKeyIdentifier",
            ],
        );
        assert!(!out.contains("Subject Key Identifier"), "{out}");
        upload(&env, &created.certificate_id, &without, None).unwrap();
        let desc = describe(&env, &created.certificate_id);
        assert_eq!(
            desc.subject_key_identifier.as_deref(),
            Some(openssl_ski.as_str()),
            "{spec}"
        );
        assert!(get(&env, &created.certificate_id)
            .certificate_chain
            .is_none());

        // A certificate whose extension holds an arbitrary identifier shows that value.
        ca.write("fixed.cnf", "subjectKeyIdentifier=0102030405060708090A\n");
        let fixed = ca.issue_with("fixed", &created.csr, &["-extfile", "fixed.cnf"]);
        upload(&env, &created.certificate_id, &fixed, Some(&ca.pem())).unwrap();
        assert_eq!(
            describe(&env, &created.certificate_id)
                .subject_key_identifier
                .as_deref(),
            Some("0102030405060708090A")
        );
    }
}

#[test]
fn serial_numbers_match_openssl_including_ones_with_the_high_bit_set() {
    let env = Env::new();
    let ca = Ca::rsa();
    for serial in [
        "1",
        "0x7F",
        "0x80",
        "0xFF",
        "0x0100",
        "0x8000000000000000000000000000000000000001",
        "0x00ABCDEF",
    ] {
        let created = create(&env, "EC_P256");
        ca.write("s.csr", &created.csr);
        run_openssl(
            ca.path(),
            &[
                "x509",
                "-req",
                "-in",
                "s.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "30",
                "-copy_extensions",
                "copy",
                "-out",
                "s.pem",
            ],
        );
        upload(&env, &created.certificate_id, &ca.read("s.pem"), None).unwrap();
        let expected = x509_field(ca.path(), "s.pem", "-serial");
        assert_eq!(
            describe(&env, &created.certificate_id).serial.as_deref(),
            Some(expected.as_str()),
            "serial {serial}"
        );
    }
}

#[test]
fn a_certificate_for_another_key_is_refused_and_the_certificate_stays_pending() {
    let env = Env::new();
    let ca = Ca::rsa();
    for (spec, algorithm) in [("RSA_2048", "rsa"), ("EC_P256", "ec"), ("RSA_2048", "ec")] {
        let created = create(&env, spec);
        let id = &created.certificate_id;
        // Same subject and CA, but openssl's own key.
        let csr = ca.foreign_csr(
            "foreign",
            algorithm,
            "/C=CN/O=Acme Ltd/OU=Security/CN=www.example.com",
        );
        let foreign = ca.issue("foreign-cert", &csr);
        expect_param_err(
            upload(&env, id, &foreign, Some(&ca.pem())),
            "InvalidParameter",
            "Certificate",
        );
        let desc = describe(&env, id);
        assert_eq!(desc.status, "PENDING");
        assert!(desc.issuer.is_none() && desc.serial.is_none());
        assert_eq!(desc.updated_at, desc.created_at);
        assert!(get(&env, id).certificate.is_none());
        // The CA certificate itself is no better.
        expect_param_err(
            upload(&env, id, &ca.pem(), None),
            "InvalidParameter",
            "Certificate",
        );
        assert_eq!(status(&env, id), "PENDING");
        // Nor is a certificate issued for another engine certificate's key.
        let other = create(&env, spec);
        let other_cert = ca.issue("other", &other.csr);
        expect_param_err(
            upload(&env, id, &other_cert, None),
            "InvalidParameter",
            "Certificate",
        );
        assert_eq!(status(&env, id), "PENDING");
        upload(&env, &other.certificate_id, &other_cert, None).unwrap();
        assert_eq!(status(&env, &other.certificate_id), "ACTIVE");

        // Once ACTIVE with its own certificate, a foreign one still cannot replace it.
        let own = ca.issue("own", &created.csr);
        upload(&env, id, &own, Some(&ca.pem())).unwrap();
        expect_param_err(
            upload(&env, id, &foreign, None),
            "InvalidParameter",
            "Certificate",
        );
        assert_eq!(status(&env, id), "ACTIVE");
        assert!(same_pem(
            get(&env, id).certificate.as_deref().unwrap(),
            &own
        ));
    }
}

#[test]
fn re_uploading_keeps_the_status_and_replaces_the_certificate() {
    let env = Env::new();
    let ca = Ca::rsa();
    let (id, first) = active(&env, &ca, "RSA_2048");
    let csr = get(&env, &id).csr;
    let second = ca.issue("second", &csr);
    assert_ne!(first, second);
    set_status(&env, &id, "INACTIVE").unwrap();
    upload(&env, &id, &second, None).unwrap();
    assert_eq!(
        status(&env, &id),
        "INACTIVE",
        "an upload does not re-activate"
    );
    let got = get(&env, &id);
    assert!(same_pem(got.certificate.as_deref().unwrap(), &second));
    assert!(
        got.certificate_chain.is_none(),
        "the new upload had no chain"
    );
    assert_eq!(
        describe(&env, &id).serial.as_deref(),
        Some(x509_field(ca.path(), "second.pem", "-serial").as_str())
    );
    // A REVOKED certificate cannot be replaced.
    set_status(&env, &id, "REVOKED").unwrap();
    expect_err(
        upload(&env, &id, &first, None),
        "Rejected.UnsupportedOperation",
    );
    assert!(same_pem(
        get(&env, &id).certificate.as_deref().unwrap(),
        &second
    ));
}

#[test]
fn chains_of_several_certificates_are_kept_and_bad_chains_refused() {
    let env = Env::new();
    let ca = Ca::rsa();
    let other_ca = Ca::ec();
    let created = create(&env, "EC_P256");
    let id = &created.certificate_id;
    let cert = ca.issue("c", &created.csr);
    // A bad chain is refused naming CertificateChain, and nothing changes.
    for bad in [
        "junk".to_owned(),
        format!("{}\n-----BEGIN CERTIFICATE-----\njunk", ca.pem()),
        format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ca.pem()
        ),
        format!("{}{}", ca.pem(), ca.read("ca.key")),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
    ] {
        expect_param_err(
            upload(&env, id, &cert, Some(&bad)),
            "InvalidParameter",
            "CertificateChain",
        );
        assert_eq!(status(&env, id), "PENDING");
    }
    let chain = format!("{}{}", ca.pem(), other_ca.pem());
    upload(&env, id, &cert, Some(&chain)).unwrap();
    assert!(same_pem(
        get(&env, id).certificate_chain.as_deref().unwrap(),
        &chain
    ));
    // An empty chain is no chain.
    upload(&env, id, &cert, Some("")).unwrap();
    assert!(get(&env, id).certificate_chain.is_none());
}

/// PEM as lax writers make it and openssl reads it: CRLF, 76-column (Java MIME), 32-column or
/// unwrapped lines, trailing blanks, explanatory text before the block, no final newline.
#[test]
fn lax_but_well_formed_pem_uploads_like_openssl_reads_it() {
    let env = Env::new();
    let ca = Ca::rsa();
    let created = create(&env, "EC_P256");
    let id = &created.certificate_id;
    let cert = ca.issue("c", &created.csr);
    let der = pem_body(&cert, "CERTIFICATE");
    let wrapped = |cols: usize, eol: &str| {
        let b = b64(&der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(cols)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----{eol}{}{eol}-----END CERTIFICATE-----{eol}",
            lines.join(eol)
        )
    };
    let ca_pem = ca.pem();
    let variants = [
        ("CRLF", cert.replace('\n', "\r\n")),
        ("76 columns", wrapped(76, "\n")),
        ("76 columns CRLF", wrapped(76, "\r\n")),
        ("32 columns", wrapped(32, "\n")),
        ("one line", wrapped(100_000, "\n")),
        ("trailing blanks", cert.replace('\n', " \t\n")),
        (
            "leading text",
            format!("subject=CN = www.example.com\n\n{cert}"),
        ),
        ("no final newline", cert.trim_end().to_owned()),
    ];
    for (what, pem) in &variants {
        // openssl reads each...
        ca.write("v.pem", pem);
        let (ok, out) = try_openssl(ca.path(), &["x509", "-in", "v.pem", "-noout"]);
        assert!(ok, "openssl does not read the {what} form: {out}");
        // ... and so does the engine, as the certificate and in a chain.
        upload(&env, id, pem, Some(&format!("{ca_pem}\n{pem}"))).unwrap_or_else(|e| {
            panic!("the {what} form was refused: {e}");
        });
        let got = get(&env, id);
        assert!(
            same_pem(got.certificate.as_deref().unwrap(), &cert),
            "{what}"
        );
        assert!(
            same_pem(
                got.certificate_chain.as_deref().unwrap(),
                &format!("{ca_pem}{cert}")
            ),
            "{what}"
        );
    }
    assert_eq!(status(&env, id), "ACTIVE");
    // Two certificates are not one.
    expect_param_err(
        upload(&env, id, &format!("{cert}{ca_pem}"), None),
        "InvalidParameter",
        "Certificate",
    );
}

// ---- malformed input -------------------------------------------------------------------------

#[test]
fn malformed_certificates_are_invalid_parameter_and_change_nothing() {
    let env = Env::new();
    let ca = Ca::rsa();
    let created = create(&env, "RSA_2048");
    let id = &created.certificate_id;
    let cert = ca.issue("c", &created.csr);
    let der = pem_body(&cert, "CERTIFICATE");
    let truncated_half = cert[..cert.len() / 2].to_owned();
    let body_only: String = cert
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut dropped_line: Vec<&str> = cert.lines().collect();
    dropped_line.remove(3);
    let dropped_line = dropped_line.join("\n");
    let ca_key = ca.read("ca.key");
    run_openssl(
        ca.path(),
        &["pkey", "-in", "ca.key", "-pubout", "-out", "ca.pub"],
    );
    let ca_pub = ca.read("ca.pub");
    let bad_inputs: Vec<(&str, String)> = vec![
        ("garbage text", "this is not a certificate".into()),
        (
            "garbage PEM",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        ),
        (
            "bad base64",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
        ),
        ("truncated PEM", truncated_half),
        (
            "PEM without END",
            cert.replace("-----END CERTIFICATE-----", ""),
        ),
        ("PEM with a line dropped", dropped_line),
        ("base64 body without armour", body_only),
        ("base64 of the DER", b64(&der)),
        ("DER bytes", String::from_utf8_lossy(&der).into_owned()),
        ("private key PEM", ca_key),
        ("public key PEM", ca_pub),
        ("certificate request PEM", created.csr.clone()),
        (
            "certificate DER under another label",
            cert.replace("CERTIFICATE", "X509 CRL"),
        ),
        (
            "random bytes",
            String::from_utf8_lossy(&SplitMix(7).bytes(700)).into_owned(),
        ),
        ("NUL bytes", "\0".repeat(64)),
    ];
    for (what, bad) in &bad_inputs {
        let e = match upload(&env, id, bad, None) {
            Err(e) => e,
            Ok(_) => panic!("the {what} input was accepted as a certificate"),
        };
        assert_eq!(e.code(), "InvalidParameter", "{what}: {e}");
        assert!(e.to_string().contains("Certificate"), "{what}: {e}");
        assert_eq!(e.http_status(), 400, "{what}");
        assert_eq!(status(&env, id), "PENDING", "{what}");
        // As a chain, each is refused naming CertificateChain.
        if !what.contains("random") && !what.contains("NUL") {
            let e = match upload(&env, id, &cert, Some(bad)) {
                Err(e) => e,
                Ok(_) => panic!("the {what} input was accepted as a chain"),
            };
            assert_eq!(e.code(), "InvalidParameter", "{what}: {e}");
            assert!(e.to_string().contains("CertificateChain"), "{what}: {e}");
        }
    }
    expect_param_err(
        upload(&env, id, "", None),
        "MissingParameter",
        "Certificate",
    );
    assert_eq!(status(&env, id), "PENDING");
    assert!(get(&env, id).certificate.is_none());
    // The genuine one still uploads.
    upload(&env, id, &cert, None).unwrap();
    assert_eq!(status(&env, id), "ACTIVE");
}

/// Many random and truncated inputs through UploadCertificate and the parsing functions: an
/// answer every time (InvalidParameter for what does not parse), never a panic.
#[test]
fn random_truncated_and_mutated_certificates_never_panic() {
    let env = Env::new();
    let ca = Ca::ec();
    let created = create(&env, "EC_P256");
    let id = &created.certificate_id;
    let cert = ca.issue("c", &created.csr);
    let der = pem_body(&cert, "CERTIFICATE");
    let wrap = |d: &[u8]| {
        let b = b64(d);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    };
    let mut rng = SplitMix(0xC0FFEE);
    let trimmed = cert.trim_end();

    // Every truncation of the PEM text is refused.
    for n in (0..trimmed.len()).step_by(7) {
        let part = &trimmed[..n];
        let r = upload(&env, id, part, None);
        if part.trim().is_empty() {
            expect_param_err(r, "MissingParameter", "Certificate");
        } else {
            expect_param_err(r, "InvalidParameter", "Certificate");
        }
    }
    // Every truncation of the DER, re-armoured, is refused.
    for n in (0..der.len()).step_by(3) {
        let r = upload(&env, id, &wrap(&der[..n]), None);
        expect_param_err(r, "InvalidParameter", "Certificate");
    }
    assert_eq!(status(&env, id), "PENDING");

    // Random bytes and random text.
    for i in 0..400 {
        let len = (rng.next_u64() % 1500) as usize;
        let bytes = rng.bytes(len);
        let as_text = String::from_utf8_lossy(&bytes).into_owned();
        expect_param_err(
            upload(&env, id, &format!("x{as_text}"), None),
            "InvalidParameter",
            "Certificate",
        );
        let armoured = wrap(&bytes);
        expect_param_err(
            upload(&env, id, &armoured, None),
            "InvalidParameter",
            "Certificate",
        );
        assert!(
            kms_core::internal::x509::parse_certificate("Certificate", &as_text).is_err(),
            "#{i}"
        );
        assert!(kms_core::internal::x509::parse_chain(&format!("{armoured}{armoured}")).is_err());
    }
    assert_eq!(status(&env, id), "PENDING");

    // Mutated DER: a byte changed or inserted anywhere. Some mutations still parse (a changed
    // signature byte, a changed serial); the engine must answer either way, and whatever it
    // accepts must describe without panicking.
    let other = create(&env, "EC_P256");
    let mut parsed = 0;
    for i in 0..3000 {
        let mut d = der.clone();
        let at = (rng.next_u64() as usize) % d.len();
        match i % 3 {
            0 => d[at] ^= 1 << (rng.next_u64() % 8),
            1 => d[at] = rng.next_u64() as u8,
            _ => d.insert(at, rng.next_u64() as u8),
        }
        let pem = wrap(&d);
        if let Ok(c) = kms_core::internal::x509::parse_certificate("Certificate", &pem) {
            parsed += 1;
            let _ = kms_core::internal::x509::describe(&c);
            let _ = kms_core::internal::x509::public_key_der(&c);
            let _ = kms_core::internal::x509::to_pem(&c);
        }
        if i % 10 == 0 {
            match upload(&env, &other.certificate_id, &pem, None) {
                Ok(_) => {}
                Err(e) => assert_eq!(e.code(), "InvalidParameter", "#{i}: {e}"),
            }
        }
    }
    assert!(parsed > 0, "some mutations (signature bytes) still parse");
    assert!(parsed < 3000);
    // The original still uploads.
    upload(&env, id, &cert, None).unwrap();
    assert_eq!(status(&env, id), "ACTIVE");
}

// ---- UpdateCertificateStatus -----------------------------------------------------------------

#[test]
fn certificate_status_rules() {
    let env = Env::new();
    let ca = Ca::rsa();
    let created = create(&env, "EC_P256");
    let id = &created.certificate_id;
    // PENDING cannot change: upload first.
    for s in ["ACTIVE", "INACTIVE", "REVOKED"] {
        let e = expect_err(set_status(&env, id, s), "Rejected.UnsupportedOperation");
        assert_eq!(e.http_status(), 400);
        assert_eq!(status(&env, id), "PENDING", "{s}");
    }
    // Bad values are InvalidParameter naming Status, whatever the state.
    for bad in [
        "PENDING", "active", "Active", "DELETED", "ENABLED", " ACTIVE",
    ] {
        expect_param_err(set_status(&env, id, bad), "InvalidParameter", "Status");
    }
    expect_param_err(set_status(&env, id, ""), "MissingParameter", "Status");

    let cert = ca.issue("c", &created.csr);
    upload(&env, id, &cert, None).unwrap();
    assert_eq!(status(&env, id), "ACTIVE");
    for bad in ["PENDING", "revoked", "bogus"] {
        expect_param_err(set_status(&env, id, bad), "InvalidParameter", "Status");
        assert_eq!(status(&env, id), "ACTIVE");
    }
    // ACTIVE <-> INACTIVE, and setting the same status again is a no-op.
    env.clock.advance(10);
    set_status(&env, id, "INACTIVE").unwrap();
    assert_eq!(status(&env, id), "INACTIVE");
    assert_eq!(describe(&env, id).updated_at, env.now());
    let before = describe(&env, id).updated_at;
    env.clock.advance(10);
    set_status(&env, id, "INACTIVE").unwrap();
    assert_eq!(describe(&env, id).updated_at, before);
    set_status(&env, id, "ACTIVE").unwrap();
    assert_eq!(status(&env, id), "ACTIVE");
    set_status(&env, id, "ACTIVE").unwrap();
    set_status(&env, id, "INACTIVE").unwrap();
    // INACTIVE -> REVOKED, and REVOKED is final.
    set_status(&env, id, "REVOKED").unwrap();
    assert_eq!(status(&env, id), "REVOKED");
    for s in ["ACTIVE", "INACTIVE"] {
        expect_err(set_status(&env, id, s), "Rejected.UnsupportedOperation");
        assert_eq!(status(&env, id), "REVOKED", "REVOKED -> {s}");
    }
    // ACTIVE -> REVOKED directly, too.
    let (id2, _) = active(&env, &ca, "RSA_2048");
    set_status(&env, &id2, "REVOKED").unwrap();
    expect_err(
        set_status(&env, &id2, "ACTIVE"),
        "Rejected.UnsupportedOperation",
    );
    assert_eq!(status(&env, &id2), "REVOKED");
    // The rule holds across a restart.
    let reopened = env.reopen();
    let e = reopened
        .update_certificate_status(
            &env.me,
            UpdateCertificateStatusRequest {
                certificate_id: id2.clone(),
                status: "ACTIVE".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "Rejected.UnsupportedOperation");
    // Unknown certificates.
    expect_err(
        set_status(&env, NO_SUCH_CERT, "ACTIVE"),
        "Certificate.NotFound",
    );
}

// ---- signing and verification ----------------------------------------------------------------

/// Writes the engine's public key, the message and the signature, and asks openssl:
/// `openssl dgst -sha256 -verify` for RAW, `openssl pkeyutl -verify` for DIGEST.
fn openssl_verifies(
    dir: &Path,
    pubkey_pem: &str,
    alg: &str,
    message: &[u8],
    message_type: &str,
    sig: &[u8],
) -> (bool, String) {
    std::fs::write(dir.join("pub.pem"), pubkey_pem).unwrap();
    std::fs::write(dir.join("msg.bin"), message).unwrap();
    std::fs::write(dir.join("sig.bin"), sig).unwrap();
    let mut args: Vec<&str> = if message_type == "RAW" {
        vec![
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
        ]
    } else {
        vec![
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "msg.bin",
            "-sigfile",
            "sig.bin",
            "-pkeyopt",
            "digest:sha256",
        ]
    };
    let opt = if message_type == "RAW" {
        "-sigopt"
    } else {
        "-pkeyopt"
    };
    if alg == PSS {
        args.extend([opt, "rsa_padding_mode:pss", opt, "rsa_pss_saltlen:32"]);
    } else if alg == PKCS1 {
        args.extend([opt, "rsa_padding_mode:pkcs1"]);
    }
    if message_type == "RAW" {
        args.push("msg.bin");
    }
    try_openssl(dir, &args)
}

#[test]
fn certificate_signatures_verify_with_openssl_and_with_the_engine() {
    let env = Env::new();
    let ca = Ca::rsa();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for spec in SPECS {
        let (id, cert) = active(&env, &ca, spec);
        // The key openssl takes from the certificate itself.
        ca.write("leaf.pem", &cert);
        let pubkey = openssl_text(ca.path(), &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
        for &alg in sign_algorithms(spec) {
            for (i, message) in [
                b"hello certificate".to_vec(),
                vec![0u8; 1],
                SplitMix(i_seed(spec, alg)).bytes(4095),
            ]
            .into_iter()
            .enumerate()
            {
                // RAW: the engine hashes the message.
                let sig = sign(&env, &id, alg, &message, Some("RAW")).unwrap();
                let (ok, out) = openssl_verifies(d, &pubkey, alg, &message, "RAW", &sig);
                assert!(ok, "openssl rejected {spec} {alg} RAW #{i}: {out}");
                assert!(verify(&env, &id, alg, &message, Some("RAW"), &sig).unwrap());
                assert!(verify(&env, &id, alg, &message, None, &sig).unwrap());
                // Default MessageType is RAW.
                let sig_default = sign(&env, &id, alg, &message, None).unwrap();
                assert!(openssl_verifies(d, &pubkey, alg, &message, "RAW", &sig_default).0);
                // The same signature is a signature of the digest.
                let digest = sha256(&message);
                assert!(verify(&env, &id, alg, &digest, Some("DIGEST"), &sig).unwrap());
                // DIGEST: the engine signs the given digest.
                let sig = sign(&env, &id, alg, &digest, Some("DIGEST")).unwrap();
                let (ok, out) = openssl_verifies(d, &pubkey, alg, &digest, "DIGEST", &sig);
                assert!(ok, "openssl rejected {spec} {alg} DIGEST #{i}: {out}");
                let (ok, out) = openssl_verifies(d, &pubkey, alg, &message, "RAW", &sig);
                assert!(
                    ok,
                    "{spec} {alg}: a DIGEST signature is the RAW one's: {out}"
                );
                assert!(verify(&env, &id, alg, &digest, Some("DIGEST"), &sig).unwrap());
                assert!(verify(&env, &id, alg, &message, Some("RAW"), &sig).unwrap());

                // Altered messages and signatures: openssl and the engine both say no.
                let mut other = message.clone();
                other[0] ^= 1;
                assert!(!openssl_verifies(d, &pubkey, alg, &other, "RAW", &sig).0);
                assert!(!verify(&env, &id, alg, &other, Some("RAW"), &sig).unwrap());
                let mut bad_sig = sig.clone();
                let last = bad_sig.len() - 1;
                bad_sig[last / 2] ^= 0x40;
                assert!(!openssl_verifies(d, &pubkey, alg, &message, "RAW", &bad_sig).0);
                assert!(!verify(&env, &id, alg, &message, Some("RAW"), &bad_sig).unwrap());
                assert!(!verify(&env, &id, alg, &message, Some("RAW"), &sig[..last]).unwrap());
                assert!(!verify(&env, &id, alg, &message, Some("RAW"), b"x").unwrap());
            }
        }
        // RSA: PKCS#1 and PSS signatures are not each other's.
        if spec == "RSA_2048" {
            let m = b"cross".to_vec();
            let p1 = sign(&env, &id, PKCS1, &m, None).unwrap();
            let ps = sign(&env, &id, PSS, &m, None).unwrap();
            assert!(!verify(&env, &id, PSS, &m, None, &p1).unwrap());
            assert!(!verify(&env, &id, PKCS1, &m, None, &ps).unwrap());
            // PSS is randomized (32-byte salt), PKCS#1 deterministic.
            assert_ne!(ps, sign(&env, &id, PSS, &m, None).unwrap());
            assert_eq!(p1, sign(&env, &id, PKCS1, &m, None).unwrap());
        }
    }
}

fn i_seed(spec: &str, alg: &str) -> u64 {
    (spec.len() * 31 + alg.len()) as u64
}

#[test]
fn signing_checks_the_message_algorithm_and_message_type() {
    let env = Env::new();
    let ca = Ca::ec();
    let (rsa, _) = active(&env, &ca, "RSA_2048");
    let (ec, _) = active(&env, &ca, "EC_P256");
    for (id, alg) in [(&rsa, PKCS1), (&rsa, PSS), (&ec, ECDSA)] {
        // RAW: under 4 KiB.
        sign(&env, id, alg, &vec![7u8; 4095], Some("RAW")).unwrap();
        for n in [4096, 4097, 10_000] {
            expect_param_err(
                sign(&env, id, alg, &vec![7u8; n], Some("RAW")),
                "InvalidParameter",
                "Message",
            );
            expect_param_err(
                sign(&env, id, alg, &vec![7u8; n], None),
                "InvalidParameter",
                "Message",
            );
            expect_param_err(
                verify(&env, id, alg, &vec![7u8; n], None, b"sig"),
                "InvalidParameter",
                "Message",
            );
        }
        // DIGEST: exactly 32 bytes.
        for n in [1, 20, 31, 33, 48, 64] {
            let e = expect_err(
                sign(&env, id, alg, &vec![1u8; n], Some("DIGEST")),
                "InvalidParameter",
            );
            let m = e.to_string();
            assert!(
                m.contains("Digest") || m.contains("Message"),
                "the message should name Digest or Message: {m}"
            );
            let e = expect_err(
                verify(&env, id, alg, &vec![1u8; n], Some("DIGEST"), b"sig"),
                "InvalidParameter",
            );
            assert!(e.to_string().contains("Digest") || e.to_string().contains("Message"));
        }
        expect_param_err(
            sign(&env, id, alg, b"", None),
            "MissingParameter",
            "Message",
        );
        for bad in ["HEX", "raw", "digest", "SHA256"] {
            expect_param_err(
                sign(&env, id, alg, b"m", Some(bad)),
                "InvalidParameter",
                "MessageType",
            );
        }
        for bad in [
            "RSA_PSS_SHA_384",
            "ECDSA_SHA_384",
            "SM2DSA",
            "rsa_pss_sha_256",
            "",
        ] {
            let e = sign(&env, id, bad, b"m", None).unwrap_err();
            assert!(
                matches!(e.code(), "InvalidParameter" | "MissingParameter"),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("Algorithm"), "{bad}: {e}");
        }
    }
    // An algorithm of the other key type.
    expect_err(
        sign(&env, &rsa, ECDSA, b"m", None),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        sign(&env, &ec, PSS, b"m", None),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        sign(&env, &ec, PKCS1, b"m", None),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        verify(&env, &ec, PKCS1, b"m", None, b"sig"),
        "Rejected.UnsupportedOperation",
    );
}

#[test]
fn only_active_certificates_sign_or_decrypt_and_revoked_ones_still_verify() {
    let env = Env::new();
    let ca = Ca::rsa();
    let msg = b"status rules".to_vec();
    // PENDING.
    let pending = create(&env, "RSA_2048").certificate_id;
    let e = expect_err(
        sign(&env, &pending, PKCS1, &msg, None),
        "Rejected.UnsupportedOperation",
    );
    assert!(e.to_string().contains("PENDING"), "{e}");
    expect_err(
        decrypt(&env, &pending, OAEP256, &[0u8; 256]),
        "Rejected.UnsupportedOperation",
    );

    for spec in ["RSA_2048", "EC_P256"] {
        let (id, _) = active(&env, &ca, spec);
        let alg = sign_algorithms(spec)[0];
        let sig = sign(&env, &id, alg, &msg, None).unwrap();
        let ct = if spec == "RSA_2048" {
            Some(encrypt(&env, &id, OAEP256, b"secret").unwrap())
        } else {
            None
        };
        for s in ["INACTIVE", "REVOKED"] {
            set_status(&env, &id, s).unwrap();
            let e = expect_err(
                sign(&env, &id, alg, &msg, None),
                "Rejected.UnsupportedOperation",
            );
            assert!(e.to_string().contains(s), "{e}");
            expect_err(
                sign(&env, &id, alg, &sha256(&msg), Some("DIGEST")),
                "Rejected.UnsupportedOperation",
            );
            if let Some(ct) = &ct {
                expect_err(
                    decrypt(&env, &id, OAEP256, ct),
                    "Rejected.UnsupportedOperation",
                );
            }
            // Verification works in every status.
            assert!(
                verify(&env, &id, alg, &msg, None, &sig).unwrap(),
                "{spec} {s}"
            );
            assert!(!verify(&env, &id, alg, b"other", None, &sig).unwrap());
            if s == "INACTIVE" {
                set_status(&env, &id, "ACTIVE").unwrap();
                sign(&env, &id, alg, &msg, None).unwrap();
                if let Some(ct) = &ct {
                    assert_eq!(decrypt(&env, &id, OAEP256, ct).unwrap(), b"secret");
                }
                set_status(&env, &id, "INACTIVE").unwrap();
            }
        }
        // REVOKED after a restart: still verifies, still refuses to sign.
        let reopened = env.reopen();
        let r = reopened
            .certificate_public_key_verify(
                &env.me,
                CertificatePublicKeyVerifyRequest {
                    certificate_id: id.clone(),
                    algorithm: alg.into(),
                    message: msg.clone(),
                    message_type: None,
                    signature_value: sig.clone(),
                },
            )
            .unwrap();
        assert!(r.signature_valid);
    }
    // A PENDING certificate verifies too (its key exists from the start).
    let sig = sign(&env, &active(&env, &ca, "EC_P256").0, ECDSA, &msg, None).unwrap();
    let pending_ec = create(&env, "EC_P256").certificate_id;
    assert!(!verify(&env, &pending_ec, ECDSA, &msg, None, &sig).unwrap());
}

// ---- encryption ------------------------------------------------------------------------------

#[test]
fn certificate_encryption_round_trips_and_openssl_ciphertexts_decrypt() {
    let env = Env::new();
    let ca = Ca::rsa();
    let (id, cert) = active(&env, &ca, "RSA_2048");
    ca.write("leaf.pem", &cert);
    run_openssl(
        ca.path(),
        &[
            "x509", "-in", "leaf.pem", "-noout", "-pubkey", "-out", "pub.pem",
        ],
    );
    for (alg, max) in [(OAEP1, 214usize), (OAEP256, 190)] {
        for n in [1usize, 32, max] {
            let pt = SplitMix(n as u64).bytes(n);
            let ct = encrypt(&env, &id, alg, &pt).unwrap();
            assert_eq!(ct.len(), 256);
            assert_eq!(decrypt(&env, &id, alg, &ct).unwrap(), pt, "{alg} {n}");
            // Another OAEP hash does not decrypt it.
            let other = if alg == OAEP1 { OAEP256 } else { OAEP1 };
            expect_err(decrypt(&env, &id, other, &ct), "InvalidCiphertext");
            let mut bad = ct.clone();
            bad[100] ^= 1;
            expect_err(decrypt(&env, &id, alg, &bad), "InvalidCiphertext");
            expect_err(decrypt(&env, &id, alg, &ct[..255]), "InvalidCiphertext");
        }
        expect_param_err(
            encrypt(&env, &id, alg, &vec![0u8; max + 1]),
            "InvalidParameter",
            "Plaintext",
        );
        expect_param_err(
            encrypt(&env, &id, alg, b""),
            "MissingParameter",
            "Plaintext",
        );
        expect_param_err(
            decrypt(&env, &id, alg, b""),
            "MissingParameter",
            "CiphertextBlob",
        );
    }
    // OAEP is randomized.
    assert_ne!(
        encrypt(&env, &id, OAEP256, b"x").unwrap(),
        encrypt(&env, &id, OAEP256, b"x").unwrap()
    );
    // Ciphertexts made by openssl with the certificate's public key decrypt in the engine.
    for (alg, md) in [(OAEP256, "sha256"), (OAEP1, "sha1")] {
        let pt = format!("openssl made this with {md}");
        ca.write("pt.bin", &pt);
        let md_opt = format!("rsa_oaep_md:{md}");
        let mgf_opt = format!("rsa_mgf1_md:{md}");
        run_openssl(
            ca.path(),
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "pt.bin",
                "-out",
                "ct.bin",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &md_opt,
                "-pkeyopt",
                &mgf_opt,
            ],
        );
        let ct = std::fs::read(ca.file("ct.bin")).unwrap();
        assert_eq!(
            decrypt(&env, &id, alg, &ct).unwrap(),
            pt.as_bytes(),
            "{alg}"
        );
    }
    // Algorithms: OAEP only.
    for bad in ["RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_512", "bogus"] {
        expect_param_err(
            encrypt(&env, &id, bad, b"x"),
            "InvalidParameter",
            "Algorithm",
        );
        expect_param_err(
            decrypt(&env, &id, bad, &[0u8; 256]),
            "InvalidParameter",
            "Algorithm",
        );
    }
    // EC certificates do not encrypt or decrypt.
    let (ec, _) = active(&env, &ca, "EC_P256");
    expect_err(
        encrypt(&env, &ec, OAEP256, b"x"),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        decrypt(&env, &ec, OAEP256, &[0u8; 256]),
        "Rejected.UnsupportedOperation",
    );
    // Unknown certificates.
    expect_err(
        encrypt(&env, NO_SUCH_CERT, OAEP256, b"x"),
        "Certificate.NotFound",
    );
    expect_err(
        decrypt(&env, NO_SUCH_CERT, OAEP256, &[0u8; 256]),
        "Certificate.NotFound",
    );
}

// ---- DeleteCertificate and unknown ids -------------------------------------------------------

#[test]
fn deleted_and_unknown_certificates_are_certificate_not_found() {
    let env = Env::new();
    let ca = Ca::rsa();
    let (id, cert) = active(&env, &ca, "RSA_2048");
    let pending = create(&env, "EC_P256").certificate_id;
    let sig = sign(&env, &id, PKCS1, b"m", None).unwrap();
    env.kms.delete_certificate(&env.me, id_req(&id)).unwrap();
    env.kms
        .delete_certificate(&env.me, id_req(&pending))
        .unwrap();

    let malformed_upper = NO_SUCH_CERT.to_ascii_uppercase();
    for gone in [
        id.as_str(),
        pending.as_str(),
        NO_SUCH_CERT,
        malformed_upper.as_str(),
        "not-a-uuid",
        "../x/abc",
        "acs:kms:cn-hangzhou:1234:certificate/00000000-0000-4000-8000-000000000000",
        "x/00000000-0000-4000-8000-000000000000",
        "00000000-0000-4000-8000-00000000000",
        "00000000-0000-4000-8000-0000000000000",
    ] {
        let results: Vec<(&str, Result<(), KmsError>)> = vec![
            (
                "Describe",
                env.kms
                    .describe_certificate(&env.me, id_req(gone))
                    .map(|_| ()),
            ),
            (
                "Get",
                env.kms.get_certificate(&env.me, id_req(gone)).map(|_| ()),
            ),
            (
                "Delete",
                env.kms
                    .delete_certificate(&env.me, id_req(gone))
                    .map(|_| ()),
            ),
            ("Upload", upload(&env, gone, &cert, None).map(|_| ())),
            ("Status", set_status(&env, gone, "INACTIVE").map(|_| ())),
            ("Sign", sign(&env, gone, PKCS1, b"m", None).map(|_| ())),
            (
                "Verify",
                verify(&env, gone, PKCS1, b"m", None, &sig).map(|_| ()),
            ),
            ("Encrypt", encrypt(&env, gone, OAEP256, b"m").map(|_| ())),
            (
                "Decrypt",
                decrypt(&env, gone, OAEP256, &[0u8; 256]).map(|_| ()),
            ),
            ("Tag", tag_cert(&env, gone, &[("k", "v")]).map(|_| ())),
            ("Untag", untag_cert(&env, gone, &["k"]).map(|_| ())),
        ];
        for (op, r) in results {
            let e = expect_err(r, "Certificate.NotFound");
            assert_eq!(e.http_status(), 404, "{op} {gone}");
        }
    }
    // A new engine over the same store agrees.
    let e = env
        .reopen()
        .describe_certificate(&env.me, id_req(&id))
        .unwrap_err();
    assert_eq!(e.code(), "Certificate.NotFound");
    // Nothing is left in storage for the deleted certificates.
    let records = env.storage.scan(b"", None, 100_000).unwrap();
    for (k, _) in &records {
        let k = String::from_utf8_lossy(k);
        assert!(
            !k.contains(&id) && !k.contains(&pending),
            "left behind: {k}"
        );
    }
    // An empty CertificateId is missing.
    expect_param_err(
        env.kms.describe_certificate(&env.me, id_req("")),
        "MissingParameter",
        "CertificateId",
    );
    expect_param_err(
        env.kms.delete_certificate(&env.me, id_req("")),
        "MissingParameter",
        "CertificateId",
    );
}

#[test]
fn certificate_ids_are_case_insensitive_and_distinct_from_keys() {
    let env = Env::new();
    let created = create(&env, "EC_P256");
    let upper = created.certificate_id.to_ascii_uppercase();
    assert_eq!(
        describe(&env, &upper).certificate_id,
        created.certificate_id
    );
    // A key id is not a certificate id, and a certificate id is not a key id.
    let key = env.create_key().key_id;
    expect_err(
        env.kms.describe_certificate(&env.me, id_req(&key)),
        "Certificate.NotFound",
    );
    expect_err(
        env.try_describe(&created.certificate_id),
        "Forbidden.KeyNotFound",
    );
}

// ---- tags ------------------------------------------------------------------------------------

#[test]
fn tags_on_certificates_follow_the_tag_rules() {
    let env = Env::new();
    let id = create(&env, "EC_P256").certificate_id;
    env.clock.advance(5);
    tag_cert(&env, &id, &[("env", "prod"), ("team", "pki")]).unwrap();
    assert_eq!(
        cert_tags(&env, &id),
        vec![("env".into(), "prod".into()), ("team".into(), "pki".into())]
    );
    assert_eq!(describe(&env, &id).updated_at, env.now());
    // Setting an existing key replaces its value.
    tag_cert(&env, &id, &[("env", "staging")]).unwrap();
    assert_eq!(
        cert_tags(&env, &id),
        vec![
            ("env".into(), "staging".into()),
            ("team".into(), "pki".into())
        ]
    );
    // Untag removes by key; absent keys are ignored.
    untag_cert(&env, &id, &["team", "absent"]).unwrap();
    assert_eq!(cert_tags(&env, &id), vec![("env".into(), "staging".into())]);

    // Tag rules.
    let long = "k".repeat(129);
    let max = "v".repeat(128);
    tag_cert(&env, &id, &[("a/b\\c_d-e.f+g=h:i@j", &max)]).unwrap();
    for (k, v) in [
        ("aliyun-key", "v"),
        ("Aliyun", "v"),
        ("acs:thing", "v"),
        ("", "v"),
        ("k", ""),
        ("has space", "v"),
        ("k", "bad value!"),
        ("emoji😀", "v"),
        (long.as_str(), "v"),
        ("k", long.as_str()),
    ] {
        expect_param_err(tag_cert(&env, &id, &[(k, v)]), "InvalidParameter", "Tags");
    }
    expect_param_err(
        untag_cert(&env, &id, &["bad key!"]),
        "InvalidParameter",
        "TagKeys",
    );
    expect_param_err(tag_cert(&env, &id, &[]), "MissingParameter", "Tags");
    expect_param_err(untag_cert(&env, &id, &[]), "MissingParameter", "TagKeys");
    assert_eq!(cert_tags(&env, &id).len(), 2);

    // At most 20 tags; the failed call changes nothing.
    let names: Vec<String> = (0..18).map(|i| format!("t{i:02}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    tag_cert(&env, &id, &pairs).unwrap();
    assert_eq!(cert_tags(&env, &id).len(), 20);
    tag_cert(&env, &id, &[("t00", "replaced")]).unwrap();
    let before = cert_tags(&env, &id);
    let e = expect_err(
        tag_cert(&env, &id, &[("one-more", "v")]),
        "Rejected.LimitExceeded",
    );
    assert_eq!(e.http_status(), 400);
    assert_eq!(cert_tags(&env, &id), before);
    untag_cert(&env, &id, &["t00"]).unwrap();
    tag_cert(&env, &id, &[("one-more", "v")]).unwrap();
    assert_eq!(cert_tags(&env, &id).len(), 20);

    // One target only.
    let key = env.create_key().key_id;
    expect_param_err(
        env.kms.tag_resource(
            &env.me,
            TagResourceRequest {
                key_id: key.clone(),
                certificate_id: id.clone(),
                tags: tag_list(&[("k", "v")]),
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "CertificateId",
    );
    // Tagging a certificate touches no key.
    assert!(env.tags(&key).is_empty());
    // Tags survive an upload and status changes.
    let ca = Ca::ec();
    let csr = get(&env, &id).csr;
    upload(&env, &id, &ca.issue("t", &csr), None).unwrap();
    set_status(&env, &id, "REVOKED").unwrap();
    assert_eq!(cert_tags(&env, &id).len(), 20);
    // ... and a REVOKED certificate can still be tagged.
    untag_cert(&env, &id, &["one-more"]).unwrap();
    assert_eq!(cert_tags(&env, &id).len(), 19);
}

// ---- storage ---------------------------------------------------------------------------------

#[test]
fn certificate_records_are_sealed_in_storage() {
    let env = Env::new();
    let ca = Ca::rsa();
    let subject = "CN=plaintext-marker.example.com,OU=Sealed Unit,O=Sealed Org,C=CN";
    let mut spkis = Vec::new();
    let mut certs = Vec::new();
    for spec in SPECS {
        let created = try_create(&env, subject, &["sealed-san.example.com"], Some(spec)).unwrap();
        let cert = ca.issue(spec, &created.csr);
        upload(&env, &created.certificate_id, &cert, Some(&ca.pem())).unwrap();
        tag_cert(
            &env,
            &created.certificate_id,
            &[("sealedtagkey", "sealedtagvalue")],
        )
        .unwrap();
        let desc = describe(&env, &created.certificate_id);
        spkis.push((spec, pem_body(&desc.subject_public_key, "PUBLIC KEY")));
        certs.push((spec, pem_body(&cert, "CERTIFICATE"), created.csr));
    }
    let records = env.storage.scan(b"", None, 100_000).unwrap();
    assert!(!records.is_empty());
    let all: Vec<u8> = records
        .iter()
        .flat_map(|(k, e)| k.iter().chain(e.value.iter()).copied())
        .collect();
    for (spec, spki) in &spkis {
        assert!(
            !contains(&all, spki),
            "{spec}: the SubjectPublicKey DER is stored in plain"
        );
        // Nor its Base64 (a JSON record would carry it so).
        let text = b64(spki);
        assert!(
            !contains(&all, &text.as_bytes()[8..48]),
            "{spec}: SPKI Base64 in plain"
        );
        // The raw key bits (modulus or EC point) are not there either.
        assert!(
            !contains(&all, &spki[spki.len() - 40..]),
            "{spec}: key bits in plain"
        );
    }
    for (spec, der, csr) in &certs {
        assert!(
            !contains(&all, &der[der.len() - 64..]),
            "{spec}: certificate DER in plain"
        );
        assert!(
            !contains(&all, &b64(der).as_bytes()[100..160]),
            "{spec}: certificate PEM"
        );
        let csr_line = csr.lines().nth(3).unwrap();
        assert!(!contains(&all, csr_line.as_bytes()), "{spec}: CSR in plain");
    }
    for marker in [
        "plaintext-marker",
        "Sealed Org",
        "sealed-san",
        "sealedtagkey",
        "sealedtagvalue",
        "PENDING",
        "ACTIVE",
        "BEGIN",
    ] {
        assert!(
            !contains(&all, marker.as_bytes()),
            "{marker} is stored in plain"
        );
    }
}

#[test]
fn certificates_survive_a_restart() {
    let env = Env::new();
    let ca = Ca::rsa();
    let (id, cert) = active(&env, &ca, "RSA_2048");
    tag_cert(&env, &id, &[("k", "v")]).unwrap();
    let before = describe(&env, &id);
    let ct = encrypt(&env, &id, OAEP256, b"kept").unwrap();
    let reopened = env.reopen();
    let after = reopened.describe_certificate(&env.me, id_req(&id)).unwrap();
    assert_eq!(
        DescribeCertificateResponse {
            request_id: String::new(),
            ..after
        },
        DescribeCertificateResponse {
            request_id: String::new(),
            ..before
        }
    );
    let got = reopened.get_certificate(&env.me, id_req(&id)).unwrap();
    assert!(same_pem(got.certificate.as_deref().unwrap(), &cert));
    let pt = reopened
        .certificate_private_key_decrypt(
            &env.me,
            CertificatePrivateKeyDecryptRequest {
                certificate_id: id.clone(),
                algorithm: OAEP256.into(),
                ciphertext_blob: ct,
            },
        )
        .unwrap();
    assert_eq!(pt.plaintext.as_slice(), b"kept");
}

// ---- wire decoding ---------------------------------------------------------------------------

#[test]
fn requests_decode_from_alibaba_style_strings() {
    use kms_core::api::decode_request;
    let env = Env::new();
    let ca = Ca::rsa();
    let req: CreateCertificateRequest = decode_request(json!({
        "Subject": SUBJECT,
        "SubjectAlternativeNames": "[\"www.example.com\",\"*.example.com\"]",
        "KeySpec": "RSA_2048",
        "ExportablePrivateKey": "false",
    }))
    .unwrap();
    assert_eq!(
        req.subject_alternative_names,
        sans(&["www.example.com", "*.example.com"])
    );
    assert_eq!(req.exportable_private_key, Some(false));
    let created = env.kms.create_certificate(&env.me, req).unwrap();
    let id = created.certificate_id.clone();
    let desc = describe(&env, &id);
    assert!(
        !desc.exportable_private_key,
        "ExportablePrivateKey \"false\" is recorded"
    );
    assert_eq!(
        desc.subject_alternative_names,
        sans(&["www.example.com", "*.example.com"])
    );
    // The response serializes to Alibaba's names.
    let wire = serde_json::to_value(&created).unwrap();
    for field in ["RequestId", "CertificateId", "Arn", "Csr"] {
        assert!(wire.get(field).is_some(), "{field} in {wire}");
    }
    // "true" and native values too.
    for v in [json!("true"), json!("TRUE"), json!(true)] {
        let req: CreateCertificateRequest = decode_request(json!({
            "Subject": SUBJECT, "SubjectAlternativeNames": "[]", "KeySpec": "EC_P256",
            "ExportablePrivateKey": v,
        }))
        .unwrap();
        assert_eq!(req.exportable_private_key, Some(true));
    }
    let req: CreateCertificateRequest =
        decode_request(json!({"Subject": SUBJECT, "SubjectAlternativeNames": ["a.example.com"]}))
            .unwrap();
    assert_eq!(req.subject_alternative_names, sans(&["a.example.com"]));
    assert_eq!(req.exportable_private_key, None);
    // Malformed wire values name their parameter.
    expect_param_err(
        decode_request::<CreateCertificateRequest>(json!({
            "Subject": SUBJECT, "SubjectAlternativeNames": "not json",
        })),
        "InvalidParameter",
        "SubjectAlternativeNames",
    );
    expect_param_err(
        decode_request::<CreateCertificateRequest>(json!({
            "Subject": SUBJECT, "ExportablePrivateKey": "maybe",
        })),
        "InvalidParameter",
        "ExportablePrivateKey",
    );

    // UploadCertificate and UpdateCertificateStatus.
    let cert = ca.issue("w", &created.csr);
    let up: UploadCertificateRequest = decode_request(json!({
        "CertificateId": id, "Certificate": cert, "CertificateChain": ca.pem(),
    }))
    .unwrap();
    env.kms.upload_certificate(&env.me, up).unwrap();
    let st: UpdateCertificateStatusRequest =
        decode_request(json!({"CertificateId": id, "Status": "INACTIVE"})).unwrap();
    env.kms.update_certificate_status(&env.me, st).unwrap();
    assert_eq!(status(&env, &id), "INACTIVE");
    set_status(&env, &id, "ACTIVE").unwrap();

    // Sign and verify with Base64 on the wire.
    let message = b"wire message";
    let sreq: CertificatePrivateKeySignRequest = decode_request(json!({
        "CertificateId": id, "Algorithm": PSS, "Message": b64(message), "MessageType": "RAW",
    }))
    .unwrap();
    assert_eq!(sreq.message, message);
    let signed = env.kms.certificate_private_key_sign(&env.me, sreq).unwrap();
    let wire = serde_json::to_value(&signed).unwrap();
    let sig_b64 = wire["SignatureValue"].as_str().unwrap().to_owned();
    assert_eq!(b64d(&sig_b64), signed.signature_value);
    let vreq: CertificatePublicKeyVerifyRequest = decode_request(json!({
        "CertificateId": id, "Algorithm": PSS, "Message": b64(&sha256(message)),
        "MessageType": "DIGEST", "SignatureValue": sig_b64,
    }))
    .unwrap();
    let verified = env
        .kms
        .certificate_public_key_verify(&env.me, vreq)
        .unwrap();
    assert!(verified.signature_valid);
    assert_eq!(
        serde_json::to_value(&verified).unwrap()["SignatureValid"],
        json!(true)
    );
    expect_param_err(
        decode_request::<CertificatePrivateKeySignRequest>(json!({
            "CertificateId": id, "Algorithm": PSS, "Message": "not base64!!",
        })),
        "InvalidParameter",
        "Message",
    );

    // Encrypt and decrypt with Base64 on the wire.
    let ereq: CertificatePublicKeyEncryptRequest = decode_request(json!({
        "CertificateId": id, "Algorithm": OAEP256, "Plaintext": b64(b"wire secret"),
    }))
    .unwrap();
    let enc = env
        .kms
        .certificate_public_key_encrypt(&env.me, ereq)
        .unwrap();
    let blob = serde_json::to_value(&enc).unwrap()["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_owned();
    let dreq: CertificatePrivateKeyDecryptRequest = decode_request(json!({
        "CertificateId": id, "Algorithm": OAEP256, "CiphertextBlob": blob,
    }))
    .unwrap();
    let dec = env
        .kms
        .certificate_private_key_decrypt(&env.me, dreq)
        .unwrap();
    assert_eq!(
        serde_json::to_value(&dec).unwrap()["Plaintext"],
        json!(b64(b"wire secret"))
    );

    // Tags with CertificateId, TagKeys as JSON text.
    let treq: TagResourceRequest = decode_request(json!({
        "CertificateId": id, "Tags": "[{\"TagKey\":\"env\",\"TagValue\":\"prod\"}]",
    }))
    .unwrap();
    env.kms.tag_resource(&env.me, treq).unwrap();
    assert_eq!(cert_tags(&env, &id), vec![("env".into(), "prod".into())]);
    let ureq: UntagResourceRequest =
        decode_request(json!({"CertificateId": id, "TagKeys": "[\"env\"]"})).unwrap();
    env.kms.untag_resource(&env.me, ureq).unwrap();
    assert!(cert_tags(&env, &id).is_empty());

    // DescribeCertificate in wire form: Alibaba's names, ISO 8601 times.
    let desc = describe(&env, &id);
    let wire = serde_json::to_value(&desc).unwrap();
    for field in [
        "RequestId",
        "CertificateId",
        "Arn",
        "Subject",
        "Issuer",
        "Serial",
        "NotBefore",
        "NotAfter",
        "Status",
        "KeySpec",
        "SubjectAlternativeNames",
        "SubjectKeyIdentifier",
        "SubjectPublicKey",
        "SignatureAlgorithm",
        "ExportablePrivateKey",
        "CreatedAt",
        "UpdatedAt",
        "Tags",
    ] {
        assert!(wire.get(field).is_some(), "{field} missing in {wire}");
    }
    assert_eq!(wire["CreatedAt"], json!(START.to_string()));
    assert!(wire["NotBefore"].as_str().unwrap().ends_with('Z'));
    assert_eq!(wire["Status"], json!("ACTIVE"));
    assert_eq!(wire["ExportablePrivateKey"], json!(false));
    assert!(wire["Tags"]["Tag"].as_array().unwrap().is_empty());
    let back: DescribeCertificateResponse = serde_json::from_value(wire).unwrap();
    assert_eq!(back, desc);
}
