//! `bilevel compare CONFIG [--out DIR]`: several solvers on one problem, under one budget, over
//! several seeds; a Markdown table (final values, and oracle cost and time to reach tolerances)
//! and one SVG with every curve against iterations, oracle calls and wall time.
//!
//! ```toml
//! [problem]
//! name = "affine"
//! [budget]
//! max_gradient_equivalents = 20000
//! [compare]
//! seeds = [0, 1, 2]            # written into the problem's (and a solver's) `seed` key
//! tolerances = [1e-2, 1e-4, 1e-6]
//! [[solvers]]
//! name = "hg-ms"
//! label = "HG-MS"              # optional
//! [[solvers]]
//! name = "aid"
//! ```
//!
//! The progress measure is `(‖∇φ(x_t)‖/‖∇φ(x_0)‖)²` when the problem has a closed-form `∇φ`,
//! else `φ(x_t) − φ*` when φ and φ* are known, else `(‖h_t‖/‖h_0‖)²`.

use crate::config::{
    find_key_line, locate_message, quoted_field, OutputConfig, RunConfig, SolverConfig,
};
use crate::run::execute;
use crate::Failure;
use bilevel_bench::config::{fmt, with_seed};
use bilevel_bench::plot::{self, Panel, Series};
use bilevel_problems::ProblemConfig;
use bilevel_solvers::executor::{Budget, Record};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `[compare]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareSection {
    /// Seeds; each run of each solver is repeated per seed.
    pub seeds: Vec<u64>,
    /// Tolerances on the progress measure.
    pub tolerances: Vec<f64>,
}

impl Default for CompareSection {
    fn default() -> Self {
        CompareSection {
            seeds: vec![0],
            tolerances: vec![1e-2, 1e-4, 1e-6],
        }
    }
}

/// Which quantity the tolerances apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// `(‖∇φ(x_t)‖/‖∇φ(x_0)‖)²`.
    RelativeGradPhiSq,
    /// `φ(x_t) − φ*`.
    PhiGap,
    /// `(‖h_t‖/‖h_0‖)²`.
    RelativeHypergradSq,
}

impl Measure {
    fn label(&self) -> &'static str {
        match self {
            Measure::RelativeGradPhiSq => "(|grad phi| / |grad phi(x0)|)^2",
            Measure::PhiGap => "phi - phi*",
            Measure::RelativeHypergradSq => "(|h| / |h0|)^2",
        }
    }
    fn pick(recs: &[Record]) -> Measure {
        let first = recs.first();
        if first.is_some_and(|r| r.grad_phi_norm.is_some_and(|g| g > 0.0)) {
            Measure::RelativeGradPhiSq
        } else if first.is_some_and(|r| r.phi_gap.is_some()) {
            Measure::PhiGap
        } else {
            Measure::RelativeHypergradSq
        }
    }
    /// The measure along a trace.
    fn series(&self, recs: &[Record]) -> Vec<f64> {
        let Some(r0) = recs.first() else {
            return vec![];
        };
        match self {
            Measure::RelativeGradPhiSq => {
                let g0 = r0.grad_phi_norm.unwrap_or(f64::NAN);
                recs.iter()
                    .map(|r| (r.grad_phi_norm.unwrap_or(f64::NAN) / g0).powi(2))
                    .collect()
            }
            Measure::PhiGap => recs.iter().map(|r| r.phi_gap.unwrap_or(f64::NAN)).collect(),
            Measure::RelativeHypergradSq => {
                let h0 = r0.hypergradient_norm;
                recs.iter()
                    .map(|r| (r.hypergradient_norm / h0).powi(2))
                    .collect()
            }
        }
    }
}

/// One run's outcome in the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Solver label.
    pub solver: String,
    /// Seed.
    pub seed: u64,
    /// Final f.
    pub final_f: f64,
    /// Final progress measure.
    pub final_measure: f64,
    /// Final `‖∇φ‖²` where known.
    pub final_grad_phi_sq: Option<f64>,
    /// Final distance to x* where known.
    pub final_x_star_distance: Option<f64>,
    /// Gradient-equivalents to reach each tolerance (None: not reached).
    pub cost_to_tol: Vec<Option<f64>>,
    /// Seconds to reach each tolerance.
    pub time_to_tol: Vec<Option<f64>>,
    /// Total gradient-equivalents and time.
    pub total_cost: f64,
    /// Total time.
    pub total_time_s: f64,
    /// Iterations.
    pub iterations: usize,
    /// Failed checks over the run, by code.
    pub warnings: Vec<bilevel_solvers::executor::WarningSummary>,
}

fn located(text: &str, origin: &str, field: &str, msg: impl std::fmt::Display) -> Failure {
    match find_key_line(text, field) {
        Some(l) => Failure::config(format!("{origin}:{l}: {field}: {msg}")),
        None => Failure::config(format!("{origin}: {field}: {msg}")),
    }
}

fn section<T: serde::de::DeserializeOwned + Default>(
    doc: &toml::Table,
    key: &str,
    text: &str,
    origin: &str,
) -> Result<T, Failure> {
    match doc.get(key) {
        None => Ok(T::default()),
        Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
            let msg = e.message().trim().to_string();
            let field = quoted_field(&msg).map_or(key.to_string(), |f| format!("{key}.{f}"));
            located(text, origin, &field, msg)
        }),
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v[v.len() / 2];
    m.is_finite().then_some(m)
}

/// `bilevel compare CONFIG [--out DIR]`.
pub fn compare_command(path: &Path, out: Option<&Path>, strict: bool) -> Result<(), Failure> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::config(format!("{origin}: cannot read config: {e}")))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        Failure::config(match line {
            Some(l) => format!("{origin}:{l}: {}", e.message().trim()),
            None => format!("{origin}: {}", e.message().trim()),
        })
    })?;
    for key in doc.keys() {
        if !["problem", "budget", "output", "compare", "solvers"].contains(&key.as_str()) {
            return Err(located(
                &text,
                &origin,
                key,
                "unknown section, expected one of `problem`, `budget`, `output`, `compare`, `solvers`",
            ));
        }
    }
    let budget: Budget = section(&doc, "budget", &text, &origin)?;
    budget
        .validate("budget")
        .map_err(|m| Failure::config(locate_message(&text, &origin, "", &m)))?;
    let mut output: OutputConfig = section(&doc, "output", &text, &origin)?;
    output.checkpoint_every = 0;
    output.plot = false;
    let cmp: CompareSection = section(&doc, "compare", &text, &origin)?;
    if cmp.seeds.is_empty() {
        return Err(located(
            &text,
            &origin,
            "compare.seeds",
            "needs at least one seed",
        ));
    }
    if let Some(t) = cmp
        .tolerances
        .iter()
        .find(|t| !(t.is_finite() && **t > 0.0))
    {
        return Err(located(
            &text,
            &origin,
            "compare.tolerances",
            format!("must be positive (got {t})"),
        ));
    }
    let problem_table = match doc.get("problem") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t.clone(),
        Some(_) => return Err(located(&text, &origin, "problem", "must be a table")),
    };
    let Some(toml::Value::Array(entries)) = doc.get("solvers") else {
        return Err(Failure::config(format!(
            "{origin}: no solvers: add one or more [[solvers]] tables with a `name`"
        )));
    };
    // Parse and validate every solver before running anything.
    let mut solvers = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let toml::Value::Table(t) = entry else {
            return Err(Failure::config(format!(
                "{origin}: solvers[{i}]: must be a table"
            )));
        };
        let mut t = t.clone();
        let label = match t.remove("label") {
            Some(toml::Value::String(s)) => Some(s),
            Some(v) => {
                return Err(located(
                    &text,
                    &origin,
                    "label",
                    format!("solvers[{i}].label must be a string (got {v})"),
                ))
            }
            None => None,
        };
        let cfg: SolverConfig =
            toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let msg = e.message().trim().to_string();
                    let field = quoted_field(&msg).unwrap_or("name").to_string();
                    located(&text, &origin, &field, format!("solvers[{i}]: {msg}"))
                })?;
        cfg.validate().map_err(|m| {
            Failure::config(locate_message(
                &text,
                &origin,
                &format!("solvers[{i}]: "),
                &m,
            ))
        })?;
        let label = label.unwrap_or_else(|| cfg.name().to_string());
        solvers.push((label, t));
    }
    let mut labels: Vec<&str> = solvers.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort();
    labels.dedup();
    if labels.len() != solvers.len() {
        return Err(Failure::config(format!(
            "{origin}: two [[solvers]] share a label; give each a distinct `label`"
        )));
    }
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new("out").join(path.file_stem().unwrap_or_default()));
    let mut results: Vec<RunResult> = Vec::new();
    let mut traces: Vec<(usize, String, u64, Vec<Record>)> = Vec::new();
    let mut measure = None;
    for (si, (label, table)) in solvers.iter().enumerate() {
        for &seed in &cmp.seeds {
            let mut problem: ProblemConfig =
                toml::Value::Table(with_seed::<ProblemConfig>(&problem_table, seed))
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        let msg = e.message().trim().to_string();
                        let field =
                            quoted_field(&msg).map_or("problem".into(), |f| format!("problem.{f}"));
                        located(&text, &origin, &field, msg)
                    })?;
            problem.resolve_paths(crate::config::base_dir(path));
            let solver: SolverConfig = toml::Value::Table(with_seed::<SolverConfig>(table, seed))
                .try_into()
                .map_err(|e: toml::de::Error| Failure::config(format!("{origin}: {e}")))?;
            let cfg = RunConfig {
                problem,
                solver,
                budget: budget.clone(),
                output: output.clone(),
                built: None,
            };
            let dir = out.join(format!("{label}/seed-{seed}"));
            let ex = execute(&cfg, &dir, false, &format!("{label} seed {seed}"))?;
            let m = *measure.get_or_insert_with(|| Measure::pick(&ex.records));
            let series = m.series(&ex.records);
            let reach = |tol: f64| {
                ex.records
                    .iter()
                    .zip(&series)
                    .find(|(_, v)| **v <= tol)
                    .map(|(r, _)| r)
            };
            let last = ex.records.last();
            results.push(RunResult {
                solver: label.clone(),
                seed,
                final_f: last.map_or(f64::NAN, |r| r.f),
                final_measure: series.last().copied().unwrap_or(f64::NAN),
                final_grad_phi_sq: last.and_then(|r| r.grad_phi_norm).map(|g| g * g),
                final_x_star_distance: last.and_then(|r| r.x_star_distance),
                cost_to_tol: cmp
                    .tolerances
                    .iter()
                    .map(|&t| reach(t).map(|r| r.gradient_equivalents))
                    .collect(),
                time_to_tol: cmp
                    .tolerances
                    .iter()
                    .map(|&t| reach(t).map(|r| r.time_s))
                    .collect(),
                total_cost: last.map_or(0.0, |r| r.gradient_equivalents),
                total_time_s: ex.summary.time_s,
                iterations: ex.summary.iterations,
                warnings: ex.summary.warnings.clone(),
            });
            traces.push((si, label.clone(), seed, ex.records));
        }
    }
    let measure = measure.unwrap_or(Measure::RelativeHypergradSq);
    let table = markdown_table(&solvers, &results, &cmp, measure);
    println!("{table}");
    std::fs::create_dir_all(&out).map_err(|e| Failure::run(format!("{}: {e}", out.display())))?;
    let md = out.join("compare.md");
    std::fs::write(&md, &table).map_err(|e| Failure::run(format!("{}: {e}", md.display())))?;
    let js = out.join("compare.json");
    let json = serde_json::json!({ "measure": measure, "tolerances": cmp.tolerances, "seeds": cmp.seeds, "runs": results });
    std::fs::write(&js, serde_json::to_string_pretty(&json).unwrap_or_default())
        .map_err(|e| Failure::run(format!("{}: {e}", js.display())))?;
    let svg = out.join("compare.svg");
    let panels = compare_panels(&traces, measure);
    plot::write_svg(
        &svg,
        &format!("{} on {}", labels.join(", "), problem_name(&problem_table)),
        &panels,
        2,
    )
    .map_err(|e| Failure::run(format!("{}: {e}", svg.display())))?;
    println!(
        "table: {}  data: {}  plot: {}  runs: {}/<solver>/seed-<s>/",
        md.display(),
        js.display(),
        svg.display(),
        out.display()
    );
    let warned: Vec<&RunResult> = results.iter().filter(|r| !r.warnings.is_empty()).collect();
    for r in &warned {
        println!(
            "warnings in {} seed {}: {}",
            r.solver,
            r.seed,
            r.warnings
                .iter()
                .map(|w| format!("{} ×{}", w.code, w.count))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    crate::hypergrad::strict_verdict(strict, warned.len(), "the compared runs")
}

fn problem_name(t: &toml::Table) -> String {
    t.get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("circle-center")
        .to_string()
}

fn markdown_table(
    solvers: &[(String, toml::Table)],
    results: &[RunResult],
    cmp: &CompareSection,
    measure: Measure,
) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Medians over {} seed(s). Progress measure: {}. \"cost\" is in gradient-equivalents (½ value + gradient + 2 HVP/cross product); — = not reached within the budget.\n\n",
        cmp.seeds.len(),
        measure.label()
    ));
    let mut header = "| solver | final f | final measure | final ‖∇φ‖² | ‖x − x*‖ |".to_string();
    let mut rule = "|---|---|---|---|---|".to_string();
    for t in &cmp.tolerances {
        header.push_str(&format!(" cost to {t:.0e} | time to {t:.0e} (s) |"));
        rule.push_str("---|---|");
    }
    header.push_str(" total cost | iterations |");
    rule.push_str("---|---|");
    s.push_str(&header);
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    for (label, _) in solvers {
        let rs: Vec<&RunResult> = results.iter().filter(|r| &r.solver == label).collect();
        let med = |f: &dyn Fn(&RunResult) -> Option<f64>| {
            median(rs.iter().map(|r| f(r).unwrap_or(f64::INFINITY)).collect())
        };
        let mut row = format!(
            "| {label} | {} | {} | {} | {} |",
            fmt(med(&|r| Some(r.final_f))),
            fmt(med(&|r| Some(r.final_measure))),
            fmt(med(&|r| r.final_grad_phi_sq)),
            fmt(med(&|r| r.final_x_star_distance)),
        );
        for k in 0..cmp.tolerances.len() {
            row.push_str(&format!(
                " {} | {} |",
                fmt(med(&|r| r.cost_to_tol[k])),
                fmt(med(&|r| r.time_to_tol[k]))
            ));
        }
        row.push_str(&format!(
            " {} | {} |",
            fmt(med(&|r| Some(r.total_cost))),
            median(rs.iter().map(|r| r.iterations as f64).collect())
                .map_or("—".into(), |v| format!("{v:.0}"))
        ));
        s.push_str(&row);
        s.push('\n');
    }
    s
}

fn compare_panels(traces: &[(usize, String, u64, Vec<Record>)], measure: Measure) -> Vec<Panel> {
    let mk = |title: &str,
              xl: &str,
              log_y: bool,
              x: &dyn Fn(&Record) -> f64,
              y: &dyn Fn(&[Record]) -> Vec<f64>| Panel {
        title: title.into(),
        x_label: xl.into(),
        log_y,
        series: traces
            .iter()
            .enumerate()
            .map(|(i, (group, label, _, recs))| {
                let first_of_group = traces[..i].iter().all(|(g, ..)| g != group);
                Series {
                    label: if first_of_group {
                        label.clone()
                    } else {
                        String::new()
                    },
                    group: *group,
                    points: recs.iter().map(x).zip(y(recs)).collect(),
                }
            })
            .collect(),
    };
    let m = |recs: &[Record]| measure.series(recs);
    vec![
        mk(
            &format!("{} vs iterations", measure.label()),
            "iteration",
            true,
            &|r| r.iteration as f64,
            &m,
        ),
        mk(
            &format!("{} vs oracle cost", measure.label()),
            "gradient-equivalents",
            true,
            &|r| r.gradient_equivalents,
            &m,
        ),
        mk(
            &format!("{} vs time", measure.label()),
            "seconds",
            true,
            &|r| r.time_s,
            &m,
        ),
        mk(
            "upper objective f vs oracle cost",
            "gradient-equivalents",
            false,
            &|r| r.gradient_equivalents,
            &|recs| recs.iter().map(|r| r.f).collect(),
        ),
    ]
}
