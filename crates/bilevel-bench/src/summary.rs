//! `summary.md`, `summary.json` and the per-problem figures of a benchmark.
//!
//! **Per run**, for each ε: the time (`time_s`) and the gradient-equivalents of the first
//! evaluated record with `φ − φ* < ε`, `+∞` when no record is (a failed run keeps what it
//! reached before failing); the final `φ − φ*` is the last record's (`+∞` for a failed run) and
//! the final metrics are the last record's (completed runs only).
//!
//! **Over seeds**: median and 20 %/80 % quantiles by linear interpolation between order
//! statistics ([`super::stats::quantile`], type 7: with `n` sorted values and `h = (n − 1) q`,
//! `x₍⌊h⌋₎ + (h − ⌊h⌋)(x₍⌊h⌋+1₎ − x₍⌊h⌋₎)`), `+∞` counting as a value above all others. A cell
//! reads `median [q20, q80]`, with `—` for an infinite quantile and `(k/n)` when only `k` of `n`
//! seeds reached ε; `n/r k/n` when the median did not reach it; `—` when no seed did.
//!
//! **Best grid point** of a solver (★): the configuration whose median reaches the smallest ε;
//! ties by the smaller median time to that ε, then the smaller median final `φ − φ*`, then fewer
//! failed runs, then grid order.
//!
//! **Figures**: for each solver its best configuration's runs are resampled as step functions
//! (the last evaluated value at or before each abscissa; a completed run holds its final value,
//! a failed one counts as `+∞` after its failure) on 200 evenly spaced abscissae from the latest
//! first record to the last record over seeds; the median is drawn as a line and the 20–80 %
//! quantiles as a band. Values below a hundredth of the smallest ε (rounding-level gaps, zero or
//! negative ones) are drawn at that floor.

use super::figure::{self, Band, BandPanel};
use super::stats::{first_below, linspace, step_resample, Spread};
use super::{file_stem, Bench, PhiStarSource, ReferenceOutcome, RunData, RunStatus};
use crate::config::fmt;
use bilevel_solvers::executor::{Record, StopReason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Time and cost to one tolerance over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ToTolerance {
    /// ε.
    pub epsilon: f64,
    /// Seeds that reached `φ − φ* < ε`.
    pub reached: usize,
    /// Seconds to reach it.
    pub time_s: Spread,
    /// Gradient-equivalents to reach it.
    pub gradient_equivalents: Spread,
}

/// One solver configuration on one problem.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigSummary {
    /// The solver entry's label.
    pub solver: String,
    /// The solver id.
    pub name: String,
    /// The configuration's label (label and grid point).
    pub configuration: String,
    /// The grid point.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Best grid point of its solver on this problem.
    pub best: bool,
    /// Runs (seeds).
    pub runs: usize,
    /// Failed runs.
    pub failed: usize,
    /// `seed N: message` of each failed run.
    pub errors: Vec<String>,
    /// Per tolerance.
    pub to_tolerance: Vec<ToTolerance>,
    /// Final `φ − φ*` (failed runs count as `+∞`; absent where φ* is unknown).
    pub final_phi_gap: Option<Spread>,
    /// Every metric's final value over the completed runs.
    pub final_metrics: BTreeMap<String, Spread>,
    /// Iterations.
    pub iterations: Option<Spread>,
    /// Total solver time, seconds.
    pub time_s: Option<Spread>,
    /// Total gradient-equivalents.
    pub gradient_equivalents: Option<Spread>,
}

/// One run, for `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Problem label.
    pub problem: String,
    /// Configuration label.
    pub configuration: String,
    /// Seed.
    pub seed: u64,
    /// `completed` or `failed`.
    pub status: &'static str,
    /// Why it stopped, when it completed.
    pub stop_reason: Option<StopReason>,
    /// The failure.
    pub error: Option<String>,
    /// Iterations.
    pub iterations: usize,
    /// Solver time, seconds.
    pub time_s: f64,
    /// Gradient-equivalents at the last record.
    pub gradient_equivalents: Option<f64>,
    /// Last φ.
    pub final_phi: Option<f64>,
    /// Last `φ − φ*`.
    pub final_phi_gap: Option<f64>,
    /// Seconds to each ε (`null`: not reached).
    pub time_to_tolerance: Vec<Option<f64>>,
    /// Gradient-equivalents to each ε.
    pub gradient_equivalents_to_tolerance: Vec<Option<f64>>,
    /// Last record's metrics.
    pub final_metrics: BTreeMap<String, f64>,
    /// Failed checks over the run, by code (`count` iterations, first and last).
    pub warnings: Vec<bilevel_solvers::executor::WarningSummary>,
}

