//! The reweighting methods (docs/ALGORITHMS.md §2 practical variant, §6), each one step at a
//! time, charged to a [`Budget`], resumable from a [`Snapshot`].
//!
//! | method | per step | output |
//! |---|---|---|
//! | [`Hgms`] | K lower AdamW steps on `Σ p_i L_i`; S selection steps on `Σ p_i L_i + σ L_val` (stay on the training-loss manifold, lower the target loss); a Krylov pseudoinverse solve and the mixture hypergradient; Adam on the logits | `softmax(x)` |
//! | [`Bome`] | T inner AdamW steps from y give ŷ_T; `q = g(y) − g(ŷ_T)`; `d = ∇f + λ∇q`, `λ = max(η‖∇q‖² − ⟨∇f,∇q⟩, 0)/‖∇q‖²`; AdamW on y, Adam on x | `softmax(x)` |
//! | [`ScaleBio`] | AdamW on u (`Σ p_i L_i(u)`), on w (`L_val(w) + α Σ p_i L_i(w)`), Adam on x along `α (diag p − ppᵀ)(L(w) − L(u))` | `softmax(x)` |
//! | [`Doremi`] | excess loss `λ_i = mean_{source i}(ℓ_proxy − ℓ_ref)₊`, `α ← softmax(log α + ηλ)`, `α ← (1−c)α + c/N`, AdamW on the proxy with `Σ α_i L_i` | mean of α over steps |
//!
//! All start from the same starting model; DoReMi's reference model is that starting model
//! (trained on the initial, uniform mixture).

use bilevel_core::rng::Rng;
use bilevel_core::Vector;
use bilevel_nn::derivatives::scalar;
use bilevel_nn::lm::mean_loss;
use bilevel_nn::{AdamWConfig, LanguageModel, TokenBatch};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::data::MixtureData;
use crate::error::{config_err, MixtureError, Result};
use crate::hypergrad::{mixture_hypergradient, HypergradOptions, KrylovMethod};
use crate::snapshot::Snapshot;
use crate::train::{mixture_loss, source_losses, token_losses, tokens, ModelSpec, Trainee};
use crate::{softmax, softmax_jacobian_apply};

/// Settings shared by the iterative methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodsConfig {
    /// Windows per source in each lower-level batch.
    pub rows_per_source: usize,
    /// Windows in each validation batch.
    pub val_rows: usize,
    /// AdamW on the model weights during reweighting.
    pub lower: AdamWConfig,
    /// Adam learning rate on the logits.
    pub logit_lr: f64,
    /// HG-MS settings.
    pub hgms: HgmsConfig,
    /// BOME settings.
    pub bome: BomeConfig,
    /// ScaleBiO settings.
    pub scalebio: ScaleBioConfig,
    /// DoReMi settings.
    pub doremi: DoremiConfig,
}

/// HG-MS practical settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HgmsConfig {
    /// Lower-level steps per outer step.
    pub lower_steps: usize,
    /// Selection steps per outer step.
    pub select_steps: usize,
    /// Weight σ of the validation loss in a selection step (`Σ p_i L_i + σ L_val`).
    pub select_sigma: f64,
    /// Krylov solve of the hypergradient.
    pub hypergrad: HypergradOptions,
    /// Restrict the Krylov solve to the last k blocks (0: every parameter).
    #[serde(default)]
    pub subset_blocks: usize,
}

/// BOME settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BomeConfig {
    /// Inner steps T giving ŷ_T.
    pub inner_steps: usize,
    /// η in `φ = η‖∇q‖²`.
    pub eta: f64,
}

/// ScaleBiO settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleBioConfig {
    /// Penalty weight α.
    pub alpha: f64,
}

/// DoReMi settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoremiConfig {
    /// Step η of the exponentiated update.
    pub eta: f64,
    /// Smoothing c toward uniform.
    pub smoothing: f64,
}

