//! Validation of request values: each check names the parameter and its allowed range.

use std::collections::BTreeMap;

use crate::error::KmsError;
use crate::time::DAY;

/// Longest key description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 8192;
/// Most tags on one resource.
pub const MAX_TAGS: usize = 20;
/// Longest tag key or value, in characters.
pub const MAX_TAG_CHARS: usize = 128;
/// Most aliases on one key.
pub const MAX_ALIASES_PER_KEY: usize = 50;
/// Largest Encrypt plaintext, in bytes.
pub const MAX_PLAINTEXT: usize = 6144;
/// Largest EncryptionContext, in bytes of its JSON form.
pub const MAX_CONTEXT_BYTES: usize = 8192;
/// Shortest and longest automatic rotation interval, in seconds.
pub const ROTATION_INTERVAL_SECS: std::ops::RangeInclusive<i64> = (7 * DAY)..=(365 * DAY);
/// Allowed PendingWindowInDays.
pub const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<i64> = 7..=366;
/// Allowed PageSize.
pub const PAGE_SIZE: std::ops::RangeInclusive<i64> = 1..=100;
/// Allowed NumberOfBytes of a data key.
pub const DATA_KEY_BYTES: std::ops::RangeInclusive<i64> = 1..=1024;

/// A required string parameter.
///
/// Errors: `MissingParameter` when empty.
pub fn required<'a>(name: &'static str, value: &'a str) -> Result<&'a str, KmsError> {
    if value.is_empty() {
        Err(KmsError::missing(name))
    } else {
        Ok(value)
    }
}

/// A required bytes parameter.
///
/// Errors: `MissingParameter` when empty.
pub fn required_bytes(name: &'static str, value: &[u8]) -> Result<(), KmsError> {
    if value.is_empty() {
        Err(KmsError::missing(name))
    } else {
        Ok(())
    }
}

/// A description of at most 8192 characters.
pub fn description(name: &'static str, value: &str) -> Result<(), KmsError> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(KmsError::invalid(
            name,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The two parameters of UpdateRotationPolicy and UpdateSecretRotationPolicy: whether
/// automatic rotation is on, and the interval (seconds) when one is given.
///
/// Errors: `MissingParameter` (EnableAutomaticRotation); `InvalidParameter` as
/// [`rotation_interval`].
pub fn rotation_policy(
    enable: Option<bool>,
    interval: Option<&str>,
) -> Result<(bool, Option<i64>), KmsError> {
    let enable = enable.ok_or_else(|| KmsError::missing("EnableAutomaticRotation"))?;
    let interval = interval
        .filter(|s| !s.is_empty())
        .map(rotation_interval)
        .transpose()?;
    Ok((enable, interval))
}

/// Parses a rotation interval: `<n>s`, `<n>m`, `<n>h` or `<n>d`, 7 to 365 days.
pub fn rotation_interval(value: &str) -> Result<i64, KmsError> {
    const NAME: &str = "RotationInterval";
    let bad = || {
        KmsError::invalid(
            NAME,
            format!(
                "{value:?} must be a number followed by s, m, h or d (e.g. 604800s or 7d), \
                 between 7 and 365 days"
            ),
        )
    };
    let value = value.trim();
    let unit_pos = value.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = (
        value.get(..unit_pos).ok_or_else(bad)?,
        value.get(unit_pos..),
    );
    let scale = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => DAY,
        _ => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let secs = n.checked_mul(scale).ok_or_else(bad)?;
    if !ROTATION_INTERVAL_SECS.contains(&secs) {
        return Err(bad());
    }
    Ok(secs)
}

/// Checks a PendingWindowInDays value (7 to 366).
pub fn pending_window(days: Option<i64>) -> Result<i64, KmsError> {
    let days = days.ok_or_else(|| KmsError::missing("PendingWindowInDays"))?;
    if !PENDING_WINDOW_DAYS.contains(&days) {
        return Err(KmsError::invalid(
            "PendingWindowInDays",
            format!("{days} is outside 7 to 366"),
        ));
    }
    Ok(days)
}

/// A validated page request: page number from 1 and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Page number, from 1.
    pub number: usize,
    /// Items per page.
    pub size: usize,
}

/// One page of a list and the paging fields of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// PageNumber.
    pub page_number: i64,
    /// PageSize.
    pub page_size: i64,
    /// TotalCount: items on every page.
    pub total_count: i64,
}

