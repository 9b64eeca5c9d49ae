//! TLS for the HTTP service: the rustls server configuration read from PEM files, reloadable
//! (on SIGHUP) without touching open connections, optional mutual TLS, and the development
//! certificates written by `kms dev-cert`.
//!
//! - [`server_config`] builds a [`rustls::ServerConfig`] on the ring provider: TLS 1.2 and 1.3
//!   only, ALPN `http/1.1`, the certificate chain and its private key (checked to match), and
//!   with a client CA file a verifier that requires a client certificate signed by that CA.
//! - [`ReloadableTls`] holds the current configuration; [`ReloadableTls::acceptor`] hands each
//!   new connection the configuration current when it is accepted, and
//!   [`ReloadableTls::reload`] swaps in a new one only if the files load cleanly.
//! - [`write_dev_cert`] writes a throwaway local CA certificate, a server certificate for
//!   `localhost`, `127.0.0.1` and `::1` and a client certificate, for development only.
//!
//! Error messages name the file and what is wrong with it; they never contain key material.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// The ALPN protocol the service speaks.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the server certificate first, then any intermediates (all the
    /// `CERTIFICATE` blocks of the file, at least one).
    pub cert: PathBuf,
    /// The private key of the server certificate: PKCS#8 (`PRIVATE KEY`), SEC1
    /// (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`), unencrypted.
    pub key: PathBuf,
    /// With mutual TLS: the CA certificates (all the `CERTIFICATE` blocks of the file) one of
    /// which must have signed the certificate every client presents.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up; the message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// A TLS server configuration that can be reloaded from its files (on SIGHUP) without touching
/// connections already open: each new connection takes the configuration current when it is
/// accepted.
pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadableTls {
    /// Loads the configuration from `files` ([`server_config`]).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on error keeps the previous configuration and returns the error.
    ///
    /// Connections already open keep the configuration they were accepted with.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        // The lock only guards an `Arc` swap, which cannot leave it half-written: a poisoned
        // lock still holds a valid configuration.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// An acceptor over the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config())
    }

    /// The files the configuration is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Builds the server config: the ring provider, TLS 1.2 and 1.3 only, ALPN `http/1.1`, the
/// certificate chain from `cert` (all CERTIFICATE blocks, at least one), the key from `key`
/// (PKCS#8, SEC1 or PKCS#1), checked to match the certificate; with `client_ca` a verifier that
/// requires a client certificate signed by one of the CA certificates in that file (mutual
/// TLS), otherwise no client authentication.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let chain = read_certificates(&files.cert)?;
    let certified_key = read_certified_key(&provider, chain, &files.cert, &files.key)?;

    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("cannot enable TLS 1.2 and 1.3: {e}")))?;

    let builder = match &files.client_ca {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for ca in read_certificates(ca_path)? {
                roots.add(ca).map_err(|e| {
                    TlsError(format!(
                        "a CA certificate in {} is not usable: {e}",
                        ca_path.display()
                    ))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| {
                        TlsError(format!(
                            "cannot verify client certificates with the CA certificates in {}: {e}",
                            ca_path.display()
                        ))
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };

    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)));
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(config)
}

/// Reads a whole file; the error names it.
fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
}

/// All the CERTIFICATE blocks of a PEM file, at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "no CERTIFICATE block in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of `key_path`, loaded by `provider` and checked against the end-entity
/// certificate of `chain` (read from `cert_path`).
fn read_certified_key(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let pem = read_file(key_path)?;
    let key_der = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError(format!(
                "no private key (an unencrypted PKCS#8 PRIVATE KEY, SEC1 EC PRIVATE KEY or \
                 PKCS#1 RSA PRIVATE KEY block) in {}",
                key_path.display()
            )))
        }
        Err(e) => return Err(pem_error(key_path, &e)),
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            TlsError(format!(
                "the private key in {} is not usable: {e}",
                key_path.display()
            ))
        })?;
    let certified_key = CertifiedKey::new(chain, signing_key);
    match certified_key.keys_match() {
        Ok(()) => Ok(certified_key),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError(format!(
                "the private key in {} does not match the certificate in {}",
                key_path.display(),
                cert_path.display()
            )))
        }
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Err(TlsError(format!(
            "cannot check that the private key in {} matches the certificate in {}",
            key_path.display(),
            cert_path.display()
        ))),
        Err(e) => Err(TlsError(format!(
            "the first certificate in {} is not a usable X.509 certificate: {e}",
            cert_path.display()
        ))),
    }
}