impl MethodsConfig {
    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.rows_per_source == 0 || self.val_rows == 0 {
            return Err(config_err(
                "methods.rows_per_source/val_rows",
                format!("{}/{}", self.rows_per_source, self.val_rows),
                "must be positive",
            ));
        }
        self.lower.validate("methods.lower.")?;
        for (f, v) in [
            ("methods.logit_lr", self.logit_lr),
            ("methods.bome.eta", self.bome.eta),
            ("methods.scalebio.alpha", self.scalebio.alpha),
            ("methods.doremi.eta", self.doremi.eta),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(config_err(f, v, "must be positive and finite"));
            }
        }
        if !(0.0..1.0).contains(&self.doremi.smoothing) {
            return Err(config_err(
                "methods.doremi.smoothing",
                self.doremi.smoothing,
                "must lie in [0, 1)",
            ));
        }
        if self.hgms.select_sigma.is_nan() || self.hgms.select_sigma < 0.0 {
            return Err(config_err(
                "methods.hgms.select_sigma",
                self.hgms.select_sigma,
                "must be non-negative",
            ));
        }
        if self.hgms.hypergrad.iterations == 0 {
            return Err(config_err(
                "methods.hgms.hypergrad.iterations",
                0,
                "must be positive",
            ));
        }
        if self.bome.inner_steps == 0 {
            return Err(config_err(
                "methods.bome.inner_steps",
                0,
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// Adam on the logits (host vectors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitAdam {
    /// Learning rate.
    pub lr: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
}

impl LogitAdam {
    /// Zero moments for N logits.
    pub fn new(lr: f64, n: usize) -> Self {
        Self {
            lr,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// `x ← x − lr · m̂/(√v̂ + 1e-8)` (β = 0.9, 0.999): [`bilevel_core::adam::step`], the
    /// solvers' Adam.
    pub fn step(&mut self, x: &mut [f64], g: &[f64]) {
        let rule = bilevel_core::adam::AdamRule {
            lr: self.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        bilevel_core::adam::step(&rule, &mut self.m, &mut self.v, &mut self.t, x, g);
    }
}

/// What one step reports (for the trace).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepInfo {
    /// Validation loss on the step's validation batch, when the method computes it.
    pub val_loss: Option<f64>,
    /// The lower-level (mixture) loss on the step's batch, when computed.
    pub lower_loss: Option<f64>,
    /// The logit gradient used, when there is one.
    pub grad_x: Option<Vec<f64>>,
    /// Method-specific diagnostics.
    pub extra: serde_json::Value,
}

/// A reweighting method; see the module docs.
pub trait Reweighter {
    /// The method's name.
    fn name(&self) -> &'static str;
    /// One step, charged to `budget`.
    fn step(&mut self, data: &MixtureData, budget: &mut Budget) -> Result<StepInfo>;
    /// The current mixture.
    fn weights(&self) -> Vec<f64>;
    /// The method's answer (DoReMi: the average over steps).
    fn output(&self) -> Vec<f64> {
        self.weights()
    }
    /// Saves the full state.
    fn save(&self, snap: &mut Snapshot);
    /// Restores a state saved by [`save`](Self::save).
    fn load(&mut self, snap: &Snapshot) -> Result<()>;
}

/// Shared pieces: the model being adapted, its optimiser, the logits, the RNG.
struct Core {
    y: Trainee,
    x: Vec<f64>,
    xopt: LogitAdam,
    rng: Rng,
    t: u64,
    rows: usize,
    val_rows: usize,
    len: usize,
    dev: Device,
}

impl Core {
    fn new(
        start: &dyn LanguageModel,
        spec: &ModelSpec,
        vocab: usize,
        cfg: &MethodsConfig,
        seed: u64,
        n: usize,
    ) -> Result<Self> {
        let y = Trainee::new(copy_model(start, spec, vocab)?, cfg.lower)?;
        Ok(Self {
            len: start.context(),
            dev: start.params().device(),
            y,
            x: vec![0.0; n],
            xopt: LogitAdam::new(cfg.logit_lr, n),
            rng: Rng::new(seed),
            t: 0,
            rows: cfg.rows_per_source,
            val_rows: cfg.val_rows,
        })
    }

    fn batches(&mut self, data: &MixtureData) -> Result<(Vec<TokenBatch>, TokenBatch)> {
        let tb = data.per_source_batches(&mut self.rng, self.rows, self.len, &self.dev)?;
        let vb = data.val_batch(&mut self.rng, self.val_rows, self.len, &self.dev)?;
        Ok((tb, vb))
    }

    fn save(&self, snap: &mut Snapshot) {
        snap.put_params("y", self.y.model.params());
        snap.put_adam("y.opt", &self.y.opt);
        snap.put_json("x", &self.x);
        snap.put_json("xopt", &self.xopt);
        snap.put_rng("rng", &self.rng);
        snap.put_json("t", &self.t);
    }

    fn load(&mut self, snap: &Snapshot) -> Result<()> {
        snap.get_params("y", self.y.model.params())?;
        snap.get_adam("y.opt", &mut self.y.opt)?;
        self.x = snap.get_json("x")?;
        self.xopt = snap.get_json("xopt")?;
        self.rng = snap.get_json("rng")?;
        self.t = snap.get_json("t")?;
        Ok(())
    }

    fn check(&self, name: &str, what: &str, v: f64) -> Result<()> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(MixtureError::NonFinite {
                method: name.to_string(),
                step: self.t,
                quantity: what.to_string(),
            })
        }
    }
}

/// A fresh model of the same architecture holding a copy of `start`'s parameters.
pub fn copy_model(
    start: &dyn LanguageModel,
    spec: &ModelSpec,
    vocab: usize,
) -> Result<Box<dyn LanguageModel>> {
    let p = start.params();
    let m = spec.build(vocab, 0, p.dtype(), &p.device())?;
    let all = p.all();
    m.params().set(&all, &p.values(&all)?)?;
    Ok(m)
}

/// `weights`, `save` and `load` of a method whose whole state is its [`Core`] (model, its
/// optimiser, the logits and their optimiser, the RNG).
macro_rules! logits_state {
    () => {
        fn weights(&self) -> Vec<f64> {
            softmax(&self.core.x)
        }
        fn save(&self, snap: &mut Snapshot) {
            self.core.save(snap);
        }
        fn load(&mut self, snap: &Snapshot) -> Result<()> {
            self.core.load(snap)
        }
    };
}

/// HG-MS practical (docs/ALGORITHMS.md §2): select, then differentiate.
pub struct Hgms {
    core: Core,
    cfg: HgmsConfig,
    sel: Vec<usize>,
}

impl Hgms {
    /// Starts from `start` with uniform logits.
    pub fn new(
        start: &dyn LanguageModel,
        spec: &ModelSpec,
        data: &MixtureData,
        cfg: &MethodsConfig,
        seed: u64,
    ) -> Result<Self> {
        let core = Core::new(start, spec, data.vocab, cfg, seed, data.n())?;
        let p = core.y.model.params();
        let trainable = core.y.model.trainable();
        let sel: Vec<usize> = match spec.subset_prefixes(cfg.hgms.subset_blocks) {
            Some(pre) => p
                .select_prefixes(&pre)
                .into_iter()
                .filter(|i| trainable.contains(i))
                .collect(),
            None => trainable,
        };
        Ok(Self {
            core,
            cfg: cfg.hgms.clone(),
            sel,
        })
    }
}

impl Reweighter for Hgms {
    fn name(&self) -> &'static str {
        "hgms"
    }

    fn step(&mut self, data: &MixtureData, budget: &mut Budget) -> Result<StepInfo> {
        let c = &mut self.core;
        let p = softmax(&c.x);
        let mut lower_loss = f64::NAN;
        // 1. Reach the manifold: lower-level steps on Σ p_i L_i.
        for _ in 0..self.cfg.lower_steps {
            let (tb, _) = c.batches(data)?;
            let (l, _) = mixture_loss(c.y.model.as_ref(), &tb, &p)?;
            lower_loss = scalar(&l)?;
            let g = c.y.grad(&l)?;
            budget.gradient(tokens(&tb));
            c.y.step(&g, 1.0, "hgms (lower step)", c.t)?;
        }
        // 2. Select: lower the target loss while staying on the training-loss manifold.
        for _ in 0..self.cfg.select_steps {
            let (tb, vb) = c.batches(data)?;
            let (l, _) = mixture_loss(c.y.model.as_ref(), &tb, &p)?;
            let lv = mean_loss(c.y.model.as_ref(), &vb)?;
            let obj = (l + lv.affine(self.cfg.select_sigma, 0.0)?)?;
            let g = c.y.grad(&obj)?;
            budget.gradient(tokens(&tb) + vb.tokens());
            c.y.step(&g, 1.0, "hgms (selection step)", c.t)?;
        }
        // 3. Differentiate at the selection.
        let (tb, vb) = c.batches(data)?;
        let h = mixture_hypergradient(
            c.y.model.as_ref(),
            &self.sel,
            &tb,
            &vb,
            &p,
            &self.cfg.hypergrad,
        )?;
        budget.gradient(vb.tokens() + tokens(&tb)); // ∇L_val and the N source gradients
        budget.hvp(tokens(&tb) * h.krylov.operator_applications);
        for g in &h.grad_x {
            c.check("hgms", "hypergradient", *g)?;
        }
        // 4. Upper step on the logits.
        c.xopt.step(&mut c.x, &h.grad_x);
        c.t += 1;
        Ok(StepInfo {
            val_loss: Some(h.val_loss),
            lower_loss: lower_loss.is_finite().then_some(lower_loss),
            grad_x: Some(h.grad_x),
            extra: serde_json::json!({
                "krylov_iterations": h.krylov.iterations,
                "krylov_relative_residual": h.krylov.relative_residual,
                "krylov_status": h.krylov.status,
                "v_norm": h.v.norm(),
                "cross": h.cross,
            }),
        })
    }

    logits_state!();
}

/// BOME with the logits as the upper variable.
pub struct Bome {
    core: Core,
    inner: Trainee,
    cfg: BomeConfig,
}

impl Bome {
    /// Starts from `start` with uniform logits.
    pub fn new(
        start: &dyn LanguageModel,
        spec: &ModelSpec,
        data: &MixtureData,
        cfg: &MethodsConfig,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            core: Core::new(start, spec, data.vocab, cfg, seed, data.n())?,
            inner: Trainee::new(copy_model(start, spec, data.vocab)?, cfg.lower)?,
            cfg: cfg.bome.clone(),
        })
    }
}

