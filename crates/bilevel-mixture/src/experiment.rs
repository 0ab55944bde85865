//! The matched-budget protocol: build a starting model, run every reweighting method under
//! the same token-pass budget, retrain a fresh model from scratch on each learned mixture
//! with several seeds, and evaluate on the target's test split and every source's held-out
//! split. Checkpointed after every stage and every `checkpoint_every` method steps; a run
//! restarted in the same output folder resumes and ends with the same weights.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bilevel_core::rng::Rng;
use bilevel_nn::{AdamWConfig, LanguageModel};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::data::MixtureData;
use crate::entropy;
use crate::error::{config_err, io_err, MixtureError, Result};
use crate::methods::{
    simplex_grid, Bome, Doremi, Hgms, MethodsConfig, Reweighter, ScaleBio, StepInfo,
};
use crate::snapshot::Snapshot;
use crate::train::{evaluate, train_on_mixture, Eval, ModelSpec, Trainee};

/// Where a training source comes from (resolved by the caller, e.g. the CLI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Display name.
    pub name: String,
    /// A named corpus (`shakespeare`, `sotu`, `reuters`, `spamassassin`, `python-code`,
    /// `gsm8k-train`).
    #[serde(default)]
    pub corpus: Option<String>,
    /// A directory of `.txt` files (one document each).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A JSON-lines file, one document per line from `field`.
    #[serde(default)]
    pub jsonl: Option<PathBuf>,
    /// The JSON field holding the text (with `jsonl`).
    #[serde(default)]
    pub field: Option<String>,
}

/// Data settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The N training sources.
    pub sources: Vec<SourceSpec>,
    /// GSM8K training examples used as the math source (`gsm8k-train`); kept small so that
    /// over-weighting it means repeating it.
    pub math_train_examples: usize,
    /// GSM8K training examples after those, held out as the validation target (upper level).
    pub val_examples: usize,
    /// GSM8K test examples for the final evaluation (0: all 1,319).
    pub test_examples: usize,
    /// Fraction of each source's documents held out for evaluation.
    pub heldout_fraction: f64,
    /// Cap on each source's training tokens.
    pub max_tokens_per_source: usize,
}

/// The starting model shared by every method: trained on the uniform mixture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// AdamW steps.
    pub steps: u64,
    /// Windows per step.
    pub rows: usize,
    /// Optimiser.
    pub opt: AdamWConfig,
}

/// The brute-force reference: short proxy runs from the starting model on every point of a
/// simplex grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Grid resolution r (points k/r).
    pub resolution: usize,
    /// AdamW steps per proxy run.
    pub steps: u64,
    /// Windows per step.
    pub rows: usize,
    /// Validation windows to score each point.
    pub eval_windows: usize,
}

/// Final training on each learned mixture, from scratch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalConfig {
    /// AdamW steps.
    pub steps: u64,
    /// Windows per step.
    pub rows: usize,
    /// Optimiser.
    pub opt: AdamWConfig,
    /// Seeds (model initialisation and data order).
    pub seeds: Vec<u64>,
    /// Windows per evaluation batch.
    pub eval_rows: usize,
    /// Test windows evaluated (0: the whole test split).
    pub test_windows: usize,
    /// Held-out windows evaluated per source (0: all).
    pub heldout_windows: usize,
}

