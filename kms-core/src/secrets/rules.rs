//! Secrets Manager rules as pure functions: the secret record, version stages, deletion
//! windows, and random passwords.
//!
//! Stages live in one map (stage → version id) inside the secret record, so a stage can only
//! ever sit on one version, and a stage move is one atomic record write.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::crypto::RandomSource;
use crate::error::KmsError;
use crate::time::UnixTime;

/// The stage of the current version.
pub const ACS_CURRENT: &str = "ACSCurrent";
/// The stage of the version before the current one.
pub const ACS_PREVIOUS: &str = "ACSPrevious";
/// Most versions a secret keeps.
pub const MAX_VERSIONS: usize = 10;
/// Largest SecretData, in bytes.
pub const MAX_SECRET_DATA: usize = 30720;
/// Longest secret name.
pub const MAX_SECRET_NAME: usize = 192;
/// Allowed RecoveryWindowInDays.
pub const RECOVERY_WINDOW_DAYS: std::ops::RangeInclusive<i64> = 7..=30;
/// The secret type every engine supports.
pub const GENERIC: &str = "Generic";

/// One version's metadata (the value is in its own record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionMeta {
    /// Version id.
    pub version_id: String,
    /// When it was made.
    pub created: UnixTime,
    /// Position among the secret's versions ever made.
    pub seq: u64,
}

/// A secret's record: metadata, versions and stages. Values are in version records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// Name.
    pub name: String,
    /// Type (`Generic`, or one a rotation handler is registered for).
    pub secret_type: String,
    /// Description.
    pub description: String,
    /// The CMK (key id) that encrypts the values.
    pub encryption_key_id: String,
    /// Creation time.
    pub created: UnixTime,
    /// Last change.
    pub updated: UnixTime,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Rotation interval in seconds, when automatic rotation is on.
    pub rotation_interval: Option<i64>,
    /// Last rotation.
    pub last_rotation_date: Option<UnixTime>,
    /// Next rotation.
    pub next_rotation_date: Option<UnixTime>,
    /// Purge time while pending deletion.
    pub planned_delete_time: Option<UnixTime>,
    /// Secret policy document.
    pub policy: Option<String>,
    /// Versions, oldest first (at most [`MAX_VERSIONS`]).
    pub versions: Vec<SecretVersionMeta>,
    /// Stage → version id.
    pub stages: BTreeMap<String, String>,
    /// Versions ever made (the next version's seq).
    pub version_seq: u64,
    /// The KMS instance the secret belongs to (none: the engine's default instance).
    #[serde(default)]
    pub dkms_instance_id: Option<String>,
    /// ExtendedConfig: a JSON object the secret's type reads (kept as sent).
    #[serde(default)]
    pub extended_config: Option<String>,
}

impl SecretRecord {
    /// The stages on a version, sorted.
    pub fn stages_of(&self, version_id: &str) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, v)| *v == version_id)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// True when the version exists.
    pub fn has_version(&self, version_id: &str) -> bool {
        self.versions.iter().any(|v| v.version_id == version_id)
    }

    /// True once the recovery window has passed: the secret is gone.
    pub fn is_purged(&self, now: UnixTime) -> bool {
        self.planned_delete_time.is_some_and(|t| t <= now)
    }
}

/// Longest ExtendedConfig, in characters.
pub const MAX_EXTENDED_CONFIG: usize = 4096;

/// Checks an ExtendedConfig: a JSON object of at most [`MAX_EXTENDED_CONFIG`] characters
/// (empty: none).
pub fn validate_extended_config(value: Option<&str>) -> Result<Option<String>, KmsError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_EXTENDED_CONFIG {
        return Err(KmsError::invalid(
            "ExtendedConfig",
            format!("must have at most {MAX_EXTENDED_CONFIG} characters"),
        ));
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(Some(value.to_owned())),
        _ => Err(KmsError::invalid("ExtendedConfig", "must be a JSON object")),
    }
}

/// Checks a DKMSInstanceId's form (empty: none); whether the instance exists is the
/// engine's to say.
pub fn validate_instance_id(value: Option<&str>) -> Result<Option<String>, KmsError> {
    match value.filter(|v| !v.is_empty()) {
        Some(id) if id.len() > 128 => Err(KmsError::invalid(
            "DKMSInstanceId",
            "must have 1 to 128 characters",
        )),
        id => Ok(id.map(str::to_owned)),
    }
}

