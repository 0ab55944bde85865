//! HG-MS: select, then differentiate (docs/hgms.md).
//!
//! Per outer iteration, warm-started from the previous one:
//!
//! 1. **Reach the manifold**: gradient descent on `g(x, ·)` with steps from the problem at the
//!    point (`lower_lr = "auto"`: Barzilai–Borwein trial steps, Armijo backtracking on g), until
//!    `‖∇_y g‖ ≤ lower_tol` or converged to the rounding floor ([`crate::lower::LowerSolver`]).
//! 2. **Select** `y ≈ argmin_{y ∈ S(x)} f(x, y)`:
//!    * `tangent`: `y ← R(y − η P_T ∇_y f)` with `P_T` the projection on the near-null space of
//!      `H` (eigenvalues below `null_rtol · λ_max`; the tangent space of `S(x)`), computed by
//!      Lanczos from `∇_y f`, `R` the retraction by descent on `g`, and η backtracked (Armijo)
//!      so that `f` decreases, then adapted by Barzilai–Borwein;
//!    * `penalty`: minimise `f + (1/σ) g` for σ = σ₀, σ₀ρ, … (Armijo gradient descent), then a
//!      tangent polish;
//!    * `multistart`: `starts` random perturbations of `y` (scale `start_radius`, from `seed` and the
//!      iteration), each retracted and refined by `refine_steps` tangent steps; the best `f` on the
//!      manifold is then refined fully — robust when `f` restricted to `S(x)` is nonconvex;
//!    * `none`: no selection (HG-MS degenerates to AID with a pseudoinverse solve).
//!
//!    Stops when `‖P_T ∇_y f‖ ≤ max(tol, rtol · ‖∇_y f‖)` or when no step decreases f beyond
//!    rounding, with the lower level converged.
//! 3. **Differentiate**: `v = (H + γI)^† ∇_y f` by MINRES (or CG) from 0; `h = ∇_x f − J v`.
//! 4. **Check** (`checks = "second-order"`, the default): a Nyström sketch of H gives an
//!    orthonormal basis of `range H`; a negative Rayleigh quotient means y is not a minimiser of g
//!    (escape along it and return to 1); otherwise Lanczos on the Riemannian Hessian
//!    `Q u = P_T(∇²_yy f u − D_v[H] u)` ([`bilevel_core::manifold`]) finds the smallest tangent
//!    curvature; a negative one (a maximiser or saddle of f on S) is escaped along its direction
//!    and the selection resumes. At the first evaluation, probes along the normal line through y
//!    (both sides, at the manifold's curvature length) look for a lower f elsewhere on S(x).
//!    Every failed check becomes a [`Warning`]; global optimality is never certified.
//! 5. **Upper step** (plain, Adam, box projection).
//!
//! The paper (Masiha, Shen, Kiyavash, He 2026) was available to us only as an abstract; the
//! selection strategies and checks are our construction from its structure and the mathematics.

use crate::checkpoint::restore_upper;
use crate::lower::{LowerOutcome, LowerSolver, LowerStatus, StepSize};
use crate::upper::{UpperConfig, UpperOptimizer};
pub use crate::validate::{check_count, validate_hypergrad, MAX_COUNT, MAX_KRYLOV_DIM};
use crate::warnings as codes;
use crate::{
    BilevelSolver, ChecksReport, SelectionReport, SolverError, State, StepReport, Warning,
};
use bilevel_core::hypergrad::{
    range_sketch, HypergradOptions, HypergradientSolver, LinearSolverKind, RangeSketch,
    SpectralSketch,
};
use bilevel_core::krylov::{
    cg, lanczos, project_start_below, CgWorkspace, KrylovOptions, KrylovStatus, LanczosOptions,
    LanczosWorkspace,
};
use bilevel_core::manifold::{
    lower_hvp_derivative, tangent_curvature, CurvatureOptions, CurvatureWorkspace, TangentCurvature,
};
use bilevel_core::rng::Rng;
use bilevel_core::{Bilevel, Counted, Vector};
use serde::{Deserialize, Serialize};

/// Selection strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionStrategy {
    /// Projected (tangent) descent with retraction.
    Tangent,
    /// Penalty continuation `f + g/σ`, σ decreasing, then a tangent polish.
    Penalty,
    /// Random restarts on the manifold, best `f` kept, then tangent refinement.
    Multistart,
    /// No selection.
    None,
}

/// Step-size rule of the tangent selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepRule {
    /// η = `lr`, reduced on Armijo failure and grown back by 1.5× after a success.
    Fixed,
    /// Barzilai–Borwein steps from successive tangent gradients, Armijo-safeguarded.
    BarzilaiBorwein,
}

/// Which correctness checks HG-MS runs on its selection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checks {
    /// First-order stationarity, the lower-level minimum (H ⪰ 0) and the second-order condition
    /// on S(x), with escapes from maximisers and saddles, and global probes at the first
    /// evaluation.
    #[default]
    SecondOrder,
    /// First-order stationarity only (cheaper; a maximiser or saddle of f on S(x) goes
    /// unnoticed: the kernel component is zero at every critical point).
    FirstOrder,
}

