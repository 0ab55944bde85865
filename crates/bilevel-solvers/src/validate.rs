//! Configuration checks shared by the solvers. Each returns `Err` with a message naming the field
//! (`{prefix}.{name}`) and the value it got: steps and tolerances must be positive finite
//! numbers (`v ∈ (0, ∞)`), exponents and penalties finite and `≥ 0`, counts `≥ 1` and at most a
//! cap ([`MAX_COUNT`], [`MAX_KRYLOV_DIM`]) so that a typo is a configuration error rather than an
//! allocation failure or a run that never ends.

use bilevel_core::hypergrad::HypergradOptions;

/// Largest accepted iteration-count knob (steps, Krylov and Lanczos limits, starts): beyond it a
/// configuration error, not an allocation failure or a run that never ends.
pub const MAX_COUNT: usize = 10_000_000;
/// Largest accepted Krylov/Lanczos dimension limit (their bases hold that many vectors of dim y).
pub const MAX_KRYLOV_DIM: usize = 100_000;

/// `v ≤ cap`, else an error naming the field and the cap.
pub fn check_count(prefix: &str, name: &str, v: usize, cap: usize) -> Result<(), String> {
    if v > cap {
        return Err(format!("{prefix}.{name}: must be at most {cap} (got {v})"));
    }
    Ok(())
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
    check_count(prefix, "max_iter", h.max_iter, MAX_COUNT)?;
    check_count(
        prefix,
        "diagnostics.lanczos_max_iter",
        h.diagnostics.lanczos_max_iter,
        MAX_KRYLOV_DIM,
    )?;
    check_count(
        prefix,
        "diagnostics.sketch_max_columns",
        h.diagnostics.sketch_max_columns,
        MAX_KRYLOV_DIM,
    )?;
    Ok(())
}

/// `Err` naming `{prefix}.{name}` unless `v` is a positive finite number.
pub(crate) fn positive(prefix: &str, name: &str, v: f64) -> Result<(), String> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{prefix}.{name}: must be a positive number (got {v})"
        ))
    }
}

/// `Err` naming `{prefix}.{name}` unless `v` is a finite number ≥ 0.
pub(crate) fn nonnegative(prefix: &str, name: &str, v: f64) -> Result<(), String> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(format!("{prefix}.{name}: must be ≥ 0 (got {v})"))
    }
}

/// `Err` naming `prefix.field` unless `v` is at least 1.
pub(crate) fn at_least_one(prefix: &str, field: &str, v: usize) -> Result<(), String> {
    if v >= 1 {
        Ok(())
    } else {
        Err(format!("{prefix}.{field}: must be at least 1 (got {v})"))
    }
}

/// `Err` naming `prefix.field` unless the optional step is absent or positive and finite.
pub(crate) fn optional_positive(prefix: &str, field: &str, v: Option<f64>) -> Result<(), String> {
    v.map_or(Ok(()), |v| positive(prefix, field, v))
}

/// `Err` naming `prefix.field` unless the optional count is absent or at least 1.
pub(crate) fn optional_at_least_one(
    prefix: &str,
    field: &str,
    v: Option<usize>,
) -> Result<(), String> {
    v.map_or(Ok(()), |v| at_least_one(prefix, field, v))
}

/// `Err` naming `prefix.field` unless `v ∈ (0, 1]` (a momentum or averaging weight).
pub(crate) fn fraction(prefix: &str, field: &str, v: f64) -> Result<(), String> {
    positive(prefix, field, v)?;
    if v > 1.0 {
        return Err(format!("{prefix}.{field}: must be in (0, 1] (got {v})"));
    }
    Ok(())
}
