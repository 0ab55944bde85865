//! Configurations of the machine-learning problems (the `[problem]` table of a run).
//!
//! Every ML problem shares the data keys (all optional, with per-problem defaults):
//!
//! ```toml
//! name = "hyper-cleaning"
//! data = "fashion-mnist"     # a named set, or a [problem.data] table with format and path
//! train = 20000              # rows (integer) or a fraction of the pool (float in (0, 1])
//! validation = 5000          # drawn from the training pool too
//! test = 10000               # from the official test split when the source has one;
//!                            # omitted: all of it, or every row left in the pool
//! seed = 0                   # split (and corruption) seed
//! standardize = "scale"      # "zscore" | "log1p" | "none" | "scale"; fitted on train only
//! intercept = false          # append a constant-1 feature
//! x0 = -2.0                  # one number for every entry, or the full vector
//! y0 = 0.0                   # likewise
//! ```
//!
//! plus the problem's own keys (`corruption`, `reg`, `weights`, `per`). Unknown keys are
//! rejected; invalid values give `problem.FIELD: reason (got VALUE)`.

use super::data::{MlData, SplitSize, SplitSpec, Standardize};
use crate::config::BuildContext;
use crate::error::{check_vector, ProblemError};
use bilevel_data::DataSource;
use serde::{Deserialize, Serialize};

pub use super::cleaning::HyperCleaningConfig;
pub use super::logistic::RegselLogisticConfig;
pub use super::multinomial::RegselMultinomialConfig;
pub use super::overparam::{OverparamCleaningConfig, OverparamRegselConfig};

/// A start (`x0`, `y0`) of an ML problem: one number for every entry, or the whole vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Start {
    /// Every entry equal.
    All(f64),
    /// The full vector (length `dim_x` or `dim_y`).
    Each(Vec<f64>),
}

impl Start {
    /// The start as a vector of length `dim`; errors name `field`.
    pub fn resolve(&self, field: &'static str, dim: usize) -> Result<Vec<f64>, ProblemError> {
        match self {
            Start::All(v) => {
                check_vector(field, &[*v], 1)?;
                Ok(vec![*v; dim])
            }
            Start::Each(v) => {
                check_vector(field, v, dim)?;
                Ok(v.clone())
            }
        }
    }
}

/// Per-problem defaults of the data keys.
#[derive(Clone, Debug)]
pub(crate) struct DataDefaults {
    pub(crate) data: &'static str,
    pub(crate) train: SplitSize,
    pub(crate) validation: SplitSize,
    pub(crate) test: Option<SplitSize>,
    pub(crate) standardize: Standardize,
    pub(crate) intercept: bool,
    pub(crate) x0: f64,
}

