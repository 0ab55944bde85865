//! HG-MS: select, then differentiate (ALGORITHMS.md §2).
//!
//! Per outer iteration, warm-started from the previous one:
//!
//! 1. **Reach the manifold**: up to `lower_steps` steps `y ← y − β ∇_y g(x, y)` (linear convergence
//!    to `S(x)` under a local PL condition), stopping at `‖∇_y g‖ ≤ lower_tol`.
//! 2. **Select** `y ≈ argmin_{y ∈ S(x)} f(x, y)`:
//!    * `tangent`: `y ← R(y − η P_T ∇_y f)` with `P_T` the projection on the near-null space of
//!      `H` (eigenvalues below `null_rtol · λ_max`; the tangent space of `S(x)`), computed by
//!      Lanczos from `∇_y f`, `R` the retraction by gradient descent on `g`, and η backtracked
//!      (Armijo) so that `f` decreases;
//!    * `penalty`: minimise `f + (1/σ) g` for σ = σ₀, σ₀ρ, … (Armijo gradient descent), then a
//!      tangent polish;
//!    * `multistart`: `starts` random perturbations of `y` (scale `start_radius`, from `seed` and the
//!      iteration), each retracted and refined by `refine_steps` tangent steps; the best `f` on the
//!      manifold is then refined fully — robust when `f` restricted to `S(x)` is nonconvex;
//!    * `none`: no selection (HG-MS degenerates to AID with a pseudoinverse solve).
//!
//!    Stops when `‖P_T ∇_y f‖ ≤ selection.tol` and `‖∇_y g‖ ≤ lower_tol`.
//! 3. **Differentiate**: `v = (H + γI)^† ∇_y f` by MINRES (or CG) from 0; `h = ∇_x f − J v`.
//! 4. **Upper step** (plain, Adam, box projection).
//!
//! The paper (Masiha, Shen, Kiyavash, He 2026) was available to us only as an abstract; the
//! selection strategies are our construction from its structure and the mathematics.

use crate::lower::descend;
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::{BilevelSolver, SelectionReport, SolverError, State, StepReport};
use bilevel_core::hypergrad::{HypergradOptions, HypergradientSolver, LinearSolverKind};
use bilevel_core::krylov::{lanczos, project_start_below, LanczosOptions, LanczosWorkspace};
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
    /// η = `lr`, halved on Armijo failure and grown back by 1.5× after a success.
    Fixed,
    /// Barzilai–Borwein steps from successive tangent gradients, Armijo-safeguarded.
    BarzilaiBorwein,
}

/// Selection-phase configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// Strategy.
    pub strategy: SelectionStrategy,
    /// Maximum tangent steps per outer iteration.
    pub max_steps: usize,
    /// Initial tangent step η (backtracked by Armijo).
    pub lr: f64,
    /// Step rule after the first step.
    pub step_rule: StepRule,
    /// Stop when `‖P_T ∇_y f‖ ≤ tol`.
    pub tol: f64,
    /// Gradient steps on g per retraction (stops earlier at `lower_tol`).
    pub retraction_steps: usize,
    /// Lanczos dimension limit of the tangent projection.
    pub projection_max_iter: usize,
    /// Eigenvalues of H below `null_rtol · λ_max` count as zero (tangent directions).
    pub null_rtol: f64,
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
            lr: 0.5,
            step_rule: StepRule::BarzilaiBorwein,
            tol: 1e-10,
            retraction_steps: 200,
            projection_max_iter: 200,
            null_rtol: 1e-6,
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
    /// Lower-level gradient steps per outer iteration (K_ll).
    pub lower_steps: usize,
    /// Lower-level step β (≤ 1/L_g).
    pub lower_lr: f64,
    /// Lower-level tolerance on `‖∇_y g‖`.
    pub lower_tol: f64,
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
            lower_steps: 200,
            lower_lr: 0.1,
            lower_tol: 1e-11,
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
        pos("lower_lr", self.lower_lr)?;
        pos("selection.lr", self.selection.lr)?;
        pos("selection.penalty_sigma0", self.selection.penalty_sigma0)?;
        pos("selection.start_radius", self.selection.start_radius)?;
        if [self.lower_tol, self.selection.tol]
            .iter()
            .any(|v| v.is_nan() || *v < 0.0)
        {
            return Err(format!("{prefix}.lower_tol/selection.tol: must be ≥ 0"));
        }
        let rho = self.selection.penalty_decay;
        if !(rho > 0.0 && rho < 1.0) {
            return Err(format!(
                "{prefix}.selection.penalty_decay: must lie in (0, 1) (got {rho})"
            ));
        }
        validate_hypergrad(&self.hypergradient, &format!("{prefix}.hypergradient"))?;
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

