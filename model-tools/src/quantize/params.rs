//! Scale and zero point of linear 8-bit quantization, computed exactly as onnxruntime 1.32's
//! `quant_utils.compute_scale_zp` and `get_qmin_qmax_for_qType` compute them.
//!
//! Linear quantization maps a real value `r` to an integer `q` by `r = scale · (q − zero_point)`.
//! [`compute_scale_zp`] chooses `scale` and `zero_point` so that every value of a real range
//! `[rmin, rmax]` has a representation in an integer range `[qmin, qmax]`:
//!
//! 1. the range is widened to contain 0 (so that 0 is exact, which padding and ReLU need);
//! 2. optionally it is widened to a minimum width (`min_real_range`);
//! 3. when symmetric, it becomes `[−m, m]` with `m = max(|rmin|, |rmax|)`;
//! 4. `scale = (rmax − rmin) / (qmax − qmin)`, in f64, then stored in the float type of the
//!    data (f32, or f16 with [`compute_scale_zp_f16`]);
//! 5. `zero_point = round(qmin − rmin / scale)` (rounding half to even, with the f64 scale), or
//!    `round((qmin + qmax) / 2)` when symmetric, so that every channel of a symmetric tensor
//!    shares one zero point (0 for s8, 128 for u8);
//! 6. a scale too small for the float type (below f32's smallest normal, or f16's smallest
//!    subnormal) gives `scale = 1, zero_point = 0` instead: an all-zero range.
//!
//! [`QuantType::range`] gives `[qmin, qmax]` for a type: the full range, the symmetric one
//! for s8 (`[−127, 127]`, so that `−m` and `m` both fit), or with `reduce_range` the 7-bit
//! range (`[0, 127]` for u8, `[−64, 64]` for s8), which avoids the saturation of u8×s8
//! products in 16 bits on CPUs without VNNI.
//!
//! These functions are the shared arithmetic of the dynamic and the static quantizers;
//! `model-tools/tests/reference/quantize_params.json` holds values computed by onnxruntime
//! (written by `quantize_params.py` beside it) that the tests compare them with bit for bit.

use std::fmt;
use std::str::FromStr;

use inference::half::f16;
use inference::ElementType;
use serde::Serialize;

/// An 8-bit integer type to quantize to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantType {
    /// `uint8`, range `[0, 255]`.
    U8,
    /// `int8`, range `[−128, 127]`.
    S8,
}

impl QuantType {
    /// Both types, as the CLI lists them.
    pub const ALL: [QuantType; 2] = [QuantType::S8, QuantType::U8];

