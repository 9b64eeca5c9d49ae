//! The records of KMS 3.0 applications and their pure rules: network rules, permission
//! policies, application access points (AAPs) and client keys.
//!
//! Alibaba's key management guide describes the model: an application reaches a KMS instance
//! through an AAP, authenticating with one of the AAP's client keys; the AAP's policies
//! (at most three) name what it may do (`Permissions`), on what (`Resources` of one
//! `KmsInstance`) and from where (`AccessControlRules`, naming network rules).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::engine::mutate::Record;
use crate::error::KmsError;
use crate::policy::Action;
use crate::schema;
use crate::time::UnixTime;
use crate::validate;

/// The permission template of cryptographic operations with keys.
pub const KEY_USER: &str = "RbacPermission/Template/CryptoServiceKeyUser";
/// The permission template of reading secrets.
pub const SECRET_USER: &str = "RbacPermission/Template/CryptoServiceSecretUser";
/// The shorter spelling of [`SECRET_USER`] some documents use; accepted as the same template.
const SECRET_USER_SHORT: &str = "RbacPermission/Template/SecretUser";
/// The only network rule type: private addresses.
pub const NETWORK_PRIVATE: &str = "Private";
/// The only AAP authentication method.
pub const CLIENT_KEY: &str = "ClientKey";
/// At most this many policies per AAP (Alibaba's limit).
pub const MAX_AAP_POLICIES: usize = 3;
/// At most this many addresses per network rule.
pub const MAX_SOURCES: usize = 50;
/// At most this many entries in a policy's Resources (and Permissions, and network rules).
pub const MAX_POLICY_ENTRIES: usize = 100;
/// A client key is valid for this long by default: five years, as Alibaba's.
pub const CLIENT_KEY_DEFAULT_VALIDITY: i64 = 5 * 365 * crate::time::DAY;
/// The policy scope of keys and secrets outside any instance (Alibaba's shared gateway).
pub const SHARED_SCOPE: &str = "shared";
/// The prefix of every client key id.
pub const CLIENT_KEY_PREFIX: &str = "KAAP.";

/// A network rule: where an application may call from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetworkRuleRecord {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) rule_type: String,
    /// IP addresses and CIDR blocks, as given (each checked by [`parse_source`]).
    pub(crate) source_private_ip: Vec<String>,
    pub(crate) created: UnixTime,
    pub(crate) updated: UnixTime,
}

/// A permission policy of AAPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) permissions: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) kms_instance: String,
    /// The network rules of its AccessControlRules.
    pub(crate) network_rules: Vec<String>,
    pub(crate) created: UnixTime,
    pub(crate) updated: UnixTime,
}

/// An application access point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccessPointRecord {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) authentication_method: String,
    pub(crate) policies: Vec<String>,
    pub(crate) created: UnixTime,
    pub(crate) updated: UnixTime,
}

/// A client key: only its public half is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClientKeyRecord {
    pub(crate) id: String,
    pub(crate) aap_name: String,
    pub(crate) key_algorithm: String,
    /// The self-signed certificate of the public key, PEM (GetClientKey's PublicKeyData).
    pub(crate) certificate_pem: String,
    pub(crate) not_before: UnixTime,
    pub(crate) not_after: UnixTime,
    pub(crate) created: UnixTime,
}

impl Record for NetworkRuleRecord {
    fn record_key(&self) -> Vec<u8> {
        schema::network_rule(&self.name)
    }
}

impl Record for PolicyRecord {
    fn record_key(&self) -> Vec<u8> {
        schema::aap_policy(&self.name)
    }
}

impl Record for AccessPointRecord {
    fn record_key(&self) -> Vec<u8> {
        schema::access_point(&self.name)
    }
}

