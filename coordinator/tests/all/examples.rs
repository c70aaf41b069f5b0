//! Every simulation file we show a user parses and passes the same checks `coordinator
//! simulate` makes: the files in `coordinator/examples/` and the TOML in `docs/federated.md`.

use std::path::{Path, PathBuf};

use coordinator::SimulationFile;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fenced ```toml blocks of a Markdown file, in order.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unterminated ```toml block");
    blocks
}

#[test]
fn every_example_file_loads() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("coordinator/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "examples: {files:?}");
    for file in files {
        let sim =
            SimulationFile::load(&file).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        assert!(
            sim.model.is_file(),
            "{}: no model at {}",
            file.display(),
            sim.model.display()
        );
        assert!(
            sim.dataset.is_file(),
            "{}: no dataset at {}",
            file.display(),
            sim.dataset.display()
        );
    }
}

#[test]
fn the_toml_in_the_federated_guide_is_a_valid_simulation_file() {
    let guide = std::fs::read_to_string(root().join("docs/federated.md")).unwrap();
    let blocks = toml_blocks(&guide);
    assert_eq!(
        blocks.len(),
        2,
        "docs/federated.md: expected the file and the DP variant"
    );
    // The first block is a whole file; the second is one more `[[variants]]` entry for it.
    let whole = SimulationFile::parse(&blocks[0], Path::new("."))
        .unwrap_or_else(|e| panic!("the simulation file in docs/federated.md: {e:#}"));
    assert_eq!(whole.variants.len(), 1);
    let with_privacy =
        SimulationFile::parse(&format!("{}\n{}", blocks[0], blocks[1]), Path::new("."))
            .unwrap_or_else(|e| panic!("the DP variant in docs/federated.md: {e:#}"));
    let variant = &with_privacy.variants[1];
    assert!(variant.dp.is_some() && variant.local_dp.is_some() && variant.secagg.is_some());
}

#[test]
fn a_bad_strategy_setting_is_refused_when_the_file_is_read() {
    let file = "model = \"m.onnx\"\ndataset = \"d.npz\"\nrounds = 1\nclients = 2\n\
                [partition]\nkind = \"iid\"\n\
                [[variants]]\nname = \"robust with DP\"\nstrategy = { kind = \"fedmedian\" }\n\
                dp = { noise_multiplier = 1.0, clipping_norm = 1.0 }\n";
    let err = format!(
        "{:#}",
        SimulationFile::parse(file, Path::new(".")).unwrap_err()
    );
    assert!(
        err.contains("robust with DP") && err.contains("mean-based"),
        "{err}"
    );
}