/// φ* of one instance.
#[derive(Clone, Debug, Serialize)]
pub struct PhiStarSummary {
    /// Seeds sharing the instance.
    pub seeds: Vec<u64>,
    /// φ*.
    pub value: Option<f64>,
    /// Where it comes from.
    pub source: PhiStarSource,
    /// The reference run.
    pub reference: Option<ReferenceOutcome>,
    /// Whether a benchmark run went below the reference run.
    pub runs_below_reference: bool,
}

/// One problem.
#[derive(Clone, Debug, Serialize)]
pub struct ProblemSummary {
    /// Label.
    pub label: String,
    /// Problem id.
    pub name: String,
    /// Data set.
    pub dataset: Option<String>,
    /// φ* per instance.
    pub phi_star: Vec<PhiStarSummary>,
    /// One entry per configuration, solvers in suite order.
    pub configurations: Vec<ConfigSummary>,
    /// The figure files.
    pub plots: Vec<String>,
}

/// What [`write()`] produced.
pub struct Written {
    /// The Markdown summary (also in `summary.md`).
    pub markdown: String,
    /// The figure files.
    pub plots: Vec<PathBuf>,
}

/// Per-run quantities.
struct RunStats {
    time_to: Vec<f64>,
    ge_to: Vec<f64>,
    final_gap: f64,
}

fn run_stats(bench: &Bench, run: &RunData) -> RunStats {
    let gaps = bench.gaps(run);
    let to = |get: fn(&Record) -> f64| -> Vec<f64> {
        bench
            .suite
            .tolerances
            .iter()
            .map(|&eps| first_below(&gaps, eps).map_or(f64::INFINITY, |i| get(&run.records[i])))
            .collect()
    };
    RunStats {
        time_to: to(|r| r.time_s),
        ge_to: to(|r| r.gradient_equivalents),
        final_gap: if run.completed() {
            gaps.last().copied().unwrap_or(f64::NAN)
        } else {
            f64::INFINITY
        },
    }
}

fn spread(values: &[f64]) -> Option<Spread> {
    Spread::of(values)
}

fn config_summary(bench: &Bench, pi: usize, ei: usize, ci: usize) -> ConfigSummary {
    let e = &bench.suite.solvers[ei];
    let c = &e.configs[ci];
    let runs: Vec<&RunData> = bench
        .runs
        .iter()
        .filter(|r| r.problem == pi && r.entry == ei && r.config == ci)
        .collect();
    let stats: Vec<RunStats> = runs.iter().map(|r| run_stats(bench, r)).collect();
    let to_tolerance = bench
        .suite
        .tolerances
        .iter()
        .enumerate()
        .filter_map(|(k, &epsilon)| {
            let t: Vec<f64> = stats.iter().map(|s| s.time_to[k]).collect();
            let g: Vec<f64> = stats.iter().map(|s| s.ge_to[k]).collect();
            Some(ToTolerance {
                epsilon,
                reached: t.iter().filter(|v| v.is_finite()).count(),
                time_s: spread(&t)?,
                gradient_equivalents: spread(&g)?,
            })
        })
        .collect();
    let finals: Vec<f64> = stats.iter().map(|s| s.final_gap).collect();
    let completed: Vec<&&RunData> = runs.iter().filter(|r| r.completed()).collect();
    let mut names: Vec<&String> = completed
        .iter()
        .filter_map(|r| r.records.last())
        .flat_map(|r| r.metrics.keys())
        .collect();
    names.sort();
    names.dedup();
    let final_metrics = names
        .into_iter()
        .filter_map(|n| {
            let v: Vec<f64> = completed
                .iter()
                .map(|r| {
                    r.records
                        .last()
                        .and_then(|x| x.metrics.get(n))
                        .copied()
                        .unwrap_or(f64::NAN)
                })
                .collect();
            Some((n.clone(), spread(&v)?))
        })
        .collect();
    let of_completed = |get: &dyn Fn(&RunData) -> f64| {
        spread(&completed.iter().map(|r| get(r)).collect::<Vec<_>>())
    };
    ConfigSummary {
        solver: e.label.clone(),
        name: e.name.clone(),
        configuration: c.label.clone(),
        params: c.params_json(),
        best: false,
        runs: runs.len(),
        failed: runs.len() - completed.len(),
        errors: runs
            .iter()
            .filter_map(|r| match &r.status {
                RunStatus::Failed(m) => Some(format!("seed {}: {m}", r.seed)),
                RunStatus::Completed(_) => None,
            })
            .collect(),
        to_tolerance,
        final_phi_gap: if finals.iter().all(|v| v.is_nan()) {
            None
        } else {
            spread(&finals)
        },
        final_metrics,
        iterations: of_completed(&|r| r.iterations as f64),
        time_s: of_completed(&|r| r.time_s),
        gradient_equivalents: of_completed(&|r| {
            r.records
                .last()
                .map_or(f64::NAN, |x| x.gradient_equivalents)
        }),
    }
}

