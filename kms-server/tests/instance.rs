//! The instance gateway (`kms serve --instance-listen`, docs/wire.md "The instance API"): the
//! signature scheme against the official SDKs' own vectors, a Rust client written here (the
//! client key file opened with p12-keystore, requests signed with ring) through the whole
//! protocol, and every refusal answered as a protobuf `Error` with Alibaba's code and status.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use base64::Engine as _;
use common::*;
use kms_server::instance::{proto, string_to_sign};
use prost::Message;

const PASSWORD: &str = "gateway-pass1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn public_key(pem_file: &str) -> kms_core::PublicKey {
    let pem = std::fs::read_to_string(format!(
        "{}/tests/data/{pem_file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    kms_core::PublicKey::from_spki_der("PublicKey", &der).unwrap()
}

fn verifies(key: &kms_core::PublicKey, text: &str, authorization: &str) -> bool {
    use sha2::Digest;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(authorization.strip_prefix("Bearer ").unwrap())
        .unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
    key.verify(
        kms_core::SigningAlgorithm::RsaPkcs1Sha256,
        &digest,
        &signature,
    )
    .unwrap()
}

#[test]
fn the_string_to_sign_and_signature_match_the_official_sdks_vectors() {
    let vectors: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/instance_vectors.json"
        ))
        .unwrap(),
    )
    .unwrap();
    // The Java SDK's unit test: its client key signs "string to sign" to this Authorization.
    let java = &vectors["java"];
    let java_key = public_key("instance_java_pub.pem");
    assert!(verifies(
        &java_key,
        java["string_to_sign"].as_str().unwrap(),
        java["authorization"].as_str().unwrap()
    ));
    assert!(!verifies(
        &java_key,
        "string to sign!",
        java["authorization"].as_str().unwrap()
    ));
    // A request of the Python SDK as it was sent: the string to sign rebuilt from its headers
    // is the SDK's, the body hash is its content-sha256, and the signature verifies.
    let captured = &vectors["captured"];
    let headers: Vec<(String, String)> = captured["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_owned(),
                h[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1
            .clone()
    };
    let text = string_to_sign(
        "POST",
        &get("content-sha256"),
        &get("content-type"),
        &get("date"),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    );
    assert_eq!(text, captured["string_to_sign"].as_str().unwrap());
    let body = hex_decode(captured["body_hex"].as_str().unwrap());
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(sha, get("content-sha256"));
    assert!(verifies(
        &public_key("instance_captured_pub.pem"),
        &text,
        &get("authorization")
    ));
    let request = proto::EncryptRequest::decode(&body[..]).unwrap();
    assert_eq!(
        (
            request.key_id.as_str(),
            &request.plaintext[..],
            request.algorithm.as_str()
        ),
        ("key-abc", &b"hello"[..], "AES_GCM")
    );
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A client of the instance API written here: the client key file's PKCS#12 opened with
/// p12-keystore, each request signed with ring.
struct Client {
    addr: std::net::SocketAddr,
    key_id: String,
    signer: ring::signature::RsaKeyPair,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn error(&self) -> proto::Error {
        assert!(self.status >= 400, "status {}", self.status);
        proto::Error::decode(&self.body[..]).unwrap()
    }
}

fn http_date(offset_secs: i64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset_secs;
    let iso = kms_core::UnixTime(t).to_string(); // 2026-12-02T18:04:21Z
    let days = t.div_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][iso[5..7].parse::<usize>().unwrap() - 1];
    format!(
        "{weekday}, {} {month} {} {} GMT",
        &iso[8..10],
        &iso[..4],
        &iso[11..19]
    )
}

impl Client {
    fn from_file(addr: std::net::SocketAddr, file: &str, password: &str) -> Self {
        let file: serde_json::Value = serde_json::from_str(file).unwrap();
        let p12 = base64::engine::general_purpose::STANDARD
            .decode(file["PrivateKeyData"].as_str().unwrap())
            .unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &p12,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        let signer = ring::signature::RsaKeyPair::from_pkcs8(chain.key().as_der()).unwrap();
        Client {
            addr,
            key_id: file["KeyId"].as_str().unwrap().to_owned(),
            signer,
        }
    }

