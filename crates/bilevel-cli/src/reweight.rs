//! `bilevel reweight CONFIG`: data-mixture reweighting for a language model with GSM8K as
//! the target (the matched-budget protocol of `bilevel_mixture::experiment`).
//!
//! Writes into OUT: `results.json`, `table.md`, `weights.csv`, `trajectories.csv`,
//! `weights.svg` (weight trajectories), `models/<method>-seed<s>.safetensors`,
//! `tokenizer.json`, `config.toml`; and `checkpoint/` (rerunning the same command resumes).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bilevel_data::corpus::{load_corpus, CorpusSpec, Gsm8kSplit};
use bilevel_mixture::data::SourceDocuments;
use bilevel_mixture::experiment::{run, ExperimentConfig, Progress, RunOptions};
use bilevel_mixture::ModelSpec;
use bilevel_mixture::{MixtureData, MixtureError};
use bilevel_nn::bpe::BpeTokenizer;
use bilevel_nn::{ByteTokenizer, Tokenize};
use indicatif::{ProgressBar, ProgressStyle};

use crate::Failure;
use bilevel_bench::plot::{write_svg, Panel, Series};

/// Progress bars on a terminal, one line per stage otherwise.
struct Bars {
    bar: Option<ProgressBar>,
    stage: String,
    tty: bool,
    clock: std::time::Instant,
}

impl Progress for Bars {
    fn begin(&mut self, stage: &str, total: u64) {
        self.stage = stage.to_string();
        self.clock = std::time::Instant::now();
        if self.tty {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:42} [{bar:30}] {percent:>3}% {elapsed_precise} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(stage.to_string());
            self.bar = Some(bar);
        } else {
            eprintln!("{stage} …");
        }
    }
    fn advance(&mut self, done: u64, message: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            if !message.is_empty() {
                b.set_message(message.to_string());
            }
        }
    }
    fn finish(&mut self) {
        match self.bar.take() {
            Some(b) => b.finish(),
            None => eprintln!(
                "{} done in {:.1} s",
                self.stage,
                self.clock.elapsed().as_secs_f64()
            ),
        }
    }
}

