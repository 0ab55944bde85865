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

mod checkpoint;
pub mod executor;
pub mod lower;
pub mod observers;
#[macro_use]
pub mod registry;
pub mod stochastic;
pub mod upper;
pub mod validate;

// The solver catalogue: one row per solver (`[module]` declares the solver's file, then its
// variant, name, configuration type, one-line description and constructor). `SolverConfig`,
// `SOLVERS`, `bilevel list`, located config errors and the catalogue test all come from here.
solver_registry! {
    [hgms] HgMs => "hg-ms", hgms::HgmsConfig,
        "select-then-differentiate: lower steps, explicit optimistic selection, pseudoinverse hypergradient",
        |c, m| hgms::Hgms::new(c, m);
    [aid] Aid => "aid", aid::AidConfig,
        "approximate implicit differentiation: warm-started lower steps, CG/Neumann solve, no selection",
        |c, m| aid::Aid::new(c, m);
    [itd] Itd => "itd", itd::ItdConfig,
        "iterative differentiation: reverse mode through T unrolled lower steps (HVP recursion)",
        |c, m| itd::Itd::new(c, m);
    [bome] Bome => "bome", bome::BomeConfig,
        "BOME: first-order value-gap method, joint (x, y) step with an adaptive multiplier",
        |c, m| bome::Bome::new(c, m);
    [f2sa] F2sa => "f2sa", f2sa::F2saConfig,
        "F2SA: fully first-order penalty Lagrangian with an auxiliary lower variable z",
        |c, m| f2sa::F2sa::new(c, m);
    [pbgd] Pbgd => "pbgd", pbgd::PbgdConfig,
        "V-PBGD / G-PBGD: penalty-based gradient descent with a ramped penalty",
        |c, m| pbgd::Pbgd::new(c, m);
    [galet] Galet => "galet", galet::GaletConfig,
        "GALET: w by gradient descent on ½‖Hw + ∇_y f‖², for PL lower levels",
        |c, m| galet::Galet::new(c, m);
    [pzobo] Pzobo => "pzobo", pzobo::PzoboConfig,
        "PZOBO: Hessian-free zeroth-order estimate through the T-step map",
        |c, m| pzobo::Pzobo::new(c, m);
    [implicit] Implicit => "implicit", implicit::ImplicitConfig,
        "exact implicit reference: Newton-CG lower solve to tolerance, then the implicit formula",
        |c, m| implicit::Implicit::new(c, m);
    Soba => "soba", stochastic::soba::SobaConfig,
        "SOBA (stochastic): one minibatch step each on y, v ≈ H⁻¹∇_y f and x per iteration",
        |c, m| stochastic::Stochastic::new(stochastic::soba::Soba::new(c, m));
    Saba => "saba", stochastic::saba::SabaConfig,
        "SABA (stochastic): SOBA with SAGA memories for all five directions (variance reduced)",
        |c, m| stochastic::Stochastic::new(stochastic::saba::Saba::new(c, m));
    Srba => "srba", stochastic::srba::SrbaConfig,
        "SRBA (stochastic): SARAH recursion on SOBA's directions with periodic full refresh",
        |c, m| stochastic::Stochastic::new(stochastic::srba::Srba::new(c, m));
    Vrbo => "vrbo", stochastic::vrbo::VrboConfig,
        "VRBO (stochastic): SPIDER estimators with periodic full-batch refresh",
        |c, m| stochastic::Stochastic::new(stochastic::vrbo::Vrbo::new(c, m));
    Fsla => "fsla", stochastic::fsla::FslaConfig,
        "FSLA (stochastic): single loop, momentum variance-reduced hypergradient",
        |c, m| stochastic::Stochastic::new(stochastic::fsla::Fsla::new(c, m));
    Stocbio => "stocbio", stochastic::stocbio::StocbioConfig,
        "StocBiO (stochastic): inner SGD steps, Neumann-series v, outer step",
        |c, m| stochastic::Stochastic::new(stochastic::stocbio::Stocbio::new(c, m));
    Amigo => "amigo", stochastic::amigo::AmigoConfig,
        "AmIGO (stochastic): warm-started SGD on y and on the linear system for v",
        |c, m| stochastic::Stochastic::new(stochastic::amigo::Amigo::new(c, m));
    Bsa => "bsa", stochastic::bsa::BsaConfig,
        "BSA (stochastic): inner SGD, random-truncation Neumann (HIA) hypergradient",
        |c, m| stochastic::Stochastic::new(stochastic::bsa::Bsa::new(c, m));
    Ttsa => "ttsa", stochastic::ttsa::TtsaConfig,
        "TTSA (stochastic): two timescales, one inner step, HIA hypergradient",
        |c, m| stochastic::Stochastic::new(stochastic::ttsa::Ttsa::new(c, m));
    Mrbo => "mrbo", stochastic::mrbo::MrboConfig,
        "MRBO (stochastic): STORM momentum-recursive estimators, Neumann hypergradient",
        |c, m| stochastic::Stochastic::new(stochastic::mrbo::Mrbo::new(c, m));
    Sustain => "sustain", stochastic::sustain::SustainConfig,
        "SUSTAIN (stochastic): STORM momentum with the HIA hypergradient",
        |c, m| stochastic::Stochastic::new(stochastic::sustain::Sustain::new(c, m));
    F2saStoch => "f2sa-stochastic", stochastic::f2sa_stoch::F2saStochConfig,
        "F2SA (stochastic): minibatch penalty Lagrangian, fully first order",
        |c, m| stochastic::Stochastic::new(stochastic::f2sa_stoch::F2saStoch::new(c, m));
}

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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Which correctness checks ran and what they found (HG-MS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<ChecksReport>,
    /// One entry per failed check ([`warnings`] lists every code): empty when the estimate
    /// passed every check that ran.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// The stationarity measure `hypergradient_tol` is compared with, where it is not `‖h‖`
    /// (joint methods such as BOME, whose x-direction alone is not a hypergradient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stationarity: Option<f64>,
}

