//! Machine-learning bilevel problems on real data (docs/PROBLEMS.md §E): regularisation selection
//! for logistic and multinomial regression, data hyper-cleaning, and over-parameterised variants
//! whose lower level has a manifold of minimisers.
//!
//! Every problem implements [`Bilevel`](bilevel_core::Bilevel) directly with `Y = Vec<f64>`
//! and exact, hand-written gradients, Hessian-vector products and cross products. The products
//! with the data matrix run as blocked passes over row blocks on faer's matmul
//! ([`kernels::Engine`]) with scratch preallocated at construction, so the oracles allocate
//! nothing after the first call. Data come from a [`bilevel_data::Dataset`] through the common
//! pipeline of [`data`]: stratified split with exact counts, scaling fitted on the training
//! split, optional intercept, seeded label corruption.

pub mod cleaning;
pub mod config;
pub mod data;
pub mod dense;
pub mod kernels;
pub mod logistic;
pub mod multinomial;
pub mod overparam;
pub mod reference;
pub mod small;
pub mod softmax;

#[cfg(test)]
pub(crate) mod fdcheck;

pub use cleaning::{HyperCleaning, SampleWeights};
pub use data::{Design, MlData, SplitSize, SplitSpec, Standardize};
pub use logistic::RegselLogistic;
pub use multinomial::{RegselMultinomial, StrengthPer};
pub use overparam::{OverparamCleaning, OverparamRegsel};

use kernels::{default_block_rows, default_threads, Engine};
use std::sync::{Mutex, MutexGuard};

/// Blocking and threading of the passes over a data matrix ([`kernels::Engine`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOptions {
    /// Rows per block.
    pub block_rows: usize,
    /// Worker threads (1 to 8).
    pub threads: usize,
    /// Passes over fewer than this many matrix entries `n·p` run on one thread.
    pub min_parallel: usize,
}

impl KernelOptions {
    /// Defaults for `p` columns: [`default_block_rows`], [`default_threads`],
    /// [`kernels::DEFAULT_MIN_PARALLEL`].
    pub fn default_for(p: usize) -> Self {
        KernelOptions {
            block_rows: default_block_rows(p),
            threads: default_threads(),
            min_parallel: kernels::DEFAULT_MIN_PARALLEL,
        }
    }

    /// An engine for `p` columns, right-hand sides of up to `kk` columns and back products of up
    /// to `kb` columns.
    pub fn engine(&self, p: usize, kk: usize, kb: usize) -> Engine {
        Engine::new(p, kk, kb, self.block_rows, self.threads).with_min_parallel(self.min_parallel)
    }
}

/// The first items of an ML problem's `impl Bilevel`: `Y = Vec<f64>`, and `name`, `dim_x`,
/// `dim_y` from the problem's inherent `shape()` ([`Shape`](crate::wrapper::Shape)), `zeros_y`
/// of length `dim_y`.
macro_rules! bilevel_shape {
    () => {
        type Y = Vec<f64>;

        fn name(&self) -> &str {
            self.shape().name
        }
        fn dim_x(&self) -> usize {
            self.shape().dim_x
        }
        fn dim_y(&self) -> usize {
            self.shape().dim_y
        }
        fn zeros_y(&self) -> Vec<f64> {
            vec![0.0; self.shape().dim_y]
        }
    };
}
pub(crate) use bilevel_shape;

/// `derivatives` (`Analytic`: hand-written products) and `sample_count` (the finite sums are the
/// splits: n training rows for g, m validation rows for f) of an ML problem's `impl Bilevel`.
macro_rules! split_sums {
    () => {
        fn derivatives(&self) -> bilevel_core::DerivativeKind {
            bilevel_core::DerivativeKind::Analytic
        }

        fn sample_count(&self, level: bilevel_core::Level) -> usize {
            match level {
                bilevel_core::Level::Lower => self.data.train.n,
                bilevel_core::Level::Upper => self.data.validation.n,
            }
        }
    };
}
pub(crate) use split_sums;

/// Push the held-out metrics `validation_accuracy`, `validation_loss` and, when there is a test
/// split, `test_accuracy`, `test_loss`; `eval(split)` gives a split's (accuracy, loss).
pub(crate) fn push_held_out_metrics<S>(
    out: &mut Vec<(String, f64)>,
    validation: S,
    test: Option<S>,
    mut eval: impl FnMut(S) -> (f64, f64),
) {
    let (accuracy, loss) = eval(validation);
    out.push(("validation_accuracy".to_string(), accuracy));
    out.push(("validation_loss".to_string(), loss));
    if let Some(t) = test {
        let (accuracy, loss) = eval(t);
        out.push(("test_accuracy".to_string(), accuracy));
        out.push(("test_loss".to_string(), loss));
    }
}

/// Lock a scratch mutex (a poisoned lock only means a panic elsewhere; the scratch is
/// overwritten by every pass, so it is still usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
