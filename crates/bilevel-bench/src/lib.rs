//! Benchmark harness for bilevel solvers, as used by `bilevel bench`: suites (parsing and grid
//! expansion, [`suite`]), runs (problems × solver configurations × seeds under one budget,
//! [`bench_command`]), records (JSON Lines and CSV), summaries and Markdown tables
//! ([`summary`], with the quantile statistics of [`stats`]), PNG/SVG figures ([`figure`], PNG
//! files encoded by the `png` crate) and the SVG trace plots of the other commands ([`plot`]).
//! Errors are [`BenchError`]s carrying the CLI's exit code; [`config`] holds the TOML location
//! helpers that the CLI's configuration loading shares.
//!
//! # `bilevel bench SUITE.toml [--out DIR]`
//!
//! Problems × solver configurations (a per-solver grid of
//! hyperparameters) × seeds, every run under the same budget; time and oracle cost to reach
//! `φ − φ* < ε`, summarised over seeds by medians and 20 %/80 % quantiles, with plots.
//!
//! # Suite file
//!
//! ```toml
//! name = "quadratic-small"               # default: the file's stem; outputs go to out/<name>
//! seeds = [0, 1, 2]                      # default [0]
//! tolerances = [1e-2, 1e-3, 1e-4]        # ε of φ − φ* < ε; default 1e-2 … 1e-6
//!
//! [budget]                               # as in run configs: one budget for every run
//! max_iter = 100000
//! max_gradient_equivalents = 20000       # or max_oracle_calls, max_time_s, hypergradient_tol
//!
//! [output]
//! evaluate_every = 1                     # φ and metrics every k iterations and at the last
//! diagnostics_every = 0                  # solver diagnostics (their time counts); default off
//!
//! [[problems]]                           # a [problem] table of a run config …
//! name = "quadratic"
//! n_inner = 256
//! dim_x = 20
//! label = "quadratic-256"                # … plus an optional display/file name (default `name`)
//!
//! [[solvers]]                            # a [solver] table of a run config …
//! name = "aid"
//! label = "AID"                          # optional display name (default `name`)
//! lower_steps = 10
//! [solvers.upper]
//! lr = 0.5
//! [solvers.grid]                         # optional: one configuration per point of the
//! "upper.lr" = [0.1, 0.3, 1.0]           # cross product; dotted keys reach sub-tables
//! lower_steps = [5, 10]
//!
//! [[solvers]]
//! name = "hg-ms"
//!
//! [reference]                            # optional: φ* where the problem has no closed form
//! solver = { name = "implicit", upper = { lr = 0.5 } }
//! max_iter = 500                         # default 500
//! evaluate_every = 1                     # default [output] evaluate_every
//! ```
//!
//! Every table rejects unknown keys; errors read `FILE:LINE: context: message` (exit status 2),
//! and every solver configuration of the grid is validated before anything runs. A grid may not
//! vary `name`, `label` or `seed`; a grid value replaces the same key set in the entry.
//!
//! **Seeds.** For each seed `s`, `seed = s` is written into the problem table and into the
//! solver table wherever that problem's or solver's configuration has a `seed` key (the
//! quadratic and affine instances, HG-MS's and PZOBO's sampling), replacing a value written
//! there; elsewhere the table is unchanged, so a deterministic solver on a seed-free problem
//! repeats the same run (only its timing varies). Relative paths under a problem's `data` table
//! are resolved against the suite file's directory.
//!
//! **φ\*.** Per problem instance (the problem table after the seed is written): the problem's
//! closed form `reference_phi_star()` where it has one; else, with a `[reference]` table, the
//! smallest φ over the reference run's evaluated records and over every benchmark run on that
//! instance; else the smallest φ observed over the benchmark runs on that instance (so the best
//! run reaches `φ − φ* = 0`). The summary says which. Records are written as runs finish with
//! the φ* known then (closed form or reference run, else none) and rewritten once at the end
//! with the final φ*.
//!
//! **Order and failures.** Problems, then seeds (one instance is built per problem and seed, and
//! its reference run, if any, comes first), then configurations. A run that diverges (NaN/Inf),
//! errs or panics is recorded as failed with its message, and the suite goes on; its records up
//! to the failure are kept. The exit status is 0 when the suite ran, whatever runs failed.
//!
//! # Outputs in DIR (default `out/<name>`)
//!
//! * `records.jsonl`: one JSON object per evaluated record (every `evaluate_every`-th iteration
//!   and the last of each run), appended and flushed after each run:
//!   `{suite, problem, dataset, solver, label, params, seed, iteration, time_s, oracle_calls:
//!   {f_value, g_value, grad_f, grad_g, hvp, cross}, gradient_equivalents, f, phi, phi_star,
//!   phi_gap, grad_phi_norm, hypergradient_norm, lower_gap, <metric>…, extra: {…}}` where
//!   `problem` is the problem's label, `dataset` the `data` key's name (or the file name of
//!   `data.path`; `null` without a `data` key), `solver` the solver id and `label` its entry's
//!   label, `params` the grid point (`{}` without a grid), `time_s` solver time (record building
//!   and output excluded), `phi_gap = phi − phi_star` (`null` where either is unknown), each of
//!   the problem's metrics ([`bilevel_core::Bilevel::metrics`]: `test_accuracy`, …) a top-level
//!   key (prefixed `metric.` if it would clash with a field above), and `extra` the solver's
//!   scalars (BOME's λ, …). Non-finite numbers are `null`.
//! * `records.csv`: the same rows flattened, header first: `suite, problem, dataset, solver,
//!   label, params.<key>…, seed, iteration, time_s, oracle_calls.<kind>…, gradient_equivalents,
//!   f, phi, phi_star, phi_gap, grad_phi_norm, hypergradient_norm, lower_gap, <metric>…,
//!   extra.<key>…`; an empty cell where a value is missing.
//! * `summary.md` / `summary.json`: per problem, the φ* used and one row per solver
//!   configuration: runs completed/failed, for each ε the time (s) and the gradient-equivalents
//!   to reach `φ − φ* < ε` as median [20 %, 80 %] over seeds, the final `φ − φ*` and the final
//!   `test_accuracy` when the problem reports it (summary.json: every metric), and ★ on the best
//!   grid point of each solver. See [`summary`] for the quantile rule and the ranking.
//! * `<problem>.svg` and `<problem>.png`: `φ − φ*` (log scale) against time and against
//!   gradient-equivalents: for each solver its best grid point's median over seeds with the
//!   20–80 % band.
//! * `suite.toml`: a copy of the suite file.
//!
//! Progress: a bar of runs done on a terminal, and one line per finished run on stderr.

