//! TLS: the server configuration from PEM files, the development certificates, mutual TLS and
//! reloading, over real TCP connections on 127.0.0.1 with tokio-rustls on both sides.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kms_server::tls::{
    server_config, write_dev_cert, DevCertPaths, ReloadableTls, TlsFiles, ALPN_HTTP_1_1,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// No step of a test should take anywhere near this long.
const TIMEOUT: Duration = Duration::from_secs(10);

async fn timed<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f).await.expect("timed out")
}

// The workspace's tokio has no `io-util` feature: small read/write helpers over the poll API.

async fn write_all<S: AsyncWrite + Unpin>(s: &mut S, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *s).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    poll_fn(|cx| Pin::new(&mut *s).poll_flush(cx)).await
}

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut rb = ReadBuf::new(&mut *buf);
        match Pin::new(&mut *s).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn read_exact<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = read_some(s, &mut buf[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(())
}

/// Sends `msg` and expects it echoed back.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) -> io::Result<()> {
    write_all(s, msg).await?;
    let mut back = vec![0u8; msg.len()];
    read_exact(s, &mut back).await?;
    if back != msg {
        return Err(io::Error::other("echo mismatch"));
    }
    Ok(())
}

/// An echo server on 127.0.0.1: each accepted connection takes the acceptor `acceptor()`
/// returns at that moment; every handshake's outcome is sent on `handshakes`.
struct EchoServer {
    addr: SocketAddr,
    handshakes: mpsc::UnboundedReceiver<Result<(), String>>,
}

impl EchoServer {
    async fn start(acceptor: impl Fn() -> TlsAcceptor + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, handshakes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut tls) => {
                            let _ = tx.send(Ok(()));
                            let mut buf = [0u8; 1024];
                            while let Ok(n) = read_some(&mut tls, &mut buf).await {
                                if n == 0 || write_all(&mut tls, &buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                });
            }
        });
        Self { addr, handshakes }
    }

    async fn fixed(config: rustls::ServerConfig) -> Self {
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Self::start(move || acceptor.clone()).await
    }

    /// The outcome of the next server-side handshake.
    async fn next_handshake(&mut self) -> Result<(), String> {
        timed(self.handshakes.recv()).await.unwrap()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn roots(cas: &[&Path]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        for cert in certs(ca) {
            roots.add(cert).unwrap();
        }
    }
    roots
}

/// A client trusting the CA certificates in `cas`, offering `http/1.1`.
fn client(
    cas: &[&Path],
    versions: Option<&[&'static SupportedProtocolVersion]>,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider());
    let builder = match versions {
        Some(versions) => builder.with_protocol_versions(versions),
        None => builder.with_safe_default_protocol_versions(),
    }
    .unwrap()
    .with_root_certificates(roots(cas));
    let mut config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Arc::new(config)
}

fn client_auth_files(
    cert: &Path,
    key: &Path,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (certs(cert), PrivateKeyDer::from_pem_file(key).unwrap())
}

async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(name).unwrap().to_owned();
    let tcp = TcpStream::connect(addr).await?;
    timed(TlsConnector::from(config).connect(name, tcp)).await
}

/// Connects and completes an echo exchange.
async fn connect_and_exchange(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let mut stream = connect(addr, config, name).await?;
    timed(exchange(&mut stream, b"hello")).await?;
    Ok(stream)
}

fn peer_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A fresh development certificate set in `<tmp>/<name>` (a directory `write_dev_cert`
/// creates).
fn dev_certs(tmp: &tempfile::TempDir, name: &str) -> DevCertPaths {
    write_dev_cert(&tmp.path().join(name), false).unwrap()
}

/// Copies `from`'s server certificate and key to `to`'s paths.
fn install(from: &DevCertPaths, to: &TlsFiles) {
    std::fs::copy(&from.cert, &to.cert).unwrap();
    std::fs::copy(&from.key, &to.key).unwrap();
}

/// Server files at fixed paths under `<tmp>/live`, holding a copy of `initial`.
fn live_files(tmp: &tempfile::TempDir, initial: &DevCertPaths) -> TlsFiles {
    let dir = tmp.path().join("live");
    std::fs::create_dir(&dir).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        client_ca: None,
    };
    install(initial, &files);
    files
}

