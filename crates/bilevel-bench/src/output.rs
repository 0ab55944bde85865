//! `records.jsonl` and `records.csv` (schemas in [`super`]): appended and flushed after each run,
//! rewritten whole when a run brings new CSV columns and once at the end with the final φ*.

use super::{Bench, RunData};
use bilevel_core::OracleCounts;
use bilevel_solvers::executor::Record;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Top-level keys of a JSON row; a metric with one of these names is written as `metric.NAME`.
const FIELDS: &[&str] = &[
    "suite",
    "problem",
    "dataset",
    "solver",
    "label",
    "params",
    "seed",
    "iteration",
    "time_s",
    "oracle_calls",
    "gradient_equivalents",
    "f",
    "phi",
    "phi_star",
    "phi_gap",
    "grad_phi_norm",
    "hypergradient_norm",
    "lower_gap",
    "extra",
];

/// A metric's key in the rows.
fn metric_key(name: &str) -> String {
    if FIELDS.contains(&name) {
        format!("metric.{name}")
    } else {
        name.to_string()
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    suite: &'a str,
    problem: &'a str,
    dataset: Option<&'a str>,
    solver: &'a str,
    label: &'a str,
    params: &'a serde_json::Map<String, serde_json::Value>,
    seed: u64,
    iteration: usize,
    time_s: f64,
    oracle_calls: OracleCounts,
    gradient_equivalents: f64,
    f: f64,
    phi: Option<f64>,
    phi_star: Option<f64>,
    phi_gap: Option<f64>,
    grad_phi_norm: Option<f64>,
    hypergradient_norm: f64,
    lower_gap: f64,
    #[serde(flatten)]
    metrics: BTreeMap<String, f64>,
    extra: &'a BTreeMap<String, f64>,
    warnings: &'a [bilevel_solvers::Warning],
}

/// The columns that depend on the data: grid keys, metric names, solver scalars.
#[derive(Clone, Debug, Default, PartialEq)]
struct Columns {
    params: BTreeSet<String>,
    metrics: BTreeSet<String>,
    extra: BTreeSet<String>,
}

impl Columns {
    /// Add the columns of `run`; whether any was new.
    fn add(&mut self, bench: &Bench, run: &RunData) -> bool {
        let before = self.clone();
        let c = &bench.suite.solvers[run.entry].configs[run.config];
        self.params.extend(c.params.iter().map(|(k, _)| k.clone()));
        for r in &run.records {
            self.metrics.extend(r.metrics.keys().map(|k| metric_key(k)));
            self.extra.extend(r.extra.keys().cloned());
        }
        *self != before
    }

    fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = ["suite", "problem", "dataset", "solver", "label"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        h.extend(self.params.iter().map(|k| format!("params.{k}")));
        h.extend(
            [
                "seed",
                "iteration",
                "time_s",
                "oracle_calls.f_value",
                "oracle_calls.g_value",
                "oracle_calls.grad_f",
                "oracle_calls.grad_g",
                "oracle_calls.hvp",
                "oracle_calls.cross",
                "gradient_equivalents",
                "f",
                "phi",
                "phi_star",
                "phi_gap",
                "grad_phi_norm",
                "hypergradient_norm",
                "lower_gap",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        h.extend(self.metrics.iter().cloned());
        h.extend(self.extra.iter().map(|k| format!("extra.{k}")));
        h
    }
}

/// A number as JSON writes it (shortest round-trip form), empty when not finite.
fn num(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or(String::new(), |n| n.to_string())
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), num)
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The fixed context of a run's rows.
struct Context<'a> {
    suite: &'a str,
    problem: &'a str,
    dataset: Option<&'a str>,
    solver: &'a str,
    label: &'a str,
    params: serde_json::Map<String, serde_json::Value>,
    seed: u64,
    phi_star: Option<f64>,
}

fn context<'a>(bench: &'a Bench, run: &RunData) -> Context<'a> {
    let p = &bench.suite.problems[run.problem];
    let e = &bench.suite.solvers[run.entry];
    Context {
        suite: &bench.suite.name,
        problem: &p.label,
        dataset: p.dataset.as_deref(),
        solver: &e.name,
        label: &e.label,
        params: e.configs[run.config].params_json(),
        seed: run.seed,
        phi_star: bench.phi_star(run),
    }
}

fn json_line(c: &Context, r: &Record) -> Result<String, String> {
    let row = JsonRow {
        suite: c.suite,
        problem: c.problem,
        dataset: c.dataset,
        solver: c.solver,
        label: c.label,
        params: &c.params,
        seed: c.seed,
        iteration: r.iteration,
        time_s: r.time_s,
        oracle_calls: r.oracle_calls,
        gradient_equivalents: r.gradient_equivalents,
        f: r.f,
        phi: r.phi,
        phi_star: c.phi_star,
        phi_gap: r.phi.zip(c.phi_star).map(|(a, b)| a - b),
        grad_phi_norm: r.grad_phi_norm,
        hypergradient_norm: r.hypergradient_norm,
        lower_gap: r.lower_gap,
        metrics: r.metrics.iter().map(|(k, v)| (metric_key(k), *v)).collect(),
        extra: &r.extra,
        warnings: &r.warnings,
    };
    serde_json::to_string(&row).map_err(|e| format!("records.jsonl: {e}"))
}

