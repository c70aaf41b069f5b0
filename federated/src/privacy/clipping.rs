//! Flat L2 clipping.

/// Clips `update` (a flat vector) to L2 norm `clip`; returns the scale applied (1 when the
/// norm was already within `clip`).
pub fn clip_to_norm(update: &mut [f32], clip: f64) -> f64 {
    let norm = update
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > clip { clip / norm } else { 1.0 };
    if scale < 1.0 {
        for v in update.iter_mut() {
            *v = (*v as f64 * scale) as f32;
        }
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_by_hand() {
        let mut u = [3.0f32, 4.0];
        assert_eq!(clip_to_norm(&mut u, 1.0), 0.2);
        assert_eq!(u, [0.6, 0.8]);
        let mut small = [0.3f32, 0.4];
        assert_eq!(clip_to_norm(&mut small, 1.0), 1.0);
        assert_eq!(small, [0.3, 0.4]);
    }
}