#[tokio::test]
async fn dev_certs_complete_a_handshake_for_localhost_and_loopback_ips_with_private_keys_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let dev = write_dev_cert(&dir, false).unwrap();
    assert_eq!(dev.ca, dir.join("ca.pem"));
    assert_eq!(dev.cert, dir.join("cert.pem"));
    assert_eq!(dev.key, dir.join("key.pem"));
    assert_eq!(dev.client_cert, dir.join("client-cert.pem"));
    assert_eq!(dev.client_key, dir.join("client-key.pem"));

    // Exactly the five files; the CA's private key is nowhere.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca.pem",
            "cert.pem",
            "client-cert.pem",
            "client-key.pem",
            "key.pem"
        ]
    );
    for public in [&dev.ca, &dev.cert, &dev.client_cert] {
        let text = std::fs::read_to_string(public).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{}", public.display());
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 1);
    }
    for key in [&dev.key, &dev.client_key] {
        let text = std::fs::read_to_string(key).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dev.key), 0o600);
        assert_eq!(mode(&dev.client_key), 0o600);
    }

    let mut server = EchoServer::fixed(server_config(&dev.tls_files(false)).unwrap()).await;
    let config = client(&[&dev.ca], None, None);
    for name in ["localhost", "127.0.0.1", "::1"] {
        let stream = connect_and_exchange(server.addr, Arc::clone(&config), name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(ALPN_HTTP_1_1));
        assert_eq!(peer_cert(&stream), certs(&dev.cert)[0]);
        server.next_handshake().await.unwrap();
    }

    // A name the certificate does not carry is refused by the client.
    assert!(
        connect_and_exchange(server.addr, Arc::clone(&config), "example.com")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dev_certs_are_not_overwritten_without_force_and_force_replaces_them_with_keys_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let first = write_dev_cert(&dir, false).unwrap();
    let cert_before = std::fs::read(&first.cert).unwrap();

    let err = write_dev_cert(&dir, false).unwrap_err().to_string();
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert!(err.contains(&first.key.display().to_string()), "{err}");
    assert_eq!(
        std::fs::read(&first.cert).unwrap(),
        cert_before,
        "untouched"
    );

    // Only one file there is enough to refuse.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("client-key.pem"), "mine").unwrap();
    let err = write_dev_cert(&other, false).unwrap_err().to_string();
    assert!(err.contains("client-key.pem"), "{err}");
    assert_eq!(
        std::fs::read_to_string(other.join("client-key.pem")).unwrap(),
        "mine"
    );
    assert!(!other.join("key.pem").exists());

    // With force: new certificates, and the key mode is 0600 even if the old file was wider.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&first.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let second = write_dev_cert(&dir, true).unwrap();
    assert_ne!(std::fs::read(&second.cert).unwrap(), cert_before);
    #[cfg(unix)]
    {
        assert_eq!(mode(&second.key), 0o600);
        assert_eq!(mode(&second.client_key), 0o600);
    }
    server_config(&second.tls_files(true)).unwrap();
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_offered_and_a_default_client_negotiates_tls_1_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = dev_certs(&tmp, "certs");
    let config = server_config(&dev.tls_files(false)).unwrap();
    assert_eq!(config.alpn_protocols, vec![ALPN_HTTP_1_1.to_vec()]);
    let mut server = EchoServer::fixed(config).await;

    let tls12 = client(&[&dev.ca], Some(&[&rustls::version::TLS12]), None);
    let stream = connect_and_exchange(server.addr, tls12, "localhost")
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    server.next_handshake().await.unwrap();

    let tls13 = client(&[&dev.ca], Some(&[&rustls::version::TLS13]), None);
    let stream = connect_and_exchange(server.addr, tls13, "localhost")
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    server.next_handshake().await.unwrap();

    let default = client(&[&dev.ca], None, None);
    let stream = connect_and_exchange(server.addr, default, "localhost")
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    server.next_handshake().await.unwrap();
}

