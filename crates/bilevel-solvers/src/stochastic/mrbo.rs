//! MRBO: momentum-based recursive bilevel optimizer (Yang, Ji & Liang, "Provably Faster
//! Algorithms for Bilevel Optimization", NeurIPS 2021, Algorithm 1), docs/ALGORITHMS.md §5; the
//! recursion is shared with SUSTAIN ([`super::sustain`]).
//!
//! STORM-type momentum-recursive estimators `d_y ≈ ∇_y g` and `d_x ≈ ∇φ`, each corrected by the
//! same minibatch evaluated at the new iterate `z_t = (x_t, y_t)` and at the previous one
//! `z_{t−1}`. Iteration `t ≥ 1` with a lower batch `i`, an upper batch `j` and `Q` lower batches
//! `k_1 … k_Q` shared by both points:
//!
//! * `d_y ← ∇_y g_i(z_t) + (1 − η_t)(d_y − ∇_y g_i(z_{t−1}))`;
//! * `h(z) = ∇_x f_j(z) − J_i(z) v(z)` with the Neumann estimate of StocBiO
//!   ([`super::stocbio`]) `v(z) = η_N Σ_{q=0}^{Q} Π_{l≤q}(I − η_N H_{k_l}(z)) ∇_y f_j(z)`;
//! * `d_x ← h(z_t) + (1 − η_t)(d_x − h(z_{t−1}))`;
//! * `y ← Π(y − ρ_t d_y)`, `x ← x − γ_t d_x` (both from `z_t`).
//!
//! At `t = 0` there is no previous iterate and the directions are the plain estimates
//! `d_y = ∇_y g_i(z_0)`, `d_x = h(z_0)` (the paper's initialisation; the reference benchmark,
//! benchopt `benchmark_bilevel` `solvers/mrbo.py`, instead starts from zero memories, which
//! makes its first step use the origin as the "previous" iterate).
//!
//! Schedules as in the reference (the paper's `η_t = k/(m+t)^{1/3}` steps with momentum
//! `α_{t+1} = c η_t²`): `ρ_t = ρ/(t+1)^{1/3}`, `γ_t = (ρ/outer_ratio)/(t+1)^{1/3}`, momentum
//! `η_t = η₀/(t+1)^{2/3}` (η₀ ≤ 1) and a constant Neumann step η_N. Per iteration `t ≥ 1`: 2
//! lower gradients, `2Q` HVPs, 2 cross products and 2 upper gradients (half at `t = 0`). The
//! previous iterate and both directions are saved in checkpoints; `extra` reports the momentum
//! `eta` of the last step.
//!
//! Defaults: ρ = 0.1, outer_ratio = 1, batch 64, η₀ = ½ as the reference, but Q = 50 and
//! η_N = 0.5 instead of Q = 10, η_N = ρ (the truncation bias of the Neumann series, see
//! [`super::stocbio`]; the reference's setting stalls at ‖∇φ‖² ≈ 0.64 of its start on the
//! default quadratic benchmark). Measured with the defaults after 3000 iterations: 3.4e-4 on
//! the test instance, 1.2e-2 on the default benchmark.

use super::inner::KeptBatch;
use super::neumann::{inverse_hvp, Neumann, NeumannWork, System};
use super::{descend, load_field, Common, Context, Schedule, StochasticStep};
use crate::validate::{fraction, nonnegative, positive};
use crate::{SolverError, State};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

stochastic_config! {
    /// MRBO configuration.
    MrboConfig (step_size = 0.1, outer_ratio = 1.0) {
        /// Neumann depth Q.
        neumann_steps: usize = 50,
        /// Neumann step η_N (constant; below `2/L` of the minibatch Hessians).
        neumann_step: f64 = 0.5 => positive,
        /// Momentum η₀ of `η_t = η₀/(t+1)^c` (in (0, 1]).
        momentum: f64 = 0.5 => fraction,
        /// Exponent c of the momentum (2/3).
        momentum_exponent: f64 = 2.0 / 3.0 => nonnegative,
        /// Exponent a of `ρ_t = ρ/(t+1)^a` (1/3).
        inner_exponent: f64 = 1.0 / 3.0 => nonnegative,
        /// Exponent b of `γ_t = γ/(t+1)^b` (1/3).
        outer_exponent: f64 = 1.0 / 3.0 => nonnegative,
    }
}

