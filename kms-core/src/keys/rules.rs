//! Key state rules as pure functions over `(KeyRecord, now)`: no I/O, no randomness.
//!
//! Each function either returns the record as it must be after the operation, or the error
//! the state table of docs/states.md gives for the key's current state. The engine loads a
//! record, applies one of these, and commits the result; that table is this module.

use std::collections::BTreeMap;

use crate::error::KmsError;
use crate::keys::model::{AutomaticRotation, CreatorType, KeyRecord, KeyState, Origin};
use crate::time::{UnixTime, DAY};
use crate::validate;

/// The classes of operation the state table distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Encrypt, Decrypt, GenerateDataKey*, ReEncrypt, Asymmetric*, GetPublicKey...
    Crypto,
    /// CreateKeyVersion, UpdateRotationPolicy.
    Versioning,
    /// UpdateKeyDescription, TagResource, UntagResource.
    MetadataUpdate,
}

fn state_error(rec: &KeyRecord) -> KmsError {
    let key_id = rec.key_id.clone();
    match rec.state {
        KeyState::Disabled => KmsError::Disabled { key_id },
        KeyState::PendingDeletion => KmsError::PendingDeletion { key_id },
        KeyState::PendingImport => KmsError::PendingImport { key_id },
        KeyState::Enabled => KmsError::internal("state_error called on an Enabled key"),
    }
}

fn transition_refused(rec: &KeyRecord, operation: &'static str) -> KmsError {
    KmsError::StateModifiedFailed {
        key_id: rec.key_id.clone(),
        state: rec.state.as_str(),
        operation,
    }
}

/// True once a PendingDeletion key's DeleteDate has passed: it is gone, even before
/// maintenance purges it.
pub fn is_purged(rec: &KeyRecord, now: UnixTime) -> bool {
    rec.state == KeyState::PendingDeletion && rec.delete_date.is_some_and(|d| d <= now)
}

/// True when an EXTERNAL key's imported material has passed its MaterialExpireTime.
pub fn material_expired(rec: &KeyRecord, now: UnixTime) -> bool {
    rec.has_material && rec.material_expire_time.is_some_and(|t| t <= now)
}

/// The record as it stands at `now`: imported material past its expiry is gone, and the key
/// is PendingImport (a PendingDeletion key keeps its state). Maintenance persists this; reads
/// apply it lazily so expired material is never used.
pub fn effective(rec: &KeyRecord, now: UnixTime) -> std::borrow::Cow<'_, KeyRecord> {
    if material_expired(rec, now) {
        std::borrow::Cow::Owned(delete_material(rec))
    } else {
        std::borrow::Cow::Borrowed(rec)
    }
}

/// DeleteKeyMaterial (or expiry): the key has no material and becomes PendingImport; a
/// PendingDeletion key keeps its state and DeleteDate. The fingerprint stays, so only the
/// same material can be imported again.
pub fn delete_material(rec: &KeyRecord) -> KeyRecord {
    KeyRecord {
        has_material: false,
        material_expire_time: None,
        state: if rec.state == KeyState::PendingDeletion {
            KeyState::PendingDeletion
        } else {
            KeyState::PendingImport
        },
        ..rec.clone()
    }
}

/// ImportKeyMaterial's state rule, after the material itself was checked: PendingImport →
/// Enabled; Enabled and Disabled keep their state (re-import of the same material).
///
/// Errors: `Rejected.StateModifiedFailed` for a PendingDeletion key; `InvalidKeyMaterial` when
/// the key already had other material.
pub fn import_material(
    rec: &KeyRecord,
    fingerprint: [u8; 32],
    expire: Option<UnixTime>,
) -> Result<KeyRecord, KmsError> {
    if rec.state == KeyState::PendingDeletion {
        return Err(transition_refused(rec, "ImportKeyMaterial"));
    }
    if let Some(existing) = &rec.material_fingerprint {
        if !crate::crypto::ct_eq(existing, &fingerprint) {
            return Err(KmsError::InvalidKeyMaterial {
                reason: format!(
                    "key {} already had other key material; only the same material can be imported again",
                    rec.key_id
                ),
            });
        }
    }
    Ok(KeyRecord {
        state: match rec.state {
            KeyState::PendingImport => KeyState::Enabled,
            other => other,
        },
        has_material: true,
        material_fingerprint: Some(fingerprint),
        material_expire_time: expire,
        ..rec.clone()
    })
}

