//! Models from a config, mixture losses and gradients, training on a mixture, evaluation.

use bilevel_core::rng::Rng;
use bilevel_nn::derivatives::{gradient, scalar};
use bilevel_nn::llama::Llama;
use bilevel_nn::lm::{mean_loss, row_losses, token_nll};
use bilevel_nn::{
    AdamW, AdamWConfig, LanguageModel, MlpLm, MlpLmConfig, ParamVec, TokenBatch, Transformer,
    TransformerConfig,
};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{eval_windows, MixtureData, TokenStream};
use crate::error::{config_err, MixtureError, Result};

/// The model architecture of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    /// A decoder-only transformer.
    Transformer {
        /// Blocks.
        layers: usize,
        /// Width.
        width: usize,
        /// Heads.
        heads: usize,
        /// Context (window length T).
        context: usize,
        /// MLP width multiple.
        #[serde(default = "four")]
        mlp_ratio: usize,
    },
    /// A pretrained Llama-architecture model from a GGUF file (`gguf = "smollm2"`: SmolLM2-135M
    /// from the data cache), its tokenizer from the GGUF metadata; only the last
    /// `train_blocks` blocks (and the final norm) are trained. "From scratch" in the final
    /// training means from the pretrained weights (seeds change the data order only).
    Pretrained {
        /// A GGUF path, or `"smollm2"`.
        gguf: String,
        /// Blocks fine-tuned (from the top).
        train_blocks: usize,
        /// Window length T.
        context: usize,
        /// The data cache `gguf = "smollm2"` is read from (and fetched into on first use): not
        /// a configuration key; the caller sets it with [`ModelSpec::set_cache_dir`] (the CLI
        /// passes its data cache, `$BILEVEL_DATA_DIR` or the user's cache folder).
        #[serde(skip)]
        cache_dir: Option<std::path::PathBuf>,
    },
    /// An n-gram MLP.
    Mlp {
        /// Tokens of context.
        order: usize,
        /// Embedding width.
        width: usize,
        /// Hidden width.
        hidden: usize,
        /// Window length T.
        context: usize,
    },
}

fn four() -> usize {
    4
}

impl ModelSpec {
    /// The training window length T.
    pub fn context(&self) -> usize {
        match self {
            Self::Transformer { context, .. }
            | Self::Mlp { context, .. }
            | Self::Pretrained { context, .. } => *context,
        }
    }

    /// A freshly initialised model for `vocab` tokens from `seed`.
    pub fn build(
        &self,
        vocab: usize,
        seed: u64,
        dtype: DType,
        dev: &Device,
    ) -> Result<Box<dyn LanguageModel>> {
        Ok(match self {
            Self::Transformer {
                layers,
                width,
                heads,
                context,
                mlp_ratio,
            } => Box::new(Transformer::new(
                TransformerConfig {
                    vocab,
                    layers: *layers,
                    width: *width,
                    heads: *heads,
                    context: *context,
                    mlp_ratio: *mlp_ratio,
                },
                seed,
                dtype,
                dev,
            )?),
            Self::Pretrained {
                gguf, train_blocks, ..
            } => {
                let m = Llama::from_gguf(&self.gguf_path(gguf)?, dtype, dev)?;
                if m.config().vocab != vocab {
                    return Err(config_err(
                        "model.gguf",
                        gguf,
                        &format!(
                            "the model's vocabulary ({}) differs from the tokenizer's ({vocab})",
                            m.config().vocab
                        ),
                    ));
                }
                let sel = m
                    .params()
                    .select_prefixes(&m.last_blocks_prefixes(*train_blocks));
                m.train_only(&sel);
                Box::new(m)
            }
            Self::Mlp {
                order,
                width,
                hidden,
                context,
            } => Box::new(MlpLm::new(
                MlpLmConfig {
                    vocab,
                    order: *order,
                    width: *width,
                    hidden: *hidden,
                    context: *context,
                },
                seed,
                dtype,
                dev,
            )?),
        })
    }

