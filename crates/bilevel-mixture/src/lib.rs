//! Data-mixture reweighting for language models (docs/ALGORITHMS.md §2 practical variant, §6).
//!
//! Upper variable: logits `x ∈ R^N` over N training sources, `p = softmax(x)`. Lower level:
//! model weights `y` minimising `g(x, y) = Σ_i p_i L_i(y)` (mean token loss on source i).
//! Upper objective: `f(y) = L_val(y)`, the loss on a held-out portion of the target domain.
//! The hypergradient at a selected lower solution is
//! `∇φ = −(diag p − p pᵀ) [⟨∇L_i(y), v⟩]_i` with `v ≈ H^† ∇L_val(y)` ([`hypergrad`]).
//!
//! [`methods`] holds the reweighting methods, all started from the same model and charged in
//! one currency ([`Budget`]: tokens × passes); [`experiment`] runs the protocol: reweight,
//! retrain from scratch on each learned mixture with several seeds, evaluate on the target's
//! test split and on every source's held-out split.
//!
//! **Where this crate differs from `bilevel-solvers`, and why.** The lower level here is a candle
//! model trained by AdamW on token batches, not a `Bilevel` oracle on host vectors, so the
//! solvers' executor does not run it; three pieces exist beside their solver counterparts:
//! * [`methods::LogitAdam`] runs the solvers' Adam step (`bilevel_core::adam`, β = 0.9, 0.999,
//!   ε = 10⁻⁸) on the N logits; it only holds the moments, so that a snapshot carries them with
//!   the model (the solvers' `UpperOptimizer` adds the box and the plain rule, which the simplex
//!   parameterisation does not need).
//! * [`Budget`] counts **token-passes** (forward T, gradient 3T, HVP 6T), the currency in which
//!   language-model methods are compared at matched cost; the solvers' budget counts oracle calls
//!   and gradient-equivalents of problems whose oracles have no token count.
//! * [`snapshot`] stores model weights (safetensors) with the method state, where a solver's
//!   checkpoint is a JSON value of host vectors.

#![deny(missing_docs)]

pub mod budget;
pub mod data;
mod error;
pub mod experiment;
pub mod hypergrad;
pub mod methods;
pub mod snapshot;
pub mod train;

pub use budget::Budget;
pub use data::{MixtureData, TokenSource, TokenStream};
pub use error::{MixtureError, Result};
pub use experiment::{ExperimentConfig, ExperimentResult, Progress};
pub use train::ModelSpec;

/// `p = softmax(x)`.
pub fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `(diag p − p pᵀ) u`: the Jacobian of `softmax` at `p` (symmetric) applied to `u`,
/// `p_j (u_j − Σ_i p_i u_i)`.
pub fn softmax_jacobian_apply(p: &[f64], u: &[f64]) -> Vec<f64> {
    let m: f64 = p.iter().zip(u).map(|(a, b)| a * b).sum();
    p.iter().zip(u).map(|(pj, uj)| pj * (uj - m)).collect()
}

/// Shannon entropy `−Σ p_i ln p_i` in nats (0 ln 0 = 0).
pub fn entropy(p: &[f64]) -> f64 {
    let h: f64 = p.iter().filter(|&&v| v > 0.0).map(|v| -v * v.ln()).sum();
    h.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_jacobian_matches_finite_differences() {
        let x = [0.3, -1.2, 0.8, 0.0];
        let u = [1.0, -2.0, 0.5, 3.0];
        let p = softmax(&x);
        let ju = softmax_jacobian_apply(&p, &u);
        // J is symmetric, so (J u)_j = Σ_i ∂p_i/∂x_j u_i = ∂/∂x_j ⟨p(x), u⟩.
        for j in 0..4 {
            let h = 1e-6;
            let (mut a, mut b) = (x, x);
            a[j] += h;
            b[j] -= h;
            let fa: f64 = softmax(&a).iter().zip(&u).map(|(p, u)| p * u).sum();
            let fb: f64 = softmax(&b).iter().zip(&u).map(|(p, u)| p * u).sum();
            assert!((ju[j] - (fa - fb) / (2.0 * h)).abs() < 1e-9);
        }
        assert!((entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-15);
    }
}