/// Selection-phase configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Strategy.
    pub strategy: SelectionStrategy,
    /// Maximum tangent steps per outer iteration.
    pub max_steps: usize,
    /// First tangent step η: `"auto"` (from the curvature of f along the tangent direction and
    /// the size of y, then remembered) or a number; backtracked by Armijo either way.
    pub lr: StepSize,
    /// Step rule after the first step.
    pub step_rule: StepRule,
    /// Absolute tolerance: stop when `‖P_T ∇_y f‖ ≤ tol` (0: only the relative test).
    pub tol: f64,
    /// Relative tolerance: stop when `‖P_T ∇_y f‖ ≤ rtol · ‖∇_y f‖`.
    pub rtol: f64,
    /// Lower-level steps per retraction (stops earlier when converged).
    pub retraction_steps: usize,
    /// Lanczos dimension limit of the tangent projection.
    pub projection_max_iter: usize,
    /// Eigenvalues of H below `null_rtol · λ_max` count as zero (tangent directions).
    pub null_rtol: f64,
    /// Second-order check: a tangent curvature below `−curvature_rtol ×` its scale is negative.
    pub curvature_rtol: f64,
    /// Second-order check: Lanczos dimension limit on the tangent space.
    pub curvature_max_iter: usize,
    /// Escapes (along negative curvature of f on S, or of g) per evaluation.
    pub max_escapes: usize,
    /// Run the second-order check at the first evaluation and every `check_every` iterations
    /// (0: only at the first). Its oracle calls are the algorithm's (it can move y), so it does
    /// not follow the diagnostics schedule, which must not change the path.
    pub check_every: usize,
    /// Global probes along the normal line at the first evaluation (0 disables).
    pub probes: usize,
    /// Penalty: initial σ₀.
    pub penalty_sigma0: f64,
    /// Penalty: factor ρ ∈ (0, 1) between stages.
    pub penalty_decay: f64,
    /// Penalty: number of stages.
    pub penalty_stages: usize,
    /// Penalty: gradient steps per stage.
    pub penalty_steps: usize,
    /// Multistart: number of random starts (besides the current `y`).
    pub starts: usize,
    /// Multistart: standard deviation of the Gaussian perturbation.
    pub start_radius: f64,
    /// Multistart: tangent steps per start before comparing.
    pub refine_steps: usize,
    /// Multistart: seed (combined with the outer iteration).
    pub seed: u64,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            strategy: SelectionStrategy::Tangent,
            max_steps: 500,
            lr: StepSize::Auto,
            step_rule: StepRule::BarzilaiBorwein,
            tol: 0.0,
            rtol: 1e-12,
            retraction_steps: 500,
            projection_max_iter: 200,
            null_rtol: 1e-6,
            curvature_rtol: 1e-6,
            curvature_max_iter: 50,
            max_escapes: 4,
            check_every: 10,
            probes: 2,
            penalty_sigma0: 1.0,
            penalty_decay: 0.1,
            penalty_stages: 6,
            penalty_steps: 500,
            starts: 8,
            start_radius: 1.0,
            refine_steps: 30,
            seed: 0,
        }
    }
}

/// HG-MS configuration (every knob, with defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HgmsConfig {
    /// Lower-level gradient steps per outer iteration (K_ll), a cap: the solve stops earlier at
    /// `lower_tol` or at the rounding floor.
    pub lower_steps: usize,
    /// Lower-level step: `"auto"` (Barzilai–Borwein with Armijo backtracking; the default) or a
    /// fixed β (≤ 1/L_g; divergence is reported).
    pub lower_lr: StepSize,
    /// Absolute lower-level tolerance on `‖∇_y g‖` (0: converge to the rounding floor).
    pub lower_tol: f64,
    /// Checks on the selection (`"second-order"` or `"first-order"`).
    pub checks: Checks,
    /// Selection phase.
    pub selection: SelectionConfig,
    /// Pseudoinverse solve and diagnostics.
    pub hypergradient: HypergradOptions,
    /// Upper step.
    pub upper: UpperConfig,
}

impl Default for HgmsConfig {
    fn default() -> Self {
        HgmsConfig {
            lower_steps: 2000,
            lower_lr: StepSize::Auto,
            lower_tol: 0.0,
            checks: Checks::SecondOrder,
            selection: SelectionConfig::default(),
            hypergradient: HypergradOptions {
                solver: LinearSolverKind::Minres,
                ..HypergradOptions::default()
            },
            upper: UpperConfig::default(),
        }
    }
}

impl HgmsConfig {
    /// Check every value; errors name the field (prefixed by `prefix`, e.g. `solver`).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        let pos = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!(
                    "{prefix}.{name}: must be a positive number (got {v})"
                ))
            }
        };
        self.lower_lr.validate(&format!("{prefix}.lower_lr"))?;
        self.selection
            .lr
            .validate(&format!("{prefix}.selection.lr"))?;
        pos("selection.penalty_sigma0", self.selection.penalty_sigma0)?;
        pos("selection.start_radius", self.selection.start_radius)?;
        for (name, v) in [
            ("lower_tol", self.lower_tol),
            ("selection.tol", self.selection.tol),
            ("selection.rtol", self.selection.rtol),
            ("selection.curvature_rtol", self.selection.curvature_rtol),
        ] {
            if v.is_nan() || v < 0.0 || v.is_infinite() {
                return Err(format!("{prefix}.{name}: must be ≥ 0 (got {v})"));
            }
        }
        let rho = self.selection.penalty_decay;
        if !(rho > 0.0 && rho < 1.0) {
            return Err(format!(
                "{prefix}.selection.penalty_decay: must lie in (0, 1) (got {rho})"
            ));
        }
        let n = self.selection.null_rtol;
        if !(n > 0.0 && n < 1.0) {
            return Err(format!(
                "{prefix}.selection.null_rtol: must lie in (0, 1) (got {n})"
            ));
        }
        for (name, v, cap) in [
            ("lower_steps", self.lower_steps, MAX_COUNT),
            ("selection.max_steps", self.selection.max_steps, MAX_COUNT),
            (
                "selection.retraction_steps",
                self.selection.retraction_steps,
                MAX_COUNT,
            ),
            (
                "selection.projection_max_iter",
                self.selection.projection_max_iter,
                MAX_KRYLOV_DIM,
            ),
            (
                "selection.curvature_max_iter",
                self.selection.curvature_max_iter,
                MAX_KRYLOV_DIM,
            ),
            ("selection.max_escapes", self.selection.max_escapes, 1000),
            ("selection.probes", self.selection.probes, 64),
            (
                "selection.penalty_stages",
                self.selection.penalty_stages,
                1000,
            ),
            (
                "selection.penalty_steps",
                self.selection.penalty_steps,
                MAX_COUNT,
            ),
            ("selection.starts", self.selection.starts, 10_000),
            (
                "selection.refine_steps",
                self.selection.refine_steps,
                MAX_COUNT,
            ),
        ] {
            check_count(prefix, name, v, cap)?;
        }
        validate_hypergrad(&self.hypergradient, &format!("{prefix}.hypergradient"))?;
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

/// Buffers reused across iterations.
struct Work<Y: Vector> {
    grad: Y,
    b: Y,
    t: Y,
    trial: Y,
    best: Y,
    prev_y: Y,
    prev_t: Y,
    probe: Y,
    hb: Y,
    b_trial: Y,
    t_trial: Y,
    gx: Vec<f64>,
    hyper: HypergradientSolver<Y>,
    lanczos: LanczosWorkspace<Y>,
    lower: LowerSolver<Y>,
    curvature: CurvatureWorkspace<Y>,
    cg: CgWorkspace<Y>,
}

