//! The Hugging Face `tokenizers` equivalent of [`bilevel_nn::bpe::BpeTokenizer`], built from
//! the same GGUF metadata: the reference the hand-written tokenizer is checked against
//! (`tests/smollm2.rs`, `examples/bpe_vs_tokenizers.rs`).

use bilevel_nn::bpe::PreTokenizer;
use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

/// Any error.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The Hugging Face tokenizer from the GGUF metadata: BPE on the vocabulary and merges,
/// `Digits(individual) + ByteLevel` (`smollm`) or `ByteLevel` pre-tokenizer, token types 3
/// and 4 as special tokens, `ByteLevel` decoder.
pub fn hf_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, Error> {
    let md = &content.metadata;
    let strings = |k: &str| -> Result<Vec<String>, Error> {
        let v = md.get(k).ok_or_else(|| format!("no key {k}"))?.to_vec()?;
        Ok(v.iter()
            .map(|s| s.to_string().cloned())
            .collect::<Result<_, _>>()?)
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i32> = md
        .get("tokenizer.ggml.token_type")
        .ok_or("no token types")?
        .to_vec()?
        .iter()
        .map(|t| t.to_i32())
        .collect::<Result<_, _>>()?;
    let pre = md
        .get("tokenizer.ggml.pre")
        .map(|v| v.to_string().cloned())
        .transpose()?;
    let mut vocab = Vocab::default();
    for (i, t) in tokens.iter().enumerate() {
        vocab.entry(t.clone()).or_insert(i as u32);
    }
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').ok_or("bad merge")?;
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<_, Error>>()?;
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build()?;
    let mut tok = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tok: PreTokenizerWrapper = match PreTokenizer::from_gguf_name(pre.as_deref()).0 {
        PreTokenizer::Gpt2IsolatedDigits => {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        }
        PreTokenizer::Gpt2 => byte_level.into(),
    };
    tok.with_pre_tokenizer(Some(pre_tok));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = types
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == 3 || t == 4)
        .map(|(i, _)| AddedToken::from(tokens[i].clone(), true))
        .collect();
    tok.add_special_tokens(special)?;
    Ok(tok)
}

/// Texts that exercise the pre-tokenizer, special tokens and the byte map.
pub fn hard_cases() -> Vec<String> {
    let mut v: Vec<String> = [
        "Hello world",
        "naïve café — ½ 日本語のテキスト 😀 emoji 👩‍👩‍👧‍👦 🇫🇷",
        "  spaces\t\ttabs\n\n\nnew lines  ",
        "Ελληνικά, русский, e\u{301}, ﬁ, Ⅻ ²³ ٣٤٥ १२३ 〇",
        "numbers 12345 and 3.14159, 1,000,000! 0x7fff_ffff 1e-10",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|><|endoftext|>a<|endoftext|> <|im_start|><|im_end|>",
        "<|im_start <|im_end| <|endoftext",
        "I'm sure they'll say we've it's I'd; THEY'LL WE'VE IT'S x'' ''s '",
        "हिन्दी भाषा, தமிழ், ไทย ภาษา, العربية, עברית, 한국어, 中文（简体）",
        "\u{a0}\u{2003}\u{3000}\u{200b}\u{feff}x\u{85}y\u{2028}z",
        "\r\n\r\n  \r\n\t \t\n",
        "",
        " ",
        "          ",
        "a     b",
        "tab\t\t\tend\t",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 ℕ ∀x∈ℝ: x² ≥ 0",
        "fn main() { println!(\"{}\", 1 + 2); } // comment",
        "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$",
        "Ünïcödé ÀÉÎÕÜ ßẞ ĳ Œuvre",
        "a\u{300}\u{301}\u{302}\u{303}b",
        "\u{0}\u{1}\u{7f}\u{ad}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("0123456789".repeat(50));
    v.push(" ".repeat(300));
    v.push("\n".repeat(100));
    v.push("abcdefghij".repeat(100));
    v
}

/// Every Unicode scalar value, 64 per text, each text opening with a letter, a space, a digit.
pub fn all_chars() -> Vec<String> {
    let chars: Vec<char> = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
    chars
        .chunks(64)
        .map(|c| {
            let mut s = String::from("a 1");
            for (i, &ch) in c.iter().enumerate() {
                s.push(ch);
                if i % 8 == 7 {
                    s.push(' ');
                }
            }
            s
        })
        .collect()
}