#![deny(missing_docs)]

pub mod config;
mod error;
pub mod figure;
mod output;
pub mod plot;
pub mod stats;
pub mod suite;
pub mod summary;

use bilevel_problems::BuiltProblem;
use bilevel_solvers::executor::{
    self, InitialCounts, Observer, Record, RunOptions, StopReason, WarningSummary,
};
use bilevel_solvers::State;
pub use error::BenchError;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use suite::Suite;

/// The problems the harness runs: the problem registry's trait objects.
pub type DynProblem = dyn bilevel_core::Bilevel<Y = Vec<f64>> + Send + Sync;

/// How a run ended.
#[derive(Clone, Debug)]
pub enum RunStatus {
    /// Within its budget, for this reason.
    Completed(StopReason),
    /// Diverged, erred or panicked, with the message.
    Failed(String),
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunData {
    /// Index into the suite's problems.
    pub problem: usize,
    /// Index into the suite's solvers.
    pub entry: usize,
    /// Index into that entry's configurations.
    pub config: usize,
    /// Seed.
    pub seed: u64,
    /// Index of the problem instance.
    pub instance: usize,
    /// Outcome.
    pub status: RunStatus,
    /// Iterations completed.
    pub iterations: usize,
    /// Solver time, seconds.
    pub time_s: f64,
    /// The evaluated records.
    pub records: Vec<Record>,
    /// The warnings of every iteration (evaluated or not), by code.
    pub warnings: Vec<WarningSummary>,
}

impl RunData {
    /// Whether the run completed.
    pub fn completed(&self) -> bool {
        matches!(self.status, RunStatus::Completed(_))
    }
}

/// Where φ* of an instance comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhiStarSource {
    /// The problem's `reference_phi_star()`.
    ClosedForm,
    /// The reference run's smallest φ (and the benchmark runs', where smaller).
    ReferenceRun,
    /// The smallest φ over the benchmark runs.
    MinOverRuns,
    /// No φ is known: no `φ − φ*`.
    Unavailable,
}

