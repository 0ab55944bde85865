//! Greedy generation with SmolLM2-135M-Instruct on the CPU:
//!
//! ```text
//! cargo run --release -p bilevel-nn --example smollm2 -- "The capital of France is" [max_new] [--chat]
//! ```
//!
//! Fetches the GGUF into the data cache (`$BILEVEL_DATA_DIR`, …) when absent, loads it in f32,
//! prints the continuation, the prompt (prefill) time and the time per generated token.
//! `--chat` wraps the prompt in the ChatML user/assistant template the model was tuned on.

use std::time::Instant;

use bilevel_nn::bpe::BpeTokenizer;
use bilevel_nn::llama::{fetch_smollm2, read_gguf, Llama};
use bilevel_nn::Tokenize;
use candle_core::{DType, Device};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let chat = args.iter().any(|a| a == "--chat");
    args.retain(|a| a != "--chat");
    let prompt = args
        .first()
        .cloned()
        .unwrap_or_else(|| "The capital of France is".to_string());
    let max_new: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);

    let t0 = Instant::now();
    let path = fetch_smollm2(&bilevel_data::default_cache_dir())?;
    let fetched = t0.elapsed();
    let t0 = Instant::now();
    let (content, mut reader) = read_gguf(&path)?;
    let tok = BpeTokenizer::from_gguf(&content, &path)?;
    let model = Llama::from_gguf_content(&content, &mut reader, &path, DType::F32, &Device::Cpu)?;
    let load = t0.elapsed();
    println!(
        "{} ({:.1} s to find/fetch, {:.2} s to load and dequantise {} parameters)",
        path.display(),
        fetched.as_secs_f64(),
        load.as_secs_f64(),
        bilevel_nn::LanguageModel::params(&model).numel()
    );

    let text = if chat {
        Llama::chat_prompt(&prompt)
    } else {
        prompt.clone()
    };
    let ids = tok.encode(&text);
    let mut stop = vec![tok.eot()];
    stop.extend(tok.eos());
    // Prefill alone (one token generated), then the whole generation.
    let t0 = Instant::now();
    model.generate_tokens(&ids, 1, &stop)?;
    let prefill = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let out = model.generate_tokens(&ids, max_new, &stop)?;
    let total = t0.elapsed().as_secs_f64();
    println!("prompt ({} tokens): {prompt:?}", ids.len());
    println!("generated ({} tokens): {:?}", out.len(), tok.decode(&out));
    let per = if out.len() > 1 {
        (total - prefill) / (out.len() - 1) as f64
    } else {
        f64::NAN
    };
    println!(
        "prefill + first token {:.3} s; {:.1} ms per further token ({:.1} tokens/s); threads: RAYON_NUM_THREADS={}",
        prefill,
        1e3 * per,
        1.0 / per,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    Ok(())
}