impl Reweighter for Bome {
    fn name(&self) -> &'static str {
        "bome"
    }

    fn step(&mut self, data: &MixtureData, budget: &mut Budget) -> Result<StepInfo> {
        let c = &mut self.core;
        let p = softmax(&c.x);
        let (tb, vb) = c.batches(data)?;
        // ŷ_T: T AdamW steps on g(x, ·) from y (fresh moments), treated as a constant.
        let all = c.y.model.trainable();
        self.inner
            .model
            .params()
            .set(&all, &c.y.model.params().values(&all)?)?;
        self.inner.opt =
            bilevel_nn::AdamW::new(self.inner.opt.cfg, self.inner.model.params(), &all)?;
        for k in 0..self.cfg.inner_steps {
            let (l, _) = mixture_loss(self.inner.model.as_ref(), &tb, &p)?;
            let g = self.inner.grad(&l)?;
            budget.gradient(tokens(&tb));
            self.inner
                .step(&g, 1.0, "bome (inner step)", c.t * 1000 + k as u64)?;
        }
        let l_hat = source_losses(self.inner.model.as_ref(), &tb)?;
        budget.forward(tokens(&tb));
        // ∇q = (J_p (L(y) − L(ŷ_T)), ∇_y g(x, y)); ∇f = (0, ∇_y L_val).
        let (l, l_y) = mixture_loss(c.y.model.as_ref(), &tb, &p)?;
        let lower_loss = scalar(&l)?;
        let gq_y = c.y.grad(&l)?;
        budget.gradient(tokens(&tb));
        let lv = mean_loss(c.y.model.as_ref(), &vb)?;
        let val_loss = scalar(&lv)?;
        let gf_y = c.y.grad(&lv)?;
        budget.gradient(vb.tokens());
        let diff: Vec<f64> = l_y.iter().zip(&l_hat).map(|(a, b)| a - b).collect();
        let gq_x = softmax_jacobian_apply(&p, &diff);
        let nq2 = gq_y.dot(&gq_y) + gq_x.iter().map(|v| v * v).sum::<f64>();
        let fq = gf_y.dot(&gq_y);
        let lambda = ((self.cfg.eta * nq2 - fq) / (nq2 + 1e-12)).max(0.0);
        c.check("bome", "lambda", lambda)?;
        let mut d_y = gf_y;
        d_y.axpy(lambda, &gq_y);
        let d_x: Vec<f64> = gq_x.iter().map(|v| lambda * v).collect();
        c.y.step(&d_y, 1.0, "bome", c.t)?;
        c.xopt.step(&mut c.x, &d_x);
        c.t += 1;
        Ok(StepInfo {
            val_loss: Some(val_loss),
            lower_loss: Some(lower_loss),
            grad_x: Some(d_x),
            extra: serde_json::json!({"lambda": lambda, "q": lower_loss - p.iter().zip(&l_hat).map(|(a, b)| a * b).sum::<f64>()}),
        })
    }

    logits_state!();
}