/// The HG-MS solver.
pub struct Hgms<Y: Vector> {
    config: HgmsConfig,
    upper: UpperOptimizer,
    work: Option<Work<Y>>,
    /// Remembered tangent step η (auto rule).
    eta: Option<f64>,
    /// Remembered lower-level step (auto rule), for checkpoints before the workspace exists.
    lower_beta: Option<f64>,
    /// A second-order check found k = 0 (H nonsingular): the selection is locally unique and
    /// the check is not repeated (the intrinsic dimension is constant in x under local PL).
    full_rank: bool,
    /// A second-order check could not resolve the rank of H (sketch at its column limit): it is
    /// not repeated at every `check_every` (each attempt costs the whole sketch); the first
    /// evaluation's `second-order-unchecked` stands for the run.
    unresolvable: bool,
}

impl<Y: Vector> Hgms<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: HgmsConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Hgms {
            config,
            upper,
            work: None,
            eta: None,
            lower_beta: None,
            full_rank: false,
            unresolvable: false,
        }
    }
}

/// What a selection phase achieved.
#[derive(Clone, Copy, Debug)]
struct Selected {
    /// Tangent steps taken.
    steps: usize,
    /// `‖P_T ∇_y f‖` at the end.
    tangent_norm: f64,
    /// The lower-level solve at the final point.
    lower: LowerOutcome,
    /// f at the final point.
    f: f64,
    /// First-order stationary on S(x) (tolerance or rounding floor).
    first_order: bool,
}

/// `out ← P_T b`: the projection of `b = ∇_y f` on the near-null space of `H` (the tangent space
/// of `S(x)`), from Lanczos started at `b`: `P_T b = Σ_{|θ_i| ≤ τ} ⟨b, z_i⟩ z_i`,
/// τ = `null_rtol · max|θ|`. Eigenvalues below τ count as zero, so at an inexact point of the
/// manifold (where the tangent eigenvalue of H is tiny but nonzero) the tangent component is not
/// solved away.
#[allow(clippy::too_many_arguments)]
fn tangent_projection<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    sel: &SelectionConfig,
    b: &P::Y,
    out: &mut P::Y,
    ws: &mut LanczosWorkspace<P::Y>,
) -> Result<(), SolverError> {
    if !b.is_finite() || !y.is_finite() {
        return Err(SolverError::NonFinite(format!(
            "selection: {} is not finite (NaN or Inf)",
            if y.is_finite() { "∇_y f" } else { "y" }
        )));
    }
    let mut op = |u: &P::Y, o: &mut P::Y| p.hvp(x, y, u, o);
    let opts = LanczosOptions {
        max_iter: sel.projection_max_iter.min(b.dim()).max(1),
        // A looser invariance test would hide tangent components below ≈ tol·‖∇_y f‖ (when
        // ∇_y f is nearly an eigenvector of H, Lanczos stops after one step).
        tol: 1e-10,
        resolve_start: true,
    };
    let res = lanczos(&mut op, b, &opts, ws)?;
    let tau = sel.null_rtol * res.lambda_max().abs().max(res.lambda_min().abs());
    project_start_below(&res, ws, tau, out);
    Ok(())
}

/// `wk.b ← ∇_y f(x, y)`, `wk.t ← P_T wk.b`.
fn tangent_gradient<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    sel: &SelectionConfig,
    wk: &mut Work<P::Y>,
) -> Result<(), SolverError> {
    p.grad_f(x, y, &mut wk.gx, &mut wk.b);
    tangent_projection(p, x, y, sel, &wk.b, &mut wk.t, &mut wk.lanczos)
}

/// Lower-level solve from `y` with the configured rule; `steps` caps it.
fn lower_solve<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    cfg: &HgmsConfig,
    steps: usize,
    wk: &mut Work<P::Y>,
) -> Result<LowerOutcome, SolverError> {
    wk.lower.solve(p, x, y, &mut wk.grad, steps, cfg.lower_tol)
}

/// First tangent step η of the `auto` rule: the Cauchy step `‖t‖²/⟨t, ∇²f t⟩` where f curves
/// upward along t, capped so that the step moves y by at most a tenth of `‖y‖` (by `1/‖t‖` at
/// `y = 0`). Too short a first step is lengthened by the expansion in [`tangent_descent`].
fn initial_eta<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    wk: &mut Work<P::Y>,
) -> f64 {
    let tn = wk.t.norm();
    let yn = y.norm();
    let mut eta = if yn > 0.0 { 0.1 * yn / tn } else { 1.0 / tn };
    if p.hvp_upper(x, y, &wk.t, &mut wk.hb) {
        let c = wk.t.dot(&wk.hb) / (tn * tn);
        if c > 0.0 && c.is_finite() {
            eta = eta.min(1.0 / c);
        }
    }
    if eta.is_finite() && eta > 0.0 {
        eta
    } else {
        1.0
    }
}

/// How a trial tangent step was judged.
enum Trial {
    /// Accepted; `wk.b_trial`, `wk.t_trial` hold ∇_y f and its tangent part there when the
    /// gradient test computed them.
    Accept {
        lower: LowerOutcome,
        f: f64,
        gradients: bool,
    },
    /// Rejected; the next η.
    Reject(f64),
    /// The step no longer changes y, or f and the tangent gradient are flat to rounding.
    Floor,
}

