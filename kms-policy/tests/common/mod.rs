//! Shared setup for the kms-policy integration tests: an engine of account "1234" on an
//! inspectable `MemoryStorage`, a `ManualClock`, and a shared `PolicyAuthorizer`, plus helpers
//! that run one operation as one caller so the tests read as the rules they prove.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code
)]

use std::fmt::Debug;
use std::sync::Arc;

use kms_core::api::*;
use kms_core::{Caller, Kms, KmsError, ManualClock, RootKey, UnixTime};
use kms_policy::PolicyAuthorizer;
use kms_storage::MemoryStorage;

/// The account that owns the engine.
pub const OWNER: &str = "1234";
/// Another account (a cross-account partner, or an account an instance is shared with).
pub const PARTNER: &str = "5678";
/// An account nothing is shared with.
pub const STRANGER: &str = "9999";
/// Where the manual clock starts: a whole minute (1_800_000_000 is divisible by 60).
pub const START: UnixTime = UnixTime(1_800_000_000);
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The owner account's root identity.
pub fn root() -> Caller {
    Caller::account_root(OWNER)
}
/// A RAM user of the owner account.
pub fn alice() -> Caller {
    Caller::ram_user(OWNER, "alice")
}
/// Another RAM user of the owner account.
pub fn bob() -> Caller {
    Caller::ram_user(OWNER, "bob")
}
/// A RAM role of the owner account.
pub fn app() -> Caller {
    Caller::ram_role(OWNER, "app")
}
/// A RAM user of the partner account.
pub fn partner() -> Caller {
    Caller::ram_user(PARTNER, "partner")
}
/// The partner account's root identity.
pub fn partner_root() -> Caller {
    Caller::account_root(PARTNER)
}
/// A RAM user of an unrelated account.
pub fn stranger() -> Caller {
    Caller::ram_user(STRANGER, "mallory")
}
/// `caller` calling on behalf of an integrated service.
pub fn via(caller: Caller, service: &str) -> Caller {
    Caller {
        via_service: Some(service.into()),
        ..caller
    }
}

/// A RAM identity policy allowing every KMS action on every resource.
pub const FULL_ACCESS: &str =
    r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:*"],"Resource":["*"]}]}"#;

/// An engine with its storage, clock, root key and authorizer kept for inspection and reopening.
pub struct Env {
    pub kms: Kms,
    pub authz: Arc<PolicyAuthorizer>,
    pub clock: Arc<ManualClock>,
    pub storage: Arc<MemoryStorage>,
    pub root_key: RootKey,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A fresh engine of account 1234 with a `PolicyAuthorizer` that has no instances and no
    /// identity policies: RAM users and roles can do what resource policies grant them by
    /// name, and nothing else.
    pub fn new() -> Self {
        Self::without_identity_policies()
    }

    /// Gives every RAM user and role of the helpers above an identity policy allowing `kms:*`
    /// on everything, so that grants to their accounts reach them too.
    pub fn with_full_identity_policies(self) -> Self {
        for caller in [alice(), bob(), app(), partner(), stranger()] {
            self.authz
                .attach_identity_policy(&caller.arn(), FULL_ACCESS)
                .unwrap();
        }
        self
    }

    /// A fresh engine whose RAM users and roles have no identity policy.
    pub fn without_identity_policies() -> Self {
        let storage = Arc::new(MemoryStorage::new());
        let clock = Arc::new(ManualClock::new(START));
        let root_key = RootKey::generate().unwrap();
        let authz = Arc::new(PolicyAuthorizer::new());
        let kms = build(&storage, &clock, &root_key, &authz);
        Env {
            kms,
            authz,
            clock,
            storage,
            root_key,
        }
    }

    /// A second engine on the same storage, clock, root key and authorizer (a restart).
    pub fn reopen(&self) -> Kms {
        build(&self.storage, &self.clock, &self.root_key, &self.authz)
    }

    /// Creates a key as `caller` with `policy`; panics on failure.
    pub fn key(&self, caller: &Caller, policy: Option<&str>) -> String {
        self.try_key(caller, policy, None)
            .unwrap()
            .key_metadata
            .key_id
    }

    /// Creates a key as `caller` with `policy` in instance `instance`.
    pub fn try_key(
        &self,
        caller: &Caller,
        policy: Option<&str>,
        instance: Option<&str>,
    ) -> Result<CreateKeyResponse, KmsError> {
        self.kms.create_key(
            caller,
            CreateKeyRequest {
                policy: policy.map(str::to_owned),
                // These tests store documents that leave the owner out on purpose; the
                // lockout check has tests of its own (lockout.rs).
                bypass_policy_lockout_safety_check: policy.map(|_| true),
                dkms_instance_id: instance.map(str::to_owned),
                ..Default::default()
            },
        )
    }

    /// The number of keys ListKeys shows the owner's root.
    pub fn key_count(&self) -> i64 {
        self.kms
            .list_keys(&root(), ListKeysRequest::default())
            .unwrap()
            .total_count
    }
}

fn build(
    storage: &Arc<MemoryStorage>,
    clock: &Arc<ManualClock>,
    root_key: &RootKey,
    authz: &Arc<PolicyAuthorizer>,
) -> Kms {
    Kms::builder()
        .storage(storage.clone())
        .clock(clock.clone())
        .root_key(root_key.clone())
        .account_id(OWNER)
        .authorizer(authz.clone())
        .build()
        .unwrap()
}

// ---- one operation as one caller ------------------------------------------------------------