/// ScaleBiO's min–max penalty method.
pub struct ScaleBio {
    core: Core,
    u: Trainee,
    alpha: f64,
}

impl ScaleBio {
    /// Starts from `start` with uniform logits; `w` is the core model.
    pub fn new(
        start: &dyn LanguageModel,
        spec: &ModelSpec,
        data: &MixtureData,
        cfg: &MethodsConfig,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            core: Core::new(start, spec, data.vocab, cfg, seed, data.n())?,
            u: Trainee::new(copy_model(start, spec, data.vocab)?, cfg.lower)?,
            alpha: cfg.scalebio.alpha,
        })
    }
}

impl Reweighter for ScaleBio {
    fn name(&self) -> &'static str {
        "scalebio"
    }

    fn step(&mut self, data: &MixtureData, budget: &mut Budget) -> Result<StepInfo> {
        let c = &mut self.core;
        let p = softmax(&c.x);
        let (tb, vb) = c.batches(data)?;
        let (lu, l_u) = mixture_loss(self.u.model.as_ref(), &tb, &p)?;
        let gu = self.u.grad(&lu)?;
        budget.gradient(tokens(&tb));
        self.u.step(&gu, 1.0, "scalebio (u)", c.t)?;
        let (lw, l_w) = mixture_loss(c.y.model.as_ref(), &tb, &p)?;
        let lv = mean_loss(c.y.model.as_ref(), &vb)?;
        let val_loss = scalar(&lv)?;
        let obj = (lv + lw.affine(self.alpha, 0.0)?)?;
        let gw = c.y.grad(&obj)?;
        budget.gradient(tokens(&tb) + vb.tokens());
        c.y.step(&gw, 1.0, "scalebio (w)", c.t)?;
        let diff: Vec<f64> = l_w
            .iter()
            .zip(&l_u)
            .map(|(a, b)| self.alpha * (a - b))
            .collect();
        let gx = softmax_jacobian_apply(&p, &diff);
        for g in &gx {
            c.check("scalebio", "logit gradient", *g)?;
        }
        c.xopt.step(&mut c.x, &gx);
        c.t += 1;
        Ok(StepInfo {
            val_loss: Some(val_loss),
            lower_loss: Some(scalar(&lu)?),
            grad_x: Some(gx),
            extra: serde_json::Value::Null,
        })
    }

    fn weights(&self) -> Vec<f64> {
        softmax(&self.core.x)
    }
    fn save(&self, snap: &mut Snapshot) {
        self.core.save(snap);
        snap.put_params("u", self.u.model.params());
        snap.put_adam("u.opt", &self.u.opt);
    }
    fn load(&mut self, snap: &Snapshot) -> Result<()> {
        self.core.load(snap)?;
        snap.get_params("u", self.u.model.params())?;
        snap.get_adam("u.opt", &mut self.u.opt)
    }
}

