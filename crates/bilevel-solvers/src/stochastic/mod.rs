//! Stochastic bilevel solvers for finite sums (docs/ALGORITHMS.md §5).
//!
//! `g(x, y) = (1/n) Σ_i g_i(x, y) + r_g`, `f(x, y) = (1/m) Σ_j f_j(x, y) + r_f`, seen only through the
//! minibatch oracles of [`Bilevel`] (`*_batch`, one counted call per batch evaluation; problems that
//! are not finite sums have one sample and the batch oracles are the full ones).
//!
//! Every solver implements [`StochasticStep`]: one iteration `t` draws its batches from the
//! [`Context`] (an inner sampler over g's n samples, an outer one over f's m samples, a random
//! stream for randomised depths), updates `y`, its auxiliary variables and `x` in place, and must
//! not allocate after its first call. [`Stochastic`] turns a step into a [`BilevelSolver`] for the
//! shared executor: one executor iteration runs `record_every` stochastic iterations (the
//! evaluation frequency of the reference benchmark), then reports `f` and `‖∇_y g‖` on the full
//! data (counted as diagnostics, not against the budget) and the last direction applied to `x`;
//! `extra` carries `iterations` (stochastic iterations so far) and the solver's scalars.
//!
//! Common parameters ([`Common`]): inner step ρ, outer step `γ = ρ / outer_ratio`, batch size (64,
//! the same for both levels), sampling scheme (contiguous chunks reshuffled every pass, or uniform),
//! seed, and an optional box on `x`. Step schedules are `ρ_t = ρ/(t+1)^a`, `γ_t = γ/(t+1)^b`
//! ([`Schedule`]) with each solver's exponents.

use crate::validate::positive;
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::rng::Rng;
use bilevel_core::{Batch, BatchSampler, Bilevel, Counted, Level, Scheme, Vector};
use serde::{Deserialize, Serialize};

/// Defines a stochastic solver's configuration: the eight [`Common`] keys first (defaults of
/// [`Common::with_steps`] with the given ρ and outer ratio), then the solver's own keys with their
/// defaults, each with an optional check (`=> rule`, a `fn(prefix, name, value)` from
/// [`crate::validate`]). Generates the struct (every key optional, unknown keys rejected),
/// `Default`, `common()` and `validate(prefix)`: the common checks, then the keys' rules in
/// order, then the optional `check` function `fn(&Self, prefix)`.
macro_rules! stochastic_config {
    (
        $(#[$doc:meta])*
        $name:ident (step_size = $rho:expr, outer_ratio = $ratio:expr $(, check = $extra:path)?) {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr $(=> $rule:path)? ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Inner step ρ.
            pub step_size: f64,
            /// γ = ρ / outer_ratio.
            pub outer_ratio: f64,
            /// Minibatch size (both levels).
            pub batch_size: usize,
            /// Minibatch scheme (`"chunks"` or `"uniform"`).
            pub sampling: bilevel_core::Scheme,
            /// Seed of the samplers and of randomised depths.
            pub seed: u64,
            /// Stochastic iterations per record.
            pub record_every: usize,
            /// Optional box on `x`.
            pub x_min: Option<f64>,
            /// See `x_min`.
            pub x_max: Option<f64>,
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                let c = $crate::stochastic::Common::with_steps($rho, $ratio);
                $name {
                    step_size: c.step_size,
                    outer_ratio: c.outer_ratio,
                    batch_size: c.batch_size,
                    sampling: c.sampling,
                    seed: c.seed,
                    record_every: c.record_every,
                    x_min: c.x_min,
                    x_max: c.x_max,
                    $( $field: $default, )*
                }
            }
        }

        impl $name {
            /// The shared parameters.
            pub fn common(&self) -> $crate::stochastic::Common {
                $crate::stochastic::Common {
                    step_size: self.step_size,
                    outer_ratio: self.outer_ratio,
                    batch_size: self.batch_size,
                    sampling: self.sampling,
                    seed: self.seed,
                    record_every: self.record_every,
                    x_min: self.x_min,
                    x_max: self.x_max,
                }
            }
            /// Check values; errors name the field (`prefix.field`) and the value.
            pub fn validate(&self, prefix: &str) -> Result<(), String> {
                self.common().validate(prefix)?;
                $( $( $rule(prefix, stringify!($field), self.$field)?; )? )*
                $( $extra(self, prefix)?; )?
                Ok(())
            }
        }
    };
}