/// Encrypt a fixed plaintext; the blob on success.
pub fn encrypt(kms: &Kms, caller: &Caller, key_id: &str) -> Result<Vec<u8>, KmsError> {
    kms.encrypt(
        caller,
        EncryptRequest {
            key_id: key_id.into(),
            plaintext: b"policy test plaintext".to_vec().into(),
            ..Default::default()
        },
    )
    .map(|r| r.ciphertext_blob)
}

/// Decrypt a blob; the plaintext on success.
pub fn decrypt(kms: &Kms, caller: &Caller, blob: &[u8]) -> Result<Vec<u8>, KmsError> {
    kms.decrypt(
        caller,
        DecryptRequest {
            ciphertext_blob: blob.to_vec(),
            ..Default::default()
        },
    )
    .map(|r| r.plaintext.to_vec())
}

/// GenerateDataKey (32 bytes).
pub fn generate_data_key(kms: &Kms, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
    kms.generate_data_key(
        caller,
        GenerateDataKeyRequest {
            key_id: key_id.into(),
            ..Default::default()
        },
    )
    .map(|_| ())
}

/// ReEncrypt `blob` to `destination`.
pub fn re_encrypt(
    kms: &Kms,
    caller: &Caller,
    blob: &[u8],
    destination: &str,
) -> Result<Vec<u8>, KmsError> {
    kms.re_encrypt(
        caller,
        ReEncryptRequest {
            ciphertext_blob: blob.to_vec(),
            destination_key_id: destination.into(),
            ..Default::default()
        },
    )
    .map(|r| r.ciphertext_blob)
}

/// DescribeKey.
pub fn describe(kms: &Kms, caller: &Caller, key_id: &str) -> Result<KeyMetadata, KmsError> {
    kms.describe_key(
        caller,
        KeyIdRequest {
            key_id: key_id.into(),
        },
    )
    .map(|r| r.key_metadata)
}

/// GetKeyPolicy with PolicyName `default`.
pub fn get_policy(kms: &Kms, caller: &Caller, key_id: &str) -> Result<String, KmsError> {
    kms.get_key_policy(
        caller,
        GetKeyPolicyRequest {
            key_id: key_id.into(),
            policy_name: "default".into(),
        },
    )
    .map(|r| r.policy)
}

/// SetKeyPolicy with PolicyName `default`.
pub fn set_policy(kms: &Kms, caller: &Caller, key_id: &str, policy: &str) -> Result<(), KmsError> {
    kms.set_key_policy(
        caller,
        SetKeyPolicyRequest {
            key_id: key_id.into(),
            policy_name: "default".into(),
            policy: policy.into(),
            // As in `try_key`: the lockout check is tested on its own.
            bypass_policy_lockout_safety_check: Some(true),
        },
    )
    .map(|_| ())
}

/// ScheduleKeyDeletion with a 7-day window.
pub fn schedule_deletion(kms: &Kms, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
    kms.schedule_key_deletion(
        caller,
        ScheduleKeyDeletionRequest {
            key_id: key_id.into(),
            pending_window_in_days: Some(7),
        },
    )
    .map(|_| ())
}

/// CreateAlias.
pub fn create_alias(kms: &Kms, caller: &Caller, alias: &str, key_id: &str) -> Result<(), KmsError> {
    kms.create_alias(
        caller,
        AliasRequest {
            alias_name: alias.into(),
            key_id: key_id.into(),
        },
    )
    .map(|_| ())
}

/// TagResource with one tag.
pub fn tag(kms: &Kms, caller: &Caller, key_id: &str, tag_key: &str) -> Result<(), KmsError> {
    kms.tag_resource(
        caller,
        TagResourceRequest {
            key_id: key_id.into(),
            tags: vec![Tag {
                tag_key: tag_key.into(),
                tag_value: "v".into(),
            }],
            ..Default::default()
        },
    )
    .map(|_| ())
}

/// Unwraps an error, panicking with the success value when there is none.
pub fn expect_err<T: Debug>(r: Result<T, KmsError>) -> KmsError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// Asserts `r` is `Forbidden.NoPermission` (HTTP 403) for `action` by `caller`, and that the
/// message names both the action and the caller's principal ARN.
pub fn assert_denied<T: Debug>(r: Result<T, KmsError>, action: &str, caller: &Caller) {
    let e = expect_err(r);
    assert_eq!(e.code(), "Forbidden.NoPermission", "{e}");
    assert_eq!(e.http_status(), 403);
    match &e {
        KmsError::NoPermission {
            action: a,
            principal,
            ..
        } => {
            assert_eq!(a, action, "{e}");
            assert_eq!(principal, &caller.arn(), "{e}");
        }
        other => panic!("expected NoPermission, got {other:?}"),
    }
    let message = e.to_string();
    assert!(
        message.contains(action),
        "{message:?} does not name {action}"
    );
    assert!(
        message.contains(&caller.arn()),
        "{message:?} does not name {}",
        caller.arn()
    );
}

/// Asserts `r` is `InvalidParameter` naming `Policy` and every one of `fragments`.
pub fn assert_invalid_policy<T: Debug>(r: Result<T, KmsError>, fragments: &[&str]) {
    let e = expect_err(r);
    assert_eq!(e.code(), "InvalidParameter", "{e}");
    assert_eq!(e.http_status(), 400);
    match &e {
        KmsError::InvalidParameter { name, .. } => assert_eq!(name, "Policy", "{e}"),
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
    let message = e.to_string();
    assert!(
        message.contains("Policy"),
        "{message:?} does not name Policy"
    );
    for f in fragments {
        assert!(message.contains(f), "{message:?} does not name {f:?}");
    }
}
