//! Checkpoint helpers shared by the solvers: an upper optimiser's moments `(m, s, t)` are saved
//! under the key `upper` and restored into a solver built from the configuration, so the step
//! rule (η, Adam's β₁, β₂, ε, the box) comes from the configuration and only the state
//! `m ∈ ℝ^{dim x}`, `s ∈ ℝ^{dim x}`, `t ∈ ℕ` from the checkpoint.

use crate::upper::UpperOptimizer;
use crate::SolverError;
use serde::de::DeserializeOwned;

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

/// The field `key` of a checkpoint, deserialised; the error names the solver and the field.
pub(crate) fn field<T: DeserializeOwned>(
    saved: &serde_json::Value,
    solver: &str,
    key: &str,
) -> Result<T, SolverError> {
    serde_json::from_value(saved[key].clone())
        .map_err(|e| SolverError::Checkpoint(format!("{solver}: `{key}`: {e}")))
}
