//! The primitives, from the RustCrypto crates: X25519 key agreement, HKDF-SHA256 key
//! derivation, ChaCha20-Poly1305 for the shares in transit, and the ChaCha20 keystream as the
//! pseudorandom generator that expands a 32-byte seed into a mask.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// An X25519 key pair.
pub(crate) struct KeyPair {
    pub(crate) secret: StaticSecret,
    pub(crate) public: [u8; 32],
}

impl KeyPair {
    pub(crate) fn generate(rng: &mut dyn RngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_secret(*bytes)
    }

    pub(crate) fn from_secret(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }
}

/// The public key of a secret key's bytes (checks a reconstructed key against the advertised
/// one).
pub(crate) fn public_of(secret: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(secret)).to_bytes()
}

/// Whether `public` is a usable X25519 key: not one of the low-order points, whose shared
/// secret is all zeros whatever the other side's key.
pub(crate) fn is_contributory(public: &[u8; 32]) -> bool {
    let probe = StaticSecret::from([0x5a; 32]);
    probe
        .diffie_hellman(&PublicKey::from(*public))
        .was_contributory()
}

/// HKDF-SHA256 of the X25519 agreement between `secret` and `public`, bound to the session and
/// to `label` (which names the purpose and the direction). `None` for a non-contributory key.
pub(crate) fn agree(
    secret: &StaticSecret,
    public: &[u8; 32],
    session: &[u8; 32],
    label: &[u8],
) -> Option<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return None;
    }
    let hk = Hkdf::<Sha256>::new(Some(session), shared.as_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(label, okm.as_mut()).ok()?;
    Some(okm)
}

/// Bytes added by the AEAD tag.
pub(crate) const TAG_LEN: usize = 16;

/// Encrypts `plaintext` under a key used for exactly one message (so a zero nonce is safe),
/// authenticating `aad`.
pub(crate) fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB")
}

/// Decrypts and authenticates; `None` if the ciphertext, key or `aad` do not match.
pub(crate) fn open(key: &[u8; 32], ciphertext: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            &[0u8; 12].into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Adds (`sign = 1`) or subtracts (`sign = −1`) the mask expanded from `seed` to `vector`,
/// modulo 2^`bits`: the ChaCha20 keystream read as little-endian u64 words.
pub(crate) fn apply_mask(vector: &mut [u64], seed: &[u8; 32], bits: u32, add: bool) {
    let mut cipher = chacha20::ChaCha20::new(seed.into(), &[0u8; 12].into());
    let modulus_mask = modulus_mask(bits);
    let mut block = [0u8; 512];
    for chunk in vector.chunks_mut(block.len() / 8) {
        let bytes = &mut block[..chunk.len() * 8];
        bytes.fill(0);
        cipher.apply_keystream(bytes);
        for (v, word) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
            let m = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            *v = if add {
                v.wrapping_add(m)
            } else {
                v.wrapping_sub(m)
            } & modulus_mask;
        }
    }
}

/// `2^bits − 1` (all ones for 64).
pub(crate) fn modulus_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// SHA-256 commitment to a self-mask seed, so that its reconstruction can be checked.
pub(crate) fn commit(seed: &[u8; 32], session: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"edge-ml secagg self-mask commitment");
    h.update(session);
    h.update(seed);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn agreement_is_symmetric_and_bound_to_label_and_session() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (a, b) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let session = [7u8; 32];
        let ab = agree(&a.secret, &b.public, &session, b"x").unwrap();
        let ba = agree(&b.secret, &a.public, &session, b"x").unwrap();
        assert_eq!(*ab, *ba);
        assert_ne!(*ab, *agree(&a.secret, &b.public, &session, b"y").unwrap());
        assert_ne!(*ab, *agree(&a.secret, &b.public, &[8u8; 32], b"x").unwrap());
        // The all-zero point is low order: refused.
        assert!(agree(&a.secret, &[0u8; 32], &session, b"x").is_none());
        assert!(!is_contributory(&[0u8; 32]));
        assert!(is_contributory(&b.public));
        assert_eq!(public_of(a.secret.to_bytes()), a.public);
    }

    #[test]
    fn seal_and_open() {
        let key = [1u8; 32];
        let c = seal(&key, b"share", b"aad");
        assert_eq!(c.len(), 5 + TAG_LEN);
        assert_eq!(open(&key, &c, b"aad").unwrap().as_slice(), b"share");
        assert!(open(&key, &c, b"other").is_none());
        assert!(open(&[2u8; 32], &c, b"aad").is_none());
        let mut flipped = c.clone();
        flipped[0] ^= 1;
        assert!(open(&key, &flipped, b"aad").is_none());
        assert!(open(&key, &c[..3], b"aad").is_none());
    }

    #[test]
    fn masks_cancel_and_look_random() {
        let seed = [9u8; 32];
        let mut v = vec![5u64; 1000];
        apply_mask(&mut v, &seed, 32, true);
        assert!(v.iter().all(|&x| x < 1 << 32));
        let distinct: std::collections::HashSet<_> = v.iter().collect();
        assert!(distinct.len() > 990);
        apply_mask(&mut v, &seed, 32, false);
        assert_eq!(v, vec![5u64; 1000]);
        let mut w = vec![0u64; 3];
        apply_mask(&mut w, &seed, 64, true);
        apply_mask(&mut w, &seed, 64, false);
        assert_eq!(w, [0, 0, 0]);
    }
}