/// A whole `bilevel reweight` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Seed of the starting model and the methods' sampling.
    pub seed: u64,
    /// `"f32"` or `"f64"`.
    #[serde(default = "f32_name")]
    pub dtype: String,
    /// `"cpu"` (default), `"cuda"` or `"cuda:N"` (needs the `cuda` feature).
    #[serde(default = "cpu_name")]
    pub device: String,
    /// Data.
    pub data: DataConfig,
    /// Architecture.
    pub model: ModelSpec,
    /// Starting model.
    pub warmup: WarmupConfig,
    /// Methods to run, in order: `uniform`, `proportional`, `doremi`, `scalebio`, `bome`,
    /// `hgms`, `grid`.
    pub methods: Vec<String>,
    /// Reweighting budget per method, in token-passes ([`Budget`]).
    pub budget_token_passes: u64,
    /// Method settings.
    pub settings: MethodsConfig,
    /// Grid search.
    pub grid: GridConfig,
    /// Final training.
    #[serde(rename = "final")]
    pub final_training: FinalConfig,
    /// Save a method's state every this many steps (0: only at the end of each stage).
    #[serde(default = "ten")]
    pub checkpoint_every: u64,
}

fn f32_name() -> String {
    "f32".into()
}
fn cpu_name() -> String {
    "cpu".into()
}
fn ten() -> u64 {
    10
}

/// Every method name [`ExperimentConfig::methods`] accepts.
pub const METHODS: [&str; 7] = [
    "uniform",
    "proportional",
    "doremi",
    "scalebio",
    "bome",
    "hgms",
    "grid",
];

impl ExperimentConfig {
    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.dtype()?;
        if self.methods.is_empty() {
            return Err(config_err("methods", "[]", "name at least one method"));
        }
        for (k, m) in self.methods.iter().enumerate() {
            if !METHODS.contains(&m.as_str()) {
                return Err(config_err(
                    &format!("methods[{k}]"),
                    m,
                    &format!("unknown method; known: {}", METHODS.join(", ")),
                ));
            }
            if self.methods[..k].contains(m) {
                return Err(config_err(&format!("methods[{k}]"), m, "listed twice"));
            }
        }
        if self.data.sources.len() < 2 {
            return Err(config_err(
                "data.sources",
                self.data.sources.len(),
                "need at least two sources",
            ));
        }
        for (k, s) in self.data.sources.iter().enumerate() {
            let given = [s.corpus.is_some(), s.dir.is_some(), s.jsonl.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if given != 1 {
                return Err(config_err(
                    &format!("data.sources[{k}] ({})", s.name),
                    given,
                    "give exactly one of `corpus`, `dir`, `jsonl`",
                ));
            }
        }
        if self.final_training.seeds.is_empty() {
            return Err(config_err("final.seeds", "[]", "need at least one seed"));
        }
        self.warmup.opt.validate("warmup.opt.")?;
        self.final_training.opt.validate("final.opt.")?;
        self.settings.validate()?;
        for (f, v) in [
            ("warmup.rows", self.warmup.rows),
            ("final.rows", self.final_training.rows),
            ("final.eval_rows", self.final_training.eval_rows),
            ("grid.rows", self.grid.rows),
            ("grid.resolution", self.grid.resolution),
            ("grid.eval_windows", self.grid.eval_windows),
            (
                "data.max_tokens_per_source",
                self.data.max_tokens_per_source,
            ),
        ] {
            if v == 0 {
                return Err(config_err(f, 0, "must be positive"));
            }
        }
        if self.budget_token_passes == 0 {
            return Err(config_err("budget_token_passes", 0, "must be positive"));
        }
        Ok(())
    }

    /// The candle device; errors name the field (and say when CUDA support is not built in).
    pub fn device(&self) -> Result<Device> {
        let d = self.device.as_str();
        let ordinal = match d {
            "cpu" => return Ok(Device::Cpu),
            "cuda" => 0,
            _ => match d
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => {
                    return Err(config_err(
                        "device",
                        d,
                        "must be \"cpu\", \"cuda\" or \"cuda:N\"",
                    ))
                }
            },
        };
        Device::new_cuda(ordinal).map_err(|e| {
            config_err(
                "device",
                d,
                &format!("{e} (build with `--features cuda` on a machine with the CUDA toolkit)"),
            )
        })
    }

    /// The candle dtype.
    pub fn dtype(&self) -> Result<DType> {
        match self.dtype.as_str() {
            "f32" => Ok(DType::F32),
            "f64" => Ok(DType::F64),
            other => Err(config_err("dtype", other, "must be \"f32\" or \"f64\"")),
        }
    }
}

