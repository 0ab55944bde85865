//! The TOML run configuration and its loading, with errors that name the file, line and field.
//!
//! ```toml
//! [problem]            # see `bilevel list`
//! name = "circle-center"
//! radius = 1.5
//!
//! [solver]             # "hg-ms" or "aid"; every knob has a default
//! name = "hg-ms"
//! [solver.selection]
//! strategy = "tangent"
//!
//! [budget]
//! max_iter = 200
//!
//! [output]
//! diagnostics_every = 1
//! ```

use bilevel_problems::{BuiltProblem, ProblemConfig};
use bilevel_solvers::executor::Budget;
pub use bilevel_solvers::registry::SolverConfig;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

pub use bilevel_bench::config::{find_key_line, quoted_field};

/// What to write and how often.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Diagnostics (kernel component, intrinsic dimension) every this many iterations (0: off).
    pub diagnostics_every: usize,
    /// Checkpoint every this many iterations (0: off).
    pub checkpoint_every: usize,
    /// Write `plot.svg`.
    pub plot: bool,
    /// Record `x` in the trace when its dimension is at most this.
    pub record_x_max: usize,
    /// Evaluate references (φ, ∇φ) and metrics (accuracies) every this many iterations and at
    /// the last (1: every iteration; raise it where φ is an exact inner solve on real data).
    pub evaluate_every: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            diagnostics_every: 1,
            checkpoint_every: 10,
            plot: true,
            record_x_max: 64,
            evaluate_every: 1,
        }
    }
}

/// A whole run configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The problem.
    #[serde(default)]
    pub problem: ProblemConfig,
    /// The solver.
    #[serde(default)]
    pub solver: SolverConfig,
    /// The budget.
    #[serde(default)]
    pub budget: Budget,
    /// Outputs.
    #[serde(default)]
    pub output: OutputConfig,
    /// The problem as built while validating the configuration ([`parse_at`]), so that a run
    /// builds it (and loads its data) once; `None` where a configuration is assembled in code,
    /// and then [`RunConfig::built_problem`] builds it.
    #[serde(skip)]
    pub built: Option<Arc<BuiltProblem>>,
}

impl RunConfig {
    /// The built problem: the one validation built, or a new one.
    pub fn built_problem(&self) -> Result<Arc<BuiltProblem>, bilevel_problems::ProblemError> {
        match &self.built {
            Some(b) => Ok(Arc::clone(b)),
            None => self.problem.build().map(Arc::new),
        }
    }
}

