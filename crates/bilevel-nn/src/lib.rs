//! Neural models on [candle](https://github.com/huggingface/candle) for bilevel optimisation.
//!
//! - [`Params`] holds a model's named parameters as candle [`Var`](candle_core::Var)s;
//!   [`ParamVec`] is a point or direction in parameter space and implements the project's
//!   [`Vector`](bilevel_core::Vector) trait, so CG / MINRES / Lanczos run on model parameters.
//! - [`derivatives`] gives gradients and **exact Hessian-vector products by double backward**
//!   (`Hv = ∇_θ ⟨∇_θ L, v⟩`), with a labelled central finite-difference fallback, both
//!   optionally restricted to a parameter subset.
//! - Models implementing [`LanguageModel`]: a decoder-only [`Transformer`], an n-gram
//!   [`MlpLm`] and a [`Bigram`] table; [`ByteTokenizer`] is the byte-level tokenizer.
//!
//! # Double backward
//!
//! candle detaches gradients during backward unless the environment variable
//! `CANDLE_GRAD_DO_NOT_DETACH=1` is set; the variable is read **once per thread**, at that
//! thread's first backward. Call [`enable_double_backward`] at program start (the `bilevel`
//! binary does) before any backward on any thread; [`derivatives::hvp`] refuses to run when
//! it is not set instead of silently returning zeros.

#![deny(missing_docs)]

pub mod bpe;
pub mod derivatives;
mod error;
pub mod llama;
pub mod lm;
pub mod mlp;
pub mod optim;
pub mod params;
pub mod tokenizer;
pub mod transformer;

pub use derivatives::{gradient, hvp, hvp_fd, HvpMode};
pub use error::{NnError, Result};
pub use lm::{Bigram, LanguageModel, TokenBatch};
pub use mlp::{MlpLm, MlpLmConfig};
pub use optim::{AdamW, AdamWConfig};
pub use params::{ParamVec, Params};
pub use tokenizer::{ByteTokenizer, Tokenize};
pub use transformer::{Transformer, TransformerConfig};

/// The environment variable that makes candle keep the backward graph (see the crate docs).
pub const DO_NOT_DETACH_VAR: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Sets `CANDLE_GRAD_DO_NOT_DETACH=1` so that gradients keep their graph and a second
/// backward gives exact Hessian-vector products. Call it at program start, before any
/// backward on any thread (each thread reads the variable at its first backward).
pub fn enable_double_backward() {
    if !double_backward_enabled() {
        // Edition 2021: `set_var` is safe; call this before spawning threads that read it.
        std::env::set_var(DO_NOT_DETACH_VAR, "1");
    }
}

/// Whether `CANDLE_GRAD_DO_NOT_DETACH` is set to a value candle treats as on.
pub fn double_backward_enabled() -> bool {
    matches!(std::env::var(DO_NOT_DETACH_VAR), Ok(s) if !s.is_empty() && s != "0")
}
