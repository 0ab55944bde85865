//! `bilevel hypergrad CONFIG [--json]`: the configured lower-level and selection phase at `x0`,
//! then the hypergradient, checked against the closed-form `∇φ` and central differences of the
//! closed-form `φ` where the problem has them.

use crate::config;
use crate::run::{make_solver, DynProblem};
use crate::Failure;
use bilevel_core::derivatives::{fd_gradient, relative_error};
use bilevel_core::hypergrad::HypergradDiagnostics;
use bilevel_core::{Counted, OracleCounts};
use bilevel_problems::BuiltProblem;
use bilevel_solvers::hgms::KERNEL_RTOL;
use bilevel_solvers::{ChecksReport, SelectionReport, State, Warning};
use serde::Serialize;
use std::path::Path;

/// The JSON contract of `bilevel hypergrad --json` (documented in the README).
#[derive(Serialize)]
pub struct HypergradOutput {
    /// Problem name.
    pub problem: String,
    /// Solver name.
    pub solver: String,
    /// Derivative source ("finite-difference (approximate)" marks approximate products).
    pub derivatives: &'static str,
    /// Whether the products were exact.
    pub exact_derivatives: bool,
    /// The point x0.
    pub x: Vec<f64>,
    /// The lower variable after the lower-level and selection phase.
    pub y: Vec<f64>,
    /// The closed-form optimistic selection y*(x0), or null.
    pub y_reference: Option<Vec<f64>>,
    /// The hypergradient estimate.
    pub hypergradient: Vec<f64>,
    /// The closed-form ∇φ(x0), or null.
    pub reference: Option<Vec<f64>>,
    /// Central differences of the closed-form φ at x0 (step 1e-6·max(1, |x_i|)), or null.
    pub finite_difference: Option<Vec<f64>>,
    /// ‖hypergradient − reference‖ / ‖reference‖, or null.
    pub relative_error: Option<f64>,
    /// f(x0, y).
    pub f: f64,
    /// ‖∇_y g(x0, y)‖.
    pub lower_gap: f64,
    /// Selection summary (HG-MS), or null.
    pub selection: Option<SelectionReport>,
    /// Krylov and spectral diagnostics.
    pub diagnostics: Option<HypergradDiagnostics>,
    /// Which correctness checks ran and what they found (HG-MS), or null.
    pub checks: Option<ChecksReport>,
    /// One entry per failed check (`code`, `message`); empty when every check passed.
    pub warnings: Vec<Warning>,
    /// Algorithm oracle calls.
    pub oracle_calls: OracleCounts,
    /// Diagnostic oracle calls.
    pub diagnostic_calls: OracleCounts,
    /// Timings (with `--repeat N`), or null.
    pub timing: Option<Timing>,
}

/// Median wall times over `repeats` evaluations from the same `(x0, y0)`, seconds.
#[derive(Serialize)]
pub struct Timing {
    /// Number of repeats.
    pub repeats: usize,
    /// One hypergradient (the solver's lower-level phase, selection and Krylov solve), without
    /// the separately counted diagnostics.
    pub hypergradient_s: f64,
    /// One full lower-level gradient `(∇_x g, ∇_y g)` at `(x0, y)`.
    pub gradient_s: f64,
}

