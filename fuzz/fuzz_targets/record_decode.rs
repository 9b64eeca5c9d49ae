//! The stored-record path: arbitrary bytes as a stored value, then the engine opens the store
//! and serves reads and writes over it. `InternalFailure` (and any other error) is expected;
//! a panic is a bug.
//!
//! Input: one selector byte, then the payload. `selector % 4` picks the record replaced in a
//! template store (the key record `k/<id>`, its primary version `v/<id>/<version>`, the alias
//! `a/alias/fuzz`, or the keyring `m/keyring`); with bit 2 (`RecordKind::SEAL`) set the payload
//! is a plaintext record (schema byte + JSON) that the target seals exactly as the engine does,
//! so the fuzzer reaches the JSON decoding and the lifecycle code behind the seal; without it
//! the payload is stored as is and exercises the seal's own parsing.
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use kms_core::api::*;
use kms_core::{Kms, UnixTime};
use kms_fuzz::{build_engine, caller, record_template, RecordKind, RecordTemplate, ALIAS, NOW};
use libfuzzer_sys::fuzz_target;

static TEMPLATE: OnceLock<RecordTemplate> = OnceLock::new();

fn key(id: &str) -> KeyIdRequest {
    KeyIdRequest { key_id: id.into() }
}

/// Every read, then writes, over the possibly malformed store; results are ignored.
fn exercise(kms: &Kms, t: &RecordTemplate) {
    let me = caller();
    let id = t.key_id.as_str();
    let _ = kms.describe_key(&me, key(id));
    let _ = kms.describe_key(&me, key(ALIAS));
    let _ = kms.list_keys(&me, ListKeysRequest::default());
    let _ = kms.list_aliases(&me, ListAliasesRequest::default());
    let _ = kms.list_aliases_by_key_id(
        &me,
        ListAliasesByKeyIdRequest {
            key_id: id.into(),
            ..Default::default()
        },
    );
    let _ = kms.list_key_versions(
        &me,
        ListKeyVersionsRequest {
            key_id: id.into(),
            ..Default::default()
        },
    );
    for v in [&t.version_id, &t.old_version_id] {
        let _ = kms.describe_key_version(
            &me,
            DescribeKeyVersionRequest {
                key_id: id.into(),
                key_version_id: v.clone(),
            },
        );
    }
    let _ = kms.list_resource_tags(&me, key(id));
    if let Ok(sealed) = kms.encrypt(
        &me,
        EncryptRequest {
            key_id: ALIAS.into(),
            plaintext: b"fuzz".to_vec().into(),
            ..Default::default()
        },
    ) {
        let _ = kms.decrypt(
            &me,
            DecryptRequest {
                ciphertext_blob: sealed.ciphertext_blob,
                ..Default::default()
            },
        );
    }
    let _ = kms.disable_key(&me, key(id));
    let _ = kms.enable_key(&me, key(id));
    let _ = kms.create_key_version(&me, key(id));
    let _ = kms.update_rotation_policy(
        &me,
        UpdateRotationPolicyRequest {
            key_id: id.into(),
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("30d".into()),
        },
    );
    let _ = kms.tag_resource(
        &me,
        TagResourceRequest {
            key_id: id.into(),
            tags: vec![Tag {
                tag_key: "k".into(),
                tag_value: "v".into(),
            }],
            ..Default::default()
        },
    );
    let _ = kms.update_alias(
        &me,
        AliasRequest {
            alias_name: ALIAS.into(),
            key_id: id.into(),
        },
    );
    let _ = kms.schedule_key_deletion(
        &me,
        ScheduleKeyDeletionRequest {
            key_id: id.into(),
            pending_window_in_days: Some(7),
        },
    );
    for days in [0, 8, 400] {
        let _ = kms.run_maintenance(UnixTime(NOW.0 + days * 86_400));
    }
    let _ = kms.describe_key(&me, key(id));
}

fuzz_target!(|data: &[u8]| {
    let t = TEMPLATE.get_or_init(record_template);
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let kind = RecordKind::from_selector(selector);
    let value = if selector & RecordKind::SEAL != 0 {
        kind.seal(t, payload)
    } else {
        payload.to_vec()
    };
    let storage = t.storage_with(&kind.record_key(t), value);
    // A store whose keyring does not open is refused at build: an error, not a panic.
    let Ok(kms) = build_engine(storage, 3) else {
        return;
    };
    exercise(&kms, t);
});
