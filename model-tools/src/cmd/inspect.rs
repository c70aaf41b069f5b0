//! `model-tools inspect`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inference::{Model, ModelMetadata};

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ONNX model file.
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Reads the model's metadata (no backend is involved) and prints it.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("failed to read `{}`", args.model.display()))?;
    let meta = Model::inspect(&bytes)
        .with_context(|| format!("failed to inspect `{}`", args.model.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &meta)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &args.model, &meta)?;
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    path: &std::path::Path,
    m: &ModelMetadata,
) -> std::io::Result<()> {
    writeln!(out, "model      {}", path.display())?;
    writeln!(out, "size       {} bytes", m.byte_size)?;
    writeln!(out, "sha256     {}", m.sha256)?;
    writeln!(out, "producer   {} {}", m.producer_name, m.producer_version)?;
    let opsets: Vec<String> = m
        .opsets
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                },
                o.version
            )
        })
        .collect();
    writeln!(
        out,
        "opsets     {} (IR {})",
        opsets.join(", "),
        m.ir_version
    )?;
    writeln!(out, "operators  {}", m.operators.join(", "))?;
    writeln!(out, "weights    {} initializers", m.initializer_count)?;
    let width = m
        .inputs
        .iter()
        .chain(&m.outputs)
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0);
    writeln!(out, "inputs")?;
    for t in &m.inputs {
        writeln!(out, "  {:<width$}  {t}", t.name)?;
    }
    writeln!(out, "outputs")?;
    for t in &m.outputs {
        writeln!(out, "  {:<width$}  {t}", t.name)?;
    }
    Ok(())
}
