//! GD-AID: plain gradient descent on `x`, `x ← x − η ĥ`, with AID's hypergradient estimate `ĥ`
//! (warm-started lower steps, then a CG solve of `H v = ∇_y f` and `ĥ = ∇_x f − J v`; see
//! [`crate::aid`]). It exists to show what adding a solver takes: this file and one registry
//! row; `tests/new_solver/check.sh` adds both to a checkout and checks that the CLI, `bilevel
//! list`, config errors and the catalogue test pick the solver up.

use crate::aid::{Aid, AidConfig};
use crate::upper::UpperOptimizer;
use crate::validate::positive;
use crate::{BilevelSolver, SolverError, State, StepReport};
use bilevel_core::{Bilevel, Counted, Vector};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// GD-AID configuration: the step η and AID's parameters (its `upper` table is not used).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GdAidConfig {
    /// Step η on `x` (default 0.1).
    pub lr: f64,
    /// The hypergradient estimate's parameters (`[solver.aid]`).
    pub aid: AidConfig,
}

impl Default for GdAidConfig {
    fn default() -> Self {
        GdAidConfig {
            lr: 0.1,
            aid: AidConfig::default(),
        }
    }
}

impl GdAidConfig {
    /// Check values; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        positive(prefix, "lr", self.lr)?;
        self.aid.validate(&format!("{prefix}.aid"))
    }
}

/// GD-AID (see the module documentation).
pub struct GdAid<Y: Vector> {
    lr: f64,
    aid: Aid<Y>,
}

impl<Y: Vector> GdAid<Y> {
    /// A solver for an `m`-dimensional upper variable.
    pub fn new(config: GdAidConfig, m: usize) -> Self {
        GdAid {
            lr: config.lr,
            aid: Aid::new(config.aid, m),
        }
    }
}

impl<P: Bilevel + ?Sized> BilevelSolver<P> for GdAid<P::Y>
where
    P::Y: Serialize + DeserializeOwned,
{
    fn name(&self) -> &'static str {
        "gd-aid"
    }
    fn hypergradient(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        with_diagnostics: bool,
    ) -> Result<StepReport, SolverError> {
        self.aid.hypergradient(p, state, with_diagnostics)
    }
    /// `x` moves by the plain step of [`BilevelSolver::upper_step`] below.
    fn upper_optimizer(&mut self) -> Option<&mut UpperOptimizer> {
        None
    }
    fn upper_step(&mut self, state: &mut State<P::Y>, h: &[f64]) {
        bilevel_core::vector::axpy(&mut state.x, -self.lr, h);
    }
    fn checkpoint(&self) -> serde_json::Value {
        BilevelSolver::<P>::checkpoint(&self.aid)
    }
    fn restore(&mut self, saved: &serde_json::Value) -> Result<(), SolverError> {
        BilevelSolver::<P>::restore(&mut self.aid, saved)
    }
}
