//! `regsel-multinomial`: L2 strengths per class or per feature of a softmax regression,
//! selected on a validation split (docs/PROBLEMS.md §E.1, multinomial version).

use super::config::ml_config;
use super::config::small_defaults;
use super::data::{Design, MlData};
use super::kernels::{BatchEngine, Engine, ExpCache};
use super::reference::{newton_references, WarmStart};
use super::softmax::{self, interleave, Rows};
use super::{bilevel_shape, split_sums};
use super::{lock, push_held_out_metrics, KernelOptions};
use crate::config::{BuildContext, BuildProblem, BuiltProblem};
use crate::error::ProblemError;
use crate::wrapper::Shape;
use bilevel_core::{Batch, Bilevel, NamedArray};
use bilevel_data::DataSource;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// What one regularisation strength applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrengthPer {
    /// One strength per class: `x ∈ R^k`, penalty `½ Σ_c e^{x_c} ‖Y_{:,c}‖²`.
    #[default]
    Class,
    /// One strength per feature: `x ∈ R^p`, penalty `½ Σ_j e^{x_j} ‖Y_{j,:}‖²`.
    Feature,
}

#[derive(Debug)]
struct Scratch {
    engine: Engine,
    yv: Vec<f64>,
}

/// Scratch of the minibatch oracles: the batch pass, `[Y V]`, the `p × 2k` output of
/// [`softmax::batch_lower`] and `e^x`.
#[derive(Debug)]
struct BatchScratch {
    engine: BatchEngine,
    yv: Vec<f64>,
    out: Vec<f64>,
    ex: ExpCache,
}

/// `regsel-multinomial`: regularisation selection for multinomial logistic regression.
///
/// With `A` (`n × p`), labels `t_i`, `Y ∈ R^{p×k}` (row-major, `y[j·k + c]`) and `E_{jc}` the
/// strength of entry `(j, c)` (`e^{x_c}` per class, `e^{x_j}` per feature):
///
/// * `g(x, Y) = (1/n) Σ_i CE(Yᵀa_i, t_i) + ½ Σ_{jc} E_{jc} Y_{jc}²`;
/// * `f(Y)` = mean cross-entropy on the validation split (`∇_x f = 0`);
/// * `∇_Y g = Aᵀ(S − T)/n + E ⊙ Y`;
/// * `H V = Aᵀ[S ⊙ (AV) − S ⊙ rowsum(S ⊙ AV)]/n + E ⊙ V`;
/// * per class: `∂g/∂x_c = ½ e^{x_c}‖Y_{:,c}‖²`, `(J V)_c = e^{x_c}⟨Y_{:,c}, V_{:,c}⟩`;
///   per feature: `∂g/∂x_j = ½ e^{x_j}‖Y_{j,:}‖²`, `(J V)_j = e^{x_j}⟨Y_{j,:}, V_{j,:}⟩`.
///
/// `g` is `min E`-strongly convex; the references solve it by Newton–CG.
///
/// **Minibatches.** `g` is a finite sum over the n training rows (the ridge deterministic) and
/// `f` over the m validation rows. On a batch B with `s = `[`Batch::sum_scale`] (repeats
/// counted):
///
/// * `∇_Y g_B = s Σ_{i∈B} a_i (s_i − e_{t_i})ᵀ + E ⊙ Y`;
/// * `H_B V = s Σ_{i∈B} a_i [(diag s_i − s_i s_iᵀ) Vᵀa_i]ᵀ + E ⊙ V`;
/// * `∇_x g_B` and `J_B V` are the ridge's, i.e. the full `∇_x g` and `J V`;
/// * `∇_Y f_B = s Σ_{j∈B} b_j (softmax(Yᵀb_j) − e_{s_j})ᵀ`, `∇_x f_B = 0`.
///
/// They run on the calling thread over the batch rows only ([`BatchEngine`]).
#[derive(Debug)]
pub struct RegselMultinomial {
    data: MlData,
    k: usize,
    per: StrengthPer,
    scratch: Mutex<Scratch>,
    batch: Mutex<BatchScratch>,
    warm: WarmStart,
}