/// Checks that the key's state allows an operation of class `usage`.
///
/// Errors: `Rejected.Disabled`, `Rejected.PendingDeletion`, `Rejected.PendingImport`.
pub fn check_usable(rec: &KeyRecord, usage: Usage) -> Result<(), KmsError> {
    match (usage, rec.state) {
        (_, KeyState::Enabled) => Ok(()),
        (Usage::MetadataUpdate, KeyState::Disabled | KeyState::PendingImport) => Ok(()),
        _ => Err(state_error(rec)),
    }
}

/// Service keys (`alias/acs/<product>`) belong to the integrated service that created them:
/// users may use them but not change them.
///
/// Errors: `Rejected.UnsupportedOperation` for a service key.
pub fn check_not_service_key(rec: &KeyRecord) -> Result<(), KmsError> {
    if rec.creator_type == CreatorType::Service {
        let product = rec
            .aliases
            .iter()
            .find_map(|a| a.strip_prefix("alias/acs/"))
            .unwrap_or("an integrated service");
        return Err(KmsError::UnsupportedOperation {
            reason: format!(
                "key {} is a service key managed by {product}; it is read-only to users",
                rec.key_id
            ),
        });
    }
    Ok(())
}

/// EnableKey: Disabled → Enabled; a no-op on an Enabled key.
///
/// Errors: `Rejected.StateModifiedFailed` from PendingDeletion or PendingImport.
pub fn enable(rec: &KeyRecord) -> Result<KeyRecord, KmsError> {
    match rec.state {
        KeyState::Enabled | KeyState::Disabled => Ok(KeyRecord {
            state: KeyState::Enabled,
            ..rec.clone()
        }),
        _ => Err(transition_refused(rec, "EnableKey")),
    }
}

/// DisableKey: Enabled → Disabled; a no-op on a Disabled key.
///
/// Errors: `Rejected.StateModifiedFailed` from PendingDeletion or PendingImport.
pub fn disable(rec: &KeyRecord) -> Result<KeyRecord, KmsError> {
    match rec.state {
        KeyState::Enabled | KeyState::Disabled => Ok(KeyRecord {
            state: KeyState::Disabled,
            ..rec.clone()
        }),
        _ => Err(transition_refused(rec, "DisableKey")),
    }
}

/// ScheduleKeyDeletion: → PendingDeletion with DeleteDate = now + days.
///
/// Errors: `InvalidParameter` for a window outside 7..=366 days; `Rejected.DeletionProtection`
/// when protected; `Rejected.StateModifiedFailed` when already PendingDeletion.
pub fn schedule_deletion(
    rec: &KeyRecord,
    now: UnixTime,
    days: Option<i64>,
) -> Result<KeyRecord, KmsError> {
    let days = validate::pending_window(days)?;
    if rec.state == KeyState::PendingDeletion {
        return Err(transition_refused(rec, "ScheduleKeyDeletion"));
    }
    if rec.deletion_protection.is_some() {
        return Err(KmsError::DeletionProtection {
            key_id: rec.key_id.clone(),
        });
    }
    Ok(KeyRecord {
        state: KeyState::PendingDeletion,
        delete_date: Some(now.plus_secs(days * DAY)),
        ..rec.clone()
    })
}

/// CancelKeyDeletion: PendingDeletion → Enabled (the rule of Alibaba's key management guide), or → PendingImport for a
/// key that has no key material (an EXTERNAL key whose material was never imported or was
/// deleted), since such a key cannot be usable.
///
/// Errors: `Rejected.StateModifiedFailed` from any other state.
pub fn cancel_deletion(rec: &KeyRecord) -> Result<KeyRecord, KmsError> {
    if rec.state != KeyState::PendingDeletion {
        return Err(transition_refused(rec, "CancelKeyDeletion"));
    }
    Ok(KeyRecord {
        state: if rec.has_material {
            KeyState::Enabled
        } else {
            KeyState::PendingImport
        },
        delete_date: None,
        ..rec.clone()
    })
}