/// The previous iterate and the two recursive directions (saved in checkpoints).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Memory<Y> {
    x_prev: Vec<f64>,
    y_prev: Y,
    dy: Y,
    dx: Vec<f64>,
}

/// Workspace for one point of the pair.
struct Point<Y> {
    gy: Y,
    fx: Vec<f64>,
    fy: Y,
    jv: Vec<f64>,
    neumann: NeumannWork<Y>,
}

impl<Y: Vector> Point<Y> {
    fn like(y: &Y, m: usize) -> Self {
        Point {
            gy: y.zeros_like(),
            fx: vec![0.0; m],
            fy: y.zeros_like(),
            jv: vec![0.0; m],
            neumann: NeumannWork::like(y),
        }
    }
}

struct Work<Y> {
    now: Point<Y>,
    prev: Point<Y>,
    batch: KeptBatch,
}

/// The momentum recursion shared by MRBO (Neumann sum) and SUSTAIN (HIA).
pub(crate) struct Recursive<Y> {
    pub(crate) common: Common,
    schedule: Schedule,
    depth: usize,
    eta_n: f64,
    eta0: f64,
    eta_exponent: f64,
    truncated: bool,
    /// Momentum η_t of the last step.
    pub(crate) last_eta: f64,
    /// HIA depth of the last step.
    pub(crate) last_draws: usize,
    memory: Option<Memory<Y>>,
    work: Option<Work<Y>>,
    /// Empty direction before the first step.
    none: Vec<f64>,
}

impl<Y: Vector + Serialize + DeserializeOwned> Recursive<Y> {
    /// `truncated`: the HIA (SUSTAIN) instead of the Neumann sum (MRBO).
    pub(crate) fn new(
        common: Common,
        exponents: (f64, f64),
        neumann: (usize, f64),
        momentum: (f64, f64),
        truncated: bool,
    ) -> Self {
        Recursive {
            schedule: Schedule::new(&common, exponents.0, exponents.1),
            eta_n: neumann.1,
            common,
            depth: neumann.0,
            eta0: momentum.0,
            eta_exponent: momentum.1,
            truncated,
            last_eta: 1.0,
            last_draws: 0,
            memory: None,
            work: None,
            none: Vec::new(),
        }
    }

