//! A GPT-2-style byte-level BPE tokenizer read from GGUF metadata (`tokenizer.ggml.*`), as used
//! by SmolLM2 and other `gpt2`-model GGUF files.
//!
//! Encoding follows the Hugging Face `ByteLevel` pipeline:
//!
//! 1. **Special tokens** (GGUF token types 3 = control and 4 = user-defined, e.g.
//!    `<|endoftext|>`, `<|im_start|>`) written literally in the text become their ids.
//! 2. **Pre-tokenisation** by a hand-written equivalent of the GPT-2 pattern
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`; with
//!    `tokenizer.ggml.pre = "smollm"` (and the other names llama.cpp gives the same rule) every
//!    digit (`char::is_numeric`) is first isolated (`Digits(individual_digits)`). The classes
//!    `\p{L}`, `\p{N}`, `\s` come from `regex-syntax`'s Unicode tables, the ones the
//!    `tokenizers` pattern uses.
//! 3. Each piece's UTF-8 bytes are mapped to GPT-2's printable characters
//!    ([`byte_to_char`]) and merged pair by pair, always the **lowest-ranked** merge first
//!    (rank = position in `tokenizer.ggml.merges`), leftmost on ties. A byte whose character is
//!    not in the vocabulary is dropped (SmolLM2 lacks 0x04 0x06 0x13 0x14 0x16 0x1D 0xF1 0xF2
//!    and the bytes that never occur in UTF-8), as in `tokenizers`.
//!
//! Decoding maps the characters back to bytes, so `decode(encode(s)) == s` for any text whose
//! bytes all have tokens.
//!
//! # Why not the `tokenizers` crate
//!
//! Hugging Face `tokenizers` 0.23.2 (already built for candle-core) configured the same way
//! (BPE on the GGUF vocabulary and merges, `Digits(true)` + `ByteLevel(add_prefix_space =
//! false)`, token types 3 and 4 as special tokens; `tests/support/hf_bpe.rs`) gives the same
//! ids on every text tried, and is 6–7× slower. Measured 2026-12-05 on SmolLM2-135M-Instruct,
//! 2-core shared VM, `dev` profile with both crates at opt-level 3, best of 3 warm passes, one
//! thread each:
//!
//! | corpus | texts | MB | identical | ours MB/s | `tokenizers` MB/s |
//! |---|---:|---:|---:|---:|---:|
//! | GSM8K question + answer (`data/gsm8k`) | 8792 | 4.62 | 8792 | 20.1 | 3.1 |
//! | the repository's `*.md` | 20 | 0.18 | 20 | 18.8 | 2.5 |
//! | the repository's `*.rs` | 158 | 1.88 | 158 | 20.8 | 2.9 |
//! | hard cases (accents, CJK, emoji, digit and space runs, `<\|im_start\|>`, …) | 27 | 0.003 | 27 | 16–19 | 2.3–2.5 |
//! | every Unicode scalar, 64 per text | 17376 | 4.57 | 17376 | 35 | 5.3 |
//! | CPython's `test/cjkencodings`, `test_unicode.py`, `test_unicodedata.py`, `test_codecs.py` | 21 | 0.30 | 21 | 18.5 | 1.7 |
//!
//! `encode_batch_fast` (rayon, both cores) reached 3.3–9 MB/s; at the workspace's default
//! opt-level 1 for this crate ours gives 14–15 MB/s. At 3 bytes a token, the 8 M-token cap per
//! source of `configs/reweight-smollm2.toml` is ≈ 1.2 s here against ≈ 8 s with the library.
//!
//! ```text
//! PY=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')/test
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo run -p bilevel-nn --example bpe_vs_tokenizers -- \
//!     $PY/cjkencodings $PY/test_unicode.py $PY/test_unicodedata.py $PY/test_codecs.py
//! ```
//!
//! Before that comparison this module differed in two ways, both fixed to agree with the
//! library: a byte without a token became the unknown id (`<|endoftext|>` in SmolLM2, an end
//! of text inside a document: 8193 of the 17376 Unicode-scalar texts), and `\p{L}` was read as
//! `char::is_alphabetic`, which also takes the `Other_Alphabetic` marks (Devanagari vowel
//! signs, Hebrew points, …: the pieces differed in 138 texts, the SmolLM2 ids in none).
//! `tests/smollm2.rs` keeps the library as the reference when the GGUF is in the data cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::quantized::gguf_file;

use crate::error::{NnError, Result};
use crate::tokenizer::Tokenize;

/// How text is split into pieces before the merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// The GPT-2 pattern (digit runs stay together).
    Gpt2,
    /// Every digit isolated first, then the GPT-2 pattern (SmolLM2, StarCoder, …).
    Gpt2IsolatedDigits,
}

