//! The loop shared by every solver: budgets, divergence checks, records and observers.
//!
//! Each outer iteration `t` evaluates the hypergradient at `x_t` (the solver's lower/selection
//! phase included), emits one [`Record`], checks budgets, then takes the upper step. A NaN or Inf
//! in `f`, `y`, the hypergradient or `x` stops the run with [`RunError::NonFinite`] naming the
//! iteration and the quantity; every record written before stays on disk.

use crate::{BilevelSolver, SolverError, State, StepReport, Warning};
use bilevel_core::krylov::KrylovStatus;
use bilevel_core::{Bilevel, Counted, OracleCounts, Vector};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// When to stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Outer iterations.
    pub max_iter: usize,
    /// Total oracle calls of any kind (algorithm calls only; diagnostics are free).
    pub max_oracle_calls: Option<u64>,
    /// Gradient-equivalent cost (see [`OracleCounts::gradient_equivalents`]).
    pub max_gradient_equivalents: Option<f64>,
    /// Solver wall time in seconds (records and observers excluded, as in [`Record::time_s`]).
    pub max_time_s: Option<f64>,
    /// Stop once `‖h‖ ≤ hypergradient_tol` (for joint methods such as BOME, once their own
    /// stationarity measure is, see [`StepReport::stationarity`]).
    pub hypergradient_tol: Option<f64>,
}

/// Largest accepted `max_iter` (records are kept for plots and tables).
pub const MAX_ITERATIONS: usize = 100_000_000;

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_iter: 100,
            max_oracle_calls: None,
            max_gradient_equivalents: None,
            max_time_s: None,
            hypergradient_tol: None,
        }
    }
}

impl Budget {
    /// Check values; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if self.max_iter == 0 {
            return Err(format!(
                "{prefix}.max_iter: must be at least 1 (got 0: the run would do nothing)"
            ));
        }
        if self.max_iter > MAX_ITERATIONS {
            return Err(format!(
                "{prefix}.max_iter: must be at most {MAX_ITERATIONS} (got {})",
                self.max_iter
            ));
        }
        if let Some(t) = self.max_time_s {
            if t.is_nan() || t <= 0.0 {
                return Err(format!("{prefix}.max_time_s: must be positive (got {t})"));
            }
        }
        if let Some(g) = self.max_gradient_equivalents {
            if g.is_nan() || g <= 0.0 {
                return Err(format!(
                    "{prefix}.max_gradient_equivalents: must be positive (got {g})"
                ));
            }
        }
        if let Some(t) = self.hypergradient_tol {
            if t.is_nan() || t < 0.0 {
                return Err(format!("{prefix}.hypergradient_tol: must be ≥ 0 (got {t})"));
            }
        }
        Ok(())
    }
}

/// Executor options.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Budget.
    pub budget: Budget,
    /// Compute the (separately counted) diagnostics every this many iterations, and at the last
    /// one; 0 disables them.
    pub diagnostics_every: usize,
    /// Include `x` in each record when `dim_x ≤ record_x_max`.
    pub record_x_max: usize,
    /// Evaluate the references (φ, ∇φ, φ − φ*, ‖x − x*‖) and the problem's metrics every this
    /// many iterations, and at the last one (1: every record; use more where the reference is an
    /// exact inner solve on real data). Records in between carry `None` and no metrics.
    pub evaluate_every: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            budget: Budget::default(),
            diagnostics_every: 1,
            record_x_max: 64,
            evaluate_every: 1,
        }
    }
}

