//! The whole protocol on synthetic sources with a tiny model: every method runs, the
//! outputs are written, HG-MS moves weight toward the source the target resembles, and an
//! interrupted run resumes to the same final weights and losses as an uninterrupted one.

use std::path::PathBuf;

use bilevel_core::rng::Rng;
use bilevel_mixture::data::SourceDocuments;
use bilevel_mixture::experiment::{run, ExperimentConfig, NoProgress, RunOptions};
use bilevel_mixture::{MixtureData, MixtureError};
use bilevel_nn::{enable_double_backward, ByteTokenizer};

/// Text from a source-specific alphabet: source k uses letters `k*6 .. k*6+6`, in runs.
fn docs(k: usize, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            (0..120)
                .map(|_| (b'a' + (k * 6) as u8 + rng.below(6) as u8) as char)
                .collect()
        })
        .collect()
}

fn data() -> MixtureData {
    let sources: Vec<SourceDocuments> = (0..3)
        .map(|k| SourceDocuments {
            name: format!("s{k}"),
            documents: docs(k, 20, k as u64),
        })
        .collect();
    // The target resembles source 1.
    MixtureData::build(
        &ByteTokenizer,
        &sources,
        &docs(1, 6, 50),
        &docs(1, 6, 51),
        0.1,
        100_000,
        8,
    )
    .unwrap()
}

