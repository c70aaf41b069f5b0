//! Labelled examples from `.npz` files (`x_<split>` features, `y_<split>` integer labels).

use std::fs::File;
use std::path::{Path, PathBuf};

use inference::ndarray::{Array1, ArrayD, Axis};
use ndarray_npy::NpzReader;

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened.
    #[error("failed to open dataset `{path}`")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable `.npz`, or lacks an array.
    #[error("failed to read `{array}` from `{path}` (is it an .npz with `x_<split>` float32 and `y_<split>` int64 arrays?)")]
    Array {
        /// The file.
        path: PathBuf,
        /// The array name.
        array: String,
        /// The npz error.
        #[source]
        source: ndarray_npy::ReadNpzError,
    },
    /// Features and labels disagree in count.
    #[error("`{path}` has {features} feature rows but {labels} labels")]
    Length {
        /// The file.
        path: PathBuf,
        /// Rows of `x`.
        features: usize,
        /// Entries of `y`.
        labels: usize,
    },
}

/// Features (first axis: examples) and their class labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One row per example; float32.
    pub x: ArrayD<f32>,
    /// One class index per example.
    pub y: Array1<i64>,
}

impl Dataset {
    /// Reads `x_<split>` and `y_<split>` from an `.npz` file, e.g. split `test` of
    /// `models/digits.npz`.
    pub fn load(path: impl AsRef<Path>, split: &str) -> Result<Self, DatasetError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| DatasetError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let array_err = |array: &str| {
            let path = path.to_path_buf();
            let array = array.to_owned();
            move |source| DatasetError::Array {
                path,
                array,
                source,
            }
        };
        let mut npz = NpzReader::new(file).map_err(array_err("(archive)"))?;
        let (xn, yn) = (format!("x_{split}"), format!("y_{split}"));
        let x: ArrayD<f32> = npz.by_name(&xn).map_err(array_err(&xn))?;
        let y: Array1<i64> = npz.by_name(&yn).map_err(array_err(&yn))?;
        if x.shape().first().copied().unwrap_or(0) != y.len() {
            return Err(DatasetError::Length {
                path: path.to_path_buf(),
                features: x.shape().first().copied().unwrap_or(0),
                labels: y.len(),
            });
        }
        Ok(Self { x, y })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Keeps the first `n` examples.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.x = self.x.slice_axis(Axis(0), (0..n).into()).to_owned();
        self.y = self.y.slice_axis(Axis(0), (0..n).into()).to_owned();
    }
}
