//! BSA: bilevel stochastic approximation (Ghadimi & Wang, "Approximation Methods for Bilevel
//! Programming", arXiv:1802.02246, 2018), docs/ALGORITHMS.md §5.
//!
//! One iteration `t`:
//!
//! 1. `K` SGD steps on the lower level (warm-started), each on a fresh lower batch `i_k`:
//!    `y ← Π(y − ρ_t ∇_y g_{i_k}(x, y))`;
//! 2. an upper batch `j`: `(∇_x f_j, ∇_y f_j)` at `(x, y)`;
//! 3. the randomly truncated Neumann estimate (HIA, the paper's Algorithm 3) of `H⁻¹∇_y f_j`:
//!    draw `p` uniformly from `{0, …, Q−1}` (from the run's random stream `ctx.rng`), then with
//!    `p` fresh lower batches `k_1 … k_p` and step η,
//!    `v = Q η Π_{l≤p} (I − η H_{k_l}) ∇_y f_j` (`p` HVPs; in expectation over `p`,
//!    `η Σ_{q<Q} (I − ηH)^q ∇_y f`);
//! 4. a fresh lower batch `i`: `d = ∇_x f_j − J_i v`, `x ← x − γ_t d`.
//!
//! Steps `ρ_t = ρ/(t+1)^a`, `γ_t = (ρ/outer_ratio)/(t+1)^b` with the paper's a = b = ½; η is
//! constant. The reference benchmark (benchopt `benchmark_bilevel`, `solvers/bsa.py`) runs K
//! warm-up inner steps before its first iteration and the inner steps after the outer step, the
//! same sequence of updates as running them first. Per iteration: `K + p + 1` lower batches and
//! one upper gradient (`E[p] = (Q − 1)/2`).
//!
//! Defaults: ρ = 0.1, outer_ratio = 1, batch 64, K = 10 as the reference, but Q = 50 and
//! η = 0.5 instead of Q = 10, η = ρ: the HIA's mean is the truncated Neumann series, whose bias
//! otherwise dominates (see [`super::stocbio`]; the reference's setting stalls at ‖∇φ‖² ≈ 0.65
//! of its start on the default quadratic benchmark). Measured with the defaults: 6.0e-4 on the
//! test instance and 1.0e-2 on the default benchmark after 3000 iterations. `extra` reports
//! the last drawn depth `hia_depth`.

use super::inner::DoubleLoop;
use super::{Common, Context, StochasticStep};
use crate::validate::{at_least_one, nonnegative, positive};
use crate::{SolverError, State};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// BSA configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BsaConfig {
    /// Inner step ρ.
    pub step_size: f64,
    /// γ = ρ / outer_ratio.
    pub outer_ratio: f64,
    /// Minibatch size (both levels).
    pub batch_size: usize,
    /// Minibatch scheme (`"chunks"` or `"uniform"`).
    pub sampling: bilevel_core::Scheme,
    /// Seed of the samplers and of the HIA depths.
    pub seed: u64,
    /// Stochastic iterations per record.
    pub record_every: usize,
    /// Optional box on `x`.
    pub x_min: Option<f64>,
    /// See `x_min`.
    pub x_max: Option<f64>,
    /// SGD steps K on the lower level per iteration.
    pub inner_steps: usize,
    /// HIA depth Q (p is uniform in `0..Q`).
    pub neumann_steps: usize,
    /// HIA step η (constant; below `2/L` of the minibatch Hessians).
    pub neumann_step: f64,
    /// Exponent a of `ρ_t = ρ/(t+1)^a`.
    pub inner_exponent: f64,
    /// Exponent b of `γ_t = γ/(t+1)^b`.
    pub outer_exponent: f64,
}

impl Default for BsaConfig {
    fn default() -> Self {
        let c = Common::with_steps(0.1, 1.0);
        BsaConfig {
            step_size: c.step_size,
            outer_ratio: c.outer_ratio,
            batch_size: c.batch_size,
            sampling: c.sampling,
            seed: c.seed,
            record_every: c.record_every,
            x_min: c.x_min,
            x_max: c.x_max,
            inner_steps: 10,
            neumann_steps: 50,
            neumann_step: 0.5,
            inner_exponent: 0.5,
            outer_exponent: 0.5,
        }
    }
}