fn load_config(path: &Path) -> Result<ExperimentConfig, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::config(format!("{}: {e}", path.display())))?;
    let mut cfg: ExperimentConfig =
        toml::from_str(&text).map_err(|e| Failure::config(format!("{}: {e}", path.display())))?;
    cfg.model.set_cache_dir(bilevel_data::default_cache_dir());
    cfg.validate()
        .map_err(|e| Failure::config(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

/// Keeps whole documents, in order, up to about `max_bytes` (at least two).
fn cap(docs: Vec<String>, max_bytes: usize) -> Vec<String> {
    let mut total = 0;
    let mut out = Vec::new();
    for d in docs {
        if out.len() >= 2 && total + d.len() > max_bytes {
            break;
        }
        total += d.len();
        out.push(d);
    }
    out
}

/// The tokenizer of a run: byte-level, or the pretrained model's BPE from its GGUF.
fn tokenizer(cfg: &ExperimentConfig) -> Result<Box<dyn Tokenize>, Failure> {
    match &cfg.model {
        ModelSpec::Pretrained { gguf, .. } => {
            let path = cfg
                .model
                .gguf_path(gguf)
                .map_err(|e| Failure::run(format!("model.gguf: {e}")))?;
            let t = BpeTokenizer::from_gguf_file(&path)
                .map_err(|e| Failure::run(format!("model.gguf: {e}")))?;
            Ok(Box::new(t))
        }
        _ => Ok(Box::new(ByteTokenizer)),
    }
}

/// Loads the sources and the GSM8K validation and test portions; errors name the source.
pub fn load_data(
    cfg: &ExperimentConfig,
    base: &Path,
    tok: &dyn Tokenize,
) -> Result<MixtureData, Failure> {
    let d = &cfg.data;
    let train = bilevel_data::corpus::gsm8k(Gsm8kSplit::Train)
        .map_err(|e| Failure::run(format!("GSM8K: {e}")))?;
    let test = bilevel_data::corpus::gsm8k(Gsm8kSplit::Test)
        .map_err(|e| Failure::run(format!("GSM8K: {e}")))?;
    let m = d.math_train_examples;
    if m + d.val_examples > train.len() || m < 2 || d.val_examples < 2 {
        return Err(Failure::config(format!(
            "data.math_train_examples = {m} and data.val_examples = {} must each be ≥ 2 and together ≤ {} (GSM8K train)",
            d.val_examples,
            train.len()
        )));
    }
    let val = train[m..m + d.val_examples].to_vec();
    let test = if d.test_examples == 0 {
        test
    } else {
        test[..d.test_examples.min(test.len())].to_vec()
    };
    let cache = bilevel_data::default_cache_dir();
    let budget_bytes = 3 * d.max_tokens_per_source;
    let mut sources = Vec::with_capacity(d.sources.len());
    for s in &d.sources {
        let docs = match (&s.corpus, &s.dir, &s.jsonl) {
            (Some(c), _, _) if c == "gsm8k-train" => train[..m].to_vec(),
            (Some(c), _, _) if c == "gsm8k-test" => {
                return Err(Failure::config(format!(
                    "data.sources `{}`: gsm8k-test is the final evaluation split and cannot be a training source",
                    s.name
                )))
            }
            (Some(c), _, _) => load(&CorpusSpec::Named(c.clone()), &cache, &s.name)?,
            (_, Some(dir), _) => load(
                &CorpusSpec::Dir(dir.clone()).with_base_dir(base),
                &cache,
                &s.name,
            )?,
            (_, _, Some(path)) => load(
                &CorpusSpec::Jsonl {
                    path: path.clone(),
                    field: s.field.clone().unwrap_or_else(|| "text".into()),
                }
                .with_base_dir(base),
                &cache,
                &s.name,
            )?,
            _ => {
                return Err(Failure::config(format!(
                    "data.sources `{}`: give one of corpus, dir, jsonl",
                    s.name
                )))
            }
        };
        sources.push(SourceDocuments {
            name: s.name.clone(),
            documents: cap(docs, budget_bytes),
        });
    }
    MixtureData::build(
        tok,
        &sources,
        &val,
        &test,
        d.heldout_fraction,
        d.max_tokens_per_source,
        cfg.model.context(),
    )
    .map_err(|e| Failure::config(e.to_string()))
}

fn load(spec: &CorpusSpec, cache: &Path, name: &str) -> Result<Vec<String>, Failure> {
    load_corpus(spec, cache)
        .map(|c| c.documents)
        .map_err(|e| Failure::run(format!("source `{name}`: {e}")))
}

/// Runs `bilevel reweight`.
pub fn reweight_command(
    config: &Path,
    out: Option<PathBuf>,
    threads: Option<usize>,
) -> Result<(), Failure> {
    let cfg = load_config(config)?;
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // One thread is ≈3× faster than two for these small matrices on a 2-core machine
        // (docs/CANDLE.md); `--threads` overrides.
        std::env::set_var("RAYON_NUM_THREADS", threads.unwrap_or(1).to_string());
    } else if let Some(t) = threads {
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    let stem = config
        .file_stem()
        .map_or("reweight".into(), |s| s.to_string_lossy().into_owned());
    let out = out.unwrap_or_else(|| PathBuf::from("out").join(stem));
    std::fs::create_dir_all(&out).map_err(|e| Failure::run(format!("{}: {e}", out.display())))?;
    let base = config.parent().unwrap_or(Path::new("."));
    let tok = tokenizer(&cfg)?;
    let data = load_data(&cfg, base, tok.as_ref())?;
    eprintln!(
        "sources (training tokens): {}; GSM8K validation {} tokens, test {} tokens",
        data.sources
            .iter()
            .map(|s| format!("{} {}", s.name, s.train.tokens.len()))
            .collect::<Vec<_>>()
            .join(", "),
        data.val.tokens.len(),
        data.test.tokens.len()
    );
    let write = |name: &str, text: String| -> Result<(), Failure> {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| Failure::run(format!("{}: {e}", p.display())))
    };
    write("tokenizer.json", tok.to_json().to_string())?;
    write(
        "config.toml",
        std::fs::read_to_string(config)
            .map_err(|e| Failure::run(format!("{}: {e}", config.display())))?,
    )?;
    let mut bars = Bars {
        bar: None,
        stage: String::new(),
        tty: std::io::stderr().is_terminal(),
        clock: std::time::Instant::now(),
    };
    let result = run(
        &cfg,
        &data,
        RunOptions {
            out_dir: &out,
            halt_after_steps: None,
            progress: &mut bars,
        },
    )
    .map_err(|e| match e {
        MixtureError::Config { .. } => Failure::config(format!("{}: {e}", config.display())),
        other => Failure::run(format!("{other} (output folder {})", out.display())),
    })?;
    result
        .write(&out)
        .map_err(|e| Failure::run(e.to_string()))?;
    plot_weights(&result, &out.join("weights.svg"))?;
    println!("{}", result.table());
    println!("wrote {}", out.display());
    Ok(())
}

fn plot_weights(r: &bilevel_mixture::ExperimentResult, path: &Path) -> Result<(), Failure> {
    let panels: Vec<Panel> = r
        .methods
        .iter()
        .filter(|m| m.trajectory.len() > 1)
        .map(|m| Panel {
            title: format!("{}: source weights", m.method),
            x_label: "token-passes".into(),
            log_y: false,
            series: r
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| Series {
                    label: s.clone(),
                    group: i,
                    points: m
                        .trajectory
                        .iter()
                        .map(|t| (t.budget_used as f64, t.weights[i]))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    if panels.is_empty() {
        return Ok(());
    }
    write_svg(path, "Mixture weights during reweighting", &panels, 2).map_err(Failure::run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped reweighting config parses and validates (CPU, GPU and SmolLM2 ones).
    #[test]
    fn shipped_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("reweight") && name.ends_with(".toml") {
                if let Err(f) = load_config(&p) {
                    panic!("{name}: {}", f.message);
                }
                n += 1;
            }
        }
        assert!(n >= 3, "found {n} reweight configs");
    }
}
