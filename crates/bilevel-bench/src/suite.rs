//! The suite file of `bilevel bench`: parsing, grid expansion, seed substitution and validation,
//! with errors located as `FILE:LINE: context: message` (see the format in [`super`]).

use crate::config::{find_key_line, quoted_field, with_seed};
use crate::BenchError;
use bilevel_problems::ProblemConfig;
use bilevel_solvers::executor::Budget;
use bilevel_solvers::registry::SolverConfig;
use serde::Deserialize;
use std::path::Path;

/// The `[output]` table of a suite.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchOutput {
    /// Evaluate φ (hence φ − φ*) and the problem's metrics every this many iterations and at the
    /// last one; only these records are written and used (1: every iteration).
    pub evaluate_every: usize,
    /// Solver diagnostics (kernel component, intrinsic dimension) every this many iterations; 0
    /// (the default) disables them, since their time counts in `time_s`.
    pub diagnostics_every: usize,
}

impl Default for BenchOutput {
    fn default() -> Self {
        BenchOutput {
            evaluate_every: 1,
            diagnostics_every: 0,
        }
    }
}

/// One `[[problems]]` entry.
#[derive(Clone, Debug)]
pub struct ProblemEntry {
    /// Display name and file-name stem (the `label` key, default the problem's `name`).
    pub label: String,
    /// The problem id (`name`).
    pub name: String,
    /// The problem table without `label` (relative data paths made absolute).
    pub table: toml::Table,
    /// The data set's name: the `data` key when it is a string, the file name of `data.path`
    /// when it is a table, else `None`.
    pub dataset: Option<String>,
}

impl ProblemEntry {
    /// The problem configuration of run seed `seed` (written into `seed` where accepted).
    pub fn config(&self, seed: u64) -> Result<ProblemConfig, String> {
        toml::Value::Table(with_seed::<ProblemConfig>(&self.table, seed))
            .try_into()
            .map_err(|e: toml::de::Error| e.message().trim().to_string())
    }
}

/// One configuration of a `[[solvers]]` entry: one point of its grid.
#[derive(Clone, Debug)]
pub struct Configuration {
    /// The grid point: dotted key → value, in key order (empty without a grid).
    pub params: Vec<(String, toml::Value)>,
    /// The solver table with the grid point written in.
    pub table: toml::Table,
    /// `label` alone without a grid, `label k=v, k=v` with one.
    pub label: String,
}

impl Configuration {
    /// The solver configuration of run seed `seed` (written into `seed` where accepted).
    pub fn solver(&self, seed: u64) -> Result<SolverConfig, String> {
        toml::Value::Table(with_seed::<SolverConfig>(&self.table, seed))
            .try_into()
            .map_err(|e: toml::de::Error| e.message().trim().to_string())
    }
    /// `k=v, k=v` (empty without a grid).
    pub fn params_text(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// The grid point as a JSON object.
    pub fn params_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect()
    }
}

/// One `[[solvers]]` entry and its configurations.
#[derive(Clone, Debug)]
pub struct SolverEntry {
    /// Display name (`label`, default the solver's `name`).
    pub label: String,
    /// The solver id.
    pub name: String,
    /// The grid's cross product (one configuration without a grid).
    pub configs: Vec<Configuration>,
}

/// The `[reference]` table: a long run whose smallest evaluated φ gives φ*.
#[derive(Clone, Debug)]
pub struct Reference {
    /// The solver table.
    pub table: toml::Table,
    /// The solver id.
    pub name: String,
    /// Iterations of the reference run.
    pub max_iter: usize,
    /// Evaluate φ every this many iterations (and at the last).
    pub evaluate_every: usize,
}

impl Reference {
    /// The solver configuration of run seed `seed`.
    pub fn solver(&self, seed: u64) -> Result<SolverConfig, String> {
        toml::Value::Table(with_seed::<SolverConfig>(&self.table, seed))
            .try_into()
            .map_err(|e: toml::de::Error| e.message().trim().to_string())
    }
}

