//! FSLA: Fully Single Loop Algorithm (Li, Gu & Huang, "A fully single loop algorithm for bilevel
//! optimization without Hessian inverse", AAAI 2022), docs/ALGORITHMS.md §5.
//!
//! One SGD step on `y`, one on the auxiliary `v ≈ H⁻¹∇_y f`, and a STORM-type momentum
//! variance-reduced hypergradient evaluated at the new and at the previous point with the same
//! samples. Iteration `t`, with fresh batches (inner `i₁, i₂, i₃`, outer `j₁, j₂`, as the
//! reference benchmark):
//!
//! * `y⁺ = y − ρ_t ∇_y g_{i₁}(x, y)`;
//! * `v⁺ = v − ρ_t (H_{i₂}(x, y⁺) v − ∇_y f_{j₁}(x, y⁺))`;
//! * `h(x, y, v) = ∇_x f_{j₂}(x, y) − J_{i₃}(x, y) v` at the new point `z = (x, y⁺, v⁺)` and at
//!   the previous iteration's point `z_old = (x_old, y, v)` (`x_old` the `x` before the previous
//!   outer step);
//! * `d = h(z) + (1 − α_t)(d − h(z_old))` (the first iteration: `d = h(z)`, the plain stochastic
//!   estimate; the reference starts from `d = 0`, `x_old = 0` instead);
//! * `x_old ← x`, `x ← x − γ_t d`.
//!
//! Schedules `ρ_t = ρ/(t+1)^a`, `γ_t = (ρ/outer_ratio)/(t+1)^b`, `α_t = min(1, α/(t+1)^c)`,
//! exponents a = b = c = ½ as in the reference benchmark (which ties α to ρ).
//!
//! Defaults: ρ = 0.2, outer_ratio = 1, α = 0.5, batch 64. Decreasing steps make the rate
//! sublinear and FSLA does not reach ‖∇φ‖² ≤ 1e-6·start in a practical number of iterations; the
//! documented bar is 1e-2 of the start. Measured ‖∇φ‖²/start after 1k / 5k / 20k / 50k
//! iterations on the default quadratic benchmark (n = m = 1024, d = m_x = 100): ρ = 0.1:
//! 5.6e-1 / 1.3e-1 / 7.1e-3 / 6.9e-4; ρ = 0.2: 1.8e-1 / 8.5e-3 / 6.8e-4 / 4.9e-4; ρ = 0.4:
//! 2.0e-2 / 1.4e-3 / 8.3e-4 / 6.8e-4 (α between 0.1 and 1 changes these by less than a third);
//! ρ = 0.2 is the best compromise there and on the test instance of the unit tests. Per
//! iteration: one lower gradient, one HVP, two cross products and three upper gradients (one for
//! `v`, two for the hypergradient).

use super::{descend, load_direction, load_field, Common, Context, Schedule, StochasticStep};
use crate::validate::{fraction, nonnegative};
use crate::{SolverError, State};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

stochastic_config! {
    /// FSLA configuration.
    FslaConfig (step_size = 0.2, outer_ratio = 1.0) {
        /// Exponent a of `ρ_t = ρ/(t+1)^a`.
        inner_exponent: f64 = 0.5 => nonnegative,
        /// Exponent b of `γ_t = γ/(t+1)^b`.
        outer_exponent: f64 = 0.5 => nonnegative,
        /// α of the momentum weight `α_t = min(1, α/(t+1)^c)` (1: no momentum at t = 0).
        momentum: f64 = 0.5 => fraction,
        /// Exponent c of `α_t`.
        momentum_exponent: f64 = 0.5 => nonnegative,
    }
}

/// The state carried between iterations (saved in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Aux<Y> {
    /// Auxiliary iterate v ≈ H⁻¹∇_y f.
    v: Y,
    /// `x` before the last outer step (the previous hypergradient point).
    x_old: Vec<f64>,
    /// Whether `d` and `x_old` hold a previous iteration's values.
    primed: bool,
}

/// FSLA (see the module documentation).
pub struct Fsla<Y> {
    common: Common,
    schedule: Schedule,
    momentum: f64,
    momentum_exponent: f64,
    aux: Option<Aux<Y>>,
    work: Option<Work<Y>>,
    /// The momentum direction `d`.
    d: Vec<f64>,
}

