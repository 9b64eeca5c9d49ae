//! The record schema: every record-key prefix, the builders of record keys, the scan ranges
//! and the ARN formats. Nothing else in the crate spells a prefix or an ARN.
//!
//! Every value is sealed with its record key as associated data (see `crypto::seal`) and
//! encoded as a schema-version byte followed by JSON; docs/formats.md describes each record.
//!
//! | record key | value |
//! | --- | --- |
//! | `m/keyring` | the sealing keyring (sealed under the root key) |
//! | `m/index` | the index format marker |
//! | `m/default-key` | the default key's marker |
//! | `h/health-probe` | never written: read by the storage health check |
//! | `k/<key id>` | a key record |
//! | `v/<key id>/<version id>` | a key version record, with the version's material |
//! | `a/<alias name>` | an alias record |
//! | `t/<import token>` | an import token of GetParametersForImport |
//! | `u/<key id>/<service>` | a key association (which service used a key, when last) |
//! | `s/<secret name>` | a secret record |
//! | `w/<secret name>/<version id>` | a secret version's sealed value |
//! | `x/<certificate id>` | a certificate record, with its private key |
//! | `r/<name>` | a network rule of applications |
//! | `p/<name>` | a permission policy of applications |
//! | `g/<name>` | an application access point |
//! | `c/<client key id>` | an application's client key (its certificate; never the private key) |
//! | `i/...` | the list and due-date indexes (`engine::index`), derived from the records |

use crate::error::KmsError;
use crate::ids::{is_uuid, KeyRef};
use crate::policy::Action;

/// Key records.
pub const KEY: &[u8] = b"k/";
/// Key version records.
pub(crate) const VERSION: &[u8] = b"v/";
/// Alias records.
pub(crate) const ALIAS: &[u8] = b"a/";
/// Import tokens.
pub(crate) const IMPORT_TOKEN: &[u8] = b"t/";
/// Key associations.
pub(crate) const ASSOCIATION: &[u8] = b"u/";
/// Secret records.
pub(crate) const SECRET: &[u8] = b"s/";
/// Secret version values.
pub(crate) const SECRET_VALUE: &[u8] = b"w/";
/// Certificate records.
pub(crate) const CERTIFICATE: &[u8] = b"x/";
/// Network rules.
pub(crate) const NETWORK_RULE: &[u8] = b"r/";
/// Application permission policies.
pub(crate) const AAP_POLICY: &[u8] = b"p/";
/// Application access points.
pub(crate) const ACCESS_POINT: &[u8] = b"g/";
/// Client keys.
pub(crate) const CLIENT_KEY: &[u8] = b"c/";
/// Every index record.
pub(crate) const INDEX: &[u8] = b"i/";
/// Index sequence counts.
pub(crate) const INDEX_COUNT: &str = "i/c/";
/// Index sequence entries.
pub(crate) const INDEX_ENTRY: &str = "i/e/";
/// Index back-pointers (record key → its place in a sequence).
pub(crate) const INDEX_BACK: &str = "i/b/";
/// The due-date index.
pub(crate) const DUE: &[u8] = b"i/d/";
/// The sealing keyring.
pub const KEYRING: &[u8] = b"m/keyring";
/// The index format marker.
pub(crate) const INDEX_MARKER: &[u8] = b"m/index";
/// The default key's marker.
pub(crate) const DEFAULT_KEY_MARKER: &[u8] = b"m/default-key";
/// The record the storage health check reads (never written).
pub(crate) const HEALTH_PROBE: &[u8] = b"h/health-probe";

/// The two-byte kind prefix of a record key (`k/` of `k/<id>`).
pub(crate) fn kind_of(record_key: &[u8]) -> Option<&[u8]> {
    record_key.get(..2)
}