impl<T> Paged<T> {
    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            page_number: self.page_number,
            page_size: self.page_size,
            total_count: self.total_count,
        }
    }
}

impl Page {
    /// This page of `items`.
    pub fn take<T>(self, items: Vec<T>) -> Paged<T> {
        let wide = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let total_count = wide(items.len());
        Paged {
            items: items
                .into_iter()
                .skip((self.number - 1).saturating_mul(self.size))
                .take(self.size)
                .collect(),
            page_number: wide(self.number),
            page_size: wide(self.size),
            total_count,
        }
    }
}

/// Page number and size with their defaults (1 and `default_size`).
pub fn paging(
    page_number: Option<i64>,
    page_size: Option<i64>,
    default_size: i64,
) -> Result<Page, KmsError> {
    let number = page_number.unwrap_or(1);
    if number < 1 {
        return Err(KmsError::invalid(
            "PageNumber",
            format!("{number} must be 1 or more"),
        ));
    }
    let size = page_size.unwrap_or(default_size);
    if !PAGE_SIZE.contains(&size) {
        return Err(KmsError::invalid(
            "PageSize",
            format!("{size} is outside 1 to 100"),
        ));
    }
    let number =
        usize::try_from(number).map_err(|_| KmsError::invalid("PageNumber", "too large"))?;
    let size = usize::try_from(size).map_err(|_| KmsError::invalid("PageSize", "too large"))?;
    Ok(Page { number, size })
}

fn tag_text(name: &'static str, what: &str, text: &str) -> Result<(), KmsError> {
    let n = text.chars().count();
    if n == 0 || n > MAX_TAG_CHARS {
        return Err(KmsError::invalid(
            name,
            format!("{what} {text:?} must have 1 to {MAX_TAG_CHARS} characters"),
        ));
    }
    if !text.chars().all(|c| {
        c.is_alphanumeric() || matches!(c, '/' | '\\' | '_' | '-' | '.' | '+' | '=' | ':' | '@')
    }) {
        return Err(KmsError::invalid(
            name,
            format!("{what} {text:?} may contain only letters, digits and / \\ _ - . + = : @"),
        ));
    }
    Ok(())
}

/// Checks a tag key: 1 to 128 characters of the allowed set, not starting with `aliyun` or
/// `acs:`.
pub fn tag_key(name: &'static str, key: &str) -> Result<(), KmsError> {
    tag_text(name, "tag key", key)?;
    let lower = key.to_ascii_lowercase();
    if lower.starts_with("aliyun") || lower.starts_with("acs:") {
        return Err(KmsError::invalid(
            name,
            format!("tag key {key:?} may not start with \"aliyun\" or \"acs:\""),
        ));
    }
    Ok(())
}

/// Checks a tag value: 1 to 128 characters of the allowed set.
pub fn tag_value(name: &'static str, value: &str) -> Result<(), KmsError> {
    tag_text(name, "tag value", value)
}