impl PreTokenizer {
    /// The pre-tokenizer for llama.cpp's `tokenizer.ggml.pre` name and whether it is exact:
    /// names llama.cpp maps to another pattern fall back to GPT-2 (`false`).
    pub fn from_gguf_name(name: Option<&str>) -> (Self, bool) {
        match name {
            None | Some("gpt2" | "default" | "gpt-2") => (Self::Gpt2, true),
            Some(
                "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
                | "minerva-7b",
            ) => (Self::Gpt2IsolatedDigits, true),
            Some(_) => (Self::Gpt2, false),
        }
    }
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes (`!`–`~`,
/// `¡`–`¬`, `®`–`ÿ`) map to themselves, the others, in byte order, to U+0100, U+0101, …
/// (so the space 0x20 is `Ġ` U+0120 and the newline 0x0A is `Ċ` U+010A).
pub fn byte_to_char(b: u8) -> char {
    tables().0[b as usize]
}

fn printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Characters past the last one [`byte_to_char`] produces (U+0143).
const CHAR_LIMIT: usize = 0x144;

/// `byte → char` and `char → byte` (−1 where none).
fn tables() -> &'static ([char; 256], [i16; CHAR_LIMIT]) {
    static T: std::sync::OnceLock<([char; 256], [i16; CHAR_LIMIT])> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut fwd = ['\0'; 256];
        let mut inv = [-1i16; CHAR_LIMIT];
        let mut n = 0u32;
        for b in 0..=255u8 {
            let c = if printable(b) {
                char::from(b)
            } else {
                n += 1;
                char::from_u32(255 + n).expect("U+0100..U+0143 are chars")
            };
            fwd[b as usize] = c;
            inv[c as usize] = i16::from(b);
        }
        (fwd, inv)
    })
}

/// The inverse of [`byte_to_char`] (`None` for characters outside the map).
pub fn char_to_byte(c: char) -> Option<u8> {
    let k = tables().1.get(c as usize).copied().unwrap_or(-1);
    u8::try_from(k).ok()
}

/// Entries kept in the per-piece cache before it is cleared.
const CACHE_LIMIT: usize = 200_000;