/// A parsed and validated suite.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Suite name (`name`, default the file stem).
    pub name: String,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Tolerances ε of `φ − φ* < ε`.
    pub tolerances: Vec<f64>,
    /// The budget of every run.
    pub budget: Budget,
    /// Evaluation cadence.
    pub output: BenchOutput,
    /// Problems.
    pub problems: Vec<ProblemEntry>,
    /// Solvers.
    pub solvers: Vec<SolverEntry>,
    /// How φ* is found where the problem has no closed form.
    pub reference: Option<Reference>,
}

impl Suite {
    /// Number of benchmark runs: problems × configurations × seeds.
    pub fn total_runs(&self) -> usize {
        self.problems.len()
            * self.seeds.len()
            * self.solvers.iter().map(|s| s.configs.len()).sum::<usize>()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: Option<String>,
    seeds: Option<Vec<u64>>,
    tolerances: Option<Vec<f64>>,
    #[serde(default)]
    budget: Budget,
    #[serde(default)]
    output: BenchOutput,
    #[serde(default)]
    problems: Vec<toml::Table>,
    #[serde(default)]
    solvers: Vec<toml::Table>,
    reference: Option<ReferenceFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    solver: toml::Table,
    max_iter: Option<usize>,
    evaluate_every: Option<usize>,
}

/// Default tolerances: 1e-2 … 1e-6.
pub const DEFAULT_TOLERANCES: [f64; 5] = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6];

/// The name of a `[a.b]` or `[[a.b]]` header line (not a line of a multi-line array value).
fn header(line: &str) -> Option<&str> {
    let t = line.trim();
    let name = if let Some(r) = t.strip_prefix("[[") {
        r.split("]]").next()?
    } else {
        t.strip_prefix('[')?.split(']').next()?
    }
    .trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.\" ".contains(c);
    (!name.is_empty() && name.chars().all(bare) && !name.starts_with(|c: char| c.is_ascii_digit()))
        .then_some(name)
}

/// Lines (1-based, inclusive) of the table `name` (`[name]` with its `[name.sub]` tables), or
/// of the `index`-th `[[name]]` entry when `index` is given.
pub fn section_lines(text: &str, name: &str, index: Option<usize>) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let sub = format!("{name}.");
    let mut count = 0usize;
    let mut start = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(h) = header(line) else { continue };
        let is_array = line.trim().starts_with("[[");
        let opens = h == name && (is_array == index.is_some());
        if let Some(s) = start {
            if opens || !h.starts_with(&sub) {
                return Some((s, i));
            }
        } else if opens {
            if index.is_none_or(|k| k == count) {
                start = Some(i + 1);
            }
            count += 1;
        }
    }
    start.map(|s| (s, lines.len()))
}

/// The line of `key = …` (the last segment of a dotted field) within `range`, else the range's
/// first line, else anywhere in the file.
fn key_line(text: &str, range: Option<(usize, usize)>, field: &str) -> Option<usize> {
    let Some((a, b)) = range else {
        return find_key_line(text, field);
    };
    let slice: String = text
        .lines()
        .skip(a - 1)
        .take(b + 1 - a)
        .collect::<Vec<_>>()
        .join("\n");
    find_key_line(&slice, field)
        .or_else(|| find_inline_key(&slice, field))
        .map(|l| l + a - 1)
        .or(Some(a))
}

/// The line where `key = …` appears inside an inline table (`solver = { name = "aid", key = 3 }`).
fn find_inline_key(text: &str, field: &str) -> Option<usize> {
    let key = field.rsplit('.').next()?.trim_matches('`');
    if key.is_empty() {
        return None;
    }
    text.lines()
        .position(|l| {
            l.match_indices(key).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + key.len()..].trim_start();
                before.is_some_and(|c| c == '{' || c == ',' || c == ' ' || c == '"')
                    && after.trim_start_matches('"').trim_start().starts_with('=')
            })
        })
        .map(|i| i + 1)
}

/// `origin:line: context: message` at the line of `field` within `range`.
fn located(
    text: &str,
    origin: &str,
    range: Option<(usize, usize)>,
    field: &str,
    context: &str,
    msg: impl std::fmt::Display,
) -> BenchError {
    match key_line(text, range, field) {
        Some(l) => BenchError::config(format!("{origin}:{l}: {context}: {msg}")),
        None => BenchError::config(format!("{origin}: {context}: {msg}")),
    }
}

