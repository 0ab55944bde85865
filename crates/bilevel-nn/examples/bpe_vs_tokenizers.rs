//! Compares the hand-written byte-level BPE ([`BpeTokenizer`]) with Hugging Face `tokenizers`
//! built from the same GGUF vocabulary and merges, on SmolLM2-135M-Instruct:
//!
//! ```text
//! cargo run -p bilevel-nn --example bpe_vs_tokenizers -- [EXTRA_DIR_OR_FILE ...]
//! ```
//!
//! Run from the repository root. The corpus: every GSM8K question + answer
//! (`data/gsm8k/*.jsonl`), every Markdown file and Rust source in the repository, a list of
//! hard cases (accents, CJK, emoji, digit and whitespace runs, special tokens), every Unicode
//! scalar value (in chunks of 64 between spaces, letters and digits), and each UTF-8 file
//! under the extra paths. Prints the number of texts and of identical encodings, the first
//! differences (text and both encodings), the texts whose pre-tokenizer pieces differ, and the
//! encode throughput of each, side by side (best of three passes after the agreement pass, so
//! with warm caches; "hf batch" is `encode_batch_fast`, parallel on all cores).

use std::path::{Path, PathBuf};
use std::time::Instant;

use bilevel_nn::bpe::{byte_to_char, pre_tokenize, BpeTokenizer};
use bilevel_nn::llama::{fetch_smollm2, read_gguf};
use bilevel_nn::Tokenize;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};

#[path = "../tests/support/hf_bpe.rs"]
mod hf_bpe;
use hf_bpe::{all_chars, hard_cases, hf_from_gguf, Error};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>, want: &dyn Fn(&Path) -> bool) {
    if p.is_dir() {
        let Ok(rd) = std::fs::read_dir(p) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            if e.file_name().is_some_and(|n| n == "target" || n == ".git") {
                continue;
            }
            files_under(&e, out, want);
        }
    } else if p.is_file() && want(p) {
        out.push(p.to_path_buf());
    }
}

fn read_texts(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() <= 1 << 20)
        .filter_map(|b| String::from_utf8(b).ok())
        .collect()
}