/// A byte-level BPE tokenizer; see the module docs.
#[derive(Debug)]
pub struct BpeTokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    /// `(left, right) → (rank, merged)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    n_merges: usize,
    byte_ids: [Option<u32>; 256],
    /// Special-token strings and ids, longest first.
    special: Vec<(String, u32)>,
    is_special: Vec<bool>,
    pre: PreTokenizer,
    pre_name: Option<String>,
    pre_exact: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: u32,
    source: Option<String>,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl Clone for BpeTokenizer {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            ids: self.ids.clone(),
            merges: self.merges.clone(),
            n_merges: self.n_merges,
            byte_ids: self.byte_ids,
            special: self.special.clone(),
            is_special: self.is_special.clone(),
            pre: self.pre,
            pre_name: self.pre_name.clone(),
            pre_exact: self.pre_exact,
            bos: self.bos,
            eos: self.eos,
            eot: self.eot,
            source: self.source.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

fn format_err(path: &str, reason: impl Into<String>) -> NnError {
    NnError::Format {
        path: path.to_string(),
        reason: reason.into(),
    }
}

impl BpeTokenizer {
    /// A tokenizer from its vocabulary (`tokens[id]`, in GPT-2's byte-to-character
    /// alphabet), `merges` (`"left right"`, highest priority first), the ids of the special
    /// tokens matched literally in text, and the end-of-text id.
    ///
    /// Errors when a merge is malformed or a special id is out of range. Merges whose parts or result are not in the vocabulary are ignored.
    pub fn new(
        tokens: Vec<String>,
        merges: &[String],
        special: &[u32],
        pre: PreTokenizer,
        eot: u32,
    ) -> Result<Self> {
        Self::build(tokens, merges, special, pre, eot, "<tokenizer>")
    }

    fn build(
        tokens: Vec<String>,
        merges: &[String],
        special: &[u32],
        pre: PreTokenizer,
        eot: u32,
        path: &str,
    ) -> Result<Self> {
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(format_err(path, format!("vocabulary of {n} tokens")));
        }
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            // A repeated token keeps its first id (later copies are only reachable by id).
            ids.entry(t.clone()).or_insert(i as u32);
        }
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else {
                return Err(format_err(
                    path,
                    format!("merge {rank} `{m}` is not two tokens separated by a space"),
                ));
            };
            let (Some(&ia), Some(&ib), Some(&im)) =
                (ids.get(a), ids.get(b), ids.get(format!("{a}{b}").as_str()))
            else {
                continue;
            };
            table.entry((ia, ib)).or_insert((rank as u32, im));
        }
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = ids.get(byte_to_char(b as u8).to_string().as_str()).copied();
        }
        let mut is_special = vec![false; n];
        let mut sp = Vec::new();
        for &s in special.iter().chain(std::iter::once(&eot)) {
            let Some(text) = tokens.get(s as usize) else {
                return Err(format_err(
                    path,
                    format!("special token id {s} outside the vocabulary of {n}"),
                ));
            };
            if !is_special[s as usize] && !text.is_empty() {
                is_special[s as usize] = true;
                sp.push((text.clone(), s));
            }
        }
        sp.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Ok(Self {
            tokens,
            ids,
            merges: table,
            n_merges: merges.len(),
            byte_ids,
            special: sp,
            is_special,
            pre,
            pre_name: None,
            pre_exact: true,
            bos: None,
            eos: None,
            eot,
            source: None,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Reads `tokenizer.ggml.{model, tokens, merges, token_type, pre, bos_token_id,
    /// eos_token_id, unknown_token_id}` from parsed GGUF metadata; `path` names the file in
    /// errors. The model must be `gpt2` (byte-level BPE). End-of-text is the id of
    /// `<|endoftext|>` when the vocabulary has it, else the eos id.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let md = &content.metadata;
        let get = |k: &str| {
            md.get(k)
                .ok_or_else(|| format_err(&name, format!("no metadata key `{k}`")))
        };
        let bad = |k: &str, e: candle_core::Error| format_err(&name, format!("key `{k}`: {e}"));
        let model = get("tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| bad("tokenizer.ggml.model", e))?;
        if model != "gpt2" {
            return Err(format_err(
                &name,
                format!(
                    "tokenizer.ggml.model = `{model}`: only byte-level BPE (`gpt2`) is supported"
                ),
            ));
        }
        let strings = |k: &str| -> Result<Vec<String>> {
            get(k)?
                .to_vec()
                .map_err(|e| bad(k, e))?
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| bad(k, e)))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let id = |k: &str| -> Result<Option<u32>> {
            match md.get(k) {
                None => Ok(None),
                Some(v) => v.to_u32().map(Some).map_err(|e| bad(k, e)),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let unk = id("tokenizer.ggml.unknown_token_id")?;
        let mut special = Vec::new();
        if let Some(types) = md.get("tokenizer.ggml.token_type") {
            let types = types
                .to_vec()
                .map_err(|e| bad("tokenizer.ggml.token_type", e))?;
            for (i, t) in types.iter().enumerate() {
                let t = t
                    .to_i32()
                    .map_err(|e| bad("tokenizer.ggml.token_type", e))?;
                if t == 3 || t == 4 {
                    special.push(i as u32);
                }
            }
        }
        let eot = match tokens.iter().position(|t| t == "<|endoftext|>") {
            Some(i) => i as u32,
            None => eos.ok_or_else(|| {
                format_err(
                    &name,
                    "no `<|endoftext|>` token and no metadata key `tokenizer.ggml.eos_token_id`",
                )
            })?,
        };
        let pre_name = match md.get("tokenizer.ggml.pre") {
            Some(v) => Some(
                v.to_string()
                    .map_err(|e| bad("tokenizer.ggml.pre", e))?
                    .clone(),
            ),
            None => None,
        };
        let (pre, pre_exact) = PreTokenizer::from_gguf_name(pre_name.as_deref());
        let mut out = Self::build(tokens, &merges, &special, pre, eot, &name)?;
        for (k, v) in [("bos", bos), ("eos", eos), ("unknown", unk)] {
            if let Some(v) = v {
                if v as usize >= out.tokens.len() {
                    return Err(format_err(
                        &name,
                        format!("tokenizer.ggml.{k}_token_id = {v} outside the vocabulary"),
                    ));
                }
            }
        }
        out.bos = bos;
        out.eos = eos;
        out.pre_name = pre_name;
        out.pre_exact = pre_exact;
        out.source = Some(name);
        Ok(out)
    }

    /// Reads the tokenizer from a GGUF file's metadata (see [`from_gguf`](Self::from_gguf)).
    pub fn from_gguf_file(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let mut f = std::fs::File::open(path).map_err(|e| NnError::Io {
            path: name.clone(),
            source: e,
        })?;
        let content =
            gguf_file::Content::read(&mut f).map_err(|e| format_err(&name, e.to_string()))?;
        Self::from_gguf(&content, path)
    }

    /// The beginning-of-sequence id, if the file names one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence id (SmolLM2-Instruct: `<|im_end|>`), if the file names one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The id of token `text` (exact vocabulary entry, GPT-2 alphabet).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The vocabulary entry of `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// The tokens of `text`, special-token strings included as ordinary text.
    pub fn encode_plain(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_text(text, &mut out);
        out
    }

    /// The tokens of `text`, with special-token strings (`<|im_start|>`, …) mapped to their ids.
    pub fn encode_with_special(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            if text.is_char_boundary(i) {
                if let Some((s, id)) = self
                    .special
                    .iter()
                    .find(|(s, _)| bytes[i..].starts_with(s.as_bytes()))
                {
                    self.encode_text(&text[start..i], &mut out);
                    out.push(*id);
                    i += s.len();
                    start = i;
                    continue;
                }
            }
            i += 1;
        }
        self.encode_text(&text[start..], &mut out);
        out
    }

    fn encode_text(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut pieces = Vec::new();
        pre_tokenize(self.pre, text, &mut pieces);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for p in pieces {
            if let Some(ids) = cache.get(p) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.bpe(p);
            out.extend_from_slice(&ids);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(p.to_string(), ids);
        }
    }

    /// The merges applied to one piece: lowest rank first, leftmost on ties.
    fn bpe(&self, piece: &str) -> Vec<u32> {
        let mut syms: Vec<u32> = Vec::with_capacity(piece.len());
        // A byte without a token is dropped, as `tokenizers` does (a byte-level model has no
        // unknown token; SmolLM2's `unknown_token_id` is `<|endoftext|>`, which must not
        // appear inside a document).
        syms.extend(piece.bytes().filter_map(|b| self.byte_ids[b as usize]));
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for k in 0..syms.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(syms[k], syms[k + 1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, k, merged));
                    }
                }
            }
            let Some((_, k, merged)) = best else {
                break;
            };
            syms[k] = merged;
            syms.remove(k + 1);
        }
        syms
    }

    /// The bytes of `tokens`: special tokens give their text, others the bytes of their
    /// GPT-2 characters (characters outside the map give their own UTF-8).
    pub fn decode_bytes(&self, tokens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &t in tokens {
            let Some(s) = self.tokens.get(t as usize) else {
                continue;
            };
            if self.is_special[t as usize] {
                out.extend_from_slice(s.as_bytes());
                continue;
            }
            for c in s.chars() {
                match char_to_byte(c) {
                    Some(b) => out.push(b),
                    None => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
        }
        out
    }
}

impl Tokenize for BpeTokenizer {
    fn vocab(&self) -> usize {
        self.tokens.len()
    }
    fn eot(&self) -> u32 {
        self.eot
    }
    /// Special-token strings in `text` become their ids (as Hugging Face tokenizers do); use
    /// [`BpeTokenizer::encode_plain`] to treat them as text.
    fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with_special(text)
    }
    fn decode(&self, tokens: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(tokens)).into_owned()
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "byte-level-bpe",
            "source": self.source,
            "vocab": self.tokens.len(),
            "merges": self.n_merges,
            "pre": self.pre_name,
            "pre_tokenizer": match self.pre {
                PreTokenizer::Gpt2 => "gpt2",
                PreTokenizer::Gpt2IsolatedDigits => "gpt2+isolated-digits",
            },
            "pre_tokenizer_exact": self.pre_exact,
            "bos": self.bos,
            "eos": self.eos,
            "eot": self.eot,
            "eot_token": self.tokens[self.eot as usize],
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

/// Sorted, disjoint ranges of `\s`, `\p{N}` and `\p{L}` as the `regex` crates read them
/// (`regex-syntax`'s tables, so the same Unicode version as `tokenizers`' pattern).
fn class_tables() -> &'static [Vec<(char, char)>; 3] {
    static T: std::sync::OnceLock<[Vec<(char, char)>; 3]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        [r"\s", r"\p{N}", r"\p{L}"].map(|p| {
            let hir = regex_syntax::parse(p).expect("a Unicode class parses");
            match hir.kind() {
                regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(c)) => {
                    c.ranges().iter().map(|r| (r.start(), r.end())).collect()
                }
                k => unreachable!("{p} parses to {k:?}"),
            }
        })
    })
}

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        return if c.is_ascii_whitespace() || c == '\x0b' {
            Class::Space
        } else if c.is_ascii_digit() {
            Class::Number
        } else if c.is_ascii_alphabetic() {
            Class::Letter
        } else {
            Class::Other
        };
    }
    let [space, number, letter] = class_tables();
    if in_ranges(space, c) {
        Class::Space
    } else if in_ranges(number, c) {
        Class::Number
    } else if in_ranges(letter, c) {
        Class::Letter
    } else {
        Class::Other
    }
}