/// Checks an EncryptionContext: at most 8192 bytes as JSON, no empty keys.
/// The length of `context` serialized as a JSON object (what Alibaba's size limit counts),
/// computed without serializing it: `{}`, a comma between pairs, `"key":"value"` with each
/// string's JSON escaping.
fn context_json_len(context: &BTreeMap<String, String>) -> usize {
    fn json_len(s: &str) -> usize {
        2 + s
            .chars()
            .map(|c| match c {
                '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum::<usize>()
    }
    2 + context.len().saturating_sub(1)
        + context
            .iter()
            .map(|(k, v)| json_len(k) + 1 + json_len(v))
            .sum::<usize>()
}

pub fn encryption_context(
    name: &'static str,
    context: &BTreeMap<String, String>,
) -> Result<(), KmsError> {
    if context.keys().any(|k| k.is_empty()) {
        return Err(KmsError::invalid(name, "keys must not be empty"));
    }
    let size = context_json_len(context);
    if size > MAX_CONTEXT_BYTES {
        return Err(KmsError::invalid(
            name,
            format!("is {size} bytes as JSON; at most {MAX_CONTEXT_BYTES} are allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_size_is_its_length_as_json() {
        for pairs in [
            vec![],
            vec![("k", "v")],
            vec![("tenant", "acme"), ("a\"b", "c\\d\n\u{1}é😀")],
            vec![("x", ""), ("y", "\t\r\u{8}\u{c}\u{1f}")],
        ] {
            let map: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                context_json_len(&map),
                serde_json::to_string(&map).unwrap().len(),
                "{map:?}"
            );
        }
    }

    #[test]
    fn rotation_interval_accepts_every_unit_within_7_to_365_days() {
        assert_eq!(rotation_interval("604800s").unwrap(), 7 * DAY);
        assert_eq!(rotation_interval("7d").unwrap(), 7 * DAY);
        assert_eq!(rotation_interval("168h").unwrap(), 7 * DAY);
        assert_eq!(rotation_interval("10080m").unwrap(), 7 * DAY);
        assert_eq!(rotation_interval("365d").unwrap(), 365 * DAY);
    }

    #[test]
    fn rotation_interval_outside_range_or_malformed_is_invalid() {
        for bad in [
            "6d",
            "366d",
            "604799s",
            "",
            "s",
            "7",
            "7w",
            "-7d",
            "7.5d",
            "d7",
            "99999999999999999999d",
        ] {
            let e = rotation_interval(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter", "{bad}");
            assert!(e.to_string().contains("RotationInterval"));
        }
    }

    #[test]
    fn pending_window_is_7_to_366_days() {
        assert_eq!(pending_window(Some(7)).unwrap(), 7);
        assert_eq!(pending_window(Some(366)).unwrap(), 366);
        assert_eq!(
            pending_window(Some(6)).unwrap_err().code(),
            "InvalidParameter"
        );
        assert_eq!(
            pending_window(Some(367)).unwrap_err().code(),
            "InvalidParameter"
        );
        assert_eq!(pending_window(None).unwrap_err().code(), "MissingParameter");
    }

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(
            paging(None, None, 10).unwrap(),
            Page {
                number: 1,
                size: 10
            }
        );
        assert_eq!(
            paging(Some(2), Some(100), 10).unwrap(),
            Page {
                number: 2,
                size: 100
            }
        );
        let p = paging(Some(2), Some(2), 10)
            .unwrap()
            .take(vec![1, 2, 3, 4, 5]);
        assert_eq!(p.items, vec![3, 4]);
        assert_eq!((p.page_number, p.page_size, p.total_count), (2, 2, 5));
        assert!(paging(Some(9), Some(2), 10)
            .unwrap()
            .take(vec![1])
            .items
            .is_empty());
        assert!(paging(Some(0), None, 10).is_err());
        assert!(paging(None, Some(0), 10).is_err());
        assert!(paging(None, Some(101), 10).is_err());
    }

    #[test]
    fn tag_rules_follow_alibabas_documentation() {
        assert!(tag_key("Tags", "env").is_ok());
        assert!(tag_key("Tags", "a/b\\c_d-e.f+g=h:i@j").is_ok());
        assert!(tag_key("Tags", "環境").is_ok());
        assert!(tag_key("Tags", &"k".repeat(128)).is_ok());
        for bad in [
            "",
            "aliyun-x",
            "ALIYUNx",
            "acs:x",
            "has space",
            "semi;colon",
        ] {
            assert_eq!(
                tag_key("Tags", bad).unwrap_err().code(),
                "InvalidParameter",
                "{bad}"
            );
        }
        assert!(tag_key("Tags", &"k".repeat(129)).is_err());
        assert!(tag_value("Tags", "aliyun-is-fine-in-values").is_ok());
        assert!(tag_value("Tags", "").is_err());
    }

    #[test]
    fn description_is_at_most_8192_characters() {
        assert!(description("Description", &"d".repeat(8192)).is_ok());
        assert!(description("Description", &"d".repeat(8193)).is_err());
    }

    #[test]
    fn encryption_context_is_bounded() {
        let ok: BTreeMap<_, _> = [("k".to_string(), "v".repeat(8000))].into();
        assert!(encryption_context("EncryptionContext", &ok).is_ok());
        let big: BTreeMap<_, _> = [("k".to_string(), "v".repeat(8200))].into();
        assert!(encryption_context("EncryptionContext", &big).is_err());
        let empty_key: BTreeMap<_, _> = [(String::new(), "v".to_string())].into();
        assert!(encryption_context("EncryptionContext", &empty_key).is_err());
    }
}
