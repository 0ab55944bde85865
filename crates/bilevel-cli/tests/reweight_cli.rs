//! End-to-end tests of `bilevel reweight`: malformed sources are reported by name with a
//! non-zero exit, and a tiny run on folder sources writes every output and resumes.

mod common;

use common::{bin, invoke, stderr, tmpdir};
use std::path::{Path, PathBuf};

/// Three folder sources of generated text (one per letter range) under `root`.
fn sources(root: &Path) {
    for (k, letters) in ["abcdef", "ghijkl", "mnopqr"].iter().enumerate() {
        let d = root.join(format!("src{k}"));
        std::fs::create_dir_all(&d).unwrap();
        for f in 0..12 {
            let text: String = (0..300)
                .map(|i| letters.as_bytes()[(i * 7 + f * 3 + i / 5) % 6] as char)
                .collect();
            std::fs::write(d.join(format!("{f:02}.txt")), text).unwrap();
        }
    }
}

fn config(root: &Path, methods: &str) -> PathBuf {
    let text = format!(
        r#"seed = 1
methods = {methods}
budget_token_passes = 4000
checkpoint_every = 2
[data]
math_train_examples = 20
val_examples = 10
test_examples = 10
heldout_fraction = 0.1
max_tokens_per_source = 20000
sources = [
  {{ name = "first", dir = "src0" }},
  {{ name = "second", dir = "src1" }},
  {{ name = "third", dir = "src2" }},
  {{ name = "math", corpus = "gsm8k-train" }},
]
[model]
kind = "transformer"
layers = 1
width = 8
heads = 2
context = 8
[warmup]
steps = 2
rows = 4
opt = {{ lr = 1e-2 }}
[settings]
rows_per_source = 2
val_rows = 4
logit_lr = 0.1
lower = {{ lr = 1e-3 }}
hgms = {{ lower_steps = 1, select_steps = 1, select_sigma = 0.5, hypergrad = {{ iterations = 2, shift = 1e-2 }} }}
bome = {{ inner_steps = 1, eta = 0.5 }}
scalebio = {{ alpha = 100.0 }}
doremi = {{ eta = 1.0, smoothing = 1e-3 }}
[grid]
resolution = 1
steps = 2
rows = 4
eval_windows = 4
[final]
steps = 2
rows = 4
opt = {{ lr = 1e-2 }}
seeds = [1]
eval_rows = 32
test_windows = 8
heldout_windows = 8
"#
    );
    let p = root.join("rw.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_sources_are_reported_by_name() {
    let root = tmpdir("bad");
    sources(&root);
    let cfg = config(&root, r#"["uniform"]"#);
    let out = root.join("out");
    let run = || invoke("reweight", &cfg, &out, &[]);

    // A missing source folder.
    std::fs::rename(root.join("src1"), root.join("moved")).unwrap();
    let o = run();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("second") && e.contains("src1"), "{e}");
    std::fs::rename(root.join("moved"), root.join("src1")).unwrap();

    // An empty file.
    std::fs::write(root.join("src2/05.txt"), "").unwrap();
    let o = run();
    let e = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{e}");
    assert!(e.contains("third") && e.contains("05.txt"), "{e}");
    std::fs::write(root.join("src2/05.txt"), "mnopqr").unwrap();

    // Bytes that are not UTF-8.
    std::fs::write(root.join("src0/03.txt"), b"abc\xff\xfedef").unwrap();
    let o = run();
    let e = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{e}");
    assert!(e.contains("first") && e.contains("03.txt"), "{e}");
    assert!(e.contains("UTF-8"), "{e}");

    // An unknown method names the field.
    let cfg2 = config(&root, r#"["uniform", "magic"]"#);
    let o = bin().args(["reweight"]).arg(&cfg2).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("methods[1]"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn tiny_run_writes_every_output_and_resumes() {
    let root = tmpdir("ok");
    sources(&root);
    let cfg = config(
        &root,
        r#"["uniform", "proportional", "hgms", "bome", "grid"]"#,
    );
    let out = root.join("out");
    let o = invoke("reweight", &cfg, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    for m in ["uniform", "proportional", "hgms", "bome", "grid"] {
        assert!(table.contains(&format!("| {m} |")), "{table}");
        assert!(out.join(format!("models/{m}-seed1.safetensors")).exists());
    }
    for f in [
        "results.json",
        "weights.csv",
        "trajectories.csv",
        "weights.svg",
        "tokenizer.json",
        "config.toml",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // Rerunning resumes from the finished checkpoint: same table.
    let o = invoke("reweight", &cfg, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("table.md")).unwrap(),
        table
    );
    let _ = std::fs::remove_dir_all(&root);
}