/// Splits `text` into the pieces the merges run on (see the module docs).
pub fn pre_tokenize<'a>(pre: PreTokenizer, text: &'a str, out: &mut Vec<&'a str>) {
    match pre {
        PreTokenizer::Gpt2 => gpt2_split(text, out),
        PreTokenizer::Gpt2IsolatedDigits => {
            let mut start = 0;
            for (i, c) in text.char_indices() {
                if c.is_numeric() {
                    gpt2_split(&text[start..i], out);
                    let end = i + c.len_utf8();
                    out.push(&text[i..end]);
                    start = end;
                }
            }
            gpt2_split(&text[start..], out);
        }
    }
}

/// The GPT-2 pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
fn gpt2_split<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |k: usize| if k < n { chars[k].0 } else { text.len() };
    let mut i = 0;
    while i < n {
        let c = chars[i].1;
        // Contractions (case-sensitive, as in GPT-2).
        if c == '\'' && i + 1 < n {
            let c1 = chars[i + 1].1;
            let c2 = chars.get(i + 2).map(|x| x.1);
            let len = match (c1, c2) {
                ('s' | 't' | 'm' | 'd', _) => 2,
                ('r', Some('e')) | ('v', Some('e')) | ('l', Some('l')) => 3,
                _ => 0,
            };
            if len > 0 {
                out.push(&text[at(i)..at(i + len)]);
                i += len;
                continue;
            }
        }
        // ` ?` then a run of letters, numbers or other symbols.
        let j = if c == ' ' && i + 1 < n && class(chars[i + 1].1) != Class::Space {
            i + 1
        } else {
            i
        };
        let cl = class(chars[j].1);
        if cl != Class::Space {
            let mut k = j + 1;
            while k < n && class(chars[k].1) == cl {
                k += 1;
            }
            out.push(&text[at(i)..at(k)]);
            i = k;
            continue;
        }
        // Whitespace: the run, less its last character when a non-space follows.
        let mut k = i + 1;
        while k < n && class(chars[k].1) == Class::Space {
            k += 1;
        }
        if k < n && k - i >= 2 {
            k -= 1;
        }
        out.push(&text[at(i)..at(k)]);
        i = k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: PreTokenizer, s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        pre_tokenize(pre, s, &mut v);
        v
    }

    /// All 256 byte tokens (ids 0–255 in byte order), then `extra`.
    fn tiny(merges: &[&str], extra: &[&str], pre: PreTokenizer) -> BpeTokenizer {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_to_char(b).to_string()).collect();
        tokens.extend(extra.iter().map(|s| s.to_string()));
        tokens.push("<|endoftext|>".into());
        let eot = tokens.len() as u32 - 1;
        let merges: Vec<String> = merges.iter().map(|s| s.to_string()).collect();
        BpeTokenizer::new(tokens, &merges, &[], pre, eot).unwrap()
    }

    #[test]
    fn byte_map_is_gpt2s() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'\t'), 'ĉ');
        assert_eq!(byte_to_char(0), 'Ā');
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        assert_eq!(byte_to_char(0xFF), 'ÿ');
        // "é" = C3 A9, both printable Latin-1.
        assert_eq!(byte_to_char(0xC3), 'Ã');
        assert_eq!(byte_to_char(0xA9), '©');
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c), "byte {b} maps to a repeated char");
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn merges_apply_by_rank() {
        // "he" outranks "th": "the" → t + he.
        let t = tiny(&["h e", "t h"], &["he", "th"], PreTokenizer::Gpt2);
        let he = t.token_id("he").unwrap();
        assert_eq!(t.encode("the"), vec![u32::from(b't'), he]);
        // The other order: th + e.
        let t = tiny(&["t h", "h e"], &["he", "th"], PreTokenizer::Gpt2);
        let th = t.token_id("th").unwrap();
        assert_eq!(t.encode("the"), vec![th, u32::from(b'e')]);
        // Merges chain: Ġ t → Ġt, then Ġt he → Ġthe; leftmost on ties.
        let t = tiny(
            &["h e", "Ġ t", "Ġt he", "a a"],
            &["he", "Ġt", "Ġthe", "aa"],
            PreTokenizer::Gpt2,
        );
        let the = t.token_id("Ġthe").unwrap();
        let aa = t.token_id("aa").unwrap();
        assert_eq!(
            t.encode(" the aaa"),
            vec![the, u32::from(b' '), aa, u32::from(b'a')]
        );
        // A merge whose result is not in the vocabulary is ignored.
        let t = tiny(&["x y"], &[], PreTokenizer::Gpt2);
        assert_eq!(t.encode("xy"), vec![u32::from(b'x'), u32::from(b'y')]);
        assert!(BpeTokenizer::new(
            vec!["a".into()],
            &["ab".to_string()],
            &[],
            PreTokenizer::Gpt2,
            0
        )
        .is_err());
    }

    #[test]
    fn ascii_fast_path_matches_the_tables() {
        let [space, number, letter] = class_tables();
        for c in (0u8..128).map(char::from) {
            let want = if in_ranges(space, c) {
                Class::Space
            } else if in_ranges(number, c) {
                Class::Number
            } else if in_ranges(letter, c) {
                Class::Letter
            } else {
                Class::Other
            };
            assert!(class(c) == want, "{c:?}");
        }
    }

    #[test]
    fn bytes_without_a_token_are_dropped() {
        // No token for byte 0x04; `tokenizers` drops it, and its neighbours in the piece
        // (`!\u{4}?` is one piece of symbols) then merge.
        let mut tokens: Vec<String> = (0..=255u8)
            .filter(|&b| b != 4)
            .map(|b| byte_to_char(b).to_string())
            .collect();
        tokens.extend(["!?".to_string(), "<|endoftext|>".to_string()]);
        let bang_q = tokens.len() as u32 - 2;
        let eot = bang_q + 1;
        let merges = ["! ?".to_string()];
        let t = BpeTokenizer::new(tokens, &merges, &[], PreTokenizer::Gpt2, eot).unwrap();
        assert_eq!(t.encode("!\u{4}?"), vec![bang_q]);
        assert_eq!(t.encode("\u{4}"), Vec::<u32>::new());
    }

    #[test]
    fn byte_fallback_and_round_trip() {
        let t = tiny(&["Ã ©"], &["Ã©"], PreTokenizer::Gpt2IsolatedDigits);
        let e = t.token_id("Ã©").unwrap();
        // Bytes without merges are their byte tokens (ids = byte values here).
        assert_eq!(t.encode("é€"), vec![e, 0xE2, 0x82, 0xAC]);
        for s in [
            "Hello world",
            "naïve café — ½ 3.14159 \u{1F600} 日本語テキスト",
            "  two  spaces\n\n\tand tabs \r\n end ",
            "it's we'll they'RE x'' ''s",
            "",
        ] {
            assert_eq!(t.decode(&t.encode(s)), s, "{s:?}");
        }
        // End-of-text written in text is the special token; encode_plain keeps it as text.
        let eot = Tokenize::eot(&t);
        let ids = t.encode("a<|endoftext|>b");
        assert_eq!(ids, vec![u32::from(b'a'), eot, u32::from(b'b')]);
        assert_eq!(t.decode(&ids), "a<|endoftext|>b");
        assert_eq!(t.encode_plain("<|endoftext|>").len(), 13);
        assert_eq!(t.to_json()["eot_token"], "<|endoftext|>");
    }

    #[test]
    fn pre_tokenizer_follows_the_gpt2_pattern() {
        let g = PreTokenizer::Gpt2;
        assert_eq!(split(g, "Hello world"), ["Hello", " world"]);
        assert_eq!(
            split(g, "I'm 42 years, ok?!"),
            ["I", "'m", " 42", " years", ",", " ok", "?!"]
        );
        assert_eq!(split(g, "a  b"), ["a", " ", " b"]);
        assert_eq!(split(g, "a \n\nb"), ["a", " \n", "\n", "b"]);
        assert_eq!(split(g, "end  "), ["end", "  "]);
        assert_eq!(split(g, "x\ny"), ["x", "\n", "y"]);
        assert_eq!(split(g, "?'s"), ["?'", "s"]);
        assert_eq!(split(g, "café naïve"), ["café", " naïve"]);
        let d = PreTokenizer::Gpt2IsolatedDigits;
        assert_eq!(split(d, "in 2024!"), ["in", " ", "2", "0", "2", "4", "!"]);
        assert_eq!(split(d, "x1y"), ["x", "1", "y"]);
        // `\p{L}` excludes the `Other_Alphabetic` marks that `char::is_alphabetic` takes.
        assert_eq!(split(g, "हिन्दी"), ["ह", "ि", "न", "\u{94d}", "द", "ी"]);
        assert_eq!(split(g, "a \u{5b0}b Ⓐx"), ["a", " \u{5b0}", "b", " Ⓐ", "x"]);
        assert_eq!(
            split(g, "x\u{a0}\u{3000}y"),
            ["x", "\u{a0}", "\u{3000}", "y"]
        );
        assert_eq!(
            PreTokenizer::from_gguf_name(Some("smollm")),
            (PreTokenizer::Gpt2IsolatedDigits, true)
        );
        assert_eq!(
            PreTokenizer::from_gguf_name(Some("llama-bpe")),
            (PreTokenizer::Gpt2, false)
        );
    }
}