/// Progress reporting (the CLI draws bars; tests pass [`NoProgress`]).
pub trait Progress {
    /// A stage with `total` units begins.
    fn begin(&mut self, stage: &str, total: u64);
    /// `done` units of the current stage are complete.
    fn advance(&mut self, done: u64, message: &str);
    /// The stage is complete.
    fn finish(&mut self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64, _: &str) {}
    fn finish(&mut self) {}
}

/// One point of a method's weight trajectory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Step.
    pub step: u64,
    /// Token-passes spent.
    pub budget_used: u64,
    /// The mixture after the step.
    pub weights: Vec<f64>,
    /// The step's validation loss (when computed).
    pub val_loss: Option<f64>,
    /// The step's lower-level loss (when computed).
    pub lower_loss: Option<f64>,
}

impl TracePoint {
    /// The starting point of a trajectory: step 0, nothing spent.
    pub fn initial(weights: Vec<f64>) -> Self {
        Self {
            step: 0,
            budget_used: 0,
            weights,
            val_loss: None,
            lower_loss: None,
        }
    }
}

/// What a reweighting method produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodOutcome {
    /// The method.
    pub method: String,
    /// The learned mixture.
    pub weights: Vec<f64>,
    /// Token-passes spent (grid: its proxy runs, outside the matched budget).
    pub budget: Budget,
    /// Steps taken.
    pub steps: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Weights after every step.
    pub trajectory: Vec<TracePoint>,
    /// Method-specific summary (the grid's scores).
    pub extra: serde_json::Value,
}

/// The evaluation of one retrained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalOutcome {
    /// The method whose mixture was used.
    pub method: String,
    /// The seed.
    pub seed: u64,
    /// GSM8K test.
    pub test: Eval,
    /// GSM8K validation (the upper-level objective).
    pub val: Eval,
    /// Each source's held-out split.
    pub heldout: Vec<Eval>,
    /// The saved model.
    pub model_file: String,
    /// Wall time of the training, seconds.
    pub wall_s: f64,
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    /// Source names.
    pub sources: Vec<String>,
    /// Training tokens per source.
    pub source_tokens: Vec<usize>,
    /// The starting model's validation loss.
    pub start_val: Option<Eval>,
    /// Per method.
    pub methods: Vec<MethodOutcome>,
    /// Per method and seed.
    pub finals: Vec<FinalOutcome>,
}

/// How [`run`] is driven.
pub struct RunOptions<'a> {
    /// Output folder (checkpoints in `checkpoint/`, models in `models/`).
    pub out_dir: &'a Path,
    /// Stop with [`MixtureError::Interrupted`] after this many method steps in this session,
    /// having saved a checkpoint (to test resumption).
    pub halt_after_steps: Option<u64>,
    /// Progress display.
    pub progress: &'a mut dyn Progress,
}

#[derive(Serialize, Deserialize)]
struct State {
    config: serde_json::Value,
    result: ExperimentResult,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| config_err("json", e, "could not serialise"))?;
    std::fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Runs (or resumes) the protocol; see the module docs.