/// A configuration error, already formatted as `FILE:LINE: field: message`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// The lines of section `section` (`[section]` and `[section.sub]` tables) as a standalone TOML
/// text for the section's own type: other lines are blanked (so line numbers are unchanged),
/// `[section.sub]` becomes `[sub]` and the `name = …` tag line is dropped.
fn section_text(text: &str, section: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            let header = t.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("").trim();
            if header == section {
                inside = true;
            } else if let Some(rest) = header
                .strip_prefix(section)
                .and_then(|r| r.strip_prefix('.'))
            {
                inside = true;
                out.push_str(&format!("[{rest}]"));
            } else {
                inside = false;
            }
        } else if inside && !(t.starts_with("name") && t[4..].trim_start().starts_with('=')) {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The table headers and key of `line` in `text`: `section.sub.key` for `key = …` on that line.
fn field_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.get(line.checked_sub(1)?)?.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .map(|l| {
            l.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string()
        });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// Format a TOML error at `line` (1-based, if known) as `origin:line: field: message`.
fn located(text: &str, origin: &str, line: Option<usize>, msg: &str) -> String {
    // Unknown fields: the span may point at the table; the key's own line is better.
    let line = quoted_field(msg)
        .filter(|_| msg.starts_with("unknown field"))
        .and_then(|f| find_key_line(text, f))
        .or(line);
    match line {
        Some(l) => match field_at_line(text, l).filter(|_| !msg.starts_with("unknown field")) {
            Some(field) => format!("{origin}:{l}: {field}: {msg}"),
            None => format!("{origin}:{l}: {msg}"),
        },
        None => format!("{origin}: {msg}"),
    }
}

/// The line (in `sub`, whose lines are the lines of the whole file) and message of a TOML error
/// found by parsing a section's own text ([`section_text`]) alone.
fn located_toml_error(sub: &str, e: &toml::de::Error) -> (Option<usize>, String) {
    let line = e.span().map(|s| line_col(sub, s.start).0);
    (line, e.message().trim().to_string())
}

/// A precise error for the tagged sections, found by deserialising each alone.
fn probe_sections(text: &str) -> Option<(Option<usize>, String)> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let name = |sec: &str| {
        doc.get(sec)
            .and_then(|v| v.get("name"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let solver = name("solver").and_then(|n| {
        let sub = section_text(text, "solver");
        SolverConfig::table_error(&n, &sub).map(|e| located_toml_error(&sub, &e))
    });
    solver.or_else(|| {
        let n = name("problem")?;
        let sub = section_text(text, "problem");
        ProblemConfig::table_error(&n, &sub).map(|e| located_toml_error(&sub, &e))
    })
}

/// Place a validation message `"field.path: explanation"` at the line where its field is set:
/// `origin:line: {context}message` (or `origin: …` when the key is not in the file).
pub fn locate_message(text: &str, origin: &str, context: &str, m: &str) -> String {
    let field = m.split(':').next().unwrap_or("");
    match find_key_line(text, field) {
        Some(l) => format!("{origin}:{l}: {context}{m}"),
        None => format!("{origin}: {context}{m}"),
    }
}

/// Parse `text` (read from `origin`) into a validated [`RunConfig`]; relative data paths stay
/// relative to the working directory.
pub fn parse(text: &str, origin: &str) -> Result<RunConfig, ConfigError> {
    parse_at(text, origin, Path::new(""))
}

/// [`parse`], with relative data paths resolved against `base` before the problem is built.
pub fn parse_at(text: &str, origin: &str, base: &Path) -> Result<RunConfig, ConfigError> {
    let mut cfg: RunConfig = toml::from_str(text).map_err(|e| {
        let (line, msg) = probe_sections(text).unwrap_or_else(|| {
            (
                e.span().map(|s| line_col(text, s.start).0),
                e.message().trim().to_string(),
            )
        });
        ConfigError(located(text, origin, line, &msg))
    })?;
    cfg.problem.resolve_paths(base);
    let semantic = |m: String| ConfigError(locate_message(text, origin, "", &m));
    cfg.solver.validate().map_err(semantic)?;
    cfg.budget.validate("budget").map_err(semantic)?;
    if let Ok(doc) = toml::from_str::<toml::Table>(text) {
        if doc.is_empty() {
            return Err(ConfigError(format!(
                "{origin}: the configuration is empty; it needs at least a [problem] table with a \
                 name (see `bilevel list` and the examples in configs/)"
            )));
        }
        if !doc.contains_key("problem") {
            return Err(ConfigError(format!(
                "{origin}: no [problem] table; name the problem (`[problem]` then `name = \"circle-center\"`, see `bilevel list`)"
            )));
        }
    }

    // Building the problem validates its parameters (vector lengths, positivity); the run uses
    // this build.
    let built = cfg.problem.build().map_err(|e| semantic(e.to_string()))?;
    cfg.built = Some(Arc::new(built));
    Ok(cfg)
}

/// The folder relative data paths in the config at `path` are resolved against.
pub fn base_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Read and parse a configuration file (relative data paths resolved against its folder).
pub fn load(path: &Path) -> Result<(RunConfig, String), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read config: {e}", path.display())))?;
    let cfg = parse_at(&text, &path.display().to_string(), base_dir(path))?;
    Ok((cfg, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_errors_name_file_line_and_field() {
        let e = parse("", "empty.toml").unwrap_err();
        assert!(
            e.0.starts_with("empty.toml: the configuration is empty"),
            "{}",
            e.0
        );
        let e = parse("# only a comment\n", "c.toml").unwrap_err();
        assert!(e.0.contains("empty"), "{}", e.0);
        let e = parse("[solver]\nname = \"hg-ms\"\n", "s.toml").unwrap_err();
        assert!(e.0.starts_with("s.toml: no [problem] table"), "{}", e.0);
        let cfg = parse("[problem]\nname = \"circle-center\"\n", "p.toml").unwrap();
        assert_eq!(cfg.solver.name(), "hg-ms");
        let e = parse(
            "[problem]\nname = \"circle-center\"\n[budget]\nmax_iter = 0\n",
            "z.toml",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("z.toml:4: budget.max_iter: must be at least 1"),
            "{}",
            e.0
        );
        let e = parse(
            "[problem]\nname = \"circle-center\"\n[solver]\nname = \"aid\"\nlower_steps = 100000000000\n",
            "n.toml",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("n.toml:5: solver.lower_steps: must be at most 10000000"),
            "{}",
            e.0
        );
        let e = parse("[problem]\nname = \"sphere\"\nd = 100000000\n", "d.toml").unwrap_err();
        assert!(
            e.0.starts_with("d.toml:3: problem.d: must be in 1..=1000000"),
            "{}",
            e.0
        );
        let e = parse(
            "[problem]\nname = \"circle-center\"\nradiuss = 2.0\n",
            "a.toml",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("a.toml:3:") && e.0.contains("radiuss"),
            "{}",
            e.0
        );
        // Type errors inside every registered solver's and problem's table are located at their
        // line (the registries drive the probing: no solver or problem is left out).
        for info in bilevel_solvers::registry::SOLVERS {
            let text = format!(
                "[problem]\nname = \"quadratic\"\n[solver]\nname = \"{}\"\nno_such_knob = 1\n",
                info.name
            );
            let e = parse(&text, "k.toml").unwrap_err();
            assert!(
                e.0.starts_with("k.toml:5:") && e.0.contains("no_such_knob"),
                "{}: {}",
                info.name,
                e.0
            );
        }
        for (name, _) in bilevel_problems::catalogue() {
            let text = format!("[problem]\nname = \"{name}\"\nno_such_parameter = 1\n");
            let e = parse(&text, "q.toml").unwrap_err();
            assert!(
                e.0.starts_with("q.toml:3:") && e.0.contains("no_such_parameter"),
                "{name}: {}",
                e.0
            );
        }
        let e = parse("[problem]\nname = \"no-such\"\n", "b.toml").unwrap_err();
        assert!(
            e.0.starts_with("b.toml:") && e.0.contains("no-such"),
            "{}",
            e.0
        );
        let e = parse(
            "[problem]\nname = \"circle-center\"\nb = [1.0, 2.0, 3.0]\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(e.0.contains("c.toml:3") && e.0.contains("b"), "{}", e.0);
        let e = parse("[solver]\nname = \"hg-ms\"\nlower_lr = -0.1\n", "d.toml").unwrap_err();
        assert!(
            e.0.starts_with("d.toml:3:") && e.0.contains("solver.lower_lr"),
            "{}",
            e.0
        );
        let e = parse(
            "[solver]\nname = \"aid\"\n[solver.upper]\nlr = \"fast\"\n",
            "e.toml",
        )
        .unwrap_err();
        assert!(e.0.starts_with("e.toml:4: solver.upper.lr:"), "{}", e.0);
        let e = parse("[problem]\nname = \"affine\"\nd = \"big\"\n", "g.toml").unwrap_err();
        assert!(
            e.0.starts_with("g.toml:3: problem.d:") && e.0.contains("invalid type"),
            "{}",
            e.0
        );
        let e = parse("[budget]\nmax_iter = -3\n", "h.toml").unwrap_err();
        assert!(e.0.starts_with("h.toml:2: budget.max_iter:"), "{}", e.0);
        let e = parse("[budget]\nmax_iter = 10\nmax_itr = 3\n", "f.toml").unwrap_err();
        assert!(
            e.0.starts_with("f.toml:3:") && e.0.contains("max_itr"),
            "{}",
            e.0
        );
    }
}