/// DoReMi (Xie et al., 2023) with the starting model as reference.
pub struct Doremi {
    core: Core,
    reference: Box<dyn LanguageModel>,
    alpha: Vec<f64>,
    alpha_sum: Vec<f64>,
    cfg: DoremiConfig,
}

impl Doremi {
    /// Starts from `start` (proxy and reference) with uniform α.
    pub fn new(
        start: &dyn LanguageModel,
        spec: &ModelSpec,
        data: &MixtureData,
        cfg: &MethodsConfig,
        seed: u64,
    ) -> Result<Self> {
        let n = data.n();
        Ok(Self {
            core: Core::new(start, spec, data.vocab, cfg, seed, n)?,
            reference: copy_model(start, spec, data.vocab)?,
            alpha: vec![1.0 / n as f64; n],
            alpha_sum: vec![0.0; n],
            cfg: cfg.doremi.clone(),
        })
    }
}

impl Reweighter for Doremi {
    fn name(&self) -> &'static str {
        "doremi"
    }

    fn step(&mut self, data: &MixtureData, budget: &mut Budget) -> Result<StepInfo> {
        let c = &mut self.core;
        let n = self.alpha.len();
        let tb = data.per_source_batches(&mut c.rng, c.rows, c.len, &c.dev)?;
        let mut excess = Vec::with_capacity(n);
        for b in &tb {
            let lp = token_losses(c.y.model.as_ref(), b)?;
            let lr = token_losses(self.reference.as_ref(), b)?;
            let e = lp
                .iter()
                .zip(&lr)
                .map(|(a, r)| (a - r).max(0.0))
                .sum::<f64>()
                / lp.len() as f64;
            excess.push(e);
        }
        budget.forward(2 * tokens(&tb));
        let logits: Vec<f64> = self
            .alpha
            .iter()
            .zip(&excess)
            .map(|(a, e)| a.ln() + self.cfg.eta * e)
            .collect();
        let a = softmax(&logits);
        let cs = self.cfg.smoothing;
        self.alpha = a.iter().map(|v| (1.0 - cs) * v + cs / n as f64).collect();
        for (s, v) in self.alpha_sum.iter_mut().zip(&self.alpha) {
            *s += v;
        }
        let (l, _) = mixture_loss(c.y.model.as_ref(), &tb, &self.alpha)?;
        let lower_loss = scalar(&l)?;
        c.check("doremi", "proxy loss", lower_loss)?;
        let g = c.y.grad(&l)?;
        budget.gradient(tokens(&tb));
        c.y.step(&g, 1.0, "doremi (proxy)", c.t)?;
        c.t += 1;
        Ok(StepInfo {
            val_loss: None,
            lower_loss: Some(lower_loss),
            grad_x: None,
            extra: serde_json::json!({"excess": excess}),
        })
    }

    fn weights(&self) -> Vec<f64> {
        self.alpha.clone()
    }
    fn output(&self) -> Vec<f64> {
        let s: f64 = self.alpha_sum.iter().sum();
        if s > 0.0 {
            self.alpha_sum.iter().map(|v| v / s).collect()
        } else {
            self.alpha.clone()
        }
    }
    fn save(&self, snap: &mut Snapshot) {
        self.core.save(snap);
        snap.put_json("alpha", &self.alpha);
        snap.put_json("alpha_sum", &self.alpha_sum);
    }
    fn load(&mut self, snap: &Snapshot) -> Result<()> {
        self.core.load(snap)?;
        self.alpha = snap.get_json("alpha")?;
        self.alpha_sum = snap.get_json("alpha_sum")?;
        Ok(())
    }
}

