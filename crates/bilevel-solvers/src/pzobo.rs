//! PZOBO: Hessian-free bilevel optimisation by zeroth-order estimates of the Jacobian of the
//! `T`-step lower map (Sow, Ji & Liang, "On the Convergence Theory for Hessian-Free Bilevel
//! Algorithms", NeurIPS 2022), docs/ALGORITHMS.md §4.
//!
//! Per outer iteration at `x`, from a start `y_s`:
//!
//! 1. `y_T(x)`: `T` projected GD steps on `g(x, ·)` from `y_s`;
//! 2. `Q` Gaussian directions `u_i ∈ R^m` and `y_T(x + μ u_i)` (`T` steps at `x + μ u_i` from the
//!    same `y_s`); `δ_i = (y_T(x + μ u_i) − y_T(x))/μ`;
//! 3. `h = ∇_x f(x, y_T) + (1/Q) Σ_i u_i ⟨δ_i, ∇_y f(x, y_T)⟩`, a Gaussian-smoothing estimate
//!    of the gradient of the unrolled objective `x ↦ f(x, y_T(x))`
//!    (`E[u uᵀ] = I`; bias O(μ), variance O(1/Q));
//! 4. `x ← x − α h` ([`UpperOptimizer`], α = `upper.lr`); the state's `y` becomes `y_T(x)`.
//!
//! **Start `y_s`** (our choice, configurable): with `warm_start = true` (default) `y_s` is the
//! `y` the call receives (the previous iteration's `y_T`), the same for all `Q + 1` runs of the
//! iteration, so each estimate differentiates one well-defined map `x ↦ y_T(x; y_s)`, and warm
//! starts drive the truncation bias to zero as the iterates settle. With `warm_start = false`,
//! `y_s` is the `y` of the first call, stored and reused forever (saved in checkpoints): `y_T(x)`
//! is then one fixed function of `x` across iterations, at the price of a truncation bias that
//! never vanishes.
//!
//! Randomness: the `u_i` of outer iteration `t` come from `Rng::substream(seed, t)`, so a seed
//! gives the same trace, including after a resume. Cost: `(Q + 1) T` lower gradients, one upper
//! gradient and one more lower gradient (for the reported gap) per iteration; no HVP.

use crate::checkpoint::{field, restore_upper};
use crate::lower::gd_steps;
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::validate::positive;
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::rng::Rng;
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How the Q smoothing directions are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Directions {
    /// Independent `u_i ~ N(0, I)` (the paper's estimator).
    Gaussian,
    /// Blocks of m orthonormal directions scaled to norm √m (Choromanski et al. 2018): still
    /// `E[u uᵀ] = I`, and with `samples = m` the average `(1/Q) Σ u_i u_iᵀ` is exactly `I`, which
    /// removes the estimator's sampling variance.
    Orthogonal,
}

/// PZOBO configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PzoboConfig {
    /// GD steps T of the lower map.
    pub lower_steps: usize,
    /// Step β of those steps (≤ 1/L_g).
    pub lower_lr: f64,
    /// Smoothing radius μ.
    pub mu: f64,
    /// Directions Q per iteration.
    pub samples: usize,
    /// How the directions are drawn.
    pub directions: Directions,
    /// Seed of the directions (combined with the outer iteration).
    pub seed: u64,
    /// Start the `T`-step map from the incoming `y` (true) or from the first call's `y` (false).
    pub warm_start: bool,
    /// Upper step.
    pub upper: UpperConfig,
}

impl Default for PzoboConfig {
    fn default() -> Self {
        PzoboConfig {
            lower_steps: 10,
            lower_lr: 0.1,
            mu: 0.1,
            samples: 10,
            directions: Directions::Gaussian,
            seed: 0,
            warm_start: true,
            upper: UpperConfig::default(),
        }
    }
}

