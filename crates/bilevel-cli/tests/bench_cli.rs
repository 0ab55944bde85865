//! End-to-end tests of `bilevel bench`: grid expansion, seeds, record files, summaries, plots,
//! located errors and failed runs, on toy problems that run in well under a second.

mod common;

use common::{invoke, repo, stderr, tmpdir};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

fn bench(dir: &Path, suite: &str) -> (Output, PathBuf) {
    let path = dir.join("suite.toml");
    std::fs::write(&path, suite).unwrap();
    let out = dir.join("out");
    let o = invoke("bench", &path, &out, &[]);
    (o, out)
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\n{}", o.status, stderr(o));
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Records evaluated by a completed run of `iterations` iterations with `evaluate_every = k`:
/// iterations 0, k, 2k, … and the last.
fn evaluated(iterations: usize, k: usize) -> usize {
    iterations.div_ceil(k) + usize::from(!(iterations - 1).is_multiple_of(k))
}

const TOY: &str = r#"
name = "toy"
seeds = [0, 1, 2]
tolerances = [1e-2, 1e-4]

[budget]
max_iter = 40

[output]
evaluate_every = 3

[[problems]]
name = "affine"
d = 6
r = 2
m = 2

[[problems]]
name = "quadratic"
label = "quad"
n_inner = 16
n_outer = 16
dim_x = 3
dim_y = 3

[[solvers]]
name = "aid"
label = "AID"
lower_steps = 5
[solvers.grid]
"upper.lr" = [0.1, 0.3]
lower_lr = [0.2, 0.5]

[[solvers]]
name = "hg-ms"
"#;

/// Grid × seeds × problems runs; records files hold exactly the evaluated records; seeds reach
/// the problem instance; summaries name every solver; SVG and PNG plots exist.
#[test]
fn toy_suite_writes_records_summaries_and_plots() {
    let dir = tmpdir("toy");
    let (o, out) = bench(&dir, TOY);
    ok(&o);
    // One progress line per run on a non-terminal stderr: 2 problems × 3 seeds × 5 configurations.
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with('[')).count(),
        30,
        "{err}"
    );
    assert!(err.contains("[30/30]"), "{err}");

    let summary = json(&out.join("summary.json"));
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 30);
    assert!(runs.iter().all(|r| r["status"] == "completed"));
    // Grid expansion: 4 AID configurations with the cross product of the two keys, plus HG-MS.
    let configs: BTreeSet<&str> = runs
        .iter()
        .map(|r| r["configuration"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "AID lower_lr=0.2, upper.lr=0.1",
        "AID lower_lr=0.2, upper.lr=0.3",
        "AID lower_lr=0.5, upper.lr=0.1",
        "AID lower_lr=0.5, upper.lr=0.3",
        "hg-ms",
    ]
    .into_iter()
    .collect();
    assert_eq!(configs, expected);

    // Row counts = evaluated records (every 3rd iteration and the last).
    let expected_rows: usize = runs
        .iter()
        .map(|r| evaluated(r["iterations"].as_u64().unwrap() as usize, 3))
        .sum();
    assert_eq!(expected_rows, 30 * evaluated(40, 3));
    let rows = jsonl(&out.join("records.jsonl"));
    assert_eq!(rows.len(), expected_rows);
    let csv = std::fs::read_to_string(out.join("records.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(lines.count(), expected_rows);
    for col in [
        "suite",
        "problem",
        "dataset",
        "solver",
        "label",
        "params.lower_lr",
        "params.upper.lr",
        "seed",
        "iteration",
        "time_s",
        "oracle_calls.hvp",
        "gradient_equivalents",
        "phi",
        "phi_star",
        "phi_gap",
    ] {
        assert!(header.contains(&col), "missing column {col}: {header:?}");
    }
    let its: Vec<u64> = rows
        .iter()
        .filter(|r| r["problem"] == "quad" && r["label"] == "hg-ms" && r["seed"] == 0)
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(
        its,
        vec![0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39]
    );
    for r in &rows {
        for key in [
            "suite", "problem", "dataset", "solver", "label", "params", "seed",
        ] {
            assert!(r.get(key).is_some(), "missing {key}: {r}");
        }
        assert!(r["dataset"].is_null());
        assert!(r["oracle_calls"]["grad_g"].as_u64().is_some());
        // φ − φ* is φ minus the closed-form φ* of the row's own instance.
        let gap = r["phi"].as_f64().unwrap() - r["phi_star"].as_f64().unwrap();
        assert!((r["phi_gap"].as_f64().unwrap() - gap).abs() <= 1e-12 * gap.abs().max(1.0));
    }
    // The seed is written into the quadratic's and the affine problem's `seed`: three instances,
    // three different φ*, shared by all configurations of one seed.
    for problem in ["quad", "affine"] {
        let mut star: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r["problem"] == problem) {
            star.entry(r["seed"].as_u64().unwrap())
                .or_default()
                .insert(r["phi_star"].to_string());
        }
        assert_eq!(star.len(), 3);
        assert!(star.values().all(|s| s.len() == 1), "{star:?}");
        let distinct: BTreeSet<&String> = star.values().flatten().collect();
        assert_eq!(distinct.len(), 3, "{problem}: {star:?}");
    }

    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for needle in [
        "## affine",
        "## quad",
        "| AID",
        "| hg-ms",
        "★",
        "closed form",
    ] {
        assert!(md.contains(needle), "summary.md lacks {needle}:\n{md}");
    }
    for p in summary["problems"].as_array().unwrap() {
        let cs = p["configurations"].as_array().unwrap();
        assert_eq!(cs.len(), 5);
        assert_eq!(cs.iter().filter(|c| c["best"] == true).count(), 2);
        assert_eq!(p["phi_star"].as_array().unwrap().len(), 3);
        assert!(p["phi_star"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] == "closed-form"));
    }
    for stem in ["affine", "quad"] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"));
    }
    assert!(out.join("suite.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A diverging configuration is reported as failed, its records up to the failure are kept, and
/// the other configurations complete; the exit status is still 0.
#[test]
fn diverging_configuration_is_reported_as_failed() {
    let dir = tmpdir("diverge");
    let suite = r#"
seeds = [0, 1]
tolerances = [1e-3]
[budget]
max_iter = 400
[[problems]]
name = "quadratic"
n_inner = 16
n_outer = 16
dim_x = 3
dim_y = 3
[[solvers]]
name = "aid"
label = "AID"
[solvers.grid]
"upper.lr" = [0.3, 1e8]
"#;
    let (o, out) = bench(&dir, suite);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("FAILED") && err.contains("not finite"),
        "{err}"
    );
    let summary = json(&out.join("summary.json"));
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        let diverging = r["configuration"].as_str().unwrap().contains("100000000");
        assert_eq!(
            r["status"],
            if diverging { "failed" } else { "completed" },
            "{r}"
        );
        if diverging {
            assert!(r["error"].as_str().unwrap().contains("not finite"));
        } else {
            assert_eq!(r["iterations"], 400);
        }
    }
    let cs = summary["problems"][0]["configurations"].as_array().unwrap();
    let stable = cs.iter().find(|c| c["failed"] == 0).unwrap();
    let failing = cs.iter().find(|c| c["failed"] == 2).unwrap();
    assert_eq!(stable["best"], true);
    assert_eq!(failing["best"], false);
    assert!(failing["final_phi_gap"]["median"].is_null());
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("0/2 (2 failed)") && md.contains("Failed runs"),
        "{md}"
    );
    // The failed runs' evaluated records before the divergence are in the files.
    let rows = jsonl(&out.join("records.jsonl"));
    let failed_rows = rows
        .iter()
        .filter(|r| r["params"]["upper.lr"].as_f64() == Some(1e8))
        .count();
    assert!(failed_rows > 0);
    assert_eq!(rows.len(), 2 * 400 + failed_rows);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without a closed-form φ*, a reference run gives it (and benchmark runs only improve on it);