pub fn run(
    cfg: &ExperimentConfig,
    data: &MixtureData,
    opts: RunOptions<'_>,
) -> Result<ExperimentResult> {
    cfg.validate()?;
    let dtype = cfg.dtype()?;
    let dev = cfg.device()?;
    let ck = opts.out_dir.join("checkpoint");
    std::fs::create_dir_all(&ck).map_err(|e| io_err(&ck, e))?;
    std::fs::create_dir_all(opts.out_dir.join("models")).map_err(|e| io_err(opts.out_dir, e))?;
    let state_path = ck.join("state.json");
    let cfg_json =
        serde_json::to_value(cfg).map_err(|e| config_err("config", e, "could not serialise"))?;
    let result = if state_path.exists() {
        let text = std::fs::read_to_string(&state_path).map_err(|e| io_err(&state_path, e))?;
        let st: State = serde_json::from_str(&text).map_err(|e| MixtureError::Checkpoint {
            path: state_path.display().to_string(),
            reason: e.to_string(),
        })?;
        if st.config != cfg_json {
            return Err(MixtureError::Checkpoint {
                path: state_path.display().to_string(),
                reason: "written by a different configuration; use another output folder or delete the checkpoint".into(),
            });
        }
        st.result
    } else {
        ExperimentResult {
            sources: data.sources.iter().map(|s| s.name.clone()).collect(),
            source_tokens: data.sizes(),
            ..Default::default()
        }
    };
    let save_state = |r: &ExperimentResult| {
        write_json(
            &state_path,
            &State {
                config: cfg_json.clone(),
                result: r.clone(),
            },
        )
    };
    let n = data.n();
    let progress = opts.progress;

    // 1. The starting model: trained on the uniform mixture.
    let start = cfg.model.build(data.vocab, cfg.seed, dtype, &dev)?;
    let start_file = ck.join("start");
    let start = match Snapshot::load(&start_file)? {
        Some(s) => {
            s.get_params("start", start.params())?;
            start
        }
        None => {
            let mut tr = Trainee::new(start, cfg.warmup.opt)?;
            let mut rng = Rng::substream(cfg.seed, 1);
            progress.begin("starting model (uniform mixture)", cfg.warmup.steps);
            let uniform = vec![1.0 / n as f64; n];
            train_on_mixture(
                &mut tr,
                data,
                &uniform,
                cfg.warmup.steps,
                cfg.warmup.rows,
                &mut rng,
                "warm-up",
                &mut |t| progress.advance(t + 1, ""),
            )?;
            progress.finish();
            let mut s = Snapshot::default();
            s.put_params("start", tr.model.params());
            s.save(&start_file)?;
            tr.model
        }
    };
    run_after_start(
        cfg,
        data,
        start,
        result,
        save_state,
        progress,
        &ck,
        opts.out_dir,
        opts.halt_after_steps,
    )
}