/// Ranking key (smaller is better): tightest ε reached by the median, median time to it, median
/// final gap, failures.
fn rank_key(c: &ConfigSummary) -> (f64, f64, f64, usize) {
    let reached = c
        .to_tolerance
        .iter()
        .filter(|t| t.time_s.median.is_finite())
        .min_by(|a, b| a.epsilon.total_cmp(&b.epsilon));
    let nan_inf = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
    (
        reached.map_or(f64::INFINITY, |t| t.epsilon),
        reached.map_or(f64::INFINITY, |t| t.time_s.median),
        c.final_phi_gap.map_or(f64::INFINITY, |s| nan_inf(s.median)),
        c.failed,
    )
}

/// Index of the best of `configs` by `rank_key` (the first on ties).
pub fn best_index(configs: &[ConfigSummary]) -> Option<usize> {
    let cmp = |a: &(f64, f64, f64, usize), b: &(f64, f64, f64, usize)| {
        a.0.total_cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
            .then(a.3.cmp(&b.3))
    };
    let keys: Vec<_> = configs.iter().map(rank_key).collect();
    (0..keys.len()).min_by(|&i, &j| cmp(&keys[i], &keys[j]).then(i.cmp(&j)))
}

fn run_summary(bench: &Bench, run: &RunData) -> RunSummary {
    let s = run_stats(bench, run);
    let fin = |v: f64| v.is_finite().then_some(v);
    let last = run.records.last();
    RunSummary {
        problem: bench.suite.problems[run.problem].label.clone(),
        configuration: bench.suite.solvers[run.entry].configs[run.config]
            .label
            .clone(),
        seed: run.seed,
        status: if run.completed() {
            "completed"
        } else {
            "failed"
        },
        stop_reason: match run.status {
            RunStatus::Completed(s) => Some(s),
            RunStatus::Failed(_) => None,
        },
        error: match &run.status {
            RunStatus::Failed(m) => Some(m.clone()),
            RunStatus::Completed(_) => None,
        },
        iterations: run.iterations,
        time_s: run.time_s,
        gradient_equivalents: last.map(|r| r.gradient_equivalents),
        final_phi: last.and_then(|r| r.phi),
        final_phi_gap: bench.gaps(run).last().copied().and_then(fin),
        time_to_tolerance: s.time_to.iter().map(|&v| fin(v)).collect(),
        gradient_equivalents_to_tolerance: s.ge_to.iter().map(|&v| fin(v)).collect(),
        final_metrics: last.map(|r| r.metrics.clone()).unwrap_or_default(),
        warnings: run.warnings.clone(),
    }
}

/// A Markdown cell for time or cost to ε.
pub fn reach_cell(s: &Spread) -> String {
    let q = |v: f64| {
        if v.is_finite() {
            fmt(Some(v))
        } else {
            "—".into()
        }
    };
    if s.finite == 0 {
        "—".into()
    } else if !s.median.is_finite() {
        format!("n/r {}/{}", s.finite, s.n)
    } else {
        let mut c = format!("{} [{}, {}]", q(s.median), q(s.q20), q(s.q80));
        if s.finite < s.n {
            c.push_str(&format!(" ({}/{})", s.finite, s.n));
        }
        c
    }
}

/// A Markdown cell for a final value: `median [q20, q80]`, `—` where infinite.
fn value_cell(s: Option<&Spread>) -> String {
    let q = |v: f64| {
        if v.is_finite() {
            fmt(Some(v))
        } else {
            "—".into()
        }
    };
    s.map_or("—".into(), |s| {
        format!("{} [{}, {}]", q(s.median), q(s.q20), q(s.q80))
    })
}