impl PzoboConfig {
    /// Check every value; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "lower_lr", self.lower_lr)?;
        positive(prefix, "mu", self.mu)?;
        if self.samples == 0 {
            return Err(format!("{prefix}.samples: must be ≥ 1 (got 0)"));
        }
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

struct Work<Y> {
    start: Y,
    yp: Y,
    grad: Y,
    fy: Y,
    u: Vec<f64>,
    xp: Vec<f64>,
    /// Orthogonal directions, Q rows of length m.
    dirs: Vec<f64>,
}

/// Fill `dirs` (rows of length m) with blocks of m orthonormal Gaussian directions, each scaled to
/// norm √m (modified Gram–Schmidt, twice, within each block).
fn orthogonal_directions(rng: &mut Rng, m: usize, dirs: &mut [f64]) {
    rng.fill_normal(dirs);
    let rows = dirs.len() / m;
    for i in 0..rows {
        let block_start = i - i % m;
        for _ in 0..2 {
            for j in block_start..i {
                let (head, tail) = dirs.split_at_mut(i * m);
                let (qj, ui) = (&head[j * m..(j + 1) * m], &mut tail[..m]);
                let c = bilevel_core::vector::dot(qj, ui) / m as f64;
                bilevel_core::vector::axpy(ui, -c, qj);
            }
        }
        let row = &mut dirs[i * m..(i + 1) * m];
        let n = bilevel_core::vector::norm(row);
        let k = (m as f64).sqrt() / n;
        row.iter_mut().for_each(|v| *v *= k);
    }
}

/// The PZOBO solver.
pub struct Pzobo<Y: Vector> {
    config: PzoboConfig,
    upper: UpperOptimizer,
    /// Fixed start (only with `warm_start = false`; None until the first call).
    y0: Option<Y>,
    work: Option<Work<Y>>,
}

impl<Y: Vector> Pzobo<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: PzoboConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Pzobo {
            config,
            upper,
            y0: None,
            work: None,
        }
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for Pzobo<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "pzobo"
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        _with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let cfg = &self.config;
        let m = p.dim_x();
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            Work {
                start: z.clone(),
                yp: z.clone(),
                grad: z.clone(),
                fy: z,
                u: vec![0.0; m],
                xp: vec![0.0; m],
                dirs: vec![0.0; m * cfg.samples],
            }
        });
        if cfg.warm_start {
            wk.start.assign(&state.y);
        } else {
            wk.start
                .assign(self.y0.get_or_insert_with(|| state.y.clone()));
        }
        let x = &state.x;
        let (steps, beta, mu) = (cfg.lower_steps, cfg.lower_lr, cfg.mu);
        state.y.assign(&wk.start);
        gd_steps(p, x, &mut state.y, steps, beta, &mut wk.grad);
        if !state.y.is_finite() {
            return Err(SolverError::NonFinite(
                "pzobo: y_T is not finite; reduce lower_lr".into(),
            ));
        }
        let mut h = vec![0.0; m];
        p.grad_f(x, &state.y, &mut h, &mut wk.fy);
        let c0 = state.y.dot(&wk.fy);
        let mut rng = Rng::substream(cfg.seed, state.iteration as u64);
        let scale = 1.0 / (cfg.samples as f64 * mu);
        if cfg.directions == Directions::Orthogonal {
            orthogonal_directions(&mut rng, m, &mut wk.dirs);
        }
        for i in 0..cfg.samples {
            match cfg.directions {
                Directions::Gaussian => rng.fill_normal(&mut wk.u),
                Directions::Orthogonal => wk.u.copy_from_slice(&wk.dirs[i * m..(i + 1) * m]),
            }
            for ((xp, xi), ui) in wk.xp.iter_mut().zip(x).zip(&wk.u) {
                *xp = xi + mu * ui;
            }
            wk.yp.assign(&wk.start);
            gd_steps(p, &wk.xp, &mut wk.yp, steps, beta, &mut wk.grad);
            // ⟨δ_i, ∇_y f⟩ = (⟨y_T(x + μu), ∇_y f⟩ − ⟨y_T(x), ∇_y f⟩)/μ.
            let s = (wk.yp.dot(&wk.fy) - c0) * scale;
            for (hi, ui) in h.iter_mut().zip(&wk.u) {
                *hi += s * ui;
            }
        }
        p.grad_g_y(x, &state.y, &mut wk.grad);
        Ok(StepReport {
            f: p.f(x, &state.y),
            lower_grad_norm: wk.grad.norm(),
            hypergradient: h,
            diagnostics: None,
            selection: None,
            extra: Vec::new(),
            ..StepReport::default()
        })
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "upper": self.upper, "y0": self.y0 })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)?;
        self.y0 = field(saved, "pzobo", "y0")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{diff_norm, norm, run_for, unroll, unrolled_grad_fd, Quad};

    /// The first iteration recomputed independently from the same random draws.
    #[test]
    fn first_iteration_by_hand() {
        let p = Quad::nonlinear();
        let cfg = PzoboConfig {
            samples: 3,
            seed: 11,
            ..Default::default()
        };
        let (x, y0) = (vec![0.7, -0.4], vec![0.5, -1.0, 0.8]);
        let yt = unroll(&p, &x, &y0, 10, 0.1);
        let (mut fx, mut fy) = (vec![0.0; 2], vec![0.0; 3]);
        p.grad_f(&x, &yt, &mut fx, &mut fy);
        let mut rng = Rng::substream(11, 0);
        let mut h = fx.clone();
        for _ in 0..3 {
            let mut u = vec![0.0; 2];
            rng.fill_normal(&mut u);
            let xp: Vec<f64> = x.iter().zip(&u).map(|(a, b)| a + 0.1 * b).collect();
            let yp = unroll(&p, &xp, &y0, 10, 0.1);
            let s: f64 = (0..3).map(|j| (yp[j] - yt[j]) / 0.1 * fy[j]).sum();
            for i in 0..2 {
                h[i] += s * u[i] / 3.0;
            }
        }
        let mut s = Pzobo::new(cfg, 2);
        let mut st = State {
            x: x.clone(),
            y: y0.clone(),
            iteration: 0,
        };
        let rep = s.hypergradient(&Counted::new(&p), &mut st, false).unwrap();
        assert!(
            diff_norm(&rep.hypergradient, &h) < 1e-12,
            "{rep:?} vs {h:?}"
        );
        assert!(diff_norm(&st.y, &yt) < 1e-15);
    }

    /// Same seed ⇒ bit-identical iterates; another seed ⇒ different ones.
    #[test]
    fn same_seed_same_trace() {
        let p = Quad::small();
        let trace = |seed: u64| {
            let cfg = PzoboConfig {
                seed,
                ..Default::default()
            };
            let mut s = Pzobo::new(cfg, 2);
            let out = run_for(&p, &mut s, &[1.5, -2.0], &[0.0; 3], 25);
            (out.state.x, out.state.y)
        };
        assert_eq!(trace(3), trace(3));
        assert_ne!(trace(3).0, trace(4).0);
    }

    /// The estimate approaches the gradient of the unrolled map (central differences through
    /// the T-step map) as Q grows: within 2% at Q = 40 000 (μ = 1e-4), far looser at Q = 10.
    #[test]
    fn estimate_approaches_unrolled_gradient() {
        let p = Quad::nonlinear();
        let (x, y0) = (vec![0.7, -0.4], vec![0.5, -1.0, 0.8]);
        let exact = unrolled_grad_fd(&p, &x, &y0, 10, 0.1, 1e-5);
        let err = |samples: usize| {
            let cfg = PzoboConfig {
                samples,
                mu: 1e-4,
                seed: 5,
                ..Default::default()
            };
            let mut s = Pzobo::new(cfg, 2);
            let mut st = State {
                x: x.clone(),
                y: y0.clone(),
                iteration: 0,
            };
            let rep = s.hypergradient(&Counted::new(&p), &mut st, false).unwrap();
            diff_norm(&rep.hypergradient, &exact) / norm(&exact)
        };
        let (coarse, fine) = (err(10), err(40_000));
        assert!(fine < 2e-2, "Q = 40000: rel. error {fine}");
        assert!(fine < coarse, "Q = 10: {coarse}, Q = 40000: {fine}");
    }

    /// Budget: 1000 iterations, α = 0.05, Q = 10, μ = 0.1 on the strongly convex quadratic:
    /// with warm starts ‖∇φ‖ drops by > 20× (3.56 → 0.073; a noise floor remains: the
    /// estimate's variance does not vanish at the solution, where `∇_x f = −(∂y_T/∂x)ᵀ ∇_y f
    /// ≠ 0`). The fixed start (`warm_start = false`) stalls higher (≈ 0.18): the truncation
    /// bias of `y_T` from a fixed `y_0` never vanishes; it is run but not asserted.
    #[test]
    fn reduces_grad_phi_on_quadratic() {
        let p = Quad::small();
        let x0 = [1.5, -2.0];
        let g0 = norm(&p.reference_grad_phi(&x0).unwrap());
        for warm_start in [true, false] {
            let cfg = PzoboConfig {
                warm_start,
                upper: UpperConfig {
                    lr: 0.05,
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut s = Pzobo::new(cfg, 2);
            let out = run_for(&p, &mut s, &x0, &[0.0; 3], 1000);
            let g = norm(&p.reference_grad_phi(&out.state.x).unwrap());
            eprintln!("warm {warm_start}: ‖∇φ‖ {g0} → {g}");
            if warm_start {
                assert!(g < 5e-2 * g0, "‖∇φ‖ {g0} → {g}");
            }
        }
    }
}

#[cfg(test)]
mod orthogonal_tests {
    use super::*;

    /// Each block of m rows is orthogonal with norms √m, so Σ_{block} u_i u_iᵀ = m I exactly.
    #[test]
    fn orthogonal_blocks_sum_to_m_identity() {
        let (m, q) = (5, 12);
        let mut rng = Rng::new(3);
        let mut dirs = vec![0.0; m * q];
        orthogonal_directions(&mut rng, m, &mut dirs);
        for block in 0..2 {
            for a in 0..m {
                for b in 0..m {
                    let s: f64 = (block * m..(block + 1) * m)
                        .map(|i| dirs[i * m + a] * dirs[i * m + b])
                        .sum();
                    let expected = if a == b { m as f64 } else { 0.0 };
                    assert!((s - expected).abs() < 1e-12, "block {block} ({a},{b}): {s}");
                }
            }
        }
        for i in 0..q {
            let n2: f64 = dirs[i * m..(i + 1) * m].iter().map(|v| v * v).sum();
            assert!((n2 - m as f64).abs() < 1e-12);
        }
    }
}
