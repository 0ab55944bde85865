//! The mixture hypergradient at a (selected) lower-level point `y`:
//!
//! `∇φ(x) = −(diag p − p pᵀ) [⟨∇L_i(y), v⟩]_{i=1..N}`, `v = (H + γI)^† ∇L_val(y)`,
//!
//! with `H = ∇²_y Σ_i p_i L_i(y)` (+ the regulariser's Hessian), applied by exact double
//! backward (or the labelled finite-difference fallback) and inverted by MINRES (minimum-norm
//! for singular `H`, docs/ALGORITHMS.md §1–2) or CG, optionally on a parameter subset `S` (then
//! `H_SS v_S = ∇_S L_val`, a block-diagonal approximation that bounds memory). The cross
//! term is `J v = ∂_x ⟨∇_y g, v⟩ = (diag p − p pᵀ)[⟨∇L_i, v⟩]`, one gradient per source.

use std::cell::RefCell;

use bilevel_core::krylov::{cg, minres, CgWorkspace, KrylovInfo, KrylovOptions, MinresWorkspace};
use bilevel_core::Vector;
use bilevel_nn::derivatives::{gradient, hvp_with, scalar};
use bilevel_nn::lm::mean_loss;
use bilevel_nn::{HvpMode, LanguageModel, NnError, ParamVec, TokenBatch};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::softmax_jacobian_apply;
use crate::train::mixture_loss;

/// Which Krylov method solves `(H + γI) v = ∇L_val`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KrylovMethod {
    /// MINRES (symmetric, possibly indefinite or singular): the default.
    #[default]
    Minres,
    /// Conjugate gradients (positive definite `H + γI`).
    Cg,
}

/// Settings of [`mixture_hypergradient`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypergradOptions {
    /// Krylov method.
    #[serde(default)]
    pub krylov: KrylovMethod,
    /// Krylov iterations (each one HVP).
    pub iterations: usize,
    /// Relative residual tolerance.
    #[serde(default = "rtol")]
    pub rtol: f64,
    /// Shift γ (damping): solves `(H + γI) v = b`.
    #[serde(default)]
    pub shift: f64,
    /// How HVPs are computed.
    #[serde(default)]
    pub hvp: HvpMode,
}

fn rtol() -> f64 {
    1e-6
}

/// What [`mixture_hypergradient`] computed.
#[derive(Clone, Debug)]
pub struct Hypergradient {
    /// `∇φ` with respect to the logits.
    pub grad_x: Vec<f64>,
    /// `[⟨∇L_i, v⟩]_i`.
    pub cross: Vec<f64>,
    /// The Krylov solution `v`.
    pub v: ParamVec,
    /// The Krylov solve's report.
    pub krylov: KrylovInfo,
    /// The validation loss on the validation batch.
    pub val_loss: f64,
}

/// The hypergradient at the model's current parameters; see the module docs. `sel` is the
/// parameter subset of the Krylov solve; `train` holds one batch per source.
pub fn mixture_hypergradient(
    model: &dyn LanguageModel,
    sel: &[usize],
    train: &[TokenBatch],
    val: &TokenBatch,
    p: &[f64],
    opts: &HypergradOptions,
) -> Result<Hypergradient> {
    let params = model.params();
    let lv = mean_loss(model, val)?;
    let val_loss = scalar(&lv)?;
    let b = gradient(&lv, params, sel)?;
    let failure: RefCell<Option<NnError>> = RefCell::new(None);
    let loss = || mixture_loss(model, train, p).map(|(t, _)| t);
    let mut op = |x: &ParamVec, out: &mut ParamVec| {
        if failure.borrow().is_some() {
            out.set_zero();
            return;
        }
        match hvp_with(opts.hvp, &loss, params, sel, x) {
            Ok(h) => *out = h,
            Err(e) => {
                *failure.borrow_mut() = Some(e);
                out.set_zero();
            }
        }
    };
    let kopts = KrylovOptions {
        max_iter: opts.iterations,
        rtol: opts.rtol,
        shift: opts.shift,
        ..KrylovOptions::default()
    };
    let mut v = b.zeros_like();
    let krylov = match opts.krylov {
        KrylovMethod::Minres => minres(&mut op, &b, &mut v, &kopts, &mut MinresWorkspace::new(&b)),
        KrylovMethod::Cg => cg(&mut op, &b, &mut v, &kopts, &mut CgWorkspace::new(&b)),
    };
    if let Some(e) = failure.into_inner() {
        return Err(e.into());
    }
    let mut cross = Vec::with_capacity(train.len());
    for batch in train {
        let gi = gradient(&mean_loss(model, batch)?, params, sel)?;
        cross.push(gi.dot(&v));
    }
    let jc = softmax_jacobian_apply(p, &cross);
    Ok(Hypergradient {
        grad_x: jc.iter().map(|c| -c).collect(),
        cross,
        v,
        krylov,
        val_loss,
    })
}

