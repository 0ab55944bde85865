//! AdamW (Loshchilov & Hutter, 2019) on a parameter subset:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)` with bias-corrected `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.

use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};
use crate::params::{ParamVec, Params};

/// Settings of [`AdamW`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// β₁.
    #[serde(default = "b1")]
    pub beta1: f64,
    /// β₂.
    #[serde(default = "b2")]
    pub beta2: f64,
    /// ε.
    #[serde(default = "eps")]
    pub eps: f64,
    /// Decoupled weight decay λ.
    #[serde(default)]
    pub weight_decay: f64,
    /// Clip the gradient to this global norm first (0: no clipping).
    #[serde(default = "clip")]
    pub clip_norm: f64,
}

fn b1() -> f64 {
    0.9
}
fn b2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn clip() -> f64 {
    1.0
}

impl AdamWConfig {
    /// Default moments with learning rate `lr`.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            beta1: b1(),
            beta2: b2(),
            eps: eps(),
            weight_decay: 0.0,
            clip_norm: clip(),
        }
    }

    /// Checks the settings; errors name the field.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let f = |s: &str| format!("{prefix}{s}");
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(config_err(&f("lr"), self.lr, "must be positive and finite"));
        }
        for (n, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(config_err(&f(n), b, "must lie in [0, 1)"));
            }
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(config_err(&f("eps"), self.eps, "must be positive"));
        }
        if self.weight_decay.is_nan()
            || self.weight_decay < 0.0
            || self.clip_norm.is_nan()
            || self.clip_norm < 0.0
        {
            return Err(config_err(
                &f("weight_decay/clip_norm"),
                format!("{}/{}", self.weight_decay, self.clip_norm),
                "must be non-negative",
            ));
        }
        Ok(())
    }
}

/// AdamW state for the parameters `sel` of one model.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Settings.
    pub cfg: AdamWConfig,
    /// First moments.
    pub m: ParamVec,
    /// Second moments.
    pub v: ParamVec,
    /// Steps taken.
    pub t: u64,
    sel: Vec<usize>,
}

impl AdamW {
    /// Zero moments for the parameters `sel`.
    pub fn new(cfg: AdamWConfig, params: &Params, sel: &[usize]) -> Result<Self> {
        Ok(Self {
            cfg,
            m: ParamVec::zeros(params, sel)?,
            v: ParamVec::zeros(params, sel)?,
            t: 0,
            sel: sel.to_vec(),
        })
    }

    /// The parameter indices this optimiser updates.
    pub fn selection(&self) -> &[usize] {
        &self.sel
    }

    /// One step with gradient `g` at learning rate `cfg.lr · lr_scale`; returns the gradient
    /// norm before clipping.
    pub fn step(&mut self, params: &Params, g: &ParamVec, lr_scale: f64) -> Result<f64> {
        use bilevel_core::Vector;
        let gn = g.norm();
        let c = if self.cfg.clip_norm > 0.0 && gn > self.cfg.clip_norm {
            self.cfg.clip_norm / gn
        } else {
            1.0
        };
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t.min(i32::MAX as u64) as i32);
        let bc2 = 1.0 - b2.powi(self.t.min(i32::MAX as u64) as i32);
        let lr = self.cfg.lr * lr_scale;
        for (k, &i) in self.sel.iter().enumerate() {
            let gk = g.0[k].affine(c, 0.0)?;
            let m = (self.m.0[k].affine(b1, 0.0)? + gk.affine(1.0 - b1, 0.0)?)?;
            let v = (self.v.0[k].affine(b2, 0.0)? + gk.sqr()?.affine(1.0 - b2, 0.0)?)?;
            let upd = (m.affine(1.0 / bc1, 0.0)?
                / v.affine(1.0 / bc2, 0.0)?
                    .sqrt()?
                    .affine(1.0, self.cfg.eps)?)?;
            let theta = params.get(i).detach();
            let theta = theta.affine(1.0 - lr * self.cfg.weight_decay, 0.0)?;
            params.vars()[i].set(&(theta - upd.affine(lr, 0.0)?)?)?;
            self.m.0[k] = m;
            self.v.0[k] = v;
        }
        Ok(gn)
    }
}