/// Judge the step `y − η t` (retracted): Armijo on f where its values resolve the demanded
/// decrease; where they do not (f flat to its rounding), the approximate Armijo condition of
/// Hager & Zhang (2005) on the tangent gradients, `⟨P_T∇f(y⁺), s⟩ ≤ −0.8 ⟨P_T∇f(y), s⟩`.
#[allow(clippy::too_many_arguments)]
fn try_tangent_step<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    eta: f64,
    tn: f64,
    f_cur: f64,
    gap: f64,
    cfg: &HgmsConfig,
    wk: &mut Work<P::Y>,
) -> Result<Trial, SolverError> {
    let s = &cfg.selection;
    wk.trial.assign(y);
    wk.trial.axpy(-eta, &wk.t);
    wk.probe.assign(&wk.trial);
    wk.probe.axpy(-1.0, y);
    if wk.probe.norm() <= 4.0 * f64::EPSILON * y.norm() {
        return Ok(Trial::Floor);
    }
    // A retraction that fails (a long step can leave the region where g is defined or PL)
    // rejects the trial like an Armijo failure.
    let retraction = wk.lower.solve(
        p,
        x,
        &mut wk.trial,
        &mut wk.grad,
        s.retraction_steps,
        cfg.lower_tol,
    );
    // The retraction must reach the manifold as closely as y itself is on it (converged, or a
    // lower gap within 10× y's): where the lower level converges slowly, demanding the rounding
    // floor would reject every step.
    let lower = match retraction {
        Ok(o) if (o.status.converged() || o.grad_norm <= 10.0 * gap) && wk.trial.is_finite() => o,
        _ => return Ok(Trial::Reject(0.1 * eta)),
    };
    let f_trial = p.f(x, &wk.trial);
    if !f_trial.is_finite() {
        return Ok(Trial::Reject(0.1 * eta));
    }
    let decrease = f_cur - f_trial;
    let noise = 1e-10 * f_cur.abs().max(f_trial.abs());
    let armijo = 1e-4 * eta * tn * tn;
    if decrease >= armijo && decrease > noise {
        return Ok(Trial::Accept {
            lower,
            f: f_trial,
            gradients: false,
        });
    }
    if armijo <= noise && decrease >= -noise {
        // f cannot resolve the step: judge it by the tangent gradients.
        p.grad_f(x, &wk.trial, &mut wk.gx, &mut wk.b_trial);
        tangent_projection(
            p,
            x,
            &wk.trial,
            s,
            &wk.b_trial,
            &mut wk.t_trial,
            &mut wk.lanczos,
        )?;
        wk.probe.assign(&wk.trial);
        wk.probe.axpy(-1.0, y);
        let d0 = wk.t.dot(&wk.probe);
        let d1 = wk.t_trial.dot(&wk.probe);
        if d0 < 0.0 && d1 <= -0.8 * d0 {
            return Ok(Trial::Accept {
                lower,
                f: f_trial,
                gradients: true,
            });
        }
        if d0 >= 0.0 {
            // The retraction turned the step away from descent: the tangent gradient is at its
            // rounding floor.
            return Ok(Trial::Floor);
        }
        // Secant curvature along the step: the largest acceptable fraction is ≈ 1.8 d0/(d0 − d1).
        let c = d1 - d0;
        let frac = if c > 0.0 { 0.9 * 1.8 * (-d0) / c } else { 0.5 };
        return Ok(Trial::Reject(eta * frac.clamp(1e-3, 0.5)));
    }
    // Reliable values, insufficient decrease: the minimiser of the quadratic through f(0),
    // f'(0) = −‖t‖² and f(η), within [0.1, 0.5]·η.
    let denom = 2.0 * (f_trial - f_cur + eta * tn * tn);
    let q = if denom > 0.0 {
        tn * tn * eta * eta / denom
    } else {
        0.5 * eta
    };
    Ok(Trial::Reject(q.clamp(0.1 * eta, 0.5 * eta)))
}