#[cfg(test)]
mod tests {
    //! The acceptance check: on a strongly convex lower level (a bigram softmax model with
    //! L2), the hypergradient equals central differences of `φ(x) = L_val(y*(x))` with `y*`
    //! solved by Newton's method to machine precision.
    use super::*;
    use crate::softmax;
    use bilevel_core::rng::Rng;
    use bilevel_nn::lm::BigramConfig;
    use bilevel_nn::{enable_double_backward, Bigram};
    use candle_core::{DType, Device};

    const V: usize = 6;

    /// Source i prefers transitions `a → (a + i + 1) mod V` with probability 0.7.
    fn source(i: usize, rows: usize, seed: u64) -> TokenBatch {
        let mut rng = Rng::new(seed);
        let w: Vec<Vec<u32>> = (0..rows)
            .map(|_| {
                let mut a = rng.below(V as u64) as usize;
                let mut x = vec![a as u32];
                for _ in 0..8 {
                    a = if rng.uniform() < 0.7 {
                        (a + i + 1) % V
                    } else {
                        rng.below(V as u64) as usize
                    };
                    x.push(a as u32);
                }
                x
            })
            .collect();
        let r: Vec<&[u32]> = w.iter().map(|x| x.as_slice()).collect();
        TokenBatch::from_windows(&r, &Device::Cpu).unwrap()
    }

    fn newton(model: &Bigram, train: &[TokenBatch], p: &[f64]) {
        let params = model.params();
        let all = params.all();
        let opts = KrylovOptions {
            max_iter: 200,
            rtol: 1e-14,
            ..KrylovOptions::default()
        };
        for _ in 0..30 {
            let (l, _) = mixture_loss(model, train, p).unwrap();
            let g = gradient(&l, params, &all).unwrap();
            if g.norm() < 1e-13 {
                break;
            }
            let loss = || mixture_loss(model, train, p).map(|x| x.0);
            let mut op = |x: &ParamVec, out: &mut ParamVec| {
                *out = bilevel_nn::hvp(&loss, params, &all, x).unwrap();
            };
            let mut d = g.zeros_like();
            cg(&mut op, &g, &mut d, &opts, &mut CgWorkspace::new(&g));
            params.add_scaled(&all, -1.0, &d).unwrap();
        }
    }

    #[test]
    fn bigram_logit_hypergradient_matches_finite_differences_of_the_solved_lower_level() {
        enable_double_backward();
        let train: Vec<TokenBatch> = (0..3).map(|i| source(i, 12, 10 + i as u64)).collect();
        let val = source(1, 10, 99); // the target resembles source 1
        let cfg = BigramConfig { vocab: V, l2: 0.05 };
        let model = Bigram::new(cfg, DType::F64, &Device::Cpu).unwrap();
        let all = model.params().all();
        let phi = |x: &[f64]| -> f64 {
            let p = softmax(x);
            newton(&model, &train, &p);
            scalar(&mean_loss(&model, &val).unwrap()).unwrap()
        };
        let x = [0.2, -0.4, 0.1];
        phi(&x);
        let opts = HypergradOptions {
            krylov: KrylovMethod::Cg,
            iterations: 200,
            rtol: 1e-13,
            shift: 0.0,
            hvp: HvpMode::Exact,
        };
        let h = mixture_hypergradient(&model, &all, &train, &val, &softmax(&x), &opts).unwrap();
        let step = 1e-4;
        for j in 0..3 {
            let (mut a, mut b) = (x, x);
            a[j] += step;
            b[j] -= step;
            let fd = (phi(&a) - phi(&b)) / (2.0 * step);
            let err =
                (h.grad_x[j] - fd).abs() / h.grad_x.iter().map(|g| g.abs()).fold(0.0, f64::max);
            eprintln!(
                "∂φ/∂x_{j}: hypergradient {:.9e}, finite differences {fd:.9e}, rel {err:.1e}",
                h.grad_x[j]
            );
            assert!(
                err < 1e-4,
                "coordinate {j}: {} vs {fd} ({err:.2e})",
                h.grad_x[j]
            );
        }
        // Σ_j ∂φ/∂x_j = 0 (softmax is shift invariant) and the target pulls toward source 1.
        assert!(h.grad_x.iter().sum::<f64>().abs() < 1e-12);
        assert!(h.grad_x[1] < 0.0, "{:?}", h.grad_x);
    }
}