#[allow(clippy::too_many_arguments)]
fn run_after_start(
    cfg: &ExperimentConfig,
    data: &MixtureData,
    start: Box<dyn LanguageModel>,
    mut result: ExperimentResult,
    save_state: impl Fn(&ExperimentResult) -> Result<()>,
    progress: &mut dyn Progress,
    ck: &Path,
    out_dir: &Path,
    halt_after: Option<u64>,
) -> Result<ExperimentResult> {
    let n = data.n();
    if result.start_val.is_none() {
        result.start_val = Some(evaluate(
            start.as_ref(),
            &data.val,
            cfg.final_training.eval_rows,
            0,
        )?);
    }
    save_state(&result)?;
    let mut session_steps = 0u64;
    // 2. Reweighting, method by method.
    for (k, name) in cfg.methods.iter().enumerate() {
        if result.methods.iter().any(|m| &m.method == name) {
            continue;
        }
        let clock = Instant::now();
        let seed = cfg.seed.wrapping_add(100 + k as u64);
        let outcome = match name.as_str() {
            "uniform" => fixed(name, vec![1.0 / n as f64; n]),
            "proportional" => {
                let s = data.sizes();
                let t: usize = s.iter().sum();
                fixed(name, s.iter().map(|v| *v as f64 / t as f64).collect())
            }
            "grid" => grid_search(cfg, data, start.as_ref(), progress, ck)?,
            _ => {
                let mut m: Box<dyn Reweighter> = match name.as_str() {
                    "hgms" => Box::new(Hgms::new(
                        start.as_ref(),
                        &cfg.model,
                        data,
                        &cfg.settings,
                        seed,
                    )?),
                    "bome" => Box::new(Bome::new(
                        start.as_ref(),
                        &cfg.model,
                        data,
                        &cfg.settings,
                        seed,
                    )?),
                    "scalebio" => Box::new(ScaleBio::new(
                        start.as_ref(),
                        &cfg.model,
                        data,
                        &cfg.settings,
                        seed,
                    )?),
                    _ => Box::new(Doremi::new(
                        start.as_ref(),
                        &cfg.model,
                        data,
                        &cfg.settings,
                        seed,
                    )?),
                };
                iterate(
                    cfg,
                    data,
                    m.as_mut(),
                    progress,
                    ck,
                    &mut session_steps,
                    halt_after,
                )?
            }
        };
        let mut outcome = outcome;
        if outcome.wall_s == 0.0 {
            outcome.wall_s = clock.elapsed().as_secs_f64();
        }
        result.methods.push(outcome);
        save_state(&result)?;
    }
    // 3. Retrain from scratch on each mixture, every seed; evaluate.
    let fc = &cfg.final_training;
    let todo: Vec<(String, Vec<f64>, u64)> = result
        .methods
        .iter()
        .flat_map(|m| {
            fc.seeds
                .iter()
                .map(move |&s| (m.method.clone(), m.weights.clone(), s))
        })
        .filter(|(m, _, s)| !result.finals.iter().any(|f| &f.method == m && f.seed == *s))
        .collect();
    let dtype = cfg.dtype()?;
    for (method, w, seed) in todo {
        let clock = Instant::now();
        let model = cfg.model.build(data.vocab, seed, dtype, &cfg.device()?)?;
        let mut tr = Trainee::new(model, fc.opt)?;
        let mut rng = Rng::substream(seed, 7);
        progress.begin(&format!("final training: {method}, seed {seed}"), fc.steps);
        train_on_mixture(
            &mut tr,
            data,
            &w,
            fc.steps,
            fc.rows,
            &mut rng,
            &format!("final training ({method}, seed {seed})"),
            &mut |t| progress.advance(t + 1, ""),
        )?;
        let m = tr.model.as_ref();
        let test = evaluate(m, &data.test, fc.eval_rows, fc.test_windows)?;
        let val = evaluate(m, &data.val, fc.eval_rows, 0)?;
        let heldout = data
            .sources
            .iter()
            .map(|s| evaluate(m, &s.heldout, fc.eval_rows, fc.heldout_windows))
            .collect::<Result<Vec<_>>>()?;
        progress.advance(
            fc.steps,
            &format!("test {:.4} nats/token", test.nats_per_token),
        );
        progress.finish();
        let file = format!("models/{method}-seed{seed}.safetensors");
        m.params().save_safetensors(&out_dir.join(&file))?;
        result.finals.push(FinalOutcome {
            method,
            seed,
            test,
            val,
            heldout,
            model_file: file,
            wall_s: clock.elapsed().as_secs_f64(),
        });
        save_state(&result)?;
    }
    Ok(result)
}

fn fixed(name: &str, w: Vec<f64>) -> MethodOutcome {
    MethodOutcome {
        method: name.to_string(),
        trajectory: vec![TracePoint::initial(w.clone())],
        weights: w,
        budget: Budget::default(),
        steps: 0,
        wall_s: 0.0,
        extra: serde_json::Value::Null,
    }
}

