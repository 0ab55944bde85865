//! # bilevel-solvers
//!
//! Bilevel algorithms on one executor.
//!
//! * [`BilevelSolver`]: what every algorithm implements — a lower-level (and, for HG-MS,
//!   selection) phase followed by a hypergradient at the current `x`, then an upper step;
//! * [`hgms`]: select-then-differentiate (HG-MS), our flagship;
//! * [`aid`]: approximate implicit differentiation with CG or Neumann (the classical baseline);
//! * [`itd`]: iterative differentiation, reverse mode through `T` unrolled lower-level steps;
//! * [`implicit`]: exact implicit reference (Newton-CG lower solve to tolerance, then the implicit
//!   formula) — the reference `φ(x)` and `∇φ(x)`;
//! * [`bome`]: BOME, first-order value-gap method with a joint `(x, y)` step;
//! * [`f2sa`]: F2SA, fully first-order penalty Lagrangian with an auxiliary lower variable `z`;
//! * [`pbgd`]: V-PBGD / G-PBGD, penalty methods with a ramped penalty γ and a joint step;
//! * [`galet`]: GALET, `w` by gradient descent on `½‖H w + ∇_y f‖²` (PL lower levels);
//! * [`pzobo`]: PZOBO, Hessian-free zeroth-order estimate through the `T`-step map;
//! * [`executor`]: the loop with budgets (iterations, oracle calls, wall time), divergence checks
//!   and observers ([`observers`]: JSON-lines trace, checkpoints; the CLI adds a progress bar);
//! * [`upper`]: upper-level steps (plain, Adam, box projection) shared by all solvers;
//! * [`lower`]: gradient descent on `g(x, ·)` shared by all solvers.
//!
//! BOME and PBGD take a joint `(x, y)` step: their `hypergradient` moves `y` itself and returns
//! the `x` part of the direction, which `upper_step` applies. Solver-specific scalars (BOME's λ
//! and `q`, PBGD's γ, F2SA's λ, …) are reported in [`StepReport::extra`].
//!
//! ```
//! use bilevel_problems::{CircleCenter, WithDerivatives};
//! use bilevel_solvers::executor::{run, Budget, InitialCounts, RunOptions};
//! use bilevel_solvers::hgms::{Hgms, HgmsConfig};
//! use bilevel_solvers::State;
//!
//! // circle-center: φ(x) = ½(‖x − b‖ − R)²; HG-MS drives x onto the circle ‖x − b‖ = R.
//! let b = [0.3, -0.2];
//! let problem = WithDerivatives::analytic(CircleCenter::new(1.5, &b).unwrap());
//! let mut solver = Hgms::new(HgmsConfig::default(), 2);
//! let opts = RunOptions {
//!     budget: Budget { max_iter: 400, hypergradient_tol: Some(1e-8), ..Budget::default() },
//!     ..RunOptions::default()
//! };
//! let start = State { x: vec![2.0, 1.0], y: vec![3.5, 1.0], iteration: 0 };
//! let out = run(&problem, &mut solver, start, &opts, InitialCounts::default(), &mut []).unwrap();
//! let x = &out.state.x;
//! let dist = ((x[0] - b[0]).powi(2) + (x[1] - b[1]).powi(2)).sqrt();
//! assert!((dist - 1.5).abs() < 1e-6);
//! ```

#![deny(missing_docs)]

pub mod aid;
pub mod bome;
pub mod executor;
pub mod f2sa;
pub mod galet;
pub mod hgms;
pub mod implicit;
pub mod itd;
pub mod lower;
pub mod observers;
pub mod pbgd;
pub mod pzobo;
pub mod stochastic;
pub mod upper;

#[cfg(test)]
mod testutil;

use bilevel_core::hypergrad::HypergradDiagnostics;
use bilevel_core::{Bilevel, Counted};
use serde::{Deserialize, Serialize};

/// The iterate `(x, y)` and the outer iteration count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State<Y> {
    /// Upper variable.
    pub x: Vec<f64>,
    /// Lower variable.
    pub y: Y,
    /// Outer iterations completed.
    pub iteration: usize,
}

/// What one hypergradient evaluation found (at `state.x`, after the lower/selection phase).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// `f(x, y)` at the point the hypergradient was taken.
    pub f: f64,
    /// `‖∇_y g(x, y)‖` there (lower-level optimality gap).
    pub lower_grad_norm: f64,
    /// The hypergradient estimate.
    pub hypergradient: Vec<f64>,
    /// Linear-solve and spectral diagnostics (None for methods without a linear solve).
    pub diagnostics: Option<HypergradDiagnostics>,
    /// Selection phase summary (HG-MS).
    pub selection: Option<SelectionReport>,
    /// Solver-specific scalars (name, value), e.g. BOME's `lambda` and `q`, a penalty's `gamma`;
    /// empty for solvers without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, f64)>,
}

impl StepReport {
    /// The value of the solver-specific scalar `name` in [`StepReport::extra`], if present.
    pub fn extra_value(&self, name: &str) -> Option<f64> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Summary of an explicit selection phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectionReport {
    /// Strategy used.
    pub strategy: String,
    /// Selection steps taken.
    pub steps: usize,
    /// `‖P_T ∇_y f‖` at the end (tangent component; 0 at the optimistic selection).
    pub tangent_grad_norm: f64,
    /// Whether both selection tolerances were met.
    pub converged: bool,
}

/// Errors raised by solvers.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// A dense eigen-computation (Lanczos' tridiagonal matrix, a sketch) failed.
    #[error("eigen-computation failed: {0}")]
    Dense(#[from] bilevel_core::dense::DenseError),
    /// A quantity became NaN or Inf inside the solver.
    #[error("{0}")]
    NonFinite(String),
    /// A configuration value is invalid.
    #[error("{0}")]
    Config(String),
    /// A checkpoint does not fit this solver.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// A bilevel algorithm: `hypergradient` runs the lower-level phase at `state.x` (updating
/// `state.y`) and estimates `∇φ(x)`; `upper_step` moves `x`.
pub trait BilevelSolver<P: Bilevel + ?Sized> {
    /// Identifier used in configs and outputs.
    fn name(&self) -> &'static str;
    /// Lower-level (and selection) phase, then the hypergradient at `state.x`.
    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        with_diagnostics: bool,
    ) -> Result<StepReport, SolverError>;
    /// Upper-level step with the hypergradient `h`.
    fn upper_step(&mut self, state: &mut State<P::Y>, h: &[f64]);
    /// Seconds of the last `hypergradient` call spent only on what the record reports (the
    /// stochastic solvers' full-data `f` and `‖∇_y g‖`); the executor excludes them from the
    /// solver's time, as it excludes building records. 0 for solvers that evaluate nothing extra.
    fn record_only_time_s(&self) -> f64 {
        0.0
    }
    /// Internal state to store in a checkpoint (optimizer moments, adaptive steps).
    fn checkpoint(&self) -> serde_json::Value;
    /// Restore what [`BilevelSolver::checkpoint`] saved.
    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError>;
}
