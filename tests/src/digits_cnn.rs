//! The trained digits CNN of `models/digits_cnn_trained.onnx`: its architecture, built here as
//! an ONNX graph, and the recipe that trains it with our own trainer ([`federated::train`],
//! candle autodiff), centrally (one client, plain local epochs).
//!
//! The architecture is two blocks of Conv 3×3 (no bias) → BatchNormalization → Relu →
//! MaxPool 2×2, with 16 and 32 channels, then Flatten and a Gemm to 10 logits: 8×8 → 4×4 → 2×2,
//! 6 234 parameters. A BatchNormalization after each Conv gives the quantizer's
//! BatchNormalization folding something real to fold.
//!
//! Everything is seeded ([`Recipe::seed`]): the He initialisation and the shuffling of every
//! epoch, so the same recipe on the same data writes the same bytes on the same machine. The
//! bytes may differ on another CPU: candle's matrix products (the `gemm` crate) pick their SIMD
//! kernels (AVX2, AVX-512, NEON) at run time, and those round differently.
//! `tests/src/bin/train-digits-cnn.rs` is the program; `tests/tests/all/trained_cnn.rs` checks
//! the committed model.

use std::path::Path;

use federated::data::Dataset;
use federated::train::{Loss, OptimizerConfig, TrainConfig, TrainError, Trainer};
use inference::onnx::{self, proto as pb, AttributeValue, DataLayout};
use inference::{Dim, ElementType, Tensor};

/// The committed model's file name in `models/`.
pub const FILE_NAME: &str = "digits_cnn_trained.onnx";
/// The input: float32 `[N, 1, 8, 8]` pixels in `[0, 1]`.
pub const INPUT: &str = "input";
/// The output: float32 `[N, 10]` logits.
pub const OUTPUT: &str = "logits";

/// Why the recipe could not run.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The `.npz` could not be read.
    #[error(transparent)]
    Data(#[from] model_tools::DatasetError),
    /// The examples are not 64-pixel digits.
    #[error("`{path}` split `{split}` has rows of shape {shape:?}; the CNN reads 8×8 digits (64 values per row)")]
    NotDigits {
        /// The file.
        path: String,
        /// The split.
        split: String,
        /// The shape of one row.
        shape: Vec<usize>,
    },
    /// The trainer failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A bad recipe.
    #[error("invalid recipe: {0}")]
    Recipe(String),
}

/// How the committed model was trained: SGD with momentum over `epochs` epochs whose learning
/// rate follows a cosine from `lr` down towards 0 (one [`Trainer::fit`] per epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Passes over the training split.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// The learning rate of the first epoch.
    pub lr: f64,
    /// SGD momentum (restarted at each epoch, when its learning rate changes).
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Seed of the initial weights; epoch `e` shuffles with `seed + e`.
    pub seed: u64,
}

impl Default for Recipe {
    /// The recipe of the committed `models/digits_cnn_trained.onnx`.
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 32,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

impl Recipe {
    /// The learning rate of epoch `epoch` (0-based): `lr · (1 + cos(π · epoch / epochs)) / 2`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let t = epoch as f64 / self.epochs.max(1) as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// The learning rate used.
    pub lr: f64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Test accuracy after the epoch (reported, never used to choose anything).
    pub test_accuracy: f64,
}

/// The trained model and how good it is.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The ONNX bytes.
    pub onnx: Vec<u8>,
    /// Accuracy on the training split.
    pub train_accuracy: f64,
    /// Accuracy on the test split.
    pub test_accuracy: f64,
}

