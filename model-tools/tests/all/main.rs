//! Integration tests of `model-tools`, through the real binary.

mod calibration;
mod calibration_models;
mod cli;