/// Defines an ML configuration struct: the data keys, the given problem keys, then `x0`, `y0`.
macro_rules! ml_config {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $crate::config::optional_keys! {
            $(#[$doc])*
            $name {
                /// Data source: a named set (`"breast-cancer"`, `"spambase"`, `"fashion-mnist"`,
                /// …) or a `[problem.data]` table (see [`bilevel_data::DataSource`]).
                data: bilevel_data::DataSource,
                /// Training rows (count or fraction of the pool).
                train: $crate::ml::SplitSize,
                /// Validation rows (count or fraction of the pool).
                validation: $crate::ml::SplitSize,
                /// Test rows (default: the whole official test split, or the rest of the pool).
                test: $crate::ml::SplitSize,
                /// Seed of the split and of the corruption (default 0).
                seed: u64,
                /// Feature scaling, fitted on the training split.
                standardize: $crate::ml::Standardize,
                /// Append a constant-1 feature.
                intercept: bool,
                $( $(#[$fdoc])* $field: $ty, )*
                /// Upper-level start: a number for every entry or the full vector.
                x0: $crate::ml::config::Start,
                /// Lower-level start (default 0): a number for every entry or the full vector.
                y0: $crate::ml::config::Start,
            }
        }

        impl $name {
            /// Load (named sets from `ctx.cache_dir`), split and scale the data.
            fn prepare(
                &self,
                d: &$crate::ml::config::DataDefaults,
                ctx: &$crate::config::BuildContext,
            ) -> Result<$crate::ml::MlData, $crate::error::ProblemError> {
                let spec = $crate::ml::SplitSpec {
                    train: self.train.unwrap_or(d.train),
                    validation: self.validation.unwrap_or(d.validation),
                    test: self.test.or(d.test),
                    seed: self.seed.unwrap_or(0),
                    standardize: self.standardize.unwrap_or(d.standardize),
                    intercept: self.intercept.unwrap_or(d.intercept),
                };
                $crate::ml::config::prepare_data(self.data.as_ref(), d.data, &spec, ctx)
            }

            /// Box the problem with its starts.
            fn finish<P: bilevel_core::Bilevel<Y = Vec<f64>> + Send + Sync + 'static>(
                &self,
                p: P,
                d: &$crate::ml::config::DataDefaults,
            ) -> Result<$crate::config::BuiltProblem, $crate::error::ProblemError> {
                use $crate::ml::config::Start;
                let x0 = self.x0.clone().unwrap_or(Start::All(d.x0)).resolve("x0", p.dim_x())?;
                let y0 = self.y0.clone().unwrap_or(Start::All(0.0)).resolve("y0", p.dim_y())?;
                Ok($crate::config::BuiltProblem {
                    problem: Box::new(p),
                    x0,
                    y0,
                })
            }
        }
    };
}
pub(crate) use ml_config;

/// Load `data` (default: the named set `default_name`; named sets from `ctx.cache_dir`), then
/// split and scale it as `spec` says. A loading error names `problem.data` and the source.
pub(crate) fn prepare_data(
    data: Option<&DataSource>,
    default_name: &str,
    spec: &SplitSpec,
    ctx: &BuildContext,
) -> Result<MlData, ProblemError> {
    let source = data
        .cloned()
        .unwrap_or_else(|| DataSource::Named(default_name.to_string()));
    let loaded = source
        .load(&ctx.cache_dir)
        .map_err(|e| ProblemError::invalid("data", e.to_string(), source.name()))?;
    MlData::prepare(&loaded.name, &loaded.train, loaded.test.as_ref(), spec)
}

/// Per-problem defaults of `train = 0.5`, `validation = 0.25`, `standardize = "zscore"`,
/// `intercept = true` on the named set `data`, upper start `x0`.
pub(crate) fn small_defaults(data: &'static str, x0: f64) -> DataDefaults {
    DataDefaults {
        data,
        train: SplitSize::Fraction(0.5),
        validation: SplitSize::Fraction(0.25),
        test: None,
        standardize: Standardize::Zscore,
        intercept: true,
        x0,
    }
}

/// [`small_defaults`] on breast-cancer with `train = 20` rows (fewer than the features).
pub(crate) fn overparam_defaults(x0: f64) -> DataDefaults {
    DataDefaults {
        train: SplitSize::Count(20),
        ..small_defaults("breast-cancer", x0)
    }
}

/// `corruption` must be in `[0, 1]` (checked before the data are loaded).
pub(crate) fn check_fraction(c: f64) -> Result<(), ProblemError> {
    if c.is_finite() && (0.0..=1.0).contains(&c) {
        Ok(())
    } else {
        Err(ProblemError::invalid(
            "corruption",
            "must be a fraction in [0, 1]",
            c,
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ProblemConfig;
    use crate::ml::fdcheck::check_reference_gradient;
    use crate::testing::{assert_build_errors, build_problem as build, parse_problem as parse};
    use bilevel_core::vector::norm;
    use bilevel_data::DataSource;

    /// `Some(message)` when the named set is not in the cache (the caller skips).
    fn not_fetched(name: &str) -> Option<String> {
        match DataSource::Named(name.into()).load(&bilevel_data::default_cache_dir()) {
            Err(e) if e.is_not_fetched() => Some(e.to_string()),
            _ => None,
        }
    }

    #[test]
    fn ml_problems_build_from_toml_with_defaults() {
        type Case = (&'static str, &'static str, usize, usize, f64);
        let cases: [Case; 5] = [
            ("regsel-logistic", "", 31, 31, 0.0),
            ("regsel-multinomial", "", 3, 14 * 3, 0.0),
            (
                "hyper-cleaning",
                "data = \"breast-cancer\"\ntrain = 200\nvalidation = 100\ntest = 100",
                200,
                30 * 2,
                -2.0,
            ),
            ("overparam-regsel", "", 31, 31, 0.0),
            ("overparam-cleaning", "", 20, 31 * 2, -2.0),
        ];
        for (name, extra, m, d, x0) in cases {
            let src = format!("name = \"{name}\"\n{extra}");
            let cfg = parse(&src).unwrap();
            assert_eq!(cfg.name(), name);
            if extra.is_empty() {
                assert_eq!(Some(&cfg), ProblemConfig::with_defaults(name).as_ref());
            }
            assert!(crate::config::catalogue().iter().any(|(n, _)| *n == name));
            let b = cfg.build().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(b.problem.name(), name);
            assert_eq!((b.problem.dim_x(), b.problem.dim_y()), (m, d), "{name}");
            assert_eq!(b.x0, vec![x0; m]);
            assert_eq!(b.y0, vec![0.0; d]);
            assert!(b.problem.derivatives().is_exact());
            assert!(b.problem.reference_intrinsic_dimension().is_some());
            let metrics = b.problem.metrics(&b.x0, &b.y0);
            assert!(metrics.iter().any(|(k, _)| k == "test_accuracy"), "{name}");
            assert!(b.problem.export_arrays().len() >= 6);
            // Round trip.
            let text = toml::to_string(&cfg).unwrap();
            assert_eq!(parse(&text).unwrap(), cfg);
        }
        let b = build("name = \"overparam-regsel\"").unwrap();
        assert_eq!(b.problem.reference_intrinsic_dimension(), Some(31 - 20));
    }

    #[test]
    fn hyper_cleaning_defaults_to_fashion_mnist() {
        let cfg = parse("name = \"hyper-cleaning\"").unwrap();
        if let Some(msg) = not_fetched("fashion-mnist") {
            let e = cfg.build().unwrap_err().to_string();
            assert!(
                e.starts_with("problem.data: ") && e.contains("bilevel data fetch"),
                "{e}"
            );
            println!("skipping the fashion-mnist build: {msg}");
            return;
        }
        let b = cfg.build().unwrap();
        assert_eq!((b.problem.dim_x(), b.problem.dim_y()), (20_000, 7840));
        let a = b.problem.export_arrays();
        assert_eq!(a[4].shape, vec![10_000, 784]);
    }

    #[test]
    fn parameters_are_read() {
        let b = build(
            "name = \"regsel-logistic\"\nstandardize = \"log1p\"\nintercept = false\ntrain = 300\n\
             validation = 100\ntest = 50\nseed = 3\nx0 = -1.5\ny0 = 0.25",
        )
        .unwrap();
        assert_eq!((b.problem.dim_x(), b.x0[0], b.y0[0]), (30, -1.5, 0.25));
        let a = b.problem.export_arrays();
        assert_eq!(
            (a[0].shape.clone(), a[2].shape.clone(), a[4].shape.clone()),
            (vec![300, 30], vec![100, 30], vec![50, 30])
        );
        assert!(a[1].data.iter().all(|&t| t == 1.0 || t == -1.0));
        let b = build("name = \"regsel-multinomial\"\nper = \"feature\"\ndata = \"iris\"").unwrap();
        assert_eq!((b.problem.dim_x(), b.problem.dim_y()), (5, 15));
        let b = build(
            "name = \"hyper-cleaning\"\ndata = \"breast-cancer\"\ntrain = 100\nvalidation = 50\n\
             corruption = 0.3\nreg = 0.05\nweights = \"clip\"\nx0 = 0.5",
        )
        .unwrap();
        assert_eq!(b.x0, vec![0.5; 100]);
        let m = b.problem.metrics(&b.x0, &b.y0);
        let w = m.iter().find(|(k, _)| k == "clean_weight_mean").unwrap().1;
        assert_eq!(w, 0.5, "clip weights");
        let full: Vec<f64> = (0..31).map(|i| i as f64 * 0.01).collect();
        let src = format!("name = \"overparam-regsel\"\nx0 = {full:?}");
        assert_eq!(build(&src).unwrap().x0, full);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        for (name, key) in [
            ("regsel-logistic", "corruption"),
            ("regsel-multinomial", "weights"),
            ("hyper-cleaning", "regularisation"),
            ("overparam-regsel", "reg"),
            ("overparam-cleaning", "per"),
        ] {
            let e = parse(&format!("name = \"{name}\"\n{key} = 1")).unwrap_err();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
        let e = parse("name = \"hyper-cleaning\"\nstandardize = \"minmax\"").unwrap_err();
        assert!(e.contains("minmax"), "{e}");
        let e = parse("name = \"hyper-cleaning\"\nweights = \"softmax\"").unwrap_err();
        assert!(e.contains("softmax"), "{e}");
    }

    #[test]
    fn invalid_values_are_rejected_with_field_and_value() {
        let bc = "data = \"breast-cancer\"\ntrain = 100\nvalidation = 50";
        let cases: Vec<(String, &str)> = vec![
            (
                format!("name = \"hyper-cleaning\"\n{bc}\ncorruption = 1.5"),
                "problem.corruption: must be a fraction in [0, 1] (got 1.5)",
            ),
            (
                "name = \"overparam-cleaning\"\ncorruption = -0.1".into(),
                "problem.corruption: must be a fraction in [0, 1] (got -0.1)",
            ),
            (
                format!("name = \"hyper-cleaning\"\n{bc}\nreg = 0.0"),
                "problem.reg: must be positive (got 0.0)",
            ),
            (
                "name = \"regsel-logistic\"\ntrain = 0".into(),
                "problem.train: must be at least 1 row (got 0)",
            ),
            (
                "name = \"regsel-logistic\"\ntrain = 1000".into(),
                "problem.train: breast-cancer has only 569 rows to draw training rows from (got 1000)",
            ),
            (
                "name = \"regsel-logistic\"\ntrain = 1.5".into(),
                "problem.train: a fraction must be in (0, 1] (or give a row count as an integer) (got 1.5)",
            ),
            (
                "name = \"regsel-logistic\"\ntrain = 500\nvalidation = 100".into(),
                "problem.validation: train + validation exceed the 569 rows of breast-cancer",
            ),
            (
                "name = \"regsel-logistic\"\nx0 = [0.0, 1.0]".into(),
                "problem.x0: expected 31 entries, got 2",
            ),
            (
                "name = \"regsel-logistic\"\ny0 = nan".into(),
                "problem.y0: entry 0 must be a finite number (got NaN)",
            ),
            (
                "name = \"regsel-logistic\"\ndata = \"wine\"".into(),
                "problem.data: regsel-logistic needs a binary data set; wine has 3 classes",
            ),
            (
                "name = \"regsel-logistic\"\ndata = \"nope\"".into(),
                "problem.data: unknown data set 'nope'",
            ),
            (
                "name = \"overparam-regsel\"\ntrain = 40".into(),
                "problem.train: overparam-regsel needs fewer training rows than features (p = 31",
            ),
        ];
        assert_build_errors(cases);
    }

    /// On the embedded breast-cancer data (284 training rows, 31 features with the intercept),
    /// the implicit-formula hypergradient of regsel-logistic matches central differences of the
    /// exact φ (Newton–CG inner solves to ‖∇_y g‖ ≤ 1e-10).
    #[test]
    fn breast_cancer_regsel_hypergradient_matches_differences_of_phi() {
        let b = build("name = \"regsel-logistic\"").unwrap();
        let p = &b.problem;
        let x: Vec<f64> = (0..31).map(|j| -2.0 + 0.1 * j as f64).collect();
        let (g, fd) = check_reference_gradient(p.as_ref(), &x, 1e-4, 1e-5);
        assert!(norm(&g) > 1e-4, "{g:?} {fd:?}");
    }
}