    /// Set the data cache a pretrained model's `gguf = "smollm2"` is read from (no effect on
    /// the other architectures).
    pub fn set_cache_dir(&mut self, dir: std::path::PathBuf) {
        if let Self::Pretrained { cache_dir, .. } = self {
            *cache_dir = Some(dir);
        }
    }

    /// The GGUF file of a pretrained model: `"smollm2"` is SmolLM2-135M in the data cache set by
    /// [`ModelSpec::set_cache_dir`] (fetched on first use; an error when none is set), anything
    /// else a path.
    pub fn gguf_path(&self, gguf: &str) -> Result<std::path::PathBuf> {
        if gguf != "smollm2" {
            return Ok(std::path::PathBuf::from(gguf));
        }
        match self {
            Self::Pretrained {
                cache_dir: Some(dir),
                ..
            } => Ok(bilevel_nn::llama::fetch_smollm2(dir)?),
            _ => Err(config_err(
                "model.gguf",
                gguf,
                "needs the data cache folder to fetch into (ModelSpec::set_cache_dir)",
            )),
        }
    }

    /// Parameter-name prefixes of the Krylov subset: the last `k` blocks (transformer) or
    /// the output layer (MLP); `k = 0` means every parameter.
    pub fn subset_prefixes(&self, k: usize) -> Option<Vec<String>> {
        if k == 0 {
            return None;
        }
        match self {
            Self::Transformer { layers, .. } => {
                let mut v: Vec<String> = (layers.saturating_sub(k)..*layers)
                    .map(|l| format!("blocks.{l}."))
                    .collect();
                v.push("ln_f.".into());
                Some(v)
            }
            Self::Mlp { .. } => Some(vec!["out.".into(), "hidden.".into()]),
            // Only the fine-tuned blocks are trainable; the Krylov solve covers them.
            Self::Pretrained { .. } => None,
        }
    }
}

/// `Σ_i p_i mean_loss(batch_i)` (+ regulariser): the lower-level objective on one batch per
/// source. Also returns the per-source losses. Errors are the model layer's, so the function can
/// serve directly as the loss of [`bilevel_nn::hvp`].
pub fn mixture_loss(
    model: &dyn LanguageModel,
    batches: &[TokenBatch],
    p: &[f64],
) -> bilevel_nn::Result<(Tensor, Vec<f64>)> {
    let mut total: Option<Tensor> = None;
    let mut each = Vec::with_capacity(p.len());
    for (b, &pi) in batches.iter().zip(p) {
        let l = mean_loss(model, b)?;
        each.push(scalar(&l)?);
        let t = l.affine(pi, 0.0)?;
        total = Some(match total {
            None => t,
            Some(a) => (a + t)?,
        });
    }
    let mut total = total.ok_or_else(|| bilevel_nn::NnError::Config {
        field: "sources".into(),
        value: "0".into(),
        reason: "no sources".into(),
    })?;
    if let Some(r) = model.regulariser()? {
        total = (total + r)?;
    }
    Ok((total, each))
}

/// Tokens in a set of batches.
pub fn tokens(batches: &[TokenBatch]) -> usize {
    batches.iter().map(|b| b.tokens()).sum()
}

/// Per-source mean losses (forward only).
pub fn source_losses(model: &dyn LanguageModel, batches: &[TokenBatch]) -> Result<Vec<f64>> {
    batches
        .iter()
        .map(|b| scalar(&mean_loss(model, b)?).map_err(Into::into))
        .collect()
}

