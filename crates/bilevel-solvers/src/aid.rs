//! AID: approximate implicit differentiation (Pedregosa 2016; Ghadimi & Wang 2018; Ji et al.
//! 2021), docs/ALGORITHMS.md §3.
//!
//! Per outer iteration: `K` warm-started steps `y ← y − β ∇_y g`; `v` from `Q` CG (warm-started
//! by default) or truncated Neumann steps on `H v = ∇_y f`; `x ← x − α (∇_x f − J v)`.
//! No selection: at a non-optimistic point of a solution manifold this is the gradient of the
//! gradient-descent-selection objective, which the kernel-component diagnostic reveals.

use crate::checkpoint::{field, restore_upper};
use crate::lower::descend;
use crate::upper::{UpperConfig, UpperOptimizer};
use crate::validate::validate_hypergrad;
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::hypergrad::{HypergradOptions, HypergradientSolver, LinearSolverKind};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// AID configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AidConfig {
    /// Lower-level steps per outer iteration (K).
    pub lower_steps: usize,
    /// Lower-level step β.
    pub lower_lr: f64,
    /// Early stop of the lower phase at `‖∇_y g‖ ≤ lower_tol` (0: always K steps).
    pub lower_tol: f64,
    /// Linear solve (`cg` or `neumann`; `max_iter` is Q) and diagnostics.
    pub hypergradient: HypergradOptions,
    /// Upper step.
    pub upper: UpperConfig,
}

impl Default for AidConfig {
    fn default() -> Self {
        AidConfig {
            lower_steps: 200,
            lower_lr: 0.1,
            lower_tol: 1e-11,
            hypergradient: HypergradOptions {
                solver: LinearSolverKind::Cg,
                max_iter: 50,
                warm_start: true,
                ..HypergradOptions::default()
            },
            upper: UpperConfig::default(),
        }
    }
}

impl AidConfig {
    /// Check every value; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if !(self.lower_lr > 0.0 && self.lower_lr.is_finite()) {
            return Err(format!(
                "{prefix}.lower_lr: must be a positive number (got {})",
                self.lower_lr
            ));
        }
        if self.lower_tol.is_nan() || self.lower_tol < 0.0 {
            return Err(format!(
                "{prefix}.lower_tol: must be ≥ 0 (got {})",
                self.lower_tol
            ));
        }
        validate_hypergrad(&self.hypergradient, &format!("{prefix}.hypergradient"))?;
        self.upper.validate(&format!("{prefix}.upper"))
    }
}

/// The AID solver.
pub struct Aid<Y: Vector> {
    config: AidConfig,
    upper: UpperOptimizer,
    grad: Option<Y>,
    hyper: Option<HypergradientSolver<Y>>,
    /// A warm start restored from a checkpoint, handed to `hyper` once it exists.
    restored_v: Option<Y>,
}

impl<Y: Vector> Aid<Y> {
    /// A solver for an m-dimensional upper variable.
    pub fn new(config: AidConfig, m: usize) -> Self {
        let upper = UpperOptimizer::new(config.upper.clone(), m);
        Aid {
            config,
            upper,
            grad: None,
            hyper: None,
            restored_v: None,
        }
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for Aid<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "aid"
    }

    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        let cfg = &self.config;
        let grad = self.grad.get_or_insert_with(|| p.zeros_y());
        let hyper = self
            .hyper
            .get_or_insert_with(|| HypergradientSolver::new(p));
        if let Some(v) = self.restored_v.take() {
            if v.dim() != hyper.v().dim() {
                return Err(SolverError::Checkpoint(format!(
                    "aid: `v` has {} entries, dim y is {}",
                    v.dim(),
                    hyper.v().dim()
                )));
            }
            hyper.set_v(&v);
        }
        let (lower_grad_norm, _) = descend(
            p,
            &state.x,
            &mut state.y,
            cfg.lower_steps,
            cfg.lower_lr,
            cfg.lower_tol,
            grad,
        );
        let mut h = vec![0.0; p.dim_x()];
        let diag = hyper.compute(
            p,
            &state.x,
            &state.y,
            &cfg.hypergradient,
            with_diagnostics,
            &mut h,
        )?;
        let f = p.f(&state.x, &state.y);
        Ok(StepReport {
            f,
            lower_grad_norm,
            hypergradient: h,
            diagnostics: Some(diag),
            selection: None,
            extra: Vec::new(),
            ..StepReport::default()
        })
    }

    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        Some(&mut self.upper)
    }

    /// The upper optimiser and the linear solve's warm start `v` (with `warm_start`, the next
    /// solve starts from it, so a resumed run continues exactly).
    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "upper": self.upper, "v": self.hyper.as_ref().map(|h| h.v()) })
    }

    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        restore_upper(&mut self.upper, saved)?;
        // Checkpoints written before the warm start was saved have no `v` (start from 0).
        self.restored_v = field(saved, "aid", "v")?;
        Ok(())
    }
}
