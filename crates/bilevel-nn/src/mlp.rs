//! An n-gram MLP language model (Bengio et al., 2003): the logits at position t are
//! `W₂ gelu(W₁ [E x_t; E x_{t−1}; …; E x_{t−k+1}] + b₁) + b₂`, with positions before the
//! start padded by the last vocabulary token.

use bilevel_core::rng::Rng;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};
use crate::lm::LanguageModel;
use crate::params::Params;
use crate::transformer::{gelu, linear, normal};

/// Architecture of an [`MlpLm`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpLmConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Tokens of context `k` the MLP sees.
    pub order: usize,
    /// Embedding width.
    pub width: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Longest sequence accepted.
    pub context: usize,
}

/// An n-gram MLP language model; see the module docs.
#[derive(Clone, Debug)]
pub struct MlpLm {
    cfg: MlpLmConfig,
    params: Params,
}

impl MlpLm {
    /// A freshly initialised model (`N(0, 0.02²)` embeddings, `N(0, 1/fan_in)` weights,
    /// zero biases), all draws from `seed`.
    pub fn new(cfg: MlpLmConfig, seed: u64, dtype: DType, dev: &Device) -> Result<Self> {
        for (f, v) in [
            ("vocab", cfg.vocab),
            ("order", cfg.order),
            ("width", cfg.width),
            ("hidden", cfg.hidden),
            ("context", cfg.context),
        ] {
            if v == 0 {
                return Err(config_err(f, v, "must be positive"));
            }
        }
        let mut rng = Rng::new(seed);
        let fan = cfg.order * cfg.width;
        let mut p = Params::new();
        p.push(
            "emb",
            &normal(&mut rng, &[cfg.vocab, cfg.width], 0.02, dtype, dev)?,
        )?;
        p.push(
            "hidden.w",
            &normal(
                &mut rng,
                &[fan, cfg.hidden],
                (fan as f64).powf(-0.5),
                dtype,
                dev,
            )?,
        )?;
        p.push("hidden.b", &Tensor::zeros(cfg.hidden, dtype, dev)?)?;
        p.push(
            "out.w",
            &normal(
                &mut rng,
                &[cfg.hidden, cfg.vocab],
                (cfg.hidden as f64).powf(-0.5),
                dtype,
                dev,
            )?,
        )?;
        p.push("out.b", &Tensor::zeros(cfg.vocab, dtype, dev)?)?;
        Ok(Self { cfg, params: p })
    }
}

impl LanguageModel for MlpLm {
    fn params(&self) -> &Params {
        &self.params
    }
    fn vocab(&self) -> usize {
        self.cfg.vocab
    }
    fn context(&self) -> usize {
        self.cfg.context
    }
    fn logits(&self, inputs: &Tensor) -> Result<Tensor> {
        let (b, t) = inputs.dims2()?;
        let (k, pad) = (self.cfg.order, (self.cfg.vocab - 1) as u32);
        let x = inputs.to_vec2::<u32>()?;
        let mut ids = Vec::with_capacity(b * t * k);
        for row in &x {
            for pos in 0..t {
                for j in 0..k {
                    ids.push(if pos >= j { row[pos - j] } else { pad });
                }
            }
        }
        let ids = Tensor::from_vec(ids, b * t * k, inputs.device())?;
        let feats = self
            .params
            .get(0)
            .index_select(&ids, 0)?
            .reshape((b * t, k * self.cfg.width))?;
        let h = gelu(&linear(
            &feats,
            self.params.get(1),
            Some(self.params.get(2)),
        )?)?;
        let out = linear(&h, self.params.get(3), Some(self.params.get(4)))?;
        Ok(out.reshape((b, t, self.cfg.vocab))?)
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "mlp", "config": self.cfg, "parameters": self.params.numel()})
    }
}
