//! Problem configuration as read from TOML by the CLI, and construction of the oracle.
//!
//! A configuration is a table whose `name` key selects the problem; the other keys are the
//! problem's parameters plus four common keys (all optional):
//!
//! ```toml
//! name = "circle-center"
//! radius = 1.5                 # problem parameters ...
//! b = [0.3, -0.2]
//! derivatives = "analytic"     # or "dual", "finite-difference"
//! fd_eps = 6e-6                # only with derivatives = "finite-difference"
//! x0 = [2.0, 1.0]              # upper start
//! y0 = [3.5, 1.0]              # lower start
//! ```
//!
//! Unknown keys are rejected (with the key's name in the message), and every invalid value is
//! reported as `problem.FIELD: explanation (got VALUE)`.

use crate::error::{check_vector, ProblemError};
use crate::wrapper::{Derivatives, ProblemDef, WithDerivatives};
use bilevel_core::derivatives::DEFAULT_FD_EPS;
use bilevel_core::Bilevel;
use bilevel_data::DataSource;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::affine::AffineConfig;
pub use crate::bome_toys::{CoresetConfig, MinimaxConfig, NonSingletonConfig, PointList};
pub use crate::circle::{CircleCenterConfig, CircleRadiusConfig};
pub use crate::holder::HolderConfig;
pub use crate::kinks::{CircleSineConfig, CircleTieConfig};
pub use crate::ml::config::{
    HyperCleaningConfig, OverparamCleaningConfig, OverparamRegselConfig, RegselLogisticConfig,
    RegselMultinomialConfig,
};
pub use crate::quadratic::QuadraticConfig;
pub use crate::sphere::SphereConfig;
pub use crate::vpbgd_toy::VpbgdToyConfig;

/// The `derivatives` key: where `H v` and `J v` come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DerivativesChoice {
    /// Hand-written exact products (the default).
    #[default]
    Analytic,
    /// Exact products from dual numbers over the generic gradient.
    #[serde(alias = "dual-numbers")]
    Dual,
    /// Central finite differences of the gradient (approximate), step `fd_eps`.
    FiniteDifference,
}

/// What building a problem may need from outside its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildContext {
    /// The data cache: where named data sets fetched by `bilevel data fetch` are read from.
    pub cache_dir: PathBuf,
}

impl BuildContext {
    /// A context reading named data sets from `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        BuildContext {
            cache_dir: cache_dir.into(),
        }
    }

    /// The context the CLI uses: the cache is [`bilevel_data::default_cache_dir`]
    /// (`$BILEVEL_DATA_DIR`, else the user's cache folder).
    pub fn from_env() -> Self {
        BuildContext::new(bilevel_data::default_cache_dir())
    }
}

/// How a problem's configuration builds the problem: one impl per problem, in the problem's own
/// file, next to its configuration struct. The registry ([`ProblemConfig`]) dispatches to it.
pub trait BuildProblem {
    /// Validate the parameters and construct the oracle and its starting point (data-backed
    /// problems load named sets from `ctx.cache_dir`).
    fn build(&self, ctx: &BuildContext) -> Result<BuiltProblem, ProblemError>;

    /// The `data` key of a data-backed problem, whose relative file paths
    /// [`ProblemConfig::resolve_paths`] resolves; `None` (the default) for a problem without
    /// data.
    fn data_mut(&mut self) -> Option<&mut Option<DataSource>> {
        None
    }
}

/// Defines a struct of optional keys, as a configuration table: every field is an `Option`
/// (absent: `None`, not serialised), unknown keys are rejected.
macro_rules! optional_keys {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fdoc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}
pub(crate) use optional_keys;