/// Tangent descent with retraction and a (gradient-safeguarded) Armijo line search, from `y`, for
/// at most `steps` steps.
#[allow(clippy::too_many_arguments)]
fn tangent_descent<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    cfg: &HgmsConfig,
    steps: usize,
    known: Option<LowerOutcome>,
    wk: &mut Work<P::Y>,
    eta_memory: &mut Option<f64>,
) -> Result<Selected, SolverError> {
    let s = &cfg.selection;
    // The lower level at y, unless the caller has just solved it there.
    let mut lower = match known {
        Some(o) => o,
        None => lower_solve(p, x, y, cfg, s.retraction_steps.max(cfg.lower_steps), wk)?,
    };
    let mut f_cur = p.f(x, y);
    tangent_gradient(p, x, y, s, wk)?;
    let mut scale = wk.b.norm();
    let mut tn = wk.t.norm();
    let tol = |scale: f64| s.tol.max(s.rtol * scale);
    let mut first = eta_memory.is_none();
    let mut eta = match (s.lr, *eta_memory) {
        (StepSize::Fixed(v), _) => v,
        (StepSize::Auto, Some(e)) => e,
        (StepSize::Auto, None) if tn > 0.0 => initial_eta(p, x, y, wk),
        (StepSize::Auto, None) => 1.0,
    };
    let max_eta = match s.lr {
        StepSize::Fixed(v) => v,
        StepSize::Auto => f64::INFINITY,
    };
    let mut taken = 0;
    let mut at_floor = false;
    while taken < steps && tn > tol(scale) {
        wk.prev_y.assign(y);
        wk.prev_t.assign(&wk.t);
        let mut accepted = None;
        for _ in 0..60 {
            match try_tangent_step(p, x, y, eta, tn, f_cur, lower.grad_norm, cfg, wk)? {
                Trial::Accept {
                    lower,
                    f,
                    gradients,
                } => {
                    accepted = Some((lower, f, gradients));
                    break;
                }
                Trial::Reject(next) => {
                    eta = next;
                    // A rejected first step ends the expansion below.
                    first = false;
                }
                Trial::Floor => {
                    at_floor = true;
                    break;
                }
            }
        }
        let Some((mut lo, f_new, mut have_gradients)) = accepted else {
            break;
        };
        let mut f_next = f_new;
        // The first step of a fresh selection (its η is a guess): while the step was clearly
        // too short — f fell by at least half the first-order prediction η‖P_T∇f‖², so the
        // curvature has not set in — lengthen it tenfold.
        if first && s.lr == StepSize::Auto {
            first = false;
            if f_cur - f_new >= 0.5 * eta * tn * tn {
                let mut best = (f_new, eta);
                wk.best.assign(&wk.trial);
                for _ in 0..20 {
                    let longer = 10.0 * best.1;
                    match try_tangent_step(p, x, y, longer, tn, f_cur, lower.grad_norm, cfg, wk)? {
                        Trial::Accept { f, lower: l, .. } if f < best.0 => {
                            let linear = f_cur - f >= 0.5 * longer * tn * tn;
                            best = (f, longer);
                            // The lower-level outcome of the point kept, not of the first one.
                            lo = l;
                            wk.best.assign(&wk.trial);
                            if !linear {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                eta = best.1;
                f_next = best.0;
                wk.trial.assign(&wk.best);
                have_gradients = false;
            }
        }
        y.assign(&wk.trial);
        f_cur = f_next;
        lower = lo;
        taken += 1;
        if have_gradients {
            std::mem::swap(&mut wk.b, &mut wk.b_trial);
            std::mem::swap(&mut wk.t, &mut wk.t_trial);
        } else {
            tangent_gradient(p, x, y, s, wk)?;
        }
        scale = wk.b.norm();
        tn = wk.t.norm();
        eta = match s.step_rule {
            StepRule::Fixed => (eta * 1.5).min(max_eta),
            StepRule::BarzilaiBorwein => {
                // η = ⟨s, s⟩/⟨s, z⟩ with s = y⁺ − y, z = P_T∇f⁺ − P_T∇f (Barzilai & Borwein
                // 1988), kept within 10⁴ of the accepted step; the line search still guards it.
                wk.prev_y.scale(-1.0);
                wk.prev_y.axpy(1.0, y);
                wk.prev_t.scale(-1.0);
                wk.prev_t.axpy(1.0, &wk.t);
                let ss = wk.prev_y.dot(&wk.prev_y);
                let sz = wk.prev_y.dot(&wk.prev_t);
                if sz > 0.0 && ss > 0.0 {
                    (ss / sz).clamp(1e-4 * eta, 1e4 * eta).min(1e3 * max_eta)
                } else {
                    (2.0 * eta).min(1e3 * max_eta)
                }
            }
        };
    }
    if s.lr == StepSize::Auto && eta.is_finite() && eta > 0.0 {
        *eta_memory = Some(eta);
    }
    // First-order stationarity of f on S(x); how far y is from S(x) is the lower level's own
    // check (`lower-not-converged`).
    let first_order = tn <= tol(scale) || at_floor;
    Ok(Selected {
        steps: taken,
        tangent_norm: tn,
        lower,
        f: f_cur,
        first_order,
    })
}

/// What the second-order stage found at the current point.
enum SecondOrder<Y> {
    /// H has a negative Rayleigh quotient (y is not a local minimiser of g).
    LowerIndefinite { direction: Y, curvature: f64 },
    /// T = {0}: the lower-level solution is locally unique (with the sketch, where one ran).
    NotApplicable(Option<SpectralSketch>),
    /// The rank of H was not resolved within the sketch's column limit.
    Unchecked(SpectralSketch),
    /// The smallest tangent curvature (negative or not).
    Curvature(SpectralSketch, TangentCurvature<Y>),
}

/// Sketch H at y; if it is positive semidefinite, find the smallest tangent curvature of f.
fn second_order<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    cfg: &HgmsConfig,
    wk: &mut Work<P::Y>,
) -> Result<SecondOrder<P::Y>, SolverError> {
    let diag = &cfg.hypergradient.diagnostics;
    // Where the sketch would be wide (d > 64), first try the cheap certificate of a positive
    // definite H: CG on a random right-hand side that converges without meeting a non-positive
    // curvature (k = 0, y a strict local minimiser of g). CG on a singular or indefinite H stops
    // early instead, and the sketch then tells which.
    if y.dim() > 64 {
        let mut rng = Rng::new(diag.sketch_seed ^ 0xc9);
        wk.probe.fill_with(&mut || rng.normal());
        let mut op = |u: &P::Y, out: &mut P::Y| p.hvp(x, y, u, out);
        let info = cg(
            &mut op,
            &wk.probe,
            &mut wk.hb,
            &KrylovOptions {
                max_iter: cfg.hypergradient.max_iter,
                rtol: 1e-8,
                ..KrylovOptions::default()
            },
            &mut wk.cg,
        );
        // Converged is not enough: on a manifold the tangent eigenvalues of H at a point
        // converged to the rounding floor are tiny but positive, and CG resolves them too. The
        // certificate also needs the solve to be bounded as a nonsingular H allows,
        // ‖v‖ ‖Hz‖/‖z‖² ≤ 1/(null_rtol √d) (λ_min ≥ null_rtol λ_max up to a random start's
        // dimension factor).
        if info.status == KrylovStatus::Converged {
            p.hvp(x, y, &wk.probe, &mut wk.t);
            let zn = wk.probe.norm();
            let growth = wk.hb.norm() * wk.t.norm() / (zn * zn);
            let bound = 1.0 / (cfg.selection.null_rtol * (y.dim() as f64).sqrt());
            if growth.is_finite() && growth <= bound {
                return Ok(SecondOrder::NotApplicable(None));
            }
        }
    }
    let sketch: RangeSketch<P::Y> = {
        let mut op = |u: &P::Y, out: &mut P::Y| p.hvp(x, y, u, out);
        range_sketch(
            &mut op,
            y,
            cfg.selection.null_rtol,
            diag.sketch_max_columns,
            diag.sketch_seed,
            true,
        )?
    };
    if let Some(direction) = sketch.negative_direction {
        return Ok(SecondOrder::LowerIndefinite {
            direction,
            curvature: sketch.min_rayleigh,
        });
    }
    let summary = sketch.summary;
    if !summary.resolved {
        return Ok(SecondOrder::Unchecked(summary));
    }
    if summary.rank >= y.dim() {
        return Ok(SecondOrder::NotApplicable(Some(summary)));
    }
    let opts = CurvatureOptions {
        max_iter: cfg.selection.curvature_max_iter,
        ..CurvatureOptions::default()
    };
    let Work {
        hyper, curvature, ..
    } = wk;
    match tangent_curvature(p, x, y, hyper.v(), &sketch.basis, &opts, curvature)? {
        Some(c) => Ok(SecondOrder::Curvature(summary, c)),
        None => Ok(SecondOrder::NotApplicable(Some(summary))),
    }
}

/// Which objective an escape decreases.
#[derive(Clone, Copy, PartialEq)]
enum EscapeOn {
    /// f on S(x): trial points are retracted to S before f is compared.
    Upper,
    /// g: trial points are compared on g, then the lower level is solved.
    Lower,
}

/// Move y along ±`dir` (unit) where the objective has curvature `curv < 0`, by a step
/// backtracked from `t0` until the objective decreases by at least `¼|curv| t²`; keeps the better
/// sign. Returns whether y moved.
#[allow(clippy::too_many_arguments)]
fn escape<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    dir: &P::Y,
    curv: f64,
    t0: f64,
    on: EscapeOn,
    cfg: &HgmsConfig,
    wk: &mut Work<P::Y>,
) -> bool {
    let value = |p: &Counted<P>, y: &P::Y| match on {
        EscapeOn::Upper => p.f(x, y),
        EscapeOn::Lower => p.g(x, y),
    };
    let v0 = value(p, y);
    let mut t = t0;
    for _ in 0..40 {
        let mut best = f64::INFINITY;
        for sign in [1.0, -1.0] {
            wk.trial.assign(y);
            wk.trial.axpy(sign * t, dir);
            if on == EscapeOn::Upper {
                let ok = wk.lower.solve(
                    p,
                    x,
                    &mut wk.trial,
                    &mut wk.grad,
                    cfg.selection.retraction_steps.max(cfg.lower_steps),
                    cfg.lower_tol,
                );
                if !matches!(ok, Ok(o) if o.status.converged()) {
                    continue;
                }
            }
            let vt = value(p, &wk.trial);
            if vt.is_finite() && vt <= v0 - 0.25 * curv.abs() * t * t && vt < best {
                best = vt;
                wk.best.assign(&wk.trial);
            }
        }
        if best.is_finite() {
            y.assign(&wk.best);
            return true;
        }
        t *= 0.5;
    }
    false
}

/// Length scale of S(x) along the unit normal n: `ℓ = ⟨n, H n⟩ / ‖D_n[H] n‖` (on a sphere of
/// radius R, ℓ = R/3), returned with the curvature `λ = ⟨n, H n⟩`. `None` where H does not
/// change along n (flat manifolds).
fn curvature_length<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    n: &P::Y,
    wk: &mut Work<P::Y>,
) -> Option<(f64, f64)> {
    p.hvp(x, y, n, &mut wk.hb);
    let lam = n.dot(&wk.hb);
    lower_hvp_derivative(
        p,
        x,
        y,
        n,
        n,
        CurvatureOptions::default().fd_eps,
        &mut wk.trial,
        &mut wk.best,
        &mut wk.probe,
    );
    let k3 = wk.probe.norm();
    (lam > 0.0 && k3 > 0.0 && (lam / k3).is_finite()).then(|| (lam / k3, lam))
}

/// What the global probes found.
#[derive(Clone, Copy, Debug, Default)]
struct ProbeOutcome {
    /// A point of S(x) with lower f was found and adopted.
    improved: bool,
    /// A distinct point of S(x) with the same f (to 1e-10 of f's variation) was found: the
    /// selection is not unique.
    tie: bool,
}

/// Global probes: from y, move along ±n (n ∝ ∇_y f, a normal direction at a first-order point)
/// by multiples of the curvature length, solve the lower level, and keep the point of S(x) with
/// the lowest f if it beats y; a distinct point with the same f is reported as a tie.
fn probe<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    cfg: &HgmsConfig,
    wk: &mut Work<P::Y>,
) -> Result<ProbeOutcome, SolverError> {
    let mut outcome = ProbeOutcome::default();
    p.grad_f(x, y, &mut wk.gx, &mut wk.b);
    let bn = wk.b.norm();
    if bn == 0.0 || !bn.is_finite() {
        return Ok(outcome);
    }
    let mut n = wk.b.clone();
    n.scale(1.0 / bn);
    let Some((ell, lam)) = curvature_length(p, x, y, &n, wk) else {
        return Ok(outcome);
    };
    let f0 = p.f(x, y);
    let g0 = p.g(x, y);
    // g agrees on S(x) up to the accuracy of the lower solves; a probe landing on a stationary
    // point of g that is not a minimiser (a centre) has g larger by about λ ℓ².
    let g_tol = 1e-8 * lam * ell * ell + 16.0 * f64::EPSILON * g0.abs();
    let mut best_f = f0 - 1e-12 * f0.abs().max(f64::MIN_POSITIVE) - 16.0 * f64::EPSILON * f0.abs();
    // f varies over S(x) by about ‖∇_y f‖ ℓ; a distinct point within 1e-10 of that is a tie.
    let tie_tol = 1e-10 * (f0.abs() + bn * ell);
    let mut cand = y.clone();
    let count = cfg.selection.probes;
    for i in 0..count {
        let sign = if i % 2 == 0 { -1.0 } else { 1.0 };
        // 6ℓ = 2R on a sphere of radius R: the antipode, across the centre.
        let mult = 6.0 * (1 + i / 2) as f64;
        cand.assign(y);
        cand.axpy(sign * mult * ell, &n);
        let out = wk.lower.solve(
            p,
            x,
            &mut cand,
            &mut wk.grad,
            cfg.lower_steps,
            cfg.lower_tol,
        );
        if !matches!(out, Ok(o) if o.status.converged()) {
            continue;
        }
        let (fc, gc) = (p.f(x, &cand), p.g(x, &cand));
        if !(fc.is_finite() && gc <= g0 + g_tol) {
            continue;
        }
        if fc < best_f {
            best_f = fc;
            wk.best.assign(&cand);
            outcome.improved = true;
        } else if (fc - f0).abs() <= tie_tol {
            wk.trial.assign(&cand);
            wk.trial.axpy(-1.0, y);
            if wk.trial.norm() >= ell {
                outcome.tie = true;
            }
        }
    }
    if outcome.improved {
        y.assign(&wk.best);
        // A tie with the point left behind does not concern the new one.
        outcome.tie = false;
    }
    Ok(outcome)
}