impl RegselMultinomial {
    /// The problem on prepared data with at least 2 classes.
    pub fn new(data: MlData, per: StrengthPer) -> Result<Self, ProblemError> {
        if data.classes < 2 {
            return Err(ProblemError::invalid(
                "data",
                "regsel-multinomial needs at least 2 classes",
                data.classes,
            ));
        }
        let (p, k) = (data.train.p, data.classes);
        Ok(RegselMultinomial {
            scratch: Mutex::new(Scratch {
                engine: KernelOptions::default_for(p).engine(p, 2 * k, k),
                yv: vec![0.0; 2 * p * k],
            }),
            batch: Mutex::new(BatchScratch {
                engine: BatchEngine::new(p, 2 * k, 2 * k),
                yv: vec![0.0; 2 * p * k],
                out: vec![0.0; 2 * p * k],
                ex: ExpCache::new(p.max(k)),
            }),
            data,
            k,
            per,
            warm: WarmStart::default(),
        })
    }

    /// The data.
    pub fn data(&self) -> &MlData {
        &self.data
    }

    /// Replace the blocking and threading of the passes (benchmarks).
    pub fn set_kernel_options(&self, opts: KernelOptions) {
        let (p, k) = (self.data.train.p, self.k);
        lock(&self.scratch).engine = opts.engine(p, 2 * k, k);
    }

    /// `e^{x}` of entry `(j, c)`.
    #[inline]
    fn strength_index(&self, j: usize, c: usize) -> usize {
        match self.per {
            StrengthPer::Class => c,
            StrengthPer::Feature => j,
        }
    }

    /// `out[idx] += e^{x_idx} · a_jc · b_jc` over all entries, `idx` the entry's strength.
    fn ridge_pairs(&self, x: &[f64], a: &[f64], b: &[f64], out: &mut [f64], half: bool) {
        let k = self.k;
        out.iter_mut().for_each(|o| *o = 0.0);
        for (j, (ar, br)) in a.chunks_exact(k).zip(b.chunks_exact(k)).enumerate() {
            for c in 0..k {
                out[self.strength_index(j, c)] += ar[c] * br[c];
            }
        }
        let s = if half { 0.5 } else { 1.0 };
        out.iter_mut().zip(x).for_each(|(o, xi)| *o *= s * xi.exp());
    }

    /// `out += E ⊙ v` with `ex = e^x` computed beforehand.
    fn add_ridge_ex(&self, ex: &[f64], v: &[f64], out: &mut [f64]) {
        let k = self.k;
        for (j, (orow, vrow)) in out.chunks_exact_mut(k).zip(v.chunks_exact(k)).enumerate() {
            for (c, (o, vi)) in orow.iter_mut().zip(vrow).enumerate() {
                *o += ex[self.strength_index(j, c)] * vi;
            }
        }
    }

    /// `out += E ⊙ v`.
    fn add_ridge(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        let k = self.k;
        match self.per {
            StrengthPer::Class => {
                for (orow, vrow) in out.chunks_exact_mut(k).zip(v.chunks_exact(k)) {
                    for ((o, vi), xc) in orow.iter_mut().zip(vrow).zip(x) {
                        *o += xc.exp() * vi;
                    }
                }
            }
            StrengthPer::Feature => {
                for ((orow, vrow), xj) in out.chunks_exact_mut(k).zip(v.chunks_exact(k)).zip(x) {
                    let e = xj.exp();
                    orow.iter_mut().zip(vrow).for_each(|(o, vi)| *o += e * vi);
                }
            }
        }
    }
}

impl RegselMultinomial {
    /// Name and dimensions.
    fn shape(&self) -> Shape {
        let dim_x = match self.per {
            StrengthPer::Class => self.k,
            StrengthPer::Feature => self.data.train.p,
        };
        Shape::new("regsel-multinomial", dim_x, self.data.train.p * self.k)
    }
}

impl Bilevel for RegselMultinomial {
    bilevel_shape!();

