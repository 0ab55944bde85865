//! Exact double-backward HVPs against central finite differences of the gradient, in f64.
//!
//! Central differences with step h have truncation error O(h²‖∇³L‖) and rounding error
//! O(ε_mach‖∇L‖/h); at h = 1e-5 both are ≈ 1e-10 relative, so a 1e-6 tolerance (the issue's
//! acceptance bar) has four digits of margin while any wrong term (a missing second-order
//! path through attention, layer norm or the loss) shows up as an O(1) error.

use bilevel_core::rng::Rng;
use bilevel_core::Vector;
use bilevel_nn::lm::{mean_loss, weighted_loss};
use bilevel_nn::{
    enable_double_backward, hvp, hvp_fd, LanguageModel, MlpLm, MlpLmConfig, ParamVec, TokenBatch,
    Transformer, TransformerConfig,
};
use candle_core::{DType, Device, Tensor};

fn batch(vocab: u32, rows: usize, len: usize, seed: u64) -> TokenBatch {
    let mut rng = Rng::new(seed);
    let w: Vec<Vec<u32>> = (0..rows)
        .map(|_| (0..=len).map(|_| rng.below(vocab as u64) as u32).collect())
        .collect();
    let refs: Vec<&[u32]> = w.iter().map(|x| x.as_slice()).collect();
    TokenBatch::from_windows(&refs, &Device::Cpu).unwrap()
}

fn random_direction(like: &ParamVec, seed: u64) -> ParamVec {
    like.randn_like(seed)
}

fn rel(a: &ParamVec, b: &ParamVec) -> f64 {
    a.relative_error(b)
}

fn tiny_transformer() -> Transformer {
    let cfg = TransformerConfig {
        vocab: 13,
        layers: 2,
        width: 8,
        heads: 2,
        context: 6,
        mlp_ratio: 2,
    };
    Transformer::new(cfg, 7, DType::F64, &Device::Cpu).unwrap()
}

/// Moves the parameters off the symmetric initialisation (zero biases, unit gains) so every
/// second-order term is exercised.
fn perturb(model: &dyn LanguageModel, seed: u64) {
    let p = model.params();
    let all = p.all();
    let d = random_direction(&p.values(&all).unwrap(), seed);
    p.add_scaled(&all, 0.05, &d).unwrap();
}

#[test]
fn transformer_hvp_matches_central_differences_f64() {
    enable_double_backward();
    let model = tiny_transformer();
    perturb(&model, 11);
    let b = batch(13, 3, 6, 1);
    let loss = || mean_loss(&model, &b);
    let p = model.params();
    let all = p.all();
    for seed in [2, 3] {
        let v = random_direction(&p.values(&all).unwrap(), seed);
        let exact = hvp(&loss, p, &all, &v).unwrap();
        let fd = hvp_fd(&loss, p, &all, &v, 1e-5).unwrap();
        let e = rel(&exact, &fd);
        eprintln!("transformer HVP vs central differences: relative error {e:.2e}");
        assert!(e < 1e-6, "relative error {e:.3e}");
        assert!(
            exact.norm() > 1e-3,
            "HVP is suspiciously small: {}",
            exact.norm()
        );
    }
}

#[test]
fn transformer_hvp_is_symmetric_and_subset_is_the_principal_block() {
    enable_double_backward();
    let model = tiny_transformer();
    perturb(&model, 12);
    let b = batch(13, 2, 5, 4);
    let loss = || mean_loss(&model, &b);
    let p = model.params();
    let all = p.all();
    let u = random_direction(&p.values(&all).unwrap(), 5);
    let v = random_direction(&p.values(&all).unwrap(), 6);
    let hu = hvp(&loss, p, &all, &u).unwrap();
    let hv = hvp(&loss, p, &all, &v).unwrap();
    let (a, c) = (u.dot(&hv), hu.dot(&v));
    assert!((a - c).abs() <= 1e-10 * a.abs().max(1.0), "{a} vs {c}");

    // H_SS v_S equals the S rows of H (v_S, 0).
    let sel = p.select_prefixes(&model.last_blocks_prefixes(1));
    assert!(!sel.is_empty() && sel.len() < all.len());
    let vs = ParamVec(sel.iter().map(|&i| v.0[i].clone()).collect());
    let sub = hvp(&loss, p, &sel, &vs).unwrap();
    let mut padded = v.zeros_like();
    for (k, &i) in sel.iter().enumerate() {
        padded.0[i] = vs.0[k].clone();
    }
    let full = hvp(&loss, p, &all, &padded).unwrap();
    let rows = ParamVec(sel.iter().map(|&i| full.0[i].clone()).collect());
    assert!(rel(&sub, &rows) < 1e-12);
}

#[test]
fn weighted_mixture_hvp_and_mlp_match_central_differences() {
    enable_double_backward();
    let cfg = MlpLmConfig {
        vocab: 9,
        order: 3,
        width: 4,
        hidden: 10,
        context: 8,
    };
    let model = MlpLm::new(cfg, 3, DType::F64, &Device::Cpu).unwrap();
    perturb(&model, 13);
    let b = batch(9, 4, 7, 8);
    let w = [0.1, 0.2, 0.3, 0.4];
    let loss = || weighted_loss(&model, &b, &w, true);
    let p = model.params();
    let all = p.all();
    let v = random_direction(&p.values(&all).unwrap(), 9);
    let exact = hvp(&loss, p, &all, &v).unwrap();
    let fd = hvp_fd(&loss, p, &all, &v, 1e-5).unwrap();
    assert!(rel(&exact, &fd) < 1e-6, "{:.3e}", rel(&exact, &fd));
}

#[test]
fn parameters_round_trip_through_safetensors_and_restore_after_fd() {
    enable_double_backward();
    let model = tiny_transformer();
    let p = model.params();
    let all = p.all();
    let before = p.values(&all).unwrap();
    let b = batch(13, 2, 4, 2);
    let loss = || mean_loss(&model, &b);
    let v = random_direction(&before, 1);
    hvp_fd(&loss, p, &all, &v, 1e-3).unwrap();
    let after = p.values(&all).unwrap();
    assert_eq!(before.to_f64_vec().unwrap(), after.to_f64_vec().unwrap());
    let t = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
    let logits = model.logits(&t.unsqueeze(0).unwrap()).unwrap();
    assert_eq!(logits.dims(), &[1, 3, 13]);
}