fn join(prefix: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// `k/<key id>`.
pub fn key(key_id: &str) -> Vec<u8> {
    join(KEY, &[key_id])
}

/// `v/<key id>/<version id>`.
pub fn version(key_id: &str, version_id: &str) -> Vec<u8> {
    join(VERSION, &[key_id, version_id])
}

/// `v/<key id>/`: the scan range of a key's versions.
pub(crate) fn versions_of(key_id: &str) -> Vec<u8> {
    join(VERSION, &[key_id, ""])
}

/// `a/<alias name>`.
pub fn alias(alias_name: &str) -> Vec<u8> {
    join(ALIAS, &[alias_name])
}

/// `t/<import token>`.
pub(crate) fn import_token(token: &str) -> Vec<u8> {
    join(IMPORT_TOKEN, &[token])
}

/// `u/<key id>/<service>`.
pub(crate) fn association(key_id: &str, service: &str) -> Vec<u8> {
    join(ASSOCIATION, &[key_id, service])
}

/// `u/<key id>/`: the scan range of a key's associations.
pub(crate) fn associations_of(key_id: &str) -> Vec<u8> {
    join(ASSOCIATION, &[key_id, ""])
}

/// `s/<secret name>`.
pub(crate) fn secret(name: &str) -> Vec<u8> {
    join(SECRET, &[name])
}

/// `w/<secret name>/<version id>`.
pub(crate) fn secret_value(name: &str, version_id: &str) -> Vec<u8> {
    join(SECRET_VALUE, &[name, version_id])
}

/// `x/<certificate id>`.
pub(crate) fn certificate(id: &str) -> Vec<u8> {
    join(CERTIFICATE, &[id])
}

/// `r/<name>`.
pub(crate) fn network_rule(name: &str) -> Vec<u8> {
    join(NETWORK_RULE, &[name])
}

/// `p/<name>`.
pub(crate) fn aap_policy(name: &str) -> Vec<u8> {
    join(AAP_POLICY, &[name])
}

/// `g/<name>`.
pub(crate) fn access_point(name: &str) -> Vec<u8> {
    join(ACCESS_POINT, &[name])
}

/// `c/<client key id>`.
pub(crate) fn client_key(id: &str) -> Vec<u8> {
    join(CLIENT_KEY, &[id])
}

/// `i/c/<seq>`: a sequence's count.
pub(crate) fn index_count(seq: &str) -> Vec<u8> {
    format!("{INDEX_COUNT}{seq}").into_bytes()
}

/// `i/e/<seq>/`: the scan range of a sequence's entries.
pub(crate) fn index_entries(seq: &str) -> Vec<u8> {
    format!("{INDEX_ENTRY}{seq}/").into_bytes()
}

/// `i/e/<seq>/<position, 16 hex digits>`: one entry of a sequence.
pub(crate) fn index_entry(seq: &str, pos: u64) -> Vec<u8> {
    format!("{INDEX_ENTRY}{seq}/{pos:016x}").into_bytes()
}

/// `i/b/<record key>`: where a record sits in its sequence.
pub(crate) fn index_back(record_key: &[u8]) -> Vec<u8> {
    let mut k = INDEX_BACK.as_bytes().to_vec();
    k.extend_from_slice(record_key);
    k
}

/// Times sort as their unsigned offset from the most negative one.
fn when_hex(when: i64) -> String {
    format!("{:016x}", (when as u64) ^ (1 << 63))
}

fn parse_when(hex: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(hex).ok()?;
    let raw = u64::from_str_radix(s, 16).ok()?;
    Some((raw ^ (1 << 63)) as i64)
}

/// `i/d/<when, 16 hex digits>/<record key>`: a record with work due at `when`.
pub(crate) fn due(when: i64, record_key: &[u8]) -> Vec<u8> {
    let mut k = DUE.to_vec();
    k.extend_from_slice(when_hex(when).as_bytes());
    k.push(b'/');
    k.extend_from_slice(record_key);
    k
}

/// Splits a due-date entry's key into its time and record key.
pub(crate) fn parse_due(key: &[u8]) -> Option<(i64, &[u8])> {
    let rest = key.strip_prefix(DUE)?;
    let hex = rest.get(..16)?;
    let record_key = rest.get(16..)?.strip_prefix(b"/")?;
    Some((parse_when(hex)?, record_key))
}

/// `acs:ram::<account>:<resource>`: a RAM principal (`root`, `user/<name>`, `role/<name>`).
pub(crate) fn ram_arn(account_id: &str, resource: &str) -> String {
    format!("acs:ram::{account_id}:{resource}")
}

/// The prefix of every ARN: `acs:kms:`.
pub(crate) const ARN_PREFIX: &str = "acs:kms:";

/// The region and account that ARNs are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnScope {
    /// Region id, e.g. `cn-hangzhou`.
    pub region: String,
    /// Account id.
    pub account_id: String,
}