/// The configured selection strategy from the current y (`known`: the lower-level solve just done
/// at y, if any).
#[allow(clippy::too_many_arguments)]
fn select<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    cfg: &HgmsConfig,
    iteration: usize,
    known: Option<LowerOutcome>,
    wk: &mut Work<P::Y>,
    eta: &mut Option<f64>,
) -> Result<Selected, SolverError> {
    let sel = &cfg.selection;
    match sel.strategy {
        SelectionStrategy::None => {
            let lower = match known {
                Some(o) => o,
                None => lower_solve(p, x, y, cfg, cfg.lower_steps, wk)?,
            };
            Ok(Selected {
                steps: 0,
                tangent_norm: f64::NAN,
                lower,
                f: p.f(x, y),
                first_order: lower.status.converged(),
            })
        }
        SelectionStrategy::Tangent => tangent_descent(p, x, y, cfg, sel.max_steps, known, wk, eta),
        SelectionStrategy::Penalty => {
            let mut sigma = sel.penalty_sigma0;
            let mut total = 0;
            for _ in 0..sel.penalty_stages {
                total += penalty_stage(p, x, y, sigma, sel.penalty_steps, wk);
                sigma *= sel.penalty_decay;
            }
            let mut out = tangent_descent(p, x, y, cfg, sel.max_steps, None, wk, eta)?;
            out.steps += total;
            Ok(out)
        }
        SelectionStrategy::Multistart => {
            let mut rng = Rng::substream(sel.seed, iteration as u64);
            let first = tangent_descent(p, x, y, cfg, sel.refine_steps, known, wk, eta)?;
            let mut s_total = first.steps;
            let mut best_f = if first.lower.status.converged() {
                first.f
            } else {
                f64::INFINITY
            };
            let mut cand = y.clone();
            let mut best = y.clone();
            for _ in 0..sel.starts {
                cand.assign(y);
                wk.trial.fill_with(&mut || rng.normal());
                cand.axpy(sel.start_radius, &wk.trial);
                let Ok(lo) = lower_solve(p, x, &mut cand, cfg, cfg.lower_steps, wk) else {
                    continue;
                };
                let c = tangent_descent(p, x, &mut cand, cfg, sel.refine_steps, Some(lo), wk, eta)?;
                s_total += c.steps;
                if c.lower.status.converged() && c.f < best_f {
                    best_f = c.f;
                    best.assign(&cand);
                }
            }
            y.assign(&best);
            let mut out = tangent_descent(p, x, y, cfg, sel.max_steps, None, wk, eta)?;
            out.steps += s_total;
            Ok(out)
        }
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for Hgms<P::Y> {
    fn name(&self) -> &'static str {
        "hg-ms"
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let cfg = &self.config;
        let lower_beta = self.lower_beta;
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            let mut lower = LowerSolver::new(cfg.lower_lr, &z);
            lower.set_remembered_step(lower_beta);
            Work {
                grad: z.clone(),
                b: z.clone(),
                t: z.clone(),
                trial: z.clone(),
                best: z.clone(),
                prev_y: z.clone(),
                prev_t: z.clone(),
                probe: z.clone(),
                hb: z.clone(),
                b_trial: z.clone(),
                t_trial: z.clone(),
                gx: vec![0.0; p.dim_x()],
                hyper: HypergradientSolver::new(p),
                lanczos: LanczosWorkspace::new(&z),
                curvature: CurvatureWorkspace::new(&z, p.dim_x()),
                cg: CgWorkspace::new(&z),
                lower,
            }
        });
        let x = &state.x;
        let y = &mut state.y;
        let sel = &cfg.selection;
        let selecting = sel.strategy != SelectionStrategy::None;
        let check_now = cfg.checks == Checks::SecondOrder
            && selecting
            && !self.full_rank
            && !(self.unresolvable && state.iteration > 0)
            && (state.iteration == 0
                || (sel.check_every > 0 && state.iteration % sel.check_every == 0));
        let probe_now = check_now && state.iteration == 0 && sel.probes > 0;
        // 1. Reach the manifold.
        let mut known = Some(lower_solve(p, x, y, cfg, cfg.lower_steps, wk)?);
        let mut h = vec![0.0; p.dim_x()];
        let mut escapes = 0;
        let mut probes_improved = 0;
        let mut probed = false;
        let mut tie = false;
        let mut steps_total = 0;
        loop {
            // 2. Select.
            let selected = select(
                p,
                x,
                y,
                cfg,
                state.iteration,
                known.take(),
                wk,
                &mut self.eta,
            )?;
            steps_total += selected.steps;
            // 3. Differentiate at the selected point.
            let mut diag = wk
                .hyper
                .compute(p, x, y, &cfg.hypergradient, false, &mut h)?;
            // 4. Check.
            let mut outcome = None;
            if check_now {
                let so = second_order(p, x, y, cfg, wk)?;
                match &so {
                    SecondOrder::LowerIndefinite {
                        direction,
                        curvature,
                    } if escapes < sel.max_escapes => {
                        let g = p.g(x, y).abs();
                        let t0 = if g > 0.0 {
                            (g / curvature.abs()).sqrt()
                        } else {
                            1e-3 * (1.0 + y.norm())
                        };
                        let dir = direction.clone();
                        escapes += 1;
                        if escape(p, x, y, &dir, *curvature, t0, EscapeOn::Lower, cfg, wk) {
                            known = Some(lower_solve(p, x, y, cfg, cfg.lower_steps, wk)?);
                            continue;
                        }
                    }
                    SecondOrder::Curvature(_, c)
                        if c.min < -sel.curvature_rtol * c.scale && escapes < sel.max_escapes =>
                    {
                        let bn = wk.hyper.rhs().norm();
                        let t0 = if bn > 0.0 {
                            bn / c.min.abs()
                        } else {
                            1e-3 * (1.0 + y.norm())
                        };
                        let dir = c.direction.clone();
                        escapes += 1;
                        if escape(p, x, y, &dir, c.min, t0, EscapeOn::Upper, cfg, wk) {
                            continue;
                        }
                    }
                    _ => {}
                }
                if probe_now && !probed {
                    probed = true;
                    let found = probe(p, x, y, cfg, wk)?;
                    tie = found.tie;
                    if found.improved {
                        probes_improved += 1;
                        continue;
                    }
                }
                outcome = Some(so);
            }
            // 5. Diagnostics (reusing the check's sketch) and the report.
            let sketch = match &outcome {
                Some(SecondOrder::NotApplicable(Some(s)))
                | Some(SecondOrder::Unchecked(s))
                | Some(SecondOrder::Curvature(s, _)) => Some(*s),
                _ => None,
            };
            if with_diagnostics {
                wk.hyper.diagnose_with_sketch(
                    p,
                    x,
                    y,
                    &cfg.hypergradient.diagnostics,
                    sketch.as_ref(),
                    &h,
                    &mut diag,
                )?;
            }
            if matches!(outcome, Some(SecondOrder::NotApplicable(_))) {
                self.full_rank = true;
            }
            if matches!(outcome, Some(SecondOrder::Unchecked(_))) {
                self.unresolvable = true;
            }
            // f and ‖∇_y g‖ evaluated afresh at the point reported, as the solver always has
            // (every escape and probe that moves y returns to the selection, so they agree with
            // the selection's own values).
            p.grad_g_y(x, y, &mut wk.grad);
            let mut rep = StepReport {
                f: p.f(x, y),
                lower_grad_norm: wk.grad.norm(),
                hypergradient: h,
                diagnostics: Some(diag),
                selection: selecting.then(|| SelectionReport {
                    strategy: format!("{:?}", sel.strategy).to_lowercase(),
                    steps: steps_total,
                    tangent_grad_norm: selected.tangent_norm,
                    converged: selected.first_order,
                }),
                ..StepReport::default()
            };
            self.lower_beta = wk.lower.remembered_step();
            rep.checks = Some(checks_report(
                cfg,
                self.full_rank,
                &selected,
                &outcome,
                escapes,
                probes_improved,
            ));
            add_warnings(cfg, &mut rep, &selected, &outcome);
            if tie {
                rep.warn(Warning::new(
                    codes::SELECTION_DEGENERATE,
                    "a probe found a distinct point of S(x) with the same f as the selection: the \
                     optimistic selection is not unique here (a tie; φ has a kink at x)",
                ));
            }
            return Ok(rep);
        }
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({
            "upper": self.upper,
            "lower_step": self.lower_beta,
            "selection_step": self.eta,
            "full_rank": self.full_rank,
            "unresolvable": self.unresolvable,
        })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)?;
        let num = |k: &str| saved.get(k).and_then(|v| v.as_f64());
        self.lower_beta = num("lower_step");
        self.eta = num("selection_step");
        let flag = |k: &str| saved.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        self.full_rank = flag("full_rank");
        self.unresolvable = flag("unresolvable");
        if let Some(wk) = self.work.as_mut() {
            wk.lower.set_remembered_step(self.lower_beta);
        }
        Ok(())
    }
}