    /// One iteration.
    pub(crate) fn step<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        state: &mut State<Y>,
        ctx: &mut Context,
    ) {
        let (rho, gamma) = self.schedule.at(ctx.t);
        let (x, y) = (&mut state.x, &mut state.y);
        let m = x.len();
        let w = self.work.get_or_insert_with(|| Work {
            now: Point::like(y, m),
            prev: Point::like(y, m),
            batch: KeptBatch::for_lower(ctx),
        });
        let first = self.memory.is_none();
        let mem = self.memory.get_or_insert_with(|| Memory {
            x_prev: x.clone(),
            y_prev: y.clone(),
            dy: y.zeros_like(),
            dx: vec![0.0; m],
        });
        let (now, prev) = (&mut w.now, &mut w.prev);
        let eta = if first {
            1.0
        } else {
            self.eta0 / ((ctx.t + 1) as f64).powf(self.eta_exponent)
        };
        self.last_eta = eta;
        let (xp, yp) = (&mem.x_prev[..], &mem.y_prev);

        // Lower gradients on batch i at both points.
        w.batch.keep(&ctx.inner_batch());
        let bi = w.batch.get();
        p.grad_g_y_batch(x, y, &bi, &mut now.gy);
        if !first {
            p.grad_g_y_batch(xp, yp, &bi, &mut prev.gy);
        }
        // Upper gradients on batch j at both points.
        {
            let bj = ctx.outer_batch();
            p.grad_f_batch(x, y, &bj, &mut now.fx, &mut now.fy);
            if !first {
                p.grad_f_batch(xp, yp, &bj, &mut prev.fx, &mut prev.fy);
            }
        }
        // v ≈ H⁻¹∇_y f at both points with the same HVP batches.
        let kind = Neumann::pick(ctx, self.depth, self.truncated, &mut self.last_draws);
        let sys_now = System {
            x,
            y,
            b: &mut now.fy,
            work: &mut now.neumann,
        };
        let sys_prev = (!first).then_some(System {
            x: xp,
            y: yp,
            b: &mut prev.fy,
            work: &mut prev.neumann,
        });
        inverse_hvp(p, ctx, self.eta_n, kind, sys_now, sys_prev);
        // h = ∇_x f − J_i v at both points (batch i again).
        p.cross_batch(x, y, &bi, &now.fy, &mut now.jv);
        bilevel_core::vector::axpy(&mut now.fx, -1.0, &now.jv);
        if !first {
            p.cross_batch(xp, yp, &bi, &prev.fy, &mut prev.jv);
            bilevel_core::vector::axpy(&mut prev.fx, -1.0, &prev.jv);
        }
        // STORM: d ← new + (1 − η)(d − old); plain estimates at t = 0.
        if first {
            mem.dy.assign(&now.gy);
            mem.dx.copy_from_slice(&now.fx);
        } else {
            mem.dy.axpy(-1.0, &prev.gy);
            mem.dy.scale(1.0 - eta);
            mem.dy.axpy(1.0, &now.gy);
            for ((d, new), old) in mem.dx.iter_mut().zip(&now.fx).zip(&prev.fx) {
                *d = new + (1.0 - eta) * (*d - old);
            }
        }
        mem.x_prev.copy_from_slice(x);
        mem.y_prev.assign(y);
        y.axpy(-rho, &mem.dy);
        p.project_y(y);
        descend(x, gamma, &mem.dx);
    }

    /// The last direction `d_x` (empty before the first step).
    pub(crate) fn direction(&self) -> &[f64] {
        self.memory.as_ref().map_or(&self.none, |m| &m.dx)
    }

    /// The previous iterate and both directions.
    pub(crate) fn save(&self) -> serde_json::Value {
        serde_json::json!({ "memory": self.memory })
    }

    /// Restore what [`Recursive::save`] wrote.
    pub(crate) fn load(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        self.memory = load_field(saved, "memory")?;
        Ok(())
    }
}

/// MRBO (see the module documentation).
pub struct Mrbo<Y> {
    core: Recursive<Y>,
}

impl<Y: Vector + Serialize + DeserializeOwned> Mrbo<Y> {
    /// A solver for an upper variable of dimension `m` (the directions are sized at the first
    /// step).
    pub fn new(cfg: MrboConfig, _m: usize) -> Self {
        Mrbo {
            core: Recursive::new(
                cfg.common(),
                (cfg.inner_exponent, cfg.outer_exponent),
                (cfg.neumann_steps, cfg.neumann_step),
                (cfg.momentum, cfg.momentum_exponent),
                false,
            ),
        }
    }
}

impl<P: Bilevel + ?Sized> StochasticStep<P> for Mrbo<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "mrbo"
    }
    fn common(&self) -> &Common {
        &self.core.common
    }
    fn step(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        ctx: &mut Context,
    ) -> Result<(), SolverError> {
        self.core.step(p, state, ctx);
        Ok(())
    }
    fn direction(&self) -> &[f64] {
        self.core.direction()
    }
    fn extra(&self) -> Vec<(String, f64)> {
        vec![("eta".into(), self.core.last_eta)]
    }
    fn save(&self) -> serde_json::Value {
        self.core.save()
    }
    fn load(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        self.core.load(saved)
    }
}