/// `origin:line: context: message`.
fn at_line(origin: &str, line: Option<usize>, context: &str, msg: &str) -> BenchError {
    match line {
        Some(l) => BenchError::config(format!("{origin}:{l}: {context}: {msg}")),
        None => BenchError::config(format!("{origin}: {context}: {msg}")),
    }
}

/// The line of grid key `key` (`"upper.lr" = […]` in `[solvers.grid]` or in an inline `grid`
/// table) within `range`, else of the grid itself, else the range's first line.
fn grid_line(text: &str, range: Option<(usize, usize)>, key: &str) -> Option<usize> {
    let (a, b) = range?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .skip(a - 1)
        .take(b + 1 - a)
        .map(|(i, l)| (i + 1, l))
        .collect();
    let quoted = format!("\"{key}\"");
    let sets = |l: &str| {
        [quoted.as_str(), key].iter().any(|k| {
            l.match_indices(k).any(|(i, _)| {
                let before = l[..i].trim_end();
                (before.is_empty() || before.ends_with('{') || before.ends_with(','))
                    && l[i + k.len()..].trim_start().starts_with('=')
            })
        })
    };
    lines
        .iter()
        .find(|(_, l)| sets(l))
        .or_else(|| {
            lines.iter().find(|(_, l)| {
                let t = l.trim_start();
                t.starts_with("grid") && t[4..].trim_start().starts_with('=')
                    || header(l).is_some_and(|h| h.ends_with(".grid"))
            })
        })
        .map(|(i, _)| *i)
        .or(Some(a))
}

/// A TOML syntax or type error of the whole file, at the line of its span (or, for an unknown
/// key, the line of that key or of its table header).
fn toml_failure(text: &str, origin: &str, e: &toml::de::Error) -> BenchError {
    let msg = e.message().trim().to_string();
    let by_key = quoted_field(&msg)
        .filter(|_| msg.starts_with("unknown field"))
        .and_then(|f| {
            find_key_line(text, f).or_else(|| {
                text.lines()
                    .position(|l| header(l).is_some_and(|h| h == f))
                    .map(|i| i + 1)
            })
        });
    let line = by_key.or_else(|| {
        e.span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
    });
    BenchError::config(match line {
        Some(l) => format!("{origin}:{l}: {msg}"),
        None => format!("{origin}: {msg}"),
    })
}

/// Take an optional string key out of `t`.
fn take_string(t: &mut toml::Table, key: &str) -> Result<Option<String>, String> {
    match t.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("`{key}` must be a string (got {v})")),
    }
}

/// The data set's name from a problem table's `data` key; relative paths in a `data` table are
/// made relative to `base` (the suite file's directory).
fn dataset(t: &mut toml::Table, base: &Path) -> Option<String> {
    match t.get_mut("data")? {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Table(d) => {
            for key in ["path", "labels", "test_path", "test_labels"] {
                if let Some(toml::Value::String(p)) = d.get_mut(key) {
                    if Path::new(p.as_str()).is_relative() && !base.as_os_str().is_empty() {
                        *p = base.join(&*p).display().to_string();
                    }
                }
            }
            d.get("path")
                .and_then(|p| p.as_str())
                .and_then(|p| Path::new(p).file_name())
                .map(|f| f.to_string_lossy().into_owned())
        }
        _ => None,
    }
}