/// The reference run of an instance.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReferenceOutcome {
    /// Solver id.
    pub solver: String,
    /// Iterations run.
    pub iterations: usize,
    /// Smallest φ over its evaluated records.
    pub min_phi: Option<f64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Its solver time, seconds.
    pub time_s: f64,
}

/// One problem instance (a problem with one seed written in; seeds that leave the table
/// unchanged share an instance).
#[derive(Clone, Debug)]
pub struct Instance {
    /// Index into the suite's problems.
    pub problem: usize,
    /// The configuration as JSON (identifies the instance).
    pub key: String,
    /// Seeds run on it.
    pub seeds: Vec<u64>,
    /// `reference_phi_star()`.
    pub closed_form: Option<f64>,
    /// The reference run, when there was one.
    pub reference: Option<ReferenceOutcome>,
    /// φ* now in use (provisional until the end, then final).
    pub phi_star: Option<f64>,
    /// Its source.
    pub source: PhiStarSource,
    /// Whether a benchmark run went below the reference run's φ (then φ* is theirs).
    pub runs_below_reference: bool,
}

/// The state of a benchmark.
pub struct Bench {
    /// The suite.
    pub suite: Suite,
    /// Finished runs, in order.
    pub runs: Vec<RunData>,
    /// Problem instances.
    pub instances: Vec<Instance>,
}

impl Bench {
    /// φ* of a run's instance.
    pub fn phi_star(&self, run: &RunData) -> Option<f64> {
        self.instances.get(run.instance).and_then(|i| i.phi_star)
    }

    /// `φ − φ*` along a run's records (NaN where unknown).
    pub fn gaps(&self, run: &RunData) -> Vec<f64> {
        let star = self.phi_star(run);
        run.records
            .iter()
            .map(|r| r.phi.zip(star).map_or(f64::NAN, |(a, b)| a - b))
            .collect()
    }

    /// Final φ*: the closed form; else the smallest of the reference run's φ and every
    /// benchmark run's φ on the instance.
    pub fn finalize_phi_star(&mut self) {
        for (k, inst) in self.instances.iter_mut().enumerate() {
            if inst.closed_form.is_some() {
                inst.phi_star = inst.closed_form;
                inst.source = PhiStarSource::ClosedForm;
                continue;
            }
            let runs_min = self
                .runs
                .iter()
                .filter(|r| r.instance == k)
                .flat_map(|r| r.records.iter().filter_map(|rec| rec.phi))
                .filter(|v| v.is_finite())
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
            let reference = inst.reference.as_ref().and_then(|r| r.min_phi);
            (inst.phi_star, inst.source) = match (reference, runs_min) {
                (Some(r), Some(m)) => {
                    inst.runs_below_reference = m < r;
                    (Some(r.min(m)), PhiStarSource::ReferenceRun)
                }
                (Some(r), None) => (Some(r), PhiStarSource::ReferenceRun),
                (None, Some(m)) => (Some(m), PhiStarSource::MinOverRuns),
                (None, None) => (None, PhiStarSource::Unavailable),
            };
        }
    }
}

/// Keeps the evaluated records of a run: every `k`-th iteration, and the last one of a run that
/// completes (the executor evaluates it too); see [`RunOptions::evaluate_every`].
struct KeepEvaluated {
    every: usize,
    records: Vec<Record>,
    pending: Option<Record>,
    iterations: usize,
    warnings: Vec<WarningSummary>,
}

impl KeepEvaluated {
    fn new(every: usize) -> Self {
        KeepEvaluated {
            every,
            records: Vec::new(),
            pending: None,
            iterations: 0,
            warnings: Vec::new(),
        }
    }
    /// The evaluated records (the pending last record counts only when the run completed) and
    /// the warnings of every iteration.
    fn into_records(mut self, completed: bool) -> (Vec<Record>, Vec<WarningSummary>) {
        if let Some(r) = self.pending.take().filter(|_| completed) {
            self.records.push(r);
        }
        (self.records, self.warnings)
    }
}