/// Checks a secret name: 1 to 192 characters of `[A-Za-z0-9_/+=.@-]`.
pub fn validate_name(name: &str) -> Result<(), KmsError> {
    if name.is_empty() {
        return Err(KmsError::missing("SecretName"));
    }
    if name.len() > MAX_SECRET_NAME
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_/+=.@-".contains(&c))
    {
        return Err(KmsError::invalid(
            "SecretName",
            format!(
                "must have 1 to {MAX_SECRET_NAME} characters of letters, digits and _ / + = . @ -"
            ),
        ));
    }
    Ok(())
}

/// Checks a version id: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_version_id(param: &'static str, id: &str) -> Result<(), KmsError> {
    if id.is_empty() {
        return Err(KmsError::missing(param));
    }
    if id.len() > 64
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
    {
        return Err(KmsError::invalid(
            param,
            "must have 1 to 64 characters of letters, digits and _ . -",
        ));
    }
    Ok(())
}

/// Checks a stage name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_stage(param: &'static str, stage: &str) -> Result<(), KmsError> {
    if stage.is_empty() {
        return Err(KmsError::missing(param));
    }
    if stage.len() > 64
        || !stage
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
    {
        return Err(KmsError::invalid(
            param,
            format!("{stage:?} must have 1 to 64 characters of letters, digits and _ . -"),
        ));
    }
    Ok(())
}

/// Checks SecretDataType and SecretData: `text`, or `binary` holding Base64; at most 30720
/// bytes. Returns the type.
pub fn validate_data(data_type: Option<&str>, data: &str) -> Result<String, KmsError> {
    let data_type = match data_type.unwrap_or("text") {
        "" | "text" => "text",
        "binary" => "binary",
        other => {
            return Err(KmsError::invalid(
                "SecretDataType",
                format!("{other:?} is not one of text, binary"),
            ))
        }
    };
    if data.is_empty() {
        return Err(KmsError::missing("SecretData"));
    }
    if data.len() > MAX_SECRET_DATA {
        return Err(KmsError::invalid(
            "SecretData",
            format!(
                "is {} bytes; at most {MAX_SECRET_DATA} are allowed",
                data.len()
            ),
        ));
    }
    if data_type == "binary" {
        use base64::Engine;
        if base64::engine::general_purpose::STANDARD
            .decode(data)
            .is_err()
        {
            return Err(KmsError::invalid(
                "SecretData",
                "a binary secret must be Base64 text",
            ));
        }
    }
    Ok(data_type.to_owned())
}

/// Adds a version carrying `stages` (PutSecretValue, rotation). ACSCurrent moving to it moves
/// ACSPrevious to the old current version. Past [`MAX_VERSIONS`], the oldest versions without
/// stages are dropped; their ids are returned so their value records can be deleted.
///
/// Errors: `Rejected.ResourceExist` for an existing version id (the caller handles the
/// same-data case first); `Rejected.LimitExceeded` when every version carries a stage.
pub fn put_version(
    rec: &SecretRecord,
    version_id: &str,
    now: UnixTime,
    stages: &[String],
) -> Result<(SecretRecord, Vec<String>), KmsError> {
    if rec.has_version(version_id) {
        return Err(KmsError::ResourceExist {
            resource: format!("version {version_id} of secret {}", rec.name),
        });
    }
    let mut next = rec.clone();
    next.versions.push(SecretVersionMeta {
        version_id: version_id.to_owned(),
        created: now,
        seq: rec.version_seq,
    });
    next.version_seq = rec.version_seq.saturating_add(1);
    let unique: BTreeSet<&String> = stages.iter().collect();
    for stage in unique {
        attach(&mut next, stage, version_id);
    }
    next.updated = now;
    let mut dropped = Vec::new();
    while next.versions.len() > MAX_VERSIONS {
        let staged: BTreeSet<&String> = next.stages.values().collect();
        let Some(pos) = next
            .versions
            .iter()
            .position(|v| !staged.contains(&v.version_id))
        else {
            return Err(KmsError::LimitExceeded {
                what: format!(
                    "secret {} keeps at most {MAX_VERSIONS} versions and every version has a stage",
                    rec.name
                ),
            });
        };
        dropped.push(next.versions.remove(pos).version_id);
    }
    Ok((next, dropped))
}

fn attach(rec: &mut SecretRecord, stage: &str, version_id: &str) {
    if stage == ACS_CURRENT {
        if let Some(old) = rec.stages.get(ACS_CURRENT).cloned() {
            if old != version_id {
                rec.stages.insert(ACS_PREVIOUS.to_owned(), old);
            }
        }
    }
    rec.stages.insert(stage.to_owned(), version_id.to_owned());
}

