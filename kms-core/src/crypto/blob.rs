//! The self-describing ciphertext blob of symmetric Encrypt and GenerateDataKey.
//!
//! ```text
//! magic "KB" | format version u8 | key id len u8 | key id | version id len u8 | version id
//! | algorithm u8 | iv (12 bytes) | ciphertext | tag (16 bytes)
//! ```
//!
//! Everything up to and including the iv is the header. The AEAD's associated data is the
//! header followed by the canonical encoding of the EncryptionContext ([`encode_context`]), so
//! neither the header nor the context can be changed without Decrypt failing.

use std::collections::BTreeMap;

use crate::crypto::{AeadAlgorithm, NONCE_LEN, TAG_LEN};
use crate::error::KmsError;

/// The two magic bytes that open every blob.
pub const MAGIC: [u8; 2] = *b"KB";
/// The current (and only) format version.
pub const FORMAT_V1: u8 = 1;

/// A decoded blob, borrowing from the input bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob<'a> {
    /// The key that encrypted it.
    pub key_id: &'a str,
    /// The key version that encrypted it.
    pub version_id: &'a str,
    /// The AEAD algorithm.
    pub algorithm: AeadAlgorithm,
    /// The nonce.
    pub iv: [u8; NONCE_LEN],
    /// The header bytes (authenticated as associated data).
    pub header: &'a [u8],
    /// Ciphertext followed by the tag.
    pub ciphertext_and_tag: &'a [u8],
}

fn invalid(reason: &'static str) -> KmsError {
    KmsError::InvalidCiphertext { reason }
}

/// Writes the header for a new blob into a fresh buffer with room for `body_len` more bytes.
///
/// Errors: `InternalFailure` if an id is longer than 255 bytes (ids are UUIDs, so never).
pub fn encode_header(
    key_id: &str,
    version_id: &str,
    algorithm: AeadAlgorithm,
    iv: &[u8; NONCE_LEN],
    body_len: usize,
) -> Result<Vec<u8>, KmsError> {
    let kl = u8::try_from(key_id.len()).map_err(|_| KmsError::internal("key id too long"))?;
    let vl =
        u8::try_from(version_id.len()).map_err(|_| KmsError::internal("version id too long"))?;
    let mut out = Vec::with_capacity(
        2 + 1 + 1 + key_id.len() + 1 + version_id.len() + 1 + NONCE_LEN + body_len + TAG_LEN,
    );
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_V1);
    out.push(kl);
    out.extend_from_slice(key_id.as_bytes());
    out.push(vl);
    out.extend_from_slice(version_id.as_bytes());
    out.push(algorithm.code());
    out.extend_from_slice(iv);
    Ok(out)
}

/// A cursor over untrusted bytes that never indexes out of bounds.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KmsError> {
        if self.rest.len() < n {
            return Err(invalid("the blob is truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, KmsError> {
        self.take(1)?
            .first()
            .copied()
            .ok_or(invalid("the blob is truncated"))
    }

    fn id(&mut self) -> Result<&'a str, KmsError> {
        let len = usize::from(self.byte()?);
        if len == 0 {
            return Err(invalid("the blob names an empty id"));
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| invalid("the blob names a malformed id"))
    }
}

/// Parses a blob without decrypting it.
///
/// Errors: `InvalidCiphertext` for anything that is not a well-formed blob.
pub fn decode(bytes: &[u8]) -> Result<Blob<'_>, KmsError> {
    let mut r = Reader { rest: bytes };
    if r.take(2)? != MAGIC {
        return Err(invalid("the data is not a ciphertext blob of this engine"));
    }
    if r.byte()? != FORMAT_V1 {
        return Err(invalid("the blob has an unknown format version"));
    }
    let key_id = r.id()?;
    let version_id = r.id()?;
    let algorithm = AeadAlgorithm::from_code(r.byte()?)
        .ok_or(invalid("the blob names an unknown algorithm"))?;
    let mut iv = [0u8; NONCE_LEN];
    iv.copy_from_slice(r.take(NONCE_LEN)?);
    let header_len = bytes.len() - r.rest.len();
    if r.rest.len() < TAG_LEN {
        return Err(invalid("the blob is truncated"));
    }
    let (header, ciphertext_and_tag) = bytes.split_at(header_len);
    Ok(Blob {
        key_id,
        version_id,
        algorithm,
        iv,
        header,
        ciphertext_and_tag,
    })
}