impl StepReport {
    /// The value of the solver-specific scalar `name` in [`StepReport::extra`], if present.
    pub fn extra_value(&self, name: &str) -> Option<f64> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Add `w` unless a warning with its code is already there.
    pub fn warn(&mut self, w: Warning) {
        if !self.warnings.iter().any(|v| v.code == w.code) {
            self.warnings.push(w);
        }
    }

    /// Add the warnings that follow from [`StepReport::diagnostics`] (kernel component above
    /// `kernel_rtol`, Krylov solve not converged or least-squares, unresolved sketch,
    /// finite-difference products); the executor and `bilevel hypergrad` call it for every solver.
    pub fn add_diagnostic_warnings(&mut self, kernel_rtol: f64) {
        let Some(d) = self.diagnostics.clone() else {
            return;
        };
        for w in warnings::from_diagnostics(&d, kernel_rtol) {
            self.warn(w);
        }
    }
}

/// A failed check: a stable `code` (listed in [`warnings`] and the README) and a message that
/// says what was measured and what to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Stable kebab-case code, e.g. `lower-not-converged`.
    pub code: String,
    /// What was measured and what to do about it.
    pub message: String,
}

impl Warning {
    /// A warning with `code` (one of [`warnings::CODES`]) and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        debug_assert!(warnings::CODES.iter().any(|(c, _)| *c == code), "{code}");
        Warning {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// Which correctness checks ran on an HG-MS hypergradient and their outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChecksReport {
    /// The checks requested: `"second-order"` or `"first-order"`.
    pub level: String,
    /// How the lower-level solve ended (`tolerance`, `precision` or `max-steps`).
    pub lower: lower::LowerStatus,
    /// Whether the selection is first-order stationary on S(x) (`‖P_T ∇_y f‖` at tolerance or at
    /// the rounding floor, with the lower level converged).
    pub first_order: bool,
    /// Outcome of the second-order check: `passed`, `failed`, `not-applicable` (k = 0: the
    /// lower-level solution is locally unique), `unchecked` (the rank of H was not resolved) or
    /// `skipped` (not run at this iteration, or `checks = "first-order"`).
    pub second_order: String,
    /// Whether H was found indefinite at the final point (y is not a local minimiser of g).
    pub lower_indefinite: bool,
    /// Smallest eigenvalue of the Riemannian Hessian of f on S(x) found at the final point.
    pub min_tangent_curvature: Option<f64>,
    /// The same relative to the scale of its two terms (`‖∇²f u‖ + ‖D_w[H] u‖`).
    pub min_tangent_curvature_relative: Option<f64>,
    /// Escapes taken (from a maximiser or saddle of f on S, or a non-minimum of g).
    pub escapes: usize,
    /// Global probes that found a lower f on S(x) (and were adopted).
    pub probes_improved: usize,
    /// Global optimality is never certified: a statement of what was and was not checked.
    pub global: String,
}

pub mod warnings {
    //! Warning codes: one per check that can fail. The README lists each with what to do.

