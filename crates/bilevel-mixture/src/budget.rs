//! The reweighting budget, counted in token-passes.
//!
//! A forward pass over T tokens costs T; a backward pass 2T (the usual 1 : 2 ratio), so a
//! gradient costs 3T; a Hessian-vector product by double backward is a gradient plus the
//! backward of that gradient's graph, counted as two gradients, 6T.

use serde::{Deserialize, Serialize};

/// Token-passes spent and allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Allowed token-passes.
    pub total: u64,
    /// Spent so far.
    pub used: u64,
    /// Forward passes, in tokens.
    pub forward_tokens: u64,
    /// Gradients, in tokens.
    pub gradient_tokens: u64,
    /// Hessian-vector products, in tokens.
    pub hvp_tokens: u64,
}

impl Budget {
    /// A budget of `total` token-passes.
    pub fn new(total: u64) -> Self {
        Self {
            total,
            ..Self::default()
        }
    }
    /// Charges a forward pass over `tokens`.
    pub fn forward(&mut self, tokens: usize) {
        self.forward_tokens += tokens as u64;
        self.used += tokens as u64;
    }
    /// Charges a gradient (forward + backward) over `tokens`.
    pub fn gradient(&mut self, tokens: usize) {
        self.gradient_tokens += tokens as u64;
        self.used += 3 * tokens as u64;
    }
    /// Charges a Hessian-vector product over `tokens`.
    pub fn hvp(&mut self, tokens: usize) {
        self.hvp_tokens += tokens as u64;
        self.used += 6 * tokens as u64;
    }
    /// Whether the budget is spent.
    pub fn exhausted(&self) -> bool {
        self.used >= self.total
    }
    /// Fraction spent, in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            (self.used as f64 / self.total as f64).min(1.0)
        }
    }
}
