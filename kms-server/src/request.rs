//! Request decoding: the query string and the form body into one parameter list.
//!
//! Alibaba's RPC protocol sends parameters `name=value&...` in the query string (V1 SDKs and
//! the V3 SDKs' operation parameters) and in an `application/x-www-form-urlencoded` body
//! (V3 SDKs put large values such as `SecretData` there). Both are decoded with form rules
//! (`+` is a space, `%XX` a byte, the result must be UTF-8) and merged. A parameter given twice,
//! in one place or across both, is refused: two different values for one name would leave the
//! signature covering one reading and the engine acting on another.

use crate::response::ApiError;

/// Default limit on the body (and on the query string, which is also capped at
/// [`crate::server::MAX_QUERY_BYTES`]): 64 KiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// Parameters the protocol uses and the operations do not see.
pub const PROTOCOL_PARAMETERS: &[&str] = &[
    "AccessKeyId",
    "Action",
    "Format",
    "RegionId",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureType",
    "SignatureVersion",
    "Timestamp",
    "Version",
];

/// Most parameters one request may carry (query and body together). The largest real
/// requests (TagResources, BatchGetSecretValue, flattened lists) stay far below it; the bound
/// keeps what an unauthenticated request can make the server do linear and small.
pub const MAX_PARAMETERS: usize = 1024;

/// Decoded `name=value` pairs, in the order given, each name at most once.
///
/// Adding and looking up a parameter costs O(1), so decoding a request costs O(its size): a
/// request of up to [`INDEX_FROM`] parameters (every real one) is searched in order, without
/// copying its names into an index; past that, the names are indexed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
    index: Option<std::collections::HashMap<String, usize, foldhash::fast::RandomState>>,
}

/// Parameters searched in order before they are indexed.
pub const INDEX_FROM: usize = 16;

impl Params {
    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.pairs.iter().position(|(n, _)| n == name),
        }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.position(name)?;
        self.pairs.get(i).map(|(_, v)| v.as_str())
    }

    /// The pairs, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Adds a parameter.
    ///
    /// Errors: `InvalidParameter` naming it when it is already present, or when the request
    /// already holds [`MAX_PARAMETERS`].
    pub fn push(&mut self, name: String, value: String) -> Result<(), ApiError> {
        if self.position(&name).is_some() {
            return Err(ApiError::invalid(
                name,
                "the parameter is given more than once",
            ));
        }
        if self.pairs.len() >= MAX_PARAMETERS {
            return Err(ApiError::invalid(
                "QueryString",
                format!("a request may carry at most {MAX_PARAMETERS} parameters"),
            ));
        }
        let at = self.pairs.len();
        match &mut self.index {
            Some(index) => {
                index.insert(name.clone(), at);
            }
            None if at >= INDEX_FROM => {
                let mut index: std::collections::HashMap<_, _, _> = self
                    .pairs
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| (n.clone(), i))
                    .collect();
                index.insert(name.clone(), at);
                self.index = Some(index);
            }
            None => {}
        }
        self.pairs.push((name, value));
        Ok(())
    }

    /// The operation's parameters as the JSON object of strings that
    /// [`kms_core::api::decode_request`] takes, without the protocol parameters.
    ///
    /// Alibaba's flattened lists become JSON lists, in index order: `ResourceId.1=a` and
    /// `ResourceId.2=b` become `"ResourceId": ["a", "b"]`, and `Tag.1.Key=k`, `Tag.1.Value=v`
    /// become `"Tag": [{"Key": "k", "Value": "v"}]`.
    pub fn operation_json(&self) -> serde_json::Value {
        self.clone().into_operation_json()
    }

    /// [`Params::operation_json`], moving the values instead of copying them.
    pub fn into_operation_json(self) -> serde_json::Value {
        use serde_json::Value;
        let mut out = serde_json::Map::new();
        let mut lists: std::collections::BTreeMap<String, std::collections::BTreeMap<u32, Value>> =
            std::collections::BTreeMap::new();
        for (name, value) in self
            .pairs
            .into_iter()
            .filter(|(n, _)| !PROTOCOL_PARAMETERS.contains(&n.as_str()))
        {
            match split_flattened(&name) {
                Some((base, index, field)) => {
                    let slot = lists
                        .entry(base.to_owned())
                        .or_default()
                        .entry(index)
                        .or_insert(Value::Null);
                    match field {
                        None => *slot = Value::String(value),
                        Some(field) => {
                            if !slot.is_object() {
                                *slot = Value::Object(serde_json::Map::new());
                            }
                            if let Value::Object(m) = slot {
                                m.insert(field.to_owned(), Value::String(value));
                            }
                        }
                    }
                }
                None => {
                    out.insert(name, Value::String(value));
                }
            }
        }
        for (base, items) in lists {
            out.entry(base)
                .or_insert_with(|| Value::Array(items.into_values().collect()));
        }
        Value::Object(out)
    }
}