/// Validate linear-solve options; errors name the field.
pub fn validate_hypergrad(h: &HypergradOptions, prefix: &str) -> Result<(), String> {
    if !(h.shift >= 0.0 && h.shift.is_finite()) {
        return Err(format!("{prefix}.shift: must be ≥ 0 (got {})", h.shift));
    }
    if h.rtol.is_nan() || h.rtol <= 0.0 {
        return Err(format!("{prefix}.rtol: must be positive (got {})", h.rtol));
    }
    if !(h.neumann_eta > 0.0 && h.neumann_eta.is_finite()) {
        return Err(format!(
            "{prefix}.neumann_eta: must be positive (got {})",
            h.neumann_eta
        ));
    }
    if !(h.diagnostics.null_rtol > 0.0 && h.diagnostics.null_rtol < 1.0) {
        return Err(format!(
            "{prefix}.diagnostics.null_rtol: must lie in (0, 1) (got {})",
            h.diagnostics.null_rtol
        ));
    }
    Ok(())
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
    gx: Vec<f64>,
    hyper: HypergradientSolver<Y>,
    lanczos: LanczosWorkspace<Y>,
}

/// The HG-MS solver.
pub struct Hgms<Y: Vector> {
    config: HgmsConfig,
    upper: UpperOptimizer,
    work: Option<Work<Y>>,
}

impl<Y: Vector> Hgms<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: HgmsConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Hgms {
            config,
            upper,
            work: None,
        }
    }
}

/// `t ← P_T b`: the projection of `b = ∇_y f` on the near-null space of `H` (the tangent space of
/// `S(x)`), from Lanczos started at `b`: `P_T b = Σ_{θ_i ≤ τ} ⟨b, z_i⟩ z_i`, τ = `null_rtol · θ_max`.
/// Eigenvalues below τ count as zero, so at an inexact point of the manifold (where the tangent
/// eigenvalue of H is tiny but nonzero) the tangent component is not solved away.
fn tangent_projection<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &P::Y,
    sel: &SelectionConfig,
    wk: &mut Work<P::Y>,
) -> Result<(), SolverError> {
    if !wk.b.is_finite() || !y.is_finite() {
        return Err(SolverError::NonFinite(
            "selection: y or ∇_y f is not finite (NaN or Inf); reduce lower_lr or selection.lr"
                .into(),
        ));
    }
    let mut op = |u: &P::Y, out: &mut P::Y| p.hvp(x, y, u, out);
    let opts = LanczosOptions {
        max_iter: sel.projection_max_iter.min(wk.b.dim()),
        // A looser invariance test would hide tangent components below ≈ tol·‖∇_y f‖ (when
        // ∇_y f is nearly an eigenvector of H, Lanczos stops after one step).
        tol: 1e-10,
    };
    let res = lanczos(&mut op, &wk.b, &opts, &mut wk.lanczos)?;
    let tau = sel.null_rtol * res.lambda_max().abs();
    project_start_below(&res, &wk.lanczos, tau, &mut wk.t);
    Ok(())
}