fn iterate(
    cfg: &ExperimentConfig,
    data: &MixtureData,
    m: &mut dyn Reweighter,
    progress: &mut dyn Progress,
    ck: &Path,
    session_steps: &mut u64,
    halt_after: Option<u64>,
) -> Result<MethodOutcome> {
    let name = m.name();
    let file = ck.join(format!("method-{name}"));
    let mut budget = Budget::new(cfg.budget_token_passes);
    let mut trajectory = vec![TracePoint::initial(m.weights())];
    let mut wall = 0.0;
    if let Some(s) = Snapshot::load(&file)? {
        m.load(&s)?;
        budget = s.get_json("budget")?;
        trajectory = s.get_json("trajectory")?;
        wall = s.get_json("wall_s")?;
    }
    let mut step = trajectory.len() as u64 - 1;
    let save = |m: &dyn Reweighter,
                budget: &Budget,
                trajectory: &Vec<TracePoint>,
                wall: f64|
     -> Result<()> {
        let mut s = Snapshot::default();
        m.save(&mut s);
        s.put_json("budget", budget);
        s.put_json("trajectory", trajectory);
        s.put_json("wall_s", &wall);
        s.save(&file)
    };
    progress.begin(&format!("reweighting: {name}"), budget.total);
    progress.advance(budget.used.min(budget.total), "");
    let clock = Instant::now();
    let wall0 = wall;
    while !budget.exhausted() {
        let info: StepInfo = m.step(data, &mut budget)?;
        step += 1;
        trajectory.push(TracePoint {
            step,
            budget_used: budget.used,
            weights: m.weights(),
            val_loss: info.val_loss,
            lower_loss: info.lower_loss,
        });
        let msg = match info.val_loss {
            Some(v) => format!("val {v:.4}"),
            None => String::new(),
        };
        progress.advance(budget.used.min(budget.total), &msg);
        *session_steps += 1;
        let halt = halt_after.is_some_and(|h| *session_steps >= h);
        if halt || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) {
            save(
                m,
                &budget,
                &trajectory,
                wall0 + clock.elapsed().as_secs_f64(),
            )?;
        }
        if halt {
            return Err(MixtureError::Interrupted);
        }
    }
    progress.finish();
    wall = wall0 + clock.elapsed().as_secs_f64();
    Ok(MethodOutcome {
        method: name.to_string(),
        weights: m.output(),
        budget,
        steps: step,
        wall_s: wall,
        trajectory,
        extra: serde_json::Value::Null,
    })
}

fn grid_search(
    cfg: &ExperimentConfig,
    data: &MixtureData,
    start: &dyn LanguageModel,
    progress: &mut dyn Progress,
    ck: &Path,
) -> Result<MethodOutcome> {
    let g = &cfg.grid;
    let points = simplex_grid(data.n(), g.resolution);
    let file = ck.join("grid");
    let mut scores: Vec<f64> = match Snapshot::load(&file)? {
        Some(s) => s.get_json("scores")?,
        None => Vec::new(),
    };
    let clock = Instant::now();
    let mut budget = Budget::new(0);
    progress.begin("grid search (proxy runs)", points.len() as u64);
    for (k, p) in points.iter().enumerate().skip(scores.len()) {
        let model = crate::methods::copy_model(start, &cfg.model, data.vocab)?;
        let mut tr = Trainee::new(model, cfg.settings.lower)?;
        let mut rng = Rng::substream(cfg.seed, 1000 + k as u64);
        train_on_mixture(
            &mut tr,
            data,
            p,
            g.steps,
            g.rows,
            &mut rng,
            "grid proxy run",
            &mut |_| {},
        )?;
        let e = evaluate(
            tr.model.as_ref(),
            &data.val,
            cfg.final_training.eval_rows,
            g.eval_windows,
        )?;
        scores.push(e.nats_per_token);
        progress.advance(k as u64 + 1, &format!("val {:.4}", e.nats_per_token));
        let mut s = Snapshot::default();
        s.put_json("scores", &scores);
        s.save(&file)?;
    }
    progress.finish();
    for _ in 0..points.len() {
        budget.gradient((g.steps as usize) * g.rows * cfg.model.context());
        budget.forward(g.eval_windows * cfg.model.context());
    }
    budget.total = budget.used;
    let best = scores
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut out = fixed("grid", points[best].clone());
    out.budget = budget;
    out.wall_s = clock.elapsed().as_secs_f64();
    out.extra = serde_json::json!({"points": points, "val_nats_per_token": scores, "best": best});
    Ok(out)
}

