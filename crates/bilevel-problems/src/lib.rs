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

pub mod config;
pub mod error;
mod shell;
pub mod wrapper;

// The problem catalogue: one row per problem (`[module]` declares a file the first time a row
// needs it, then the variant, its id, its configuration type and a one-line description).
// `ProblemConfig`, its building, `bilevel list` and located config errors come from here; adding a
// problem is its file and its row.
config::problem_registry! {
    [circle] CircleCenter => "circle-center", circle::CircleCenterConfig,
        "circle of radius R centred at x (k = 1); f = ½‖y − b‖², φ = ½(‖x − b‖ − R)²";
    CircleRadius => "circle-radius", circle::CircleRadiusConfig,
        "circle of radius e^x about 0 (k = 1); f = ⟨a, y⟩ + ½x², φ = −‖a‖e^x + ½x²";
    [affine] Affine => "affine", affine::AffineConfig,
        "affine subspace {A y = B x} (k = d − r), quadratic f; exact answer from the KKT system";
    [sphere] Sphere => "sphere", sphere::SphereConfig,
        "unit sphere in R^d (k = d − 1); f = ⟨x, y⟩, φ = −‖x‖ (kink at x = 0)";
    [kinks] CircleTie => "circle-tie", kinks::CircleTieConfig,
        "failure case: ties make kinks; unit circle, f = −y₁² + x y₁, φ = −1 − |x|";
    CircleSine => "circle-sine", kinks::CircleSineConfig,
        "failure case: kinks at every kπ; unit circle, f = sin(x) y₁, φ = −|sin x|";
    [holder] Holder => "holder", holder::HolderConfig,
        "failure case: degenerate selection; g = ½y₂², f = y₁^{2p}/(2p) − x y₁, ∇φ Hölder-1/(2p−1)";
    [bome_toys] Coreset => "coreset", bome_toys::CoresetConfig,
        "BOME toy: softmax weights of 4 points, g = ‖Σ p_i c_i − y‖², f = 0.1‖y − y₀‖², φ* = 0.72 in the limit";
    NonSingleton => "non-singleton", bome_toys::NonSingletonConfig,
        "BOME toy: S(w) = {y₁ = w}, y₂ free (k = 1); f = ½(w − y₂)² + ½(y₁ − 1)², φ = ½(w − 1)²";
    Minimax => "minimax", bome_toys::MinimaxConfig,
        "BOME toy: f = y w, g = −y w, y in the box [−10, 10] (projected); φ = 10|w|, w* = 0";
    [vpbgd_toy] VpbgdToy => "vpbgd-toy", vpbgd_toy::VpbgdToyConfig,
        "V-PBGD toy: g = (x + y)² + x sin²(x + y) (PL, not strongly convex), S(x) = {−x}, x ∈ [0, 3]";
    [quadratic] Quadratic => "quadratic", quadratic::QuadraticConfig,
        "quadratic benchmark: rank-one samples, Hessian spectrum in [μ, L], exact y*, ∇φ, x*, φ*";
    [ml] RegselLogistic => "regsel-logistic", ml::config::RegselLogisticConfig,
        "per-feature L2 strengths e^x of binary logistic regression, chosen on validation loss \
         (breast-cancer; spambase, files); exact y*, φ, ∇φ by Newton–CG";
    RegselMultinomial => "regsel-multinomial", ml::config::RegselMultinomialConfig,
        "L2 strengths per class or per feature of softmax regression, chosen on validation loss \
         (wine; any labelled set); exact y*, φ, ∇φ by Newton–CG";
    HyperCleaning => "hyper-cleaning", ml::config::HyperCleaningConfig,
        "one weight σ(x_i) per training sample, corrupted labels, linear softmax model, ridge \
         r‖Y‖² (fashion-mnist 20000/5000/10000; any set); exact y*, φ, ∇φ by Newton–CG";
    OverparamRegsel => "overparam-regsel", ml::config::OverparamRegselConfig,
        "ridgeless least squares with per-feature scales e^x, n < p (k = p − n): optimistic φ \
         is constant, gradient descent's selection depends on x (breast-cancer, train 20)";
    OverparamCleaning => "overparam-cleaning", ml::config::OverparamCleaningConfig,
        "sample-weighted interpolating least squares on one-hot labels, n < p (k = (p − n)·classes); \
         S(x) and φ constant: optimistic vs min-norm selection (breast-cancer, train 20)";
}

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