/// The points of the simplex grid `{k/r : Σ k_i = r}` in N dimensions (`C(r+N−1, N−1)`
/// points: vertices, edge midpoints for r = 2, …).
pub fn simplex_grid(n: usize, r: usize) -> Vec<Vec<f64>> {
    fn rec(n: usize, left: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == n - 1 {
            cur.push(left);
            out.push(cur.clone());
            cur.pop();
            return;
        }
        for k in (0..=left).rev() {
            cur.push(k);
            rec(n, left - k, cur, out);
            cur.pop();
        }
    }
    let mut out: Vec<Vec<usize>> = Vec::new();
    if n == 0 || r == 0 {
        return Vec::new();
    }
    rec(n, r, &mut Vec::new(), &mut out);
    out.into_iter()
        .map(|k| k.into_iter().map(|v| v as f64 / r as f64).collect())
        .collect()
}

/// The Krylov settings used by default (MINRES, 8 iterations, shift 1e-2).
pub fn default_hypergrad() -> HypergradOptions {
    HypergradOptions {
        krylov: KrylovMethod::Minres,
        iterations: 8,
        rtol: 1e-6,
        shift: 1e-2,
        hvp: bilevel_nn::HvpMode::Exact,
    }
}

/// Checks that a vector of weights is a distribution over `n` sources; names the field.
pub fn check_weights(field: &str, w: &[f64], n: usize) -> Result<Vec<f64>> {
    if w.len() != n {
        return Err(config_err(
            field,
            format!("{w:?}"),
            &format!("needs {n} entries, one per source"),
        ));
    }
    if w.iter().any(|v| !v.is_finite() || *v < 0.0) || w.iter().sum::<f64>() <= 0.0 {
        return Err(config_err(
            field,
            format!("{w:?}"),
            "entries must be non-negative, finite, not all zero",
        ));
    }
    let s: f64 = w.iter().sum();
    Ok(w.iter().map(|v| v / s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplex_grid_counts_and_sums() {
        let g = simplex_grid(6, 2);
        assert_eq!(g.len(), 21); // C(7, 5)
        assert!(g
            .iter()
            .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-15));
        assert_eq!(simplex_grid(3, 3).len(), 10);
    }

    #[test]
    fn logit_adam_first_step_moves_by_lr_against_the_sign() {
        let mut a = LogitAdam::new(0.1, 2);
        let mut x = vec![0.0, 0.0];
        a.step(&mut x, &[2.0, -0.5]);
        assert!((x[0] + 0.1).abs() < 1e-6 && (x[1] - 0.1).abs() < 1e-6);
    }
}
