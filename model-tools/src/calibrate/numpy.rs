//! The few numpy routines onnxruntime's histogram collector relies on, reproduced to the bit:
//! `linspace` and `histogram` (equal bins over a range, or given edges) in float32, `arange` of
//! float32 scalars (which numpy computes in float64), and float32 floor division.
//!
//! numpy 2 keeps float32 scalars in float32 (NEP 50), so the edges onnxruntime reports are
//! float32 values computed in float32; doing the same here lets the tests compare thresholds
//! exactly rather than within a bin.

/// `numpy.linspace(first, last, bins + 1)` for float32 endpoints: `i * step + first` in
/// float32 with `step = (last - first) / bins`, and the last edge exactly `last`.
pub(crate) fn linspace_f32(first: f32, last: f32, bins: usize) -> Vec<f32> {
    let delta = last - first;
    let div = bins as f32;
    let step = delta / div;
    let mut edges: Vec<f32> = (0..=bins)
        .map(|i| {
            let i = i as f32;
            if step == 0.0 {
                // numpy's path for a step that underflows: divide first, then scale.
                (i / div) * delta + first
            } else {
                i * step + first
            }
        })
        .collect();
    if let Some(end) = edges.last_mut() {
        *end = last;
    }
    edges
}

/// Adds to `counts` the values of `values` in `[first, last]` (NaN excluded), binned as
/// `numpy.histogram(values, counts.len(), range=(first, last))` bins them, whose float32 edges
/// are `edges` (from [`linspace_f32`]): bin `i` holds `edges[i] <= x < edges[i + 1]`, the last
/// bin also `x == last`.
pub(crate) fn count_uniform(
    values: &[f32],
    first: f32,
    last: f32,
    edges: &[f32],
    counts: &mut [u64],
) {
    let n = counts.len();
    if n == 0 || edges.len() != n + 1 {
        return;
    }
    let denom = last - first;
    let scale = n as f32;
    for &x in values {
        if !(x >= first && x <= last) {
            continue;
        }
        // numpy: ((x - first) / denom) * n, truncated, then corrected by one bin against the
        // edges (the arithmetic may be off by one ulp near an edge).
        let f = ((x - first) / denom) * scale;
        let mut i = if f.is_finite() {
            (f as usize).min(n)
        } else {
            0
        };
        if i == n {
            i -= 1;
        }
        if x < edges[i] && i > 0 {
            i -= 1;
        }
        if x >= edges[i + 1] && i != n - 1 {
            i += 1;
        }
        counts[i] += 1;
    }
}

/// Adds to `counts` (one fewer than `edges`) the values of `values` binned as
/// `numpy.histogram(values, bins=edges)` bins them: `edges[i] <= x < edges[i + 1]`, the last
/// bin closed on the right; values outside the edges and NaN are not counted. Comparisons are
/// exact (float32 values against float64 edges).
pub(crate) fn count_with_edges(values: &[f32], edges: &[f64], counts: &mut [u64]) {
    let n = counts.len();
    if n == 0 || edges.len() != n + 1 {
        return;
    }
    let (lowest, highest) = (edges[0], edges[n]);
    for &x in values {
        let x = f64::from(x);
        if !(x >= lowest && x <= highest) {
            continue;
        }
        // The number of edges <= x, less one: the last bin whose left edge is <= x.
        let i = edges.partition_point(|&e| e <= x) - 1;
        counts[i.min(n - 1)] += 1;
    }
}

/// `numpy.arange(start, stop, step)` for float32 scalars, which numpy returns as float64:
/// `ceil((stop - start) / step)` values (the quotient computed in float32), the first
/// `start`, the second `start + step` rounded to float32, and the rest spaced by their
/// difference, in float64.
pub(crate) fn arange_f32_scalars(start: f32, stop: f32, step: f32) -> Vec<f64> {
    let len = arange_len(start, stop, step) as usize;
    let first = f64::from(start);
    let second = f64::from(start + step);
    let delta = second - first;
    (0..len)
        .map(|i| match i {
            0 => first,
            1 => second,
            _ => first + i as f64 * delta,
        })
        .collect()
}

/// How many values [`arange_f32_scalars`] returns, as a float (it may be huge or infinite
/// when `step` is tiny): `ceil((stop - start) / step)` with the quotient in float32, or 0.
pub(crate) fn arange_len(start: f32, stop: f32, step: f32) -> f64 {
    let quotient = f64::from((stop - start) / step).ceil();
    if quotient > 0.0 {
        quotient
    } else {
        0.0
    }
}

/// `numpy.floor_divide(a, b)` for float32: the quotient of `a - fmod(a, b)` by `b`, floored,
/// rounded up when the floor is more than one half below it.
pub(crate) fn floor_divide_f32(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floor = div.floor();
        if div - floor > 0.5 {
            floor += 1.0;
        }
        floor
    } else {
        0.0f32.copysign(a / b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_has_exact_endpoints_and_float32_steps() {
        assert_eq!(linspace_f32(-1.0, 1.0, 4), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        let e = linspace_f32(0.0, 0.3, 3);
        assert_eq!(e[1], 1.0f32 * (0.3f32 / 3.0) + 0.0);
        assert_eq!(e[3], 0.3);
    }

    #[test]
    fn uniform_bins_are_closed_on_the_left_and_the_last_on_both_sides() {
        let edges = linspace_f32(-1.0, 1.0, 4);
        let mut counts = vec![0; 4];
        let values = [-1.0, -0.5, -0.25, 0.0, 0.5, 1.0, 1.5, -2.0, f32::NAN];
        count_uniform(&values, -1.0, 1.0, &edges, &mut counts);
        assert_eq!(counts, vec![1, 2, 1, 2]);
    }

    #[test]
    fn given_edges_bin_like_numpy_and_drop_what_lies_outside() {
        let edges = [1.0, 1.5, 2.0, 2.0, 3.0];
        let mut counts = vec![0; 4];
        count_with_edges(&[0.5, 1.0, 1.7, 2.0, 3.0, 3.5], &edges, &mut counts);
        // 2.0 falls in the bin right of the zero-width one; 3.0 in the last, closed bin.
        assert_eq!(counts, vec![1, 1, 0, 2]);
    }

    #[test]
    fn arange_of_float32_scalars_counts_in_float32_and_spaces_in_float64() {
        assert_eq!(arange_f32_scalars(2.5, 3.7, 0.5), vec![2.5, 3.0, 3.5]);
        assert!(arange_f32_scalars(2.0, 2.0, 0.5).is_empty());
        let a = arange_f32_scalars(0.1, 0.45, 0.1);
        assert_eq!(a.len(), 4);
        assert_eq!(a[1], f64::from(0.1f32 + 0.1f32));
        assert_eq!(a[3], f64::from(0.1f32) + 3.0 * (a[1] - a[0]));
    }

    #[test]
    fn floor_division_floors() {
        assert_eq!(floor_divide_f32(1.0, 0.5), 2.0);
        assert_eq!(floor_divide_f32(1.2, 0.5), 2.0);
        assert_eq!(floor_divide_f32(-1.2, 0.5), -3.0);
        assert_eq!(floor_divide_f32(0.0, 0.5), 0.0);
    }
}