/// What the checks found, for the report.
fn checks_report<Y>(
    cfg: &HgmsConfig,
    full_rank: bool,
    selected: &Selected,
    outcome: &Option<SecondOrder<Y>>,
    escapes: usize,
    probes_improved: usize,
) -> ChecksReport {
    let (second_order, curv, lower_indefinite) = match outcome {
        None if full_rank => ("not-applicable".to_string(), None, false),
        None => ("skipped".to_string(), None, false),
        Some(SecondOrder::LowerIndefinite { .. }) => ("failed".to_string(), None, true),
        Some(SecondOrder::NotApplicable(_)) => ("not-applicable".to_string(), None, false),
        Some(SecondOrder::Unchecked(_)) => ("unchecked".to_string(), None, false),
        Some(SecondOrder::Curvature(_, c)) => {
            let passed = c.min >= -cfg.selection.curvature_rtol * c.scale;
            (
                if passed { "passed" } else { "failed" }.to_string(),
                Some((c.min, c.relative())),
                false,
            )
        }
    };
    ChecksReport {
        level: match cfg.checks {
            Checks::SecondOrder => "second-order",
            Checks::FirstOrder => "first-order",
        }
        .to_string(),
        lower: selected.lower.status,
        first_order: selected.first_order,
        second_order,
        lower_indefinite,
        min_tangent_curvature: curv.map(|c| c.0),
        min_tangent_curvature_relative: curv.map(|c| c.1),
        escapes,
        probes_improved,
        global: "not certified: the checks are local (a minimiser of f on its component of \
                     S(x)); probes along the normal line ran at the first evaluation; use \
                     selection.strategy = \"multistart\" where f on S(x) may have several local \
                     minima"
            .to_string(),
    }
}