pub mod amigo;
pub mod bsa;
pub mod f2sa_stoch;
pub mod fsla;
mod inner;
pub mod mrbo;
mod neumann;
pub mod saba;
pub mod soba;
pub mod srba;
pub mod stocbio;
pub mod sustain;
pub mod ttsa;
pub mod vrbo;

/// Parameters shared by every stochastic solver.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Inner step ρ (on `y` and the auxiliary variables).
    pub step_size: f64,
    /// `γ = ρ / outer_ratio` is the outer step on `x`.
    pub outer_ratio: f64,
    /// Minibatch size of both levels (clamped to the number of samples).
    pub batch_size: usize,
    /// Minibatch scheme.
    pub sampling: Scheme,
    /// Seed of the samplers and of randomised depths.
    pub seed: u64,
    /// Stochastic iterations per executor iteration (per record).
    pub record_every: usize,
    /// Optional box `[x_min, x_max]` on every coordinate of `x` (projection after each step).
    pub x_min: Option<f64>,
    /// See `x_min`.
    pub x_max: Option<f64>,
}

impl Common {
    /// Common parameters with inner step `step_size` and ratio `outer_ratio`, batch 64, chunks,
    /// seed 0, a record every 64 iterations, no box.
    pub const fn with_steps(step_size: f64, outer_ratio: f64) -> Self {
        Common {
            step_size,
            outer_ratio,
            batch_size: 64,
            sampling: Scheme::Chunks,
            seed: 0,
            record_every: 64,
            x_min: None,
            x_max: None,
        }
    }

    /// Check values; errors name the field (`prefix.field`).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "step_size", self.step_size)?;
        positive(prefix, "outer_ratio", self.outer_ratio)?;
        if self.batch_size == 0 {
            return Err(format!("{prefix}.batch_size: must be at least 1 (got 0)"));
        }
        if self.record_every == 0 {
            return Err(format!("{prefix}.record_every: must be at least 1 (got 0)"));
        }
        for (name, v) in [("x_min", self.x_min), ("x_max", self.x_max)] {
            if v.is_some_and(f64::is_nan) {
                return Err(format!("{prefix}.{name}: must be a number (got NaN)"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.x_min, self.x_max) {
            if lo > hi {
                return Err(format!(
                    "{prefix}.x_min: must not exceed x_max = {hi} (got {lo})"
                ));
            }
        }
        Ok(())
    }

    /// `x ← clip(x, x_min, x_max)`.
    pub fn project_x(&self, x: &mut [f64]) {
        if let Some(lo) = self.x_min {
            x.iter_mut().for_each(|v| *v = v.max(lo));
        }
        if let Some(hi) = self.x_max {
            x.iter_mut().for_each(|v| *v = v.min(hi));
        }
    }
}

/// Decreasing steps `ρ_t = ρ/(t+1)^a` (inner) and `γ_t = γ/(t+1)^b` (outer), `γ = ρ/outer_ratio`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// ρ.
    pub inner: f64,
    /// γ.
    pub outer: f64,
    /// Exponent a.
    pub inner_exponent: f64,
    /// Exponent b.
    pub outer_exponent: f64,
}

impl Schedule {
    /// The schedule of `common` with exponents `(a, b)`.
    pub fn new(common: &Common, a: f64, b: f64) -> Self {
        Schedule {
            inner: common.step_size,
            outer: common.step_size / common.outer_ratio,
            inner_exponent: a,
            outer_exponent: b,
        }
    }
    /// `(ρ_t, γ_t)` at iteration `t` (0-based).
    #[inline]
    pub fn at(&self, t: usize) -> (f64, f64) {
        let s = (t + 1) as f64;
        let pow = |e: f64| if e == 0.0 { 1.0 } else { s.powf(e) };
        (
            self.inner / pow(self.inner_exponent),
            self.outer / pow(self.outer_exponent),
        )
    }
}

/// The random sources of a run: an inner sampler over g's samples, an outer sampler over f's, a
/// stream for randomised choices, and the iteration counter. Saved in checkpoints, so that a
/// resumed run draws the same batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Stochastic iterations completed.
    pub t: usize,
    /// Batches of lower samples.
    pub inner: BatchSampler,
    /// Batches of upper samples.
    pub outer: BatchSampler,
    /// Randomised depths (BSA, TTSA, …).
    pub rng: Rng,
}

