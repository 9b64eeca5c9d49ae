//! Identifiers: UUIDs, alias names, and what a `KeyId` parameter names ([`KeyRef`]); ARNs are
//! [`crate::schema`]'s.

use crate::crypto::RandomSource;
use crate::error::KmsError;
#[cfg(test)]
use crate::schema::ArnScope;

/// Longest alias name after the `alias/` prefix.
pub const MAX_ALIAS_SUFFIX_LEN: usize = 255;

/// A fresh random UUID v4 in lower-case hyphenated form.
pub fn new_uuid(rng: &dyn RandomSource) -> Result<String, KmsError> {
    let mut b = [0u8; 16];
    rng.fill(&mut b)?;
    let (hi, lo) = b.split_at(8);
    let hi = u64::from_be_bytes(
        hi.try_into()
            .map_err(|_| KmsError::internal("uuid split"))?,
    );
    let lo = u64::from_be_bytes(
        lo.try_into()
            .map_err(|_| KmsError::internal("uuid split"))?,
    );
    Ok(format_uuid_v4(hi, lo))
}

/// A fresh UUID v4 from the default crypto provider's random source, for a `RequestId` the
/// engine did not issue (a protocol error answered before any operation ran).
pub fn new_request_id() -> String {
    new_uuid(crate::crypto::backend::CryptoProvider::default().random())
        .unwrap_or_else(|_| "00000000-0000-4000-8000-000000000000".to_owned())
}

/// Formats 128 bits as a lower-case UUID, setting the version (4) and variant bits.
///
/// Every response carries one (its RequestId), so this appends the digits directly rather
/// than through `format!`, which cost about a tenth of an Encrypt.
pub fn format_uuid_v4(hi: u64, lo: u64) -> String {
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0xC0 << 56)) | (0x80 << 56);
    let mut out = String::with_capacity(36);
    push_hex(&mut out, hi >> 32, 8);
    out.push('-');
    push_hex(&mut out, hi >> 16, 4);
    out.push('-');
    push_hex(&mut out, hi, 4);
    out.push('-');
    push_hex(&mut out, lo >> 48, 4);
    out.push('-');
    push_hex(&mut out, lo, 12);
    out
}

/// Appends the low `digits` hex digits of `value`, most significant first, in lower case.
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        let nibble = usize::try_from((value >> (4 * i)) & 0xF).unwrap_or(0);
        out.push(char::from(HEX.get(nibble).copied().unwrap_or(b'0')));
    }
}

/// True when `s` has the UUID shape `8-4-4-4-12` of lower-case hex digits.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// Checks an alias name: `alias/` then 1..=255 characters of `[A-Za-z0-9_/-]`.
///
/// Errors: `InvalidParameter` naming `param`.
pub fn validate_alias_name(param: &'static str, name: &str) -> Result<(), KmsError> {
    let suffix = name
        .strip_prefix("alias/")
        .ok_or_else(|| KmsError::invalid(param, "must start with \"alias/\""))?;
    if suffix.is_empty() || suffix.len() > MAX_ALIAS_SUFFIX_LEN {
        return Err(KmsError::invalid(
            param,
            format!("must have 1 to {MAX_ALIAS_SUFFIX_LEN} characters after \"alias/\""),
        ));
    }
    if !suffix
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'/' | b'-'))
    {
        return Err(KmsError::invalid(
            param,
            "may contain only letters, digits, '_', '/' and '-' after \"alias/\"",
        ));
    }
    Ok(())
}

/// True for the aliases reserved for service keys (`alias/acs/...`).
pub fn is_reserved_alias(name: &str) -> bool {
    name.starts_with("alias/acs/")
}

/// What a `KeyId` parameter names once ARNs are unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A key id.
    Id(String),
    /// An alias name, with its `alias/` prefix.
    Alias(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::OsRandom;

    fn scope() -> ArnScope {
        ArnScope {
            region: "cn-hangzhou".into(),
            account_id: "1234".into(),
        }
    }

    #[test]
    fn new_uuids_are_v4_lower_case_and_distinct() {
        let a = new_uuid(&OsRandom).unwrap();
        let b = new_uuid(&OsRandom).unwrap();
        assert!(is_uuid(&a) && is_uuid(&b));
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn format_uuid_v4_groups_the_digits_8_4_4_4_12_with_version_and_variant() {
        assert_eq!(
            format_uuid_v4(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
            "01234567-89ab-4def-bedc-ba9876543210"
        );
        assert_eq!(format_uuid_v4(0, 0), "00000000-0000-4000-8000-000000000000");
        assert_eq!(
            format_uuid_v4(u64::MAX, u64::MAX),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
    }

    #[test]
    fn key_id_accepts_id_arn_alias_and_alias_arn() {
        let s = scope();
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(s.parse_key_ref("KeyId", id).unwrap(), KeyRef::Id(id.into()));
        assert_eq!(
            s.parse_key_ref("KeyId", &id.to_uppercase()).unwrap(),
            KeyRef::Id(id.into())
        );
        assert_eq!(
            s.parse_key_ref("KeyId", &s.key_arn(id)).unwrap(),
            KeyRef::Id(id.into())
        );
        assert_eq!(
            s.parse_key_ref("KeyId", "alias/my-key").unwrap(),
            KeyRef::Alias("alias/my-key".into())
        );
        assert_eq!(
            s.parse_key_ref("KeyId", &s.alias_arn("alias/my-key"))
                .unwrap(),
            KeyRef::Alias("alias/my-key".into())
        );
    }

    #[test]
    fn key_id_of_other_region_or_garbage_is_not_found() {
        let s = scope();
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        for bad in [
            format!("acs:kms:us-west-1:1234:key/{id}"),
            format!("acs:kms:cn-hangzhou:999:key/{id}"),
            "acs:kms:cn-hangzhou".to_string(),
            "acs:kms:cn-hangzhou:1234:key/nope".to_string(),
            "acs:kms:cn-hangzhou:1234:secret/x".to_string(),
            "not-a-key".to_string(),
        ] {
            assert_eq!(
                s.parse_key_ref("KeyId", &bad).unwrap_err().code(),
                "Forbidden.KeyNotFound",
                "{bad}"
            );
        }
        assert_eq!(
            s.parse_key_ref("KeyId", "").unwrap_err().code(),
            "MissingParameter"
        );
    }

    #[test]
    fn alias_names_follow_the_naming_rule() {
        assert!(validate_alias_name("AliasName", "alias/a").is_ok());
        assert!(validate_alias_name("AliasName", "alias/A-z_0/9").is_ok());
        assert!(validate_alias_name("AliasName", &format!("alias/{}", "x".repeat(255))).is_ok());
        for bad in [
            "alias/".to_string(),
            "a".to_string(),
            "alias/has space".to_string(),
            "alias/dot.no".to_string(),
            format!("alias/{}", "x".repeat(256)),
        ] {
            let e = validate_alias_name("AliasName", &bad).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter", "{bad}");
            assert!(e.to_string().contains("AliasName"));
        }
    }
}