/// Reads split `split` (`x_<split>`, `y_<split>`) of a digits `.npz` such as `models/digits.npz`
/// as 64-pixel rows for the trainer.
pub fn load_digits(path: &Path, split: &str) -> Result<Dataset, RecipeError> {
    let data = model_tools::Dataset::load(path, split)?;
    let shape = data.x.shape()[1..].to_vec();
    if shape.iter().product::<usize>() != 64 {
        return Err(RecipeError::NotDigits {
            path: path.display().to_string(),
            split: split.to_owned(),
            shape,
        });
    }
    Dataset::new(data.x.iter().copied().collect(), vec![64], data.y.to_vec())
        .map_err(|e| RecipeError::Recipe(format!("`{}` split `{split}`: {e}", path.display())))
}

fn initializer(name: &str, shape: &[usize], value: f32) -> pb::TensorProto {
    let n = shape.iter().product();
    let t = Tensor::from_shape_vec(shape, vec![value; n]).expect("the shape holds n values");
    onnx::tensor_to_proto(name, &t, DataLayout::Raw)
}

fn with(mut node: pb::NodeProto, attributes: Vec<(&str, AttributeValue)>) -> pb::NodeProto {
    for (name, value) in attributes {
        onnx::set_attribute(&mut node, name, value);
    }
    node
}

/// The untrained model: every weight zero, BatchNormalization scales and running variances
/// one. [`train`] initialises it (He) before training. Opset 17, IR version 8, a symbolic
/// batch dimension `N`, as every model in `models/`.
pub fn architecture() -> Vec<u8> {
    let ints = |v: &[i64]| AttributeValue::Ints(v.to_vec());
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut x = INPUT.to_owned();
    for (i, (c_in, c_out)) in [(1usize, 16usize), (16, 32)].into_iter().enumerate() {
        let b = i + 1;
        let (conv, bn, relu, pool) = (
            format!("conv{b}"),
            format!("bn{b}"),
            format!("relu{b}"),
            format!("pool{b}"),
        );
        let weight = format!("{conv}.weight");
        initializers.push(initializer(&weight, &[c_out, c_in, 3, 3], 0.0));
        nodes.push(with(
            onnx::make_node("Conv", &conv, &[x.as_str(), weight.as_str()], &[&conv]),
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("pads", ints(&[1, 1, 1, 1])),
                ("strides", ints(&[1, 1])),
            ],
        ));
        let stats = ["scale", "bias", "mean", "var"].map(|s| format!("{bn}.{s}"));
        for (name, value) in stats.iter().zip([1.0, 0.0, 0.0, 1.0]) {
            initializers.push(initializer(name, &[c_out], value));
        }
        nodes.push(with(
            onnx::make_node(
                "BatchNormalization",
                &bn,
                &[conv.as_str(), &stats[0], &stats[1], &stats[2], &stats[3]],
                &[&bn],
            ),
            vec![
                ("epsilon", AttributeValue::Float(1e-5)),
                ("momentum", AttributeValue::Float(0.9)),
            ],
        ));
        nodes.push(onnx::make_node("Relu", &relu, &[&bn], &[&relu]));
        nodes.push(with(
            onnx::make_node("MaxPool", &pool, &[&relu], &[&pool]),
            vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
        ));
        x = pool;
    }
    nodes.push(with(
        onnx::make_node("Flatten", "flatten", &[&x], &["flat"]),
        vec![("axis", AttributeValue::Int(1))],
    ));
    initializers.push(initializer("fc.weight", &[10, 128], 0.0));
    initializers.push(initializer("fc.bias", &[10], 0.0));
    nodes.push(with(
        onnx::make_node("Gemm", "fc", &["flat", "fc.weight", "fc.bias"], &[OUTPUT]),
        vec![("transB", AttributeValue::Int(1))],
    ));
    let n = || Dim::Symbolic("N".to_owned());
    let graph = pb::GraphProto {
        name: "digits_cnn_trained".to_owned(),
        node: nodes,
        initializer: initializers,
        input: vec![onnx::make_value_info(
            INPUT,
            ElementType::F32,
            Some(&[n(), Dim::Fixed(1), Dim::Fixed(8), Dim::Fixed(8)][..]),
        )],
        output: vec![onnx::make_value_info(
            OUTPUT,
            ElementType::F32,
            Some(&[n(), Dim::Fixed(10)][..]),
        )],
        ..Default::default()
    };
    let mut model = onnx::new_model(graph, 17, "edge-ml-models");
    model.producer_version = "1".to_owned();
    model.doc_string = "digits CNN (2 × Conv-BatchNormalization-Relu-MaxPool, Gemm) trained by \
                        federated::train; made by tests/src/bin/train-digits-cnn.rs"
        .to_owned();
    onnx::encode_model(&model)
}

