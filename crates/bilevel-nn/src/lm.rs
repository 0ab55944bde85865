//! The language-model interface, token batches, the next-token loss, and a bigram model.

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};
use crate::params::Params;

/// A next-token model on candle whose parameters live in [`Params`].
pub trait LanguageModel {
    /// The parameters (read by derivatives and optimisers; updated in place).
    fn params(&self) -> &Params;
    /// Vocabulary size `V`.
    fn vocab(&self) -> usize;
    /// Longest input sequence `T` the model accepts.
    fn context(&self) -> usize;
    /// Logits `(B, T, V)` for token ids `(B, T)` (u32); position t predicts token t + 1.
    fn logits(&self, inputs: &Tensor) -> Result<Tensor>;
    /// A deterministic term added to training losses (e.g. `(λ/2)‖θ‖²`); none by default.
    fn regulariser(&self) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The model's architecture as JSON (saved with a run).
    fn describe(&self) -> serde_json::Value;
    /// Indices of the parameters that are trained (and differentiated); all by default,
    /// a subset for partial fine-tuning of a pretrained model.
    fn trainable(&self) -> Vec<usize> {
        self.params().all()
    }
}

/// Token windows: `inputs[b, t]` predicts `targets[b, t]` (= the next token).
#[derive(Clone, Debug)]
pub struct TokenBatch {
    /// `(B, T)` u32 inputs.
    pub inputs: Tensor,
    /// `(B, T)` u32 targets.
    pub targets: Tensor,
    /// Rows `B`.
    pub rows: usize,
    /// Length `T`.
    pub len: usize,
}

impl TokenBatch {
    /// A batch from windows of `T + 1` tokens each (all the same length ≥ 2).
    pub fn from_windows(windows: &[&[u32]], device: &Device) -> Result<Self> {
        let rows = windows.len();
        let Some(first) = windows.first() else {
            return Err(config_err("batch", 0, "a batch needs at least one window"));
        };
        let w = first.len();
        if w < 2 || windows.iter().any(|x| x.len() != w) {
            return Err(config_err(
                "window",
                w,
                "windows must all have the same length ≥ 2",
            ));
        }
        let len = w - 1;
        let mut inp = Vec::with_capacity(rows * len);
        let mut tgt = Vec::with_capacity(rows * len);
        for x in windows {
            inp.extend_from_slice(&x[..len]);
            tgt.extend_from_slice(&x[1..]);
        }
        Ok(Self {
            inputs: Tensor::from_vec(inp, (rows, len), device)?,
            targets: Tensor::from_vec(tgt, (rows, len), device)?,
            rows,
            len,
        })
    }

    /// Tokens predicted by the batch (`B · T`).
    pub fn tokens(&self) -> usize {
        self.rows * self.len
    }
}

/// `log softmax(z)` along the last dimension, from `exp`/`sum` (exact under double
/// backward; the subtracted maximum is detached, which leaves the value and all derivatives
/// unchanged).
pub fn log_softmax_last(z: &Tensor) -> Result<Tensor> {
    let m = z.max_keepdim(D::Minus1)?.detach();
    let zc = z.broadcast_sub(&m)?;
    let lse = zc.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(zc.broadcast_sub(&lse)?)
}

/// Per-token negative log-likelihood `−log p(target)` in nats, shape `(B, T)`; picks the
/// target entries with `index_select` on the flattened log-probabilities (`gather` has no
/// second backward in candle).
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logp = log_softmax_last(logits)?.flatten_all()?;
    let tg = targets.flatten_all()?.to_vec1::<u32>()?;
    let idx: Vec<u32> = tg
        .iter()
        .enumerate()
        .map(|(n, &c)| (n * v) as u32 + c)
        .collect();
    let idx = Tensor::from_vec(idx, b * t, logits.device())?;
    Ok(logp.index_select(&idx, 0)?.neg()?.reshape((b, t))?)
}

/// Mean loss of each row, shape `(B)`.
pub fn row_losses(model: &dyn LanguageModel, batch: &TokenBatch) -> Result<Tensor> {
    let logits = model.logits(&batch.inputs)?;
    Ok(token_nll(&logits, &batch.targets)?.mean(1)?)
}

/// `Σ_b c_b · rowloss_b` (+ the model's regulariser when `regularise`): with
/// `c_b = p_{s(b)} / n_{s(b)}` this is the mixture loss `Σ_i p_i L_i`.
pub fn weighted_loss(
    model: &dyn LanguageModel,
    batch: &TokenBatch,
    row_weights: &[f64],
    regularise: bool,
) -> Result<Tensor> {
    let r = row_losses(model, batch)?;
    let w = Tensor::from_slice(row_weights, row_weights.len(), r.device())?.to_dtype(r.dtype())?;
    let mut l = (r * w)?.sum_all()?;
    if regularise {
        if let Some(reg) = model.regulariser()? {
            l = (l + reg)?;
        }
    }
    Ok(l)
}

/// Mean token loss of a batch (no regulariser).
pub fn mean_loss(model: &dyn LanguageModel, batch: &TokenBatch) -> Result<Tensor> {
    Ok(row_losses(model, batch)?.mean_all()?)
}

/// A bigram model: `logits[t] = W[x_t, :]` with `W ∈ R^{V×V}`, and the L2 regulariser
/// `(λ/2)‖W‖²` — a strongly convex lower level (cross-entropy is convex in the logits, which
/// are linear in `W`), used to check hypergradients against finite differences.
#[derive(Clone, Debug)]
pub struct Bigram {
    params: Params,
    vocab: usize,
    l2: f64,
}

/// Settings of a [`Bigram`] model.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BigramConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// L2 weight λ.
    pub l2: f64,
}

impl Bigram {
    /// A bigram table initialised at zero (uniform predictions).
    pub fn new(cfg: BigramConfig, dtype: DType, device: &Device) -> Result<Self> {
        if cfg.vocab == 0 {
            return Err(config_err("vocab", 0, "must be positive"));
        }
        let mut params = Params::new();
        params.push("w", &Tensor::zeros((cfg.vocab, cfg.vocab), dtype, device)?)?;
        Ok(Self {
            params,
            vocab: cfg.vocab,
            l2: cfg.l2,
        })
    }
}

impl LanguageModel for Bigram {
    fn params(&self) -> &Params {
        &self.params
    }
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn context(&self) -> usize {
        usize::MAX
    }
    fn logits(&self, inputs: &Tensor) -> Result<Tensor> {
        let (b, t) = inputs.dims2()?;
        let rows = self.params.get(0).index_select(&inputs.flatten_all()?, 0)?;
        Ok(rows.reshape((b, t, self.vocab))?)
    }
    fn regulariser(&self) -> Result<Option<Tensor>> {
        if self.l2 == 0.0 {
            return Ok(None);
        }
        let w = self.params.get(0);
        Ok(Some(w.sqr()?.sum_all()?.affine(0.5 * self.l2, 0.0)?))
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "bigram", "vocab": self.vocab, "l2": self.l2})
    }
}