/// UpdateSecretVersionStage: moves a stage to MoveToVersion, or removes it from
/// RemoveFromVersion. ACSCurrent and ACSPrevious can only be moved.
///
/// Errors: `MissingParameter`, `InvalidParameter` (unknown version, stage not on
/// RemoveFromVersion, removing ACSCurrent/ACSPrevious).
pub fn move_stage(
    rec: &SecretRecord,
    stage: &str,
    remove_from: Option<&str>,
    move_to: Option<&str>,
    now: UnixTime,
) -> Result<SecretRecord, KmsError> {
    validate_stage("VersionStage", stage)?;
    let current = rec.stages.get(stage).map(String::as_str);
    if let Some(from) = remove_from {
        if current != Some(from) {
            return Err(KmsError::invalid(
                "RemoveFromVersion",
                format!("the stage {stage} is not on version {from}"),
            ));
        }
    }
    let mut next = rec.clone();
    match move_to {
        Some(to) => {
            if !rec.has_version(to) {
                return Err(KmsError::invalid(
                    "MoveToVersion",
                    format!("secret {} has no version {to}", rec.name),
                ));
            }
            if current.is_some() && current != Some(to) && remove_from.is_none() {
                return Err(KmsError::missing("RemoveFromVersion"));
            }
            attach(&mut next, stage, to);
        }
        None => {
            if remove_from.is_none() {
                return Err(KmsError::missing("MoveToVersion"));
            }
            if stage == ACS_CURRENT || stage == ACS_PREVIOUS {
                return Err(KmsError::invalid(
                    "VersionStage",
                    format!("{stage} can only be moved to another version, never removed"),
                ));
            }
            next.stages.remove(stage);
        }
    }
    next.updated = now;
    Ok(next)
}

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const PUNCTUATION: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// A uniform index in `0..n` by rejection sampling (no modulo bias).
fn uniform(rng: &dyn RandomSource, n: usize) -> Result<usize, KmsError> {
    let n32 = u32::try_from(n).map_err(|_| KmsError::internal("range too large"))?;
    if n32 == 0 {
        return Err(KmsError::internal("empty range"));
    }
    let zone = u32::MAX - (u32::MAX % n32);
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b)?;
        let x = u32::from_le_bytes(b);
        if x < zone {
            return usize::try_from(x % n32).map_err(|_| KmsError::internal("index"));
        }
    }
}

/// Options of GetRandomPassword.
#[derive(Debug, Clone, Default)]
pub struct PasswordRules<'a> {
    /// 8 to 128; default 32.
    pub length: Option<i64>,
    /// Characters never to use.
    pub exclude: &'a str,
    /// Leave out a-z.
    pub exclude_lowercase: bool,
    /// Leave out A-Z.
    pub exclude_uppercase: bool,
    /// Leave out 0-9.
    pub exclude_numbers: bool,
    /// Leave out punctuation.
    pub exclude_punctuation: bool,
    /// At least one character of each included class (default true).
    pub require_each_included_type: bool,
}