    /// The short name the CLI uses: `u8` or `s8`.
    pub fn name(self) -> &'static str {
        match self {
            QuantType::U8 => "u8",
            QuantType::S8 => "s8",
        }
    }

    /// The tensor element type.
    pub fn element_type(self) -> ElementType {
        match self {
            QuantType::U8 => ElementType::U8,
            QuantType::S8 => ElementType::I8,
        }
    }

    /// The smallest and largest value of the type.
    pub fn limits(self) -> (i32, i32) {
        match self {
            QuantType::U8 => (0, 255),
            QuantType::S8 => (-128, 127),
        }
    }

    /// `[qmin, qmax]` as onnxruntime's `get_qmin_qmax_for_qType` chooses it: the 7-bit range
    /// when `reduce_range` (`[0, 127]` for u8, `[−64, 64]` for s8), else `[−127, 127]` for a
    /// symmetric s8, else the type's full range. (A symmetric u8 keeps `[0, 255]`.)
    pub fn range(self, reduce_range: bool, symmetric: bool) -> (i32, i32) {
        match (self, reduce_range, symmetric) {
            (QuantType::U8, true, _) => (0, 127),
            (QuantType::S8, true, _) => (-64, 64),
            (QuantType::S8, false, true) => (-127, 127),
            (ty, false, _) => ty.limits(),
        }
    }

    /// Whether weights of this type are quantized symmetrically by default, as onnxruntime
    /// does: signed types are, unsigned ones are not.
    pub fn symmetric_by_default(self) -> bool {
        self == QuantType::S8
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`QuantType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantized type `{0}`: use `s8` (int8) or `u8` (uint8)")]
pub struct UnknownQuantType(pub String);

impl FromStr for QuantType {
    type Err = UnknownQuantType;

    /// `u8`, `uint8`, `quint8`; `s8`, `i8`, `int8`, `qint8` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "u8" | "uint8" | "quint8" => Ok(QuantType::U8),
            "s8" | "i8" | "int8" | "qint8" => Ok(QuantType::S8),
            _ => Err(UnknownQuantType(s.to_owned())),
        }
    }
}

/// A scale and a zero point: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QuantParams {
    /// The step between consecutive integers, in real units.
    pub scale: f32,
    /// The integer that represents real 0, within `[qmin, qmax]`.
    pub zero_point: i32,
}

/// The same, with the scale stored as float16 (for float16 tensors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParamsF16 {
    /// The step between consecutive integers, in real units.
    pub scale: f16,
    /// The integer that represents real 0, within `[qmin, qmax]`.
    pub zero_point: i32,
}

/// An integer range that cannot hold 0, which [`compute_scale_zp`] refuses as onnxruntime does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("qmin and qmax must satisfy qmin <= 0 <= qmax, but qmin is {qmin} and qmax is {qmax}")]
pub struct BadIntegerRange {
    /// The lower end given.
    pub qmin: i32,
    /// The upper end given.
    pub qmax: i32,
}

/// Options of [`params_for_range`]: the type and how its range is used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamsConfig {
    /// The integer type.
    pub qtype: QuantType,
    /// Make the real range symmetric around 0 (and use `[−127, 127]` for s8).
    pub symmetric: bool,
    /// Use 7 bits (see [`QuantType::range`]).
    pub reduce_range: bool,
    /// Widen the real range to at least this width (onnxruntime's `MinimumRealRange`).
    pub min_real_range: Option<f32>,
}

impl ParamsConfig {
    /// The type with its default symmetry ([`QuantType::symmetric_by_default`]), the full
    /// range, and no minimum width.
    pub fn new(qtype: QuantType) -> Self {
        Self {
            qtype,
            symmetric: qtype.symmetric_by_default(),
            reduce_range: false,
            min_real_range: None,
        }
    }

    /// `[qmin, qmax]` for these options.
    pub fn range(&self) -> (i32, i32) {
        self.qtype.range(self.reduce_range, self.symmetric)
    }
}

/// The parameters of a real range `[rmin, rmax]` under `config`: [`compute_scale_zp`] on
/// [`ParamsConfig::range`], which always holds 0.
pub fn params_for_range(rmin: f32, rmax: f32, config: &ParamsConfig) -> QuantParams {
    let (qmin, qmax) = config.range();
    compute_scale_zp(
        rmin,
        rmax,
        qmin,
        qmax,
        config.symmetric,
        config.min_real_range,
    )
    .expect("QuantType ranges hold 0")
}

/// onnxruntime's `compute_scale_zp` for float32 data: the scale and zero point mapping
/// `[rmin, rmax]` (widened to hold 0, to `min_real_range`, and made symmetric when asked) onto
/// `[qmin, qmax]`. See the module documentation for the steps.
///
/// Non-finite bounds give a non-finite scale, as in onnxruntime; callers check their data.
pub fn compute_scale_zp(
    rmin: f32,
    rmax: f32,
    qmin: i32,
    qmax: i32,
    symmetric: bool,
    min_real_range: Option<f32>,
) -> Result<QuantParams, BadIntegerRange> {
    check_range(qmin, qmax)?;
    let (rmin, rmax) = widen(rmin, rmax, symmetric, min_real_range, 0.0, |a, b| a + b);
    let scale = f64::from(rmax) - f64::from(rmin);
    let scale = scale / (f64::from(qmax) - f64::from(qmin));
    // f32's `finfo.tiny`: the smallest normal number.
    if scale < f64::from(f32::MIN_POSITIVE) {
        return Ok(QuantParams {
            scale: 1.0,
            zero_point: 0,
        });
    }
    Ok(QuantParams {
        scale: scale as f32,
        zero_point: zero_point(f64::from(rmin), scale, qmin, qmax, symmetric),
    })
}

/// onnxruntime's `compute_scale_zp` for float16 data: the range is widened in float16, the
/// scale computed in f64 and stored as float16; a stored scale below float16's smallest
/// subnormal (`2⁻²⁴`) gives `scale = 1, zero_point = 0`. Subnormal float16 scales are kept:
/// integer quantization divides the float32 data by them.
pub fn compute_scale_zp_f16(
    rmin: f16,
    rmax: f16,
    qmin: i32,
    qmax: i32,
    symmetric: bool,
    min_real_range: Option<f16>,
) -> Result<QuantParamsF16, BadIntegerRange> {
    check_range(qmin, qmax)?;
    let (rmin, rmax) = widen(rmin, rmax, symmetric, min_real_range, f16::ZERO, |a, b| {
        f16::from_f32(a.to_f32() + b.to_f32())
    });
    let scale = f64::from(rmax) - f64::from(rmin);
    let scale = scale / (f64::from(qmax) - f64::from(qmin));
    let stored = f16::from_f64(scale);
    if stored < f16::from_bits(1) {
        return Ok(QuantParamsF16 {
            scale: f16::ONE,
            zero_point: 0,
        });
    }
    Ok(QuantParamsF16 {
        scale: stored,
        zero_point: zero_point(f64::from(rmin), scale, qmin, qmax, symmetric),
    })
}

fn check_range(qmin: i32, qmax: i32) -> Result<(), BadIntegerRange> {
    if qmin > 0 || qmax < 0 {
        return Err(BadIntegerRange { qmin, qmax });
    }
    Ok(())
}

/// Steps 1–3 in the float type `T` of the data: hold 0, reach the minimum width, symmetrize.
/// Comparisons follow numpy's `minimum`/`maximum` (a NaN bound stays NaN).
fn widen<T: Copy + PartialOrd + std::ops::Neg<Output = T>>(
    rmin: T,
    rmax: T,
    symmetric: bool,
    min_real_range: Option<T>,
    zero: T,
    add: impl Fn(T, T) -> T,
) -> (T, T) {
    let is_nan = |a: T| a.partial_cmp(&a).is_none();
    let nan_aware_min = |a: T, b: T| if is_nan(a) || a < b { a } else { b };
    let nan_aware_max = |a: T, b: T| if is_nan(a) || a > b { a } else { b };
    let abs = |a: T| if a < zero { -a } else { a };
    let rmin = nan_aware_min(rmin, zero);
    let mut rmax = nan_aware_max(rmax, zero);
    if let Some(width) = min_real_range {
        // Python's builtin `max(rmax, rmin + width)`: the second when strictly greater.
        let widened = add(rmin, width);
        if widened > rmax {
            rmax = widened;
        }
    }
    if symmetric {
        let absmax = nan_aware_max(abs(rmin), abs(rmax));
        (-absmax, absmax)
    } else {
        (rmin, rmax)
    }
}

/// Step 5: the zero point, rounded half to even (numpy's `round`) and kept in the range.
fn zero_point(rmin: f64, scale: f64, qmin: i32, qmax: i32, symmetric: bool) -> i32 {
    let z = if symmetric {
        (f64::from(qmin) + f64::from(qmax)) / 2.0
    } else {
        f64::from(qmin) - rmin / scale
    };
    let z = z.round_ties_even();
    if z.is_nan() {
        return 0;
    }
    z.clamp(f64::from(qmin), f64::from(qmax)) as i32
}

/// Quantizes one value as onnxruntime's `quantize_nparray` does: `round(x / scale) +
/// zero_point` in float32 (rounding half to even), saturated to the type's full limits.
pub fn quantize_value(x: f32, params: QuantParams, qtype: QuantType) -> i32 {
    let (lo, hi) = qtype.limits();
    let q = (x / params.scale).round_ties_even() + params.zero_point as f32;
    if q.is_nan() {
        return params.zero_point;
    }
    q.clamp(lo as f32, hi as f32) as i32
}

/// The real value an integer stands for: `scale · (q − zero_point)`.
pub fn dequantize_value(q: i32, params: QuantParams) -> f32 {
    params.scale * (q - params.zero_point) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_onnxruntime() {
        assert_eq!(QuantType::U8.range(false, false), (0, 255));
        assert_eq!(QuantType::U8.range(false, true), (0, 255));
        assert_eq!(QuantType::S8.range(false, false), (-128, 127));
        assert_eq!(QuantType::S8.range(false, true), (-127, 127));
        assert_eq!(QuantType::U8.range(true, false), (0, 127));
        assert_eq!(QuantType::S8.range(true, true), (-64, 64));
    }

    #[test]
    fn names_parse_in_any_spelling() {
        for (s, t) in [
            ("s8", QuantType::S8),
            ("INT8", QuantType::S8),
            ("u8", QuantType::U8),
        ] {
            assert_eq!(s.parse::<QuantType>().unwrap(), t);
        }
        let err = "int4".parse::<QuantType>().unwrap_err().to_string();
        assert!(err.contains("`int4`") && err.contains("s8"), "{err}");
    }

    #[test]
    fn asymmetric_u8_maps_the_range_ends_to_the_type_ends() {
        let p = compute_scale_zp(-1.0, 3.0, 0, 255, false, None).unwrap();
        assert_eq!(p.scale, (4.0f64 / 255.0) as f32);
        assert_eq!(p.zero_point, 64); // 255 / 4 = 63.75
        assert_eq!(quantize_value(-1.0, p, QuantType::U8), 0);
        assert_eq!(quantize_value(3.0, p, QuantType::U8), 255);
        assert_eq!(quantize_value(0.0, p, QuantType::U8), 64);
    }

    #[test]
    fn symmetric_zero_points_do_not_depend_on_the_range() {
        for (lo, hi) in [(-1.0, 3.0), (0.5, 2.0), (-7.0, -1.0)] {
            let s8 = compute_scale_zp(lo, hi, -127, 127, true, None).unwrap();
            assert_eq!(s8.zero_point, 0);
            let u8 = compute_scale_zp(lo, hi, 0, 255, true, None).unwrap();
            assert_eq!(u8.zero_point, 128); // round(127.5) to even
        }
    }

    #[test]
    fn an_empty_range_gives_unit_scale() {
        let p = compute_scale_zp(0.0, 0.0, -127, 127, true, None).unwrap();
        assert_eq!(
            p,
            QuantParams {
                scale: 1.0,
                zero_point: 0
            }
        );
        let wide = compute_scale_zp(0.0, 0.0, 0, 255, false, Some(0.0001)).unwrap();
        assert!(wide.scale > 0.0 && wide.scale < 1e-5, "{wide:?}");
    }

    #[test]
    fn ranges_without_zero_are_refused() {
        assert!(compute_scale_zp(0.0, 1.0, 1, 255, false, None).is_err());
        assert!(compute_scale_zp(0.0, 1.0, -10, -1, false, None).is_err());
    }

    #[test]
    fn float16_keeps_subnormal_scales_and_drops_smaller_ones() {
        let tiny = f16::from_f32(1e-5);
        let p = compute_scale_zp_f16(-tiny, tiny, -127, 127, true, None).unwrap();
        assert!(!p.scale.is_normal() && p.scale > f16::ZERO, "{p:?}");
        let zero = compute_scale_zp_f16(f16::ZERO, f16::from_bits(1), 0, 255, false, None).unwrap();
        assert_eq!(zero.scale, f16::ONE);
    }
}