/// Defines a configuration struct: the given problem parameters, then the four common keys
/// (`derivatives`, `fd_eps`, `x0`, `y0`). Every key is optional; unknown keys are rejected.
/// The struct gets `finish(def, default_x0, default_y0)`, which wraps a [`ProblemDef`](
/// crate::wrapper::ProblemDef) with the configured derivative source and starts.
macro_rules! problem_config {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $crate::config::optional_keys! {
            $(#[$doc])*
            $name {
                $( $(#[$fdoc])* $field: $ty, )*
                /// Source of `H v` and `J v` (default `"analytic"`).
                derivatives: $crate::config::DerivativesChoice,
                /// Relative finite-difference step (only with `derivatives = "finite-difference"`;
                /// default [`DEFAULT_FD_EPS`](bilevel_core::derivatives::DEFAULT_FD_EPS)).
                fd_eps: f64,
                /// Upper-level start (problem-specific default).
                x0: Vec<f64>,
                /// Lower-level start (problem-specific default).
                y0: Vec<f64>,
            }
        }

        impl $name {
            /// Wrap `def` with the configured derivative source and starts.
            fn finish<P: $crate::wrapper::ProblemDef + Send + Sync + 'static>(
                &self,
                def: P,
                default_x0: Vec<f64>,
                default_y0: Vec<f64>,
            ) -> Result<$crate::config::BuiltProblem, $crate::error::ProblemError> {
                $crate::config::finish_def(
                    def,
                    (self.derivatives, self.fd_eps),
                    (self.x0.as_deref(), default_x0),
                    (self.y0.as_deref(), default_y0),
                )
            }
        }
    };
}
pub(crate) use problem_config;

/// Generates [`ProblemConfig`] (its variants, `name`, `with_defaults`, `table_error`, `build`,
/// `resolve_paths`) and the catalogue from one row per problem:
/// `[module] Variant => "name", ConfigType, "description";`, where `ConfigType` implements
/// [`BuildProblem`] and the optional `[module]` declares the problem's file as a module; the
/// generated items live in a private module `rows` and are re-exported here. Invoked once, in
/// `lib.rs`.
macro_rules! problem_registry {
    ($( $([$module:ident])? $variant:ident => $name:literal, $config:ty, $desc:literal; )*) => {
        $( $( pub mod $module; )? )*

        /// The items generated from the rows, re-exported by [`config`].
        mod rows {
        use super::*;
        use $crate::config::{BuildContext, BuildProblem, BuiltProblem};
        use $crate::error::ProblemError;
        use bilevel_data::DataSource;
        use serde::{Deserialize, Serialize};
        /// A problem configuration, selected by its `name` key (kebab-case problem id).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name")]
        pub enum ProblemConfig {
            $(
                #[doc = $desc]
                #[serde(rename = $name)]
                $variant($config),
            )*
        }

        /// Problem ids and one-line descriptions (for `bilevel list`), in registry order.
        pub(crate) const CATALOGUE: &[(&str, &str)] = &[ $( ($name, $desc), )* ];

        impl ProblemConfig {
            /// The problem id (the `name` key).
            pub fn name(&self) -> &'static str {
                match self {
                    $( ProblemConfig::$variant(_) => $name, )*
                }
            }

            /// The configuration of problem `name` with every parameter at its default, or
            /// `None` for an unknown id (see [`catalogue`]).
            pub fn with_defaults(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(ProblemConfig::$variant(<$config>::default())), )*
                    _ => None,
                }
            }

            /// Parse `table` — the `[problem]` table's own TOML text without its `name` key —
            /// as problem `name`'s configuration and return the parser's error (with its span in
            /// `table`), if any; `None` also for an unknown name. Used to locate errors inside
            /// the tagged table, whose positions serde loses when it buffers the enum.
            pub fn table_error(name: &str, table: &str) -> Option<toml::de::Error> {
                match name {
                    $( $name => toml::from_str::<$config>(table).err(), )*
                    _ => None,
                }
            }

            /// Validate the parameters and construct the oracle and its starting point, reading
            /// named data sets from `ctx.cache_dir` ([`BuildProblem::build`]).
            pub fn build_with(&self, ctx: &BuildContext) -> Result<BuiltProblem, ProblemError> {
                match self {
                    $( ProblemConfig::$variant(c) => BuildProblem::build(c, ctx), )*
                }
            }

            /// The `data` key of a data-backed problem ([`BuildProblem::data_mut`]).
            pub(crate) fn data_mut(&mut self) -> Option<&mut Option<DataSource>> {
                match self {
                    $( ProblemConfig::$variant(c) => c.data_mut(), )*
                }
            }
        }
        }
    };
}
pub(crate) use problem_registry;