impl ArnScope {
    /// `acs:kms:{region}:{account}:{resource}{name}`: every ARN the engine writes.
    fn arn(&self, resource: &str, name: &str) -> String {
        format!(
            "{ARN_PREFIX}{}:{}:{resource}{name}",
            self.region, self.account_id
        )
    }

    /// `acs:kms:{region}:{account}:key/{key_id}`.
    pub fn key_arn(&self, key_id: &str) -> String {
        self.arn("key/", key_id)
    }

    /// `acs:kms:{region}:{account}:secret/{name}`.
    pub fn secret_arn(&self, name: &str) -> String {
        self.arn("secret/", name)
    }

    /// `acs:kms:{region}:{account}:certificate/{id}`.
    pub fn certificate_arn(&self, id: &str) -> String {
        self.arn("certificate/", id)
    }

    /// `acs:kms:{region}:{account}:network/{name}`.
    pub fn network_rule_arn(&self, name: &str) -> String {
        self.arn("network/", name)
    }

    /// `acs:kms:{region}:{account}:policy/{name}`.
    pub fn aap_policy_arn(&self, name: &str) -> String {
        self.arn("policy/", name)
    }

    /// `acs:kms:{region}:{account}:applicationaccesspoint/{name}`.
    pub fn aap_arn(&self, name: &str) -> String {
        self.arn("applicationaccesspoint/", name)
    }

    /// `acs:kms:{region}:{account}:keystore/{instance id}`.
    pub fn instance_arn(&self, id: &str) -> String {
        self.arn("keystore/", id)
    }

    /// The resource an account-level action is authorized on, as RAM policies name it: the
    /// collection ARN `acs:kms:{region}:{account}:key` for CreateKey and ListKeys, `...:alias`
    /// for ListAliases, `...:secret` for CreateSecret and ListSecrets, `...:certificate` for
    /// CreateCertificate, and `*` for the rest (DescribeRegions,
    /// GetRandomPassword...).
    pub fn collection_arn(&self, action: Action) -> String {
        let kind = match action {
            Action::CreateKey | Action::ListKeys => "key",
            Action::ListAliases => "alias",
            Action::CreateSecret | Action::ListSecrets => "secret",
            Action::CreateCertificate => "certificate",
            _ => return "*".to_owned(),
        };
        self.arn(kind, "")
    }

    /// `acs:kms:{region}:{account}:alias/{name without alias/}`.
    pub fn alias_arn(&self, alias_name: &str) -> String {
        let suffix = alias_name.strip_prefix("alias/").unwrap_or(alias_name);
        self.arn("alias/", suffix)
    }

