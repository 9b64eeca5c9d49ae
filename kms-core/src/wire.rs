//! Serde adapters between the Rust API and Alibaba's wire values.
//!
//! Alibaba's RPC protocol sends every parameter as a string: numbers and booleans as text,
//! lists and maps (Tags, Filters, EncryptionContext) as JSON text. The request structs accept
//! both those strings and native JSON values, so the same struct decodes a query string, a
//! JSON body, or a Rust caller's `serde_json::json!` value.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::KmsError;

/// Decodes a request from a JSON value (e.g. the server's merged query and form parameters).
///
/// Errors: `MissingParameter` or `InvalidParameter` naming the parameter where serde reports
/// one, otherwise `InvalidParameter` with serde's explanation.
pub fn decode_request<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, KmsError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(name) = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            return KmsError::missing(name.to_owned());
        }
        let name = if path == "." {
            "Request".to_owned()
        } else {
            path
        };
        KmsError::invalid(name, inner)
    })
}

/// Base64 for byte fields (`Vec<u8>` or [`SecretBytes`](crate::crypto::SecretBytes)).
pub mod base64_bytes {
    use super::*;
    use base64::Engine;

    /// Serializes bytes as standard Base64.
    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(v.as_ref()));
        s.serialize_str(&text)
    }

    /// Deserializes standard Base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(d: D) -> Result<T, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(T::from)
            .map_err(|_| D::Error::custom("expected Base64 data"))
    }
}

/// An opaque UTF-8 string on the wire, bytes in Rust (Encrypt's Plaintext, Decrypt's answer).
pub mod utf8_bytes {
    use super::*;
    use crate::crypto::SecretBytes;

    /// Serializes bytes as a string; fails for bytes that are not UTF-8.
    pub fn serialize<S: Serializer>(v: &SecretBytes, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(v).map_err(|_| {
            serde::ser::Error::custom("the plaintext is not UTF-8 and cannot travel as a string")
        })?;
        s.serialize_str(text)
    }

    /// Room left after the text for a ciphertext blob's header and tag, so that Encrypt seals
    /// in the request's own buffer (ids of up to 48 characters each).
    pub const BLOB_ROOM: usize = 4 + 2 * 49 + 1 + crate::crypto::NONCE_LEN + crate::crypto::TAG_LEN;

    struct Text;

    impl serde::de::Visitor<'_> for Text {
        type Value = SecretBytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut out = Vec::with_capacity(v.len() + BLOB_ROOM);
            out.extend_from_slice(v.as_bytes());
            Ok(SecretBytes::new(out))
        }

        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(SecretBytes::new(v.into_bytes()))
        }
    }

    /// Deserializes a string into its UTF-8 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretBytes, D::Error> {
        d.deserialize_string(Text)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrText {
    Bool(bool),
    Text(String),
}

/// An optional boolean sent as `true`/`false` or as the text `"true"`/`"false"`.
pub mod lenient_bool {
    use super::*;

    /// Serializes as a JSON boolean.
    pub fn serialize<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// Accepts a boolean or its text form (case-insensitive).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<BoolOrText>::deserialize(d)? {
            None => Ok(None),
            Some(BoolOrText::Bool(b)) => Ok(Some(b)),
            Some(BoolOrText::Text(t)) if t.is_empty() => Ok(None),
            Some(BoolOrText::Text(t)) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(BoolOrText::Text(t)) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(BoolOrText::Text(t)) => Err(D::Error::custom(format!(
                "expected true or false, found {t:?}"
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrText {
    Int(i64),
    Text(String),
}

/// An optional integer sent as a number or as its decimal text.
pub mod lenient_int {
    use super::*;

    /// Serializes as a JSON number.
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// Accepts a number or decimal text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<IntOrText>::deserialize(d)? {
            None => Ok(None),
            Some(IntOrText::Int(n)) => Ok(Some(n)),
            Some(IntOrText::Text(t)) if t.is_empty() => Ok(None),
            Some(IntOrText::Text(t)) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("expected an integer, found {t:?}"))),
        }
    }
}

/// A value sent either as JSON text (Alibaba's form: `Tags=[{"TagKey":...}]`) or as the JSON
/// value itself.
pub mod json_text {
    use super::*;

    /// Serializes as the JSON value itself.
    pub fn serialize<S: Serializer, T: Serialize>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// Accepts JSON text or a JSON value; empty text means the default.
    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned + Default,
    {
        let value = serde_json::Value::deserialize(d)?;
        match value {
            serde_json::Value::String(text) if text.trim().is_empty() => Ok(T::default()),
            serde_json::Value::String(text) => serde_json::from_str(&text)
                .map_err(|e| D::Error::custom(format!("malformed JSON text: {e}"))),
            serde_json::Value::Null => Ok(T::default()),
            other => serde_json::from_value(other).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Sample {
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        flag: Option<bool>,
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        page_number: Option<i64>,
        #[serde(with = "json_text")]
        encryption_context: BTreeMap<String, String>,
        key_id: String,
    }

    #[test]
    fn wire_strings_decode_like_native_values() {
        let from_text: Sample = decode_request(serde_json::json!({
            "Flag": "true", "PageNumber": "3",
            "EncryptionContext": "{\"a\":\"b\"}", "KeyId": "k"
        }))
        .unwrap();
        let native: Sample = decode_request(serde_json::json!({
            "Flag": true, "PageNumber": 3,
            "EncryptionContext": {"a": "b"}, "KeyId": "k"
        }))
        .unwrap();
        assert_eq!(from_text, native);
        assert_eq!(from_text.flag, Some(true));
        assert_eq!(from_text.page_number, Some(3));
    }

    #[test]
    fn malformed_json_text_is_invalid_parameter() {
        for bad in [
            serde_json::json!({"EncryptionContext": "{not json"}),
            serde_json::json!({"EncryptionContext": "[1,2]"}),
            serde_json::json!({"EncryptionContext": {"a": 1}}),
            serde_json::json!({"Flag": "maybe"}),
            serde_json::json!({"PageNumber": "x1"}),
        ] {
            let e = decode_request::<Sample>(bad.clone()).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter", "{bad}");
            let field = bad.as_object().unwrap().keys().next().unwrap().clone();
            assert!(e.to_string().contains(&field), "{e} names {field}");
        }
    }
}
