//! Errors of the reweighting pipeline.

/// Errors from data preparation, methods, training and I/O.
#[derive(Debug, thiserror::Error)]
pub enum MixtureError {
    /// From the model layer.
    #[error(transparent)]
    Nn(#[from] bilevel_nn::NnError),
    /// From candle directly.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// An invalid setting; names the field.
    #[error("invalid setting `{field}` = {value}: {reason}")]
    Config {
        /// The setting.
        field: String,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A data problem; names the source.
    #[error("source `{source_name}`: {reason}")]
    Data {
        /// The source.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A NaN or infinity; names the method, step and quantity.
    #[error("{method}: non-finite {quantity} at step {step} (try a smaller learning rate)")]
    NonFinite {
        /// The method.
        method: String,
        /// The step.
        step: u64,
        /// The quantity.
        quantity: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A checkpoint that does not match this run.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The run stopped on request (an interruption) after saving its checkpoint.
    #[error("interrupted after saving the checkpoint; rerun the same command to resume")]
    Interrupted,
}

/// `Result` with [`MixtureError`].
pub type Result<T> = std::result::Result<T, MixtureError>;

pub(crate) fn config_err(field: &str, value: impl ToString, reason: &str) -> MixtureError {
    MixtureError::Config {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> MixtureError {
    MixtureError::Io {
        path: path.display().to_string(),
        source,
    }
}
