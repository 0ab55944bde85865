//! # bilevel-problems
//!
//! Bilevel problems with exact answers, the project's correctness oracles (docs/PROBLEMS.md §A):
//! lower levels whose solution set is a manifold (`circle-center`, `circle-radius`, `affine`,
//! `sphere`) and the failure cases that the select-then-differentiate theory predicts
//! (`circle-tie`, `circle-sine`: ties make kinks; `holder`: degenerate selection); the toys of
//! the BOME paper (`coreset`, `non-singleton`, `minimax` with a box-constrained lower level,
//! docs/PROBLEMS.md §B) and of the V-PBGD paper (`vpbgd-toy`, §C); and the stochastic `quadratic`
//! benchmark with rank-one samples and exact `y*`, `∇φ`, `x*`, `φ*` (§D). The [`ml`] module has
//! the machine-learning problems on real data (§E): `regsel-logistic`, `regsel-multinomial`,
//! `hyper-cleaning`, and the over-parameterised `overparam-regsel` and `overparam-cleaning`.
//!
//! Each problem is a [`ProblemDef`] (values, analytic gradients and products, closed-form φ, ∇φ,
//! y* and intrinsic dimension) and a
//! [`GenericLowerGradient`](bilevel_core::derivatives::GenericLowerGradient) (`∇_y g`, `∇_x g`
//! written once over any scalar). [`WithDerivatives`] makes it a
//! [`Bilevel`](bilevel_core::Bilevel) oracle whose `H v` and `J v` are analytic, dual-number or
//! finite-difference products ([`Derivatives`]).
//!
//! From a configuration (as the CLI reads it from TOML):
//!
//! ```
//! use bilevel_problems::ProblemConfig;
//! let cfg: ProblemConfig = ProblemConfig::default(); // circle-center, R = 1.5, b = (0.3, −0.2)
//! let built = cfg.build().expect("valid config");
//! let g = built.problem.reference_grad_phi(&built.x0).expect("x0 ≠ b");
//! assert!((g[0] - 0.47454821).abs() < 1e-7 && (g[1] - 0.33497520).abs() < 1e-7);
//! ```

#![deny(missing_docs)]

pub mod affine;
pub mod bome_toys;
pub mod circle;
pub mod config;
pub mod error;
pub mod holder;
pub mod kinks;
pub mod ml;
pub mod quadratic;
mod shell;
pub mod sphere;
pub mod vpbgd_toy;
pub mod wrapper;

#[cfg(test)]
mod testing;

pub use affine::Affine;
pub use bome_toys::{Coreset, Minimax, NonSingleton};
pub use circle::{CircleCenter, CircleRadius};
pub use config::{
    catalogue, AffineConfig, BuildContext, BuildProblem, BuiltProblem, CircleCenterConfig,
    CircleRadiusConfig, CircleSineConfig, CircleTieConfig, CoresetConfig, DerivativesChoice,
    HolderConfig, MinimaxConfig, NonSingletonConfig, PointList, ProblemConfig, QuadraticConfig,
    SphereConfig, VpbgdToyConfig,
};
pub use error::ProblemError;
pub use holder::Holder;
pub use kinks::{CircleSine, CircleTie};
pub use ml::config::{
    HyperCleaningConfig, OverparamCleaningConfig, OverparamRegselConfig, RegselLogisticConfig,
    RegselMultinomialConfig,
};
pub use ml::{
    HyperCleaning, OverparamCleaning, OverparamRegsel, RegselLogistic, RegselMultinomial,
    SampleWeights, StrengthPer,
};
pub use quadratic::{AveragedMatrices, Level, Quadratic, QuadraticParams, SampleFactors};
pub use sphere::Sphere;
pub use vpbgd_toy::VpbgdToy;
pub use wrapper::{Derivatives, ProblemDef, Shape, WithDerivatives};