fn csv_line(cols: &Columns, c: &Context, r: &Record) -> String {
    let mut v: Vec<String> = vec![
        cell(c.suite),
        cell(c.problem),
        cell(c.dataset.unwrap_or("")),
        cell(c.solver),
        cell(c.label),
    ];
    for k in &cols.params {
        v.push(match c.params.get(k) {
            None => String::new(),
            Some(serde_json::Value::String(s)) => cell(s),
            Some(x) => cell(&x.to_string()),
        });
    }
    let o = &r.oracle_calls;
    v.push(c.seed.to_string());
    v.push(r.iteration.to_string());
    v.push(num(r.time_s));
    for n in [o.f_value, o.g_value, o.grad_f, o.grad_g, o.hvp, o.cross] {
        v.push(n.to_string());
    }
    v.push(num(r.gradient_equivalents));
    v.push(num(r.f));
    v.push(opt(r.phi));
    v.push(opt(c.phi_star));
    v.push(opt(r.phi.zip(c.phi_star).map(|(a, b)| a - b)));
    v.push(opt(r.grad_phi_norm));
    v.push(num(r.hypergradient_norm));
    v.push(num(r.lower_gap));
    let metrics: BTreeMap<String, f64> =
        r.metrics.iter().map(|(k, x)| (metric_key(k), *x)).collect();
    for k in &cols.metrics {
        v.push(opt(metrics.get(k).copied()));
    }
    for k in &cols.extra {
        v.push(opt(r.extra.get(k).copied()));
    }
    v.join(",")
}

/// The two record files of a benchmark.
pub struct RecordFiles {
    jsonl_path: PathBuf,
    csv_path: PathBuf,
    jsonl: BufWriter<File>,
    csv: BufWriter<File>,
    columns: Columns,
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl RecordFiles {
    /// Create (truncate) `dir/records.jsonl` and `dir/records.csv`.
    pub fn create(dir: &Path) -> Result<Self, String> {
        let jsonl_path = dir.join("records.jsonl");
        let csv_path = dir.join("records.csv");
        let mut files = RecordFiles {
            jsonl: create(&jsonl_path)?,
            csv: create(&csv_path)?,
            jsonl_path,
            csv_path,
            columns: Columns::default(),
        };
        let header = files.columns.header().join(",");
        writeln!(files.csv, "{header}").map_err(|e| files.csv_err(e))?;
        files.csv.flush().map_err(|e| files.csv_err(e))?;
        Ok(files)
    }

    /// Path of `records.jsonl`.
    pub fn jsonl_path(&self) -> &Path {
        &self.jsonl_path
    }
    /// Path of `records.csv`.
    pub fn csv_path(&self) -> &Path {
        &self.csv_path
    }

    fn csv_err(&self, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", self.csv_path.display())
    }
    fn jsonl_err(&self, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", self.jsonl_path.display())
    }

    /// Append run `k` of `bench` to both files and flush them; when the run brings new columns,
    /// rewrite the CSV with the wider header.
    pub fn append(&mut self, bench: &Bench, k: usize) -> Result<(), String> {
        let run = &bench.runs[k];
        let c = context(bench, run);
        for r in &run.records {
            let line = json_line(&c, r)?;
            writeln!(self.jsonl, "{line}").map_err(|e| self.jsonl_err(e))?;
        }
        self.jsonl.flush().map_err(|e| self.jsonl_err(e))?;
        if self.columns.add(bench, run) {
            self.write_csv(bench, k + 1)
        } else {
            for r in &run.records {
                let line = csv_line(&self.columns, &c, r);
                writeln!(self.csv, "{line}").map_err(|e| self.csv_err(e))?;
            }
            self.csv.flush().map_err(|e| self.csv_err(e))
        }
    }

    /// Write the CSV of the first `n` runs afresh (to a temporary file, then renamed), leaving
    /// `self.csv` open for appending.
    fn write_csv(&mut self, bench: &Bench, n: usize) -> Result<(), String> {
        let tmp = self.csv_path.with_extension("csv.tmp");
        let mut w = create(&tmp)?;
        let err = |e: std::io::Error| format!("{}: {e}", tmp.display());
        writeln!(w, "{}", self.columns.header().join(",")).map_err(err)?;
        for run in &bench.runs[..n] {
            let c = context(bench, run);
            for r in &run.records {
                writeln!(w, "{}", csv_line(&self.columns, &c, r)).map_err(err)?;
            }
        }
        w.flush().map_err(err)?;
        drop(w);
        std::fs::rename(&tmp, &self.csv_path).map_err(|e| self.csv_err(e))?;
        self.csv = File::options()
            .append(true)
            .open(&self.csv_path)
            .map(BufWriter::new)
            .map_err(|e| self.csv_err(e))?;
        Ok(())
    }

    /// Rewrite both files from every run with the φ* now in use.
    pub fn rewrite(&mut self, bench: &Bench) -> Result<(), String> {
        for run in &bench.runs {
            self.columns.add(bench, run);
        }
        self.write_csv(bench, bench.runs.len())?;
        let tmp = self.jsonl_path.with_extension("jsonl.tmp");
        let mut w = create(&tmp)?;
        let err = |e: std::io::Error| format!("{}: {e}", tmp.display());
        for run in &bench.runs {
            let c = context(bench, run);
            for r in &run.records {
                writeln!(w, "{}", json_line(&c, r)?).map_err(err)?;
            }
        }
        w.flush().map_err(err)?;
        drop(w);
        std::fs::rename(&tmp, &self.jsonl_path).map_err(|e| self.jsonl_err(e))?;
        self.jsonl = File::options()
            .append(true)
            .open(&self.jsonl_path)
            .map(BufWriter::new)
            .map_err(|e| self.jsonl_err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_numbers_round_trip() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("plain"), "plain");
        assert_eq!(num(0.1), "0.1");
        assert_eq!(num(1e-7).parse::<f64>().unwrap(), 1e-7);
        assert_eq!(num(f64::NAN), "");
        assert_eq!(opt(None), "");
        assert_eq!(metric_key("f"), "metric.f");
        assert_eq!(metric_key("test_accuracy"), "test_accuracy");
    }
}
