//! RSAES-OAEP decoding (RFC 8017, section 7.1.2) of a block the token decrypted with raw RSA
//! (`CKM_RSA_X_509`), for tokens whose `CKM_RSA_PKCS_OAEP` offers only SHA-1 (SoftHSM 2.6):
//! the private-key operation stays in the token; only the public padding is removed here, in
//! constant time (no branch or index depends on the decrypted bytes until the result is known
//! to be valid), so the caller learns nothing beyond success or failure.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

const H_LEN: usize = 32;

fn mgf1_xor(out: &mut [u8], seed: &[u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(H_LEN)) {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(counter.to_be_bytes());
        let mask = h.finalize();
        for (o, m) in chunk.iter_mut().zip(mask.iter()) {
            *o ^= m;
        }
    }
}

/// Decodes `em` (exactly the modulus length `k`) for OAEP with SHA-256, MGF1-SHA-256 and an
/// empty label; `None` when it is not a valid encoding.
pub(crate) fn decode_sha256(em: &[u8], k: usize) -> Option<Zeroizing<Vec<u8>>> {
    if k < 2 * H_LEN + 2 || em.len() != k {
        return None;
    }
    let mut em = Zeroizing::new(em.to_vec());
    let (y, rest) = em.split_first_mut()?;
    let (masked_seed, masked_db) = rest.split_at_mut(H_LEN);
    mgf1_xor(masked_seed, masked_db);
    mgf1_xor(masked_db, masked_seed);
    let db: &[u8] = masked_db;
    let l_hash = Sha256::digest(b"");
    let mut good = y.ct_eq(&0) & db.get(..H_LEN)?.ct_eq(&l_hash[..]);
    // Find the 0x01 after the zero padding without branching on the bytes.
    let mut looking = subtle::Choice::from(1u8);
    let mut index = 0u32;
    for (i, &b) in db.iter().enumerate().skip(H_LEN) {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        let found_here = looking & is_one;
        index = u32::conditional_select(&index, &(i as u32), found_here);
        // A byte other than 0 before the 0x01 makes the encoding invalid.
        good &= !(looking & !is_one & !is_zero);
        looking &= !is_one;
    }
    good &= !looking;
    if !bool::from(good) {
        return None;
    }
    Some(Zeroizing::new(db.get(index as usize + 1..)?.to_vec()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Builds EM = 0x00 || maskedSeed || maskedDB for `message` (RFC 8017, 7.1.1).
    fn encode(message: &[u8], k: usize, seed: [u8; H_LEN]) -> Vec<u8> {
        let mut db = Sha256::digest(b"").to_vec();
        db.resize(k - message.len() - H_LEN - 2, 0);
        db.push(1);
        db.extend_from_slice(message);
        let mut seed = seed.to_vec();
        mgf1_xor(&mut db, &seed);
        mgf1_xor(&mut seed, &db);
        let mut em = vec![0u8];
        em.extend(seed);
        em.extend(db);
        em
    }

    #[test]
    fn decodes_what_rfc_8017_encodes_and_refuses_any_changed_byte() {
        let k = 256;
        for message in [&b""[..], b"x", &[7u8; 190]] {
            let em = encode(message, k, [0x5a; H_LEN]);
            assert_eq!(&*decode_sha256(&em, k).unwrap(), message);
            for i in [0, 1, H_LEN + 1, k - 1] {
                let mut bad = em.clone();
                bad[i] ^= 0x80;
                if let Some(m) = decode_sha256(&bad, k) {
                    // Only the message bytes may change without breaking the encoding.
                    assert_eq!(i, k - 1);
                    assert_ne!(&*m, message);
                }
            }
        }
        assert!(decode_sha256(&[0u8; 256], k).is_none());
        assert!(decode_sha256(&[0u8; 255], k).is_none(), "wrong length");
    }
}