/// A random password from the OS random source, uniformly over the allowed characters.
///
/// Errors: `InvalidParameter` for a length outside 8..=128, or rules that leave no
/// characters (or fewer classes than RequireEachIncludedType needs room for).
pub fn random_password(
    rules: &PasswordRules<'_>,
    rng: &dyn RandomSource,
) -> Result<String, KmsError> {
    let length = rules.length.unwrap_or(32);
    if !(8..=128).contains(&length) {
        return Err(KmsError::invalid(
            "PasswordLength",
            format!("{length} is outside 8 to 128"),
        ));
    }
    let length = usize::try_from(length).map_err(|_| KmsError::invalid("PasswordLength", "bad"))?;
    let excluded = rules.exclude.as_bytes();
    let classes: Vec<Vec<u8>> = [
        (LOWER, rules.exclude_lowercase),
        (UPPER, rules.exclude_uppercase),
        (DIGITS, rules.exclude_numbers),
        (PUNCTUATION, rules.exclude_punctuation),
    ]
    .iter()
    .filter(|(_, off)| !off)
    .map(|(set, _)| {
        set.iter()
            .copied()
            .filter(|c| !excluded.contains(c))
            .collect::<Vec<u8>>()
    })
    .filter(|set| !set.is_empty())
    .collect();
    let pool: Vec<u8> = classes.iter().flatten().copied().collect();
    if pool.is_empty() {
        return Err(KmsError::invalid(
            "ExcludeCharacters",
            "the exclusions leave no characters to make a password from",
        ));
    }
    let mut out = Vec::with_capacity(length);
    if rules.require_each_included_type {
        for class in &classes {
            let i = uniform(rng, class.len())?;
            out.push(*class.get(i).ok_or_else(|| KmsError::internal("index"))?);
        }
    }
    while out.len() < length {
        let i = uniform(rng, pool.len())?;
        out.push(*pool.get(i).ok_or_else(|| KmsError::internal("index"))?);
    }
    // Fisher-Yates, so the required characters are not always first.
    for i in (1..out.len()).rev() {
        let j = uniform(rng, i + 1)?;
        out.swap(i, j);
    }
    String::from_utf8(out).map_err(|_| KmsError::internal("password is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::OsRandom;

    fn secret() -> SecretRecord {
        SecretRecord {
            name: "db".into(),
            secret_type: GENERIC.into(),
            description: String::new(),
            encryption_key_id: "k".into(),
            created: UnixTime(0),
            updated: UnixTime(0),
            tags: Default::default(),
            rotation_interval: None,
            last_rotation_date: None,
            next_rotation_date: None,
            planned_delete_time: None,
            policy: None,
            versions: vec![],
            stages: Default::default(),
            version_seq: 0,
            dkms_instance_id: None,
            extended_config: None,
        }
    }

    #[test]
    fn extended_config_is_a_bounded_json_object() {
        assert_eq!(validate_extended_config(None).unwrap(), None);
        assert_eq!(validate_extended_config(Some("")).unwrap(), None);
        let ok = r#"{"CustomData":{"team":"db"}}"#;
        assert_eq!(
            validate_extended_config(Some(ok)).unwrap().as_deref(),
            Some(ok)
        );
        for bad in ["[1]", "\"x\"", "{", "null"] {
            assert_eq!(
                validate_extended_config(Some(bad)).unwrap_err().code(),
                "InvalidParameter",
                "{bad}"
            );
        }
        let long = format!(r#"{{"k":"{}"}}"#, "x".repeat(MAX_EXTENDED_CONFIG));
        assert!(validate_extended_config(Some(&long)).is_err());
    }

    #[test]
    fn instance_id_has_at_most_128_characters() {
        assert_eq!(validate_instance_id(Some("")).unwrap(), None);
        assert_eq!(
            validate_instance_id(Some("kst-a")).unwrap().as_deref(),
            Some("kst-a")
        );
        assert!(validate_instance_id(Some(&"k".repeat(129))).is_err());
    }

    fn current() -> Vec<String> {
        vec![ACS_CURRENT.to_string()]
    }

    #[test]
    fn putting_a_value_moves_current_and_previous() {
        let (s, _) = put_version(&secret(), "v1", UnixTime(1), &current()).unwrap();
        assert_eq!(s.stages_of("v1"), vec![ACS_CURRENT]);
        let (s, _) = put_version(&s, "v2", UnixTime(2), &current()).unwrap();
        assert_eq!(s.stages_of("v2"), vec![ACS_CURRENT]);
        assert_eq!(s.stages_of("v1"), vec![ACS_PREVIOUS]);
        let (s, _) = put_version(&s, "v3", UnixTime(3), &current()).unwrap();
        assert_eq!(s.stages_of("v1"), Vec::<String>::new());
        assert_eq!(s.stages_of("v2"), vec![ACS_PREVIOUS]);
    }

    #[test]
    fn at_most_ten_versions_are_kept_oldest_unstaged_first() {
        let mut s = secret();
        for i in 0..12 {
            let (n, dropped) = put_version(&s, &format!("v{i}"), UnixTime(i), &current()).unwrap();
            s = n;
            if i >= 10 {
                assert_eq!(dropped, vec![format!("v{}", i - 10)]);
            }
        }
        assert_eq!(s.versions.len(), MAX_VERSIONS);
        assert!(!s.has_version("v0") && !s.has_version("v1"));
    }

    #[test]
    fn versions_all_staged_past_ten_is_limit_exceeded() {
        let mut s = secret();
        for i in 0..10 {
            s = put_version(&s, &format!("v{i}"), UnixTime(i), &[format!("S{i}")])
                .unwrap()
                .0;
        }
        let e = put_version(&s, "v10", UnixTime(10), &["S10".into()]).unwrap_err();
        assert_eq!(e.code(), "Rejected.LimitExceeded");
    }

    #[test]
    fn current_and_previous_can_only_be_moved() {
        let (s, _) = put_version(&secret(), "v1", UnixTime(1), &current()).unwrap();
        let (s, _) = put_version(&s, "v2", UnixTime(2), &current()).unwrap();
        for stage in [ACS_CURRENT, ACS_PREVIOUS] {
            let on = s.stages.get(stage).unwrap().clone();
            let e = move_stage(&s, stage, Some(&on), None, UnixTime(3)).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter");
        }
        let moved = move_stage(&s, ACS_CURRENT, Some("v2"), Some("v1"), UnixTime(3)).unwrap();
        assert_eq!(moved.stages_of("v1"), vec![ACS_CURRENT]);
        assert_eq!(moved.stages_of("v2"), vec![ACS_PREVIOUS]);
    }

    #[test]
    fn custom_stages_move_and_remove() {
        let (s, _) = put_version(&secret(), "v1", UnixTime(1), &current()).unwrap();
        let (s, _) = put_version(&s, "v2", UnixTime(2), &["Beta".into()]).unwrap();
        let s2 = move_stage(&s, "Beta", Some("v2"), Some("v1"), UnixTime(3)).unwrap();
        assert_eq!(s2.stages_of("v1"), vec![ACS_CURRENT, "Beta"]);
        let s3 = move_stage(&s2, "Beta", Some("v1"), None, UnixTime(4)).unwrap();
        assert_eq!(s3.stages_of("v1"), vec![ACS_CURRENT]);
        assert_eq!(
            move_stage(&s2, "Beta", Some("v2"), None, UnixTime(4))
                .unwrap_err()
                .code(),
            "InvalidParameter"
        );
        assert_eq!(
            move_stage(&s2, "Beta", None, Some("nope"), UnixTime(4))
                .unwrap_err()
                .code(),
            "InvalidParameter"
        );
    }

    #[test]
    fn passwords_follow_the_rules() {
        let p = random_password(
            &PasswordRules {
                require_each_included_type: true,
                ..Default::default()
            },
            &OsRandom,
        )
        .unwrap();
        assert_eq!(p.len(), 32);
        assert!(p.bytes().any(|c| LOWER.contains(&c)));
        assert!(p.bytes().any(|c| UPPER.contains(&c)));
        assert!(p.bytes().any(|c| DIGITS.contains(&c)));
        assert!(p.bytes().any(|c| PUNCTUATION.contains(&c)));
        let digits = random_password(
            &PasswordRules {
                length: Some(8),
                exclude_lowercase: true,
                exclude_uppercase: true,
                exclude_punctuation: true,
                exclude: "01",
                require_each_included_type: true,
                ..Default::default()
            },
            &OsRandom,
        )
        .unwrap();
        assert_eq!(digits.len(), 8);
        assert!(digits.bytes().all(|c| (b'2'..=b'9').contains(&c)));
        for bad in [7, 129] {
            let e = random_password(
                &PasswordRules {
                    length: Some(bad),
                    ..Default::default()
                },
                &OsRandom,
            )
            .unwrap_err();
            assert!(e.to_string().contains("PasswordLength"));
        }
        let none = random_password(
            &PasswordRules {
                exclude_lowercase: true,
                exclude_uppercase: true,
                exclude_punctuation: true,
                exclude: "0123456789",
                ..Default::default()
            },
            &OsRandom,
        );
        assert_eq!(none.unwrap_err().code(), "InvalidParameter");
    }

    #[test]
    fn uniform_draws_cover_the_range_without_bias() {
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            counts[uniform(&OsRandom, 10).unwrap()] += 1;
        }
        for c in counts {
            assert!((1600..2400).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn names_and_data_are_validated() {
        assert!(validate_name("a/b+c=d.e@f-g_h").is_ok());
        assert_eq!(validate_name("").unwrap_err().code(), "MissingParameter");
        assert!(validate_name(&"n".repeat(193)).is_err());
        assert!(validate_name("sp ace").is_err());
        assert_eq!(validate_data(None, "x").unwrap(), "text");
        assert!(validate_data(Some("binary"), "aGVsbG8=").is_ok());
        assert!(validate_data(Some("binary"), "not base64!").is_err());
        assert!(validate_data(Some("blob"), "x").is_err());
        assert!(validate_data(None, &"x".repeat(30720)).is_ok());
        assert!(validate_data(None, &"x".repeat(30721)).is_err());
    }
}