/// Finite differences of φ are computed only up to this dimension of x (each component costs two
/// exact inner solves on the data problems).
pub const FD_MAX_DIM: usize = 64;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Evaluate the configured solver's hypergradient at the configured `(x0, y0)`.
pub fn evaluate(
    cfg: &config::RunConfig,
    built: &BuiltProblem,
    repeats: usize,
) -> Result<HypergradOutput, Failure> {
    let problem: &DynProblem = built.problem.as_ref();
    cfg.solver
        .check_memory(problem.dim_y())
        .map_err(Failure::config)?;
    let mut solver = make_solver(&cfg.solver, problem.dim_x());
    let counted = Counted::new(problem);
    let mut state = State {
        x: built.x0.clone(),
        y: built.y0.clone(),
        iteration: 0,
    };
    let name = cfg.solver.name();
    let mut rep = solver
        .hypergradient(&counted, &mut state, true)
        .map_err(|e| Failure::run(format!("{name}: {e}")))?;
    rep.add_diagnostic_warnings(KERNEL_RTOL);
    if !solver.estimates_hypergradient() {
        rep.warn(bilevel_solvers::Warning::new(
            bilevel_solvers::warnings::NOT_A_HYPERGRADIENT,
            format!(
                "{name}'s x-direction is the step of a joint (x, y) or penalty method at this \
                 iterate (its multiplier and y not yet at their limits), not an estimate of ∇φ(x0)"
            ),
        ));
    }
    // The same checks as every iteration of a run: a diverged lower level is an error naming
    // the quantity, never a finite-looking hypergradient of 1e70.
    if let Some(quantity) = bilevel_solvers::executor::non_finite_quantity(&rep, &state.y) {
        return Err(Failure::run(format!(
            "{name}: at x0 the {quantity} is not finite (NaN or Inf; ‖∇_y g‖ = {:.3e}); likely \
             cause: a lower-level step too large for the curvature of g here (lower_lr; HG-MS's \
             lower_lr = \"auto\" adapts) or a start outside the problem's domain",
            rep.lower_grad_norm
        )));
    }
    let timing = (repeats > 1).then(|| {
        let mut hyper = Vec::with_capacity(repeats);
        let mut grad = Vec::with_capacity(repeats);
        let mut gx = vec![0.0; problem.dim_x()];
        let mut gy = state.y.clone();
        for _ in 0..repeats {
            let mut s = State {
                x: built.x0.clone(),
                y: built.y0.clone(),
                iteration: 0,
            };
            let mut sv = make_solver(&cfg.solver, problem.dim_x());
            let t = std::time::Instant::now();
            let _ = sv.hypergradient(&Counted::new(problem), &mut s, false);
            hyper.push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            problem.grad_g(&state.x, &state.y, &mut gx, &mut gy);
            grad.push(t.elapsed().as_secs_f64());
        }
        Timing {
            repeats,
            hypergradient_s: median(hyper),
            gradient_s: median(grad),
        }
    });
    let x = &state.x;
    let reference = problem.reference_grad_phi(x);
    let finite_difference = problem
        .reference_phi(x)
        .filter(|_| x.len() <= FD_MAX_DIM)
        .and_then(|_| {
            let g = fd_gradient(|z| problem.reference_phi(z).unwrap_or(f64::NAN), x, 1e-6);
            g.iter().all(|v| v.is_finite()).then_some(g)
        });
    let relative_error = reference
        .as_ref()
        .map(|r| relative_error(&rep.hypergradient, r, 1e-300));
    let derivatives = problem.derivatives();
    Ok(HypergradOutput {
        problem: cfg.problem.name().to_string(),
        solver: cfg.solver.name().to_string(),
        derivatives: derivatives.label(),
        exact_derivatives: derivatives.is_exact(),
        x: x.clone(),
        y: state.y.clone(),
        y_reference: problem.reference_y(x),
        hypergradient: rep.hypergradient,
        reference,
        finite_difference,
        relative_error,
        f: rep.f,
        lower_gap: rep.lower_grad_norm,
        selection: rep.selection,
        diagnostics: rep.diagnostics,
        checks: rep.checks,
        warnings: rep.warnings,
        oracle_calls: counted.counts(),
        diagnostic_calls: counted.diagnostic_counts(),
        timing,
    })
}

/// Write the problem's data arrays, `x`, `y`, the hypergradient (and the reference ∇φ where
/// known) as `.npy`, and the whole output as `hypergrad.json`, into `dir`.
fn export(built: &BuiltProblem, out: &HypergradOutput, dir: &Path) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| {
        Failure::run(format!("writing {}: {e}", dir.join(what).display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("", e))?;
    let mut arrays = built.problem.export_arrays();
    use bilevel_core::NamedArray;
    arrays.push(NamedArray::vector("x", out.x.clone()));
    arrays.push(NamedArray::vector("y0", built.y0.clone()));
    arrays.push(NamedArray::vector("y", out.y.clone()));
    arrays.push(NamedArray::vector(
        "hypergradient",
        out.hypergradient.clone(),
    ));
    if let Some(r) = &out.reference {
        arrays.push(NamedArray::vector("reference_grad_phi", r.clone()));
    }
    for a in &arrays {
        let file = format!("{}.npy", a.name);
        crate::npy::write_f64(&dir.join(&file), &a.shape, &a.data).map_err(|e| io(&file, e))?;
    }
    let text = serde_json::to_string_pretty(out)
        .map_err(|e| Failure::run(format!("serialising the result: {e}")))?;
    std::fs::write(dir.join("hypergrad.json"), text).map_err(|e| io("hypergrad.json", e))
}

fn fmt_vec(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.10}")).collect();
    format!("[{}]", parts.join(", "))
}