/// The length of [`encode_context`]'s encoding of `context`.
fn context_len(context: &BTreeMap<String, String>) -> usize {
    4 + context
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>()
}

/// Appends the canonical encoding of an EncryptionContext to `out`.
///
/// Pairs in key order, each key and value prefixed by its length as u32 big-endian, the whole
/// prefixed by the pair count, so that no two different contexts encode alike.
pub fn encode_context(context: &BTreeMap<String, String>, out: &mut Vec<u8>) {
    out.reserve(context_len(context));
    let count = u32::try_from(context.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (k, v) in context {
        for part in [k, v] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
}

/// The associated data of an instance API blob: the header, a count no context can have
/// (`u32::MAX`, so it never equals a context's encoding), then the caller's AAD with its
/// length.
pub fn associated_data_bytes(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 8 + aad.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&u32::MAX.to_be_bytes());
    out.extend_from_slice(&u32::try_from(aad.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(aad);
    out
}

/// The associated data of a blob: its header then its encoded context.
pub fn associated_data(header: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + context_len(context));
    aad.extend_from_slice(header);
    encode_context(context, &mut aad);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    const VID: &str = "00000000-0000-4000-8000-000000000001";

    fn sample(body: &[u8]) -> Vec<u8> {
        let mut b =
            encode_header(KID, VID, AeadAlgorithm::Aes256Gcm, &[9; 12], body.len()).unwrap();
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn blob_round_trips_its_header_fields() {
        let bytes = sample(&[0xAA; 20]);
        let blob = decode(&bytes).unwrap();
        assert_eq!(blob.key_id, KID);
        assert_eq!(blob.version_id, VID);
        assert_eq!(blob.algorithm, AeadAlgorithm::Aes256Gcm);
        assert_eq!(blob.iv, [9; 12]);
        assert_eq!(blob.ciphertext_and_tag, &[0xAA; 20]);
        assert_eq!(blob.header.len() + 20, bytes.len());
    }

    #[test]
    fn every_truncation_of_a_blob_is_invalid_ciphertext() {
        let bytes = sample(&[0xAA; 16]);
        for n in 0..bytes.len() {
            let e = decode(&bytes[..n]).unwrap_err();
            assert_eq!(e.code(), "InvalidCiphertext", "prefix of {n} bytes");
        }
    }

    #[test]
    fn blob_with_wrong_magic_version_or_algorithm_is_rejected() {
        let good = sample(&[0; 16]);
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut bad_version = good.clone();
        bad_version[2] = 2;
        let mut bad_alg = good.clone();
        bad_alg[3 + 1 + 36 + 1 + 36] = 99;
        let mut zero_len_id = good.clone();
        zero_len_id[3] = 0;
        for b in [bad_magic, bad_version, bad_alg, zero_len_id] {
            assert_eq!(decode(&b).unwrap_err().code(), "InvalidCiphertext");
        }
    }

    #[test]
    fn context_encoding_separates_keys_from_values() {
        // A plain concatenation would make these two equal.
        let a: BTreeMap<_, _> = [("ab".to_string(), "c".to_string())].into();
        let b: BTreeMap<_, _> = [("a".to_string(), "bc".to_string())].into();
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_context(&a, &mut ea);
        encode_context(&b, &mut eb);
        assert_ne!(ea, eb);
        let mut empty = Vec::new();
        encode_context(&BTreeMap::new(), &mut empty);
        assert_eq!(empty, vec![0, 0, 0, 0]);
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn distinct_contexts_encode_distinctly(
            a in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
            b in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
        ) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode_context(&a, &mut ea);
            encode_context(&b, &mut eb);
            prop_assert_eq!(a == b, ea == eb);
        }

        #[test]
        fn header_round_trips(body in proptest::collection::vec(any::<u8>(), 16..64), iv in any::<[u8; 12]>()) {
            let mut bytes = encode_header(KID, VID, AeadAlgorithm::Aes128Gcm, &iv, body.len()).unwrap();
            bytes.extend_from_slice(&body);
            let blob = decode(&bytes).unwrap();
            prop_assert_eq!(blob.iv, iv);
            prop_assert_eq!(blob.ciphertext_and_tag, &body[..]);
            prop_assert_eq!(blob.algorithm, AeadAlgorithm::Aes128Gcm);
        }
    }
}