fn split_flattened(name: &str) -> Option<(&str, u32, Option<&str>)> {
    let mut parts = name.splitn(3, '.');
    let base = parts.next().filter(|b| !b.is_empty())?;
    let index: u32 = parts
        .next()
        .filter(|i| !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()))?
        .parse()
        .ok()
        .filter(|i| *i >= 1)?;
    match parts.next() {
        None => Some((base, index, None)),
        Some(field) if !field.is_empty() && !field.contains('.') => {
            Some((base, index, Some(field)))
        }
        Some(_) => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body).
///
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is a parameter with an empty
/// value.
///
/// Errors: `InvalidParameter` naming the parameter (or `QueryString`/`Body` when the name itself
/// is malformed) for a bad `%` escape or text that is not UTF-8; `InvalidParameter` naming a
/// parameter given twice.
pub fn parse_form(what: &'static str, raw: &[u8]) -> Result<Params, ApiError> {
    let mut params = Params::default();
    for segment in raw.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(i) => (
                segment.get(..i).unwrap_or_default(),
                segment.get(i + 1..).unwrap_or_default(),
            ),
            None => (segment, &[][..]),
        };
        let name = decode_component(name)
            .map_err(|reason| ApiError::invalid(what, format!("a parameter name {reason}")))?;
        if name.is_empty() {
            return Err(ApiError::invalid(what, "a parameter has an empty name"));
        }
        let value = match decode_component(value) {
            Ok(v) => v,
            Err(reason) => return Err(ApiError::invalid(name, format!("the value {reason}"))),
        };
        params.push(name, value)?;
    }
    Ok(params)
}

/// Merges the query's and the body's parameters.
///
/// Errors: `InvalidParameter` naming a parameter present in both.
pub fn merge(query: &Params, body: Params) -> Result<Params, ApiError> {
    if query.is_empty() {
        return Ok(body);
    }
    let mut all = query.clone();
    for (n, v) in body.pairs {
        all.push(n, v)?;
    }
    Ok(all)
}