/// Per-token losses `(rows·T)` of a batch, as host values.
pub fn token_losses(model: &dyn LanguageModel, b: &TokenBatch) -> Result<Vec<f64>> {
    let l = token_nll(&model.logits(&b.inputs)?, &b.targets)?;
    Ok(l.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// A model with its optimiser on every parameter.
pub struct Trainee {
    /// The model.
    pub model: Box<dyn LanguageModel>,
    /// Its optimiser.
    pub opt: AdamW,
}

impl Trainee {
    /// Wraps `model` with a fresh AdamW.
    pub fn new(model: Box<dyn LanguageModel>, cfg: AdamWConfig) -> Result<Self> {
        let all = model.trainable();
        let opt = AdamW::new(cfg, model.params(), &all)?;
        Ok(Self { model, opt })
    }

    /// One AdamW step along `g`; errors on a non-finite gradient, naming `who` and `step`.
    pub fn step(&mut self, g: &ParamVec, lr_scale: f64, who: &str, step: u64) -> Result<()> {
        let gn = self.opt.step(self.model.params(), g, lr_scale)?;
        if !gn.is_finite() {
            return Err(MixtureError::NonFinite {
                method: who.to_string(),
                step,
                quantity: "gradient norm".into(),
            });
        }
        Ok(())
    }

    /// The gradient of `loss` with respect to every parameter.
    pub fn grad(&self, loss: &Tensor) -> Result<ParamVec> {
        let all = self.opt.selection().to_vec();
        Ok(gradient(loss, self.model.params(), &all)?)
    }
}

/// The learning-rate multiplier of step `t` of `n`: linear warm-up over the first 5 %, then
/// cosine decay to 10 %.
pub fn lr_schedule(t: u64, n: u64) -> f64 {
    let w = (n / 20).max(1);
    if t < w {
        return (t + 1) as f64 / w as f64;
    }
    let q = (t - w) as f64 / (n.saturating_sub(w)).max(1) as f64;
    0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * q.min(1.0)).cos())
}

/// Trains `trainee` for `steps` AdamW steps on batches of `rows` windows whose sources are
/// drawn from `p`; `tick` is called after every step.
#[allow(clippy::too_many_arguments)]
pub fn train_on_mixture(
    trainee: &mut Trainee,
    data: &MixtureData,
    p: &[f64],
    steps: u64,
    rows: usize,
    rng: &mut Rng,
    who: &str,
    tick: &mut dyn FnMut(u64),
) -> Result<()> {
    let len = trainee.model.context();
    let dev = trainee.model.params().device();
    for t in 0..steps {
        let b = data.mixed_batch(rng, p, rows, len, &dev)?;
        let mut l = mean_loss(trainee.model.as_ref(), &b)?;
        if let Some(r) = trainee.model.regulariser()? {
            l = (l + r)?;
        }
        let g = trainee.grad(&l)?;
        trainee.step(&g, lr_schedule(t, steps), who, t)?;
        tick(t);
    }
    Ok(())
}

/// Loss of a model on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    /// Mean loss per predicted token, nats.
    pub nats_per_token: f64,
    /// Total loss in bits over the bytes the predicted tokens encode.
    pub bits_per_byte: f64,
    /// Tokens predicted.
    pub tokens: usize,
}

/// Loss on non-overlapping windows of the stream (at most `max_windows`, 0 = all), in
/// batches of `rows`. Bits per byte = total nats / (ln 2 · bytes covered), the bytes covered
/// being the stream's bytes in proportion to the tokens predicted (exact for the byte-level
/// tokenizer up to the end-of-text tokens).
pub fn evaluate(
    model: &dyn LanguageModel,
    stream: &TokenStream,
    rows: usize,
    max_windows: usize,
) -> Result<Eval> {
    let len = model.context().min(stream.tokens.len().saturating_sub(1));
    let wins = eval_windows(stream, len, max_windows);
    let dev = model.params().device();
    let mut nats = 0.0;
    let mut count = 0usize;
    for chunk in wins.chunks(rows.max(1)) {
        let b = TokenBatch::from_windows(chunk, &dev)?;
        let r = row_losses(model, &b)?;
        nats += scalar(&r.sum_all()?)? * len as f64;
        count += b.tokens();
    }
    let nats_per_token = nats / count.max(1) as f64;
    let bytes = stream.bytes as f64 * count as f64 / stream.tokens.len().max(1) as f64;
    Ok(Eval {
        nats_per_token,
        bits_per_byte: nats / (std::f64::consts::LN_2 * bytes.max(1.0)),
        tokens: count,
    })
}