/// One warning per failed check.
fn add_warnings<Y>(
    cfg: &HgmsConfig,
    rep: &mut StepReport,
    selected: &Selected,
    outcome: &Option<SecondOrder<Y>>,
) {
    let lower = selected.lower;
    if !lower.status.converged() {
        let how = if lower.status == LowerStatus::LineSearch {
            "because no step decreased g"
        } else {
            "at its step limit"
        };
        rep.warn(Warning::new(
            codes::LOWER_NOT_CONVERGED,
            format!(
                "the lower level stopped {how} with ‖∇_y g‖ = {:.3e} (from {:.3e}), short of its \
                 tolerance and of the rounding floor; the hypergradient is taken off the solution set",
                lower.grad_norm, lower.start_grad_norm
            ),
        ));
    }
    if cfg.selection.strategy != SelectionStrategy::None && !selected.first_order {
        rep.warn(Warning::new(
            codes::SELECTION_NOT_FIRST_ORDER,
            format!(
                "the selection stopped with ‖P_T ∇_y f‖ = {:.3e} after {} tangent steps: y is not \
                 a stationary point of f on S(x)",
                selected.tangent_norm, selected.steps
            ),
        ));
    }
    let escapes = cfg.selection.max_escapes;
    match outcome {
        Some(SecondOrder::LowerIndefinite { curvature, .. }) => rep.warn(Warning::new(
            codes::LOWER_NOT_MINIMUM,
            format!(
                "H = ∇²_yy g has negative curvature {curvature:.3e} at y after {escapes} escapes: y \
                 is a saddle or maximum of g, not a lower-level solution"
            ),
        )),
        Some(SecondOrder::Unchecked(s)) => rep.warn(Warning::new(
            codes::SECOND_ORDER_UNCHECKED,
            format!(
                "the rank of H was not resolved with {} sketch columns (dim y = {}): the \
                 second-order condition of the selection is unchecked",
                s.columns,
                s.rank + s.intrinsic_dimension
            ),
        )),
        Some(SecondOrder::Curvature(_, c))
            if c.min.abs() <= DEGENERATE_RTOL * c.scale || c.scale == 0.0 =>
        {
            rep.warn(Warning::new(
                codes::SELECTION_DEGENERATE,
                format!(
                    "the smallest tangent curvature of f on S(x) is {:.3e} against terms of size \
                     {:.3e}: f is flat to second order along S(x) at the selection, which may not \
                     be unique (a tie, or a kink of φ at x)",
                    c.min, c.scale
                ),
            ))
        }
        Some(SecondOrder::Curvature(_, c)) if c.min < -cfg.selection.curvature_rtol * c.scale => {
            rep.warn(Warning::new(
                codes::SELECTION_NOT_SECOND_ORDER,
                format!(
                    "f has negative curvature {:.3e} ({:.1e} relative) along S(x) at the selection \
                     after {escapes} escapes: y is a maximiser or saddle of f on S(x), not the \
                     optimistic selection",
                    c.min,
                    c.relative()
                ),
            ))
        }
        _ => {}
    }
    rep.add_diagnostic_warnings(KERNEL_RTOL);
}

/// Relative kernel component above which a hypergradient is flagged (`kernel-component`).
pub const KERNEL_RTOL: f64 = 1e-6;

/// A smallest tangent curvature below this fraction of its terms' size (or terms that vanish)
/// is degenerate (`selection-degenerate`).
pub const DEGENERATE_RTOL: f64 = 1e-8;

/// Armijo gradient descent on `F = f + g/σ` from `y`; returns the steps taken.
fn penalty_stage<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    sigma: f64,
    steps: usize,
    wk: &mut Work<P::Y>,
) -> usize {
    let value = |y: &P::Y| p.f(x, y) + p.g(x, y) / sigma;
    let mut fv = value(y);
    let mut lr = sigma.min(1.0);
    for k in 0..steps {
        p.grad_f(x, y, &mut wk.gx, &mut wk.b);
        p.grad_g_y(x, y, &mut wk.grad);
        wk.t.assign(&wk.b);
        wk.t.axpy(1.0 / sigma, &wk.grad);
        let gn2 = wk.t.dot(&wk.t);
        if gn2 == 0.0 || !gn2.is_finite() {
            return k;
        }
        let mut accepted = false;
        for _ in 0..60 {
            wk.trial.assign(y);
            wk.trial.axpy(-lr, &wk.t);
            let ft = value(&wk.trial);
            if ft <= fv - 1e-4 * lr * gn2 && ft < fv {
                y.assign(&wk.trial);
                fv = ft;
                accepted = true;
                break;
            }
            lr *= 0.5;
        }
        if !accepted {
            return k;
        }
        lr *= 2.0;
    }
    steps
}