/// A CA unrelated to the development one, and a client certificate it signed.
fn foreign_client_auth() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "some other CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "kms development client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, &ca).unwrap();
    (
        vec![cert.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_signed_by_the_client_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = dev_certs(&tmp, "certs");
    let files = dev.tls_files(true);
    assert_eq!(files.client_ca.as_deref(), Some(dev.ca.as_path()));
    let mut server = EchoServer::fixed(server_config(&files).unwrap()).await;

    // No certificate: with TLS 1.3 the client's side of the handshake may complete, the
    // server's does not, and nothing comes back.
    let anonymous = client(&[&dev.ca], None, None);
    assert!(connect_and_exchange(server.addr, anonymous, "localhost")
        .await
        .is_err());
    let err = server.next_handshake().await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The development client certificate, over TLS 1.3 and 1.2.
    for versions in [None, Some(&[&rustls::version::TLS12][..])] {
        let trusted = client(
            &[&dev.ca],
            versions,
            Some(client_auth_files(&dev.client_cert, &dev.client_key)),
        );
        connect_and_exchange(server.addr, trusted, "localhost")
            .await
            .unwrap();
        server.next_handshake().await.unwrap();
    }

    // A client certificate from another CA.
    let foreign = client(&[&dev.ca], None, Some(foreign_client_auth()));
    assert!(connect_and_exchange(server.addr, foreign, "localhost")
        .await
        .is_err());
    let err = server.next_handshake().await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The server's own certificate is not a client certificate (no clientAuth EKU).
    let server_cert_as_client = client(
        &[&dev.ca],
        None,
        Some(client_auth_files(&dev.cert, &dev.key)),
    );
    assert!(
        connect_and_exchange(server.addr, server_cert_as_client, "localhost")
            .await
            .is_err()
    );
    server.next_handshake().await.unwrap_err();
}

#[tokio::test]
async fn reload_serves_new_connections_the_new_certificate_and_keeps_open_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let a = dev_certs(&tmp, "a");
    let b = dev_certs(&tmp, "b");
    let files = live_files(&tmp, &a);
    let tls = Arc::new(ReloadableTls::load(files.clone()).unwrap());
    assert_eq!(tls.files(), &files);
    let acceptors = Arc::clone(&tls);
    let mut server = EchoServer::start(move || acceptors.acceptor()).await;
    let config = client(&[&a.ca, &b.ca], None, None);

    let mut before = connect_and_exchange(server.addr, Arc::clone(&config), "localhost")
        .await
        .unwrap();
    server.next_handshake().await.unwrap();
    let cert_a = certs(&a.cert)[0].clone();
    assert_eq!(peer_cert(&before), cert_a);

    install(&b, &files);
    tls.reload().unwrap();

    let after = connect_and_exchange(server.addr, Arc::clone(&config), "localhost")
        .await
        .unwrap();
    server.next_handshake().await.unwrap();
    let cert_b = certs(&b.cert)[0].clone();
    assert_ne!(cert_a, cert_b);
    assert_eq!(peer_cert(&after), cert_b);

    // The connection opened before the reload still works, on its original certificate.
    timed(exchange(&mut before, b"still here")).await.unwrap();
    assert_eq!(peer_cert(&before), cert_a);

    // A client trusting only the old CA no longer gets in.
    let only_a = client(&[&a.ca], None, None);
    assert!(connect_and_exchange(server.addr, only_a, "localhost")
        .await
        .is_err());
}

