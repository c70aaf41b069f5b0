//! A compact binary encoding of [`Parameters`] for the FL protocol.
//!
//! ```text
//! "FLP1"                      magic and version
//! u32 tensor count
//! per tensor:
//!   u16 name length, name (UTF-8)
//!   u8 rank, rank × u32 dims
//!   f32 × product(dims)       little-endian
//! ```
//!
//! Decoding checks every length against the buffer and the configured bounds, the names for
//! UTF-8 and uniqueness, and every value for NaN and infinity; trailing bytes are an error.

use crate::params::{shape_len, ParamError, ParamTensor, Parameters};

const MAGIC: &[u8; 4] = b"FLP1";
const MAX_RANK: usize = 8;

/// Why bytes are not valid encoded parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends inside a field.
    #[error("truncated at byte {at}: {what} needs {need} more bytes")]
    Truncated {
        /// Offset.
        at: usize,
        /// The field.
        what: &'static str,
        /// Bytes missing.
        need: usize,
    },
    /// Not our format.
    #[error("not an encoded parameter set (bad magic)")]
    BadMagic,
    /// A field is out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// Bytes follow the last tensor.
    #[error("{0} trailing bytes after the last tensor")]
    Trailing(usize),
    /// The decoded tensors are not valid parameters.
    #[error(transparent)]
    Params(#[from] ParamError),
}

/// Encodes parameters; refuses what the format cannot hold (more than `u32::MAX` tensors, a
/// name over 65535 bytes, a rank over 8, a dimension over `u32::MAX`) rather than writing
/// bytes that decode to something else.
pub fn encode(params: &Parameters) -> Result<Vec<u8>, WireError> {
    let too_big = |what: String| WireError::Invalid(what);
    let count = u32::try_from(params.tensors().len()).map_err(|_| {
        too_big(format!(
            "{} tensors is more than the format holds",
            params.tensors().len()
        ))
    })?;
    let mut out = Vec::with_capacity(8usize.saturating_add(params.len().saturating_mul(4)));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    for t in params.tensors() {
        let Ok(name_len) = u16::try_from(t.name.len()) else {
            return Err(too_big(format!(
                "tensor name of {} bytes is over 65535",
                t.name.len()
            )));
        };
        if t.shape.len() > MAX_RANK {
            return Err(too_big(format!(
                "tensor `{}` has rank {} > {MAX_RANK}",
                t.name,
                t.shape.len()
            )));
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(t.name.as_bytes());
        out.push(t.shape.len() as u8);
        for &d in &t.shape {
            let Ok(d) = u32::try_from(d) else {
                return Err(too_big(format!(
                    "tensor `{}` has a dimension {d} over u32::MAX",
                    t.name
                )));
            };
            out.extend_from_slice(&d.to_le_bytes());
        }
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let rest = self.buf.len() - self.at;
        if rest < n {
            return Err(WireError::Truncated {
                at: self.at,
                what,
                need: n - rest,
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
}

/// Decodes parameters, refusing more than `max_values` values in all.
pub fn decode(bytes: &[u8], max_values: usize) -> Result<Parameters, WireError> {
    let mut r = Reader { buf: bytes, at: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(WireError::BadMagic);
    }
    let count = r.u32("tensor count")? as usize;
    // Each tensor takes at least 3 bytes, so a count beyond that is a lie; check before allocating.
    if count > bytes.len() / 3 {
        return Err(WireError::Invalid(format!(
            "{count} tensors cannot fit in {} bytes",
            bytes.len()
        )));
    }
    let mut tensors = Vec::with_capacity(count.min(bytes.len().saturating_sub(r.at) / 3));
    let mut total = 0usize;
    for _ in 0..count {
        let name_len =
            u16::from_le_bytes(r.take(2, "name length")?.try_into().expect("2 bytes")) as usize;
        let name = std::str::from_utf8(r.take(name_len, "name")?)
            .map_err(|_| WireError::Invalid("a tensor name is not UTF-8".to_owned()))?
            .to_owned();
        let rank = r.take(1, "rank")?[0] as usize;
        if rank > MAX_RANK {
            return Err(WireError::Invalid(format!(
                "tensor `{name}` has rank {rank} > {MAX_RANK}"
            )));
        }
        let shape = (0..rank)
            .map(|_| r.u32("dimension").map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let n = shape_len(&shape)
            .filter(|n| total.checked_add(*n).is_some_and(|t| t <= max_values))
            .ok_or_else(|| {
                WireError::Invalid(format!(
                    "tensor `{name}` {shape:?} exceeds {max_values} values"
                ))
            })?;
        total += n;
        // `n` is at most `max_values`, which a caller may set as high as `usize::MAX`.
        let data_len = n.checked_mul(4).ok_or_else(|| {
            WireError::Invalid(format!("tensor `{name}` {shape:?} has too many values"))
        })?;
        let raw = r.take(data_len, "tensor data")?;
        let data = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        tensors.push(ParamTensor { name, shape, data });
    }
    if r.at != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - r.at));
    }
    Ok(Parameters::new(tensors)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Parameters {
        Parameters::new(vec![
            ParamTensor {
                name: "fc.weight".into(),
                shape: vec![2, 3],
                data: vec![1.0, -2.0, 3.5, 0.0, 1e-8, -1e8],
            },
            ParamTensor {
                name: "fc.bias".into(),
                shape: vec![],
                data: vec![0.25],
            },
        ])
        .unwrap()
    }

    #[test]
    fn round_trips() {
        let p = sample();
        assert_eq!(decode(&encode(&p).unwrap(), 1 << 20).unwrap(), p);
    }

    #[test]
    fn rejects_bad_input() {
        let good = encode(&sample()).unwrap();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, 1 << 20), Err(WireError::Trailing(1)));
        assert!(matches!(decode(&good, 3), Err(WireError::Invalid(_))));
        let mut nan = good.clone();
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            decode(&nan, 1 << 20),
            Err(WireError::Params(ParamError::NonFinite { .. }))
        ));
        let mut dup = encode(&sample()).unwrap();
        // Rename the second tensor to the first's name length-preservingly is hard; build one.
        dup.clear();
        let t = ParamTensor {
            name: "a".into(),
            shape: vec![1],
            data: vec![1.0],
        };
        let one = encode(&Parameters::new(vec![t]).unwrap()).unwrap();
        dup.extend_from_slice(b"FLP1");
        dup.extend_from_slice(&2u32.to_le_bytes());
        dup.extend_from_slice(&one[8..]);
        dup.extend_from_slice(&one[8..]);
        assert!(matches!(
            decode(&dup, 1 << 20),
            Err(WireError::Params(ParamError::DuplicateName(_)))
        ));
        let mut huge = b"FLP1".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge, 1 << 20), Err(WireError::Invalid(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes, 1 << 16);
        }

        #[test]
        fn arbitrary_parameters_round_trip(values in proptest::collection::vec(-1e6f32..1e6, 1..64)) {
            let p = Parameters::new(vec![ParamTensor { name: "x".into(), shape: vec![values.len()], data: values }]).unwrap();
            prop_assert_eq!(decode(&encode(&p).unwrap(), 1 << 20).unwrap(), p);
        }
    }
}
