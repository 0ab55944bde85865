//! Times a training step (forward + backward) and an HVP of the transformer at a few sizes:
//! `cargo run --release -p bilevel-nn --example step_time`.
use std::time::Instant;

use bilevel_core::rng::Rng;
use bilevel_nn::derivatives::gradient;
use bilevel_nn::lm::mean_loss;
use bilevel_nn::{
    enable_double_backward, hvp, LanguageModel, TokenBatch, Transformer, TransformerConfig,
};
use candle_core::{DType, Device};

fn main() -> bilevel_nn::Result<()> {
    enable_double_backward();
    for (layers, width, heads, context, rows) in [
        (2, 64, 4, 64, 16),
        (2, 64, 4, 32, 16),
        (2, 32, 2, 32, 16),
        (1, 32, 2, 32, 16),
        (2, 128, 4, 128, 16),
    ] {
        let cfg = TransformerConfig {
            vocab: 257,
            layers,
            width,
            heads,
            context,
            mlp_ratio: 4,
        };
        let m = Transformer::new(cfg, 1, DType::F32, &Device::Cpu)?;
        let mut rng = Rng::new(1);
        let w: Vec<Vec<u32>> = (0..rows)
            .map(|_| (0..=context).map(|_| rng.below(257) as u32).collect())
            .collect();
        let r: Vec<&[u32]> = w.iter().map(|x| x.as_slice()).collect();
        let b = TokenBatch::from_windows(&r, &Device::Cpu)?;
        let all = m.params().all();
        let time = |f: &mut dyn FnMut() -> bilevel_nn::Result<()>| -> bilevel_nn::Result<f64> {
            f()?;
            let t = Instant::now();
            for _ in 0..5 {
                f()?;
            }
            Ok(t.elapsed().as_secs_f64() / 5.0)
        };
        let fwd = time(&mut || {
            mean_loss(&m, &b)?;
            Ok(())
        })?;
        let grad = time(&mut || {
            gradient(&mean_loss(&m, &b)?, m.params(), &all)?;
            Ok(())
        })?;
        let v = m.params().values(&all)?;
        let loss = || mean_loss(&m, &b);
        let h = time(&mut || {
            hvp(&loss, m.params(), &all, &v)?;
            Ok(())
        })?;
        let tok = (rows * context) as f64;
        println!("L{layers} d{width} T{context} B{rows}: {} params; forward {:.1} ms ({:.0} tok/s), gradient {:.1} ms ({:.0} tok/s), HVP {:.1} ms ({:.1}× gradient)",
            m.params().numel(), fwd * 1e3, tok / fwd, grad * 1e3, tok / grad, h * 1e3, h / grad);
    }
    Ok(())
}