#[tokio::test]
async fn reload_with_a_broken_file_keeps_the_previous_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let a = dev_certs(&tmp, "a");
    let b = dev_certs(&tmp, "b");
    let files = live_files(&tmp, &a);
    let tls = Arc::new(ReloadableTls::load(files.clone()).unwrap());
    let acceptors = Arc::clone(&tls);
    let mut server = EchoServer::start(move || acceptors.acceptor()).await;
    let config = client(&[&a.ca, &b.ca], None, None);
    let cert_a = certs(&a.cert)[0].clone();

    let mut before = connect_and_exchange(server.addr, Arc::clone(&config), "localhost")
        .await
        .unwrap();
    server.next_handshake().await.unwrap();
    assert_eq!(peer_cert(&before), cert_a);

    // Half an update: the new certificate, and garbage where its key should be.
    std::fs::copy(&b.cert, &files.cert).unwrap();
    std::fs::write(&files.key, "this is not a key\n").unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains(&files.key.display().to_string()), "{err}");
    assert!(err.contains("no private key"), "{err}");

    // A key that is not the certificate's: refused too.
    std::fs::copy(&a.key, &files.key).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");

    // A missing file.
    std::fs::remove_file(&files.key).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");

    let after = connect_and_exchange(server.addr, Arc::clone(&config), "localhost")
        .await
        .unwrap();
    server.next_handshake().await.unwrap();
    assert_eq!(peer_cert(&after), cert_a, "still the previous certificate");
    timed(exchange(&mut before, b"still here")).await.unwrap();

    // Once the files are whole again, reload takes them.
    std::fs::copy(&b.key, &files.key).unwrap();
    tls.reload().unwrap();
    let fixed = connect_and_exchange(server.addr, config, "localhost")
        .await
        .unwrap();
    assert_eq!(peer_cert(&fixed), certs(&b.cert)[0]);
}

#[test]
fn mismatched_key_and_certificate_are_refused_naming_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let a = dev_certs(&tmp, "a");
    let b = dev_certs(&tmp, "b");
    let files = TlsFiles {
        cert: a.cert.clone(),
        key: b.key.clone(),
        client_ca: None,
    };
    let err = server_config(&files).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "the private key in {} does not match the certificate in {}",
            b.key.display(),
            a.cert.display()
        )
    );
    let err = ReloadableTls::load(files).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");

    // The client key with the server certificate of the same set: also a mismatch.
    let files = TlsFiles {
        cert: a.cert.clone(),
        key: a.client_key.clone(),
        client_ca: None,
    };
    assert!(server_config(&files)
        .unwrap_err()
        .to_string()
        .contains("does not match"));
}

#[test]
fn unreadable_or_malformed_files_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = dev_certs(&tmp, "certs");
    let dir = tmp.path();
    let text = |p: &PathBuf| p.display().to_string();

    let missing = dir.join("missing.pem");
    let err = server_config(&TlsFiles {
        cert: missing.clone(),
        key: dev.key.clone(),
        client_ca: None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("cannot read {}: ", text(&missing))),
        "{err}"
    );

    // The key file given as the certificate: no CERTIFICATE block.
    let err = server_config(&TlsFiles {
        cert: dev.key.clone(),
        key: dev.key.clone(),
        client_ca: None,
    })
    .unwrap_err()
    .to_string();
    assert_eq!(err, format!("no CERTIFICATE block in {}", text(&dev.key)));

    // The certificate given as the key: no private key.
    let err = server_config(&TlsFiles {
        cert: dev.cert.clone(),
        key: dev.cert.clone(),
        client_ca: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("no private key"), "{err}");
    assert!(err.ends_with(&text(&dev.cert)), "{err}");

    // A broken PEM block.
    let broken = dir.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = server_config(&TlsFiles {
        cert: broken.clone(),
        key: dev.key.clone(),
        client_ca: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains(&text(&broken)), "{err}");

    // A client CA file without certificates.
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = server_config(&TlsFiles {
        cert: dev.cert.clone(),
        key: dev.key.clone(),
        client_ca: Some(empty.clone()),
    })
    .unwrap_err()
    .to_string();
    assert_eq!(err, format!("no CERTIFICATE block in {}", text(&empty)));

    // A chain file (the certificate, then the CA) is accepted.
    let chain = dir.join("chain.pem");
    let mut pem = std::fs::read_to_string(&dev.cert).unwrap();
    pem.push_str(&std::fs::read_to_string(&dev.ca).unwrap());
    std::fs::write(&chain, pem).unwrap();
    server_config(&TlsFiles {
        cert: chain,
        key: dev.key.clone(),
        client_ca: None,
    })
    .unwrap();
}
