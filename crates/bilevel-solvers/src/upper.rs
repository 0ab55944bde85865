//! Upper-level steps shared by all solvers: plain gradient step, Adam (Kingma & Ba 2015), and
//! projection on a box `[lo, hi]^m`.

use bilevel_core::adam::{self, AdamRule};
use serde::{Deserialize, Serialize};

/// Update rule for `x`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpperMethod {
    /// `x ← x − α h`.
    Plain,
    /// Adam with bias correction: `m ← β₁m + (1−β₁)h`, `s ← β₂s + (1−β₂)h²`,
    /// `x ← x − α m̂/(√ŝ + ε)`.
    Adam,
}

/// Upper-step configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpperConfig {
    /// Step size α.
    pub lr: f64,
    /// Update rule.
    pub method: UpperMethod,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Optional box: every coordinate of `x` is projected on `[lower, upper]` after each step.
    pub lower: Option<f64>,
    /// See `lower`.
    pub upper: Option<f64>,
}

impl Default for UpperConfig {
    fn default() -> Self {
        UpperConfig {
            lr: 0.1,
            method: UpperMethod::Plain,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            lower: None,
            upper: None,
        }
    }
}

impl UpperConfig {
    /// Check values; the error names the field.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!(
                "{prefix}.lr: must be a positive number (got {})",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(format!(
                "{prefix}.beta1/beta2: must lie in [0, 1) (got {}, {})",
                self.beta1, self.beta2
            ));
        }
        if let (Some(lo), Some(hi)) = (self.lower, self.upper) {
            if lo > hi {
                return Err(format!(
                    "{prefix}.lower: {lo} exceeds {prefix}.upper = {hi}"
                ));
            }
        }
        Ok(())
    }
}

/// Upper optimizer with its state (Adam moments), serialisable for checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpperOptimizer {
    /// Configuration.
    pub config: UpperConfig,
    /// First moments.
    pub m: Vec<f64>,
    /// Second moments.
    pub s: Vec<f64>,
    /// Steps taken.
    pub t: u64,
}

impl UpperOptimizer {
    /// A fresh optimizer for an m-dimensional `x`.
    pub fn new(config: UpperConfig, m: usize) -> Self {
        UpperOptimizer {
            config,
            m: vec![0.0; m],
            s: vec![0.0; m],
            t: 0,
        }
    }

    /// Project `x` on the configured box.
    pub fn project(&self, x: &mut [f64]) {
        let lo = self.config.lower.unwrap_or(f64::NEG_INFINITY);
        let hi = self.config.upper.unwrap_or(f64::INFINITY);
        x.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
    }

    /// The configured step size α (`upper.lr`).
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// One step with hypergradient `h` and the configured step size α, then projection.
    pub fn step(&mut self, x: &mut [f64], h: &[f64]) {
        self.step_with(self.config.lr, x, h);
    }

    /// One step with hypergradient `h` and step size `lr` in place of α (a schedule `α_t`),
    /// then projection: `x ← Π(x − lr·h)` (plain) or `x ← Π(x − lr·m̂/(√ŝ + ε))` (Adam).
    pub fn step_with(&mut self, lr: f64, x: &mut [f64], h: &[f64]) {
        let c = &self.config;
        match c.method {
            UpperMethod::Plain => {
                self.t += 1;
                for (xi, hi) in x.iter_mut().zip(h) {
                    *xi -= lr * hi;
                }
            }
            UpperMethod::Adam => {
                let rule = AdamRule {
                    lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                };
                adam::step(&rule, &mut self.m, &mut self.s, &mut self.t, x, h);
            }
        }
        self.project(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_adam_and_box() {
        let mut o = UpperOptimizer::new(UpperConfig::default(), 2);
        let mut x = vec![1.0, -1.0];
        o.step(&mut x, &[2.0, -4.0]);
        assert_eq!(x, vec![0.8, -0.6]);
        // step_with(α_t) uses α_t in place of the configured α, which it leaves alone.
        let mut o2 = UpperOptimizer::new(UpperConfig::default(), 2);
        let mut x2 = vec![1.0, -1.0];
        o2.step_with(0.05, &mut x2, &[2.0, -4.0]);
        assert_eq!(x2, vec![0.9, -0.8]);
        assert_eq!((o2.lr(), o2.t), (0.1, 1));
        // Adam's first step moves each coordinate by lr·sign(h) (up to ε).
        let cfg = UpperConfig {
            method: UpperMethod::Adam,
            lr: 0.5,
            lower: Some(-0.2),
            upper: Some(10.0),
            ..Default::default()
        };
        let mut o = UpperOptimizer::new(cfg, 2);
        let mut x = vec![1.0, 0.0];
        o.step(&mut x, &[3.0, 1e-3]);
        assert!((x[0] - 0.5).abs() < 1e-7);
        assert_eq!(x[1], -0.2); // 0 − 0.5 = −0.5, projected to −0.2
        assert!(UpperConfig {
            lr: -1.0,
            ..Default::default()
        }
        .validate("upper")
        .unwrap_err()
        .contains("upper.lr"));
    }
}