fn decode_component(raw: &[u8]) -> Result<String, &'static str> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    // Runs without `+` or `%` are copied whole.
    while let Some(i) = rest.iter().position(|&b| b == b'+' || b == b'%') {
        let (run, tail) = rest.split_at(i);
        out.extend_from_slice(run);
        match tail {
            [b'+', more @ ..] => {
                out.push(b' ');
                rest = more;
            }
            [b'%', hi, lo, more @ ..] => match (hex(*hi), hex(*lo)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    rest = more;
                }
                _ => return Err("has a malformed percent-escape"),
            },
            _ => return Err("has a malformed percent-escape"),
        }
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).map_err(|_| "is not UTF-8 text")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let p = parse_form("QueryString", b"A=hello+world%20%2A~&B=%C3%A9&C&&D=").unwrap();
        assert_eq!(p.get("A"), Some("hello world *~"));
        assert_eq!(p.get("B"), Some("é"));
        assert_eq!(p.get("C"), Some(""));
        assert_eq!(p.get("D"), Some(""));
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn names_the_parameter_with_a_bad_escape() {
        for raw in [&b"KeyId=%zz"[..], b"KeyId=%4", b"KeyId=%", b"KeyId=%FF"] {
            let e = parse_form("QueryString", raw).unwrap_err();
            assert_eq!(e.code, "InvalidParameter");
            assert!(e.message.contains("KeyId"), "{}", e.message);
        }
        let e = parse_form("Body", b"%zz=1").unwrap_err();
        assert!(e.message.contains("Body"), "{}", e.message);
    }

    #[test]
    fn the_parameter_count_is_bounded() {
        let many: String = (0..MAX_PARAMETERS + 1)
            .map(|i| format!("P{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        let e = parse_form("QueryString", many.as_bytes()).unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        assert!(e.message.contains(&MAX_PARAMETERS.to_string()));
        let just: String = (0..MAX_PARAMETERS)
            .map(|i| format!("P{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        let p = parse_form("QueryString", just.as_bytes()).unwrap();
        assert_eq!(p.get("P1023"), Some("v"));
    }

    #[test]
    fn lookups_and_duplicates_work_below_and_past_the_index_threshold() {
        for n in [1, INDEX_FROM - 1, INDEX_FROM, INDEX_FROM + 1, 100] {
            let raw: String = (0..n)
                .map(|i| format!("P{i}=v{i}"))
                .collect::<Vec<_>>()
                .join("&");
            let mut p = parse_form("QueryString", raw.as_bytes()).unwrap();
            for i in 0..n {
                assert_eq!(p.get(&format!("P{i}")), Some(format!("v{i}").as_str()));
            }
            assert_eq!(p.get("P-absent"), None);
            let e = p.push("P0".into(), "again".into()).unwrap_err();
            assert!(e.message.contains("more than once"), "{n}: {}", e.message);
            p.push("Extra".into(), "x".into()).unwrap();
            assert_eq!(p.get("Extra"), Some("x"));
            assert_eq!(p.len(), n + 1);
        }
    }

    #[test]
    fn duplicates_are_refused_within_and_across() {
        let e = parse_form("QueryString", b"KeyId=a&KeyId=a").unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        assert!(e.message.contains("KeyId"));
        let q = parse_form("QueryString", b"KeyId=a").unwrap();
        let b = parse_form("Body", b"KeyId=b").unwrap();
        assert!(merge(&q, b).unwrap_err().message.contains("KeyId"));
    }

    #[test]
    fn flattened_lists_become_json_lists_in_index_order() {
        let p = parse_form(
            "QueryString",
            b"ResourceType=key&ResourceId.2=b&ResourceId.1=a&Tag.1.Key=k1&Tag.1.Value=v1&Tag.2.Key=k2&TagKey.1=x",
        )
        .unwrap();
        assert_eq!(
            p.operation_json(),
            serde_json::json!({
                "ResourceType": "key",
                "ResourceId": ["a", "b"],
                "Tag": [{"Key": "k1", "Value": "v1"}, {"Key": "k2"}],
                "TagKey": ["x"],
            })
        );
        // Names that only look flattened stay as they are.
        let q = parse_form("QueryString", b"A.0=x&B.x=y&C.1.d.e=z&.1=w").unwrap();
        assert_eq!(
            q.operation_json(),
            serde_json::json!({"A.0": "x", "B.x": "y", "C.1.d.e": "z", ".1": "w"})
        );
    }

    #[test]
    fn operation_json_drops_protocol_parameters() {
        let p = parse_form(
            "QueryString",
            b"Action=Encrypt&KeyId=k&Signature=s&Plaintext=x",
        )
        .unwrap();
        assert_eq!(
            p.operation_json(),
            serde_json::json!({"KeyId": "k", "Plaintext": "x"})
        );
    }
}