impl<Y> Observer<Y> for KeepEvaluated {
    fn observe(
        &mut self,
        r: &Record,
        _state: &State<Y>,
        _solver: Option<&serde_json::Value>,
    ) -> std::io::Result<()> {
        self.iterations = r.iteration + 1;
        executor::accumulate_warnings(&mut self.warnings, r);
        if self.every <= 1 || r.iteration.is_multiple_of(self.every) {
            self.records.push(r.clone());
            self.pending = None;
        } else {
            self.pending = Some(r.clone());
        }
        Ok(())
    }
}

/// Run one configuration from the instance's start; never fails (failures are a status).
#[allow(clippy::type_complexity)]
fn run_one(
    built: &BuiltProblem,
    solver: &bilevel_solvers::registry::SolverConfig,
    opts: &RunOptions,
) -> (RunStatus, usize, f64, Vec<Record>, Vec<WarningSummary>) {
    let problem: &DynProblem = built.problem.as_ref();
    if let Err(m) = solver.check_memory(problem.dim_y()) {
        return (RunStatus::Failed(m), 0, 0.0, Vec::new(), Vec::new());
    }
    let mut keep = KeepEvaluated::new(opts.evaluate_every);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = solver.build(problem.dim_x());
        let state = State {
            x: built.x0.clone(),
            y: built.y0.clone(),
            iteration: 0,
        };
        executor::run(
            problem,
            s.as_mut(),
            state,
            opts,
            InitialCounts::default(),
            &mut [&mut keep],
        )
    }));
    let (status, time) = match outcome {
        Ok(Ok(o)) => (RunStatus::Completed(o.stop), o.time_s),
        Ok(Err(e)) => (RunStatus::Failed(e.to_string()), f64::NAN),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            (RunStatus::Failed(format!("panicked: {msg}")), f64::NAN)
        }
    };
    let completed = matches!(status, RunStatus::Completed(_));
    let iterations = keep.iterations;
    let (records, warnings) = keep.into_records(completed);
    let time = if time.is_nan() {
        records.last().map_or(0.0, |r| r.time_s)
    } else {
        time
    };
    (status, iterations, time, records, warnings)
}

/// Runs done / total on a terminal; a line per finished run on stderr.
struct BenchProgress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
}