impl Context {
    /// Samplers for `p` from `common` (sub-streams 1, 2, 3 of the seed).
    pub fn new<P: Bilevel + ?Sized>(p: &P, common: &Common) -> Result<Self, SolverError> {
        let sampler = |level: Level, stream: u64| {
            let n = p.sample_count(level);
            BatchSampler::new(
                n,
                common.batch_size,
                common.sampling,
                Rng::substream(common.seed, stream).next_u64(),
            )
            .ok_or_else(|| {
                SolverError::Config(format!(
                    "problem '{}' reports {n} {level:?} samples and batch_size is {}: both must be ≥ 1",
                    p.name(),
                    common.batch_size
                ))
            })
        };
        Ok(Context {
            t: 0,
            inner: sampler(Level::Lower, 1)?,
            outer: sampler(Level::Upper, 2)?,
            rng: Rng::substream(common.seed, 3),
        })
    }
    /// Next batch of lower samples.
    #[inline]
    pub fn inner_batch(&mut self) -> Batch<'_> {
        self.inner.next_batch()
    }
    /// Next batch of upper samples.
    #[inline]
    pub fn outer_batch(&mut self) -> Batch<'_> {
        self.outer.next_batch()
    }
}

/// One stochastic solver: its update for one iteration.
pub trait StochasticStep<P: Bilevel + ?Sized> {
    /// Identifier used in configs and outputs.
    fn name(&self) -> &'static str;
    /// The shared parameters.
    fn common(&self) -> &Common;
    /// Check that the problem suits the solver (for example SABA's memory needs chunk
    /// sampling); called once before the first step.
    fn check(&self, _p: &P, _ctx: &Context) -> Result<(), SolverError> {
        Ok(())
    }
    /// Iteration `ctx.t`: draw batches, update `state.y`, auxiliaries and `state.x` (then the
    /// adapter projects `x` on the box). Workspaces are sized at the first call; later calls must
    /// not allocate.
    fn step(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        ctx: &mut Context,
    ) -> Result<(), SolverError>;
    /// The direction applied to `x` by the last step (`x ← x − γ_t d`).
    fn direction(&self) -> &[f64];
    /// See [`BilevelSolver::estimates_hypergradient`].
    fn estimates_hypergradient(&self) -> bool {
        true
    }
    /// Solver-specific scalars (name, value) reported with each record.
    fn extra(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// Auxiliary state (the `v` iterate, memories, momenta) for checkpoints; the default, for
    /// solvers that keep nothing besides `(x, y)` and the [`Context`], is `{}`.
    fn save(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    /// Restore what [`StochasticStep::save`] wrote (the default accepts anything).
    fn load(&mut self, _saved: &serde_json::Value) -> Result<(), SolverError> {
        Ok(())
    }
}

/// A [`StochasticStep`] as a [`BilevelSolver`]: each `hypergradient` call runs `record_every`
/// iterations (moving `x` itself; `upper_step` does nothing) and reports at the iterate reached.
pub struct Stochastic<S> {
    step: S,
    ctx: Option<Context>,
    record_time_s: f64,
}

impl<S> Stochastic<S> {
    /// Wrap a solver.
    pub fn new(step: S) -> Self {
        Stochastic {
            step,
            ctx: None,
            record_time_s: 0.0,
        }
    }
    /// The wrapped solver.
    pub fn inner(&self) -> &S {
        &self.step
    }
    /// Stochastic iterations completed.
    pub fn iterations(&self) -> usize {
        self.ctx.as_ref().map_or(0, |c| c.t)
    }

    /// Run `iterations` steps on `p` from `state` (no records: for benchmarks and tests).
    pub fn advance<P: Bilevel + ?Sized>(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        iterations: usize,
    ) -> Result<(), SolverError>
    where
        S: StochasticStep<P>,
    {
        if self.ctx.is_none() {
            let ctx = Context::new(p, self.step.common())?;
            self.step.check(p.inner(), &ctx)?;
            self.ctx = Some(ctx);
        }
        let ctx = self.ctx.as_mut().expect("context set above");
        let common = *self.step.common();
        for _ in 0..iterations {
            self.step.step(p, state, ctx)?;
            common.project_x(&mut state.x);
            ctx.t += 1;
        }
        Ok(())
    }
}

impl<P: Bilevel + ?Sized, S: StochasticStep<P>> BilevelSolver<P> for Stochastic<S> {
    fn name(&self) -> &'static str {
        self.step.name()
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        _with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let every = self.step.common().record_every;
        self.advance(p, state, every)?;
        let t = self.iterations();
        // Full-data evaluation for the record: diagnostics, outside the budget and the time.
        let clock = std::time::Instant::now();
        let (f, lower) = p.diagnostic(|| {
            let mut gy = state.y.zeros_like();
            p.grad_g_y(&state.x, &state.y, &mut gy);
            (p.f(&state.x, &state.y), gy.norm())
        });
        self.record_time_s = clock.elapsed().as_secs_f64();
        if !lower.is_finite() || !f.is_finite() {
            return Err(SolverError::NonFinite(format!(
                "{}: iteration {t}: f = {f}, ‖∇_y g‖ = {lower}",
                self.step.name()
            )));
        }
        let mut extra = vec![("iterations".to_string(), t as f64)];
        extra.extend(self.step.extra());
        Ok(StepReport {
            f,
            lower_grad_norm: lower,
            hypergradient: self.step.direction().to_vec(),
            diagnostics: None,
            selection: None,
            extra,
            ..StepReport::default()
        })
    }

    /// `x` moved inside `hypergradient` (the stochastic step).
    fn upper_optimizer(&mut self) -> Option<&mut crate::upper::UpperOptimizer> {
        None
    }

    fn estimates_hypergradient(&self) -> bool {
        self.step.estimates_hypergradient()
    }

    fn record_only_time_s(&self) -> f64 {
        self.record_time_s
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({
            "context": self.ctx,
            "solver": self.step.save(),
        })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        let ctx = saved
            .get("context")
            .ok_or_else(|| SolverError::Checkpoint("missing 'context'".into()))?;
        self.ctx = serde_json::from_value(ctx.clone())
            .map_err(|e| SolverError::Checkpoint(format!("context: {e}")))?;
        let s = saved
            .get("solver")
            .ok_or_else(|| SolverError::Checkpoint("missing 'solver'".into()))?;
        self.step.load(s)
    }
}

/// `serde_json` value of a saved field, or a checkpoint error naming it.
pub(crate) fn load_field<T: serde::de::DeserializeOwned>(
    saved: &serde_json::Value,
    field: &str,
) -> Result<T, SolverError> {
    let v = saved
        .get(field)
        .ok_or_else(|| SolverError::Checkpoint(format!("missing '{field}'")))?;
    serde_json::from_value(v.clone()).map_err(|e| SolverError::Checkpoint(format!("{field}: {e}")))
}

/// The direction `d` saved in a checkpoint, checked to have `len` entries (`solver` names the
/// solver in the error).
pub(crate) fn load_direction(
    saved: &serde_json::Value,
    solver: &str,
    len: usize,
) -> Result<Vec<f64>, SolverError> {
    let d: Vec<f64> = load_field(saved, "d")?;
    if d.len() != len {
        return Err(SolverError::Checkpoint(format!(
            "{solver}: d has length {} (expected {len})",
            d.len()
        )));
    }
    Ok(d)
}

/// `x ← x − γ d` on slices.
#[inline]
pub(crate) fn descend(x: &mut [f64], gamma: f64, d: &[f64]) {
    bilevel_core::vector::axpy(x, -gamma, d);
}

#[cfg(test)]
mod family_tests;
#[cfg(test)]
pub(crate) mod testkit;
