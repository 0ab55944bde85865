//! A decoder-only transformer (pre-LN blocks, causal multi-head attention, GELU MLP, learned
//! positions, tied output embedding) built only from ops whose double backward is exact in
//! candle (docs/CANDLE.md): layer norm, softmax and GELU are written out; the loss uses
//! `index_select`.

use bilevel_core::rng::Rng;
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};
use crate::lm::LanguageModel;
use crate::params::Params;

/// Architecture of a [`Transformer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Model width `d`.
    pub width: usize,
    /// Attention heads (must divide `width`).
    pub heads: usize,
    /// Longest sequence (learned positions).
    pub context: usize,
    /// Hidden width of the MLP as a multiple of `width`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
}

fn default_mlp_ratio() -> usize {
    4
}

impl TransformerConfig {
    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("vocab", self.vocab),
            ("layers", self.layers),
            ("width", self.width),
            ("heads", self.heads),
            ("context", self.context),
            ("mlp_ratio", self.mlp_ratio),
        ] {
            if v == 0 {
                return Err(config_err(f, v, "must be positive"));
            }
        }
        if self.width % self.heads != 0 {
            return Err(config_err(
                "heads",
                self.heads,
                &format!("must divide width = {}", self.width),
            ));
        }
        Ok(())
    }
}

/// A decoder-only transformer; see the module docs.
#[derive(Clone, Debug)]
pub struct Transformer {
    cfg: TransformerConfig,
    params: Params,
    mask: Tensor,
}

/// Indices of one block's parameters in [`Params`].
const PER_BLOCK: usize = 12;

/// `N(0, std²)` values of the given shape from `rng`.
pub(crate) fn normal(
    rng: &mut Rng,
    shape: &[usize],
    std: f64,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| std * rng.normal()).collect();
    Ok(Tensor::from_vec(v, shape, dev)?.to_dtype(dtype)?)
}

/// `γ ⊙ (x − μ) / √(σ² + ε) + β` over the last dimension, written out.
pub(crate) fn layer_norm(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mu = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mu)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&var.affine(1.0, 1e-5)?.sqrt()?)?;
    Ok(xn.broadcast_mul(g)?.broadcast_add(b)?)
}

/// `softmax(x)` over the last dimension from `exp`/`sum` (max detached: exact derivatives).
pub(crate) fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// GELU, tanh form `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, written out.
pub(crate) fn gelu(x: &Tensor) -> Result<Tensor> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let inner = (x + x.sqr()?.mul(x)?.affine(0.044715, 0.0)?)?.affine(c, 0.0)?;
    Ok((x * inner.tanh()?.affine(0.5, 0.5)?)?)
}

/// `x W + b` for `x` of shape `(…, in)` with `W (in, out)`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (inp, out) = w.dims2()?;
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let mut y = x.reshape((rows, inp))?.matmul(w)?;
    if let Some(b) = b {
        y = y.broadcast_add(b)?;
    }
    let mut od = dims;
    let last = od.len() - 1;
    od[last] = out;
    Ok(y.reshape(od)?)
}

