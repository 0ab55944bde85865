//! The Llama implementation and the BPE tokenizer on SmolLM2-135M-Instruct (CPU).
//!
//! The model tests run only when the GGUF is in the data cache (`fetch_smollm2`, e.g. via
//! `cargo run --release -p bilevel-nn --example smollm2`); otherwise they print why and pass
//! (CI has an empty cache and must not download 98 MB). The tiny random-model HVP test always
//! runs. Model tests hold a lock so they run one at a time (memory, two cores).

use std::sync::Mutex;
use std::time::Instant;

use bilevel_core::Vector;
use bilevel_nn::bpe::BpeTokenizer;
use bilevel_nn::derivatives::value_and_gradient;
use bilevel_nn::llama::{read_gguf, smollm2_path, write_random_gguf, Llama, LlamaConfig};
use bilevel_nn::lm::mean_loss;
use bilevel_nn::{
    enable_double_backward, hvp, hvp_fd, AdamW, AdamWConfig, LanguageModel, ParamVec, TokenBatch,
    Tokenize,
};
use candle_core::{DType, Device};

#[path = "support/hf_bpe.rs"]
mod hf_bpe;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The model and tokenizer in `dtype`, or `None` (with a message) when not fetched.
fn load(dtype: DType) -> Option<(Llama, BpeTokenizer)> {
    let cache = bilevel_data::default_cache_dir();
    let Some(path) = smollm2_path(&cache) else {
        println!(
            "SKIPPED: SmolLM2 GGUF not in {}/smollm2/ (run `cargo run --release -p bilevel-nn --example smollm2` to fetch it)",
            cache.display()
        );
        return None;
    };
    let t0 = Instant::now();
    let (content, mut reader) = read_gguf(&path).unwrap();
    let tok = BpeTokenizer::from_gguf(&content, &path).unwrap();
    let model =
        Llama::from_gguf_content(&content, &mut reader, &path, dtype, &Device::Cpu).unwrap();
    println!("loaded {dtype:?} in {:.2} s", t0.elapsed().as_secs_f64());
    Some((model, tok))
}

fn random_direction(like: &ParamVec, seed: u64) -> ParamVec {
    like.randn_like(seed)
}

fn rel(a: &ParamVec, b: &ParamVec) -> f64 {
    a.relative_error(b)
}

/// One window of the first `len + 1` tokens of an English paragraph.
fn window(tok: &BpeTokenizer, len: usize) -> TokenBatch {
    let text = "The quick brown fox jumps over the lazy dog. Paris is the capital and most \
                populous city of France, with an estimated population of two million residents.";
    let ids = tok.encode(text);
    assert!(ids.len() > len, "{} tokens", ids.len());
    TokenBatch::from_windows(&[&ids[..=len]], &Device::Cpu).unwrap()
}