/// SetDeletionProtection.
///
/// Errors: `Rejected.StateModifiedFailed` when enabling protection on a PendingDeletion key;
/// `InvalidParameter` for a description over 8192 characters.
pub fn set_deletion_protection(
    rec: &KeyRecord,
    enable: bool,
    description: Option<&str>,
) -> Result<KeyRecord, KmsError> {
    if let Some(d) = description {
        validate::description("DeletionProtectionDescription", d)?;
    }
    if !enable {
        return Ok(KeyRecord {
            deletion_protection: None,
            ..rec.clone()
        });
    }
    if rec.state == KeyState::PendingDeletion {
        return Err(transition_refused(rec, "SetDeletionProtection"));
    }
    Ok(KeyRecord {
        deletion_protection: Some(description.unwrap_or_default().to_owned()),
        ..rec.clone()
    })
}

/// UpdateKeyDescription.
///
/// Errors: `Rejected.PendingDeletion`; `InvalidParameter` over 8192 characters.
pub fn update_description(rec: &KeyRecord, description: &str) -> Result<KeyRecord, KmsError> {
    validate::description("Description", description)?;
    check_usable(rec, Usage::MetadataUpdate)?;
    Ok(KeyRecord {
        description: description.to_owned(),
        ..rec.clone()
    })
}

/// True for keys that may rotate: symmetric keys whose material the engine made.
pub fn supports_rotation(rec: &KeyRecord) -> bool {
    rec.key_spec.is_symmetric() && rec.origin == Origin::AliyunKms
}

/// UpdateRotationPolicy. `interval` is the parsed RotationInterval, if given.
///
/// Errors: `Rejected.UnsupportedOperation` for asymmetric or EXTERNAL keys; the state errors
/// of [`check_usable`]; `MissingParameter` when enabling without an interval.
pub fn set_rotation_policy(
    rec: &KeyRecord,
    now: UnixTime,
    enable: bool,
    interval: Option<i64>,
) -> Result<KeyRecord, KmsError> {
    if !supports_rotation(rec) {
        return Err(KmsError::UnsupportedOperation {
            reason: format!(
                "automatic rotation needs a symmetric key with Origin Aliyun_KMS; {} is {} / {}",
                rec.key_id, rec.key_spec, rec.origin
            ),
        });
    }
    check_usable(rec, Usage::Versioning)?;
    if !enable {
        return Ok(KeyRecord {
            rotation_interval: None,
            next_rotation_date: None,
            ..rec.clone()
        });
    }
    let interval = interval.ok_or_else(|| KmsError::missing("RotationInterval"))?;
    let base = rec.last_rotation_date.unwrap_or(rec.creation_date);
    Ok(KeyRecord {
        rotation_interval: Some(interval),
        next_rotation_date: Some(base.plus_secs(interval).max(now)),
        ..rec.clone()
    })
}

/// Checks a manual rotation (CreateKeyVersion).
///
/// Errors: `Rejected.UnsupportedOperation` for EXTERNAL keys; the state errors of
/// [`check_usable`].
pub fn check_can_rotate(rec: &KeyRecord) -> Result<(), KmsError> {
    if rec.origin != Origin::AliyunKms {
        return Err(KmsError::UnsupportedOperation {
            reason: format!(
                "key {} has Origin {}; only keys with Origin Aliyun_KMS get new versions",
                rec.key_id, rec.origin
            ),
        });
    }
    check_usable(rec, Usage::Versioning)
}

/// Makes `new_version_id` the primary version, at `now` (after [`check_can_rotate`]).
pub fn rotate(rec: &KeyRecord, now: UnixTime, new_version_id: &str) -> KeyRecord {
    KeyRecord {
        primary_version_id: Some(new_version_id.to_owned()),
        version_count: rec.version_count.saturating_add(1),
        last_rotation_date: Some(now),
        next_rotation_date: rec.rotation_interval.map(|i| now.plus_secs(i)),
        ..rec.clone()
    }
}

/// The AutomaticRotation status DescribeKey shows.
pub fn automatic_rotation(rec: &KeyRecord) -> AutomaticRotation {
    match (rec.rotation_interval, rec.state) {
        (None, _) => AutomaticRotation::Disabled,
        (Some(_), KeyState::Enabled) => AutomaticRotation::Enabled,
        (Some(_), _) => AutomaticRotation::Suspended,
    }
}

