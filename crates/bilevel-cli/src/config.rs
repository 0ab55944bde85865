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

use bilevel_problems::ProblemConfig;
use bilevel_solvers::aid::AidConfig;
use bilevel_solvers::executor::Budget;
use bilevel_solvers::hgms::HgmsConfig;
use serde::Deserialize;
use std::path::Path;

/// Which solver, with its parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "name")]
pub enum SolverConfig {
    /// Select-then-differentiate.
    #[serde(rename = "hg-ms")]
    HgMs(HgmsConfig),
    /// Approximate implicit differentiation.
    #[serde(rename = "aid")]
    Aid(AidConfig),
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig::HgMs(HgmsConfig::default())
    }
}

impl SolverConfig {
    /// Identifier.
    pub fn name(&self) -> &'static str {
        match self {
            SolverConfig::HgMs(_) => "hg-ms",
            SolverConfig::Aid(_) => "aid",
        }
    }
    /// Validate values (errors name the field).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SolverConfig::HgMs(c) => c.validate("solver"),
            SolverConfig::Aid(c) => c.validate("solver"),
        }
    }
}

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
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            diagnostics_every: 1,
            checkpoint_every: 10,
            plot: true,
            record_x_max: 64,
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

/// The line where `key = …` is set (the last segment of a dotted field name), if it is.
pub fn find_key_line(text: &str, field: &str) -> Option<usize> {
    let key = field.rsplit('.').next()?.trim_matches('`');
    text.lines().position(|l| {
        let t = l.trim_start();
        t.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
    .map(|i| i + 1)
}

/// The field named in a serde message such as "unknown field `radiuss`, expected …".
fn quoted_field(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(&msg[start..end])
}

/// Parse `text` (read from `origin`) into a validated [`RunConfig`].
pub fn parse(text: &str, origin: &str) -> Result<RunConfig, ConfigError> {
    let cfg: RunConfig = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        // Prefer the exact key's line for unknown fields (the span may point at the table).
        let line = quoted_field(&msg)
            .filter(|_| msg.starts_with("unknown field"))
            .and_then(|f| find_key_line(text, f))
            .or_else(|| e.span().map(|s| line_col(text, s.start).0));
        match line {
            Some(l) => ConfigError(format!("{origin}:{l}: {msg}")),
            None => ConfigError(format!("{origin}: {msg}")),
        }
    })?;
    let semantic = |m: String| {
        let field = m.split(':').next().unwrap_or("");
        match find_key_line(text, field) {
            Some(l) => ConfigError(format!("{origin}:{l}: {m}")),
            None => ConfigError(format!("{origin}: {m}")),
        }
    };
    cfg.solver.validate().map_err(semantic)?;
    cfg.budget.validate("budget").map_err(semantic)?;
    // Building the problem validates its parameters (vector lengths, positivity).
    cfg.problem
        .build()
        .map_err(|e| semantic(e.to_string()))?;
    Ok(cfg)
}

/// Read and parse a configuration file.
pub fn load(path: &Path) -> Result<(RunConfig, String), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read config: {e}", path.display())))?;
    let cfg = parse(&text, &path.display().to_string())?;
    Ok((cfg, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_errors_name_file_line_and_field() {
        let cfg = parse("", "empty.toml").unwrap();
        assert_eq!(cfg.solver.name(), "hg-ms");
        let e = parse("[problem]\nname = \"circle-center\"\nradiuss = 2.0\n", "a.toml").unwrap_err();
        assert!(e.0.starts_with("a.toml:3:") && e.0.contains("radiuss"), "{}", e.0);
        let e = parse("[problem]\nname = \"no-such\"\n", "b.toml").unwrap_err();
        assert!(e.0.starts_with("b.toml:") && e.0.contains("no-such"), "{}", e.0);
        let e = parse("[problem]\nname = \"circle-center\"\nb = [1.0, 2.0, 3.0]\n", "c.toml")
            .unwrap_err();
        assert!(e.0.contains("c.toml:3") && e.0.contains("b"), "{}", e.0);
        let e = parse("[solver]\nname = \"hg-ms\"\nlower_lr = -0.1\n", "d.toml").unwrap_err();
        assert!(e.0.starts_with("d.toml:3:") && e.0.contains("solver.lower_lr"), "{}", e.0);
        let e = parse("[solver]\nname = \"aid\"\n[solver.upper]\nlr = \"fast\"\n", "e.toml")
            .unwrap_err();
        assert!(e.0.starts_with("e.toml:") && e.0.contains("lr"), "{}", e.0);
        let e = parse("[budget]\nmax_iter = 10\nmax_itr = 3\n", "f.toml").unwrap_err();
        assert!(e.0.starts_with("f.toml:3:") && e.0.contains("max_itr"), "{}", e.0);
    }
}