/// `mean ± sd` (sample standard deviation) of `v`.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, sd)
}

impl ExperimentResult {
    /// The matched-budget table in Markdown: per method the learned weights (%), their
    /// entropy, the GSM8K test loss (nats/token and bits/byte, mean ± sd over seeds), the
    /// validation loss, the mean held-out loss per source, and the reweighting cost.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let short: Vec<String> = self
            .sources
            .iter()
            .map(|n| n.chars().take(12).collect())
            .collect();
        s.push_str("| method | weights (%): ");
        s.push_str(&short.join(" / "));
        s.push_str(" | entropy (nats) | GSM8K test nats/token | GSM8K test bits/byte | GSM8K val nats/token | held-out nats/token: ");
        s.push_str(&short.join(" / "));
        s.push_str(" | reweighting token-passes | reweighting wall (s) |\n|---|---|---|---|---|---|---|---|---|\n");
        for m in &self.methods {
            let f: Vec<&FinalOutcome> = self
                .finals
                .iter()
                .filter(|f| f.method == m.method)
                .collect();
            let w: Vec<String> = m
                .weights
                .iter()
                .map(|v| format!("{:.1}", 100.0 * v))
                .collect();
            let cell = |xs: Vec<f64>| {
                if xs.is_empty() {
                    "–".to_string()
                } else {
                    let (a, b) = mean_sd(&xs);
                    format!("{a:.4} ± {b:.4}")
                }
            };
            let ho: Vec<String> = (0..self.sources.len())
                .map(|i| {
                    let xs: Vec<f64> = f.iter().map(|o| o.heldout[i].nats_per_token).collect();
                    if xs.is_empty() {
                        "–".into()
                    } else {
                        format!("{:.3}", mean_sd(&xs).0)
                    }
                })
                .collect();
            s.push_str(&format!(
                "| {} | {} | {:.3} | {} | {} | {} | {} | {:.3e} | {:.1} |\n",
                m.method,
                w.join(" / "),
                entropy(&m.weights),
                cell(f.iter().map(|o| o.test.nats_per_token).collect()),
                cell(f.iter().map(|o| o.test.bits_per_byte).collect()),
                cell(f.iter().map(|o| o.val.nats_per_token).collect()),
                ho.join(" / "),
                m.budget.used as f64,
                m.wall_s,
            ));
        }
        s
    }

    /// Weights per method as CSV (`method,source,weight`).
    pub fn weights_csv(&self) -> String {
        let mut s = String::from("method,source,weight\n");
        for m in &self.methods {
            for (n, w) in self.sources.iter().zip(&m.weights) {
                s.push_str(&format!("{},{},{:.6}\n", m.method, n, w));
            }
        }
        s
    }

    /// Weight trajectories as CSV (`method,step,budget_used,source,weight`).
    pub fn trajectories_csv(&self) -> String {
        let mut s = String::from("method,step,budget_used,val_loss,source,weight\n");
        for m in &self.methods {
            for t in &m.trajectory {
                for (n, w) in self.sources.iter().zip(&t.weights) {
                    let v = t.val_loss.map_or(String::new(), |v| format!("{v:.6}"));
                    s.push_str(&format!(
                        "{},{},{},{},{},{:.6}\n",
                        m.method, t.step, t.budget_used, v, n, w
                    ));
                }
            }
        }
        s
    }

    /// Writes `results.json`, `table.md`, `weights.csv`, `trajectories.csv` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("results.json"), self)?;
        for (f, text) in [
            ("table.md", self.table()),
            ("weights.csv", self.weights_csv()),
            ("trajectories.csv", self.trajectories_csv()),
        ] {
            let p = dir.join(f);
            std::fs::write(&p, text).map_err(|e| io_err(&p, e))?;
        }
        Ok(())
    }
}