#[test]
fn tiny_llama_exact_hvp_matches_finite_differences() {
    enable_double_backward();
    let _g = serial();
    let cfg = LlamaConfig {
        vocab: 13,
        layers: 3,
        width: 12,
        heads: 6,
        kv_heads: 2,
        head_dim: 2,
        ffn: 20,
        rope_theta: 10_000.0,
        rms_eps: 1.0 / 65536.0,
        context: 12,
        tied: true,
    };
    let dir = std::env::temp_dir().join(format!("bilevel-nn-smollm2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf");
    write_random_gguf(&path, &cfg, 3).unwrap();
    let m = Llama::from_gguf(&path, DType::F64, &Device::Cpu).unwrap();
    let w: Vec<u32> = vec![3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
    let batch = TokenBatch::from_windows(&[&w[..9], &w[2..]], &Device::Cpu).unwrap();
    let loss = || mean_loss(&m, &batch);
    for (what, sel) in [
        (
            "last block",
            m.params().select_prefixes(&m.last_blocks_prefixes(1)),
        ),
        ("all", m.params().all()),
    ] {
        m.train_only(&sel);
        let v = random_direction(&m.params().values(&sel).unwrap(), 11);
        let exact = hvp(&loss, m.params(), &sel, &v).unwrap();
        let fd = hvp_fd(&loss, m.params(), &sel, &v, 1e-5).unwrap();
        let r = rel(&exact, &fd);
        println!("tiny Llama, {what}: exact vs central differences {r:.2e}");
        assert!(r < 1e-6, "{what}: {r}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn smollm2_tokenizes_and_generates() {
    let _g = serial();
    let Some((model, tok)) = load(DType::F32) else {
        return;
    };
    let cfg = model.config();
    assert_eq!(
        (cfg.vocab, cfg.layers, cfg.width, cfg.heads, cfg.kv_heads),
        (49152, 30, 576, 9, 3)
    );
    assert!(cfg.tied);
    assert_eq!(Tokenize::vocab(&tok), 49152);
    assert_eq!(tok.token(tok.eot()), Some("<|endoftext|>"));
    // Reference ids from Hugging Face `tokenizers` with SmolLM2's pre-tokenizer
    // (Digits(individual) + ByteLevel) on the same vocabulary and merges.
    let reference: [(&str, &[u32]); 5] = [
        ("Hello world", &[19556, 905]),
        ("The capital of France is", &[504, 3575, 282, 4649, 314]),
        (
            "I'm sure they'll say we've it's I'd",
            &[
                57, 5248, 2090, 502, 3060, 1643, 392, 3543, 357, 506, 339, 6737,
            ],
        ),
        (
            "numbers 12345 and 3.14159, 1,000,000!",
            &[
                28707, 216, 33, 34, 35, 36, 37, 284, 216, 35, 30, 33, 36, 33, 37, 41, 28, 216, 33,
                28, 32, 32, 32, 28, 32, 32, 32, 17,
            ],
        ),
        (
            "<|im_start|>user\nHi<|im_end|>\n",
            &[1, 4093, 198, 26843, 2, 198],
        ),
    ];
    for (s, ids) in reference {
        assert_eq!(tok.encode(s), ids, "{s:?}");
    }
    for s in [
        "naïve café — ½ 日本語のテキスト 😀 emoji",
        "  spaces\t\ttabs\n\n\nnew lines  ",
        "Ελληνικά, русский, e\u{301}, ﬁ, Ⅻ ²³",
    ] {
        assert_eq!(tok.decode(&tok.encode(s)), s);
    }

    // A sane language model: low loss on ordinary English.
    let batch = window(&tok, 24);
    let l = mean_loss(&model, &batch)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    println!("mean loss on an English sentence: {l:.3} nats/token");
    assert!(l < 4.0, "{l}");

    let t0 = Instant::now();
    let out = model
        .generate(&tok, "The capital of France is", 20)
        .unwrap();
    let dt = t0.elapsed().as_secs_f64();
    println!("generated in {dt:.2} s: {out:?}");
    assert!(!out.trim().is_empty());
    let ascii = out.chars().filter(|c| c.is_ascii()).count();
    assert!(ascii * 10 >= out.chars().count() * 9, "{out:?}");
    let ids = tok.encode(&out);
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert!(ids.len() < 4 || distinct.len() >= 3, "{out:?}");
    assert!(out.contains("Paris"), "{out:?}");
}

/// The hand-written BPE gives the ids and the text of Hugging Face `tokenizers` built from the
/// same GGUF metadata (`support/hf_bpe.rs`) on GSM8K's test split, hard cases and every Unicode
/// scalar (see `examples/bpe_vs_tokenizers.rs` for the larger comparison and the timings).
#[test]
fn smollm2_bpe_matches_tokenizers() {
    let cache = bilevel_data::default_cache_dir();
    let Some(path) = smollm2_path(&cache) else {
        println!("SKIPPED: SmolLM2 GGUF not in {}/smollm2/", cache.display());
        return;
    };
    let (content, _) = read_gguf(&path).unwrap();
    let ours = BpeTokenizer::from_gguf(&content, &path).unwrap();
    let hf = hf_bpe::hf_from_gguf(&content).unwrap();
    let gsm8k = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/gsm8k/test.jsonl");
    let mut texts: Vec<String> = std::fs::read_to_string(gsm8k)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}\n{}",
                v["question"].as_str().unwrap(),
                v["answer"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(texts.len(), 1319);
    texts.extend(hf_bpe::hard_cases());
    texts.extend(hf_bpe::all_chars());
    let t0 = Instant::now();
    for t in &texts {
        let ids = ours.encode(t);
        let want = hf.encode_fast(t.as_str(), false).unwrap();
        assert_eq!(ids, want.get_ids(), "{t:?}");
        assert_eq!(ours.decode(&ids), hf.decode(&ids, false).unwrap(), "{t:?}");
    }
    println!(
        "{} texts identical in {:.2} s",
        texts.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn smollm2_last_block_adamw_lowers_the_loss() {
    let _g = serial();
    let Some((model, tok)) = load(DType::F32) else {
        return;
    };
    let p = model.params();
    let sel = p.select_prefixes(&model.last_blocks_prefixes(1));
    assert_eq!(sel.len(), 10);
    model.train_only(&sel);
    let batch = window(&tok, 16);
    let loss = || mean_loss(&model, &batch);
    let mut opt = AdamW::new(AdamWConfig::with_lr(1e-4), p, &sel).unwrap();
    let mut losses = Vec::new();
    for step in 0..3 {
        let t0 = Instant::now();
        let (l, g) = value_and_gradient(&loss, p, &sel).unwrap();
        let gn = opt.step(p, &g, 1.0).unwrap();
        println!(
            "step {step}: loss {l:.4}, |g| {gn:.3}, {:.3} s (forward + backward + AdamW, {} parameters)",
            t0.elapsed().as_secs_f64(),
            p.numel_of(&sel)
        );
        losses.push(l);
    }
    let last = mean_loss(&model, &batch)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    println!("losses {losses:?} → {last:.4}");
    assert!(last < losses[0] - 0.01, "{losses:?} → {last}");
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
}

#[test]
fn smollm2_exact_hvp_on_the_last_block_matches_finite_differences() {
    enable_double_backward();
    let _g = serial();
    let Some((model, tok)) = load(DType::F64) else {
        return;
    };
    let p = model.params();
    let sel = p.select_prefixes(&model.last_blocks_prefixes(1));
    model.train_only(&sel);
    let batch = window(&tok, 8);
    let loss = || mean_loss(&model, &batch);
    let v = random_direction(&p.values(&sel).unwrap(), 5);
    let t0 = Instant::now();
    let exact = hvp(&loss, p, &sel, &v).unwrap();
    let t_exact = t0.elapsed().as_secs_f64();
    // The first call touches fresh memory; the second shows the steady-state cost.
    let t0 = Instant::now();
    let again = hvp(&loss, p, &sel, &v).unwrap();
    let t_again = t0.elapsed().as_secs_f64();
    assert!(rel(&again, &exact) < 1e-12);
    let t0 = Instant::now();
    let fd = hvp_fd(&loss, p, &sel, &v, 1e-5).unwrap();
    let t_fd = t0.elapsed().as_secs_f64();
    let r = rel(&exact, &fd);
    println!(
        "HVP on {} parameters (f64, T = 8): exact {t_exact:.2} s (again {t_again:.2} s), central differences {t_fd:.2} s, relative difference {r:.2e}, |Hv| {:.3e}",
        p.numel_of(&sel),
        fd.norm()
    );
    assert!(exact.is_finite() && fd.norm() > 0.0);
    assert!(r < 1e-6, "{r}");
}
