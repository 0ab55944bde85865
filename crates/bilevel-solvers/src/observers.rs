//! Observers that write a run to disk as it goes: the JSON-lines trace (one flushed line per
//! iteration, so an interrupted run leaves a readable file) and periodic checkpoints.

use crate::executor::{Observer, Record};
use crate::State;
use bilevel_core::OracleCounts;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes each [`Record`] as one JSON line and flushes it.
pub struct TraceWriter {
    out: BufWriter<File>,
}

impl TraceWriter {
    /// Create (truncate) `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(TraceWriter {
            out: BufWriter::new(File::create(path)?),
        })
    }
    /// Append to `path` (used when resuming).
    pub fn append(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(TraceWriter {
            out: BufWriter::new(f),
        })
    }
}

impl<Y> Observer<Y> for TraceWriter {
    fn observe(
        &mut self,
        record: &Record,
        _state: &State<Y>,
        _solver_state: Option<&serde_json::Value>,
    ) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Everything needed to resume a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint<Y> {
    /// The state after the last completed iteration (`iteration` = next to run).
    pub state: State<Y>,
    /// Algorithm oracle calls so far.
    pub oracle_calls: OracleCounts,
    /// Diagnostic oracle calls so far.
    pub diagnostic_calls: OracleCounts,
    /// Solver-internal state ([`crate::BilevelSolver::checkpoint`]).
    pub solver: serde_json::Value,
    /// What identifies the run (configuration hash, data fingerprint; set by the caller), so
    /// that a resume with a different configuration or data is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
    /// How the run that wrote this checkpoint ended (`status`, `iteration`, `error`); absent
    /// while it is running or when it was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<serde_json::Value>,
}

/// Write `ck` to `path` atomically (a temporary file, then rename).
pub fn write_checkpoint<Y: Serialize>(path: &Path, ck: &Checkpoint<Y>) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = BufWriter::new(File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut f, ck)?;
        f.flush()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes `checkpoint.json` every `every` iterations, atomically (temporary file, then rename).
pub struct CheckpointWriter {
    path: PathBuf,
    every: usize,
    identity: Option<serde_json::Value>,
}

impl CheckpointWriter {
    /// Checkpoint to `path` every `every ≥ 1` iterations.
    pub fn new(path: PathBuf, every: usize) -> Self {
        CheckpointWriter {
            path,
            every: every.max(1),
            identity: None,
        }
    }
    /// Record `identity` in every checkpoint (see [`Checkpoint::identity`]).
    pub fn with_identity(mut self, identity: serde_json::Value) -> Self {
        self.identity = Some(identity);
        self
    }
}

impl<Y: Serialize + Clone> Observer<Y> for CheckpointWriter {
    fn wants_solver_state(&self, iteration: usize) -> bool {
        (iteration + 1).is_multiple_of(self.every)
    }
    fn observe(
        &mut self,
        record: &Record,
        state: &State<Y>,
        solver_state: Option<&serde_json::Value>,
    ) -> std::io::Result<()> {
        let Some(solver) = solver_state else {
            return Ok(());
        };
        let ck = Checkpoint {
            state: state.clone(),
            oracle_calls: record.oracle_calls,
            diagnostic_calls: record.diagnostic_calls,
            solver: solver.clone(),
            identity: self.identity.clone(),
            ended: None,
        };
        write_checkpoint(&self.path, &ck)
    }
}