pub use crate::rows::ProblemConfig;
use crate::rows::CATALOGUE;

impl Default for ProblemConfig {
    /// `circle-center` with all defaults.
    fn default() -> Self {
        ProblemConfig::CircleCenter(CircleCenterConfig::default())
    }
}

impl ProblemConfig {
    /// [`ProblemConfig::build_with`] the CLI's context ([`BuildContext::from_env`]).
    pub fn build(&self) -> Result<BuiltProblem, ProblemError> {
        self.build_with(&BuildContext::from_env())
    }

    /// Resolve relative paths of a `[problem.data]` file source against `base` (the folder of
    /// the config file that named them); named sets and absolute paths are left alone.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(data) = self.data_mut() {
            if let Some(d) = data.take() {
                *data = Some(d.with_base_dir(base));
            }
        }
    }
}

/// Every problem's id with a one-line description.
pub fn catalogue() -> &'static [(&'static str, &'static str)] {
    CATALOGUE
}

/// A constructed problem with its starting point.
pub struct BuiltProblem {
    /// The oracle.
    pub problem: Box<dyn Bilevel<Y = Vec<f64>> + Send + Sync>,
    /// Upper-level start (length `dim_x`).
    pub x0: Vec<f64>,
    /// Lower-level start (length `dim_y`).
    pub y0: Vec<f64>,
}

impl std::fmt::Debug for BuiltProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltProblem")
            .field("problem", &self.problem.name())
            .field("derivatives", &self.problem.derivatives())
            .field("x0", &self.x0)
            .field("y0", &self.y0)
            .finish()
    }
}

/// The common keys' part of building a closed-form problem (what `finish` of a
/// `problem_config!` struct calls): wrap `def` with the derivative source from
/// `(derivatives, fd_eps)` and take the starts `(given, default)` for `x0` and `y0`.
pub(crate) fn finish_def<P: ProblemDef + Send + Sync + 'static>(
    def: P,
    (choice, fd_eps): (Option<DerivativesChoice>, Option<f64>),
    (x0, default_x0): (Option<&[f64]>, Vec<f64>),
    (y0, default_y0): (Option<&[f64]>, Vec<f64>),
) -> Result<BuiltProblem, ProblemError> {
    let derivatives = resolve_derivatives(choice, fd_eps)?;
    let x0 = resolve_start("x0", x0, def.dim_x(), default_x0)?;
    let y0 = resolve_start("y0", y0, def.dim_y(), default_y0)?;
    Ok(BuiltProblem {
        problem: Box::new(WithDerivatives::new(def, derivatives)?),
        x0,
        y0,
    })
}

/// The derivative source from the `derivatives` and `fd_eps` keys.
fn resolve_derivatives(
    choice: Option<DerivativesChoice>,
    fd_eps: Option<f64>,
) -> Result<Derivatives, ProblemError> {
    match choice.unwrap_or_default() {
        DerivativesChoice::FiniteDifference => Ok(Derivatives::FiniteDifference {
            eps: fd_eps.unwrap_or(DEFAULT_FD_EPS),
        }),
        other => match fd_eps {
            Some(eps) => Err(ProblemError::invalid(
                "fd_eps",
                format!(
                    "only used with derivatives = \"finite-difference\" (derivatives is {:?})",
                    other
                ),
                eps,
            )),
            None => Ok(match other {
                DerivativesChoice::Dual => Derivatives::Dual,
                _ => Derivatives::Analytic,
            }),
        },
    }
}