    use super::Warning;
    use bilevel_core::hypergrad::HypergradDiagnostics;
    use bilevel_core::krylov::KrylovStatus;

    /// The lower-level solve hit its step limit before its tolerance or the rounding floor.
    pub const LOWER_NOT_CONVERGED: &str = "lower-not-converged";
    /// H = ∇²_yy g has a negative eigenvalue at the final point: y is a saddle or maximum of g.
    pub const LOWER_NOT_MINIMUM: &str = "lower-not-minimum";
    /// The selection is not first-order stationary on S(x) (`‖P_T ∇_y f‖` above tolerance).
    pub const SELECTION_NOT_FIRST_ORDER: &str = "selection-not-first-order";
    /// f has negative curvature along S(x) at the selection (a maximiser or saddle) after the
    /// configured escapes.
    pub const SELECTION_NOT_SECOND_ORDER: &str = "selection-not-second-order";
    /// The second-order check could not run: the rank of H was not resolved.
    pub const SECOND_ORDER_UNCHECKED: &str = "second-order-unchecked";
    /// f is flat to second order along S(x) at the selection (zero tangent curvature): the
    /// selection may not be unique, and φ may have a kink at x.
    pub const SELECTION_DEGENERATE: &str = "selection-degenerate";
    /// `‖P_ker H ∇_y f‖` above tolerance: y is not the optimistic selection.
    pub const KERNEL_COMPONENT: &str = "kernel-component";
    /// The Krylov solve stopped before its tolerance.
    pub const KRYLOV_NOT_CONVERGED: &str = "krylov-not-converged";
    /// The Krylov solve fell back to a least-squares solution (inconsistent system).
    pub const KRYLOV_LEAST_SQUARES: &str = "krylov-least-squares";
    /// The spectral sketch reached its column limit: the intrinsic dimension is unresolved.
    pub const SKETCH_COLUMN_LIMIT: &str = "sketch-column-limit";
    /// Second-order products come from finite differences: the hypergradient is approximate.
    pub const APPROXIMATE_DERIVATIVES: &str = "approximate-derivatives";
    /// The solver's x-direction at one evaluation is a step of a joint or penalty method, not an
    /// estimate of ∇φ (BOME, PBGD, F2SA under `bilevel hypergrad`).
    pub const NOT_A_HYPERGRADIENT: &str = "not-a-hypergradient";

    /// Every code with what to do about it (the README's table is checked against this list).
    pub const CODES: &[(&str, &str)] = &[
        (
            LOWER_NOT_CONVERGED,
            "raise lower_steps (or selection.retraction_steps), or leave lower_lr = \"auto\"",
        ),
        (
            LOWER_NOT_MINIMUM,
            "start the lower level elsewhere (y0); the escape along negative curvature of g failed",
        ),
        (
            SELECTION_NOT_FIRST_ORDER,
            "raise selection.max_steps, or try selection.strategy = \"penalty\"",
        ),
        (
            SELECTION_NOT_SECOND_ORDER,
            "raise selection.max_escapes or use selection.strategy = \"multistart\"",
        ),
        (
            SELECTION_DEGENERATE,
            "treat ∇φ here with care (a tie between selections or a kink of φ); move x, or compare one-sided differences of φ",
        ),
        (
            SECOND_ORDER_UNCHECKED,
            "raise hypergradient.diagnostics.sketch_max_columns, or set checks = \"first-order\" to accept the risk",
        ),
        (
            KERNEL_COMPONENT,
            "use HG-MS with a selection strategy; AID/ITD differentiate a different hyper-objective here",
        ),
        (
            KRYLOV_NOT_CONVERGED,
            "raise hypergradient.max_iter, or add a small hypergradient.shift",
        ),
        (
            KRYLOV_LEAST_SQUARES,
            "the right-hand side has a kernel component: select first (HG-MS) or converge the lower level",
        ),
        (
            SKETCH_COLUMN_LIMIT,
            "raise hypergradient.diagnostics.sketch_max_columns (memory grows with columns × dim y)",
        ),
        (
            APPROXIMATE_DERIVATIVES,
            "use derivatives = \"analytic\" or \"dual\" where the problem offers them",
        ),
        (
            NOT_A_HYPERGRADIENT,
            "compare whole runs of first-order methods; for ∇φ at a point use hg-ms, implicit or aid",
        ),
    ];

