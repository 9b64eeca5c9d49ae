//! One list of actions: the server's dispatch table, the engine's authorization calls and
//! kms-policy's action names agree.
//!
//! Every wire action is called through `dispatch::call` against an engine whose authorizer
//! allows everything and records what it is asked; the policy actions the engine asked about
//! must be exactly those the dispatch table declares for that wire action, every declared
//! action must be a name kms-policy accepts, and every policy action must be reachable from
//! some wire action.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use kms_core::api::SecretData;
use kms_core::{
    AccessRequest, Action, Authorizer, Caller, Decision, Kms, KmsError, RootKey,
    SecretRotationHandler,
};
use kms_server::dispatch::{call, policy_actions, ACTIONS};
use serde_json::{json, Value};

/// Allows everything and remembers each action it was asked about.
#[derive(Default)]
struct Recorder(Mutex<Vec<Action>>);

impl Recorder {
    fn take(&self) -> BTreeSet<Action> {
        self.0.lock().unwrap().drain(..).collect()
    }
}

impl Authorizer for Recorder {
    fn authorize(&self, request: &AccessRequest<'_>) -> Decision {
        self.0.lock().unwrap().push(request.action);
        Decision::Allow
    }
}

/// Rotates a generic secret to a new fixed value.
struct NextValue;

impl SecretRotationHandler for NextValue {
    fn rotate(&self, _: &str, _: &SecretData) -> Result<SecretData, KmsError> {
        Ok(SecretData(String::from("rotated").into()))
    }
}

struct Bench {
    kms: Kms,
    me: Caller,
    recorder: Arc<Recorder>,
    /// Wire actions called so far.
    called: BTreeSet<&'static str>,
    /// Policy actions seen so far.
    seen: BTreeSet<Action>,
    /// Wire actions whose call was refused (after the authorization).
    refused: BTreeSet<&'static str>,
}

impl Bench {
    fn new() -> Self {
        let recorder = Arc::new(Recorder::default());
        let kms = Kms::builder()
            .storage(kms_storage::MemoryStorage::new())
            .root_key(RootKey::generate().unwrap())
            .account_id("1")
            .authorizer(recorder.clone())
            .secret_rotation_handler("Generic", NextValue)
            .build()
            .unwrap();
        Bench {
            kms,
            me: Caller::account_root("1"),
            recorder,
            called: BTreeSet::new(),
            seen: BTreeSet::new(),
            refused: BTreeSet::new(),
        }
    }

    /// Calls `action` and checks the engine asked about its declared policy actions. Returns
    /// the response body, or `Null`.
    fn call(&mut self, action: &'static str, params: Value) -> Value {
        let declared: BTreeSet<Action> = policy_actions(action)
            .unwrap_or_else(|| panic!("{action} is dispatched but declares no policy action"))
            .iter()
            .copied()
            .collect();
        self.recorder.take();
        let outcome = call(&self.kms, &self.me, action, params);
        let asked = self.recorder.take();
        let outcome_text = match &outcome {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{}: {e}", e.code()),
        };
        // A call that succeeds asks about exactly what its entry declares; one refused on
        // the way (a state or parameter check after the authorization) about a part of it.
        let agrees = if outcome.is_ok() {
            asked == declared
        } else {
            !asked.is_empty() && asked.is_subset(&declared)
        };
        assert!(
            agrees,
            "{action} ({outcome_text}) asked the authorizer about {asked:?}; the dispatch table \
             declares {declared:?}"
        );
        self.called.insert(action);
        if outcome.is_err() {
            self.refused.insert(action);
        }
        self.seen.extend(asked);
        match outcome {
            Ok(reply) => serde_json::from_slice(&reply.body).unwrap(),
            Err(_) => Value::Null,
        }
    }
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{path:?} in {v}"))
        .to_owned()
}