    /// Resolves a `KeyId` parameter: a key id, key ARN, alias name, or alias ARN.
    ///
    /// Errors: `MissingParameter` when empty; `Forbidden.KeyNotFound` for anything that cannot
    /// name a key of this region and account (Alibaba answers the same).
    pub fn parse_key_ref(&self, param: &'static str, input: &str) -> Result<KeyRef, KmsError> {
        if input.is_empty() {
            return Err(KmsError::missing(param));
        }
        let not_found = || KmsError::KeyNotFound {
            key_id: input.to_owned(),
        };
        if input.starts_with("alias/") {
            return Ok(KeyRef::Alias(input.to_owned()));
        }
        if let Some(rest) = input.strip_prefix(ARN_PREFIX) {
            let mut parts = rest.splitn(3, ':');
            let (region, account, resource) = (
                parts.next().ok_or_else(not_found)?,
                parts.next().ok_or_else(not_found)?,
                parts.next().ok_or_else(not_found)?,
            );
            if region != self.region || account != self.account_id {
                return Err(not_found());
            }
            if let Some(id) = resource.strip_prefix("key/") {
                let id = id.to_ascii_lowercase();
                return if is_uuid(&id) {
                    Ok(KeyRef::Id(id))
                } else {
                    Err(not_found())
                };
            }
            if let Some(alias) = resource.strip_prefix("alias/") {
                return Ok(KeyRef::Alias(format!("alias/{alias}")));
            }
            return Err(not_found());
        }
        let id = input.to_ascii_lowercase();
        if is_uuid(&id) {
            Ok(KeyRef::Id(id))
        } else {
            Err(not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_kinds_are_distinct_two_byte_prefixes() {
        let kinds = [
            KEY,
            VERSION,
            ALIAS,
            IMPORT_TOKEN,
            ASSOCIATION,
            SECRET,
            SECRET_VALUE,
            CERTIFICATE,
            NETWORK_RULE,
            AAP_POLICY,
            ACCESS_POINT,
            CLIENT_KEY,
            INDEX,
            &KEYRING[..2],
            &HEALTH_PROBE[..2],
        ];
        let mut seen = std::collections::BTreeSet::new();
        for k in kinds {
            assert_eq!(k.len(), 2);
            assert_eq!(k[1], b'/');
            seen.insert(k);
        }
        // m/ holds the keyring and the markers.
        assert_eq!(seen.len(), kinds.len());
        for sub in [INDEX_COUNT, INDEX_ENTRY, INDEX_BACK] {
            assert!(sub.as_bytes().starts_with(INDEX));
        }
        assert!(DUE.starts_with(INDEX));
        assert_eq!(kind_of(&key("x")), Some(KEY));
    }

    #[test]
    fn record_keys_and_scan_ranges_have_their_documented_form() {
        assert_eq!(key("k1"), b"k/k1");
        assert_eq!(version("k1", "v1"), b"v/k1/v1");
        assert!(version("k1", "v1").starts_with(&versions_of("k1")));
        assert!(!version("k10", "v1").starts_with(&versions_of("k1")));
        assert_eq!(alias("alias/a"), b"a/alias/a");
        assert_eq!(import_token("t"), b"t/t");
        assert_eq!(association("k1", "oss"), b"u/k1/oss");
        assert!(association("k1", "oss").starts_with(&associations_of("k1")));
        assert_eq!(secret("s"), b"s/s");
        assert_eq!(secret_value("s", "v"), b"w/s/v");
        assert_eq!(certificate("c"), b"x/c");
        assert_eq!(network_rule("n"), b"r/n");
        assert_eq!(aap_policy("p"), b"p/p");
        assert_eq!(access_point("a"), b"g/a");
        assert_eq!(client_key("KAAP.x"), b"c/KAAP.x");
    }

    #[test]
    fn arns_have_alibabas_form() {
        let scope = ArnScope {
            region: "cn-hangzhou".into(),
            account_id: "1234".into(),
        };
        assert_eq!(scope.key_arn("k"), "acs:kms:cn-hangzhou:1234:key/k");
        assert_eq!(scope.secret_arn("s"), "acs:kms:cn-hangzhou:1234:secret/s");
        assert_eq!(
            scope.certificate_arn("c"),
            "acs:kms:cn-hangzhou:1234:certificate/c"
        );
        assert_eq!(
            scope.alias_arn("alias/a"),
            "acs:kms:cn-hangzhou:1234:alias/a"
        );
        assert_eq!(
            scope.collection_arn(Action::ListKeys),
            "acs:kms:cn-hangzhou:1234:key"
        );
        assert_eq!(scope.collection_arn(Action::DescribeRegions), "*");
    }
}