/// A PEM syntax error in `path`. The pem errors name markers and header lines, never the
/// base64 contents, so this is safe for key files too.
fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    TlsError(format!("cannot parse the PEM in {}: {e}", path.display()))
}

/// What `kms dev-cert --out DIR` writes.
#[derive(Debug, Clone)]
pub struct DevCertPaths {
    /// `ca.pem`: the self-signed development CA certificate, to trust in clients.
    pub ca: PathBuf,
    /// `cert.pem`: the server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub cert: PathBuf,
    /// `key.pem`: the server certificate's private key (PKCS#8, mode 0600).
    pub key: PathBuf,
    /// `client-cert.pem`: a client certificate signed by the same CA, for trying mutual TLS.
    pub client_cert: PathBuf,
    /// `client-key.pem`: the client certificate's private key (PKCS#8, mode 0600).
    pub client_key: PathBuf,
}

impl DevCertPaths {
    /// The files under `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_cert: dir.join("client-cert.pem"),
            client_key: dir.join("client-key.pem"),
        }
    }

    /// The server's [`TlsFiles`]; with `mtls`, clients must present a certificate signed by
    /// the development CA.
    pub fn tls_files(&self, mtls: bool) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: mtls.then(|| self.ca.clone()),
        }
    }

    fn all(&self) -> [&Path; 5] {
        [
            &self.ca,
            &self.cert,
            &self.key,
            &self.client_cert,
            &self.client_key,
        ]
    }
}

/// Validity of the development CA.
const CA_DAYS: u64 = 3650;
/// Validity of the server and client certificates (the longest some TLS clients accept).
const LEAF_DAYS: u64 = 825;
/// Certificates start being valid this long before now, for clocks slightly behind.
const BACKDATE: Duration = Duration::from_secs(3600);
/// Mode of the private key files.
const KEY_MODE: u32 = 0o600;
/// Mode of the certificate files.
const CERT_MODE: u32 = 0o644;
/// Mode of a directory `write_dev_cert` creates.
const DIR_MODE: u32 = 0o700;

/// Writes, creating DIR (mode 0700) if needed: `ca.pem` (a new self-signed local CA, ECDSA
/// P-256, CA:true, keyCertSign, 10 years, CN "kms development CA"), `cert.pem` (server
/// certificate signed by it for DNS localhost and IP 127.0.0.1 and ::1, serverAuth EKU, 825
/// days) and `key.pem` (its private key, PKCS#8, file mode 0600 set explicitly whatever the
/// umask), plus `client-cert.pem`/`client-key.pem` (a client certificate signed by the same CA,
/// clientAuth EKU, CN "kms development client", key 0600) for trying mTLS.
///
/// The CA's private key is not written: it is discarded, so this development CA cannot sign
/// anything more. Refuses to overwrite existing files unless `force`.
pub fn write_dev_cert(dir: &Path, force: bool) -> Result<DevCertPaths, TlsError> {
    let paths = DevCertPaths::in_dir(dir);
    if !force {
        let existing: Vec<String> = paths
            .all()
            .iter()
            .filter(|p| fs::symlink_metadata(p).is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(TlsError(format!(
                "refusing to overwrite {} (use --force to replace)",
                existing.join(", ")
            )));
        }
    }

    // Generate everything before writing anything.
    let ca = generate_ca()?;
    let server = generate_leaf(&ca, Leaf::Server)?;
    let client = generate_leaf(&ca, Leaf::Client)?;
    let ca_pem = ca.pem();
    drop(ca); // the CA's private key goes with it

    create_dir(dir)?;
    write_file(&paths.ca, ca_pem.as_bytes(), CERT_MODE, force)?;
    write_file(&paths.cert, server.cert_pem.as_bytes(), CERT_MODE, force)?;
    write_file(&paths.key, server.key_pem.as_bytes(), KEY_MODE, force)?;
    write_file(
        &paths.client_cert,
        client.cert_pem.as_bytes(),
        CERT_MODE,
        force,
    )?;
    write_file(
        &paths.client_key,
        client.key_pem.as_bytes(),
        KEY_MODE,
        force,
    )?;
    Ok(paths)
}