/// A self-signed P-256 certificate of another key: parsed, then refused for not matching.
const OTHER_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIBuTCCAV+gAwIBAgIUN0sSFz8ga8Frs/RvAz/sZFNWtpgwCgYIKoZIzj0EAwIw\nMTEKMAgGA1UEAwwBYTELMAkGA1UEBhMCQ04xCjAIBgNVBAoMAW8xCjAIBgNVBAsM\nAXUwIBcNMjYxMjAyMDcwODU4WhgPMjEyNjExMDgwNzA4NThaMDExCjAIBgNVBAMM\nAWExCzAJBgNVBAYTAkNOMQowCAYDVQQKDAFvMQowCAYDVQQLDAF1MFkwEwYHKoZI\nzj0CAQYIKoZIzj0DAQcDQgAEUwPSs4txGl1qeux68/mdyupmpAxTofo6o9Vooo05\nUa9HvuqqQLxxLDPEH2jz+8uCwHbEnpdjVCDyndGOAiQT46NTMFEwHQYDVR0OBBYE\nFPhpJKS7ZC4kIIGdt/Z2bEYDpD0BMB8GA1UdIwQYMBaAFPhpJKS7ZC4kIIGdt/Z2\nbEYDpD0BMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAPXzdoWP\nl3Cm6GmE6pe9YkM6Pwq+Wb+VOApsk/mldMEgAiBp2JSFLbi1h8Re4JvsPvsmK8Te\n76/ckwBRxweqypyMjQ==\n-----END CERTIFICATE-----\n";

const POLICY: &str = r#"{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::1:*"]},"Action":["kms:*"],"Resource":["*"]}]}"#;

