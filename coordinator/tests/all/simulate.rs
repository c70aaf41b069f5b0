//! `coordinator simulate` as a researcher runs it.

use std::path::Path;
use std::process::Command;

fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .canonicalize()
        .unwrap()
}

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("sim.toml");
    let m = models();
    std::fs::write(
        &path,
        format!(
            "model = \"{}\"\ndataset = \"{}\"\n{body}",
            m.join("digits_mlp.onnx").display(),
            m.join("digits.npz").display()
        ),
    )
    .unwrap();
    path
}

/// Runs `coordinator simulate FILE --out OUT`.
fn simulate(file: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("simulate")
        .arg(file)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn simulate_writes_metrics_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        r#"rounds = 3
clients = 6
reinitialize = true
straggler_fraction = 0.5
[partition]
kind = "dirichlet"
alpha = 0.5
min_size = 5
[selection]
fraction_fit = 0.5
min_fit_clients = 3
min_available_clients = 6
[[variants]]
name = "FedAvg"
strategy = { kind = "fedavg" }
[[variants]]
name = "FedAdam"
strategy = { kind = "fedadam", eta = 0.01 }
"#,
    );
    let out = dir.path().join("out");
    let run = simulate(&file, &out);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("FedAvg") && stdout.contains("FedAdam"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    assert!(csv.starts_with("variant,round,train_loss,eval_loss,eval_accuracy"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json[1]["name"], "FedAdam");
    assert_eq!(json[1]["rounds"].as_array().unwrap().len(), 3);
    let svg = std::fs::read_to_string(out.join("accuracy.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("test accuracy") && svg.contains("FedAdam"));
    assert!(!svg.contains("privacy spent"), "no ε panel without DP");
}

#[test]
fn dp_and_secure_aggregation_report_epsilon_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        r#"rounds = 3
clients = 8
reinitialize = true
[partition]
kind = "iid"
[selection]
fraction_fit = 0.5
min_fit_clients = 4
min_available_clients = 8
[[variants]]
name = "DP + SecAgg+"
strategy = { kind = "fedavg" }
dp = { noise_multiplier = 0.5, clipping_norm = 1.0, clipping = "client", epsilon_budget = 100.0 }
secagg = { mode = "secagg+", neighbours = 2 }
"#,
    );
    let out = dir.path().join("out");
    let run = simulate(&file, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let eps: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(col("dp_epsilon"))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(eps.len(), 3);
    assert!(
        eps[0] > 0.0 && eps.windows(2).all(|w| w[1] > w[0]),
        "{eps:?}"
    );
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(col("secagg_survivors")) == Some("4")));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains(&format!("{:.3}", eps[2])), "{stdout}");
    let svg = std::fs::read_to_string(out.join("accuracy.svg")).unwrap();
    assert!(svg.contains("privacy spent"), "the plot has an ε panel");
}

#[test]
fn bad_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("rounds = 3\nclients = 6\n[partition]\nkind = \"dirichlet\"\nalpha = 0.5\n[[variants]]\nname = \"x\"\nstrategy = { kind = \"fedmagic\" }\n", "fedmagic"),
        ("rounds = 3\nclients = 6\nvariants = []\n[partition]\nkind = \"iid\"\n", "no [[variants]]"),
        ("rounds = 3\nclients = 6\nstragglers = 2\n[partition]\nkind = \"iid\"\n", "stragglers"),
        ("rounds = 2\nclients = 4\n[partition]\nkind = \"iid\"\n[[variants]]\nname = \"x\"\nstrategy = { kind = \"fedprox\", proximal_mu = -1.0 }\n", "proximal_mu"),
        ("rounds = 2\nclients = 4\n[partition]\nkind = \"iid\"\n[[variants]]\nname = \"x\"\nstrategy = { kind = \"fedmedian\" }\nsecagg = { mode = \"secagg\" }\n", "mean-based"),
        ("rounds = 2\nclients = 4\n[partition]\nkind = \"iid\"\n[[variants]]\nname = \"x\"\nstrategy = { kind = \"fedavg\" }\nsecagg = { mode = \"secagg+\" }\n", "needs `neighbours`"),
        ("rounds = 2\nclients = 4\n[partition]\nkind = \"iid\"\n[[variants]]\nname = \"x\"\nstrategy = { kind = \"fedavg\" }\nlocal_dp = { clipping_norm = 1.0, epsilon = 4.0, delta = 1e-5 }\n", "must be in (0, 1)"),
        ("rounds = 2\nclients = 4\n[partition]\nkind = \"iid\"\n[[variants]]\nname = \"x\"\nstrategy = { kind = \"fedavg\" }\ndp = { noise_multiplier = 1.0, clipping_norm = 1.0, epsilon_budget = 0.5 }\n", "budget"),
    ];
    for (body, needle) in cases {
        let file = write_config(dir.path(), body);
        let run = simulate(&file, &dir.path().join("o"));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{body}: {stderr}");
        assert!(
            stderr.starts_with("coordinator: ") && stderr.contains(needle),
            "`{needle}` not in: {stderr}"
        );
    }
}

#[test]
fn privacy_answers_epsilon_and_noise_questions() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .arg("privacy")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "epsilon", "-q", "0.0025", "-z", "1.3", "-s", "6000", "-d", "1e-5",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ε = 0.7242"));
    let out = run(&["noise", "-q", "0.0025", "-s", "6000", "-e", "0.7242"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("noise multiplier z = 1.30"));
    let out = run(&["epsilon", "-q", "2", "-z", "1", "-s", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sampling rate q = 2"));
}
