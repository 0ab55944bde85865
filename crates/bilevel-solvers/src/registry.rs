//! The solver registry: one row per solver (its module, name, configuration type, constructor,
//! one-line description), in the `solver_registry!` invocation at the top of `lib.rs`. The
//! configuration enum [`SolverConfig`] (the `[solver]` table, selected by its `name` key), its
//! name, validation, construction, the catalogue [`SOLVERS`] printed by `bilevel list` and the
//! located parsing of a `[solver]` table are all generated from those rows.
//!
//! Adding a solver: write its file `src/<module>.rs` (a config type with `Default`, `Serialize`,
//! `Deserialize` and `validate(&self, prefix) -> Result<(), String>`; a type implementing
//! [`BilevelSolver`](crate::BilevelSolver) with a `new(config, dim_x)` constructor) and add one
//! row `[<module>] Variant => "name", …;` — the `[<module>]` part declares the file as a module.
//! The CLI, `bilevel list`, located config errors and the catalogue test (`tests/catalogue.rs`)
//! pick it up with no other edit; `tests/new_solver/check.sh` does exactly this with a small
//! solver and checks each of them.

use crate::hgms;

/// One catalogue entry: the solver's id in configurations and its one-line description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolverInfo {
    /// Identifier (the `name` key of a `[solver]` table).
    pub name: &'static str,
    /// What the solver does, in one line.
    pub description: &'static str,
}

/// Largest accepted integer knob of a solver (steps, iterations, batch sizes, samples): beyond
/// it a configuration error rather than a run that never ends or an allocation failure.
/// The same cap as HG-MS's own validation.
pub const MAX_SOLVER_COUNT: u64 = hgms::MAX_COUNT as u64;

/// `prefix.key ≤ MAX_SOLVER_COUNT` for every integer leaf of `v` (seeds excepted).
pub(crate) fn check_counts(prefix: &str, v: &serde_json::Value) -> Result<(), String> {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                check_counts(&format!("{prefix}.{k}"), x)?;
            }
            Ok(())
        }
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(c) if c > MAX_SOLVER_COUNT && !prefix.ends_with("seed") => Err(format!(
                "{prefix}: must be at most {MAX_SOLVER_COUNT} (got {c})"
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Generates [`SolverConfig`], its methods and [`SOLVERS`] from one row per solver:
/// `[module] Variant => "name", ConfigType, "description", |config, dim_x| constructor;` where
/// the optional `[module]` declares `pub mod module;` (the solver's file); the generated items
/// live in a private module `rows` and are re-exported here. Invoked once, in `lib.rs`.
macro_rules! solver_registry {
    ($( $([$module:ident])? $variant:ident => $name:literal, $config:ty, $desc:literal,
        |$c:ident, $m:ident| $build:expr; )*) => {
        $( $( pub mod $module; )? )*

        /// The items generated from the rows, re-exported by [`registry`].
        mod rows {
        use super::*;
        use $crate::registry::{check_counts, SolverInfo};
        use serde::{Deserialize, Serialize};
        /// Which solver, with its parameters: the `[solver]` table, selected by its `name` key.
        #[derive(Clone, Debug, Deserialize, Serialize)]
        #[serde(tag = "name")]
        pub enum SolverConfig {
            $(
                #[doc = $desc]
                #[serde(rename = $name)]
                $variant($config),
            )*
        }

        /// Every solver with its one-line description, in registry order (`bilevel list`).
        pub const SOLVERS: &[SolverInfo] = &[
            $( SolverInfo { name: $name, description: $desc }, )*
        ];

        impl SolverConfig {
            /// Identifier used in configs and outputs.
            pub fn name(&self) -> &'static str {
                match self {
                    $( SolverConfig::$variant(_) => $name, )*
                }
            }

            /// The solver `name` with every parameter at its default (`None` for an unknown name).
            pub fn with_defaults(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(SolverConfig::$variant(<$config>::default())), )*
                    _ => None,
                }
            }

            /// Validate values (errors name the field under `solver.`): every integer knob
            /// (steps, iterations, batch sizes, samples, …) is at most [`MAX_SOLVER_COUNT`],
            /// then the solver's own checks.
            pub fn validate(&self) -> Result<(), String> {
                if let Ok(v) = serde_json::to_value(self) {
                    check_counts("solver", &v)?;
                }
                match self {
                    $( SolverConfig::$variant(c) => c.validate("solver"), )*
                }
            }

            /// Construct the configured solver for a problem with `dim_x` upper variables.
            pub fn build<P>(&self, dim_x: usize) -> Box<dyn BilevelSolver<P>>
            where
                P: Bilevel<Y = Vec<f64>> + ?Sized,
            {
                match self {
                    $( SolverConfig::$variant(config) => {
                        let $c = config.clone();
                        let $m = dim_x;
                        Box::new($build)
                    } )*
                }
            }

            /// Parse `table` — the `[solver]` table's own TOML text without its `name` key — as
            /// solver `name`'s configuration and return the parser's error (with its span in
            /// `table`), if any; `None` also for an unknown name. Used to locate errors inside
            /// the tagged table, whose positions serde loses when it buffers the enum.
            pub fn table_error(name: &str, table: &str) -> Option<toml::de::Error> {
                match name {
                    $( $name => toml::from_str::<$config>(table).err(), )*
                    _ => None,
                }
            }
        }
        }
    };
}

pub use crate::rows::{SolverConfig, SOLVERS};

impl Default for SolverConfig {
    /// HG-MS with every parameter at its default.
    fn default() -> Self {
        SolverConfig::HgMs(hgms::HgmsConfig::default())
    }
}

/// Most vector entries a solver may be configured to store (5·10⁸ f64, 4 GB).
pub const MAX_STORED_ENTRIES: u64 = 500_000_000;

impl SolverConfig {
    /// Memory that a solver configuration stores in proportion to dim y, checked once the problem
    /// is known and before the solver exists: ITD keeps its T + 1 iterates; HG-MS's Lanczos bases
    /// hold up to `min(limit, d)` vectors. The error names the field, the product and the cap.
    pub fn check_memory(&self, dim_y: usize) -> Result<(), String> {
        let d = dim_y as u64;
        let mut checks: Vec<(&str, u64)> = Vec::new();
        match self {
            SolverConfig::Itd(c) => checks.push(("solver.lower_steps", c.lower_steps as u64 + 1)),
            SolverConfig::HgMs(c) => {
                checks.push((
                    "solver.selection.projection_max_iter",
                    c.selection.projection_max_iter as u64,
                ));
                checks.push((
                    "solver.selection.curvature_max_iter",
                    c.selection.curvature_max_iter as u64,
                ));
                checks.push((
                    "solver.hypergradient.diagnostics.lanczos_max_iter",
                    c.hypergradient.diagnostics.lanczos_max_iter as u64,
                ));
            }
            _ => {}
        }
        for (field, vectors) in checks {
            let entries = vectors.min(d).saturating_mul(d);
            if entries > MAX_STORED_ENTRIES {
                return Err(format!(
                    "{field}: {vectors} stored vectors of dim y = {d} need {entries} entries, more than \
                     the cap of {MAX_STORED_ENTRIES} (4 GB); lower it"
                ));
            }
        }
        Ok(())
    }
}

/// The catalogue entry of solver `name`, if registered.
pub fn solver_info(name: &str) -> Option<&'static SolverInfo> {
    SOLVERS.iter().find(|s| s.name == name)
}