/// One line of `trace.jsonl`. Only `time_s` depends on the machine: with the same config and
/// seed every other field is reproduced bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Outer iteration (the hypergradient was taken at `x_t`).
    pub iteration: usize,
    /// Wall time spent in the solver since the start (oracles, solves, diagnostics), seconds;
    /// building records and running observers (trace I/O) is excluded.
    pub time_s: f64,
    /// Algorithm oracle calls so far, by kind.
    pub oracle_calls: OracleCounts,
    /// Gradient-equivalent cost so far.
    pub gradient_equivalents: f64,
    /// Diagnostic oracle calls so far (not part of any budget).
    pub diagnostic_calls: OracleCounts,
    /// `f(x_t, y_t)`.
    pub f: f64,
    /// `‖h_t‖`.
    pub hypergradient_norm: f64,
    /// `‖∇_y g(x_t, y_t)‖`, the lower-level gap.
    pub lower_gap: f64,
    /// Krylov iterations of the hypergradient solve.
    pub krylov_iterations: Option<usize>,
    /// Relative residual of the hypergradient solve.
    pub krylov_residual: Option<f64>,
    /// Status of the hypergradient solve.
    pub krylov_status: Option<KrylovStatus>,
    /// `‖P_ker H ∇_y f‖` (the wrong-selection signal).
    pub kernel_component: Option<f64>,
    /// Estimated intrinsic dimension of the solution manifold.
    pub intrinsic_dimension: Option<usize>,
    /// Selection steps (HG-MS).
    pub selection_steps: Option<usize>,
    /// `‖P_T ∇_y f‖` after selection (HG-MS).
    pub tangent_grad_norm: Option<f64>,
    /// Closed-form `φ(x_t)`, where the problem has one.
    pub phi: Option<f64>,
    /// `‖h_t − ∇φ(x_t)‖` against the closed form, where available.
    pub grad_phi_error: Option<f64>,
    /// `‖h_t − ∇φ(x_t)‖ / ‖∇φ(x_t)‖` (meaningless where ∇φ → 0, e.g. at a solution).
    pub grad_phi_rel_error: Option<f64>,
    /// `‖∇φ(x_t)‖` from the closed form (the stationarity measure of benchmarks).
    pub grad_phi_norm: Option<f64>,
    /// `φ(x_t) − φ*` where both are known.
    pub phi_gap: Option<f64>,
    /// `‖x_t − x*‖` where the solution x* is known.
    pub x_star_distance: Option<f64>,
    /// `x_t` (omitted for large `x`).
    pub x: Option<Vec<f64>>,
    /// Solver-specific scalars (BOME's λ and q, F2SA's λ, PBGD's γ, …).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
    /// The problem's evaluation metrics at `(x_t, y_t)` (accuracies, validation loss; see
    /// [`Bilevel::metrics`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Failed checks of this iteration's evaluation ([`crate::warnings`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// One warning code over a run: how often it fired, where first and last, and its last message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarningSummary {
    /// Stable code ([`crate::warnings::CODES`]).
    pub code: String,
    /// The message of its last occurrence.
    pub message: String,
    /// Iterations that carried it.
    pub count: usize,
    /// First such iteration.
    pub first_iteration: usize,
    /// Last such iteration.
    pub last_iteration: usize,
}

/// The warnings of a run's records, one entry per code in order of first appearance.
pub fn summarize_warnings(records: &[Record]) -> Vec<WarningSummary> {
    let mut out: Vec<WarningSummary> = Vec::new();
    for r in records {
        accumulate_warnings(&mut out, r);
    }
    out
}