/// Checks a network rule, policy or AAP name: 1 to 64 characters of letters, digits and
/// `_ - . /`.
pub(crate) fn validate_name(param: &'static str, name: &str) -> Result<(), KmsError> {
    validate::required(param, name)?;
    if name.chars().count() > 64 {
        return Err(KmsError::invalid(param, "must have at most 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    {
        return Err(KmsError::invalid(
            param,
            format!("{name:?} may contain only letters, digits and _ - . /"),
        ));
    }
    Ok(())
}

/// Checks a description: at most 256 characters.
pub(crate) fn validate_description(description: Option<&str>) -> Result<String, KmsError> {
    let d = description.unwrap_or_default();
    if d.chars().count() > 256 {
        return Err(KmsError::invalid(
            "Description",
            "must have at most 256 characters",
        ));
    }
    Ok(d.to_owned())
}

/// One source of a network rule: an address, or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    network: IpAddr,
    prefix: u8,
}

impl Source {
    /// Whether `addr` lies in this block (an IPv4-mapped IPv6 address counts as IPv4).
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parses `10.0.0.1`, `192.168.0.0/16` or an IPv6 address or block.
pub(crate) fn parse_source(text: &str) -> Result<Source, KmsError> {
    let bad = || {
        KmsError::invalid(
            "SourcePrivateIp",
            format!("{text:?} is not an IP address or CIDR block"),
        )
    };
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
        }
        Some(_) => return Err(bad()),
    };
    Ok(Source { network, prefix })
}

/// SourcePrivateIp: a JSON array of strings, or the items separated by commas (the two forms
/// Alibaba's documents show); 1 to [`MAX_SOURCES`] items, each an address or CIDR block.
pub(crate) fn parse_sources(text: &str) -> Result<Vec<String>, KmsError> {
    let items = string_list("SourcePrivateIp", text)?;
    if items.is_empty() {
        return Err(KmsError::missing("SourcePrivateIp"));
    }
    if items.len() > MAX_SOURCES {
        return Err(KmsError::invalid(
            "SourcePrivateIp",
            format!("at most {MAX_SOURCES} addresses are allowed"),
        ));
    }
    for item in &items {
        parse_source(item)?;
    }
    Ok(items)
}

