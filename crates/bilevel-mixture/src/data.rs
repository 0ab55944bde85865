//! Tokenised sources, the target's validation and test streams, and window sampling.

use bilevel_core::rng::Rng;
use bilevel_nn::{TokenBatch, Tokenize};
use candle_core::Device;

use crate::error::{MixtureError, Result};

/// A token stream with the number of text bytes it encodes.
#[derive(Clone, Debug, Default)]
pub struct TokenStream {
    /// Tokens (documents separated by end-of-text).
    pub tokens: Vec<u32>,
    /// UTF-8 bytes of the text the tokens encode.
    pub bytes: usize,
}

impl TokenStream {
    /// Tokenises `docs`, each followed by the end-of-text token.
    pub fn from_documents(tok: &dyn Tokenize, docs: &[String]) -> Self {
        Self {
            tokens: tok.encode_documents(docs),
            bytes: docs.iter().map(|d| d.len()).sum(),
        }
    }
    /// Keeps the first `n` tokens (bytes scaled in proportion).
    pub fn truncate(&mut self, n: usize) {
        if n < self.tokens.len() {
            self.bytes = (self.bytes as f64 * n as f64 / self.tokens.len() as f64).round() as usize;
            self.tokens.truncate(n);
        }
    }
    /// A uniformly random window of `len + 1` tokens.
    pub fn window(&self, rng: &mut Rng, len: usize) -> &[u32] {
        let start = rng.below((self.tokens.len() - len) as u64) as usize;
        &self.tokens[start..start + len + 1]
    }
}

/// One training source: its training stream and its held-out stream.
#[derive(Clone, Debug)]
pub struct TokenSource {
    /// The source's name.
    pub name: String,
    /// Training tokens.
    pub train: TokenStream,
    /// Held-out tokens (never trained on; evaluation only).
    pub heldout: TokenStream,
}

/// The N training sources, the target's validation stream (the upper-level objective) and
/// its test stream (final evaluation only, never used for selection).
#[derive(Clone, Debug)]
pub struct MixtureData {
    /// Training sources.
    pub sources: Vec<TokenSource>,
    /// Target validation stream.
    pub val: TokenStream,
    /// Target test stream.
    pub test: TokenStream,
    /// Vocabulary size of the tokenizer.
    pub vocab: usize,
}

/// Documents of one source, as loaded.
#[derive(Clone, Debug)]
pub struct SourceDocuments {
    /// The source's name.
    pub name: String,
    /// Its documents.
    pub documents: Vec<String>,
}

impl MixtureData {
    /// Splits every source's documents into training and held-out parts (every
    /// `round(1/heldout_fraction)`-th document is held out, at least one), tokenises them, and
    /// caps each training stream at `max_tokens` tokens (held-out at `max_tokens ·
    /// heldout_fraction`, at least `min_heldout`). Every stream must hold more than
    /// `window + 1` tokens; errors name the source.
    pub fn build(
        tok: &dyn Tokenize,
        sources: &[SourceDocuments],
        val: &[String],
        test: &[String],
        heldout_fraction: f64,
        max_tokens: usize,
        window: usize,
    ) -> Result<Self> {
        if !(heldout_fraction > 0.0 && heldout_fraction < 1.0) {
            return Err(crate::error::config_err(
                "data.heldout_fraction",
                heldout_fraction,
                "must lie in (0, 1)",
            ));
        }
        let every = (1.0 / heldout_fraction).round().max(2.0) as usize;
        let mut out = Vec::with_capacity(sources.len());
        for s in sources {
            if s.documents.len() < 2 {
                return Err(MixtureError::Data {
                    source_name: s.name.clone(),
                    reason: format!(
                        "has {} document(s); at least 2 are needed (one is held out)",
                        s.documents.len()
                    ),
                });
            }
            let (mut tr, mut ho) = (Vec::new(), Vec::new());
            for (k, d) in s.documents.iter().enumerate() {
                if k % every == every - 1 {
                    ho.push(d.clone());
                } else {
                    tr.push(d.clone());
                }
            }
            if ho.is_empty() {
                ho.push(tr.pop().unwrap_or_default());
            }
            let mut train = TokenStream::from_documents(tok, &tr);
            let mut heldout = TokenStream::from_documents(tok, &ho);
            train.truncate(max_tokens);
            heldout.truncate(((max_tokens as f64 * heldout_fraction) as usize).max(4 * window));
            for (part, st) in [("training", &train), ("held-out", &heldout)] {
                if st.tokens.len() <= window + 1 {
                    return Err(MixtureError::Data {
                        source_name: s.name.clone(),
                        reason: format!(
                            "its {part} part has {} tokens, fewer than one window of {}",
                            st.tokens.len(),
                            window + 1
                        ),
                    });
                }
            }
            out.push(TokenSource {
                name: s.name.clone(),
                train,
                heldout,
            });
        }
        let val = TokenStream::from_documents(tok, val);
        let test = TokenStream::from_documents(tok, test);
        for (name, st) in [("validation (target)", &val), ("test (target)", &test)] {
            if st.tokens.len() <= window + 1 {
                return Err(MixtureError::Data {
                    source_name: name.to_string(),
                    reason: format!("has {} tokens, fewer than one window", st.tokens.len()),
                });
            }
        }
        Ok(Self {
            sources: out,
            val,
            test,
            vocab: tok.vocab(),
        })
    }

