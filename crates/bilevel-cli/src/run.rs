//! `bilevel run`: one solver on one problem, with trace, summary, plot and checkpoints.

use crate::config::{self, RunConfig, SolverConfig};
use crate::Failure;
use bilevel_bench::plot::{self, Panel, Series};
use bilevel_core::{Bilevel, OracleCounts};
use bilevel_problems::BuiltProblem;
use bilevel_solvers::executor::{self, InitialCounts, Observer, Record, RunOptions, StopReason};
use bilevel_solvers::observers::{Checkpoint, CheckpointWriter, TraceWriter};
use bilevel_solvers::{BilevelSolver, State};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The problems' common trait object.
pub type DynProblem = dyn Bilevel<Y = Vec<f64>> + Send + Sync;

/// Instantiate the configured solver (from the registry in `bilevel_solvers::registry`).
pub fn make_solver(cfg: &SolverConfig, dim_x: usize) -> Box<dyn BilevelSolver<DynProblem>> {
    cfg.build(dim_x)
}

/// A progress bar on stderr, drawn only on a terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `len` iterations labelled `label`.
    pub fn new(len: usize, label: &str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(len as u64)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        Progress { bar }
    }
}

impl<Y> Observer<Y> for Progress {
    fn observe(
        &mut self,
        r: &Record,
        _state: &State<Y>,
        _solver: Option<&serde_json::Value>,
    ) -> std::io::Result<()> {
        self.bar.set_position(r.iteration as u64 + 1);
        self.bar
            .set_message(format!("f {:.3e}  |h| {:.3e}", r.f, r.hypergradient_norm));
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.bar.finish_and_clear();
        Ok(())
    }
}

/// `summary.json`.
#[derive(Serialize)]
pub struct Summary {
    /// Crate version.
    pub version: &'static str,
    /// Problem name.
    pub problem: String,
    /// Solver name.
    pub solver: String,
    /// Derivative source label ("finite-difference (approximate)" marks approximate products).
    pub derivatives: &'static str,
    /// Whether second-order products were exact.
    pub exact_derivatives: bool,
    /// "completed" or "failed".
    pub status: &'static str,
    /// Why the run stopped, when it completed.
    pub stop_reason: Option<StopReason>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Iterations completed.
    pub iterations: usize,
    /// Wall time.
    pub time_s: f64,
    /// Algorithm oracle calls.
    pub oracle_calls: Option<OracleCounts>,
    /// Gradient-equivalent cost.
    pub gradient_equivalents: Option<f64>,
    /// Diagnostic oracle calls.
    pub diagnostic_calls: Option<OracleCounts>,
    /// Final x.
    pub x: Vec<f64>,
    /// The last record.
    pub last: Option<Record>,
    /// Known intrinsic dimension of the problem's manifold, if any.
    pub reference_intrinsic_dimension: Option<usize>,
    /// Failed checks over the run, one entry per code (`code`, last `message`, `count`
    /// iterations, `first_iteration`, `last_iteration`); empty when every check passed.
    pub warnings: Vec<executor::WarningSummary>,
}

/// Outcome of [`execute`].
pub struct Executed {
    /// Summary (also written to `summary.json`).
    pub summary: Summary,
    /// All records of this run.
    pub records: Vec<Record>,
}

/// Keeps every record in memory (for plots and tables).
struct Collect(Vec<Record>);

impl<Y> Observer<Y> for Collect {
    fn observe(
        &mut self,
        r: &Record,
        _s: &State<Y>,
        _v: Option<&serde_json::Value>,
    ) -> std::io::Result<()> {
        self.0.push(r.clone());
        Ok(())
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure::run(format!("{}: {e}", path.display()))
}

/// Read the records of an existing trace with `iteration < before`, with their original lines
/// (kept verbatim when the trace is rewritten on resume).
fn read_trace(path: &Path, before: usize) -> Result<Vec<(Record, String)>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line)
            .map_err(|e| Failure::run(format!("{}:{}: {e}", path.display(), i + 1)))?;
        if r.iteration < before {
            out.push((r, line.to_string()));
        }
    }
    Ok(out)
}

/// FNV-1a (64 bit) offset basis: the hash of no bytes.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64 bit) over `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fingerprint of the built problem's data: its name, dimensions, starts and every exported
/// array (parameters, matrices, data sets), so that a changed data file under the same path is
/// noticed on resume.
pub fn data_fingerprint(built: &BuiltProblem) -> String {
    let p = &built.problem;
    let mut h = fnv1a(FNV_OFFSET, p.name().as_bytes());
    for n in [p.dim_x(), p.dim_y()] {
        h = fnv1a(h, &(n as u64).to_le_bytes());
    }
    for v in built.x0.iter().chain(&built.y0) {
        h = fnv1a(h, &v.to_bits().to_le_bytes());
    }
    for a in p.export_arrays() {
        h = fnv1a(h, a.name.as_bytes());
        for n in &a.shape {
            h = fnv1a(h, &(*n as u64).to_le_bytes());
        }
        for v in &a.data {
            h = fnv1a(h, &v.to_bits().to_le_bytes());
        }
    }
    format!("{h:016x}")
}