impl BsaConfig {
    /// The shared parameters.
    pub fn common(&self) -> Common {
        common_of!(self)
    }
    /// Check values; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        self.common().validate(prefix)?;
        at_least_one(prefix, "inner_steps", self.inner_steps)?;
        at_least_one(prefix, "neumann_steps", self.neumann_steps)?;
        positive(prefix, "neumann_step", self.neumann_step)?;
        nonnegative(prefix, "inner_exponent", self.inner_exponent)?;
        nonnegative(prefix, "outer_exponent", self.outer_exponent)
    }
}

/// BSA (see the module documentation).
pub struct Bsa<Y> {
    core: DoubleLoop<Y>,
}

impl<Y: Vector> Bsa<Y> {
    /// A solver for an upper variable of dimension `m`.
    pub fn new(cfg: BsaConfig, m: usize) -> Self {
        Bsa {
            core: DoubleLoop::new(
                cfg.common(),
                (cfg.inner_exponent, cfg.outer_exponent),
                cfg.inner_steps,
                cfg.neumann_steps,
                cfg.neumann_step,
                true,
                m,
            ),
        }
    }
}

impl<P: Bilevel + ?Sized> StochasticStep<P> for Bsa<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "bsa"
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
        vec![("hia_depth".into(), self.core.last_draws as f64)]
    }
    /// Nothing besides `(x, y)` and the context (which holds the depth stream) carries over.
    fn save(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn load(&mut self, _saved: &serde_json::Value) -> Result<(), SolverError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stochastic::stocbio::checks::{self, axpy, sub};
    use crate::stochastic::testkit::{self, Full};
    use crate::stochastic::Schedule;
    use bilevel_core::rng::Rng;

    /// With one batch holding all the data, two iterations are the full-batch BSA update, the
    /// HIA depths drawn from the same stream as the solver's (`Rng::substream(seed, 3)`).
    #[test]
    fn full_batch_iterations_match_the_update_by_hand() {
        let p = testkit::quadratic();
        let cfg = BsaConfig {
            batch_size: 10_000,
            inner_steps: 3,
            neumann_steps: 6,
            neumann_step: 0.2,
            seed: 5,
            ..BsaConfig::default()
        };
        let sched = Schedule::new(&cfg.common(), 0.5, 0.5);
        let mut rng = Rng::substream(5, 3);
        let (mut x, mut y) = testkit::start(&p);
        for t in 0..2 {
            let (rho, gamma) = sched.at(t);
            checks::sgd(&p, &x, &mut y, rho, 3);
            let o = Full::at(&p, &x, &y, &y);
            let draws = rng.below(6) as usize;
            let v = checks::hia(&p, &x, &y, &o.fy, 0.2, 6, draws);
            let d = sub(&o.fx, &checks::jv(&p, &x, &y, &v));
            axpy(&mut x, -gamma, &d);
        }
        let state = testkit::run_steps(&p, Bsa::new(cfg, x.len()), 2);
        testkit::assert_close(&state.x, &x, "x");
        testkit::assert_close(&state.y, &y, "y");
    }

    /// Default parameters on the test quadratic (decreasing steps): ‖∇φ‖² falls to at most
    /// 2e-3 of its start in 3000 iterations (measured 6.0e-4).
    #[test]
    fn converges_on_the_quadratic_benchmark() {
        testkit::assert_converges(|m| Bsa::new(BsaConfig::default(), m), 3000, 2e-3);
    }

    #[test]
    fn config_errors_name_the_field() {
        let c = BsaConfig {
            neumann_steps: 0,
            ..BsaConfig::default()
        };
        assert!(c
            .validate("solver")
            .unwrap_err()
            .contains("solver.neumann_steps"));
        let c = BsaConfig {
            inner_exponent: f64::INFINITY,
            ..BsaConfig::default()
        };
        assert!(c.validate("solver").unwrap_err().contains("inner_exponent"));
    }

    /// The depth stream lives in the context: a resumed run is the uninterrupted one.
    #[test]
    fn checkpoint_round_trip_is_exact() {
        checks::checkpoint_round_trip(|m| Bsa::new(BsaConfig::default(), m));
    }

    /// The default quadratic benchmark (n = m = 1024, d = m_x = 100, μ = 0.1) with the default
    /// parameters: ‖∇φ‖² at most 3e-2 of its start after 3000 iterations (measured 1.0e-2).
    #[test]
    #[ignore = "slow: default-size benchmark"]
    fn default_benchmark_ratio() {
        checks::default_benchmark(|m| Bsa::new(BsaConfig::default(), m), 3000, 3e-2);
    }
}