/// True when automatic rotation is due: on, the key Enabled, and NextRotationDate passed.
pub fn rotation_due(rec: &KeyRecord, now: UnixTime) -> bool {
    automatic_rotation(rec) == AutomaticRotation::Enabled
        && rec.next_rotation_date.is_some_and(|d| d <= now)
}

/// Adds an alias name to the key's set (CreateAlias, UpdateAlias's new target).
///
/// Errors: `Rejected.StateModifiedFailed` for a PendingDeletion key; `Rejected.LimitExceeded`
/// past 50 aliases.
pub fn add_alias(
    rec: &KeyRecord,
    alias: &str,
    operation: &'static str,
) -> Result<KeyRecord, KmsError> {
    if rec.state == KeyState::PendingDeletion {
        return Err(match operation {
            "UpdateAlias" => KmsError::PendingDeletion {
                key_id: rec.key_id.clone(),
            },
            _ => transition_refused(rec, operation),
        });
    }
    if rec.aliases.len() >= validate::MAX_ALIASES_PER_KEY && !rec.aliases.contains(alias) {
        return Err(KmsError::LimitExceeded {
            what: format!(
                "key {} already has {} aliases, the most allowed",
                rec.key_id,
                validate::MAX_ALIASES_PER_KEY
            ),
        });
    }
    let mut next = rec.clone();
    next.aliases.insert(alias.to_owned());
    Ok(next)
}

/// Removes an alias name from the key's set.
pub fn remove_alias(rec: &KeyRecord, alias: &str) -> KeyRecord {
    let mut next = rec.clone();
    next.aliases.remove(alias);
    next
}

