//! Labelled datasets and how to split them across clients: IID, Dirichlet(α) over labels
//! (Hsu et al. 2019, as Flower's `DirichletPartitioner`), and k label shards per client
//! (McMahan et al. 2017). Every partitioner is seeded and reproducible.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

/// Features and integer class labels; one row of `feature_shape` per example.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major features, `len() · product(feature_shape)` values.
    pub x: Vec<f32>,
    /// The shape of one example (e.g. `[64]` or `[1, 8, 8]`).
    pub feature_shape: Vec<usize>,
    /// One label per example.
    pub y: Vec<i64>,
}

/// Why a dataset or partition cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// Features and labels disagree.
    #[error("{features} feature values do not make {labels} rows of shape {shape:?}")]
    Shape {
        /// Feature values.
        features: usize,
        /// Labels.
        labels: usize,
        /// Row shape.
        shape: Vec<usize>,
    },
    /// The partitioning cannot be done as asked.
    #[error("{0}")]
    Partition(String),
}

impl Dataset {
    /// Checks that the features fill `labels` rows.
    pub fn new(x: Vec<f32>, feature_shape: Vec<usize>, y: Vec<i64>) -> Result<Self, DataError> {
        let row: usize = feature_shape.iter().product();
        if row == 0 || x.len() != row * y.len() {
            return Err(DataError::Shape {
                features: x.len(),
                labels: y.len(),
                shape: feature_shape,
            });
        }
        Ok(Self {
            x,
            feature_shape,
            y,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Values per example.
    pub fn row_len(&self) -> usize {
        self.feature_shape.iter().product()
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let r = self.row_len();
        Dataset {
            x: indices
                .iter()
                .flat_map(|&i| self.x[i * r..(i + 1) * r].iter().copied())
                .collect(),
            feature_shape: self.feature_shape.clone(),
            y: indices.iter().map(|&i| self.y[i]).collect(),
        }
    }

    /// The same examples with another row shape of the same size (e.g. `[64]` → `[1, 8, 8]`).
    pub fn reshaped(mut self, feature_shape: Vec<usize>) -> Result<Dataset, DataError> {
        if feature_shape.iter().product::<usize>() != self.row_len() {
            return Err(DataError::Shape {
                features: self.x.len(),
                labels: self.y.len(),
                shape: feature_shape,
            });
        }
        self.feature_shape = feature_shape;
        Ok(self)
    }
}

/// How to split a dataset across clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Partitioner {
    /// Shuffled and dealt evenly.
    Iid,
    /// Per label, client shares drawn from Dirichlet(α); small α is very skewed.
    Dirichlet {
        /// Concentration α > 0.
        alpha: f64,
        /// Resample until every client has at least this many examples.
        #[serde(default = "default_min_size")]
        min_size: usize,
    },
    /// Sorted by label, cut into `clients · shards_per_client` shards, dealt at random.
    Shards {
        /// Shards each client gets.
        shards_per_client: usize,
    },
}

fn default_min_size() -> usize {
    10
}

impl Partitioner {
    /// Indices of the examples of each of `clients` partitions. Every example goes to exactly
    /// one client.
    pub fn partition(
        &self,
        labels: &[i64],
        clients: usize,
        seed: u64,
    ) -> Result<Vec<Vec<usize>>, DataError> {
        if clients == 0 || clients > labels.len() {
            return Err(DataError::Partition(format!(
                "cannot split {} examples across {clients} clients",
                labels.len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match self {
            Partitioner::Iid => {
                let mut idx: Vec<usize> = (0..labels.len()).collect();
                idx.shuffle(&mut rng);
                Ok((0..clients)
                    .map(|c| idx.iter().skip(c).step_by(clients).copied().collect())
                    .collect())
            }
            Partitioner::Dirichlet { alpha, min_size } => {
                dirichlet(labels, clients, *alpha, *min_size, &mut rng)
            }
            Partitioner::Shards { shards_per_client } => {
                shards(labels, clients, *shards_per_client, &mut rng)
            }
        }
    }
}

fn classes(labels: &[i64], rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut values: Vec<i64> = labels.to_vec();
    values.sort();
    values.dedup();
    values
        .iter()
        .map(|&v| {
            let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == v).collect();
            idx.shuffle(rng);
            idx
        })
        .collect()
}

fn dirichlet(
    labels: &[i64],
    clients: usize,
    alpha: f64,
    min_size: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>, DataError> {
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(DataError::Partition(format!(
            "Dirichlet alpha = {alpha} must be > 0"
        )));
    }
    if min_size * clients > labels.len() {
        return Err(DataError::Partition(format!(
            "{clients} clients × min_size {min_size} exceeds {} examples",
            labels.len()
        )));
    }
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| DataError::Partition(e.to_string()))?;
    let by_class = classes(labels, rng);
    for _attempt in 0..1000 {
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); clients];
        for idx in &by_class {
            let draws: Vec<f64> = (0..clients).map(|_| gamma.sample(rng)).collect();
            let total: f64 = draws.iter().sum();
            let mut start = 0;
            let mut cumulative = 0.0;
            for (c, d) in draws.iter().enumerate() {
                cumulative += d / total.max(f64::MIN_POSITIVE);
                let end = if c + 1 == clients {
                    idx.len()
                } else {
                    ((cumulative * idx.len() as f64).round() as usize).clamp(start, idx.len())
                };
                parts[c].extend_from_slice(&idx[start..end]);
                start = end;
            }
        }
        if parts.iter().all(|p| p.len() >= min_size) {
            for p in &mut parts {
                p.shuffle(rng);
            }
            return Ok(parts);
        }
    }
    Err(DataError::Partition(format!(
        "no Dirichlet(α = {alpha}) draw in 1000 gave every one of {clients} clients {min_size} examples; lower min_size or raise alpha"
    )))
}

fn shards(
    labels: &[i64],
    clients: usize,
    per_client: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>, DataError> {
    let count = clients * per_client;
    if per_client == 0 || count > labels.len() {
        return Err(DataError::Partition(format!(
            "{clients} clients × {per_client} shards does not fit {} examples",
            labels.len()
        )));
    }
    let sorted: Vec<usize> = classes(labels, rng).into_iter().flatten().collect();
    let size = sorted.len() / count;
    let mut ids: Vec<usize> = (0..count).collect();
    ids.shuffle(rng);
    let mut parts = vec![Vec::new(); clients];
    for (k, id) in ids.iter().enumerate() {
        let end = if *id + 1 == count {
            sorted.len()
        } else {
            (id + 1) * size
        };
        parts[k % clients].extend_from_slice(&sorted[id * size..end]);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<i64> {
        (0..1000).map(|i| (i % 10) as i64).collect()
    }

    fn check_cover(parts: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..n).collect::<Vec<_>>(),
            "every example exactly once"
        );
    }

    fn classes_per_client(parts: &[Vec<usize>], labels: &[i64]) -> Vec<usize> {
        parts
            .iter()
            .map(|p| {
                let mut c: Vec<i64> = p.iter().map(|&i| labels[i]).collect();
                c.sort();
                c.dedup();
                c.len()
            })
            .collect()
    }

    #[test]
    fn iid_is_even_and_reproducible() {
        let y = labels();
        let a = Partitioner::Iid.partition(&y, 7, 1).unwrap();
        check_cover(&a, 1000);
        assert!(a.iter().all(|p| p.len() == 142 || p.len() == 143));
        assert_eq!(a, Partitioner::Iid.partition(&y, 7, 1).unwrap());
        assert_ne!(a, Partitioner::Iid.partition(&y, 7, 2).unwrap());
    }

    #[test]
    fn dirichlet_skews_with_small_alpha() {
        let y = labels();
        let skewed = Partitioner::Dirichlet {
            alpha: 0.1,
            min_size: 5,
        }
        .partition(&y, 20, 3)
        .unwrap();
        let even = Partitioner::Dirichlet {
            alpha: 100.0,
            min_size: 5,
        }
        .partition(&y, 20, 3)
        .unwrap();
        check_cover(&skewed, 1000);
        check_cover(&even, 1000);
        let mean = |v: Vec<usize>| v.iter().sum::<usize>() as f64 / v.len() as f64;
        let few = mean(classes_per_client(&skewed, &y));
        let many = mean(classes_per_client(&even, &y));
        assert!(
            few < 5.0 && many > 9.0,
            "alpha 0.1: {few} classes per client, alpha 100: {many}"
        );
        assert!(skewed.iter().all(|p| p.len() >= 5));
        assert_eq!(
            skewed,
            Partitioner::Dirichlet {
                alpha: 0.1,
                min_size: 5
            }
            .partition(&y, 20, 3)
            .unwrap()
        );
        assert!(Partitioner::Dirichlet {
            alpha: 0.0,
            min_size: 1
        }
        .partition(&y, 2, 0)
        .is_err());
        assert!(Partitioner::Dirichlet {
            alpha: 1.0,
            min_size: 600
        }
        .partition(&y, 2, 0)
        .is_err());
    }

    #[test]
    fn shards_give_few_labels_per_client() {
        let y = labels();
        let parts = Partitioner::Shards {
            shards_per_client: 2,
        }
        .partition(&y, 10, 4)
        .unwrap();
        check_cover(&parts, 1000);
        assert!(classes_per_client(&parts, &y).iter().all(|&c| c <= 2));
        assert!(Partitioner::Shards {
            shards_per_client: 0
        }
        .partition(&y, 10, 4)
        .is_err());
    }

    #[test]
    fn datasets_check_their_shape() {
        assert!(Dataset::new(vec![0.0; 6], vec![3], vec![1, 2]).is_ok());
        assert!(Dataset::new(vec![0.0; 5], vec![3], vec![1, 2]).is_err());
        let d = Dataset::new((0..6).map(|v| v as f32).collect(), vec![3], vec![1, 2]).unwrap();
        assert_eq!(d.subset(&[1]).x, [3.0, 4.0, 5.0]);
        assert_eq!(
            d.clone().reshaped(vec![1, 3]).unwrap().feature_shape,
            [1, 3]
        );
        assert!(d.reshaped(vec![2]).is_err());
    }
}