impl BenchProgress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "bench [{bar:30}] {pos}/{len} runs {elapsed_precise} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        BenchProgress {
            bar,
            total,
            done: 0,
        }
    }
    fn start(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
    }
    fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }
    fn finished(&mut self, line: &str) {
        self.done += 1;
        self.note(&format!("[{}/{}] {line}", self.done, self.total));
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn io_failure(path: &Path, e: impl std::fmt::Display) -> BenchError {
    BenchError::run(format!("{}: {e}", path.display()))
}

/// A file-name stem from a label: letters, digits, `-`, `_` and `.` kept, the rest `_`.
pub fn file_stem(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn short(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.3e}"))
}

/// Run every problem × seed × configuration, appending records as runs finish.
fn run_all(
    bench: &mut Bench,
    files: &mut output::RecordFiles,
    progress: &mut BenchProgress,
    origin: &str,
) -> Result<(), BenchError> {
    let suite = bench.suite.clone();
    let opts = RunOptions {
        budget: suite.budget.clone(),
        diagnostics_every: suite.output.diagnostics_every,
        record_x_max: 0,
        evaluate_every: suite.output.evaluate_every.max(1),
    };
    for (pi, p) in suite.problems.iter().enumerate() {
        let mut built: Option<(String, BuiltProblem)> = None;
        for &seed in &suite.seeds {
            let context = format!("{origin}: problems[{pi}] ({}), seed {seed}", p.label);
            let cfg = p
                .config(seed)
                .map_err(|m| BenchError::config(format!("{context}: {m}")))?;
            let key = serde_json::to_string(&cfg).unwrap_or_default();
            let b = match built.take() {
                Some((k, b)) if k == key => b,
                _ => cfg
                    .build()
                    .map_err(|e| BenchError::config(format!("{context}: {e}")))?,
            };
            let inst = match bench
                .instances
                .iter()
                .position(|i| i.problem == pi && i.key == key)
            {
                Some(k) => {
                    bench.instances[k].seeds.push(seed);
                    k
                }
                None => {
                    let closed_form = b.problem.reference_phi_star();
                    let reference = match (&suite.reference, closed_form) {
                        (Some(r), None) => {
                            let cfg = r.solver(seed).map_err(|m| {
                                BenchError::config(format!("{origin}: reference: {m}"))
                            })?;
                            progress.start(&format!("{} seed {seed}: reference run", p.label));
                            let ropts = RunOptions {
                                budget: bilevel_solvers::executor::Budget {
                                    max_iter: r.max_iter,
                                    ..Default::default()
                                },
                                evaluate_every: r.evaluate_every.max(1),
                                ..opts.clone()
                            };
                            let (status, iterations, time_s, recs, _) = run_one(&b, &cfg, &ropts);
                            let min_phi = recs
                                .iter()
                                .filter_map(|r| r.phi)
                                .filter(|v| v.is_finite())
                                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
                            let error = match status {
                                RunStatus::Failed(e) => Some(e),
                                RunStatus::Completed(_) => None,
                            };
                            progress.note(&format!(
                                "{} seed {seed}: reference run ({}, {iterations} iterations, {time_s:.3} s): min φ = {}{}",
                                p.label,
                                r.name,
                                short(min_phi),
                                error.as_ref().map_or(String::new(), |e| format!(", FAILED: {e}"))
                            ));
                            Some(ReferenceOutcome {
                                solver: r.name.clone(),
                                iterations,
                                min_phi,
                                error,
                                time_s,
                            })
                        }
                        _ => None,
                    };
                    let phi_star = closed_form.or(reference.as_ref().and_then(|r| r.min_phi));
                    bench.instances.push(Instance {
                        problem: pi,
                        key: key.clone(),
                        seeds: vec![seed],
                        closed_form,
                        phi_star,
                        source: if closed_form.is_some() {
                            PhiStarSource::ClosedForm
                        } else if phi_star.is_some() {
                            PhiStarSource::ReferenceRun
                        } else {
                            PhiStarSource::Unavailable
                        },
                        reference,
                        runs_below_reference: false,
                    });
                    bench.instances.len() - 1
                }
            };
            for (ei, e) in suite.solvers.iter().enumerate() {
                for (ci, c) in e.configs.iter().enumerate() {
                    let solver = c
                        .solver(seed)
                        .map_err(|m| BenchError::config(format!("{origin}: {}: {m}", c.label)))?;
                    let what = format!("{} | {} | seed {seed}", p.label, c.label);
                    progress.start(&what);
                    let (status, iterations, time_s, records, warnings) =
                        run_one(&b, &solver, &opts);
                    bench.runs.push(RunData {
                        problem: pi,
                        entry: ei,
                        config: ci,
                        seed,
                        instance: inst,
                        status,
                        iterations,
                        time_s,
                        records,
                        warnings,
                    });
                    let k = bench.runs.len() - 1;
                    files.append(bench, k).map_err(BenchError::run)?;
                    let run = &bench.runs[k];
                    let last = bench.gaps(run).last().copied().filter(|g| !g.is_nan());
                    let line = match &run.status {
                        RunStatus::Completed(stop) => format!(
                            "{what}: {} after {iterations} iterations, {time_s:.3} s, {:.0} grad-eq, {}",
                            serde_json::to_value(stop)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                            run.records.last().map_or(0.0, |r| r.gradient_equivalents),
                            match last {
                                Some(g) => format!("φ − φ* = {g:.3e}"),
                                None => format!("φ = {}", short(run.records.last().and_then(|r| r.phi))),
                            }
                        ),
                        RunStatus::Failed(m) => format!("{what}: FAILED after {iterations} iterations: {m}"),
                    };
                    let line = if run.warnings.is_empty() {
                        line
                    } else {
                        format!(
                            "{line}; warnings: {}",
                            run.warnings
                                .iter()
                                .map(|w| format!("{} ×{}", w.code, w.count))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    progress.finished(&line);
                }
            }
            built = Some((key, b));
        }
    }
    Ok(())
}

/// `bilevel bench SUITE.toml [--out DIR] [--strict]`: parse the suite, run it, write records,
/// summaries and figures into `out` (default `out/<suite name>`) and print the summary table.
/// Under `strict`, runs that carried warnings make it fail with exit code 3 (after writing).
pub fn bench_command(path: &Path, out: Option<&Path>, strict: bool) -> Result<(), BenchError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::config(format!("{origin}: cannot read suite: {e}")))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let stem = path
        .file_stem()
        .map_or("bench".into(), |s| s.to_string_lossy().into_owned());
    let suite = suite::parse(&text, &origin, base, &stem)?;
    let out: PathBuf = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new("out").join(file_stem(&suite.name)));
    std::fs::create_dir_all(&out).map_err(|e| io_failure(&out, e))?;
    let copy = out.join("suite.toml");
    std::fs::write(&copy, &text).map_err(|e| io_failure(&copy, e))?;
    let mut files = output::RecordFiles::create(&out).map_err(BenchError::run)?;
    let mut progress = BenchProgress::new(suite.total_runs());
    let mut bench = Bench {
        suite,
        runs: Vec::new(),
        instances: Vec::new(),
    };
    let ran = run_all(&mut bench, &mut files, &mut progress, &origin);
    progress.finish();
    ran?;
    bench.finalize_phi_star();
    files.rewrite(&bench).map_err(BenchError::run)?;
    let written = summary::write(&bench, &out).map_err(BenchError::run)?;
    println!("{}", written.markdown);
    println!(
        "records: {} and {}  summary: {} and {}  plots: {}",
        files.jsonl_path().display(),
        files.csv_path().display(),
        out.join("summary.md").display(),
        out.join("summary.json").display(),
        written
            .plots
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let warned = bench.runs.iter().filter(|r| !r.warnings.is_empty()).count();
    if warned > 0 {
        println!("{warned} run(s) carried warnings (see summary.json and records.jsonl)");
    }
    if strict && warned > 0 {
        return Err(BenchError::strict(format!(
            "{warned} warning(s) on the benchmark's runs (--strict turns warnings into exit status 3)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only every k-th record and the last of a completed run are kept.
    #[test]
    fn keeps_the_evaluated_records() {
        let rec = |t: usize| Record {
            iteration: t,
            time_s: t as f64,
            oracle_calls: Default::default(),
            gradient_equivalents: 0.0,
            diagnostic_calls: Default::default(),
            f: 0.0,
            hypergradient_norm: 0.0,
            lower_gap: 0.0,
            krylov_iterations: None,
            krylov_residual: None,
            krylov_status: None,
            kernel_component: None,
            intrinsic_dimension: None,
            selection_steps: None,
            tangent_grad_norm: None,
            phi: None,
            grad_phi_error: None,
            grad_phi_rel_error: None,
            grad_phi_norm: None,
            phi_gap: None,
            x_star_distance: None,
            x: None,
            extra: Default::default(),
            metrics: Default::default(),
            warnings: if t == 4 || t == 5 {
                vec![bilevel_solvers::Warning::new(
                    bilevel_solvers::warnings::LOWER_NOT_CONVERGED,
                    format!("at {t}"),
                )]
            } else {
                vec![]
            },
        };
        let state = State {
            x: vec![],
            y: vec![0.0],
            iteration: 0,
        };
        for (completed, expected) in [(true, vec![0, 3, 6, 7]), (false, vec![0, 3, 6])] {
            let mut k = KeepEvaluated::new(3);
            for t in 0..8 {
                Observer::<Vec<f64>>::observe(&mut k, &rec(t), &state, None).unwrap();
            }
            assert_eq!(k.iterations, 8);
            let (records, warnings) = k.into_records(completed);
            let its: Vec<usize> = records.iter().map(|r| r.iteration).collect();
            assert_eq!(its, expected);
            // Warnings of records that were not kept (4 and 5) still count.
            assert_eq!(warnings.len(), 1);
            assert_eq!(
                (
                    warnings[0].count,
                    warnings[0].first_iteration,
                    warnings[0].last_iteration
                ),
                (2, 4, 5)
            );
            assert_eq!(warnings[0].message, "at 5");
        }
        assert_eq!(file_stem("a b/c:d-e_f.g"), "a_b_c_d-e_f.g");
    }
}