/// Tangent descent with retraction and Armijo backtracking, from `y`, for at most `steps` steps.
/// Returns (steps, final ‖P_T ∇_y f‖, final ‖∇_y g‖, final f).
fn tangent_descent<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    cfg: &HgmsConfig,
    steps: usize,
    wk: &mut Work<P::Y>,
) -> Result<(usize, f64, f64, f64), SolverError> {
    let s = &cfg.selection;
    let (mut gnorm, _) = descend(
        p,
        x,
        y,
        s.retraction_steps,
        cfg.lower_lr,
        cfg.lower_tol,
        &mut wk.grad,
    );
    let mut f_cur = p.f(x, y);
    p.grad_f(x, y, &mut wk.gx, &mut wk.b);
    tangent_projection(p, x, y, s, wk)?;
    let mut tn = wk.t.norm();
    let mut eta = s.lr;
    let mut taken = 0;
    while taken < steps && !(tn <= s.tol && gnorm <= cfg.lower_tol.max(s.tol)) {
        if tn <= s.tol {
            // Already optimistic (for instance k = 0: a strongly convex lower level, where
            // P_T ∇_y f = 0): only the lower-level accuracy is left, which is plain descent on g;
            // zero-length tangent steps, each with its retraction, would cost far more.
            let (gn, _) = descend(
                p,
                x,
                y,
                cfg.lower_steps,
                cfg.lower_lr,
                cfg.lower_tol,
                &mut wk.grad,
            );
            gnorm = gn;
            f_cur = p.f(x, y);
            break;
        }
        wk.prev_y.assign(y);
        wk.prev_t.assign(&wk.t);
        let mut accepted = false;
        for _ in 0..40 {
            wk.trial.assign(y);
            wk.trial.axpy(-eta, &wk.t);
            let (gn, _) = descend(
                p,
                x,
                &mut wk.trial,
                s.retraction_steps,
                cfg.lower_lr,
                cfg.lower_tol,
                &mut wk.grad,
            );
            let f_trial = p.f(x, &wk.trial);
            let decrease = f_cur - f_trial;
            // A trial counts only if the retraction reached the manifold (a long step can leave
            // the PL region, where descent on g may diverge and f is meaningless).
            let retracted = f_trial.is_finite()
                && gn.is_finite()
                && gn <= (10.0 * gnorm).max(1e3 * cfg.lower_tol);
            if retracted
                && (decrease >= 1e-4 * eta * tn * tn || decrease >= -1e-14 * f_cur.abs().max(1.0))
            {
                y.assign(&wk.trial);
                f_cur = f_trial;
                gnorm = gn;
                accepted = true;
                break;
            }
            eta *= 0.5;
        }
        taken += 1;
        if !accepted {
            break;
        }
        p.grad_f(x, y, &mut wk.gx, &mut wk.b);
        tangent_projection(p, x, y, s, wk)?;
        tn = wk.t.norm();
        eta = match s.step_rule {
            StepRule::Fixed => (eta * 1.5).min(s.lr),
            StepRule::BarzilaiBorwein => {
                // η = ⟨s, s⟩/⟨s, z⟩ with s = y⁺ − y, z = P_T∇f⁺ − P_T∇f (Barzilai & Borwein
                // 1988), kept within [10⁻³, 10³]·lr; the Armijo test above still guards it.
                wk.prev_y.scale(-1.0);
                wk.prev_y.axpy(1.0, y);
                wk.prev_t.scale(-1.0);
                wk.prev_t.axpy(1.0, &wk.t);
                let ss = wk.prev_y.dot(&wk.prev_y);
                let sz = wk.prev_y.dot(&wk.prev_t);
                if sz > 0.0 && ss > 0.0 {
                    (ss / sz).clamp(1e-3 * s.lr, 1e3 * s.lr)
                } else {
                    s.lr
                }
            }
        };
    }
    Ok((taken, tn, gnorm, f_cur))
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
        let wk = self.work.get_or_insert_with(|| {
            let z = p.zeros_y();
            Work {
                grad: z.clone(),
                b: z.clone(),
                t: z.clone(),
                trial: z.clone(),
                best: z.clone(),
                prev_y: z.clone(),
                prev_t: z.clone(),
                gx: vec![0.0; p.dim_x()],
                hyper: HypergradientSolver::new(p),
                lanczos: LanczosWorkspace::new(&z),
            }
        });
        let x = &state.x;
        let y = &mut state.y;
        // 1. Reach the manifold.
        descend(
            p,
            x,
            y,
            cfg.lower_steps,
            cfg.lower_lr,
            cfg.lower_tol,
            &mut wk.grad,
        );
        // 2. Select.
        let sel = &cfg.selection;
        let (steps, tn, _gn, _f) = match sel.strategy {
            SelectionStrategy::None => (0, f64::NAN, 0.0, 0.0),
            SelectionStrategy::Tangent => tangent_descent(p, x, y, cfg, sel.max_steps, wk)?,
            SelectionStrategy::Penalty => {
                let mut sigma = sel.penalty_sigma0;
                let mut total = 0;
                for _ in 0..sel.penalty_stages {
                    total += penalty_stage(p, x, y, sigma, sel.penalty_steps, sel.tol, wk);
                    sigma *= sel.penalty_decay;
                }
                let (s, tn, gn, f) = tangent_descent(p, x, y, cfg, sel.max_steps, wk)?;
                (total + s, tn, gn, f)
            }
            SelectionStrategy::Multistart => {
                let mut rng = Rng::substream(sel.seed, state.iteration as u64);
                let (mut s_total, _, gn0, f0) =
                    tangent_descent(p, x, y, cfg, sel.refine_steps, wk)?;
                let mut best_f = if gn0 <= 1e3 * cfg.lower_tol.max(sel.tol) {
                    f0
                } else {
                    f64::INFINITY
                };
                wk.best.assign(y);
                let mut cand = y.clone();
                for _ in 0..sel.starts {
                    cand.assign(y);
                    wk.trial.fill_with(&mut || rng.normal());
                    cand.axpy(sel.start_radius, &wk.trial);
                    descend(
                        p,
                        x,
                        &mut cand,
                        cfg.lower_steps,
                        cfg.lower_lr,
                        cfg.lower_tol,
                        &mut wk.grad,
                    );
                    let (s, _, gn, f) =
                        tangent_descent(p, x, &mut cand, cfg, sel.refine_steps, wk)?;
                    s_total += s;
                    if gn <= 1e3 * cfg.lower_tol.max(sel.tol) && f < best_f {
                        best_f = f;
                        wk.best.assign(&cand);
                    }
                }
                y.assign(&wk.best);
                let (s, tn, gn, f) = tangent_descent(p, x, y, cfg, sel.max_steps, wk)?;
                (s_total + s, tn, gn, f)
            }
        };
        // 3. Differentiate at the selected point.
        let mut h = vec![0.0; p.dim_x()];
        let diag = wk
            .hyper
            .compute(p, x, y, &cfg.hypergradient, with_diagnostics, &mut h)?;
        p.grad_g_y(x, y, &mut wk.grad);
        let lower_grad_norm = wk.grad.norm();
        let f = p.f(x, y);
        let selection = (sel.strategy != SelectionStrategy::None).then(|| SelectionReport {
            strategy: format!("{:?}", sel.strategy).to_lowercase(),
            steps,
            tangent_grad_norm: tn,
            converged: tn <= sel.tol && lower_grad_norm <= cfg.lower_tol.max(sel.tol),
        });
        Ok(StepReport {
            f,
            lower_grad_norm,
            hypergradient: h,
            diagnostics: Some(diag),
            selection,
            extra: Vec::new(),
        })
    }

    fn upper_step(&mut self, state: &mut State<P::Y>, h: &[f64]) {
        self.upper.step(&mut state.x, h);
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "upper": self.upper })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)
    }
}

/// Restore an [`UpperOptimizer`] saved under key `upper`, keeping the configured step rule.
pub(crate) fn restore_upper(
    upper: &mut UpperOptimizer,
    saved: &serde_json::Value,
) -> Result<(), SolverError> {
    let u: UpperOptimizer = serde_json::from_value(saved["upper"].clone())
        .map_err(|e| SolverError::Checkpoint(format!("upper optimizer state: {e}")))?;
    if u.m.len() != upper.m.len() {
        return Err(SolverError::Checkpoint(format!(
            "upper optimizer has {} entries, problem has {}",
            u.m.len(),
            upper.m.len()
        )));
    }
    upper.m = u.m;
    upper.s = u.s;
    upper.t = u.t;
    Ok(())
}

/// Armijo gradient descent on `F = f + g/σ` from `y`; returns the steps taken.
fn penalty_stage<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    sigma: f64,
    steps: usize,
    tol: f64,
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
        if gn2.sqrt() <= tol {
            return k;
        }
        let mut accepted = false;
        for _ in 0..40 {
            wk.trial.assign(y);
            wk.trial.axpy(-lr, &wk.t);
            let ft = value(&wk.trial);
            if ft <= fv - 1e-4 * lr * gn2 {
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
