//! End-to-end tests of the `bilevel` binary: JSON contract, reference values, bad input,
//! divergence, determinism and resume.

mod common;

use common::{bin, invoke, read_json, repo, stderr, tmpdir, write};
use std::path::{Path, PathBuf};
use std::process::Output;

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn vec(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `bilevel hypergrad --json` reproduces every §A closed form (and the printed reference values)
/// to 1e-6, with the documented keys.
#[test]
fn hypergrad_json_matches_references_for_every_problem() {
    for cfg in [
        "demo-hgms",
        "circle-center",
        "circle-radius",
        "affine",
        "sphere",
        "circle-tie",
        "circle-sine",
        "holder",
    ] {
        let path = repo().join(format!("configs/{cfg}.toml"));
        let o = bin()
            .arg("hypergrad")
            .arg(&path)
            .arg("--json")
            .output()
            .unwrap();
        let v = json(&o);
        for key in [
            "x",
            "y",
            "hypergradient",
            "reference",
            "finite_difference",
            "diagnostics",
        ] {
            assert!(v.get(key).is_some(), "{cfg}: missing {key}");
        }
        for key in [
            "krylov_iterations",
            "relative_residual",
            "kernel_component",
            "intrinsic_dimension",
        ] {
            assert!(
                v["diagnostics"].get(key).is_some(),
                "{cfg}: missing diagnostics.{key}"
            );
        }
        let h = vec(&v["hypergradient"]);
        let r = vec(&v["reference"]);
        let fd = vec(&v["finite_difference"]);
        let err = v["relative_error"].as_f64().unwrap();
        assert!(err <= 1e-6, "{cfg}: relative error {err}");
        // Central differences of φ (step 1e-6) agree with the closed form to ~1e-8.
        for (a, b) in fd.iter().zip(&r) {
            assert!(
                (a - b).abs() < 1e-6 * (1.0 + b.abs()),
                "{cfg}: fd {fd:?} vs {r:?}"
            );
        }
        if cfg == "circle-center" || cfg == "demo-hgms" {
            assert!((h[0] - 0.47454821).abs() < 1e-8 && (h[1] - 0.33497520).abs() < 1e-8);
        }
        if cfg == "circle-radius" {
            assert!((h[0] + 1.57528379).abs() < 1e-8);
        }
        if cfg == "affine" {
            assert_eq!(v["diagnostics"]["intrinsic_dimension"], 150);
        }
    }
}

/// The wrong-selection example through the CLI: AID's kernel component is large, HG-MS's is ~0.
#[test]
fn hypergrad_flags_wrong_selection() {
    let aid = json(
        &bin()
            .args(["hypergrad", "--json"])
            .arg(repo().join("configs/demo-aid.toml"))
            .output()
            .unwrap(),
    );
    assert!(aid["relative_error"].as_f64().unwrap() > 0.5);
    assert!(
        aid["diagnostics"]["kernel_component_relative"]
            .as_f64()
            .unwrap()
            > 1e-2
    );
    let hg = json(
        &bin()
            .args(["hypergrad", "--json"])
            .arg(repo().join("configs/demo-hgms.toml"))
            .output()
            .unwrap(),
    );
    assert!(hg["relative_error"].as_f64().unwrap() < 1e-6);
    assert!(hg["diagnostics"]["kernel_component"].as_f64().unwrap() < 1e-8);
}

/// Bad configurations exit with status 2 and a message naming the file, line and field.
#[test]
fn bad_configs_are_rejected_with_the_field_named() {
    let dir = tmpdir("bad");
    let cases = [
        (
            "unknown-problem.toml",
            "[problem]\nname = \"no-such-problem\"\n",
            "no-such-problem",
        ),
        (
            "unknown-key.toml",
            "[problem]\nname = \"circle-center\"\nradiuss = 2.0\n",
            "unknown-key.toml:3: unknown field `radiuss`",
        ),
        (
            "wrong-length.toml",
            "[problem]\nname = \"circle-center\"\nb = [1.0, 2.0, 3.0]\n",
            "problem.b: expected 2 entries, got 3",
        ),
        (
            "negative-step.toml",
            "[solver]\nname = \"hg-ms\"\nlower_lr = -0.5\n",
            "negative-step.toml:3: solver.lower_lr: must be \"auto\" or a positive number",
        ),
        (
            "negative-upper.toml",
            "[solver]\nname = \"aid\"\n[solver.upper]\nlr = -1.0\n",
            "solver.upper.lr",
        ),
        (
            "wrong-type.toml",
            "[budget]\nmax_iter = \"many\"\n",
            "wrong-type.toml:2: budget.max_iter: invalid type",
        ),
        ("not-toml.toml", "[problem\nname = 3\n", "not-toml.toml:1"),
    ];
    for (file, text, expected) in cases {
        let path = write(&dir, file, text);
        for cmd in ["run", "hypergrad"] {
            let o = bin().arg(cmd).arg(&path).arg("--json").output().unwrap();
            let o = if cmd == "run" {
                bin()
                    .arg(cmd)
                    .arg(&path)
                    .arg("--out")
                    .arg(dir.join("o"))
                    .output()
                    .unwrap()
            } else {
                o
            };
            assert_eq!(o.status.code(), Some(2), "{file} ({cmd}): {}", stderr(&o));
            assert!(
                stderr(&o).contains(expected),
                "{file} ({cmd}): {}",
                stderr(&o)
            );
        }
    }
    let o = bin().args(["run", "/no/such/file.toml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/file.toml"));
}

/// A run that produces NaN stops with status 1, names the iteration and quantity, and leaves a
/// readable trace and a summary saying what happened.
#[test]
fn divergence_keeps_a_readable_trace() {
    let dir = tmpdir("nan");
    let cfg = write(
        &dir,
        "nan.toml",
        "[problem]\nname = \"circle-radius\"\n[solver]\nname = \"hg-ms\"\n[solver.upper]\nlr = 5.0\n[budget]\nmax_iter = 10\n",
    );
    let out = dir.join("out");
    let o = invoke("run", &cfg, &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    // φ is unbounded below and the upper step is large: x runs away until g overflows. The
    // message names the iteration, the quantity and the upper step's jump.
    let it: usize = err
        .split("iteration ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        it >= 1 && err.contains("not finite") && err.contains("upper step"),
        "{err}"
    );
    let trace = std::fs::read_to_string(out.join("trace.jsonl")).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), it);
    for (t, l) in lines.iter().enumerate() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(r["iteration"], t);
    }
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["status"], "failed");
    assert!(summary["error"]
        .as_str()
        .unwrap()
        .contains(&format!("iteration {it}")));
}