    fn f(&self, _x: &[f64], y: &Vec<f64>) -> f64 {
        let c = 1.0 / self.data.validation.n as f64;
        let mut s = lock(&self.scratch);
        let r = Rows::from(&self.data.validation);
        softmax::value(&mut s.engine, r, self.k, y, &|_| c, &|_| 0.0, &mut [])
    }

    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let c = 1.0 / self.data.train.n as f64;
        let loss = {
            let mut s = lock(&self.scratch);
            let r = Rows::from(&self.data.train);
            softmax::value(&mut s.engine, r, self.k, y, &|_| c, &|_| 0.0, &mut [])
        };
        let k = self.k;
        let mut ridge = 0.0;
        for (j, row) in y.chunks_exact(k).enumerate() {
            for (c, v) in row.iter().enumerate() {
                ridge += x[self.strength_index(j, c)].exp() * v * v;
            }
        }
        loss + 0.5 * ridge
    }

    fn grad_f(&self, _x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        gx.iter_mut().for_each(|g| *g = 0.0);
        let c = 1.0 / self.data.validation.n as f64;
        let mut s = lock(&self.scratch);
        let r = Rows::from(&self.data.validation);
        softmax::gradient(&mut s.engine, r, self.k, y, &|_| c, &|_| 0.0, gy, &mut []);
    }

    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        let c = 1.0 / self.data.train.n as f64;
        {
            let mut s = lock(&self.scratch);
            let r = Rows::from(&self.data.train);
            softmax::gradient(&mut s.engine, r, self.k, y, &|_| c, &|_| 0.0, gy, &mut []);
        }
        self.add_ridge(x, y, gy);
    }

    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        self.ridge_pairs(x, y, y, gx, true);
    }

    fn hvp(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let c = 1.0 / self.data.train.n as f64;
        {
            let mut guard = lock(&self.scratch);
            let Scratch { engine, yv } = &mut *guard;
            interleave(y, v, self.k, yv);
            let r = Rows::from(&self.data.train);
            softmax::hvp(engine, r, self.k, yv, &|_| c, out);
        }
        self.add_ridge(x, v, out);
    }

    fn cross(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        self.ridge_pairs(x, y, v, out, false);
    }

    split_sums!();

    /// `∇_Y g_B = s Σ_{i∈B} a_i (s_i − e_{t_i})ᵀ + E ⊙ Y`, `s = w_B/|B|`.
    fn grad_g_y_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, gy: &mut Vec<f64>) {
        let s = b.sum_scale();
        let mut guard = lock(&self.batch);
        let BatchScratch { engine, ex, .. } = &mut *guard;
        let r = Rows::from(&self.data.train);
        softmax::batch_gradient(engine, r, self.k, b.indices, y, |_| s, gy);
        self.add_ridge_ex(ex.get(x), y, gy);
    }

    /// `∇_x g_B = ∇_x g` (the ridge's: the samples do not depend on x).
    fn grad_g_x_batch(&self, x: &[f64], y: &Vec<f64>, _b: &Batch<'_>, gx: &mut [f64]) {
        self.grad_g_x(x, y, gx);
    }

    /// `∇_Y f_B = s Σ_{j∈B} b_j (softmax(Yᵀb_j) − e_{s_j})ᵀ`, `∇_x f_B = 0`.
    fn grad_f_batch(
        &self,
        _x: &[f64],
        y: &Vec<f64>,
        b: &Batch<'_>,
        gx: &mut [f64],
        gy: &mut Vec<f64>,
    ) {
        gx.fill(0.0);
        let s = b.sum_scale();
        let mut guard = lock(&self.batch);
        let r = Rows::from(&self.data.validation);
        softmax::batch_gradient(&mut guard.engine, r, self.k, b.indices, y, |_| s, gy);
    }

    /// `H_B V = s Σ_{i∈B} a_i [(diag s_i − s_i s_iᵀ) Vᵀa_i]ᵀ + E ⊙ V`.
    fn hvp_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let s = b.sum_scale();
        let mut guard = lock(&self.batch);
        let BatchScratch { engine, yv, ex, .. } = &mut *guard;
        interleave(y, v, self.k, yv);
        let r = Rows::from(&self.data.train);
        softmax::batch_hvp(engine, r, self.k, b.indices, yv, |_| s, out);
        self.add_ridge_ex(ex.get(x), v, out);
    }

    /// `J_B V = J V` (the ridge's: the samples do not depend on x).
    fn cross_batch(&self, x: &[f64], y: &Vec<f64>, _b: &Batch<'_>, v: &Vec<f64>, out: &mut [f64]) {
        self.cross(x, y, v, out);
    }

    /// `∇_Y g_B` and `H_B V` from one pass over the batch rows (one product with `[Y V]`, one
    /// softmax per row, one back product), and `J V`; `e^x` is computed once per new x.
    fn lower_batch(
        &self,
        x: &[f64],
        y: &Vec<f64>,
        b: &Batch<'_>,
        v: &Vec<f64>,
        gy: &mut Vec<f64>,
        hv: &mut Vec<f64>,
        jv: &mut [f64],
    ) {
        let (s, k) = (b.sum_scale(), self.k);
        let mut guard = lock(&self.batch);
        let BatchScratch {
            engine,
            yv,
            out,
            ex,
        } = &mut *guard;
        interleave(y, v, k, yv);
        let r = Rows::from(&self.data.train);
        softmax::batch_lower(engine, r, k, b.indices, yv, |_| s, out, |_, _| {});
        let ex = ex.get(x);
        jv.fill(0.0);
        for (j, (((o, g), h), (yr, vr))) in out
            .chunks_exact(2 * k)
            .zip(gy.chunks_exact_mut(k))
            .zip(hv.chunks_exact_mut(k))
            .zip(y.chunks_exact(k).zip(v.chunks_exact(k)))
            .enumerate()
        {
            for c in 0..k {
                let l = self.strength_index(j, c);
                g[c] = o[c] + ex[l] * yr[c];
                h[c] = o[k + c] + ex[l] * vr[c];
                jv[l] += yr[c] * vr[c];
            }
        }
        jv.iter_mut().zip(ex.iter()).for_each(|(o, e)| *o *= e);
    }

    newton_references!();

    /// `train_accuracy`, `validation_accuracy`, `validation_loss`, and `test_accuracy`,
    /// `test_loss` when there is a test split.
    fn metrics(&self, _x: &[f64], y: &Vec<f64>) -> Vec<(String, f64)> {
        let k = self.k;
        let mut s = lock(&self.scratch);
        let e = &mut s.engine;
        let acc = |e: &mut Engine, d: &Design| {
            softmax::correct(e, Rows::from(d), k, y) as f64 / d.n as f64
        };
        let loss = |e: &mut Engine, d: &Design| {
            let c = 1.0 / d.n as f64;
            softmax::value(e, Rows::from(d), k, y, &|_| c, &|_| 0.0, &mut [])
        };
        let mut out = vec![("train_accuracy".to_string(), acc(e, &self.data.train))];
        let test = (self.data.test.n > 0).then_some(&self.data.test);
        push_held_out_metrics(&mut out, &self.data.validation, test, |d| {
            (acc(e, d), loss(e, d))
        });
        out
    }

    fn export_arrays(&self) -> Vec<NamedArray> {
        self.data.export(false)
    }
}