impl Transformer {
    /// A freshly initialised model: weights `N(0, 0.02²)` (residual projections scaled by
    /// `1/√(2·layers)`), zero biases, unit layer-norm gains; all draws from `seed`.
    pub fn new(cfg: TransformerConfig, seed: u64, dtype: DType, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut rng = Rng::new(seed);
        let (d, v, h) = (cfg.width, cfg.vocab, cfg.width * cfg.mlp_ratio);
        let resid = 0.02 / ((2 * cfg.layers) as f64).sqrt();
        let mut p = Params::new();
        p.push("tok_emb", &normal(&mut rng, &[v, d], 0.02, dtype, dev)?)?;
        p.push(
            "pos_emb",
            &normal(&mut rng, &[cfg.context, d], 0.01, dtype, dev)?,
        )?;
        for l in 0..cfg.layers {
            let n = |s: &str| format!("blocks.{l}.{s}");
            p.push(n("ln1.g"), &Tensor::ones(d, dtype, dev)?)?;
            p.push(n("ln1.b"), &Tensor::zeros(d, dtype, dev)?)?;
            p.push(
                n("attn.qkv.w"),
                &normal(&mut rng, &[d, 3 * d], 0.02, dtype, dev)?,
            )?;
            p.push(n("attn.qkv.b"), &Tensor::zeros(3 * d, dtype, dev)?)?;
            p.push(
                n("attn.out.w"),
                &normal(&mut rng, &[d, d], resid, dtype, dev)?,
            )?;
            p.push(n("attn.out.b"), &Tensor::zeros(d, dtype, dev)?)?;
            p.push(n("ln2.g"), &Tensor::ones(d, dtype, dev)?)?;
            p.push(n("ln2.b"), &Tensor::zeros(d, dtype, dev)?)?;
            p.push(n("mlp.in.w"), &normal(&mut rng, &[d, h], 0.02, dtype, dev)?)?;
            p.push(n("mlp.in.b"), &Tensor::zeros(h, dtype, dev)?)?;
            p.push(
                n("mlp.out.w"),
                &normal(&mut rng, &[h, d], resid, dtype, dev)?,
            )?;
            p.push(n("mlp.out.b"), &Tensor::zeros(d, dtype, dev)?)?;
        }
        p.push("ln_f.g", &Tensor::ones(d, dtype, dev)?)?;
        p.push("ln_f.b", &Tensor::zeros(d, dtype, dev)?)?;
        let t = cfg.context;
        let mask: Vec<f64> = (0..t * t)
            .map(|k| if k % t > k / t { -1e9 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?.to_dtype(dtype)?;
        Ok(Self {
            cfg,
            params: p,
            mask,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// Names of the parameters of the last `k` blocks and the final layer norm (a subset for
    /// memory-bounded Krylov solves).
    pub fn last_blocks_prefixes(&self, k: usize) -> Vec<String> {
        let mut out: Vec<String> = (self.cfg.layers.saturating_sub(k)..self.cfg.layers)
            .map(|l| format!("blocks.{l}."))
            .collect();
        out.push("ln_f.".to_string());
        out
    }

    fn block(&self, l: usize, x: &Tensor) -> Result<Tensor> {
        let p = |k: usize| self.params.get(2 + l * PER_BLOCK + k);
        let (b, t, d) = x.dims3()?;
        let (nh, dh) = (self.cfg.heads, self.cfg.width / self.cfg.heads);
        let hx = layer_norm(x, p(0), p(1))?;
        let qkv = linear(&hx, p(2), Some(p(3)))?;
        let heads = |k: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(D::Minus1, k * d, d)?
                .reshape((b, t, nh, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let scores = q
            .matmul(&k.t()?.contiguous()?)?
            .affine(1.0 / (dh as f64).sqrt(), 0.0)?;
        let mask = self.mask.narrow(0, 0, t)?.narrow(1, 0, t)?;
        let att = softmax_last(&scores.broadcast_add(&mask)?)?;
        let y = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, d))?;
        let x = (x + linear(&y, p(4), Some(p(5)))?)?;
        let hx = layer_norm(&x, p(6), p(7))?;
        let m = linear(&gelu(&linear(&hx, p(8), Some(p(9)))?)?, p(10), Some(p(11)))?;
        Ok((x + m)?)
    }
}

impl LanguageModel for Transformer {
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
        if t > self.cfg.context {
            return Err(config_err(
                "sequence length",
                t,
                &format!("exceeds the model's context {}", self.cfg.context),
            ));
        }
        let d = self.cfg.width;
        let emb = self.params.get(0);
        let tok = emb
            .index_select(&inputs.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let pos = self.params.get(1).narrow(0, 0, t)?;
        let mut x = tok.broadcast_add(&pos)?;
        for l in 0..self.cfg.layers {
            x = self.block(l, &x)?;
        }
        let n = self.params.len();
        let x = layer_norm(&x, self.params.get(n - 2), self.params.get(n - 1))?;
        Ok(x.reshape((b * t, d))?
            .matmul(&emb.t()?)?
            .reshape((b, t, self.cfg.vocab))?)
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "transformer", "config": self.cfg, "parameters": self.params.numel()})
    }
}