/// A list parameter: a JSON array of strings, or comma-separated text. Items are trimmed;
/// empty ones are refused.
pub(crate) fn string_list(param: &'static str, text: &str) -> Result<Vec<String>, KmsError> {
    let text = text.trim();
    let items: Vec<String> = if text.starts_with('[') {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|_| KmsError::invalid(param, "must be a JSON array of strings"))?
            .into_iter()
            .map(|s| s.trim().to_owned())
            .collect()
    } else if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').map(|s| s.trim().to_owned()).collect()
    };
    if items.iter().any(String::is_empty) {
        return Err(KmsError::invalid(param, "has an empty item"));
    }
    if items.len() > MAX_POLICY_ENTRIES {
        return Err(KmsError::invalid(
            param,
            format!("at most {MAX_POLICY_ENTRIES} items are allowed"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = items.iter().find(|i| !seen.insert(i.as_str())) {
        return Err(KmsError::invalid(param, format!("names {dup:?} twice")));
    }
    Ok(items)
}

/// A permission template of [`KEY_USER`] or [`SECRET_USER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permission {
    KeyUser,
    SecretUser,
}

impl Permission {
    pub(crate) fn parse(text: &str) -> Result<Permission, KmsError> {
        match text {
            KEY_USER => Ok(Permission::KeyUser),
            SECRET_USER | SECRET_USER_SHORT => Ok(Permission::SecretUser),
            other => Err(KmsError::invalid(
                "Permissions",
                format!("{other:?} is not one of {KEY_USER}, {SECRET_USER}"),
            )),
        }
    }

    /// The permission an action on a resource needs, for the actions an AAP may ever be
    /// allowed: cryptography with keys, and reading secrets.
    pub(crate) fn needed_for(action: Action) -> Option<Permission> {
        match action {
            Action::Encrypt
            | Action::Decrypt
            | Action::GenerateDataKey
            | Action::GenerateDataKeyWithoutPlaintext
            | Action::AsymmetricSign
            | Action::AsymmetricVerify
            | Action::AsymmetricEncrypt
            | Action::AsymmetricDecrypt
            | Action::GetPublicKey
            | Action::GenerateMac
            | Action::VerifyMac => Some(Permission::KeyUser),
            Action::GetSecretValue => Some(Permission::SecretUser),
            _ => None,
        }
    }
}

/// Checks Permissions: 1 or more templates.
pub(crate) fn parse_permissions(text: &str) -> Result<Vec<String>, KmsError> {
    let items = string_list("Permissions", text)?;
    if items.is_empty() {
        return Err(KmsError::missing("Permissions"));
    }
    for p in &items {
        Permission::parse(p)?;
    }
    Ok(items)
}

/// Checks Resources: `key/<KeyId>`, `key/*`, `secret/<SecretName>` or `secret/*` (a `*`
/// matches any run of characters).
pub(crate) fn parse_resources(text: &str) -> Result<Vec<String>, KmsError> {
    let items = string_list("Resources", text)?;
    if items.is_empty() {
        return Err(KmsError::missing("Resources"));
    }
    for r in &items {
        let ok = r
            .strip_prefix("key/")
            .or_else(|| r.strip_prefix("secret/"))
            .is_some_and(|rest| !rest.is_empty());
        if !ok {
            return Err(KmsError::invalid(
                "Resources",
                format!("{r:?} is not key/<KeyId>, key/*, secret/<SecretName> or secret/*"),
            ));
        }
    }
    Ok(items)
}

/// AccessControlRules: `{"NetworkRules":["rule", ...]}`.
pub(crate) fn parse_access_control_rules(text: &str) -> Result<Vec<String>, KmsError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rules {
        #[serde(rename = "NetworkRules", default)]
        network_rules: Vec<String>,
    }
    let not_object = !text.trim_start().starts_with('{');
    let rules: Rules = serde_json::from_str(text)
        .ok()
        .filter(|_| !not_object)
        .ok_or_else(|| {
            KmsError::invalid(
                "AccessControlRules",
                r#"must be a JSON object {"NetworkRules":["<rule name>", ...]}"#,
            )
        })?;
    let joined = serde_json::to_string(&rules.network_rules)
        .map_err(|_| KmsError::internal("a list cannot be encoded"))?;
    let names = string_list("AccessControlRules", &joined)?;
    for n in &names {
        validate_name("AccessControlRules", n)?;
    }
    Ok(names)
}

/// The AccessControlRules text of a policy's network rules.
pub(crate) fn access_control_rules_text(network_rules: &[String]) -> String {
    serde_json::json!({ "NetworkRules": network_rules }).to_string()
}

/// A list as JSON text (`["a","b"]`): the form Alibaba answers lists of names in.
pub(crate) fn list_text(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// Whether `pattern` (with `*` wildcards) matches `text` exactly. Linear in their lengths
/// times the number of stars (the classic greedy matcher with one backtrack point).
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if t.get(ti) == Some(&c) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Checks a client key password: 8 to 64 characters, at least two of digits, letters and
/// the special characters `~ ! @ # $ % ^ & * ? _ -` (and nothing else).
pub(crate) fn validate_password(password: &str) -> Result<(), KmsError> {
    validate::required("Password", password)?;
    let n = password.chars().count();
    if !(8..=64).contains(&n) {
        return Err(KmsError::invalid(
            "Password",
            "must have 8 to 64 characters",
        ));
    }
    const SPECIAL: &str = "~!@#$%^&*?_-";
    if !password
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIAL.contains(c))
    {
        return Err(KmsError::invalid(
            "Password",
            "may contain only letters, digits and ~ ! @ # $ % ^ & * ? _ -",
        ));
    }
    let kinds = [
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| c.is_ascii_alphabetic()),
        password.chars().any(|c| SPECIAL.contains(c)),
    ];
    if kinds.iter().filter(|k| **k).count() < 2 {
        return Err(KmsError::invalid(
            "Password",
            "must contain at least two of: digits, letters, special characters",
        ));
    }
    Ok(())
}