    /// The warnings implied by a hypergradient's diagnostics.
    pub fn from_diagnostics(d: &HypergradDiagnostics, kernel_rtol: f64) -> Vec<Warning> {
        let mut out = Vec::new();
        if let Some(kc) = d.kernel_component_relative {
            if kc > kernel_rtol {
                out.push(Warning::new(
                    KERNEL_COMPONENT,
                    format!(
                        "the kernel component of ∇_y f is {kc:.3e} relative (tolerance {kernel_rtol:.0e}): y is not the optimistic selection, so this is not ∇φ"
                    ),
                ));
            }
        }
        // Error amplification of a residual: ‖H^†r‖/‖v‖ ≤ κ ‖r‖/‖b‖, κ = λ_max/μ where known.
        let kappa = match (d.lambda_max, d.mu) {
            (Some(l), Some(m)) if m > 0.0 && l >= m => l / m,
            _ => 1.0,
        };
        // A least-squares residual is benign when it is small, or when it is explained by the
        // measured kernel component of ∇_y f (which the kernel-component check then judges,
        // relative to max(‖∇_y f‖, ‖h‖): robust where ∇_y f is itself at rounding level).
        let explained = d
            .kernel_component
            .filter(|_| d.rhs_norm > 0.0)
            .is_some_and(|kc| d.relative_residual <= 1.01 * kc / d.rhs_norm + kernel_rtol);
        match d.status {
            KrylovStatus::Converged => {}
            KrylovStatus::LeastSquares if d.relative_residual <= kernel_rtol || explained => {}
            KrylovStatus::MaxIterations | KrylovStatus::Stagnated
                if d.relative_residual * kappa <= kernel_rtol => {}
            KrylovStatus::LeastSquares => out.push(Warning::new(
                KRYLOV_LEAST_SQUARES,
                format!(
                    "the linear solve H v = ∇_y f is inconsistent; {:?} returned the least-squares solution (relative residual {:.3e})",
                    d.solver, d.relative_residual
                ),
            )),
            other => out.push(Warning::new(
                KRYLOV_NOT_CONVERGED,
                format!(
                    "the linear solve stopped ({}) after {} iterations at relative residual {:.3e}",
                    match other {
                        KrylovStatus::Stagnated => "stagnated",
                        KrylovStatus::IndefiniteDetected => "indefinite matrix",
                        KrylovStatus::Diverged => "diverged",
                        _ => "iteration limit",
                    },
                    d.krylov_iterations,
                    d.relative_residual
                ),
            )),
        }
        if d.sketch_unresolved {
            out.push(Warning::new(
                SKETCH_COLUMN_LIMIT,
                "the spectral sketch reached its column limit before resolving the rank of H: the intrinsic dimension is unknown",
            ));
        }
        if !d.exact {
            out.push(Warning::new(
                APPROXIMATE_DERIVATIVES,
                format!(
                    "second-order products are {}: the hypergradient carries their truncation error",
                    d.derivatives.label()
                ),
            ));
        }
        out
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
    /// An inner iteration diverged (the message names the quantity, the step and the likely
    /// cause).
    #[error("{0}")]
    Diverged(String),
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
    /// The optimiser that moves `x` (`x ← Π(x − α h)`, or Adam), or `None` for solvers that move
    /// `x` inside `hypergradient` (the stochastic ones).
    fn upper_optimizer(&mut self) -> Option<&mut upper::UpperOptimizer>;
    /// Upper-level step with the hypergradient `h`: by default one step of
    /// [`BilevelSolver::upper_optimizer`] (none where it is `None`); BOME (scaled `h`) and F2SA
    /// (scheduled step, λ update) override it.
    fn upper_step(&mut self, state: &mut State<P::Y>, h: &[f64]) {
        if let Some(upper) = self.upper_optimizer() {
            upper.step(&mut state.x, h);
        }
    }
    /// Whether the `hypergradient` of one evaluation estimates ∇φ at `state.x` (`true`), or is
    /// the x-part of a joint or penalty step (BOME, PBGD, F2SA), which `bilevel hypergrad` then
    /// flags `not-a-hypergradient`.
    fn estimates_hypergradient(&self) -> bool {
        true
    }
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