    /// Number of sources N.
    pub fn n(&self) -> usize {
        self.sources.len()
    }

    /// Training tokens per source.
    pub fn sizes(&self) -> Vec<usize> {
        self.sources.iter().map(|s| s.train.tokens.len()).collect()
    }

    /// One batch per source of `rows` random windows of `len + 1` tokens.
    pub fn per_source_batches(
        &self,
        rng: &mut Rng,
        rows: usize,
        len: usize,
        dev: &Device,
    ) -> Result<Vec<TokenBatch>> {
        self.sources
            .iter()
            .map(|s| {
                let w: Vec<&[u32]> = (0..rows).map(|_| s.train.window(rng, len)).collect();
                Ok(TokenBatch::from_windows(&w, dev)?)
            })
            .collect()
    }

    /// A batch of `rows` windows whose sources are drawn from `p` (the mixture as sampling).
    pub fn mixed_batch(
        &self,
        rng: &mut Rng,
        p: &[f64],
        rows: usize,
        len: usize,
        dev: &Device,
    ) -> Result<TokenBatch> {
        let w: Vec<&[u32]> = (0..rows)
            .map(|_| {
                let i = draw(rng, p);
                self.sources[i].train.window(rng, len)
            })
            .collect();
        Ok(TokenBatch::from_windows(&w, dev)?)
    }

    /// A batch of `rows` random validation windows.
    pub fn val_batch(
        &self,
        rng: &mut Rng,
        rows: usize,
        len: usize,
        dev: &Device,
    ) -> Result<TokenBatch> {
        let w: Vec<&[u32]> = (0..rows).map(|_| self.val.window(rng, len)).collect();
        Ok(TokenBatch::from_windows(&w, dev)?)
    }
}

/// An index drawn from the distribution `p`.
pub fn draw(rng: &mut Rng, p: &[f64]) -> usize {
    let u = rng.uniform();
    let mut acc = 0.0;
    for (i, &pi) in p.iter().enumerate() {
        acc += pi;
        if u < acc {
            return i;
        }
    }
    p.iter().rposition(|&v| v > 0.0).unwrap_or(0)
}

/// Non-overlapping windows of `len + 1` tokens (each shares one token with the next) covering
/// the stream; the last partial window is dropped.
pub fn eval_windows(stream: &TokenStream, len: usize, max_windows: usize) -> Vec<&[u32]> {
    let n = stream.tokens.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start + len < n && (max_windows == 0 || out.len() < max_windows) {
        out.push(&stream.tokens[start..start + len + 1]);
        start += len;
    }
    out
}