fn config() -> ExperimentConfig {
    let text = r#"{
      "seed": 3,
      "dtype": "f32",
      "data": {"sources": [{"name": "s0", "corpus": "x"}, {"name": "s1", "corpus": "y"}, {"name": "s2", "corpus": "z"}],
               "math_train_examples": 0, "val_examples": 0, "test_examples": 0,
               "heldout_fraction": 0.1, "max_tokens_per_source": 100000},
      "model": {"kind": "transformer", "layers": 1, "width": 16, "heads": 2, "context": 8},
      "warmup": {"steps": 20, "rows": 8, "opt": {"lr": 0.01}},
      "methods": ["uniform", "proportional", "doremi", "scalebio", "bome", "hgms", "grid"],
      "budget_token_passes": 9000,
      "settings": {
        "rows_per_source": 4, "val_rows": 8, "lower": {"lr": 0.003}, "logit_lr": 0.2,
        "hgms": {"lower_steps": 1, "select_steps": 1, "select_sigma": 0.5,
                 "hypergrad": {"iterations": 4, "shift": 0.01}},
        "bome": {"inner_steps": 2, "eta": 0.5},
        "scalebio": {"alpha": 100.0},
        "doremi": {"eta": 1.0, "smoothing": 0.001}
      },
      "grid": {"resolution": 1, "steps": 5, "rows": 8, "eval_windows": 8},
      "final": {"steps": 10, "rows": 8, "opt": {"lr": 0.01}, "seeds": [1, 2], "eval_rows": 16,
                "test_windows": 0, "heldout_windows": 0},
      "checkpoint_every": 2
    }"#;
    serde_json::from_str(text).unwrap()
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bilevel-mixture-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn protocol_runs_every_method_and_resumes_to_the_same_weights() {
    enable_double_backward();
    let data = data();
    let cfg = config();
    let a = dir("a");
    let ra = run(
        &cfg,
        &data,
        RunOptions {
            out_dir: &a,
            halt_after_steps: None,
            progress: &mut NoProgress,
        },
    )
    .unwrap();
    assert_eq!(ra.methods.len(), 7);
    assert_eq!(ra.finals.len(), 14);
    for m in &ra.methods {
        assert!(
            (m.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9,
            "{}",
            m.method
        );
        if !["uniform", "proportional", "grid"].contains(&m.method.as_str()) {
            assert!(m.budget.used >= cfg.budget_token_passes, "{}", m.method);
            assert!(
                m.budget.used < cfg.budget_token_passes * 2,
                "{} overshoots",
                m.method
            );
        }
    }
    let hgms = ra.methods.iter().find(|m| m.method == "hgms").unwrap();
    assert!(
        hgms.weights[1] > 1.0 / 3.0,
        "HG-MS should up-weight the source the target resembles: {:?}",
        hgms.weights
    );
    let grid = ra.methods.iter().find(|m| m.method == "grid").unwrap();
    assert_eq!(
        grid.weights,
        vec![0.0, 1.0, 0.0],
        "the grid's best vertex is source 1"
    );
    ra.write(&a).unwrap();
    for f in [
        "results.json",
        "table.md",
        "weights.csv",
        "trajectories.csv",
        "models/hgms-seed1.safetensors",
    ] {
        assert!(a.join(f).exists(), "{f} missing");
    }
    assert!(ra.table().contains("| hgms |"));

    // Interrupted after 3 method steps, then resumed in the same folder.
    let b = dir("b");
    let halted = run(
        &cfg,
        &data,
        RunOptions {
            out_dir: &b,
            halt_after_steps: Some(3),
            progress: &mut NoProgress,
        },
    );
    assert!(
        matches!(halted, Err(MixtureError::Interrupted)),
        "{halted:?}"
    );
    let rb = run(
        &cfg,
        &data,
        RunOptions {
            out_dir: &b,
            halt_after_steps: None,
            progress: &mut NoProgress,
        },
    )
    .unwrap();
    for (x, y) in ra.methods.iter().zip(&rb.methods) {
        assert_eq!(x.method, y.method);
        assert_eq!(x.weights, y.weights, "{}: resumed weights differ", x.method);
        assert_eq!(x.budget, y.budget);
    }
    for (x, y) in ra.finals.iter().zip(&rb.finals) {
        assert_eq!(x.test, y.test, "{} seed {}", x.method, x.seed);
    }

    // A different configuration refuses the old checkpoint.
    let mut other = cfg.clone();
    other.seed = 4;
    let err = run(
        &other,
        &data,
        RunOptions {
            out_dir: &b,
            halt_after_steps: None,
            progress: &mut NoProgress,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("different configuration"), "{err}");
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

/// The pretrained path on CPU with a few steps: a tiny random Llama GGUF (vocabulary 257, so
/// the byte tokenizer fits), last block fine-tuned, HG-MS and BOME reweighting, one final
/// fine-tuning run; frozen parameters stay exactly as loaded.
#[test]
fn pretrained_gguf_model_reweights_with_a_trainable_subset() {
    use bilevel_nn::llama::{write_random_gguf, LlamaConfig};
    enable_double_backward();
    let d = dir("gguf");
    let gguf = d.join("tiny.gguf");
    let lc = LlamaConfig {
        vocab: 257,
        layers: 2,
        width: 16,
        heads: 2,
        kv_heads: 1,
        head_dim: 8,
        ffn: 32,
        rope_theta: 10000.0,
        rms_eps: 1e-5,
        context: 16,
        tied: true,
    };
    write_random_gguf(&gguf, &lc, 5).unwrap();
    let mut cfg = config();
    cfg.model = serde_json::from_value(serde_json::json!({
        "kind": "pretrained", "gguf": gguf.display().to_string(), "train_blocks": 1, "context": 8
    }))
    .unwrap();
    cfg.methods = vec!["uniform".into(), "hgms".into(), "bome".into()];
    cfg.warmup.steps = 2;
    cfg.budget_token_passes = 3000;
    cfg.final_training.steps = 2;
    cfg.final_training.seeds = vec![1];
    let data = data();
    let r = run(
        &cfg,
        &data,
        RunOptions {
            out_dir: &d,
            halt_after_steps: None,
            progress: &mut NoProgress,
        },
    )
    .unwrap();
    assert_eq!(r.methods.len(), 3);
    assert_eq!(r.finals.len(), 3);
    assert!(r.finals.iter().all(|f| f.test.nats_per_token.is_finite()));
    // The embedding is frozen: the saved final model still holds the loaded table.
    let loaded = cfg
        .model
        .build(257, 0, candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    let trained = cfg
        .model
        .build(257, 0, candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    trained
        .params()
        .load_safetensors(&d.join(&r.finals[1].model_file))
        .unwrap();
    let sel = loaded.trainable();
    assert!(!sel.is_empty() && sel.len() < loaded.params().len());
    let (mut same, mut moved) = (0, 0);
    for i in 0..loaded.params().len() {
        let a = loaded.params().values(&[i]).unwrap().to_f64_vec().unwrap();
        let b = trained.params().values(&[i]).unwrap().to_f64_vec().unwrap();
        if sel.contains(&i) {
            moved += usize::from(a != b);
        } else {
            assert_eq!(
                a,
                b,
                "frozen parameter {} changed",
                loaded.params().names()[i]
            );
            same += 1;
        }
    }
    assert!(same > 0 && moved > 0, "same {same}, moved {moved}");
    let _ = std::fs::remove_dir_all(&d);
}