/// Add record `r`'s warnings to a running [`summarize_warnings`].
pub fn accumulate_warnings(out: &mut Vec<WarningSummary>, r: &Record) {
    for w in &r.warnings {
        match out.iter_mut().find(|s| s.code == w.code) {
            Some(s) => {
                s.count += 1;
                s.last_iteration = r.iteration;
                s.message = w.message.clone();
            }
            None => out.push(WarningSummary {
                code: w.code.clone(),
                message: w.message.clone(),
                count: 1,
                first_iteration: r.iteration,
                last_iteration: r.iteration,
            }),
        }
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// `max_iter` reached.
    MaxIterations,
    /// Oracle-call or gradient-equivalent budget reached.
    OracleBudget,
    /// Wall-time budget reached.
    TimeBudget,
    /// `‖h‖ ≤ hypergradient_tol`.
    Tolerance,
}

/// Receives every record (trace writer, progress bar, checkpoints).
pub trait Observer<Y> {
    /// Whether this observer needs the solver's checkpoint state at `iteration`.
    fn wants_solver_state(&self, _iteration: usize) -> bool {
        false
    }
    /// Called after each iteration with the record and the state *after* the upper step
    /// (`state.iteration` is then the next iteration to run).
    fn observe(
        &mut self,
        record: &Record,
        state: &State<Y>,
        solver_state: Option<&serde_json::Value>,
    ) -> std::io::Result<()>;
    /// Called once at the end (also after a divergence).
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A NaN or Inf appeared.
    #[error("iteration {iteration}: {quantity} is not finite (NaN or Inf); likely cause: a step too large for the curvature at this point (lower_lr, upper.lr; HG-MS's lower_lr = \"auto\" adapts) or a start outside the problem's domain; the run stopped, records up to iteration {} are kept", iteration.saturating_sub(1))]
    NonFinite {
        /// Iteration.
        iteration: usize,
        /// Which quantity.
        quantity: &'static str,
    },
    /// The solver failed.
    #[error("iteration {iteration}: {source}{}", x_context(*x_norms))]
    Solver {
        /// Iteration.
        iteration: usize,
        /// Cause.
        source: SolverError,
        /// `(‖x_{t−1}‖, ‖x_t‖)` when the failure followed an upper step.
        x_norms: Option<(f64, f64)>,
    },
    /// An observer could not write.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the upper iterate went before a failure (a large jump points at the upper step).
fn x_context(x: Option<(f64, f64)>) -> String {
    match x {
        Some((before, now)) if now > 10.0 * before.max(1.0) => format!(
            " (the upper step moved ‖x‖ from {before:.3e} to {now:.3e}: the upper step may be too large, or φ unbounded below)"
        ),
        Some((_, now)) => format!(" (at ‖x‖ = {now:.3e})"),
        None => String::new(),
    }
}

/// What a completed run returns.
#[derive(Clone, Debug)]
pub struct RunOutcome<Y> {
    /// Final state.
    pub state: State<Y>,
    /// The last evaluation (at the last `x_t` before its upper step).
    pub last: Option<StepReport>,
    /// The last record.
    pub last_record: Option<Record>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Algorithm oracle calls.
    pub counts: OracleCounts,
    /// Diagnostic oracle calls.
    pub diagnostic_counts: OracleCounts,
    /// Wall time spent in the solver (as [`Record::time_s`]), seconds.
    pub time_s: f64,
}

fn norm(v: &[f64]) -> f64 {
    bilevel_core::vector::norm(v)
}

/// Build the record for one evaluation at `state` (its `x_t`, `y_t` and iteration `t`); `evaluate`
/// computes the references and metrics.
pub fn make_record<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    time_s: f64,
    state: &State<P::Y>,
    rep: &StepReport,
    record_x_max: usize,
    evaluate: bool,
) -> Record {
    let (iteration, x, y) = (state.iteration, state.x.as_slice(), &state.y);
    let counts = p.counts();
    let d = rep.diagnostics.as_ref();
    let grad_phi = if evaluate {
        p.reference_grad_phi(x)
    } else {
        None
    };
    let errors = grad_phi.as_ref().map(|g| {
        let diff: Vec<f64> = rep
            .hypergradient
            .iter()
            .zip(g)
            .map(|(a, b)| a - b)
            .collect();
        let abs = norm(&diff);
        (abs, abs / norm(g).max(1e-300))
    });
    let phi = if evaluate { p.reference_phi(x) } else { None };
    let phi_gap = phi.zip(p.reference_phi_star()).map(|(a, b)| a - b);
    let x_star_distance = p.reference_x_star().filter(|_| evaluate).map(|xs| {
        let d: Vec<f64> = x.iter().zip(&xs).map(|(a, b)| a - b).collect();
        norm(&d)
    });
    Record {
        iteration,
        time_s,
        oracle_calls: counts,
        gradient_equivalents: counts.gradient_equivalents(),
        diagnostic_calls: p.diagnostic_counts(),
        f: rep.f,
        hypergradient_norm: norm(&rep.hypergradient),
        lower_gap: rep.lower_grad_norm,
        krylov_iterations: d.map(|d| d.krylov_iterations),
        krylov_residual: d.map(|d| d.relative_residual),
        krylov_status: d.map(|d| d.status),
        kernel_component: d.and_then(|d| d.kernel_component),
        intrinsic_dimension: d.and_then(|d| d.intrinsic_dimension),
        selection_steps: rep.selection.as_ref().map(|s| s.steps),
        tangent_grad_norm: rep.selection.as_ref().map(|s| s.tangent_grad_norm),
        phi,
        grad_phi_error: errors.map(|e| e.0),
        grad_phi_rel_error: errors.map(|e| e.1),
        grad_phi_norm: grad_phi.as_ref().map(|g| norm(g)),
        phi_gap,
        x_star_distance,
        x: (x.len() <= record_x_max).then(|| x.to_vec()),
        extra: rep.extra.iter().cloned().collect(),
        metrics: if evaluate {
            p.metrics(x, y).into_iter().collect()
        } else {
            Default::default()
        },
        warnings: rep.warnings.clone(),
    }
}

/// The first quantity of an evaluation that is NaN or Inf — `f`, `y`, `‖∇_y g‖`, the
/// hypergradient, in that order — named as errors name it; `None` when all are finite.
pub fn non_finite_quantity<Y: Vector>(rep: &StepReport, y: &Y) -> Option<&'static str> {
    if !rep.f.is_finite() {
        Some("f (upper objective)")
    } else if !y.is_finite() {
        Some("y (lower variable)")
    } else if !rep.lower_grad_norm.is_finite() {
        Some("lower-level gradient ∇_y g")
    } else if !rep.hypergradient.iter().all(|v| v.is_finite()) {
        Some("hypergradient")
    } else {
        None
    }
}

