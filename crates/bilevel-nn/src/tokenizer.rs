//! Tokenizers: the [`Tokenize`] interface and the byte-level [`ByteTokenizer`] (token `b` for
//! byte `b`, 0–255, and one end-of-text token 256).

use serde::{Deserialize, Serialize};

/// Text ↔ token ids, as the reweighting pipeline needs them.
pub trait Tokenize: Send + Sync {
    /// Vocabulary size.
    fn vocab(&self) -> usize;
    /// The token placed after each document.
    fn eot(&self) -> u32;
    /// The tokens of `text` (no end-of-text appended).
    fn encode(&self, text: &str) -> Vec<u32>;
    /// The text of `tokens` (lossy where tokens do not form valid UTF-8).
    fn decode(&self, tokens: &[u32]) -> String;
    /// A JSON description saved with a run (`tokenizer.json`).
    fn to_json(&self) -> serde_json::Value;
    /// The documents concatenated, each followed by [`eot`](Self::eot).
    fn encode_documents(&self, docs: &[String]) -> Vec<u32> {
        let mut out = Vec::new();
        for d in docs {
            out.extend(self.encode(d));
            out.push(self.eot());
        }
        out
    }
}

impl Tokenize for ByteTokenizer {
    fn vocab(&self) -> usize {
        257
    }
    fn eot(&self) -> u32 {
        Self::EOT
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        ByteTokenizer::encode(self, text)
    }
    fn decode(&self, tokens: &[u32]) -> String {
        ByteTokenizer::decode(self, tokens)
    }
    fn to_json(&self) -> serde_json::Value {
        ByteTokenizer::to_json(self)
    }
}

/// Byte-level tokenizer: vocabulary 257 (256 bytes + end-of-text). Bits per byte equal the
/// loss in bits per token on the byte tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// The end-of-text token, placed between documents.
    pub const EOT: u32 = 256;

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        257
    }

    /// The tokens of `text` (its UTF-8 bytes).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    /// Text of `tokens` (end-of-text shown as a newline; invalid UTF-8 replaced).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .map(|&t| if t < 256 { t as u8 } else { b'\n' })
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A JSON description saved with a run (`tokenizer.json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"kind": "byte-level", "vocab": 257, "eot": Self::EOT,
            "note": "token b < 256 is the byte b of the UTF-8 text; 256 ends a document"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_documents() {
        let t = ByteTokenizer;
        let s = "Natalia sold 48 clips — ½ as many";
        assert_eq!(t.decode(&t.encode(s)), s);
        let toks = Tokenize::encode_documents(&t, &["ab".to_string(), "c".to_string()]);
        assert_eq!(toks, vec![97, 98, 256, 99, 256]);
        assert_eq!(Tokenize::vocab(&t), 257);
    }
}