fn run() -> Result<(), Error> {
    let path = fetch_smollm2(&bilevel_data::default_cache_dir())?;
    let (content, _) = read_gguf(&path)?;
    let t0 = Instant::now();
    let ours = BpeTokenizer::from_gguf(&content, &path)?;
    let t_ours = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let hf = hf_from_gguf(&content)?;
    let t_hf = t0.elapsed().as_secs_f64();
    println!("{}", path.display());
    println!("construction: ours {t_ours:.3} s, tokenizers {t_hf:.3} s");
    let missing: Vec<String> = (0..=255u8)
        .filter(|&b| ours.token_id(&byte_to_char(b).to_string()).is_none())
        .map(|b| format!("{b:#04x}"))
        .collect();
    let md_id = |k: &str| content.metadata.get(k).map(|v| v.to_u32());
    println!(
        "unknown_token_id {:?}, bos {:?}, eos {:?}; bytes without a token ({}): {}",
        md_id("tokenizer.ggml.unknown_token_id"),
        md_id("tokenizer.ggml.bos_token_id"),
        md_id("tokenizer.ggml.eos_token_id"),
        missing.len(),
        missing.join(" ")
    );
    let no_token: Vec<bool> = (0..=255u8)
        .map(|b| ours.token_id(&byte_to_char(b).to_string()).is_none())
        .collect();

    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    let mut gsm = Vec::new();
    for f in ["data/gsm8k/train.jsonl", "data/gsm8k/test.jsonl"] {
        let s = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        for line in s.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            gsm.push(format!(
                "{}\n{}",
                v["question"].as_str().unwrap_or(""),
                v["answer"].as_str().unwrap_or("")
            ));
        }
    }
    groups.push(("gsm8k question+answer", gsm));
    let mut md = Vec::new();
    files_under(Path::new("."), &mut md, &|p| {
        p.extension().is_some_and(|e| e == "md")
    });
    groups.push(("repository *.md", read_texts(&md)));
    let mut rs = Vec::new();
    files_under(Path::new("crates"), &mut rs, &|p| {
        p.extension().is_some_and(|e| e == "rs")
    });
    groups.push(("repository *.rs", read_texts(&rs)));
    groups.push(("hard cases", hard_cases()));
    groups.push(("all Unicode scalars", all_chars()));
    let mut extra = Vec::new();
    for a in std::env::args().skip(1) {
        files_under(Path::new(&a), &mut extra, &|_| true);
    }
    if !extra.is_empty() {
        groups.push(("extra files", read_texts(&extra)));
    }

    // The pieces of each pre-tokenizer alone (no special tokens), in GPT-2's alphabet.
    let hf_pre = hf.get_pre_tokenizer().ok_or("no pre-tokenizer")?;
    let pieces_differ = |t: &str| -> bool {
        let mut pts = PreTokenizedString::from(t);
        hf_pre.pre_tokenize(&mut pts).expect("pre-tokenizes");
        let theirs = pts.get_splits(OffsetReferential::Original, OffsetType::Byte);
        let mut mine = Vec::new();
        pre_tokenize(ours.pre_tokenizer(), t, &mut mine);
        let mine = mine
            .iter()
            .map(|p| p.bytes().map(byte_to_char).collect::<String>());
        !mine.eq(theirs.iter().map(|(s, _, _)| s.to_string()))
    };
    let mut pre_shown = 0;

    let hf_encode = |s: &str| -> Vec<u32> {
        hf.encode_fast(s, false)
            .expect("tokenizers encodes")
            .get_ids()
            .to_vec()
    };

    println!(
        "\n{:<24} {:>7} {:>8} {:>9} {:>8} {:>6} {:>10} {:>9} {:>9} {:>9}",
        "corpus",
        "texts",
        "MB",
        "identical",
        "unk byte",
        "pieces",
        "tokens",
        "ours MB/s",
        "hf MB/s",
        "hf batch"
    );
    let (mut n_all, mut same_all, mut unk_all, mut pre_all, mut bytes_all) = (0usize, 0, 0, 0, 0);
    let mut shown = 0;
    let mut round_trip_fail = [0usize; 2];
    for (name, texts) in &groups {
        let bytes: usize = texts.iter().map(|t| t.len()).sum();
        // Agreement (this pass also fills both caches), then timed passes, alternating.
        let mut same = 0;
        let mut same_but_unk = 0;
        let mut pre_diff = 0;
        let mut ntok = 0;
        for t in texts {
            let a = Tokenize::encode(&ours, t);
            let b = hf_encode(t);
            ntok += a.len();
            if pieces_differ(t) {
                pre_diff += 1;
                if pre_shown < 4 {
                    pre_shown += 1;
                    let mut mine = Vec::new();
                    pre_tokenize(ours.pre_tokenizer(), t, &mut mine);
                    let mut pts = PreTokenizedString::from(t.as_str());
                    hf_pre.pre_tokenize(&mut pts)?;
                    let theirs: Vec<&str> = pts
                        .get_splits(OffsetReferential::Original, OffsetType::Byte)
                        .iter()
                        .map(|(_, o, _)| &t[o.0..o.1])
                        .collect();
                    let k = mine.iter().zip(&theirs).take_while(|(x, y)| x == y).count();
                    let lo = k.saturating_sub(2);
                    println!(
                        "PIECES DIFFER [{name}] at piece {k}:\n  ours: {:?}\n  hf:   {:?}",
                        &mine[lo..(k + 4).min(mine.len())],
                        &theirs[lo..(k + 4).min(theirs.len())]
                    );
                }
            }
            if a == b {
                same += 1;
            } else if t.bytes().any(|c| no_token[c as usize]) {
                // Ours writes the unknown id for a byte without a token; tokenizers (no unk
                // token set) drops it, and may then merge its neighbours.
                same_but_unk += 1;
            } else if shown < 12 {
                shown += 1;
                let k = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                let lo = k.saturating_sub(3);
                let piece = |ids: &[u32]| -> Vec<(u32, String)> {
                    ids.iter()
                        .map(|&i| (i, ours.token(i).unwrap_or("?").to_string()))
                        .collect()
                };
                let ctx: String = ours.decode(&a[lo..(k + 6).min(a.len())]);
                println!(
                    "DIFF [{name}] at token {k} of {}/{}; text near: {ctx:?}\n  ours: {:?}\n  hf:   {:?}",
                    a.len(),
                    b.len(),
                    piece(&a[lo..(k + 6).min(a.len())]),
                    piece(&b[lo..(k + 6).min(b.len())]),
                );
            }
            round_trip_fail[0] += usize::from(ours.decode(&a) != *t);
            round_trip_fail[1] += usize::from(hf.decode(&b, false).ok().as_deref() != Some(t));
        }
        let mut best = [f64::INFINITY; 3];
        for _ in 0..3 {
            let t0 = Instant::now();
            let mut n = 0;
            for t in texts {
                n += Tokenize::encode(&ours, t).len();
            }
            best[0] = best[0].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let mut m = 0;
            for t in texts {
                m += hf_encode(t).len();
            }
            best[1] = best[1].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let enc = hf.encode_batch_fast(refs, false)?;
            best[2] = best[2].min(t0.elapsed().as_secs_f64());
            assert_eq!(enc.iter().map(|e| e.get_ids().len()).sum::<usize>(), m);
            assert!(n == ntok && m > 0);
        }
        let mb = bytes as f64 / 1e6;
        println!(
            "{name:<24} {:>7} {mb:>8.3} {same:>9} {same_but_unk:>8} {pre_diff:>6} {ntok:>10} {:>9.2} {:>9.2} {:>9.2}",
            texts.len(),
            mb / best[0],
            mb / best[1],
            mb / best[2]
        );
        n_all += texts.len();
        same_all += same;
        unk_all += same_but_unk;
        pre_all += pre_diff;
        bytes_all += bytes;
    }
    println!(
        "total: {n_all} texts, {:.2} MB, {same_all} identical, {unk_all} differ and hold a \
         byte without a token, {} other differences; \
         pre-tokenizer pieces differ in {pre_all}; decode(encode(s)) != s: ours {}, tokenizers {}",
        bytes_all as f64 / 1e6,
        n_all - same_all - unk_all,
        round_trip_fail[0],
        round_trip_fail[1]
    );
    Ok(())
}
