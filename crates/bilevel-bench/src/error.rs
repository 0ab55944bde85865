//! The harness's error: a message and the exit code the CLI reports it with.

/// A benchmark failure: bad suite (exit code 2), failed I/O (1) or warnings under `--strict`
/// (3; everything was written first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchError {
    /// Exit code: 1 run failure, 2 bad configuration, 3 warnings under `--strict`.
    pub code: u8,
    /// The message, already located (`FILE:LINE: context: message`) where it can be.
    pub message: String,
}

impl BenchError {
    /// Bad configuration or usage (exit code 2).
    pub fn config(message: impl Into<String>) -> Self {
        BenchError {
            code: 2,
            message: message.into(),
        }
    }
    /// Run failure: I/O and the like (exit code 1).
    pub fn run(message: impl Into<String>) -> Self {
        BenchError {
            code: 1,
            message: message.into(),
        }
    }
    /// Warnings under `--strict` (exit code 3).
    pub fn strict(message: impl Into<String>) -> Self {
        BenchError {
            code: 3,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BenchError {}