/// Full-batch MRBO/SUSTAIN iterations written by hand (shared with SUSTAIN's test).
#[cfg(test)]
pub(crate) mod by_hand {
    use crate::stochastic::stocbio::checks::{axpy, jv, sub};
    use crate::stochastic::testkit::{Full, Quad};
    use crate::stochastic::Schedule;

    /// `(x, y, b, t)` ↦ the estimate of `H⁻¹b` at `(x, y)` in iteration `t`.
    pub type Inverse<'a> = dyn FnMut(&[f64], &[f64], &[f64], usize) -> Vec<f64> + 'a;

    /// Two full-batch iterations; `inverse(x, y, b, t)` is the estimate of `H⁻¹b` at iteration
    /// `t`. Returns `(x, y)`.
    pub fn two_iterations(
        p: &Quad,
        sched: &Schedule,
        eta0: f64,
        eta_exp: f64,
        inverse: &mut Inverse<'_>,
    ) -> (Vec<f64>, Vec<f64>) {
        let (mut x, mut y) = crate::stochastic::testkit::start(p);
        let (mut dx, mut dy) = (vec![], vec![]);
        let (mut xp, mut yp) = (x.clone(), y.clone());
        for t in 0..2 {
            let (rho, gamma) = sched.at(t);
            let h = |x: &[f64], y: &[f64], inverse: &mut Inverse<'_>| {
                let o = Full::at(p, x, y, y);
                let v = inverse(x, y, &o.fy, t);
                (o.gy, sub(&o.fx, &jv(p, x, y, &v)))
            };
            let (gy, hx) = h(&x, &y, inverse);
            if t == 0 {
                (dx, dy) = (hx, gy);
            } else {
                let (gy_old, hx_old) = h(&xp, &yp, inverse);
                let eta = eta0 / ((t + 1) as f64).powf(eta_exp);
                let storm = |d: &mut Vec<f64>, new: &[f64], old: &[f64]| {
                    d.iter_mut()
                        .zip(new.iter().zip(old))
                        .for_each(|(d, (n, o))| *d = n + (1.0 - eta) * (*d - o));
                };
                storm(&mut dy, &gy, &gy_old);
                storm(&mut dx, &hx, &hx_old);
            }
            (xp, yp) = (x.clone(), y.clone());
            axpy(&mut y, -rho, &dy);
            axpy(&mut x, -gamma, &dx);
        }
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stochastic::stocbio::checks;
    use crate::stochastic::testkit;

    /// With one batch holding all the data, two iterations are the full-batch MRBO update (the
    /// second one with the momentum correction at the previous iterate).
    #[test]
    fn full_batch_iterations_match_the_update_by_hand() {
        let p = testkit::quadratic();
        let cfg = MrboConfig {
            batch_size: 10_000,
            neumann_steps: 4,
            neumann_step: 0.2,
            momentum: 0.7,
            ..MrboConfig::default()
        };
        let sched = Schedule::new(&cfg.common(), 1.0 / 3.0, 1.0 / 3.0);
        let (x, y) = by_hand::two_iterations(&p, &sched, 0.7, 2.0 / 3.0, &mut |x, y, b, _| {
            checks::neumann_sum(&p, x, y, b, 0.2, 4)
        });
        let state = testkit::run_steps(&p, Mrbo::new(cfg, x.len()), 2);
        testkit::assert_close(&state.x, &x, "x");
        testkit::assert_close(&state.y, &y, "y");
    }

    /// Oracle calls: the first iteration evaluates one point, later ones two.
    #[test]
    fn counts_the_calls() {
        let p = testkit::quadratic();
        let (x, y) = testkit::start(&p);
        let mut state = State { x, y, iteration: 0 };
        let c = Counted::new(&p);
        let mut s = super::super::Stochastic::new(Mrbo::new(MrboConfig::default(), p.dim_x()));
        s.advance(&c, &mut state, 3).unwrap();
        let n = c.counts();
        assert_eq!((n.grad_g, n.hvp, n.cross, n.grad_f), (5, 250, 5, 5));
    }
}