/// What identifies a run for `--resume`: the problem and solver sections as parsed (the solver
/// with every default filled in), a hash of both (for readers of the checkpoint; the sections
/// themselves are compared, so a refusal can name the field), and the data fingerprint. Budget
/// and output may change between a run and its resume (to extend it).
pub fn run_identity(cfg: &RunConfig, built: &BuiltProblem) -> serde_json::Value {
    let problem = serde_json::to_value(&cfg.problem).unwrap_or_default();
    let solver = serde_json::to_value(&cfg.solver).unwrap_or_default();
    let canonical =
        serde_json::to_string(&serde_json::json!([&problem, &solver])).unwrap_or_default();
    serde_json::json!({
        "config_hash": format!("{:016x}", fnv1a(FNV_OFFSET, canonical.as_bytes())),
        "data": data_fingerprint(built),
        "problem": problem,
        "solver": solver,
    })
}

/// `prefix.key: a → b` for every leaf where the two JSON trees differ.
fn json_differences(
    prefix: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                json_differences(
                    &format!("{prefix}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => {
            let show = |v: &Value| match v {
                Value::Null => "(unset)".to_string(),
                v => v.to_string(),
            };
            out.push(format!("{prefix}: {} → {}", show(a), show(b)));
        }
        _ => {}
    }
}

/// Refuse to resume a checkpoint written by a different configuration or data (exit 2, naming
/// what differs); a checkpoint without identity (written before identities existed) is accepted.
fn check_identity(
    ck_path: &Path,
    saved: Option<&serde_json::Value>,
    now: Option<&serde_json::Value>,
) -> Result<(), Failure> {
    let (Some(saved), Some(now)) = (saved, now) else {
        return Ok(());
    };
    let mut diffs = Vec::new();
    for section in ["problem", "solver"] {
        json_differences(section, &saved[section], &now[section], &mut diffs);
    }
    if diffs.is_empty() && saved["data"] != now["data"] {
        diffs.push(format!(
            "the problem's data (fingerprint {} → {}): a data file or fetched set changed",
            saved["data"], now["data"]
        ));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Failure::config(format!(
        "{}: written by a different run than this configuration, refusing to resume; differences: {}. \
         Run without --resume to start afresh, or resume with the original configuration",
        ck_path.display(),
        diffs.join("; ")
    )))
}

/// Mark `ck_path` (if this run wrote one) with how the run ended.
fn mark_checkpoint(ck_path: &Path, ended: serde_json::Value) {
    let Ok(text) = std::fs::read_to_string(ck_path) else {
        return;
    };
    if let Ok(mut ck) = serde_json::from_str::<Checkpoint<Vec<f64>>>(&text) {
        ck.ended = Some(ended);
        let _ = bilevel_solvers::observers::write_checkpoint(ck_path, &ck);
    }
}