/// Set the dotted `key` (`"upper.lr"`) of `t` to `value`, creating intermediate tables.
fn set_dotted(t: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut cur = t;
    for p in parts {
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match next {
            toml::Value::Table(sub) => sub,
            other => return Err(format!("`{p}` is {other}, not a table")),
        };
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// The cross product of `grid` (keys sorted; the last key varies fastest).
pub fn expand_grid(grid: &[(String, Vec<toml::Value>)]) -> Vec<Vec<(String, toml::Value)>> {
    let mut points: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in grid {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

fn problem_entry(
    text: &str,
    origin: &str,
    i: usize,
    mut t: toml::Table,
    base: &Path,
    seed: u64,
) -> Result<ProblemEntry, BenchError> {
    let range = section_lines(text, "problems", Some(i));
    let ctx = format!("problems[{i}]");
    let err = |field: &str, msg: String| located(text, origin, range, field, &ctx, msg);
    let label = take_string(&mut t, "label").map_err(|m| err("label", m))?;
    let name = match t.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => return Err(err("name", format!("`name` must be a string (got {v})"))),
        None => return Err(err("name", "needs a `name` (see `bilevel list`)".into())),
    };
    let dataset = dataset(&mut t, base);
    let entry = ProblemEntry {
        label: label.unwrap_or_else(|| name.clone()),
        name,
        table: t,
        dataset,
    };
    let ctx = format!("problems[{i}] ({})", entry.label);
    let cfg = entry.config(seed).map_err(|m| {
        let field = quoted_field(&m).unwrap_or("name").to_string();
        located(text, origin, range, &field, &ctx, m)
    })?;
    // Building validates the parameters (and loads the data once).
    cfg.build().map_err(|e| {
        let m = e.to_string();
        let field = m.split(':').next().unwrap_or("name").to_string();
        located(text, origin, range, &field, &ctx, m)
    })?;
    Ok(entry)
}

fn solver_entry(
    text: &str,
    origin: &str,
    i: usize,
    mut t: toml::Table,
    seed: u64,
) -> Result<SolverEntry, BenchError> {
    let range = section_lines(text, "solvers", Some(i));
    let ctx = format!("solvers[{i}]");
    let err = |field: &str, msg: String| located(text, origin, range, field, &ctx, msg);
    let label = take_string(&mut t, "label").map_err(|m| err("label", m))?;
    let name = match t.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => return Err(err("name", format!("`name` must be a string (got {v})"))),
        None => return Err(err("name", "needs a `name` (see `bilevel list`)".into())),
    };
    let label = label.unwrap_or_else(|| name.clone());
    let mut grid: Vec<(String, Vec<toml::Value>)> = Vec::new();
    match t.remove("grid") {
        None => {}
        Some(toml::Value::Table(g)) => {
            for (k, v) in g {
                if ["name", "label", "grid", "seed"].contains(&k.as_str()) {
                    return Err(err(
                        "grid",
                        format!("grid key `{k}` cannot vary (seeds come from the suite's `seeds`)"),
                    ));
                }
                match v {
                    toml::Value::Array(a) if !a.is_empty() => grid.push((k, a)),
                    other => {
                        return Err(err(
                            "grid",
                            format!(
                                "grid.\"{k}\" must be a non-empty array of values (got {other})"
                            ),
                        ))
                    }
                }
            }
        }
        Some(v) => {
            return Err(err(
                "grid",
                format!("`grid` must be a table of dotted key = [values] (got {v})"),
            ))
        }
    }
    grid.sort_by(|a, b| a.0.cmp(&b.0));
    let grid_keys: Vec<String> = grid.iter().map(|(k, _)| k.clone()).collect();
    let mut configs = Vec::new();
    for point in expand_grid(&grid) {
        let mut table = t.clone();
        for (k, v) in &point {
            set_dotted(&mut table, k, v.clone())
                .map_err(|m| err("grid", format!("grid.\"{k}\": {m}")))?;
        }
        let c = Configuration {
            params: point,
            table,
            label: label.clone(),
        };
        let c = Configuration {
            label: if grid.is_empty() {
                label.clone()
            } else {
                format!("{label} {}", c.params_text())
            },
            ..c
        };
        let ctx = if grid.is_empty() {
            format!("solvers[{i}] ({label})")
        } else {
            format!("solvers[{i}] ({label}, grid point {})", c.params_text())
        };
        // A field that the grid sets is located at its grid key, any other at its own key.
        let locate = |m: &str| -> BenchError {
            let f = quoted_field(m)
                .map(str::to_string)
                .or_else(|| {
                    m.split(':')
                        .next()
                        .map(|f| f.trim_start_matches("solver.").to_string())
                })
                .unwrap_or_default();
            match grid_keys
                .iter()
                .find(|k| **k == f || k.rsplit('.').next() == Some(f.as_str()))
            {
                Some(k) => at_line(origin, grid_line(text, range, k), &ctx, m),
                None => located(text, origin, range, &f, &ctx, m),
            }
        };
        let cfg = c.solver(seed).map_err(|m| locate(&m))?;
        cfg.validate().map_err(|m| locate(&m))?;
        configs.push(c);
    }
    Ok(SolverEntry {
        label,
        name,
        configs,
    })
}

/// Parse and validate the suite in `text` (read from `origin`; relative data paths are resolved
/// against `base`). `stem` names the suite when it has no `name`.
pub fn parse(text: &str, origin: &str, base: &Path, stem: &str) -> Result<Suite, BenchError> {
    let file: SuiteFile = toml::from_str(text).map_err(|e| toml_failure(text, origin, &e))?;
    let top = |field: &str, msg: String| located(text, origin, None, field, field, msg);
    let seeds = file.seeds.unwrap_or_else(|| vec![0]);
    if seeds.is_empty() {
        return Err(top("seeds", "needs at least one seed".into()));
    }
    let tolerances = file
        .tolerances
        .unwrap_or_else(|| DEFAULT_TOLERANCES.to_vec());
    if let Some(t) = tolerances.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(top(
            "tolerances",
            format!("must be positive and finite (got {t})"),
        ));
    }
    file.budget.validate("budget").map_err(|m| {
        let field = m.split(':').next().unwrap_or("budget").to_string();
        let rest = m[field.len()..].trim_start_matches(':').trim().to_string();
        top(&field, rest)
    })?;
    let name = file.name.unwrap_or_else(|| stem.to_string());
    if name.trim().is_empty() {
        return Err(top("name", "must not be empty".into()));
    }
    if file.problems.is_empty() {
        return Err(BenchError::config(format!(
            "{origin}: no problems: add one or more [[problems]] tables with a `name`"
        )));
    }
    if file.solvers.is_empty() {
        return Err(BenchError::config(format!(
            "{origin}: no solvers: add one or more [[solvers]] tables with a `name`"
        )));
    }
    let mut problems = Vec::new();
    for (i, t) in file.problems.into_iter().enumerate() {
        problems.push(problem_entry(text, origin, i, t, base, seeds[0])?);
    }
    let mut solvers = Vec::new();
    for (i, t) in file.solvers.into_iter().enumerate() {
        solvers.push(solver_entry(text, origin, i, t, seeds[0])?);
    }
    for (what, labels) in [
        (
            "[[problems]]",
            problems
                .iter()
                .map(|p| p.label.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            "[[solvers]]",
            solvers.iter().map(|s| s.label.as_str()).collect(),
        ),
    ] {
        for (k, l) in labels.iter().enumerate() {
            if labels[..k].contains(l) {
                return Err(BenchError::config(format!(
                    "{origin}: two {what} are labelled `{l}`; give each a distinct `label`"
                )));
            }
        }
    }
    let reference = match file.reference {
        None => None,
        Some(r) => {
            let range = section_lines(text, "reference", None);
            let err =
                |field: &str, msg: String| located(text, origin, range, field, "reference", msg);
            let name = match r.solver.get("name") {
                Some(toml::Value::String(s)) => s.clone(),
                _ => return Err(err("solver", "`solver` needs a `name`".into())),
            };
            let reference = Reference {
                table: r.solver,
                name,
                max_iter: r.max_iter.unwrap_or(500),
                evaluate_every: r.evaluate_every.unwrap_or(file.output.evaluate_every),
            };
            if reference.max_iter == 0 {
                return Err(err("max_iter", "must be at least 1".into()));
            }
            let cfg = reference
                .solver(seeds[0])
                .map_err(|m| err(quoted_field(&m).unwrap_or("solver"), format!("solver: {m}")))?;
            cfg.validate().map_err(|m| {
                let field = m.split(':').next().unwrap_or("solver").to_string();
                err(&field, m)
            })?;
            Some(reference)
        }
    };
    Ok(Suite {
        name,
        seeds,
        tolerances,
        budget: file.budget,
        output: file.output,
        problems,
        solvers,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every suite shipped in `configs/` parses and validates. Solver tables are always checked;
    /// the whole suite (problems included, which loads their data) where the data are fetched,
    /// and otherwise only a "not fetched" failure is accepted.
    #[test]
    fn shipped_suites_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("configs/") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
            if !(name.starts_with("bench-") && name.ends_with(".toml")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let file: SuiteFile = toml::from_str(&text).expect("suite TOML");
            let seed = file
                .seeds
                .as_ref()
                .and_then(|s| s.first().copied())
                .unwrap_or(0);
            for (i, t) in file.solvers.into_iter().enumerate() {
                if let Err(f) = solver_entry(&text, name, i, t, seed) {
                    panic!("{name}: {}", f.message);
                }
            }
            match parse(&text, name, &dir, name) {
                Ok(_) => {}
                Err(f) if f.message.contains("bilevel data fetch") => {
                    println!("{name}: problems not checked: {}", f.message);
                }
                Err(f) => panic!("{name}: {}", f.message),
            }
            n += 1;
        }
        assert!(n >= 7, "found {n} suites");
    }

    fn parse_ok(text: &str) -> Suite {
        match parse(text, "s.toml", Path::new(""), "stem") {
            Ok(s) => s,
            Err(f) => panic!("{}", f.message),
        }
    }
    fn parse_err(text: &str) -> String {
        match parse(text, "s.toml", Path::new(""), "stem") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(f) => f.message,
        }
    }

    const BASE: &str = "seeds = [3, 4]\n[[problems]]\nname = \"circle-center\"\n";

    #[test]
    fn grid_expands_to_the_cross_product_in_key_order() {
        let s = parse_ok(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\nlabel = \"AID\"\nlower_lr = 0.5\n\
             grid = {{ \"upper.lr\" = [0.1, 0.3], lower_steps = [5, 10, 20] }}\n\
             [[solvers]]\nname = \"hg-ms\"\n"
        ));
        assert_eq!(s.name, "stem");
        assert_eq!(s.seeds, vec![3, 4]);
        assert_eq!(s.tolerances, DEFAULT_TOLERANCES.to_vec());
        assert_eq!(s.solvers.len(), 2);
        let aid = &s.solvers[0];
        assert_eq!(aid.configs.len(), 6);
        let labels: Vec<&str> = aid.configs.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "AID lower_steps=5, upper.lr=0.1",
                "AID lower_steps=5, upper.lr=0.3",
                "AID lower_steps=10, upper.lr=0.1",
                "AID lower_steps=10, upper.lr=0.3",
                "AID lower_steps=20, upper.lr=0.1",
                "AID lower_steps=20, upper.lr=0.3",
            ]
        );
        // The grid point lands in the (nested) solver table; other keys are kept.
        let SolverConfig::Aid(c) = aid.configs[3].solver(0).unwrap() else {
            panic!("not aid")
        };
        assert_eq!((c.lower_steps, c.upper.lr, c.lower_lr), (10, 0.3, 0.5));
        assert_eq!(s.solvers[1].configs.len(), 1);
        assert_eq!(s.solvers[1].configs[0].label, "hg-ms");
        assert_eq!(s.total_runs(), 2 * 7); // 1 problem × 2 seeds × 7 configurations
    }

    /// The run seed replaces `seed` where the problem or solver has one, and only there.
    #[test]
    fn seeds_override_where_accepted() {
        let s = parse_ok(
            "seeds = [7]\n[[problems]]\nname = \"quadratic\"\nn_inner = 8\nn_outer = 8\ndim_x = 2\n\
             dim_y = 2\nseed = 1\n[[problems]]\nname = \"circle-center\"\n\
             [[solvers]]\nname = \"pzobo\"\n[[solvers]]\nname = \"aid\"\n",
        );
        let ProblemConfig::Quadratic(q) = s.problems[0].config(11).unwrap() else {
            panic!()
        };
        assert_eq!(q.seed, Some(11));
        assert!(s.problems[1].config(11).is_ok());
        assert!(!s.problems[1].table.contains_key("seed"));
        let SolverConfig::Pzobo(p) = s.solvers[0].configs[0].solver(11).unwrap() else {
            panic!()
        };
        assert_eq!(p.seed, 11);
        assert!(
            !with_seed::<SolverConfig>(&s.solvers[1].configs[0].table, 11).contains_key("seed")
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        // Unknown top-level key.
        let e = parse_err(&format!("{BASE}[[solvers]]\nname = \"aid\"\nsedes = [1]\n"));
        assert!(e.starts_with("s.toml:6:") && e.contains("sedes"), "{e}");
        // Unknown key inside the second problem.
        let e = parse_err(
            "[[problems]]\nname = \"circle-center\"\n[[problems]]\nname = \"circle-center\"\n\
             label = \"b\"\nradiuss = 2\n[[solvers]]\nname = \"aid\"\n",
        );
        assert!(
            e.starts_with("s.toml:6: problems[1] (b):") && e.contains("radiuss"),
            "{e}"
        );
        // Unknown key in a solver's sub-table.
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\n[solvers.upper]\nlrr = 0.1\n"
        ));
        assert!(
            e.starts_with("s.toml:7: solvers[0] (aid):") && e.contains("lrr"),
            "{e}"
        );
        // A bad value set by the grid is located at the grid.
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"hg-ms\"\n\ngrid = {{ lower_lr = [0.1, -1.0] }}\n"
        ));
        assert!(
            e.starts_with("s.toml:7: solvers[0] (hg-ms, grid point lower_lr=-1.0)"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\n[solvers.grid]\nlower_steps = [1]\n\"upper.lrr\" = [1.0]\n"
        ));
        assert!(
            e.starts_with("s.toml:8: solvers[0] (aid, grid point") && e.contains("lrr"),
            "{e}"
        );
        // Bad values of the suite's own keys and of the budget.
        let e = parse_err(&format!(
            "tolerances = [1e-3, 0.0]\n{BASE}[[solvers]]\nname = \"aid\"\n"
        ));
        assert!(
            e.starts_with("s.toml:1: tolerances: must be positive"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\n[budget]\nmax_time_s = -1\n"
        ));
        assert!(
            e.starts_with("s.toml:7: budget.max_time_s: must be positive"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\n[output]\nevaluate = 3\n"
        ));
        assert!(e.starts_with("s.toml:7:") && e.contains("evaluate"), "{e}");
        // Grid keys that cannot vary, missing entries, duplicate labels.
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\ngrid = {{ seed = [1, 2] }}\n"
        ));
        assert!(
            e.starts_with("s.toml:6: solvers[0]:") && e.contains("seed"),
            "{e}"
        );
        let e = parse_err("[[problems]]\nname = \"circle-center\"\n");
        assert!(e.contains("no solvers"), "{e}");
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\n[[solvers]]\nname = \"aid\"\n"
        ));
        assert!(e.contains("labelled `aid`"), "{e}");
        // Reference solver errors point into [reference].
        let e = parse_err(&format!(
            "{BASE}[[solvers]]\nname = \"aid\"\n[reference]\nmax_iter = 10\nsolver = {{ name = \"aid\", lower_stepz = 3 }}\n"
        ));
        assert!(
            e.starts_with("s.toml:8: reference:") && e.contains("lower_stepz"),
            "{e}"
        );
    }

    #[test]
    fn sections_are_found_by_header_and_entry() {
        let text = "a = 1\n[[solvers]]\nname = \"x\"\n[solvers.upper]\nlr = 1\n\
                    points = [\n  [1.0, 2.0],\n]\n[[solvers]]\nname = \"y\"\n[budget]\nmax_iter = 3\n";
        assert_eq!(section_lines(text, "solvers", Some(0)), Some((2, 8)));
        assert_eq!(section_lines(text, "solvers", Some(1)), Some((9, 10)));
        assert_eq!(section_lines(text, "budget", None), Some((11, 12)));
        assert_eq!(section_lines(text, "solvers", Some(2)), None);
        assert_eq!(key_line(text, Some((9, 10)), "name"), Some(10));
    }
}