fn rcgen_error(what: &str, e: &rcgen::Error) -> TlsError {
    TlsError(format!("cannot generate {what}: {e}"))
}

/// Sets `not_before` an hour ago and `not_after` `days` from now.
fn set_validity(params: &mut CertificateParams, days: u64) -> Result<(), TlsError> {
    let now = SystemTime::now();
    let not_after = Duration::from_secs(days.saturating_mul(86_400));
    params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    params.not_after = now
        .checked_add(not_after)
        .ok_or_else(|| TlsError("the certificate validity overflows the clock".into()))?
        .into();
    Ok(())
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn generate_ca() -> Result<CertifiedIssuer<'static, KeyPair>, TlsError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| rcgen_error("the CA key", &e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name("kms development CA");
    // Path length 0: it signs end-entity certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, CA_DAYS)?;
    CertifiedIssuer::self_signed(params, key).map_err(|e| rcgen_error("the CA certificate", &e))
}

#[derive(Clone, Copy)]
enum Leaf {
    Server,
    Client,
}

/// PEM texts of one generated leaf certificate and its key.
struct LeafPem {
    cert_pem: String,
    key_pem: Zeroizing<String>,
}

fn generate_leaf(ca: &CertifiedIssuer<'_, KeyPair>, leaf: Leaf) -> Result<LeafPem, TlsError> {
    let what = match leaf {
        Leaf::Server => "the server certificate",
        Leaf::Client => "the client certificate",
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| rcgen_error(what, &e))?;
    let mut params = match leaf {
        Leaf::Server => {
            let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            let mut params = CertificateParams::new(names).map_err(|e| rcgen_error(what, &e))?;
            params.distinguished_name = common_name("localhost");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params
        }
        Leaf::Client => {
            let mut params = CertificateParams::default();
            params.distinguished_name = common_name("kms development client");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params
        }
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_DAYS)?;
    let cert = params
        .signed_by(&key, ca)
        .map_err(|e| rcgen_error(what, &e))?;
    Ok(LeafPem {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// Creates `dir` (and its missing parents) with mode 0700 if it does not exist.
fn create_dir(dir: &Path) -> Result<(), TlsError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(TlsError(format!(
                "{} exists and is not a directory",
                dir.display()
            )))
        }
        Err(_) => {}
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder
        .create(dir)
        .map_err(|e| TlsError(format!("cannot create {}: {e}", dir.display())))?;
    set_mode(dir, DIR_MODE)
}

/// Sets the permission bits of `path` (the umask does not apply).
fn set_mode(path: &Path, mode: u32) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| {
            TlsError(format!(
                "cannot set the mode of {} to {mode:o}: {e}",
                path.display()
            ))
        })?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Writes a new file with `mode` (set explicitly, whatever the umask). With `force` an existing
/// file is removed first, so neither its mode nor a symbolic link there carries over.
fn write_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), TlsError> {
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TlsError(format!("cannot replace {}: {e}", path.display()))),
        }
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError(format!(
                "refusing to overwrite {} (use --force to replace)",
                path.display()
            ))
        } else {
            TlsError(format!("cannot create {}: {e}", path.display()))
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| {
                TlsError(format!(
                    "cannot set the mode of {} to {mode:o}: {e}",
                    path.display()
                ))
            })?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| TlsError(format!("cannot write {}: {e}", path.display())))
}
