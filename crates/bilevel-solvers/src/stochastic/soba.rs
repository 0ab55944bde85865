//! SOBA: StOchastic Bilevel Algorithm (Dagréou, Ablin, Vaiter & Moreau, NeurIPS 2022),
//! docs/ALGORITHMS.md §5.
//!
//! One iteration `t` with an inner batch `i` (g's samples) and an outer batch `j` (f's samples),
//! every oracle at the current `(x, y, v)`:
//!
//! * `y ← y − ρ_t ∇_y g_i(x, y)`,
//! * `v ← v − ρ_t (H_i v − ∇_y f_j)` (SGD on `½vᵀHv − ∇_y fᵀv`, whose minimiser is `H⁻¹∇_y f`),
//! * `x ← x − γ_t d`, `d = ∇_x f_j − J_i v`,
//!
//! with `ρ_t = ρ/(t+1)^a`, `γ_t = (ρ/outer_ratio)/(t+1)^b`; defaults a = b = ½ (the paper's
//! decreasing steps; set both to 0 for the reference benchmark's constant steps), ρ = 0.1,
//! outer_ratio = 1, batch 64. Per iteration: one lower batch (gradient, HVP and cross product in
//! one call) and one upper batch gradient.

use super::{descend, load_field, Common, Context, Schedule, StochasticStep};
use crate::validate::nonnegative;
use crate::{SolverError, State};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::Serialize;

stochastic_config! {
    /// SOBA configuration.
    SobaConfig (step_size = 0.1, outer_ratio = 1.0) {
        /// Exponent a of `ρ_t = ρ/(t+1)^a`.
        inner_exponent: f64 = 0.5 => nonnegative,
        /// Exponent b of `γ_t = γ/(t+1)^b`.
        outer_exponent: f64 = 0.5 => nonnegative,
    }
}

/// SOBA (see the module documentation).
pub struct Soba<Y> {
    common: Common,
    schedule: Schedule,
    /// Auxiliary iterate v ≈ H⁻¹∇_y f.
    v: Option<Y>,
    work: Option<Work<Y>>,
    d: Vec<f64>,
}

struct Work<Y> {
    gy: Y,
    hv: Y,
    fy: Y,
    jv: Vec<f64>,
}

impl<Y> Soba<Y> {
    /// A solver for an upper variable of dimension `m`.
    pub fn new(cfg: SobaConfig, m: usize) -> Self {
        let common = cfg.common();
        Soba {
            schedule: Schedule::new(&common, cfg.inner_exponent, cfg.outer_exponent),
            common,
            v: None,
            work: None,
            d: vec![0.0; m],
        }
    }
}

impl<P: Bilevel + ?Sized> StochasticStep<P> for Soba<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "soba"
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
        let y = &mut state.y;
        let v = self.v.get_or_insert_with(|| y.zeros_like());
        let w = self.work.get_or_insert_with(|| Work {
            gy: y.zeros_like(),
            hv: y.zeros_like(),
            fy: y.zeros_like(),
            jv: vec![0.0; state.x.len()],
        });
        let (rho, gamma) = self.schedule.at(ctx.t);
        let x = &mut state.x;
        p.lower_batch(x, y, &ctx.inner_batch(), v, &mut w.gy, &mut w.hv, &mut w.jv);
        p.grad_f_batch(x, y, &ctx.outer_batch(), &mut self.d, &mut w.fy);
        // d = ∇_x f_j − J_i v.
        bilevel_core::vector::axpy(&mut self.d, -1.0, &w.jv);
        y.axpy(-rho, &w.gy);
        p.project_y(y);
        // v ← v − ρ(H_i v − ∇_y f_j).
        v.axpy(-rho, &w.hv);
        v.axpy(rho, &w.fy);
        descend(x, gamma, &self.d);
        Ok(())
    }

    fn direction(&self) -> &[f64] {
        &self.d
    }

    fn save(&self) -> serde_json::Value {
        serde_json::json!({ "v": self.v })
    }

    fn load(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        self.v = load_field(saved, "v")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stochastic::testkit::{self, Full};

    /// With one batch holding all the data, two iterations are the full-batch SOBA update.
    #[test]
    fn full_batch_iterations_match_the_update_by_hand() {
        let p = testkit::quadratic();
        let cfg = SobaConfig {
            batch_size: 10_000,
            ..SobaConfig::default()
        };
        let sched = Schedule::new(&cfg.common(), 0.5, 0.5);
        let (mut x, mut y) = testkit::start(&p);
        let mut v = vec![0.0; y.len()];
        for t in 0..2 {
            let (rho, gamma) = sched.at(t);
            let o = Full::at(&p, &x, &y, &v);
            let d: Vec<f64> = o.fx.iter().zip(&o.jv).map(|(a, b)| a - b).collect();
            y.iter_mut().zip(&o.gy).for_each(|(a, g)| *a -= rho * g);
            v.iter_mut()
                .zip(o.hv.iter().zip(&o.fy))
                .for_each(|(a, (h, f))| *a -= rho * (h - f));
            x.iter_mut().zip(&d).for_each(|(a, g)| *a -= gamma * g);
        }
        let state = testkit::run_steps(&p, Soba::new(cfg, x.len()), 2);
        testkit::assert_close(&state.x, &x, "x");
        testkit::assert_close(&state.y, &y, "y");
    }
}