/// without a reference, the smallest φ over the runs does, so the best record has φ − φ* = 0.
#[test]
fn phi_star_from_a_reference_run_or_from_the_runs() {
    for (name, reference, source) in [
        (
            "ref",
            "[reference]\nsolver = { name = \"hg-ms\" }\nmax_iter = 300\n",
            "reference-run",
        ),
        ("min", "", "min-over-runs"),
    ] {
        let dir = tmpdir(name);
        let suite = format!(
            "seeds = [0]\n[budget]\nmax_iter = 30\n[[problems]]\nname = \"circle-center\"\n\
             [[solvers]]\nname = \"hg-ms\"\n[[solvers]]\nname = \"aid\"\n{reference}"
        );
        let (o, out) = bench(&dir, &suite);
        ok(&o);
        let summary = json(&out.join("summary.json"));
        let star = &summary["problems"][0]["phi_star"][0];
        assert_eq!(star["source"], source, "{star}");
        let value = star["value"].as_f64().unwrap();
        let rows = jsonl(&out.join("records.jsonl"));
        let min_phi = rows
            .iter()
            .map(|r| r["phi"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min);
        assert!(value <= min_phi, "φ* {value} above a run's φ {min_phi}");
        if source == "min-over-runs" {
            assert_eq!(value, min_phi);
            let zero = rows.iter().any(|r| r["phi_gap"].as_f64() == Some(0.0));
            assert!(zero);
        } else {
            // circle-center: φ* = 0 at |x − b| = R; 300 HG-MS iterations get close.
            assert!(value.abs() < 1e-6, "{value}");
            assert!(star["reference"]["iterations"].as_u64() == Some(300));
        }
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(
            md.contains(if source == "min-over-runs" {
                "smallest φ observed"
            } else {
                "reference run (hg-ms, 300 iterations"
            }),
            "{md}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Bad suites exit with status 2 and `FILE:LINE:` naming the key.
#[test]
fn bad_suite_exits_2_with_file_and_line() {
    let dir = tmpdir("bad");
    for (suite, line, needle) in [
        (
            "seeds = [0]\n[[problems]]\nname = \"circle-center\"\n[[solvers]]\nname = \"aid\"\ntolerence = [1e-3]\n",
            6,
            "tolerence",
        ),
        (
            "[[problems]]\nname = \"circle-center\"\nradius = 1.0\nradiuss = 2\n[[solvers]]\nname = \"aid\"\n",
            4,
            "radiuss",
        ),
        (
            "[[problems]]\nname = \"circle-center\"\n[[solvers]]\nname = \"aid\"\n[solvers.grid]\n\"upper.lrr\" = [1.0]\n",
            6,
            "lrr",
        ),
        (
            "[[problems]]\nname = \"circle-center\"\n[[solvers]]\nname = \"aid\"\n[budget]\nmax_iterations = 3\n",
            6,
            "max_iterations",
        ),
    ] {
        let (o, out) = bench(&dir, suite);
        assert_eq!(o.status.code(), Some(2), "{suite}\n{}", stderr(&o));
        let err = stderr(&o);
        let path = dir.join("suite.toml").display().to_string();
        assert!(
            err.contains(&format!("{path}:{line}:")) && err.contains(needle),
            "expected {path}:{line}: … {needle}, got {err}"
        );
        assert!(!out.exists(), "nothing is written for a bad suite");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// configs/bench-quadratic.toml is valid: it runs with its budget cut to 2 iterations.
#[test]
fn shipped_quadratic_suite_runs() {
    let dir = tmpdir("shipped");
    let text = std::fs::read_to_string(repo().join("configs/bench-quadratic.toml")).unwrap();
    assert!(text.contains("max_iter = 100000"));
    let (o, out) = bench(&dir, &text.replace("max_iter = 100000", "max_iter = 2"));
    ok(&o);
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["suite"], "bench-quadratic");
    // 6 solver entries, AID with 3 step sizes: 8 configurations × 3 seeds.
    assert_eq!(summary["runs"].as_array().unwrap().len(), 24);
    let _ = std::fs::remove_dir_all(&dir);
}