/// Oracle counts a run starts from (zero for a fresh run, a checkpoint's when resuming).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialCounts {
    /// Algorithm calls.
    pub algorithm: OracleCounts,
    /// Diagnostic calls.
    pub diagnostic: OracleCounts,
}

/// Run `solver` on `problem` from `state` until the budget is spent.
pub fn run<P: Bilevel + ?Sized>(
    problem: &P,
    solver: &mut dyn BilevelSolver<P>,
    mut state: State<P::Y>,
    opts: &RunOptions,
    initial_counts: InitialCounts,
    observers: &mut [&mut dyn Observer<P::Y>],
) -> Result<RunOutcome<P::Y>, RunError> {
    let p = Counted::new(problem);
    p.set_counts(initial_counts.algorithm);
    p.set_diagnostic_counts(initial_counts.diagnostic);
    let start = Instant::now();
    // Time spent building records (closed-form references) and in observers (trace I/O): not
    // the solver's, so excluded from `time_s` and from the time budget.
    let mut overhead = Duration::ZERO;
    let solver_time = |overhead: Duration| start.elapsed().saturating_sub(overhead).as_secs_f64();
    let b = &opts.budget;
    let mut last = None;
    let mut last_record = None;
    let mut prev_x_norm = norm(&state.x);
    let result = (|| -> Result<StopReason, RunError> {
        loop {
            let t = state.iteration;
            if t >= b.max_iter {
                return Ok(StopReason::MaxIterations);
            }
            let is_last = t + 1 == b.max_iter;
            let diag = opts.diagnostics_every > 0 && (t % opts.diagnostics_every == 0 || is_last);
            let mut rep = solver
                .hypergradient(&p, &mut state, diag)
                .map_err(|source| RunError::Solver {
                    iteration: t,
                    source,
                    x_norms: (t > 0).then(|| (prev_x_norm, norm(&state.x))),
                })?;
            rep.add_diagnostic_warnings(crate::hgms::KERNEL_RTOL);
            overhead += Duration::from_secs_f64(solver.record_only_time_s());
            let non_finite = |q| RunError::NonFinite {
                iteration: t,
                quantity: q,
            };
            if let Some(q) = non_finite_quantity(&rep, &state.y) {
                return Err(non_finite(q));
            }
            let time_s = solver_time(overhead);
            let hnorm = norm(&rep.hypergradient);
            let counts = p.counts();
            let stationarity = rep.stationarity.unwrap_or(hnorm);
            let stop = if b.hypergradient_tol.is_some_and(|tol| stationarity <= tol) {
                Some(StopReason::Tolerance)
            } else if b.max_oracle_calls.is_some_and(|m| counts.total() >= m)
                || b.max_gradient_equivalents
                    .is_some_and(|m| counts.gradient_equivalents() >= m)
            {
                Some(StopReason::OracleBudget)
            } else if b.max_time_s.is_some_and(|m| time_s >= m) {
                Some(StopReason::TimeBudget)
            } else {
                None
            };
            let bookkeeping = Instant::now();
            let evaluate = opts.evaluate_every <= 1
                || t % opts.evaluate_every == 0
                || is_last
                || stop.is_some();
            let rec = make_record(&p, time_s, &state, &rep, opts.record_x_max, evaluate);
            overhead += bookkeeping.elapsed();
            if stop.is_none() {
                prev_x_norm = norm(&state.x);
                solver.upper_step(&mut state, &rep.hypergradient);
                if !state.x.iter().all(|v| v.is_finite()) {
                    return Err(non_finite("x (upper variable) after the upper step"));
                }
            }
            state.iteration = t + 1;
            let bookkeeping = Instant::now();
            let wants = observers.iter().any(|o| o.wants_solver_state(t));
            let saved = wants.then(|| solver.checkpoint());
            for o in observers.iter_mut() {
                o.observe(&rec, &state, saved.as_ref())?;
            }
            overhead += bookkeeping.elapsed();
            last = Some(rep);
            last_record = Some(rec);
            if let Some(s) = stop {
                return Ok(s);
            }
        }
    })();
    for o in observers.iter_mut() {
        o.finish()?;
    }
    let stop = result?;
    Ok(RunOutcome {
        state,
        last,
        last_record,
        stop,
        counts: p.counts(),
        diagnostic_counts: p.diagnostic_counts(),
        time_s: solver_time(overhead),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hgms::{Hgms, HgmsConfig};
    use bilevel_problems::{CircleCenter, WithDerivatives};

    struct Keep(Vec<Record>);
    impl<Y> Observer<Y> for Keep {
        fn observe(
            &mut self,
            r: &Record,
            _: &State<Y>,
            _: Option<&serde_json::Value>,
        ) -> std::io::Result<()> {
            self.0.push(r.clone());
            Ok(())
        }
    }

    fn go(budget: Budget, diagnostics_every: usize) -> (RunOutcome<Vec<f64>>, Vec<Record>) {
        let p = WithDerivatives::analytic(CircleCenter::new(1.5, &[0.3, -0.2]).unwrap());
        let mut s = Hgms::new(HgmsConfig::default(), 2);
        let opts = RunOptions {
            budget,
            diagnostics_every,
            ..RunOptions::default()
        };
        let st = State {
            x: vec![2.0, 1.0],
            y: vec![3.5, 1.0],
            iteration: 0,
        };
        let mut keep = Keep(vec![]);
        let out = run(
            &p,
            &mut s,
            st,
            &opts,
            InitialCounts::default(),
            &mut [&mut keep],
        )
        .unwrap();
        (out, keep.0)
    }

    #[test]
    fn budgets_stop_the_run_with_the_right_reason() {
        let (out, recs) = go(
            Budget {
                max_iter: 1000,
                max_gradient_equivalents: Some(3000.0),
                ..Budget::default()
            },
            1,
        );
        assert_eq!(out.stop, StopReason::OracleBudget);
        let ge: Vec<f64> = recs.iter().map(|r| r.gradient_equivalents).collect();
        assert!(ge[ge.len() - 1] >= 3000.0 && ge[ge.len() - 2] < 3000.0);
        let (out, _) = go(
            Budget {
                max_iter: 1000,
                hypergradient_tol: Some(1e-6),
                ..Budget::default()
            },
            0,
        );
        assert_eq!(out.stop, StopReason::Tolerance);
        assert!(out.last_record.unwrap().hypergradient_norm <= 1e-6);
        let (out, recs) = go(
            Budget {
                max_iter: 7,
                ..Budget::default()
            },
            0,
        );
        assert_eq!(out.stop, StopReason::MaxIterations);
        assert_eq!(recs.len(), 7);
        assert_eq!(out.state.iteration, 7);
    }

    /// Diagnostics are counted apart and do not change the algorithm's path or counts.
    #[test]
    fn diagnostics_do_not_consume_the_budget() {
        let b = Budget {
            max_iter: 5,
            ..Budget::default()
        };
        let (with, rw) = go(b.clone(), 1);
        let (without, rwo) = go(b, 0);
        assert_eq!(with.counts, without.counts);
        assert_eq!(with.state.x, without.state.x);
        assert!(with.diagnostic_counts.hvp > 0 && without.diagnostic_counts.total() == 0);
        assert!(rw[0].kernel_component.is_some() && rwo[0].kernel_component.is_none());
    }
}
