//! Configuration and construction errors, with messages that name the offending field.

/// An invalid problem parameter. Every message starts with `problem.FIELD:` so that a user can
/// find the key in their configuration file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProblemError {
    /// A vector parameter with the wrong number of entries.
    #[error("problem.{field}: expected {expected} entries, got {got}")]
    WrongLength {
        /// Configuration key.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A parameter outside its domain (`problem.FIELD: explanation (got VALUE)`).
    #[error("problem.{field}: {reason} (got {value})")]
    Invalid {
        /// Configuration key.
        field: &'static str,
        /// What is required.
        reason: String,
        /// The offending value, as written.
        value: String,
    },
}

impl ProblemError {
    /// A [`ProblemError::Invalid`] from displayable pieces.
    pub fn invalid(
        field: &'static str,
        reason: impl Into<String>,
        value: impl std::fmt::Debug,
    ) -> Self {
        ProblemError::Invalid {
            field,
            reason: reason.into(),
            value: format!("{value:?}"),
        }
    }
}

/// `Ok` when `v` is finite.
pub(crate) fn check_finite(field: &'static str, v: f64) -> Result<(), ProblemError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ProblemError::invalid(field, "must be a finite number", v))
    }
}

/// `Ok` when `v` has `expected` entries, all finite.
pub(crate) fn check_vector(
    field: &'static str,
    v: &[f64],
    expected: usize,
) -> Result<(), ProblemError> {
    if v.len() != expected {
        return Err(ProblemError::WrongLength {
            field,
            expected,
            got: v.len(),
        });
    }
    if let Some((i, bad)) = v.iter().enumerate().find(|(_, e)| !e.is_finite()) {
        return Err(ProblemError::invalid(
            field,
            format!("entry {i} must be a finite number"),
            bad,
        ));
    }
    Ok(())
}

/// `Ok` when `v` is finite and strictly positive.
pub(crate) fn check_positive(field: &'static str, v: f64) -> Result<(), ProblemError> {
    check_finite(field, v)?;
    if v > 0.0 {
        Ok(())
    } else {
        Err(ProblemError::invalid(field, "must be positive", v))
    }
}

/// `Ok` when `v` is in `range`, else `problem.FIELD: must be {what} LO..=HI (got V)` (`what`:
/// `"in"`, or `"an integer in"`).
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display + std::fmt::Debug>(
    field: &'static str,
    v: T,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<(), ProblemError> {
    if range.contains(&v) {
        Ok(())
    } else {
        let (lo, hi) = range.into_inner();
        Err(ProblemError::invalid(
            field,
            format!("must be {what} {lo}..={hi}"),
            v,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_field_and_value() {
        let e = check_vector("b", &[1.0, 2.0, 3.0], 2).unwrap_err();
        assert_eq!(e.to_string(), "problem.b: expected 2 entries, got 3");
        let e = check_positive("radius", -1.5).unwrap_err();
        assert_eq!(e.to_string(), "problem.radius: must be positive (got -1.5)");
        let e = check_vector("x0", &[1.0, f64::NAN], 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "problem.x0: entry 1 must be a finite number (got NaN)"
        );
        assert!(check_finite("fd_eps", f64::INFINITY).is_err());
        let e = check_range("p", 0u32, 1..=64, "an integer in").unwrap_err();
        assert_eq!(
            e.to_string(),
            "problem.p: must be an integer in 1..=64 (got 0)"
        );
        assert!(check_range("d", 3usize, 1..=3, "in").is_ok());
    }
}
