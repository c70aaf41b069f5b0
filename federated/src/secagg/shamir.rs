//! Shamir secret sharing of 32-byte secrets over the prime field GF(2⁶¹ − 1).
//!
//! A secret is cut into five chunks of at most 56 bits (each below the prime); every chunk is
//! the constant term of its own random polynomial of degree `threshold − 1`. A share is the
//! five polynomials evaluated at the holder's point `x ≥ 1`. Any `threshold` shares give the
//! secret back by Lagrange interpolation at 0; fewer reveal nothing about it.

use rand::RngCore;

/// The field's prime, 2⁶¹ − 1 (a Mersenne prime).
pub const PRIME: u64 = (1 << 61) - 1;
/// Bytes of secret per field element.
const CHUNK: usize = 7;
/// Field elements per share.
pub const SHARE_LEN: usize = 32usize.div_ceil(CHUNK);

/// One holder's share: its evaluation point and one value per chunk of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The evaluation point, 1 ≤ x < p.
    pub x: u64,
    /// The polynomials' values at `x`, each below [`PRIME`].
    pub y: [u64; SHARE_LEN],
}

fn reduce(v: u128) -> u64 {
    // v mod (2⁶¹ − 1) by folding the high bits onto the low ones.
    let p = PRIME as u128;
    let folded = (v & p) + (v >> 61);
    let folded = (folded & p) + (folded >> 61);
    let r = folded as u64;
    if r >= PRIME {
        r - PRIME
    } else {
        r
    }
}

fn add(a: u64, b: u64) -> u64 {
    reduce(a as u128 + b as u128)
}

fn sub(a: u64, b: u64) -> u64 {
    reduce(a as u128 + (PRIME - b) as u128)
}

fn mul(a: u64, b: u64) -> u64 {
    reduce(a as u128 * b as u128)
}

fn pow(mut base: u64, mut exp: u64) -> u64 {
    let mut acc = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

fn inverse(a: u64) -> u64 {
    // Fermat: a^(p−2); callers never pass 0.
    pow(a, PRIME - 2)
}

fn random_element(rng: &mut dyn RngCore) -> u64 {
    loop {
        let v = rng.next_u64() >> 3;
        if v < PRIME {
            return v;
        }
    }
}

/// Splits `secret` into one share per point in `points` (distinct, 1 ≤ x < p), any
/// `threshold` of which reconstruct it.
///
/// # Panics
/// If `threshold` is 0 or larger than the number of points, or a point is 0 or repeated:
/// callers (the SecAgg client) check these first.
pub fn split(
    secret: &[u8; 32],
    threshold: usize,
    points: &[u64],
    rng: &mut dyn RngCore,
) -> Vec<Share> {
    assert!(threshold >= 1 && threshold <= points.len(), "bad threshold");
    let mut shares: Vec<Share> = points
        .iter()
        .map(|&x| {
            assert!(x != 0 && x < PRIME, "bad point");
            Share {
                x,
                y: [0; SHARE_LEN],
            }
        })
        .collect();
    for (c, chunk) in secret.chunks(CHUNK).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let mut coefficients = vec![u64::from_le_bytes(bytes)];
        coefficients.extend((1..threshold).map(|_| random_element(rng)));
        for share in &mut shares {
            // Horner's rule.
            share.y[c] = coefficients
                .iter()
                .rev()
                .fold(0, |acc, &k| add(mul(acc, share.x), k));
        }
    }
    shares
}

/// Reconstructs a secret from shares with distinct points; `None` if they are fewer than 1, a
/// point repeats or is 0, or the result is not a valid 32-byte secret (which happens, with
/// overwhelming probability, when a share was altered). With fewer shares than the threshold
/// the result is a wrong secret, so callers check it (against a public key or a commitment).
pub fn reconstruct(shares: &[Share]) -> Option<[u8; 32]> {
    if shares.is_empty() {
        return None;
    }
    for (i, a) in shares.iter().enumerate() {
        if a.x == 0 || a.x >= PRIME || shares[..i].iter().any(|b| b.x == a.x) {
            return None;
        }
        if a.y.iter().any(|&v| v >= PRIME) {
            return None;
        }
    }
    // Lagrange basis at 0: Π_{j≠i} x_j / (x_j − x_i).
    let weights: Vec<u64> = shares
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (mut num, mut den) = (1, 1);
            for (j, b) in shares.iter().enumerate() {
                if i != j {
                    num = mul(num, b.x);
                    den = mul(den, sub(b.x, a.x));
                }
            }
            mul(num, inverse(den))
        })
        .collect();
    let mut secret = [0u8; 32];
    for (c, out) in secret.chunks_mut(CHUNK).enumerate() {
        let value = shares
            .iter()
            .zip(&weights)
            .fold(0, |acc, (s, &w)| add(acc, mul(s.y[c], w)));
        let bytes = value.to_le_bytes();
        if bytes[out.len()..].iter().any(|&b| b != 0) {
            return None;
        }
        out.copy_from_slice(&bytes[..out.len()]);
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn field_arithmetic() {
        assert_eq!(reduce(PRIME as u128), 0);
        assert_eq!(add(PRIME - 1, 2), 1);
        assert_eq!(sub(1, 2), PRIME - 1);
        assert_eq!(mul(inverse(12345), 12345), 1);
        assert_eq!(mul(PRIME - 1, PRIME - 1), 1);
    }

    #[test]
    fn any_threshold_subset_reconstructs() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let points: Vec<u64> = (1..=7).collect();
        let shares = split(&secret, 4, &points, &mut rng);
        for start in 0..4 {
            assert_eq!(reconstruct(&shares[start..start + 4]), Some(secret));
        }
        assert_eq!(
            reconstruct(&[shares[6], shares[0], shares[3], shares[5]]),
            Some(secret)
        );
        assert_eq!(reconstruct(&shares), Some(secret));
        // Fewer than the threshold: some other value (or nothing), not the secret.
        assert_ne!(reconstruct(&shares[..3]), Some(secret));
        // A repeated point is refused.
        assert_eq!(
            reconstruct(&[shares[0], shares[0], shares[1], shares[2]]),
            None
        );
        // An altered share yields something else.
        let mut bad = shares[1];
        bad.y[2] = add(bad.y[2], 1);
        assert_ne!(
            reconstruct(&[shares[0], bad, shares[2], shares[3]]),
            Some(secret)
        );
    }

    #[test]
    fn threshold_one_is_the_secret_everywhere() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let secret = [0xAB; 32];
        let shares = split(&secret, 1, &[5, 9], &mut rng);
        assert_eq!(reconstruct(&shares[1..]), Some(secret));
    }
}