/// The warnings as printed lines (`warning [code]: message`).
pub fn print_warnings(warnings: &[Warning]) {
    for w in warnings {
        println!("  warning [{}]: {}", w.code, w.message);
    }
}

/// The `--strict` verdict: exit 3 when there are warnings.
pub fn strict_verdict(strict: bool, count: usize, what: &str) -> Result<(), Failure> {
    if strict && count > 0 {
        return Err(Failure::strict(format!(
            "{count} warning(s) on {what} (--strict turns warnings into exit status 3)"
        )));
    }
    Ok(())
}

/// `bilevel hypergrad CONFIG [--json] [--export DIR] [--repeat N]`.
pub fn hypergrad_command(
    path: &Path,
    json: bool,
    export_dir: Option<&Path>,
    repeats: usize,
    strict: bool,
) -> Result<(), Failure> {
    let (cfg, _) = config::load(path).map_err(|e| Failure::config(e.0))?;
    let built = cfg
        .built_problem()
        .map_err(|e| Failure::config(e.to_string()))?;
    let out = evaluate(&cfg, &built, repeats)?;
    if let Some(dir) = export_dir {
        export(&built, &out, dir)?;
    }
    if json {
        let text = serde_json::to_string_pretty(&out)
            .map_err(|e| Failure::run(format!("serialising the result: {e}")))?;
        println!("{text}");
        return strict_verdict(strict, out.warnings.len(), "the hypergradient");
    }
    println!(
        "{} at x0 on {} ({} products)",
        out.solver, out.problem, out.derivatives
    );
    println!("  x                 = {}", fmt_vec(&out.x));
    println!("  y (selected)      = {}", fmt_vec(&out.y));
    if let Some(y) = &out.y_reference {
        println!("  y* (closed form)  = {}", fmt_vec(y));
    }
    println!("  hypergradient     = {}", fmt_vec(&out.hypergradient));
    if let Some(r) = &out.reference {
        println!("  grad phi (closed) = {}", fmt_vec(r));
    }
    if let Some(r) = &out.finite_difference {
        println!("  finite difference = {}", fmt_vec(r));
    }
    if let Some(e) = out.relative_error {
        println!("  relative error    = {e:.3e}");
    }
    if let Some(d) = &out.diagnostics {
        println!(
            "  Krylov: {:?} {:?} in {} iterations, relative residual {:.3e}",
            d.solver, d.status, d.krylov_iterations, d.relative_residual
        );
        if let Some(k) = d.kernel_component {
            println!(
                "  kernel component of grad_y f: {k:.3e} (relative {:.3e}){}",
                d.kernel_component_relative.unwrap_or(0.0),
                if d.kernel_component_relative.unwrap_or(0.0) > 1e-6 {
                    "  <- y is not the optimistic selection: this is not grad phi"
                } else {
                    ""
                }
            );
        }
        if let Some(k) = d.intrinsic_dimension {
            println!("  intrinsic dimension k = {k}");
        }
    }
    if let Some(c) = &out.checks {
        println!(
            "  checks ({}): lower level {}; first order {}; second order {}{}{}",
            c.level,
            match c.lower {
                bilevel_solvers::lower::LowerStatus::Tolerance => "converged (tolerance)",
                bilevel_solvers::lower::LowerStatus::Precision => "converged (rounding floor)",
                bilevel_solvers::lower::LowerStatus::MaxSteps => "NOT converged (step limit)",
                bilevel_solvers::lower::LowerStatus::LineSearch => "NOT converged (line search)",
            },
            if c.first_order { "passed" } else { "FAILED" },
            c.second_order,
            c.min_tangent_curvature
                .map(|q| format!(" (smallest tangent curvature {q:.3e})"))
                .unwrap_or_default(),
            if c.escapes + c.probes_improved > 0 {
                format!(
                    "; {} escape(s), {} improving probe(s)",
                    c.escapes, c.probes_improved
                )
            } else {
                String::new()
            }
        );
        println!("  global optimality: {}", c.global);
    }
    if out.warnings.is_empty() {
        println!("  warnings: none");
    } else {
        print_warnings(&out.warnings);
    }
    if let Some(t) = &out.timing {
        println!(
            "  timing (median of {}): hypergradient {:.3} ms, full gradient {:.3} ms",
            t.repeats,
            1e3 * t.hypergradient_s,
            1e3 * t.gradient_s
        );
    }
    strict_verdict(strict, out.warnings.len(), "the hypergradient")
}