fn trace_without_time(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("time_s");
            v
        })
        .collect()
}

/// Same config and seed: byte-identical traces apart from the wall-time field.
#[test]
fn same_seed_same_trace() {
    let dir = tmpdir("det");
    let cfg = repo().join("configs/circle-tie.toml"); // multistart: random starts from the seed
    for run in ["a", "b"] {
        let o = invoke("run", &cfg, &dir.join(run), &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let strip = |p: PathBuf| -> String {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                // Remove `"time_s":<number>,` textually so the comparison is on bytes.
                let start = l.find("\"time_s\":").unwrap();
                let end = start + l[start..].find(',').unwrap() + 1;
                format!("{}{}\n", &l[..start], &l[end..])
            })
            .collect()
    };
    let a = strip(dir.join("a/trace.jsonl"));
    let b = strip(dir.join("b/trace.jsonl"));
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

/// A run stopped at a checkpoint and resumed gives the same trace as an uninterrupted run.
#[test]
fn resume_from_checkpoint_matches_uninterrupted_run() {
    let dir = tmpdir("resume");
    let base = "[problem]\nname = \"circle-center\"\n\n[solver]\nname = \"hg-ms\"\n[solver.upper]\nmethod = \"adam\"\nlr = 0.05\n\n[output]\ncheckpoint_every = 10\n";
    let short = write(
        &dir,
        "short.toml",
        &format!("{base}[budget]\nmax_iter = 20\n"),
    );
    let long = write(
        &dir,
        "long.toml",
        &format!("{base}[budget]\nmax_iter = 40\n"),
    );
    let run = |cfg: &Path, out: &Path, resume: bool| {
        let o = invoke("run", cfg, out, if resume { &["--resume"] } else { &[] });
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&short, &dir.join("resumed"), false);
    run(&long, &dir.join("resumed"), true);
    run(&long, &dir.join("straight"), false);
    let a = trace_without_time(&dir.join("resumed/trace.jsonl"));
    let b = trace_without_time(&dir.join("straight/trace.jsonl"));
    assert_eq!(a.len(), 40);
    assert_eq!(b.len(), 40);
    for (ra, rb) in a.iter().zip(&b) {
        for (k, va) in ra.as_object().unwrap() {
            assert_eq!(
                Some(va),
                rb.get(k),
                "iteration {}: field {k}",
                ra["iteration"]
            );
        }
    }
}

/// `bilevel demo` prints the comparison table and writes its outputs; `list` names everything.
#[test]
fn demo_and_list() {
    let dir = tmpdir("demo");
    let o = bin().arg("demo").arg("--out").arg(&dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("| hg-ms") && out.contains("| aid"), "{out}");
    for f in [
        "hg-ms/trace.jsonl",
        "hg-ms/summary.json",
        "hg-ms/plot.svg",
        "aid/trace.jsonl",
        "comparison.svg",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let svg = std::fs::read_to_string(dir.join("comparison.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    let o = bin().arg("list").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for name in [
        "circle-center",
        "circle-radius",
        "affine",
        "sphere",
        "circle-tie",
        "circle-sine",
        "holder",
        "hg-ms",
        "aid",
    ] {
        assert!(out.contains(name), "list lacks {name}");
    }
}

/// The full configuration shown in the README's Configuration section parses and runs (keeps the
/// README true).
#[test]
fn readme_config_example_is_valid() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme.find("## Configuration (TOML)").unwrap();
    let start = section + readme[section..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tmpdir("readme");
    let cfg = write(&dir, "readme.toml", &readme[start..end]);
    let v = json(
        &bin()
            .arg("hypergrad")
            .arg(&cfg)
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert!(v["relative_error"].as_f64().unwrap() < 1e-6);
}

/// `bilevel compare`: every solver × seed runs under the budget; the table, data and plot are
/// written, HG-MS reaches the tolerances on the far-side circle-center instance and AID does not
/// reach the tightest one; bad entries are rejected by name.
#[test]
fn compare_runs_every_solver_and_writes_table_and_plot() {
    let dir = tmpdir("compare");
    let o = invoke(
        "compare",
        &repo().join("configs/compare-circle.toml"),
        &dir,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert!(
        table.contains("| hg-ms |")
            && table.contains("| aid-cg |")
            && table.contains("| aid-neumann |")
    );
    let data = read_json(&dir.join("compare.json"));
    let runs = data["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let hg = runs.iter().find(|r| r["solver"] == "hg-ms").unwrap();
    assert!(hg["cost_to_tol"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.is_number()));
    let aid = runs.iter().find(|r| r["solver"] == "aid-cg").unwrap();
    assert!(aid["cost_to_tol"][3].is_null(), "{aid}");
    for r in runs {
        assert!(r["total_cost"].as_f64().unwrap() <= 20000.0 + 2000.0);
    }
    assert!(std::fs::read_to_string(dir.join("compare.svg"))
        .unwrap()
        .contains("polyline"));
    let bad = write(
        &dir,
        "bad.toml",
        "[budget]\nmax_iter = 3\n[[solvers]]\nname = \"hg-ms\"\nlower_lr = -1.0\n",
    );
    let o = bin().arg("compare").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.toml:5: solvers[0]: solver.lower_lr"),
        "{}",
        stderr(&o)
    );
    let bad = write(
        &dir,
        "bad-budget.toml",
        "[budget]\nmax_time_s = -1.0\n[[solvers]]\nname = \"aid\"\n",
    );
    let o = bin().arg("compare").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("bad-budget.toml:2: budget.max_time_s: must be positive"),
        "{err}"
    );
    assert_eq!(err.matches("budget.max_time_s").count(), 1, "{err}");
}

/// A user's own CSV, named by a path relative to the config file, from another working
/// directory; `--export` writes the arrays the oracles use, and they are the CSV's rows.
#[test]
fn own_csv_relative_to_the_config_and_export() {
    let dir = tmpdir("own-csv");
    let mut csv = String::new();
    let mut s = 12345u64;
    for i in 0..60 {
        let mut row = Vec::new();
        for _ in 0..3 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            row.push(format!(
                "{:.4}",
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            ));
        }
        csv.push_str(&format!("{},{}\n", row.join(","), i % 2));
    }
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write(&dir.join("data"), "mine.csv", &csv);
    let cfg = write(
        &dir,
        "own.toml",
        "[problem]\nname = \"regsel-logistic\"\ntrain = 30\nvalidation = 15\ntest = 15\n\
         standardize = \"none\"\nintercept = false\n[problem.data]\nformat = \"csv\"\n\
         path = \"data/mine.csv\"\n[solver]\nname = \"implicit\"\n",
    );
    let export = dir.join("export");
    let o = bin()
        .current_dir(std::env::temp_dir())
        .args(["hypergrad", cfg.to_str().unwrap(), "--json", "--export"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = json(&o);
    assert!(out["relative_error"].as_f64().unwrap() < 1e-8, "{out}");
    for name in [
        "train_features",
        "validation_features",
        "x",
        "y0",
        "y",
        "hypergradient",
    ] {
        let b = std::fs::read(export.join(format!("{name}.npy"))).unwrap();
        assert_eq!(&b[..6], b"\x93NUMPY", "{name}");
    }
    // 30 training rows × 3 features of 8 bytes after the 64-byte-aligned header.
    let b = std::fs::read(export.join("train_features.npy")).unwrap();
    assert_eq!(b.len() % 64, (30 * 3 * 8) % 64);
    assert!(std::str::from_utf8(&b[10..80]).unwrap().contains("(30, 3)"));
    let _ = std::fs::remove_dir_all(&dir);
}
