//! # bilevel-core
//!
//! The mathematics of bilevel optimisation `min_x f(x, y*(x))`, `y*(x) ∈ argmin_y g(x, y)`:
//!
//! * [`oracle`]: the [`Bilevel`] oracle trait (values, gradients, `H v`, `J v`) and call counting;
//! * [`vector`]: the [`Vector`] space trait every iterative method is written against;
//! * [`krylov`]: CG (optionally shifted), MINRES with minimum-norm least-squares correction,
//!   truncated Neumann series and Lanczos, all generic over [`Vector`];
//! * [`hypergrad`]: the pseudoinverse hypergradient `∇_x f − J H^† ∇_y f` with diagnostics
//!   (Krylov residual, kernel component of `∇_y f`, intrinsic dimension of the solution manifold);
//! * [`manifold`]: second-order conditions of the selection on the solution manifold (the
//!   Riemannian Hessian of f on `S(x)`, its smallest eigenvalue by Lanczos on the tangent space);
//! * [`derivatives`]: exact products from dual numbers and a labelled finite-difference fallback;
//! * [`dense`]: small dense helpers on faer (symmetric eigendecomposition, pseudoinverse);
//! * [`rng`]: the deterministic random generator all seeds flow through;
//! * [`sampling`]: seeded minibatch samplers for finite sums (chunks reshuffled per pass, or
//!   uniform).

#![deny(missing_docs)]

pub mod adam;
pub mod alloc_count;
pub mod dense;
pub mod derivatives;
pub mod hypergrad;
pub mod krylov;
pub mod manifold;
pub mod oracle;
pub mod rng;
pub mod sampling;
pub mod vector;

pub use oracle::{Bilevel, Counted, DerivativeKind, Level, NamedArray, OracleCounts};
pub use sampling::{Batch, BatchSampler, Scheme};
pub use vector::Vector;