    /// Sends `body` as `api`; `tweak` may change the headers after signing.
    fn send_with(
        &self,
        api: &str,
        body: &[u8],
        date: &str,
        tweak: impl FnOnce(&mut Vec<(String, String)>),
    ) -> Answer {
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let mut headers: Vec<(String, String)> = vec![
            ("date".into(), date.into()),
            ("content-type".into(), "application/x-protobuf".into()),
            ("content-sha256".into(), sha.clone()),
            ("x-kms-apiversion".into(), "dkms-gcs-0.2".into()),
            ("x-kms-apiname".into(), api.into()),
            ("x-kms-signaturemethod".into(), "RSA_PKCS1_SHA_256".into()),
            ("x-kms-acccesskeyid".into(), self.key_id.clone()),
        ];
        let text = string_to_sign(
            "POST",
            &sha,
            "application/x-protobuf",
            date,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let mut signature = vec![0u8; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                text.as_bytes(),
                &mut signature,
            )
            .unwrap();
        headers.push((
            "authorization".into(),
            format!("Bearer {}", b64(&signature)),
        ));
        tweak(&mut headers);
        let r = send(self.addr, "POST", "/", &headers, body);
        Answer {
            status: r.status,
            body: r.body.clone(),
            headers: r.headers.clone(),
        }
    }

    fn send(&self, api: &str, body: &[u8]) -> Answer {
        self.send_with(api, body, &http_date(0), |_| {})
    }

    fn call<Req: Message, Resp: Message + Default>(&self, api: &str, req: &Req) -> Resp {
        let a = self.send(api, &req.encode_to_vec());
        assert_eq!(
            a.status,
            200,
            "{api}: {:?}",
            proto::Error::decode(&a.body[..])
        );
        Resp::decode(&a.body[..]).unwrap()
    }
}

/// A server with the gateway, a key, and an application allowed it from 127.0.0.1.
fn setup() -> (TestServer, Client, String) {
    let server =
        TestServer::start_with(|s, _| s.instance_listen = Some("127.0.0.1:0".parse().unwrap()));
    let key = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let instance = call_ok(&server, "GetDefaultKmsInstance", &[])["DefaultKmsInstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    call_ok(
        &server,
        "CreateNetworkRule",
        &[
            ("Name", "local"),
            ("Type", "Private"),
            ("SourcePrivateIp", r#"["127.0.0.1"]"#),
        ],
    );
    let resources = format!(r#"["key/{key}"]"#);
    call_ok(
        &server,
        "CreatePolicy",
        &[
            ("Name", "p"),
            (
                "Permissions",
                r#"["RbacPermission/Template/CryptoServiceKeyUser"]"#,
            ),
            ("Resources", &resources),
            ("KmsInstance", &instance),
            ("AccessControlRules", r#"{"NetworkRules":["local"]}"#),
        ],
    );
    call_ok(
        &server,
        "CreateApplicationAccessPoint",
        &[
            ("Name", "app"),
            ("AuthenticationMethod", "ClientKey"),
            ("Policies", r#"["p"]"#),
        ],
    );
    let made = call_ok(
        &server,
        "CreateClientKey",
        &[("AapName", "app"), ("Password", PASSWORD)],
    );
    let file =
        serde_json::json!({"KeyId": made["ClientKeyId"], "PrivateKeyData": made["PrivateKeyData"]})
            .to_string();
    let client = Client::from_file(server.instance_addr.unwrap(), &file, PASSWORD);
    (server, client, key)
}

#[test]
fn a_rust_client_encrypts_and_decrypts_through_the_gateway() {
    let (_server, client, key) = setup();
    let sealed: proto::EncryptResponse = client.call(
        "Encrypt",
        &proto::EncryptRequest {
            key_id: key.clone(),
            plaintext: b"from rust".to_vec(),
            aad: b"a".to_vec(),
            ..Default::default()
        },
    );
    assert_eq!(
        (sealed.iv.len(), sealed.algorithm.as_str()),
        (12, "AES_GCM")
    );
    assert!(
        sealed.key_version_id.is_empty(),
        "Encrypt's answer has no KeyVersionId"
    );
    let opened: proto::DecryptResponse = client.call(
        "Decrypt",
        &proto::DecryptRequest {
            key_id: key.clone(),
            ciphertext_blob: sealed.ciphertext_blob,
            iv: sealed.iv,
            aad: b"a".to_vec(),
            ..Default::default()
        },
    );
    assert_eq!(opened.plaintext, b"from rust");
    let advance = client.send(
        "AdvanceEncrypt",
        &proto::EncryptRequest {
            key_id: key.clone(),
            plaintext: b"x".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert_eq!(advance.status, 200);
    let version = advance
        .headers
        .iter()
        .find(|(n, _)| n == "x-kms-migrationkeyversionid")
        .map(|(_, v)| v.clone());
    let r = proto::EncryptResponse::decode(&advance.body[..]).unwrap();
    assert_eq!(version.as_deref(), Some(r.key_version_id.as_str()));
    let random: proto::GenerateRandomResponse = client.call(
        "GenerateRandom",
        &proto::GenerateRandomRequest { length: 32 },
    );
    assert_eq!(random.random.len(), 32);
}

#[test]
fn every_refusal_is_a_protobuf_error_with_alibabas_code_and_status() {
    let (server, client, key) = setup();
    let body = proto::EncryptRequest {
        key_id: key.clone(),
        plaintext: b"x".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let expect = |a: Answer, status: u16, code: &str| {
        assert_eq!(a.status, status, "{code}");
        let e = a.error();
        assert_eq!(
            (e.error_code.as_str(), e.status_code),
            (code, i32::from(status)),
            "{}",
            e.error_message
        );
        assert!(!e.request_id.is_empty());
        e
    };
    let set = |name: &'static str, value: &'static str| {
        move |h: &mut Vec<(String, String)>| {
            h.retain(|(n, _)| n != name);
            h.push((name.into(), value.into()));
        }
    };
    expect(
        client.send_with("Nope", &body, &http_date(0), |_| {}),
        400,
        "InvalidApiName",
    );
    expect(
        client.send_with(
            "Encrypt",
            &body,
            &http_date(0),
            set("x-kms-apiversion", "2016-01-20"),
        ),
        400,
        "InvalidApiVersion",
    );
    expect(
        client.send_with(
            "Encrypt",
            &body,
            &http_date(0),
            set("x-kms-signaturemethod", "HMAC"),
        ),
        400,
        "InvalidParam",
    );
    expect(
        client.send_with("Encrypt", &body, &http_date(0), |h| {
            h.retain(|(n, _)| n != "x-kms-acccesskeyid")
        }),
        400,
        "MissingParameter",
    );
    expect(
        client.send_with("Encrypt", &body, &http_date(-3600), |_| {}),
        400,
        "RequestTimeTooSkewed",
    );
    expect(
        client.send_with("Encrypt", &body, "yesterday", |_| {}),
        400,
        "InvalidParam",
    );
    expect(
        client.send_with("Encrypt", &body, &http_date(0), set("content-sha256", "00")),
        400,
        "InvalidParam",
    );
    expect(
        client.send_with(
            "Encrypt",
            &body,
            &http_date(0),
            set("authorization", "Basic abc"),
        ),
        400,
        "InvalidParam",
    );
    // A signature over something else, and a signature with an unknown client key.
    expect(
        client.send_with(
            "Encrypt",
            &body,
            &http_date(0),
            set("x-kms-apiname", "Decrypt"),
        ),
        401,
        "SignatureNotMatch",
    );
    expect(
        client.send_with(
            "Encrypt",
            &body,
            &http_date(0),
            set(
                "x-kms-acccesskeyid",
                "KAAP.00000000-0000-4000-8000-000000000000",
            ),
        ),
        401,
        "Unauthorized",
    );
    // The documented TOKEN prefix is accepted as Bearer is.
    let token = client.send_with("Encrypt", &body, &http_date(0), |h| {
        for (n, v) in h.iter_mut() {
            if n == "authorization" {
                *v = v.replacen("Bearer ", "TOKEN ", 1);
            }
        }
    });
    assert_eq!(token.status, 200);
    // Not a message of the API, and a body over 3 MiB.
    expect(
        client.send("Encrypt", b"\xff\xff\xff"),
        400,
        "InvalidParameter",
    );
    let big = vec![0u8; 3 * 1024 * 1024 + 1];
    expect(client.send("Encrypt", &big), 413, "RequestEntityTooLarge");
    // The engine's refusals: a key outside the policy.
    let other = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let outside = proto::EncryptRequest {
        key_id: other,
        plaintext: b"x".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    expect(
        client.send("Encrypt", &outside),
        403,
        "Forbidden.NoPermission",
    );
    let r = send(server.instance_addr.unwrap(), "GET", "/", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(
        proto::Error::decode(&r.body[..]).unwrap().error_code,
        "MethodNotAllowed"
    );
}