/// A starting point: the given one (checked) or the default.
fn resolve_start(
    field: &'static str,
    given: Option<&[f64]>,
    expected: usize,
    default: Vec<f64>,
) -> Result<Vec<f64>, ProblemError> {
    match given {
        Some(v) => {
            check_vector(field, v, expected)?;
            Ok(v.to_vec())
        }
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_build_errors, build_problem as build, parse_problem as parse};
    use bilevel_core::DerivativeKind;

    #[test]
    fn every_problem_parses_and_builds_with_defaults() {
        type Case = (&'static str, usize, usize, &'static [f64], &'static [f64]);
        let expected: [Case; 12] = [
            ("circle-center", 2, 2, &[2.0, 1.0], &[3.5, 1.0]),
            ("circle-radius", 1, 2, &[0.3], &[1.0, 0.0]),
            ("affine", 3, 20, &[0.5, 0.5, 0.5], &[0.0; 20]),
            ("sphere", 3, 3, &[1.0, 2.0, -0.5], &[1.0, 0.0, 0.0]),
            ("circle-tie", 1, 2, &[0.5], &[0.6, 0.8]),
            ("circle-sine", 1, 2, &[1.0], &[0.6, 0.8]),
            ("holder", 1, 2, &[0.5], &[0.0, 1.0]),
            ("coreset", 4, 2, &[0.0; 4], &[0.0, 3.0]),
            ("non-singleton", 1, 2, &[0.0], &[0.0, 0.0]),
            ("minimax", 1, 1, &[4.0], &[4.0]),
            ("vpbgd-toy", 1, 1, &[1.0], &[0.0]),
            ("quadratic", 100, 100, &[0.0; 100], &[0.0; 100]),
        ];
        // Known answers for the closed-form problems, looked up by name (a problem added to the
        // registry is checked by tests/catalogue.rs without a line here); the machine-learning
        // problems load data, see their own tests.
        for (name, m, d, x0, y0) in expected {
            let (_, desc) = catalogue()
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name} not in the catalogue"));
            assert!(!desc.is_empty());
            let cfg = parse(&format!("name = \"{name}\"")).unwrap();
            assert_eq!(cfg.name(), name);
            assert_eq!(Some(&cfg), ProblemConfig::with_defaults(name).as_ref());
            let b = cfg.build().unwrap();
            assert_eq!(b.problem.name(), name);
            assert_eq!((b.problem.dim_x(), b.problem.dim_y()), (m, d));
            assert_eq!((b.x0.as_slice(), b.y0.as_slice()), (x0, y0));
            assert_eq!(b.problem.derivatives(), DerivativeKind::Analytic);
            assert!(b.problem.reference_intrinsic_dimension().is_some());
            // The closed forms are available at the default start.
            assert!(b.problem.reference_grad_phi(&b.x0).is_some(), "{name}");
        }
        assert_eq!(ProblemConfig::with_defaults("nope"), None);
        assert_eq!(ProblemConfig::default().name(), "circle-center");
    }

    #[test]
    fn parameters_are_read() {
        let b = build(
            "name = \"circle-center\"\nradius = 2\nb = [1.0, -1.0]\nx0 = [4.0, 3.0]\ny0 = [0.0, 0.0]",
        )
        .unwrap();
        // ∇φ = (‖x − b‖ − R)(x − b)/‖x − b‖ with x − b = (3, 4): (5 − 2)/5 · (3, 4).
        let g = b.problem.reference_grad_phi(&b.x0).unwrap();
        assert!(
            (g[0] - 1.8).abs() < 1e-15 && (g[1] - 2.4).abs() < 1e-15,
            "{g:?}"
        );
        assert_eq!(b.y0, vec![0.0, 0.0]);

        let b = build("name = \"circle-radius\"\na = [3.0, 4.0]").unwrap();
        let g = b.problem.reference_grad_phi(&[0.0]).unwrap();
        assert!((g[0] + 5.0).abs() < 1e-15);

        let b = build("name = \"affine\"\nd = 12\nr = 4\nm = 2\nseed = 9").unwrap();
        assert_eq!((b.problem.dim_x(), b.problem.dim_y()), (2, 12));
        assert_eq!(b.problem.reference_intrinsic_dimension(), Some(8));

        let b = build("name = \"sphere\"\nd = 5").unwrap();
        assert_eq!(b.x0, vec![1.0, 2.0, -0.5, 1.0, 2.0]);
        assert_eq!(b.problem.reference_intrinsic_dimension(), Some(4));

        let b = build("name = \"holder\"\np = 1\nx0 = [0.25]").unwrap();
        assert_eq!(b.problem.reference_grad_phi(&b.x0), Some(vec![-0.25]));
    }

    #[test]
    fn derivative_sources_are_selected() {
        let b = build("name = \"sphere\"\nderivatives = \"dual\"").unwrap();
        assert_eq!(b.problem.derivatives(), DerivativeKind::DualNumbers);
        let b = build("name = \"sphere\"\nderivatives = \"dual-numbers\"").unwrap();
        assert_eq!(b.problem.derivatives(), DerivativeKind::DualNumbers);
        let b = build("name = \"sphere\"\nderivatives = \"finite-difference\"").unwrap();
        assert_eq!(
            b.problem.derivatives(),
            DerivativeKind::FiniteDifference {
                eps: DEFAULT_FD_EPS
            }
        );
        let b =
            build("name = \"holder\"\nderivatives = \"finite-difference\"\nfd_eps = 1e-4").unwrap();
        assert_eq!(
            b.problem.derivatives(),
            DerivativeKind::FiniteDifference { eps: 1e-4 }
        );
        // The FD products are usable through the boxed oracle.
        let (x, y, v) = (vec![0.5], vec![0.3, 2.0], vec![1.0, -1.0]);
        let mut hv = vec![0.0; 2];
        b.problem.hvp(&x, &y, &v, &mut hv);
        assert!(
            (hv[0]).abs() < 1e-12 && (hv[1] + 1.0).abs() < 1e-9,
            "{hv:?}"
        );
        let e = build("name = \"sphere\"\nderivatives = \"symbolic\"").unwrap_err();
        assert!(
            e.contains("symbolic") && e.contains("finite-difference"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let e = parse("name = \"circle-center\"\nradiuss = 2").unwrap_err();
        assert!(e.contains("unknown field `radiuss`"), "{e}");
        assert!(
            e.contains("radius"),
            "the message lists the valid keys: {e}"
        );
        let e = parse("name = \"circle-tie\"\nradius = 2").unwrap_err();
        assert!(e.contains("unknown field `radius`"), "{e}");
        let e = parse("name = \"affine\"\nseeds = 1").unwrap_err();
        assert!(e.contains("unknown field `seeds`"), "{e}");
        let e = parse("name = \"circle-centre\"").unwrap_err();
        assert!(e.contains("circle-centre"), "{e}");
        let e = parse("radius = 2.0").unwrap_err();
        assert!(e.contains("name"), "{e}");
        let e = parse("name = \"sphere\"\nd = \"three\"").unwrap_err();
        assert!(e.contains("three") || e.contains("invalid type"), "{e}");
    }

    #[test]
    fn invalid_values_are_rejected_with_field_and_value() {
        let cases: [(&str, &str); 14] = [
            (
                "name = \"circle-center\"\nb = [1.0, 2.0, 3.0]",
                "problem.b: expected 2 entries, got 3",
            ),
            (
                "name = \"circle-center\"\nradius = -1.0",
                "problem.radius: must be positive (got -1.0)",
            ),
            (
                "name = \"circle-center\"\nradius = 0",
                "problem.radius: must be positive (got 0.0)",
            ),
            (
                "name = \"circle-center\"\nradius = nan",
                "problem.radius: must be a finite number (got NaN)",
            ),
            (
                "name = \"circle-center\"\nb = [1.0, inf]",
                "problem.b: entry 1 must be a finite number (got inf)",
            ),
            (
                "name = \"circle-radius\"\na = [0.0, 0.0]",
                "problem.a: must be nonzero",
            ),
            (
                "name = \"circle-center\"\nx0 = [1.0]",
                "problem.x0: expected 2 entries, got 1",
            ),
            (
                "name = \"affine\"\ny0 = [0.0, 0.0]",
                "problem.y0: expected 20 entries, got 2",
            ),
            (
                "name = \"affine\"\nd = 5\nr = 5",
                "problem.r: must satisfy 1 ≤ r < d = 5",
            ),
            ("name = \"affine\"\nr = 0", "problem.r: must satisfy"),
            (
                "name = \"holder\"\np = 0",
                "problem.p: must be an integer in 1..=64 (got 0)",
            ),
            (
                "name = \"sphere\"\nderivatives = \"finite-difference\"\nfd_eps = -1e-6",
                "problem.fd_eps: must be positive (got -1e-6)",
            ),
            (
                "name = \"sphere\"\nderivatives = \"finite-difference\"\nfd_eps = 0.0",
                "problem.fd_eps: must be positive (got 0.0)",
            ),
            (
                "name = \"sphere\"\nfd_eps = 1e-6",
                "problem.fd_eps: only used with derivatives = \"finite-difference\"",
            ),
        ];
        assert_build_errors(cases);
        let e = build("name = \"sphere\"\nx0 = [1.0, nan, 0.0]").unwrap_err();
        assert_eq!(e, "problem.x0: entry 1 must be a finite number (got NaN)");
    }

    #[test]
    fn configs_round_trip_and_built_problems_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        let cfg = parse("name = \"affine\"\nd = 8\nr = 2\nderivatives = \"dual\"").unwrap();
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(parse(&text).unwrap(), cfg);
        let b = cfg.build().unwrap();
        assert_send_sync(&b.problem);
        assert!(format!("{b:?}").contains("affine"));
    }

    #[test]
    fn toys_parse_build_and_validate() {
        // Points as pairs or flat, target.
        let pairs = build(
            "name = \"coreset\"\npoints = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]\ntarget = [2.0, 2.0]",
        )
        .unwrap();
        let flat =
            build("name = \"coreset\"\npoints = [0, 0, 1, 0, 0, 1]\ntarget = [2.0, 2.0]").unwrap();
        assert_eq!((pairs.problem.dim_x(), flat.problem.dim_x()), (3, 3));
        assert_eq!(pairs.x0, vec![0.0; 3]);
        let w = [0.3, -0.2, 0.9];
        assert_eq!(
            pairs.problem.reference_phi(&w),
            flat.problem.reference_phi(&w)
        );
        // dist((2, 2), hull)² = (1.5² + 1.5²): φ* = 0.45.
        let phi_star = pairs.problem.reference_phi_star().unwrap();
        assert!((phi_star - 0.45).abs() < 1e-15, "{phi_star}");
        let d = build("name = \"coreset\"").unwrap();
        assert_eq!(d.problem.reference_phi_star(), Some(0.1 * 7.2));
        assert_eq!(d.problem.reference_x_star(), None);

        let b = build("name = \"non-singleton\"\nx0 = [0.25]").unwrap();
        assert_eq!(b.problem.reference_grad_phi(&b.x0), Some(vec![-0.75]));
        assert_eq!(b.problem.reference_x_star(), Some(vec![1.0]));

        let b = build("name = \"minimax\"\nbound = 3.0").unwrap();
        let mut y = vec![5.0];
        b.problem.project_y(&mut y);
        assert_eq!(y, vec![3.0]);
        assert_eq!(b.problem.reference_phi(&b.x0), Some(12.0));

        for (src, key) in [
            ("name = \"coreset\"\nweights = [1.0]", "weights"),
            ("name = \"non-singleton\"\nbound = 1.0", "bound"),
            ("name = \"minimax\"\nbounds = 1.0", "bounds"),
        ] {
            let e = parse(src).unwrap_err();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
        let cases: [(&str, &str); 8] = [
            (
                "name = \"coreset\"\npoints = [1.0, 2.0, 3.0]",
                "problem.points: a flat list needs an even number",
            ),
            (
                "name = \"coreset\"\npoints = []",
                "problem.points: must have 1 to 256 points (got 0)",
            ),
            (
                "name = \"coreset\"\ntarget = [1.0]",
                "problem.target: expected 2 entries, got 1",
            ),
            (
                "name = \"coreset\"\nx0 = [0.0, 0.0]",
                "problem.x0: expected 4 entries, got 2",
            ),
            (
                "name = \"non-singleton\"\ny0 = [0.0]",
                "problem.y0: expected 2 entries, got 1",
            ),
            (
                "name = \"minimax\"\nbound = 0.0",
                "problem.bound: must be positive (got 0.0)",
            ),
            (
                "name = \"minimax\"\nbound = -2.0",
                "problem.bound: must be positive (got -2.0)",
            ),
            (
                "name = \"minimax\"\ny0 = [1.0, 2.0]",
                "problem.y0: expected 1 entries, got 2",
            ),
        ];
        assert_build_errors(cases);
        let b = build("name = \"vpbgd-toy\"\nx0 = [2.0]\nderivatives = \"dual\"").unwrap();
        assert_eq!(b.x0, vec![2.0]);
        assert_eq!(b.problem.reference_y(&b.x0), Some(vec![-2.0]));
        assert!(b.problem.reference_x_star().is_some());
        let e = parse("name = \"vpbgd-toy\"\nbox = [0.0, 3.0]").unwrap_err();
        assert!(e.contains("unknown field `box`"), "{e}");
        let e = build("name = \"vpbgd-toy\"\nx0 = [1.0, 2.0]").unwrap_err();
        assert!(
            e.starts_with("problem.x0: expected 1 entries, got 2"),
            "{e}"
        );
        let cfg = parse("name = \"coreset\"\npoints = [[1.0, 2.0], [0.0, 0.0]]").unwrap();
        assert_eq!(parse(&toml::to_string(&cfg).unwrap()).unwrap(), cfg);
    }

    #[test]
    fn quadratic_config_parses_builds_and_validates() {
        let b = build(
            "name = \"quadratic\"\nn_inner = 40\nn_outer = 30\ndim_y = 8\ndim_x = 5\nmu = 0.2\nl = 2.0\nseed = 4\nridge = 0.5",
        )
        .unwrap();
        assert_eq!((b.problem.dim_x(), b.problem.dim_y()), (5, 8));
        assert_eq!((b.x0, b.y0), (vec![0.0; 5], vec![0.0; 8]));
        let xs = b.problem.reference_x_star().unwrap();
        let g = b.problem.reference_grad_phi(&xs).unwrap();
        assert!(bilevel_core::vector::norm(&g) < 1e-10, "{g:?}");
        assert_eq!(b.problem.reference_phi_star(), b.problem.reference_phi(&xs));
        assert_eq!(b.problem.reference_intrinsic_dimension(), Some(0));
        let e = parse("name = \"quadratic\"\nn = 10").unwrap_err();
        assert!(e.contains("unknown field `n`"), "{e}");
        let e = parse("name = \"quadratic\"\nL = 1.0").unwrap_err();
        assert!(e.contains("unknown field `L`"), "{e}");
        let base = [
            ("dim_y", "5"),
            ("dim_x", "3"),
            ("n_inner", "20"),
            ("n_outer", "10"),
        ];
        let cases: [(&str, &str, &str); 9] = [
            (
                "n_inner",
                "0",
                "problem.n_inner: must be at least dim_y = 5",
            ),
            (
                "n_inner",
                "3",
                "problem.n_inner: must be at least dim_y = 5",
            ),
            (
                "n_outer",
                "0",
                "problem.n_outer: must be at least 1 (got 0)",
            ),
            ("dim_y", "0", "problem.dim_y: must be in 1..=2000 (got 0)"),
            ("mu", "0.0", "problem.mu: must be positive (got 0.0)"),
            ("mu", "-0.1", "problem.mu: must be positive (got -0.1)"),
            (
                "mu",
                "2.0",
                "problem.mu: must satisfy 0 < mu ≤ l = 1 (got 2.0)",
            ),
            ("ridge", "0.0", "problem.ridge: must be positive (got 0.0)"),
            ("x0", "[0.0, 0.0]", "problem.x0: expected 3 entries, got 2"),
        ];
        for (key, value, msg) in cases {
            let mut src = format!("name = \"quadratic\"\n{key} = {value}\n");
            for (k, v) in base.iter().filter(|(k, _)| *k != key) {
                src.push_str(&format!("{k} = {v}\n"));
            }
            assert_build_errors([(src, msg)]);
        }
        let e = parse("name = \"quadratic\"\nn_inner = -3").unwrap_err();
        assert!(e.contains("-3") || e.contains("invalid value"), "{e}");
    }
}