#[test]
fn every_dispatched_action_is_authorized_as_the_actions_its_table_entry_declares() {
    let mut b = Bench::new();

    // ---- keys ------------------------------------------------------------------------------
    let created = b.call("CreateKey", json!({"Policy": POLICY}));
    let key = text(&created, &["KeyMetadata", "KeyId"]);
    let sign = text(
        &b.call(
            "CreateKey",
            json!({"KeySpec": "EC_P256", "KeyUsage": "SIGN/VERIFY", "Policy": POLICY}),
        ),
        &["KeyMetadata", "KeyId"],
    );
    let rsa = text(
        &b.call(
            "CreateKey",
            json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT/DECRYPT", "Policy": POLICY}),
        ),
        &["KeyMetadata", "KeyId"],
    );
    let hmac = text(
        &b.call(
            "CreateKey",
            json!({"KeySpec": "HMAC_SHA256", "KeyUsage": "GENERATE/VERIFY_MAC", "Policy": POLICY}),
        ),
        &["KeyMetadata", "KeyId"],
    );
    let external = text(
        &b.call("CreateKey", json!({"Origin": "EXTERNAL", "Policy": POLICY})),
        &["KeyMetadata", "KeyId"],
    );
    let id = |k: &str| json!({ "KeyId": k });
    b.call("DescribeKey", id(&key));
    b.call("ListKeys", json!({}));
    b.call("DisableKey", id(&key));
    b.call("EnableKey", id(&key));
    b.call(
        "SetDeletionProtection",
        json!({"ProtectedResourceArn": text(&created, &["KeyMetadata", "Arn"]),
               "EnableDeletionProtection": "false"}),
    );
    b.call(
        "UpdateKeyDescription",
        json!({"KeyId": key, "Description": "d"}),
    );
    let versions = b.call("ListKeyVersions", id(&key));
    let version = text(&versions["KeyVersions"]["KeyVersion"][0], &["KeyVersionId"]);
    b.call(
        "DescribeKeyVersion",
        json!({"KeyId": key, "KeyVersionId": version}),
    );
    b.call(
        "UpdateRotationPolicy",
        json!({"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "30d"}),
    );
    b.call("CreateKeyVersion", id(&key));
    b.call(
        "GetKeyPolicy",
        json!({"KeyId": key, "PolicyName": "default"}),
    );
    b.call(
        "SetKeyPolicy",
        json!({"KeyId": key, "PolicyName": "default", "Policy": POLICY}),
    );
    b.call("ListKeyAssociations", id(&key));

    // ---- symmetric cryptography ----------------------------------------------------------
    let sealed = b.call("Encrypt", json!({"KeyId": key, "Plaintext": "aGVsbG8="}));
    let blob = text(&sealed, &["CiphertextBlob"]);
    b.call("Decrypt", json!({"CiphertextBlob": blob}));
    b.call("GenerateDataKey", id(&key));
    b.call("GenerateDataKeyWithoutPlaintext", id(&key));
    b.call(
        "ReEncrypt",
        json!({"CiphertextBlob": blob, "DestinationKeyId": key}),
    );

    // ---- asymmetric cryptography ---------------------------------------------------------
    let sign_version = text(
        &b.call("ListKeyVersions", id(&sign))["KeyVersions"]["KeyVersion"][0],
        &["KeyVersionId"],
    );
    let rsa_version = text(
        &b.call("ListKeyVersions", id(&rsa))["KeyVersions"]["KeyVersion"][0],
        &["KeyVersionId"],
    );
    let digest = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
    b.call(
        "GetPublicKey",
        json!({"KeyId": sign, "KeyVersionId": sign_version}),
    );
    let signed = b.call(
        "AsymmetricSign",
        json!({"KeyId": sign, "KeyVersionId": sign_version, "Algorithm": "ECDSA_SHA_256",
               "Digest": digest}),
    );
    b.call(
        "AsymmetricVerify",
        json!({"KeyId": sign, "KeyVersionId": sign_version, "Algorithm": "ECDSA_SHA_256",
               "Digest": digest, "Value": text(&signed, &["Value"])}),
    );
    let rsa_sealed = b.call(
        "AsymmetricEncrypt",
        json!({"KeyId": rsa, "KeyVersionId": rsa_version, "Algorithm": "RSAES_OAEP_SHA_256",
               "Plaintext": "aGVsbG8="}),
    );
    b.call(
        "AsymmetricDecrypt",
        json!({"KeyId": rsa, "KeyVersionId": rsa_version, "Algorithm": "RSAES_OAEP_SHA_256",
               "CiphertextBlob": text(&rsa_sealed, &["CiphertextBlob"])}),
    );
    let public_pem = text(
        &b.call(
            "GetPublicKey",
            json!({"KeyId": rsa, "KeyVersionId": rsa_version}),
        ),
        &["PublicKey"],
    );
    let public_der: String = public_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let exported = b.call(
        "GenerateAndExportDataKey",
        json!({"KeyId": key, "PublicKeyBlob": public_der, "WrappingKeySpec": "RSA_2048",
               "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}),
    );
    b.call(
        "ExportDataKey",
        json!({"CiphertextBlob": text(&exported, &["CiphertextBlob"]),
               "PublicKeyBlob": public_der, "WrappingKeySpec": "RSA_2048",
               "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}),
    );

    // ---- MAC -------------------------------------------------------------------------------
    let mac = b.call("GenerateMac", json!({"KeyId": hmac, "Message": "aGVsbG8="}));
    b.call(
        "VerifyMac",
        json!({"KeyId": hmac, "Message": "aGVsbG8=", "Mac": text(&mac, &["Mac"])}),
    );

    // ---- aliases and tags ------------------------------------------------------------------
    b.call("CreateAlias", json!({"AliasName": "alias/a", "KeyId": key}));
    b.call(
        "UpdateAlias",
        json!({"AliasName": "alias/a", "KeyId": sign}),
    );
    b.call("ListAliases", json!({}));
    b.call("ListAliasesByKeyId", id(&sign));
    b.call("DeleteAlias", json!({"AliasName": "alias/a"}));
    let tag = r#"[{"TagKey":"team","TagValue":"a"}]"#;
    b.call("TagResource", json!({"KeyId": key, "Tags": tag}));
    b.call("ListResourceTags", id(&key));
    b.call(
        "UntagResource",
        json!({"KeyId": key, "TagKeys": r#"["team"]"#}),
    );
    b.call(
        "TagResources",
        json!({"ResourceType": "key", "ResourceId": [key], "Tag": [{"Key": "k", "Value": "v"}]}),
    );
    b.call(
        "ListTagResources",
        json!({"ResourceType": "key", "ResourceId": [key]}),
    );
    b.call(
        "UntagResources",
        json!({"ResourceType": "key", "ResourceId": [key], "TagKey": ["k"]}),
    );

    // ---- BYOK ------------------------------------------------------------------------------
    let params = b.call(
        "GetParametersForImport",
        json!({"KeyId": external, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
               "WrappingKeySpec": "RSA_2048"}),
    );
    // The material is not wrapped under the import key: the engine refuses it after the
    // authorization, which is what this test observes.
    b.call(
        "ImportKeyMaterial",
        json!({"KeyId": external, "ImportToken": text(&params, &["ImportToken"]),
               "EncryptedKeyMaterial": "aGVsbG8="}),
    );
    b.call("DeleteKeyMaterial", id(&external));

    // ---- service and default key -------------------------------------------------------
    b.call("DescribeRegions", json!({}));
    b.call("OpenKmsService", json!({}));
    b.call("DescribeAccountKmsStatus", json!({}));
    b.call("DescribeDefaultKey", json!({}));
    b.call("EnableDefaultKey", json!({"AliasName": "alias/default"}));

    // ---- secrets ---------------------------------------------------------------------------
    let secret = json!({"SecretName": "s"});
    b.call(
        "CreateSecret",
        json!({"SecretName": "s", "SecretData": "v1", "VersionId": "v1",
               "EncryptionKeyId": key, "Policy": POLICY}),
    );
    b.call("GetSecretValue", secret.clone());
    b.call(
        "PutSecretValue",
        json!({"SecretName": "s", "SecretData": "v2", "VersionId": "v2"}),
    );
    b.call(
        "UpdateSecretVersionStage",
        json!({"SecretName": "s", "VersionStage": "custom", "MoveToVersion": "v1"}),
    );
    b.call("ListSecretVersionIds", secret.clone());
    b.call("DescribeSecret", secret.clone());
    b.call(
        "UpdateSecret",
        json!({"SecretName": "s", "Description": "d"}),
    );
    b.call("ListSecrets", json!({}));
    b.call(
        "UpdateSecretRotationPolicy",
        json!({"SecretName": "s", "EnableAutomaticRotation": "false"}),
    );
    b.call(
        "RotateSecret",
        json!({"SecretName": "s", "VersionId": "v3"}),
    );
    b.call("GetRandomPassword", json!({}));
    b.call(
        "GetSecretPolicy",
        json!({"SecretName": "s", "PolicyName": "default"}),
    );
    b.call(
        "SetSecretPolicy",
        json!({"SecretName": "s", "PolicyName": "default", "Policy": POLICY}),
    );
    b.call("DeleteSecret", secret.clone());
    b.call("RestoreSecret", secret);

    // ---- certificates ----------------------------------------------------------------------
    let cert = text(
        &b.call(
            "CreateCertificate",
            json!({"Subject": "CN=a,C=CN,O=o,OU=u", "KeySpec": "EC_P256"}),
        ),
        &["CertificateId"],
    );
    let cid = json!({ "CertificateId": cert });
    b.call("GetCertificate", cid.clone());
    b.call("DescribeCertificate", cid.clone());
    // Not yet issued: uploading another key's certificate, signing, encrypting, decrypting
    // and changing the status are refused after the authorization.
    b.call(
        "UploadCertificate",
        json!({"CertificateId": cert, "Certificate": OTHER_CERTIFICATE}),
    );
    b.call(
        "CertificatePrivateKeySign",
        json!({"CertificateId": cert, "Algorithm": "ECDSA_SHA_256", "Message": "aGVsbG8=",
               "MessageType": "RAW"}),
    );
    b.call(
        "CertificatePublicKeyVerify",
        json!({"CertificateId": cert, "Algorithm": "ECDSA_SHA_256", "Message": "aGVsbG8=",
               "MessageType": "RAW", "SignatureValue": "aGVsbG8="}),
    );
    b.call(
        "CertificatePublicKeyEncrypt",
        json!({"CertificateId": cert, "Algorithm": "RSAES_OAEP_SHA_256",
               "Plaintext": "aGVsbG8="}),
    );
    b.call(
        "CertificatePrivateKeyDecrypt",
        json!({"CertificateId": cert, "Algorithm": "RSAES_OAEP_SHA_256",
               "CiphertextBlob": "aGVsbG8="}),
    );
    b.call(
        "UpdateCertificateStatus",
        json!({"CertificateId": cert, "Status": "REVOKED"}),
    );
    b.call("DeleteCertificate", cid);

    // ---- KMS 3.0: instances, network rules, policies, AAPs, client keys ---------------------
    let instance = b.call("GetDefaultKmsInstance", json!({}))["DefaultKmsInstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    b.call("ListKmsInstances", json!({}));
    b.call("GetKmsInstance", json!({"KmsInstanceId": instance}));
    b.call(
        "CreateNetworkRule",
        json!({"Name": "rule", "Type": "Private", "SourcePrivateIp": "[\"10.0.0.0/8\"]"}),
    );
    b.call("DescribeNetworkRule", json!({"Name": "rule"}));
    b.call(
        "UpdateNetworkRule",
        json!({"Name": "rule", "SourcePrivateIp": "10.0.0.1"}),
    );
    b.call("ListNetworkRules", json!({}));
    b.call(
        "CreatePolicy",
        json!({"Name": "policy", "KmsInstance": instance,
               "Permissions": "[\"RbacPermission/Template/CryptoServiceKeyUser\"]",
               "Resources": "[\"key/*\"]",
               "AccessControlRules": "{\"NetworkRules\":[\"rule\"]}"}),
    );
    b.call("DescribePolicy", json!({"Name": "policy"}));
    b.call(
        "UpdatePolicy",
        json!({"Name": "policy", "Description": "d"}),
    );
    b.call("ListPolicies", json!({}));
    b.call(
        "CreateApplicationAccessPoint",
        json!({"Name": "aap", "AuthenticationMethod": "ClientKey", "Policies": "[\"policy\"]"}),
    );
    b.call("DescribeApplicationAccessPoint", json!({"Name": "aap"}));
    b.call(
        "UpdateApplicationAccessPoint",
        json!({"Name": "aap", "Description": "d"}),
    );
    b.call("ListApplicationAccessPoints", json!({}));
    let client_key = b.call(
        "CreateClientKey",
        json!({"AapName": "aap", "Password": "passw0rd-1"}),
    )["ClientKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    b.call("GetClientKey", json!({"ClientKeyId": client_key}));
    b.call("ListClientKeys", json!({"AapName": "aap"}));
    b.call("DeleteClientKey", json!({"ClientKeyId": client_key}));
    b.call("DeleteApplicationAccessPoint", json!({"Name": "aap"}));
    b.call("DeletePolicy", json!({"Name": "policy"}));
    b.call("DeleteNetworkRule", json!({"Name": "rule"}));

    // ---- deletion last ---------------------------------------------------------------------
    b.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": sign, "PendingWindowInDays": "7"}),
    );
    b.call("CancelKeyDeletion", id(&sign));

    // Only the calls made to be refused were: every other one asked about all it declares.
    assert_eq!(
        b.refused,
        BTreeSet::from([
            "ImportKeyMaterial",
            "UploadCertificate",
            "CertificatePrivateKeySign",
            "CertificatePublicKeyEncrypt",
            "CertificatePrivateKeyDecrypt",
            "UpdateCertificateStatus",
        ])
    );
    // Every dispatched action was exercised...
    let dispatched: BTreeSet<&str> = ACTIONS.iter().copied().collect();
    let missed: Vec<_> = dispatched.difference(&b.called).collect();
    assert!(missed.is_empty(), "not exercised: {missed:?}");
    // ...and every policy action is reachable from one, but for those no operation has yet.
    let unreachable: BTreeSet<Action> = Action::ALL
        .iter()
        .copied()
        .filter(|a| !b.seen.contains(a))
        .collect();
    assert_eq!(
        unreachable,
        BTreeSet::from([Action::DescribeService]),
        "policy actions no dispatched operation asks about"
    );
}

#[test]
fn every_declared_policy_action_is_a_name_kms_policy_accepts() {
    for action in ACTIONS {
        for policy in policy_actions(action).unwrap() {
            assert!(
                kms_policy::actions::is_known_action(policy.as_str()),
                "{action} declares {policy}, which policies cannot name"
            );
        }
    }
    assert_eq!(kms_policy::actions::ACTIONS, Action::POLICY_NAMES);
    assert!(policy_actions("Nope").is_none());
}