/// Run `cfg` with outputs in `out`, optionally resuming from `out/checkpoint.json`.
pub fn execute(
    cfg: &RunConfig,
    out: &Path,
    resume: bool,
    label: &str,
) -> Result<Executed, Failure> {
    let built = cfg
        .built_problem()
        .map_err(|e| Failure::config(e.to_string()))?;
    let problem: &DynProblem = built.problem.as_ref();
    cfg.solver
        .check_memory(problem.dim_y())
        .map_err(Failure::config)?;
    let mut solver = make_solver(&cfg.solver, problem.dim_x());
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let trace_path = out.join("trace.jsonl");
    let ck_path = out.join("checkpoint.json");
    let mut state = State {
        x: built.x0.clone(),
        y: built.y0.clone(),
        iteration: 0,
    };
    let mut counts = InitialCounts::default();
    let mut previous = Vec::new();
    // The identity costs a pass over the problem's data: computed only where a checkpoint is
    // read or written (`compare` runs write none).
    let identity = (resume || cfg.output.checkpoint_every > 0).then(|| run_identity(cfg, &built));
    let mut trace = if resume {
        let text = std::fs::read_to_string(&ck_path).map_err(|e| io_err(&ck_path, e))?;
        let ck: Checkpoint<Vec<f64>> =
            serde_json::from_str(&text).map_err(|e| io_err(&ck_path, e))?;
        check_identity(&ck_path, ck.identity.as_ref(), identity.as_ref())?;
        if let Some(end) = &ck.ended {
            eprintln!(
                "note: the run that wrote {} ended {} at iteration {}{}; resuming from its last checkpoint (iteration {})",
                ck_path.display(),
                end["status"].as_str().unwrap_or("?"),
                end["iteration"],
                end["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                ck.state.iteration
            );
        }
        if ck.state.x.len() != state.x.len() || ck.state.y.len() != state.y.len() {
            return Err(Failure::config(format!(
                "{}: checkpoint dimensions (x {}, y {}) do not match the configured problem (x {}, y {})",
                ck_path.display(),
                ck.state.x.len(),
                ck.state.y.len(),
                state.x.len(),
                state.y.len()
            )));
        }
        solver
            .restore(&ck.solver)
            .map_err(|e| io_err(&ck_path, e))?;
        state = ck.state;
        counts = InitialCounts {
            algorithm: ck.oracle_calls,
            diagnostic: ck.diagnostic_calls,
        };
        let kept = read_trace(&trace_path, state.iteration)?;
        // Rewrite the trace without records past the checkpoint, then append.
        let mut text = String::new();
        for (_, line) in &kept {
            text.push_str(line);
            text.push('\n');
        }
        previous = kept.into_iter().map(|(r, _)| r).collect();
        std::fs::write(&trace_path, text).map_err(|e| io_err(&trace_path, e))?;
        TraceWriter::append(&trace_path).map_err(|e| io_err(&trace_path, e))?
    } else {
        // A fresh run replaces the trace; a checkpoint left by an earlier run in this folder
        // would otherwise be resumed later as if it were this run's.
        if ck_path.exists() {
            std::fs::remove_file(&ck_path).map_err(|e| io_err(&ck_path, e))?;
        }
        TraceWriter::create(&trace_path).map_err(|e| io_err(&trace_path, e))?
    };
    let opts = RunOptions {
        budget: cfg.budget.clone(),
        diagnostics_every: cfg.output.diagnostics_every,
        record_x_max: cfg.output.record_x_max,
        evaluate_every: cfg.output.evaluate_every,
    };
    let mut progress = Progress::new(opts.budget.max_iter, label);
    let mut collect = Collect(previous);
    let mut ck = CheckpointWriter::new(ck_path.clone(), cfg.output.checkpoint_every);
    if let Some(identity) = identity {
        ck = ck.with_identity(identity);
    }
    let mut observers: Vec<&mut dyn Observer<Vec<f64>>> =
        vec![&mut trace, &mut progress, &mut collect];
    if cfg.output.checkpoint_every > 0 {
        observers.push(&mut ck);
    }
    let result = executor::run(
        problem,
        solver.as_mut(),
        state.clone(),
        &opts,
        counts,
        &mut observers,
    );
    drop(observers);
    let records = collect.0;
    let derivatives = problem.derivatives();
    let mut summary = Summary {
        version: env!("CARGO_PKG_VERSION"),
        problem: cfg.problem.name().to_string(),
        solver: cfg.solver.name().to_string(),
        derivatives: derivatives.label(),
        exact_derivatives: derivatives.is_exact(),
        status: "completed",
        stop_reason: None,
        error: None,
        iterations: records.last().map_or(0, |r| r.iteration + 1),
        time_s: records.last().map_or(0.0, |r| r.time_s),
        oracle_calls: records.last().map(|r| r.oracle_calls),
        gradient_equivalents: records.last().map(|r| r.gradient_equivalents),
        diagnostic_calls: records.last().map(|r| r.diagnostic_calls),
        x: state.x.clone(),
        last: records.last().cloned(),
        reference_intrinsic_dimension: problem.reference_intrinsic_dimension(),
        warnings: executor::summarize_warnings(&records),
    };
    let failure = match result {
        Ok(outcome) => {
            summary.stop_reason = Some(outcome.stop);
            summary.x = outcome.state.x;
            summary.time_s = outcome.time_s;
            mark_checkpoint(
                &ck_path,
                serde_json::json!({
                    "status": "completed",
                    "iteration": summary.iterations,
                    "stop_reason": outcome.stop,
                }),
            );
            None
        }
        Err(e) => {
            summary.status = "failed";
            summary.error = Some(e.to_string());
            mark_checkpoint(
                &ck_path,
                serde_json::json!({
                    "status": "failed",
                    "iteration": summary.iterations,
                    "error": e.to_string(),
                }),
            );
            Some(Failure::run(format!(
                "{} on {}: {e} (trace: {})",
                summary.solver,
                summary.problem,
                trace_path.display()
            )))
        }
    };
    let summary_path = out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| io_err(&summary_path, e))?;
    std::fs::write(&summary_path, text + "\n").map_err(|e| io_err(&summary_path, e))?;
    if cfg.output.plot && !records.is_empty() {
        let title = format!("{} on {}", summary.solver, summary.problem);
        plot::write_svg(
            &out.join("plot.svg"),
            &title,
            &trace_panels(&[(&summary.solver, &records)]),
            2,
        )
        .map_err(|e| Failure::run(format!("{}: {e}", out.join("plot.svg").display())))?;
    }
    if let Some(f) = failure {
        return Err(f);
    }
    Ok(Executed { summary, records })
}