fn source_text(p: &PhiStarSummary) -> String {
    match p.source {
        PhiStarSource::ClosedForm => "closed form (reference_phi_star)".into(),
        PhiStarSource::ReferenceRun => {
            let r = p.reference.as_ref();
            format!(
                "reference run ({}, {} iterations, min φ {}){}",
                r.map_or("?", |r| r.solver.as_str()),
                r.map_or(0, |r| r.iterations),
                fmt(r.and_then(|r| r.min_phi)),
                if p.runs_below_reference {
                    "; a benchmark run went lower, so φ* is its φ"
                } else {
                    ""
                }
            )
        }
        PhiStarSource::MinOverRuns => {
            let failed = p
                .reference
                .as_ref()
                .and_then(|r| r.error.as_ref())
                .map_or(String::new(), |e| {
                    format!(" (the reference run failed: {e})")
                });
            format!("smallest φ observed over the benchmark runs{failed}")
        }
        PhiStarSource::Unavailable => "unknown: the problem reports no φ".into(),
    }
}

fn markdown(bench: &Bench, problems: &[ProblemSummary]) -> String {
    let s = &bench.suite;
    let mut md = format!("# Benchmark `{}`\n\n", s.name);
    let b = &s.budget;
    let mut budget = vec![format!("max_iter = {}", b.max_iter)];
    if let Some(v) = b.max_oracle_calls {
        budget.push(format!("max_oracle_calls = {v}"));
    }
    if let Some(v) = b.max_gradient_equivalents {
        budget.push(format!("max_gradient_equivalents = {v}"));
    }
    if let Some(v) = b.max_time_s {
        budget.push(format!("max_time_s = {v}"));
    }
    if let Some(v) = b.hypergradient_tol {
        budget.push(format!("hypergradient_tol = {v}"));
    }
    md.push_str(&format!(
        "Seeds {} ({} per configuration); budget of every run: {}; φ and metrics evaluated every {} iteration(s) and at the last. Time is solver time (s); cost is in gradient-equivalents (½ per value, 1 per gradient, 2 per Hessian-vector or cross product).\n\n",
        s.seeds.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
        s.seeds.len(),
        budget.join(", "),
        s.output.evaluate_every.max(1),
    ));
    md.push_str("Cells: median [20 %, 80 %] over seeds (linear interpolation between order statistics); `—` in brackets: that quantile's seeds did not reach ε; (k/n): k of n seeds reached it; n/r k/n: the median seed did not; —: no seed did. ★: best grid point of its solver (smallest ε reached by the median, then median time to it, then median final φ − φ*).\n");
    for p in problems {
        md.push_str(&format!(
            "\n## {}{}\n\n",
            p.label,
            p.dataset
                .as_ref()
                .map_or(String::new(), |d| format!(" ({d})"))
        ));
        if p.label != p.name {
            md.push_str(&format!("Problem `{}`. ", p.name));
        }
        md.push_str("φ*: ");
        let parts: Vec<String> = p
            .phi_star
            .iter()
            .map(|ps| {
                let seeds = if ps.seeds.len() == s.seeds.len() {
                    "all seeds".to_string()
                } else {
                    format!(
                        "seed {}",
                        ps.seeds
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!("{seeds}: {} — {}", fmt(ps.value), source_text(ps))
            })
            .collect();
        md.push_str(&parts.join("; "));
        md.push_str("\n\n");
        let has_test = p
            .configurations
            .iter()
            .any(|c| c.final_metrics.contains_key("test_accuracy"));
        let mut header = "| solver | params | runs |".to_string();
        let mut rule = "|---|---|---|".to_string();
        for t in &s.tolerances {
            header.push_str(&format!(" time to {t:.0e} (s) |"));
            rule.push_str("---|");
        }
        for t in &s.tolerances {
            header.push_str(&format!(" grad-eq to {t:.0e} |"));
            rule.push_str("---|");
        }
        header.push_str(" final φ − φ* |");
        rule.push_str("---|");
        if has_test {
            header.push_str(" final test accuracy |");
            rule.push_str("---|");
        }
        md.push_str(&header);
        md.push('\n');
        md.push_str(&rule);
        md.push('\n');
        for c in &p.configurations {
            let grid = s
                .solvers
                .iter()
                .find(|e| e.label == c.solver)
                .is_some_and(|e| e.configs.len() > 1);
            let star = if c.best && grid { " ★" } else { "" };
            let params = c
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let runs = if c.failed > 0 {
                format!("{}/{} ({} failed)", c.runs - c.failed, c.runs, c.failed)
            } else {
                format!("{}/{}", c.runs, c.runs)
            };
            let mut row = format!(
                "| {}{star} | {} | {runs} |",
                c.solver,
                if params.is_empty() {
                    "—".into()
                } else {
                    params
                }
            );
            for t in &c.to_tolerance {
                row.push_str(&format!(" {} |", reach_cell(&t.time_s)));
            }
            for t in &c.to_tolerance {
                row.push_str(&format!(" {} |", reach_cell(&t.gradient_equivalents)));
            }
            row.push_str(&format!(" {} |", value_cell(c.final_phi_gap.as_ref())));
            if has_test {
                row.push_str(&format!(
                    " {} |",
                    value_cell(c.final_metrics.get("test_accuracy"))
                ));
            }
            md.push_str(&row);
            md.push('\n');
        }
        let errors: Vec<String> = p
            .configurations
            .iter()
            .flat_map(|c| {
                c.errors
                    .iter()
                    .map(move |e| format!("- {}, {e}", c.configuration))
            })
            .collect();
        if !errors.is_empty() {
            md.push_str("\nFailed runs:\n\n");
            md.push_str(&errors.join("\n"));
            md.push('\n');
        }
        if !p.plots.is_empty() {
            md.push_str(&format!("\nPlots: {}\n", p.plots.join(", ")));
        }
    }
    md
}

/// Median and band over `runs` of `φ − φ*` against `x_of`, on a common axis.
fn band(
    bench: &Bench,
    runs: &[&RunData],
    x_of: fn(&Record) -> f64,
    label: String,
    group: usize,
) -> Option<Band> {
    let series: Vec<(Vec<f64>, Vec<f64>, bool)> = runs
        .iter()
        .filter(|r| !r.records.is_empty())
        .map(|r| {
            (
                r.records.iter().map(x_of).collect(),
                bench.gaps(r),
                r.completed(),
            )
        })
        .collect();
    let start = series
        .iter()
        .map(|s| s.0[0])
        .fold(f64::NEG_INFINITY, f64::max);
    let end = series
        .iter()
        .filter_map(|s| s.0.last().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    if series.is_empty() || !(start.is_finite() && end.is_finite()) {
        return None;
    }
    let x = linspace(start, end.max(start), if end > start { 200 } else { 1 });
    let resampled: Vec<Vec<f64>> = series
        .iter()
        .map(|(xs, ys, hold)| step_resample(xs, ys, &x, *hold))
        .collect();
    let (mut median, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..x.len() {
        let v: Vec<f64> = resampled.iter().map(|s| s[k]).collect();
        let s = Spread::of(&v)?;
        median.push(s.median);
        lo.push(s.q20);
        hi.push(s.q80);
    }
    Some(Band {
        label,
        group,
        x,
        median,
        lo,
        hi,
    })
}

/// Compute the summaries, write `summary.md`, `summary.json` and the figures into `out`.
pub fn write(bench: &Bench, out: &Path) -> Result<Written, String> {
    let s = &bench.suite;
    let mut problems = Vec::new();
    let mut plots = Vec::new();
    for (pi, p) in s.problems.iter().enumerate() {
        let mut configurations = Vec::new();
        let mut best = Vec::new();
        for (ei, e) in s.solvers.iter().enumerate() {
            let mut cs: Vec<ConfigSummary> = (0..e.configs.len())
                .map(|ci| config_summary(bench, pi, ei, ci))
                .collect();
            let b = best_index(&cs);
            if let Some(b) = b {
                cs[b].best = true;
            }
            best.push((ei, b.unwrap_or(0)));
            configurations.extend(cs);
        }
        let phi_star = bench
            .instances
            .iter()
            .filter(|i| i.problem == pi)
            .map(|i| PhiStarSummary {
                seeds: i.seeds.clone(),
                value: i.phi_star,
                source: i.source,
                reference: i.reference.clone(),
                runs_below_reference: i.runs_below_reference,
            })
            .collect();
        // Figures: each solver's best configuration.
        let mut time_bands = Vec::new();
        let mut cost_bands = Vec::new();
        for &(ei, ci) in &best {
            let runs: Vec<&RunData> = bench
                .runs
                .iter()
                .filter(|r| r.problem == pi && r.entry == ei && r.config == ci)
                .collect();
            let label = s.solvers[ei].configs[ci].label.clone();
            time_bands.extend(band(bench, &runs, |r| r.time_s, label.clone(), ei));
            cost_bands.extend(band(bench, &runs, |r| r.gradient_equivalents, label, ei));
        }
        let floor = s.tolerances.iter().copied().fold(f64::INFINITY, f64::min) / 100.0;
        let floor = if floor.is_finite() { floor } else { 0.0 };
        let panels = vec![
            BandPanel {
                title: "phi - phi* vs time".into(),
                x_label: "seconds".into(),
                bands: time_bands,
                floor,
            },
            BandPanel {
                title: "phi - phi* vs oracle cost".into(),
                x_label: "gradient-equivalents".into(),
                bands: cost_bands,
                floor,
            },
        ];
        let title = format!(
            "{}: {} (median, 20-80% band over {} seeds)",
            s.name,
            p.label,
            s.seeds.len()
        );
        let stem = file_stem(&p.label);
        let svg = out.join(format!("{stem}.svg"));
        let png = out.join(format!("{stem}.png"));
        figure::write_svg(&svg, &title, &panels, 2)?;
        figure::write_png(&png, &title, &panels, 2)?;
        problems.push(ProblemSummary {
            label: p.label.clone(),
            name: p.name.clone(),
            dataset: p.dataset.clone(),
            phi_star,
            configurations,
            plots: vec![format!("{stem}.svg"), format!("{stem}.png")],
        });
        plots.push(svg);
        plots.push(png);
    }
    let md = markdown(bench, &problems);
    let md_path = out.join("summary.md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let json = serde_json::json!({
        "suite": s.name,
        "seeds": s.seeds,
        "tolerances": s.tolerances,
        "budget": s.budget,
        "evaluate_every": s.output.evaluate_every.max(1),
        "quantiles": "linear interpolation between order statistics (type 7); not reached = +inf, written null",
        "problems": problems,
        "runs": bench.runs.iter().map(|r| run_summary(bench, r)).collect::<Vec<_>>(),
    });
    let js_path = out.join("summary.json");
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| format!("{}: {e}", js_path.display()))?;
    std::fs::write(&js_path, text + "\n").map_err(|e| format!("{}: {e}", js_path.display()))?;
    Ok(Written {
        markdown: md,
        plots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(eps_times: &[(f64, &[f64])], final_gap: f64, failed: usize) -> ConfigSummary {
        ConfigSummary {
            solver: "s".into(),
            name: "aid".into(),
            configuration: "s".into(),
            params: Default::default(),
            best: false,
            runs: 3,
            failed,
            errors: vec![],
            to_tolerance: eps_times
                .iter()
                .map(|(e, t)| ToTolerance {
                    epsilon: *e,
                    reached: t.iter().filter(|v| v.is_finite()).count(),
                    time_s: Spread::of(t).unwrap(),
                    gradient_equivalents: Spread::of(t).unwrap(),
                })
                .collect(),
            final_phi_gap: Spread::of(&[final_gap]),
            final_metrics: Default::default(),
            iterations: None,
            time_s: None,
            gradient_equivalents: None,
        }
    }

    #[test]
    fn best_reaches_the_smallest_tolerance_then_fastest() {
        let inf = f64::INFINITY;
        let a = cfg(
            &[(1e-2, &[1.0, 1.0, 1.0]), (1e-4, &[inf, inf, inf])],
            1e-3,
            0,
        );
        let b = cfg(
            &[(1e-2, &[3.0, 3.0, 3.0]), (1e-4, &[5.0, 6.0, inf])],
            1e-5,
            0,
        );
        let c = cfg(
            &[(1e-2, &[2.0, 2.0, 2.0]), (1e-4, &[4.0, 4.0, 4.0])],
            1e-6,
            1,
        );
        // b and c reach 1e-4 in median; c faster.
        assert_eq!(best_index(&[a.clone(), b.clone(), c.clone()]), Some(2));
        assert_eq!(best_index(&[a.clone(), b.clone()]), Some(1));
        // Same times: the smaller final gap wins.
        let d = cfg(
            &[(1e-2, &[1.0, 1.0, 1.0]), (1e-4, &[inf, inf, inf])],
            1e-4,
            0,
        );
        assert_eq!(best_index(&[a, d]), Some(1));
        assert_eq!(best_index(&[]), None);
    }

    #[test]
    fn cells_show_quantiles_counts_and_unreached() {
        let inf = f64::INFINITY;
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(reach_cell(&s), "3.000 [1.800, 4.200]");
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0, inf]).unwrap();
        assert_eq!(reach_cell(&s), "3.000 [1.800, —] (4/5)");
        let s = Spread::of(&[1.0, 2.0, inf, inf, inf]).unwrap();
        assert_eq!(reach_cell(&s), "n/r 2/5");
        let s = Spread::of(&[inf, inf]).unwrap();
        assert_eq!(reach_cell(&s), "—");
    }
}