struct Work<Y> {
    /// `y` and `v` before this iteration's steps (the previous hypergradient point).
    y_old: Y,
    v_old: Y,
    gy: Y,
    hv: Y,
    fy: Y,
    fx: Vec<f64>,
    jv: Vec<f64>,
    fx_old: Vec<f64>,
    jv_old: Vec<f64>,
}

impl<Y> Fsla<Y> {
    /// A solver for an upper variable of dimension `m`.
    pub fn new(cfg: FslaConfig, m: usize) -> Self {
        let common = cfg.common();
        Fsla {
            schedule: Schedule::new(&common, cfg.inner_exponent, cfg.outer_exponent),
            common,
            momentum: cfg.momentum,
            momentum_exponent: cfg.momentum_exponent,
            aux: None,
            work: None,
            d: vec![0.0; m],
        }
    }

    /// `α_t`.
    fn alpha(&self, t: usize) -> f64 {
        let s = (t + 1) as f64;
        let pow = if self.momentum_exponent == 0.0 {
            1.0
        } else {
            s.powf(self.momentum_exponent)
        };
        (self.momentum / pow).min(1.0)
    }
}

impl<P: Bilevel + ?Sized> StochasticStep<P> for Fsla<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "fsla"
    }
    fn common(&self) -> &Common {
        &self.common
    }

    fn step(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        ctx: &mut Context,
    ) -> Result<(), SolverError> {
        let alpha = self.alpha(ctx.t);
        let x = &mut state.x;
        let y = &mut state.y;
        let mx = x.len();
        let aux = self.aux.get_or_insert_with(|| Aux {
            v: y.zeros_like(),
            x_old: vec![0.0; mx],
            primed: false,
        });
        let w = self.work.get_or_insert_with(|| Work {
            y_old: y.zeros_like(),
            v_old: y.zeros_like(),
            gy: y.zeros_like(),
            hv: y.zeros_like(),
            fy: y.zeros_like(),
            fx: vec![0.0; mx],
            jv: vec![0.0; mx],
            fx_old: vec![0.0; mx],
            jv_old: vec![0.0; mx],
        });
        let (rho, gamma) = self.schedule.at(ctx.t);
        let v = &mut aux.v;

        // y⁺ = y − ρ ∇_y g_{i₁}(x, y).
        p.grad_g_y_batch(x, y, &ctx.inner.next_batch(), &mut w.gy);
        w.y_old.assign(y);
        y.axpy(-rho, &w.gy);
        p.project_y(y);
        // v⁺ = v − ρ(H_{i₂} v − ∇_y f_{j₁}) at (x, y⁺).
        p.hvp_batch(x, y, &ctx.inner.next_batch(), v, &mut w.hv);
        p.grad_f_batch(x, y, &ctx.outer.next_batch(), &mut w.fx, &mut w.fy);
        w.v_old.assign(v);
        v.axpy(-rho, &w.hv);
        v.axpy(rho, &w.fy);
        // h at the new point and, with the same batches, at the previous one.
        let batch = ctx.outer.next_batch();
        p.grad_f_batch(x, y, &batch, &mut w.fx, &mut w.fy);
        if aux.primed {
            p.grad_f_batch(&aux.x_old, &w.y_old, &batch, &mut w.fx_old, &mut w.fy);
        }
        let batch = ctx.inner.next_batch();
        p.cross_batch(x, y, &batch, v, &mut w.jv);
        if aux.primed {
            p.cross_batch(&aux.x_old, &w.y_old, &batch, &w.v_old, &mut w.jv_old);
            // d = h + (1 − α)(d − h_old).
            let new = w.fx.iter().zip(&w.jv);
            let old = w.fx_old.iter().zip(&w.jv_old);
            for (dk, ((fx, jv), (fo, jo))) in self.d.iter_mut().zip(new.zip(old)) {
                *dk = (fx - jv) + (1.0 - alpha) * (*dk - (fo - jo));
            }
        } else {
            for (dk, (fx, jv)) in self.d.iter_mut().zip(w.fx.iter().zip(&w.jv)) {
                *dk = fx - jv;
            }
        }
        aux.x_old.copy_from_slice(x);
        aux.primed = true;
        descend(x, gamma, &self.d);
        Ok(())
    }

    fn direction(&self) -> &[f64] {
        &self.d
    }

    fn save(&self) -> serde_json::Value {
        serde_json::json!({ "aux": self.aux, "d": self.d })
    }

    fn load(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        let d = load_direction(saved, "fsla", self.d.len())?;
        self.aux = load_field(saved, "aux")?;
        self.d = d;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stochastic::testkit::{self, Full};
    use crate::stochastic::Stochastic;

    /// `∇_x f − J v` on the full data.
    fn h(p: &testkit::Quad, x: &[f64], y: &[f64], v: &[f64]) -> Vec<f64> {
        let o = Full::at(p, x, y, v);
        o.fx.iter().zip(&o.jv).map(|(f, j)| f - j).collect()
    }

    /// With one batch holding all the data, three iterations (the plain first one, then two
    /// momentum corrections) are the update computed by hand.
    #[test]
    fn full_batch_iterations_match_the_update_by_hand() {
        let p = testkit::quadratic();
        let cfg = FslaConfig {
            batch_size: 10_000,
            ..FslaConfig::default()
        };
        let sched = Schedule::new(&cfg.common(), 0.5, 0.5);
        let (mut x, mut y) = testkit::start(&p);
        let mut v = vec![0.0; y.len()];
        let mut d = vec![0.0; x.len()];
        let mut x_old = x.clone();
        for t in 0..3 {
            let (rho, gamma) = sched.at(t);
            let alpha = (cfg.momentum / ((t + 1) as f64).sqrt()).min(1.0);
            let gy = Full::at(&p, &x, &y, &v).gy;
            let y_old = y.clone();
            y.iter_mut().zip(&gy).for_each(|(a, g)| *a -= rho * g);
            let o = Full::at(&p, &x, &y, &v);
            let v_old = v.clone();
            v.iter_mut()
                .zip(o.hv.iter().zip(&o.fy))
                .for_each(|(a, (h, f))| *a -= rho * (h - f));
            let hn = h(&p, &x, &y, &v);
            if t == 0 {
                d = hn;
            } else {
                let ho = h(&p, &x_old, &y_old, &v_old);
                for k in 0..d.len() {
                    d[k] = hn[k] + (1.0 - alpha) * (d[k] - ho[k]);
                }
            }
            x_old = x.clone();
            x.iter_mut().zip(&d).for_each(|(a, g)| *a -= gamma * g);
        }
        let state = testkit::run_steps(&p, Fsla::new(cfg, x.len()), 3);
        testkit::assert_close(&state.x, &x, "x");
        testkit::assert_close(&state.y, &y, "y");
    }

    /// Default parameters on the default quadratic benchmark (n = m = 1024, d = m_x = 100) and on
    /// the test instance: ‖∇φ‖²/start after 1k, 5k, 20k iterations (1e-6 is out of reach of
    /// decreasing steps; the bar is 1e-2 at 20k).
    #[test]
    #[ignore = "default benchmark (about 10 s)"]
    fn default_benchmark_progress() {
        let big = bilevel_problems::WithDerivatives::analytic(
            bilevel_problems::Quadratic::new(bilevel_problems::QuadraticParams::default()).unwrap(),
        );
        for (name, p) in [
            ("default benchmark", big),
            ("test instance", testkit::quadratic()),
        ] {
            let (x, y) = testkit::start(&p);
            let start = testkit::grad_phi_sq(&p, &x);
            let mut state = State { x, y, iteration: 0 };
            let c = Counted::new(&p);
            let mut s = Stochastic::new(Fsla::new(FslaConfig::default(), p.dim_x()));
            let n = p.sample_count(bilevel_core::Level::Lower);
            let m = p.sample_count(bilevel_core::Level::Upper);
            let b_in = n as f64 / n.div_ceil(64.min(n)) as f64;
            let b_out = m as f64 / m.div_ceil(64.min(m)) as f64;
            let mut r = 1.0;
            for k in [1_000, 5_000, 20_000] {
                s.advance(&c, &mut state, k - s.iterations()).unwrap();
                r = testkit::grad_phi_sq(&p, &state.x) / start;
                // Per iteration: ∇_y g, H v and two J v on lower batches, three ∇f on upper
                // ones; a pass is n + m sample-level evaluations.
                let passes = k as f64 * (4.0 * b_in + 3.0 * b_out) / (n + m) as f64;
                eprintln!("fsla, {name}: {k} iterations, {passes:.0} passes, ratio {r:e}");
            }
            assert!(r <= 1e-2, "{name}: {r:e}");
        }
    }
}