/// Initialises [`architecture`] with `recipe.seed` and trains it on `train`, calling `on_epoch`
/// after every epoch with the test accuracy so far. Returns the model after the last epoch.
pub fn train(
    recipe: &Recipe,
    train: &Dataset,
    test: &Dataset,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained, RecipeError> {
    if recipe.epochs == 0 || recipe.batch_size == 0 {
        return Err(RecipeError::Recipe(format!(
            "epochs ({}) and batch size ({}) must be at least 1",
            recipe.epochs, recipe.batch_size
        )));
    }
    let mut trainer = Trainer::new(&architecture())?;
    trainer.reinitialize(recipe.seed)?;
    for epoch in 0..recipe.epochs {
        let lr = recipe.lr_at(epoch);
        let config = TrainConfig {
            optimizer: OptimizerConfig::Sgd {
                lr,
                momentum: recipe.momentum,
                weight_decay: recipe.weight_decay,
            },
            loss: Loss::CrossEntropy,
            epochs: 1,
            max_steps: None,
            batch_size: recipe.batch_size,
            proximal_mu: 0.0,
            seed: recipe.seed.wrapping_add(epoch as u64),
        };
        let fit = trainer.fit(train, &config, None)?;
        let eval = trainer.evaluate(test, 256, Loss::CrossEntropy)?;
        on_epoch(&EpochReport {
            epoch: epoch + 1,
            epochs: recipe.epochs,
            lr,
            train_loss: fit.loss,
            test_accuracy: eval.accuracy,
        });
    }
    Ok(Trained {
        onnx: trainer.export_onnx()?,
        train_accuracy: trainer.evaluate(train, 256, Loss::CrossEntropy)?.accuracy,
        test_accuracy: trainer.evaluate(test, 256, Loss::CrossEntropy)?.accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_architecture_is_trainable_and_small() {
        let bytes = architecture();
        let trainer = Trainer::new(&bytes).unwrap();
        let params: usize = trainer
            .parameters()
            .unwrap()
            .tensors()
            .iter()
            .map(|t| t.data.len())
            .sum();
        // 144 + 2·16 + 4608 + 2·32 + 1280 + 10 trainable; running statistics are not.
        assert_eq!(params, 6138);
        assert_eq!(trainer.input_name(), INPUT);
        let meta = inference::Model::inspect(&bytes).unwrap();
        assert_eq!(meta.opset(), Some(17));
        assert_eq!(
            meta.operators,
            [
                "BatchNormalization",
                "Conv",
                "Flatten",
                "Gemm",
                "MaxPool",
                "Relu"
            ]
        );
    }

    #[test]
    fn the_learning_rate_decays_from_lr_towards_zero() {
        let r = Recipe::default();
        assert_eq!(r.lr_at(0), r.lr);
        assert!((r.lr_at(r.epochs / 2) - r.lr / 2.0).abs() < 1e-12);
        assert!(r.lr_at(r.epochs - 1) < r.lr / 100.0);
        let one = Dataset::new(vec![0.0; 64], vec![64], vec![3]).unwrap();
        let no_epochs = Recipe {
            epochs: 0,
            ..Recipe::default()
        };
        let err = train(&no_epochs, &one, &one, |_| {}).unwrap_err();
        assert!(err.to_string().contains("epochs (0)"), "{err}");
    }
}
