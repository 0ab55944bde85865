//! # bilevel-solvers
//!
//! Bilevel algorithms on one executor.
//!
//! * [`BilevelSolver`]: what every algorithm implements — a lower-level (and, for HG-MS,
//!   selection) phase followed by a hypergradient at the current `x`, then an upper step;
//! * [`hgms`]: select-then-differentiate (HG-MS), our flagship;
//! * [`aid`]: approximate implicit differentiation with CG or Neumann (the classical baseline);
//! * [`executor`]: the loop with budgets (iterations, oracle calls, wall time), divergence checks
//!   and observers ([`observers`]: JSON-lines trace, checkpoints; the CLI adds a progress bar);
//! * [`upper`]: upper-level steps (plain, Adam, box projection) shared by all solvers;
//! * [`lower`]: gradient descent on `g(x, ·)` shared by all solvers.
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
pub mod executor;
pub mod hgms;
pub mod lower;
pub mod observers;
pub mod upper;

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
    /// Internal state to store in a checkpoint (optimizer moments, adaptive steps).
    fn checkpoint(&self) -> serde_json::Value;
    /// Restore what [`BilevelSolver::checkpoint`] saved.
    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError>;
}