/// NotBefore and NotAfter of CreateClientKey: both or neither (then now and five years from
/// now); NotBefore before NotAfter.
pub(crate) fn validity(
    not_before: Option<&str>,
    not_after: Option<&str>,
    now: UnixTime,
) -> Result<(UnixTime, UnixTime), KmsError> {
    let parse = |param: &'static str, s: &str| {
        UnixTime::parse_iso8601(s).ok_or_else(|| {
            KmsError::invalid(
                param,
                format!("{s:?} is not of the form yyyy-MM-ddTHH:mm:ssZ"),
            )
        })
    };
    let not_before = not_before.filter(|s| !s.is_empty());
    let not_after = not_after.filter(|s| !s.is_empty());
    let (from, to) = match (not_before, not_after) {
        (None, None) => (now, now.plus_secs(CLIENT_KEY_DEFAULT_VALIDITY)),
        (Some(b), Some(a)) => (parse("NotBefore", b)?, parse("NotAfter", a)?),
        (Some(_), None) => return Err(KmsError::missing("NotAfter")),
        (None, Some(_)) => return Err(KmsError::missing("NotBefore")),
    };
    if from >= to {
        return Err(KmsError::invalid(
            "NotAfter",
            "must be later than NotBefore",
        ));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_or_blocks_and_match_by_prefix() {
        let block = parse_source("192.168.0.0/16").unwrap();
        assert!(block.contains("192.168.3.4".parse().unwrap()));
        assert!(!block.contains("192.169.0.1".parse().unwrap()));
        let one = parse_source("10.0.0.1").unwrap();
        assert!(one.contains("10.0.0.1".parse().unwrap()));
        assert!(!one.contains("10.0.0.2".parse().unwrap()));
        // An IPv4-mapped IPv6 peer is its IPv4 address.
        assert!(one.contains("::ffff:10.0.0.1".parse().unwrap()));
        let all = parse_source("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = parse_source("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.300",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/x",
            "fd00::/129",
        ] {
            assert_eq!(parse_source(bad).unwrap_err().code(), "InvalidParameter");
        }
    }

    #[test]
    fn lists_are_json_arrays_or_comma_separated() {
        assert_eq!(
            parse_sources(r#"["10.0.0.1","10.1.0.0/16"]"#).unwrap(),
            ["10.0.0.1", "10.1.0.0/16"]
        );
        assert_eq!(
            parse_sources("10.0.0.1, 10.1.0.0/16").unwrap(),
            ["10.0.0.1", "10.1.0.0/16"]
        );
        assert_eq!(parse_sources("").unwrap_err().code(), "MissingParameter");
        assert!(string_list("P", "a,,b").is_err());
        assert!(string_list("P", "a,a").is_err());
        assert!(string_list("P", "[1]").is_err());
    }

    #[test]
    fn permissions_resources_and_rules_follow_alibabas_forms() {
        assert!(parse_permissions(r#"["RbacPermission/Template/CryptoServiceKeyUser"]"#).is_ok());
        assert!(parse_permissions(r#"["RbacPermission/Template/SecretUser"]"#).is_ok());
        assert!(parse_permissions(r#"["kms:*"]"#).is_err());
        assert!(parse_resources(r#"["key/*","secret/db-*"]"#).is_ok());
        assert!(parse_resources(r#"["alias/x"]"#).is_err());
        assert!(parse_resources(r#"["key/"]"#).is_err());
        assert_eq!(
            parse_access_control_rules(r#"{"NetworkRules":["r1","r2"]}"#).unwrap(),
            ["r1", "r2"]
        );
        assert!(parse_access_control_rules(r#"{"Other":[]}"#).is_err());
        assert!(parse_access_control_rules("[]").is_err());
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("key/*", "key/abc"));
        assert!(glob_matches("secret/db-*", "secret/db-main"));
        assert!(!glob_matches("secret/db-*", "secret/web"));
        assert!(glob_matches("key/abc", "key/abc"));
        assert!(!glob_matches("key/abc", "key/abcd"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("*", ""));
    }

    #[test]
    fn client_key_passwords_need_two_kinds_of_characters() {
        assert!(validate_password("abcd1234").is_ok());
        assert!(validate_password("abcd-efg").is_ok());
        assert!(validate_password("abcdefgh").is_err());
        assert!(validate_password("abc123").is_err());
        assert!(validate_password("abcd 1234").is_err());
        assert_eq!(
            validate_password("").unwrap_err().code(),
            "MissingParameter"
        );
    }

    #[test]
    fn validity_defaults_to_five_years_and_needs_both_ends() {
        let now = UnixTime(1_700_000_000);
        let (b, a) = validity(None, None, now).unwrap();
        assert_eq!((b, a), (now, now.plus_secs(CLIENT_KEY_DEFAULT_VALIDITY)));
        assert!(validity(Some("2026-01-01T00:00:00Z"), None, now).is_err());
        assert!(validity(
            Some("2026-01-02T00:00:00Z"),
            Some("2026-01-01T00:00:00Z"),
            now
        )
        .is_err());
        assert!(validity(
            Some("2026-01-01T00:00:00Z"),
            Some("2027-01-01T00:00:00Z"),
            now
        )
        .is_ok());
        assert!(validity(Some("yesterday"), Some("2027-01-01T00:00:00Z"), now).is_err());
    }
}