/// Validates `add` and merges it into `tags`, enforcing the 20-tag limit.
pub fn merge_tags(
    tags: &mut BTreeMap<String, String>,
    add: &BTreeMap<String, String>,
) -> Result<(), KmsError> {
    for (k, v) in add {
        validate::tag_key("Tags", k)?;
        validate::tag_value("Tags", v)?;
    }
    tags.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
    if tags.len() > validate::MAX_TAGS {
        return Err(KmsError::LimitExceeded {
            what: format!("a resource may have at most {} tags", validate::MAX_TAGS),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::model::{CreatorType, KeySpec, KeyUsage, ProtectionLevel};

    const NOW: UnixTime = UnixTime(1_800_000_000);

    /// TagResource's rule on a key record.
    fn tag(rec: &KeyRecord, tags: &BTreeMap<String, String>) -> Result<KeyRecord, KmsError> {
        crate::tags::with_tags(rec, tags, NOW)
    }

    /// UntagResource's rule on a key record.
    fn untag(rec: &KeyRecord, keys: &[String]) -> Result<KeyRecord, KmsError> {
        crate::tags::without_tags(rec, keys, NOW)
    }

    fn key(state: KeyState) -> KeyRecord {
        KeyRecord {
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            creation_date: UnixTime(1_700_000_000),
            creator: "1".into(),
            creator_type: CreatorType::User,
            description: String::new(),
            key_spec: KeySpec::Aes256,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AliyunKms,
            protection_level: ProtectionLevel::Software,
            state,
            delete_date: (state == KeyState::PendingDeletion).then_some(NOW.plus_secs(DAY)),
            primary_version_id: Some("v1".into()),
            version_count: 1,
            rotation_interval: None,
            last_rotation_date: None,
            next_rotation_date: None,
            deletion_protection: None,
            material_expire_time: None,
            material_fingerprint: None,
            has_material: state != PendingImport,
            dkms_instance_id: None,
            external_key_id: None,
            aliases: Default::default(),
            tags: Default::default(),
            policy: None,
        }
    }

    use KeyState::*;
    const STATES: [KeyState; 4] = [Enabled, Disabled, PendingDeletion, PendingImport];

    fn code<T>(r: Result<T, KmsError>) -> &'static str {
        match r {
            Ok(_) => "OK",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn crypto_row_of_the_state_table() {
        let want = [
            "OK",
            "Rejected.Disabled",
            "Rejected.PendingDeletion",
            "Rejected.PendingImport",
        ];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(code(check_usable(&key(*s), Usage::Crypto)), w, "{s}");
            assert_eq!(code(check_usable(&key(*s), Usage::Versioning)), w, "{s}");
        }
    }

    #[test]
    fn metadata_update_row_of_the_state_table() {
        let want = ["OK", "OK", "Rejected.PendingDeletion", "OK"];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(code(update_description(&key(*s), "d")), w, "{s}");
            assert_eq!(
                code(tag(&key(*s), &[("a".into(), "b".into())].into())),
                w,
                "{s}"
            );
            assert_eq!(code(untag(&key(*s), &["a".into()])), w, "{s}");
        }
    }

    #[test]
    fn enable_and_disable_row_of_the_state_table() {
        let want = [
            "OK",
            "OK",
            "Rejected.StateModifiedFailed",
            "Rejected.StateModifiedFailed",
        ];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(code(enable(&key(*s))), w, "{s}");
            assert_eq!(code(disable(&key(*s))), w, "{s}");
        }
        assert_eq!(
            enable(&key(Enabled)).unwrap(),
            key(Enabled),
            "enable is a no-op"
        );
        assert_eq!(
            disable(&key(Disabled)).unwrap(),
            key(Disabled),
            "disable is a no-op"
        );
        assert_eq!(enable(&key(Disabled)).unwrap().state, Enabled);
        assert_eq!(disable(&key(Enabled)).unwrap().state, Disabled);
    }

    #[test]
    fn schedule_deletion_row_of_the_state_table() {
        let want = ["OK", "OK", "Rejected.StateModifiedFailed", "OK"];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(code(schedule_deletion(&key(*s), NOW, Some(7))), w, "{s}");
        }
        let r = schedule_deletion(&key(Enabled), NOW, Some(30)).unwrap();
        assert_eq!(r.state, PendingDeletion);
        assert_eq!(r.delete_date, Some(NOW.plus_secs(30 * DAY)));
    }

    #[test]
    fn schedule_deletion_of_protected_key_is_refused() {
        let mut k = key(Enabled);
        k.deletion_protection = Some("prod".into());
        assert_eq!(
            code(schedule_deletion(&k, NOW, Some(7))),
            "Rejected.DeletionProtection"
        );
    }

    #[test]
    fn cancel_deletion_returns_key_to_enabled() {
        let want = [
            "Rejected.StateModifiedFailed",
            "Rejected.StateModifiedFailed",
            "OK",
            "Rejected.StateModifiedFailed",
        ];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(code(cancel_deletion(&key(*s))), w, "{s}");
        }
        let r = cancel_deletion(&key(Disabled).clone())
            .err()
            .map(|e| e.code());
        assert_eq!(r, Some("Rejected.StateModifiedFailed"));
        let back = cancel_deletion(&key(PendingDeletion)).unwrap();
        assert_eq!(back.state, Enabled);
        assert_eq!(back.delete_date, None);
    }

    #[test]
    fn cancel_deletion_of_external_key_without_material_returns_to_pending_import() {
        let mut k = key(PendingDeletion);
        k.origin = Origin::External;
        k.has_material = false;
        assert_eq!(cancel_deletion(&k).unwrap().state, PendingImport);
        k.has_material = true;
        assert_eq!(cancel_deletion(&k).unwrap().state, Enabled);
    }

    #[test]
    fn import_moves_pending_import_to_enabled_and_keeps_other_states() {
        let fp = [7; 32];
        assert_eq!(
            import_material(&key(PendingImport), fp, None)
                .unwrap()
                .state,
            Enabled
        );
        assert_eq!(
            import_material(&key(Disabled), fp, None).unwrap().state,
            Disabled
        );
        assert_eq!(
            code(import_material(&key(PendingDeletion), fp, None)),
            "Rejected.StateModifiedFailed"
        );
        let imported = import_material(&key(PendingImport), fp, Some(NOW)).unwrap();
        assert_eq!(
            code(import_material(&imported, [8; 32], None)),
            "InvalidKeyMaterial"
        );
        assert!(import_material(&imported, fp, None).is_ok());
    }

    #[test]
    fn expired_material_makes_the_key_pending_import() {
        let k = import_material(&key(PendingImport), [7; 32], Some(NOW)).unwrap();
        assert!(!material_expired(&k, NOW.plus_secs(-1)));
        assert!(material_expired(&k, NOW));
        let e = effective(&k, NOW);
        assert_eq!(e.state, PendingImport);
        assert!(!e.has_material);
        assert_eq!(e.material_fingerprint, Some([7; 32]), "fingerprint is kept");
        let mut pending = k.clone();
        pending.state = PendingDeletion;
        assert_eq!(delete_material(&pending).state, PendingDeletion);
    }

    #[test]
    fn set_deletion_protection_row_of_the_state_table() {
        let want = ["OK", "OK", "Rejected.StateModifiedFailed", "OK"];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(
                code(set_deletion_protection(&key(*s), true, None)),
                w,
                "{s}"
            );
            assert_eq!(code(set_deletion_protection(&key(*s), false, None)), "OK");
        }
    }

    #[test]
    fn create_alias_row_of_the_state_table() {
        let want = ["OK", "OK", "Rejected.StateModifiedFailed", "OK"];
        for (s, w) in STATES.iter().zip(want) {
            assert_eq!(
                code(add_alias(&key(*s), "alias/a", "CreateAlias")),
                w,
                "{s}"
            );
        }
        assert_eq!(
            code(add_alias(&key(PendingDeletion), "alias/a", "UpdateAlias")),
            "Rejected.PendingDeletion"
        );
    }

    #[test]
    fn a_key_holds_at_most_50_aliases() {
        let mut k = key(Enabled);
        for i in 0..50 {
            k = add_alias(&k, &format!("alias/a{i}"), "CreateAlias").unwrap();
        }
        assert_eq!(
            code(add_alias(&k, "alias/one-more", "CreateAlias")),
            "Rejected.LimitExceeded"
        );
    }

    #[test]
    fn a_resource_holds_at_most_20_tags_and_setting_a_tag_replaces_it() {
        let mut k = key(Enabled);
        let twenty: BTreeMap<_, _> = (0..20)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        k = tag(&k, &twenty).unwrap();
        k = tag(&k, &[("k0".into(), "new".into())].into()).unwrap();
        assert_eq!(k.tags.len(), 20);
        assert_eq!(k.tags["k0"], "new");
        assert_eq!(
            code(tag(&k, &[("k20".into(), "v".into())].into())),
            "Rejected.LimitExceeded"
        );
    }

    #[test]
    fn a_key_past_its_delete_date_is_purged() {
        let k = key(PendingDeletion);
        assert!(!is_purged(&k, NOW));
        assert!(is_purged(&k, NOW.plus_secs(DAY)));
        assert!(!is_purged(&key(Enabled), NOW.plus_secs(1000 * DAY)));
    }

    #[test]
    fn rotation_policy_is_for_symmetric_generated_keys_only() {
        let mut k = key(Enabled);
        k.origin = Origin::External;
        assert_eq!(
            code(set_rotation_policy(&k, NOW, true, Some(7 * DAY))),
            "Rejected.UnsupportedOperation"
        );
        let mut k = key(Enabled);
        k.key_spec = KeySpec::Rsa2048;
        assert_eq!(
            code(set_rotation_policy(&k, NOW, true, Some(7 * DAY))),
            "Rejected.UnsupportedOperation"
        );
        assert_eq!(
            code(set_rotation_policy(&key(Enabled), NOW, true, None)),
            "MissingParameter"
        );
        assert_eq!(
            code(set_rotation_policy(
                &key(Disabled),
                NOW,
                true,
                Some(7 * DAY)
            )),
            "Rejected.Disabled"
        );
    }

    #[test]
    fn automatic_rotation_is_suspended_while_not_enabled() {
        let k = set_rotation_policy(&key(Enabled), NOW, true, Some(7 * DAY)).unwrap();
        assert_eq!(automatic_rotation(&k), AutomaticRotation::Enabled);
        assert_eq!(
            automatic_rotation(&disable(&k).unwrap()),
            AutomaticRotation::Suspended
        );
        assert_eq!(
            automatic_rotation(&key(Enabled)),
            AutomaticRotation::Disabled
        );
        let due = NOW.plus_secs(400 * DAY);
        assert!(rotation_due(&k, due));
        assert!(!rotation_due(&disable(&k).unwrap(), due));
        let rotated = rotate(&k, due, "v2");
        assert_eq!(rotated.primary_version_id.as_deref(), Some("v2"));
        assert_eq!(rotated.last_rotation_date, Some(due));
        assert_eq!(rotated.next_rotation_date, Some(due.plus_secs(7 * DAY)));
        assert!(!rotation_due(&rotated, due));
    }
}