/// The standard panels of a trace plot for one or several runs.
pub fn trace_panels(runs: &[(&str, &[Record])]) -> Vec<Panel> {
    let series = |get: &dyn Fn(&Record) -> Option<f64>| {
        runs.iter()
            .enumerate()
            .map(|(i, (label, recs))| Series {
                label: label.to_string(),
                group: i,
                points: recs
                    .iter()
                    .filter_map(|r| get(r).map(|v| (r.iteration as f64, v)))
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    let mut panels = vec![
        Panel {
            title: "upper objective f(x, y)".into(),
            x_label: "iteration".into(),
            log_y: true,
            series: series(&|r| Some(r.f)),
        },
        Panel {
            title: "hypergradient norm".into(),
            x_label: "iteration".into(),
            log_y: true,
            series: series(&|r| Some(r.hypergradient_norm)),
        },
        Panel {
            title: "lower-level gap |grad_y g|".into(),
            x_label: "iteration".into(),
            log_y: true,
            series: series(&|r| Some(r.lower_gap)),
        },
        Panel {
            title: "kernel component of grad_y f".into(),
            x_label: "iteration".into(),
            log_y: true,
            series: series(&|r| r.kernel_component),
        },
    ];
    if runs
        .iter()
        .any(|(_, recs)| recs.iter().any(|r| r.grad_phi_error.is_some()))
    {
        panels.push(Panel {
            title: "error |h - grad phi| vs closed form".into(),
            x_label: "iteration".into(),
            log_y: true,
            series: series(&|r| r.grad_phi_error),
        });
        panels.push(Panel {
            title: "closed-form phi(x)".into(),
            x_label: "iteration".into(),
            log_y: true,
            series: series(&|r| r.phi),
        });
    }
    panels
}

/// `bilevel run CONFIG [--out DIR] [--resume]`.
pub fn run_command(
    path: &Path,
    out: Option<PathBuf>,
    resume: bool,
    strict: bool,
) -> Result<(), Failure> {
    let (cfg, text) = config::load(path).map_err(|e| Failure::config(e.0))?;
    let out =
        out.unwrap_or_else(|| PathBuf::from("out").join(path.file_stem().unwrap_or_default()));
    std::fs::create_dir_all(&out).map_err(|e| io_err(&out, e))?;
    let cfg_copy = out.join("config.toml");
    if !resume {
        std::fs::write(&cfg_copy, &text).map_err(|e| io_err(&cfg_copy, e))?;
    }
    let label = format!("{} {}", cfg.solver.name(), cfg.problem.name());
    let ex = execute(&cfg, &out, resume, &label)?;
    let s = &ex.summary;
    println!("{} on {} ({} products)", s.solver, s.problem, s.derivatives);
    println!(
        "  stopped: {:?} after {} iterations, {:.3} s",
        s.stop_reason.unwrap_or(StopReason::MaxIterations),
        s.iterations,
        s.time_s
    );
    if let Some(r) = &s.last {
        println!(
            "  f = {:.6e}  |h| = {:.3e}  lower gap = {:.3e}",
            r.f, r.hypergradient_norm, r.lower_gap
        );
        if let Some(phi) = r.phi {
            println!("  closed-form phi(x) = {phi:.6e}");
        }
        if let Some(e) = r.grad_phi_error {
            println!("  hypergradient error |h - grad phi| vs closed form = {e:.3e}");
        }
        println!(
            "  oracle calls: {} (gradient-equivalents {:.0}); diagnostics {}",
            r.oracle_calls.total(),
            r.gradient_equivalents,
            r.diagnostic_calls.total()
        );
    }
    for w in &s.warnings {
        println!(
            "  warning [{}] at {} iteration(s) ({}–{}): {}",
            w.code, w.count, w.first_iteration, w.last_iteration, w.message
        );
    }
    println!("  outputs in {}", out.display());
    crate::hypergrad::strict_verdict(strict, s.warnings.len(), "the run")
}