ml_config! {
    /// Parameters of `regsel-multinomial` ([`RegselMultinomial`]). Defaults: `data = "wine"`
    /// (3 classes), `train = 0.5`, `validation = 0.25`, `standardize = "zscore"`,
    /// `intercept = true`, `per = "class"`, `x0 = 0`.
    RegselMultinomialConfig {
        /// One strength per `"class"` (x ∈ R^k) or per `"feature"` (x ∈ R^p).
        per: StrengthPer,
    }
}

impl BuildProblem for RegselMultinomialConfig {
    fn build(&self, ctx: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let d = small_defaults("wine", 0.0);
        let p = RegselMultinomial::new(self.prepare(&d, ctx)?, self.per.unwrap_or_default())?;
        self.finish(p, &d)
    }
    fn data_mut(&mut self) -> Option<&mut Option<DataSource>> {
        Some(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::data::{synthetic, SplitSize, SplitSpec, Standardize};
    use crate::ml::fdcheck::{check_oracles, check_reference_gradient};
    use bilevel_core::rng::Rng;
    use bilevel_core::vector::norm;

    fn small(per: StrengthPer, seed: u64) -> RegselMultinomial {
        let d = synthetic(100, 7, 3, 0.8, seed);
        let spec = SplitSpec {
            train: SplitSize::Count(40),
            validation: SplitSize::Count(30),
            test: None,
            seed,
            standardize: Standardize::Zscore,
            intercept: false,
        };
        RegselMultinomial::new(MlData::prepare("syn", &d, None, &spec).unwrap(), per).unwrap()
    }

    #[test]
    fn oracles_match_finite_differences() {
        for (per, m) in [(StrengthPer::Class, 3), (StrengthPer::Feature, 7)] {
            let p = small(per, 1);
            assert_eq!((p.dim_x(), p.dim_y()), (m, 21));
            let mut rng = Rng::new(2);
            let mut x = vec![0.0; m];
            let mut y = vec![0.0; 21];
            rng.fill_normal(&mut x);
            rng.fill_normal(&mut y);
            check_oracles(&p, &x, &y, 3);
        }
    }

    #[test]
    fn reference_hypergradient_matches_differences_of_phi() {
        for (per, x) in [
            (StrengthPer::Class, vec![-1.0, 0.5, 0.0]),
            (
                StrengthPer::Feature,
                vec![-1.0, 0.5, 0.0, 1.0, -0.5, 0.2, -2.0],
            ),
        ] {
            let p = small(per, 5);
            let (g, _) = check_reference_gradient(&p, &x, 1e-4, 1e-5);
            assert!(norm(&g) > 1e-4);
        }
    }

    #[test]
    fn per_class_ridge_is_the_documented_penalty() {
        let p = small(StrengthPer::Class, 6);
        let x = [0.1, -0.4, 0.9];
        let mut rng = Rng::new(7);
        let mut y = vec![0.0; 21];
        rng.fill_normal(&mut y);
        let zero = vec![0.0; 21];
        let base = p.g(&x, &zero);
        let ridge: f64 = (0..21).map(|e| 0.5 * x[e % 3].exp() * y[e] * y[e]).sum();
        // g(x, Y) − g(x, 0) = CE part difference + ridge; check the ridge via ∂g/∂x.
        let mut gx = vec![0.0; 3];
        p.grad_g_x(&x, &y, &mut gx);
        assert!((gx.iter().sum::<f64>() - ridge).abs() < 1e-13 * ridge);
        assert!((base - (3.0f64).ln()).abs() < 1e-14, "CE at Y = 0 is log k");
    }

    #[test]
    fn batch_oracles_are_exact_on_full_batches_and_unbiased_over_chunks() {
        for (per, m) in [(StrengthPer::Class, 3), (StrengthPer::Feature, 7)] {
            let p = small(per, 8);
            let mut rng = Rng::new(9);
            let (mut x, mut y, mut v) = (vec![0.0; m], vec![0.0; 21], vec![0.0; 21]);
            rng.fill_normal(&mut x);
            rng.fill_normal(&mut y);
            rng.fill_normal(&mut v);
            crate::testing::check_batch_oracles(&p, &x, &y, &v);
        }
    }

    #[test]
    fn sample_counts_are_the_split_sizes() {
        let p = small(StrengthPer::Class, 10);
        crate::testing::check_split_sample_counts(&p, &p.data, (40, 30));
    }

    /// A uniform batch with repeats against the weighted sum of one-row batches, which the
    /// full-batch check ties to the full oracles; the outputs are overwritten.
    #[test]
    fn batch_with_repeats_is_the_weighted_sum_of_its_rows() {
        use bilevel_core::derivatives::relative_error;
        let p = small(StrengthPer::Feature, 11);
        let mut rng = Rng::new(12);
        let (mut x, mut y, mut v) = (vec![0.0; 7], vec![0.0; 21], vec![0.0; 21]);
        rng.fill_normal(&mut x);
        rng.fill_normal(&mut y);
        rng.fill_normal(&mut v);
        let idx = [4usize, 39, 4, 0, 4, 17];
        let b = Batch {
            indices: &idx,
            weight: 0.8,
            chunk: None,
        };
        let s = b.sum_scale();
        // Deterministic parts: the oracles on an empty batch.
        let empty = Batch {
            indices: &[],
            weight: 1.0,
            chunk: None,
        };
        let run = |b: &Batch<'_>| {
            let (mut gy, mut hv, mut jv) =
                (vec![f64::NAN; 21], vec![f64::NAN; 21], vec![f64::NAN; 7]);
            p.lower_batch(&x, &y, b, &v, &mut gy, &mut hv, &mut jv);
            let mut gy2 = vec![f64::NAN; 21];
            p.grad_g_y_batch(&x, &y, b, &mut gy2);
            let mut hv2 = vec![f64::NAN; 21];
            p.hvp_batch(&x, &y, b, &v, &mut hv2);
            assert!(relative_error(&gy2, &gy, 1e-300) < 1e-12);
            assert!(relative_error(&hv2, &hv, 1e-300) < 1e-12);
            [gy, hv, jv].concat()
        };
        let det = run(&empty);
        let mut want = det.clone();
        for &i in &idx {
            let one = run(&Batch {
                indices: &[i],
                weight: 1.0,
                chunk: None,
            });
            want.iter_mut()
                .zip(one.iter().zip(&det))
                .for_each(|(w, (o, d))| *w += s * (o - d));
        }
        assert!(relative_error(&run(&b), &want, 1e-300) < 1e-12);
    }
}
