//! The arithmetic of aggregation, as pure functions over flat vectors (Flower's
//! `aggregate.py`). Strategies call these; tests check them against hand-computed cases.

/// Σ nᵢ xᵢ / Σ nᵢ, coordinate by coordinate. `None` when the weights sum to zero.
pub fn weighted_mean(updates: &[(&[f32], f64)]) -> Option<Vec<f32>> {
    let dim = updates.first()?.0.len();
    let total: f64 = updates.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let mut acc = vec![0.0f64; dim];
    for (x, w) in updates {
        for (a, v) in acc.iter_mut().zip(x.iter()) {
            *a += w * *v as f64;
        }
    }
    Some(acc.into_iter().map(|a| (a / total) as f32).collect())
}

/// The coordinate-wise median (the mean of the middle two for an even count).
pub fn median(updates: &[&[f32]]) -> Option<Vec<f32>> {
    let dim = updates.first()?.len();
    let mut column = Vec::with_capacity(updates.len());
    Some(
        (0..dim)
            .map(|j| {
                column.clear();
                column.extend(updates.iter().map(|u| u[j]));
                column.sort_by(f32::total_cmp);
                let n = column.len();
                if n % 2 == 1 {
                    column[n / 2]
                } else {
                    (column[n / 2 - 1] + column[n / 2]) / 2.0
                }
            })
            .collect(),
    )
}

/// The coordinate-wise mean after dropping the `beta` fraction of smallest and of largest
/// values (`floor(beta · n)` from each end).
pub fn trimmed_mean(updates: &[&[f32]], beta: f64) -> Option<Vec<f32>> {
    let dim = updates.first()?.len();
    let n = updates.len();
    let cut = (beta * n as f64).floor() as usize;
    if 2 * cut >= n {
        return None;
    }
    let mut column = Vec::with_capacity(n);
    Some(
        (0..dim)
            .map(|j| {
                column.clear();
                column.extend(updates.iter().map(|u| u[j]));
                column.sort_by(f32::total_cmp);
                let kept = &column[cut..n - cut];
                (kept.iter().map(|&v| v as f64).sum::<f64>() / kept.len() as f64) as f32
            })
            .collect(),
    )
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum()
}

/// Krum scores (Blanchard et al. 2017): for each update, the sum of squared distances to its
/// `n − f − 2` nearest other updates, where `f` is the number of Byzantine clients tolerated.
pub fn krum_scores(updates: &[&[f32]], byzantine: usize) -> Vec<f64> {
    let n = updates.len();
    let neighbours = n.saturating_sub(byzantine + 2).max(1);
    (0..n)
        .map(|i| {
            let mut d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| squared_distance(updates[i], updates[j]))
                .collect();
            d.sort_by(f64::total_cmp);
            d.iter().take(neighbours).sum()
        })
        .collect()
}

/// Multi-Krum: the indices of the `keep` updates with the lowest Krum scores (Krum is
/// `keep = 1`), best first.
pub fn krum_select(updates: &[&[f32]], byzantine: usize, keep: usize) -> Vec<usize> {
    let scores = krum_scores(updates, byzantine);
    let mut order: Vec<usize> = (0..updates.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    order.truncate(keep.max(1));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mean_by_hand() {
        // (10·[1, 2] + 30·[3, 6]) / 40 = [2.5, 5]
        let m = weighted_mean(&[(&[1.0, 2.0], 10.0), (&[3.0, 6.0], 30.0)]).unwrap();
        assert_eq!(m, [2.5, 5.0]);
        assert!(weighted_mean(&[(&[1.0], 0.0)]).is_none());
    }

    #[test]
    fn median_by_hand() {
        let m = median(&[&[1.0, 10.0], &[3.0, -1.0], &[2.0, 4.0]]).unwrap();
        assert_eq!(m, [2.0, 4.0]);
        let even = median(&[&[1.0], &[3.0], &[100.0], &[2.0]]).unwrap();
        assert_eq!(even, [2.5]);
    }

    #[test]
    fn trimmed_mean_by_hand() {
        // beta 0.2 of 5 drops one from each end: mean of [2, 3, 4] = 3
        let t = trimmed_mean(&[&[1.0], &[2.0], &[3.0], &[4.0], &[100.0]], 0.2).unwrap();
        assert_eq!(t, [3.0]);
        assert!(trimmed_mean(&[&[1.0], &[2.0]], 0.5).is_none());
    }

    #[test]
    fn krum_rejects_the_outlier() {
        let a = [0.0f32, 0.0];
        let b = [1.0f32, 0.0];
        let c = [0.0f32, 1.0];
        let evil = [50.0f32, 50.0];
        let updates: Vec<&[f32]> = vec![&a, &b, &c, &evil];
        // n = 4, f = 1: each score sums the 1 nearest distance.
        // a: min(1, 1, 5000) = 1; b: min(1, 2, 4901) = 1; c: 1; evil: min(5000, 4901, 4901) = 4901
        let scores = krum_scores(&updates, 1);
        assert_eq!(scores, [1.0, 1.0, 1.0, 4901.0]);
        assert_eq!(krum_select(&updates, 1, 1), [0]);
        assert_eq!(krum_select(&updates, 1, 3), [0, 1, 2]);
    }
}
