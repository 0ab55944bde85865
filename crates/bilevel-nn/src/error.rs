//! Errors of the neural-model layer.

/// Errors from models, derivatives and optimisers.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// An error inside candle (shape, dtype, device).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A parameter received no gradient from a backward pass.
    #[error("parameter `{param}` received no gradient from {pass}{hint}")]
    MissingGradient {
        /// The parameter's name.
        param: String,
        /// Which pass (`"backward"`, `"double backward"`).
        pass: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// Exact HVPs were requested without `CANDLE_GRAD_DO_NOT_DETACH=1`.
    #[error("exact Hessian-vector products need CANDLE_GRAD_DO_NOT_DETACH=1 set before the first backward (call bilevel_nn::enable_double_backward() at program start), or select the finite-difference fallback")]
    DoubleBackwardDisabled,
    /// An invalid model or optimiser setting.
    #[error("invalid setting `{field}` = {value}: {reason}")]
    Config {
        /// The setting's name.
        field: String,
        /// Its value, as text.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file that does not hold what it should.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`NnError`].
pub type Result<T> = std::result::Result<T, NnError>;

pub(crate) fn config_err(field: &str, value: impl ToString, reason: &str) -> NnError {
    NnError::Config {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}
