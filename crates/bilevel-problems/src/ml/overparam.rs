//! Over-parameterised lower levels (docs/PROBLEMS.md §E.3): fewer training samples than parameters,
//! so the training loss has a manifold of minimisers, and the optimistic selection differs from
//! the point gradient descent reaches.
//!
//! * [`OverparamRegsel`]: ridgeless least squares with per-feature scales `e^x`; the lower
//!   solution set depends on x, gradient descent's selection depends on x, the optimistic value
//!   does not.
//! * [`OverparamCleaning`]: weighted squared loss on one-hot targets; with positive weights and
//!   a full-row-rank training matrix neither the solution set nor either selection depends on x.

use super::bilevel_shape;
use super::cleaning::{mean_weights, weight_means, HyperCleaning, SampleWeights};
use super::config::ml_config;
use super::config::{check_fraction, overparam_defaults};
use super::data::{Design, MlData};
use super::dense::{mat_rm, selections, to_rm, RankSvd, Selections};
use super::kernels::{Engine, Pass};
use super::softmax::{self, interleave, Rows};
use super::{lock, push_held_out_metrics, KernelOptions};
use crate::config::{BuildContext, BuildProblem, BuiltProblem};
use crate::error::ProblemError;
use crate::wrapper::Shape;
use bilevel_core::{Bilevel, DerivativeKind, NamedArray};
use bilevel_data::DataSource;
use faer::Mat;
use std::sync::{Mutex, OnceLock};

/// Error unless the training split has fewer rows than the model has features.
fn check_overparameterised(name: &str, data: &MlData) -> Result<(), ProblemError> {
    if data.train.n >= data.train.p {
        return Err(ProblemError::invalid(
            "train",
            format!(
                "{name} needs fewer training rows than features (p = {} with the intercept, if \
                 any)",
                data.train.p
            ),
            data.train.n,
        ));
    }
    Ok(())
}

/// `Σ_i c (z_i − t_i)²/2` over a design with scalar targets, `z = A w`; with `grad`,
/// `grad ← c Aᵀ(z − t)`.
fn sq_pass(
    e: &mut Engine,
    d: &Design,
    t: &[f64],
    w: &[f64],
    c: f64,
    grad: Option<&mut [f64]>,
) -> f64 {
    let map = |r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
        let mut tot = 0.0;
        for (i, &zi) in z.iter().enumerate() {
            let r = zi - t[r0 + i];
            tot += r * r;
            if !g.is_empty() {
                g[i] = c * r;
            }
        }
        0.5 * c * tot
    };
    let pass = Rows::from(d).pass(w, 1, usize::from(grad.is_some()));
    match grad {
        Some(out) => e.pass(&pass, out, &mut [], &map),
        None => e.pass(&pass, &mut [], &mut [], &map),
    }
}

#[derive(Debug)]
struct RegselScratch {
    engine: Engine,
    /// `w = e^x ⊙ y`, then `[w, e^x ⊙ v]` interleaved (2p).
    w: Vec<f64>,
    wv: Vec<f64>,
    /// `[Aᵀr/n, AᵀA(e^x ⊙ v)/n]` interleaved (2p).
    out2: Vec<f64>,
}

/// `overparam-regsel`: ridgeless least squares with per-feature scales.
///
/// With `A` (`n × p`, `n < p`), targets `t` (±1 for binary data, the class index otherwise),
/// `D = diag(e^x)`, `w = D y` (the prediction weights):
///
/// * `g(x, y) = (1/2n) ‖A (e^x ⊙ y) − t‖²`, `f(x, y) = (1/2m) ‖A_val (e^x ⊙ y) − t_val‖²`;
/// * `∇_y g = e^x ⊙ Aᵀr/n`, `∇_x g = w ⊙ Aᵀr/n` (`r = Aw − t`); likewise `∇f` on validation
///   (`∇_x f ≠ 0`);
/// * `H v = e^x ⊙ AᵀA(e^x ⊙ v)/n`;
/// * `(J v)_j = v_j e^{x_j} (Aᵀr)_j/n + w_j (AᵀA(e^x ⊙ v))_j/n`.
///
/// `S(x) = {y : AᵀA D y = Aᵀt}` (`{A D y = t}` when A has full row rank), an affine set of
/// dimension `p − rank A` that depends on x. Gradient descent from `y = 0` stays in
/// `range(D Aᵀ)` and converges to the minimum-norm point `(AD)^† t`, whose prediction weights
/// `D (AD)^† t` minimise `‖D⁻¹w‖` over the interpolating `w`: x acts as an implicit
/// regulariser of that selection ([`OverparamRegsel::min_norm_y`], metric `phi_min_norm`).
/// The optimistic selection minimises f over `S(x)`; in terms of `w` that is a minimisation over
/// a set independent of x, so `φ(x)` is constant and `∇φ = 0` (the select-then-differentiate
/// formula `∇_x f − J H^† ∇_y f` at the optimistic point reproduces this: a test of the formula
/// with `∇_x f ≠ 0`). Unique when `null(A) ∩ null(A_val) = {0}` (generically `n + m ≥ p`),
/// otherwise the minimum-norm optimistic point.
#[derive(Debug)]
pub struct OverparamRegsel {
    data: MlData,
    binary: bool,
    t_train: Vec<f64>,
    t_val: Vec<f64>,
    t_test: Vec<f64>,
    scratch: Mutex<RegselScratch>,
    /// Selections in w-space (independent of x), computed on first use.
    w_sel: OnceLock<Option<Selections>>,
}

impl OverparamRegsel {
    /// The problem on prepared data with fewer training rows than features.
    pub fn new(data: MlData) -> Result<Self, ProblemError> {
        check_overparameterised("overparam-regsel", &data)?;
        let binary = data.classes == 2;
        let p = data.train.p;
        Ok(OverparamRegsel {
            t_train: data.train.label_values(binary),
            t_val: data.validation.label_values(binary),
            t_test: data.test.label_values(binary),
            binary,
            scratch: Mutex::new(RegselScratch {
                engine: KernelOptions::default_for(p).engine(p, 2, 2),
                w: vec![0.0; p],
                wv: vec![0.0; 2 * p],
                out2: vec![0.0; 2 * p],
            }),
            data,
            w_sel: OnceLock::new(),
        })
    }

    /// The data.
    pub fn data(&self) -> &MlData {
        &self.data
    }

    fn w_selections(&self) -> Option<&Selections> {
        self.w_sel
            .get_or_init(|| {
                let (tr, va) = (&self.data.train, &self.data.validation);
                selections(
                    mat_rm(&tr.features, tr.n, tr.p).as_ref(),
                    mat_rm(&self.t_train, tr.n, 1).as_ref(),
                    mat_rm(&va.features, va.n, va.p).as_ref(),
                    mat_rm(&self.t_val, va.n, 1).as_ref(),
                )
            })
            .as_ref()
    }

    /// `A D` (row-major faer matrix).
    fn scaled_train(&self, x: &[f64]) -> Mat<f64> {
        let d = &self.data.train;
        Mat::from_fn(d.n, d.p, |i, j| d.features[i * d.p + j] * x[j].exp())
    }

    /// The gradient-descent selection: the minimum-norm point `(AD)^† t` of `S(x)`.
    pub fn min_norm_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        let svd = RankSvd::new(self.scaled_train(x).as_ref())?;
        let t = mat_rm(&self.t_train, self.data.train.n, 1);
        Some(to_rm(svd.pinv_apply(t.as_ref()).as_ref()))
    }

    /// `(1/m) Σ_j [round(clamp(z_j)) = class_j]` (sign for binary targets).
    fn accuracy(&self, d: &Design, t: &[f64], w: &[f64]) -> f64 {
        let k = (self.data.classes.max(1) - 1) as f64;
        let mut ok = 0usize;
        for (i, &ti) in t.iter().enumerate().take(d.n) {
            let z: f64 = d.row(i).iter().zip(w).map(|(a, b)| a * b).sum();
            let hit = if self.binary {
                (z > 0.0) == (ti > 0.0)
            } else {
                z.round().clamp(0.0, k) == ti
            };
            ok += usize::from(hit);
        }
        ok as f64 / d.n as f64
    }

    fn loss(&self, d: &Design, t: &[f64], w: &[f64]) -> f64 {
        let mut s = 0.0;
        for (i, &ti) in t.iter().enumerate().take(d.n) {
            let z: f64 = d.row(i).iter().zip(w).map(|(a, b)| a * b).sum();
            s += (z - ti) * (z - ti);
        }
        0.5 * s / d.n as f64
    }
}

impl OverparamRegsel {
    /// Name and dimensions.
    fn shape(&self) -> Shape {
        Shape::new("overparam-regsel", self.data.train.p, self.data.train.p)
    }
}

impl Bilevel for OverparamRegsel {
    bilevel_shape!();

    fn f(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, y);
        let c = 1.0 / self.data.validation.n as f64;
        sq_pass(engine, &self.data.validation, &self.t_val, w, c, None)
    }

    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, y);
        let c = 1.0 / self.data.train.n as f64;
        sq_pass(engine, &self.data.train, &self.t_train, w, c, None)
    }

    fn grad_f(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, y);
        let c = 1.0 / self.data.validation.n as f64;
        sq_pass(engine, &self.data.validation, &self.t_val, w, c, Some(gy));
        for (j, (gxj, gyj)) in gx.iter_mut().zip(gy.iter_mut()).enumerate() {
            let cj = *gyj;
            *gxj = w[j] * cj;
            *gyj = x[j].exp() * cj;
        }
    }

    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, y);
        let c = 1.0 / self.data.train.n as f64;
        sq_pass(engine, &self.data.train, &self.t_train, w, c, Some(gy));
        gy.iter_mut().zip(x).for_each(|(g, xj)| *g *= xj.exp());
    }

    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, y);
        let c = 1.0 / self.data.train.n as f64;
        sq_pass(engine, &self.data.train, &self.t_train, w, c, Some(gx));
        gx.iter_mut().zip(w.iter()).for_each(|(g, wj)| *g *= wj);
    }

    fn grad_g(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, y);
        let c = 1.0 / self.data.train.n as f64;
        sq_pass(engine, &self.data.train, &self.t_train, w, c, Some(gy));
        for (j, (gxj, gyj)) in gx.iter_mut().zip(gy.iter_mut()).enumerate() {
            let cj = *gyj;
            *gxj = w[j] * cj;
            *gyj = x[j].exp() * cj;
        }
    }

    fn hvp(&self, x: &[f64], _y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let mut g = lock(&self.scratch);
        let RegselScratch { engine, w, .. } = &mut *g;
        scale_into(w, x, v);
        let d = &self.data.train;
        let c = 1.0 / d.n as f64;
        let pass = Rows::from(d).pass(w, 1, 1);
        let map = |_r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
            g.iter_mut().zip(z).for_each(|(gi, zi)| *gi = c * zi);
            0.0
        };
        engine.pass(&pass, out, &mut [], &map);
        out.iter_mut().zip(x).for_each(|(o, xj)| *o *= xj.exp());
    }

    fn cross(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        let mut g = lock(&self.scratch);
        let RegselScratch {
            engine,
            w,
            wv,
            out2,
        } = &mut *g;
        scale_into(w, x, y);
        for j in 0..w.len() {
            wv[2 * j] = w[j];
            wv[2 * j + 1] = x[j].exp() * v[j];
        }
        let d = &self.data.train;
        let c = 1.0 / d.n as f64;
        let t = &self.t_train;
        let pass = Rows::from(d).pass(wv, 2, 2);
        let map = |r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
            for (i, (zu, gi)) in z.chunks_exact(2).zip(g.chunks_exact_mut(2)).enumerate() {
                gi[0] = c * (zu[0] - t[r0 + i]);
                gi[1] = c * zu[1];
            }
            0.0
        };
        engine.pass(&pass, out2, &mut [], &map);
        for (j, o) in out.iter_mut().enumerate() {
            *o = v[j] * x[j].exp() * out2[2 * j] + w[j] * out2[2 * j + 1];
        }
    }

    fn derivatives(&self) -> DerivativeKind {
        DerivativeKind::Analytic
    }

    /// The optimistic selection `y = w_opt / e^x`.
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        let s = self.w_selections()?;
        Some(
            (0..x.len())
                .map(|j| s.optimistic[(j, 0)] / x[j].exp())
                .collect(),
        )
    }
    /// `φ(x) = (1/2m)‖A_val w_opt − t_val‖²`, independent of x.
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let y = self.reference_y(x)?;
        Some(self.f(x, &y))
    }
    /// `∇_x f − J H^† ∇_y f` at the optimistic selection, `H^† = n (BᵀB)^†` with `B = A D`
    /// from its SVD (zero in exact arithmetic; see the type's documentation).
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let y = self.reference_y(x)?;
        let p = self.dim_x();
        let (mut gx, mut gy) = (vec![0.0; p], vec![0.0; p]);
        self.grad_f(x, &y, &mut gx, &mut gy);
        let svd = RankSvd::new(self.scaled_train(x).as_ref())?;
        let n = self.data.train.n as f64;
        let u = svd.gram_pinv_apply(mat_rm(&gy, p, 1).as_ref());
        let u: Vec<f64> = (0..p).map(|j| n * u[(j, 0)]).collect();
        let mut ju = vec![0.0; p];
        self.cross(x, &y, &u, &mut ju);
        Some(gx.iter().zip(&ju).map(|(a, b)| a - b).collect())
    }
    /// `p − rank A`.
    fn reference_intrinsic_dimension(&self) -> Option<usize> {
        let s = self.w_selections()?;
        Some(self.data.train.p - s.rank)
    }

    /// Accuracies (sign of the score for binary data; the rounded score otherwise),
    /// `validation_loss`, `test_loss`, and `phi_optimistic` (φ, constant in x) and
    /// `phi_min_norm` (f at gradient descent's selection `(AD)^† t` for this x).
    fn metrics(&self, x: &[f64], y: &Vec<f64>) -> Vec<(String, f64)> {
        let w: Vec<f64> = y.iter().zip(x).map(|(yj, xj)| yj * xj.exp()).collect();
        let d = &self.data;
        let mut out = vec![(
            "train_accuracy".to_string(),
            self.accuracy(&d.train, &self.t_train, &w),
        )];
        let test = (d.test.n > 0).then_some((&d.test, &self.t_test));
        push_held_out_metrics(&mut out, (&d.validation, &self.t_val), test, |(d, t)| {
            (self.accuracy(d, t, &w), self.loss(d, t, &w))
        });
        push_selection_metrics(self, x, || self.min_norm_y(x), &mut out);
        out
    }

    fn export_arrays(&self) -> Vec<NamedArray> {
        // Labels as exported are the regression targets (±1, or class indices).
        self.data.export(self.binary)
    }
}

/// Push `phi_optimistic` (the optimistic φ(x), where known) and `phi_min_norm` (f at the
/// min-norm selection, gradient descent's from zero, where there is one).
fn push_selection_metrics<P: Bilevel<Y = Vec<f64>>>(
    p: &P,
    x: &[f64],
    min_norm_y: impl FnOnce() -> Option<Vec<f64>>,
    out: &mut Vec<(String, f64)>,
) {
    if let Some(phi) = p.reference_phi(x) {
        out.push(("phi_optimistic".to_string(), phi));
    }
    if let Some(ymn) = min_norm_y() {
        out.push(("phi_min_norm".to_string(), p.f(x, &ymn)));
    }
}

/// `w ← e^x ⊙ y`.
fn scale_into(w: &mut [f64], x: &[f64], y: &[f64]) {
    for ((wj, xj), yj) in w.iter_mut().zip(x).zip(y) {
        *wj = xj.exp() * yj;
    }
}

#[derive(Debug)]
struct CleaningScratch {
    engine: Engine,
    yv: Vec<f64>,
}

/// Last selections of [`OverparamCleaning`] and the weights they were computed for.
#[derive(Debug, Default)]
struct SelectionCache {
    key: Option<Vec<f64>>,
    sel: Option<Selections>,
}

/// `overparam-cleaning`: sample weighting of an interpolating linear least-squares classifier.
///
/// With `A` (`n × p`, `n < p`), (corrupted) one-hot targets `T`, `Y ∈ R^{p×k}`, weights
/// `w_i = w(x_i)` ([`SampleWeights`]), `R = AY − T`:
///
/// * `g(x, Y) = (1/2n) Σ_i w_i ‖Yᵀa_i − e_{t_i}‖²` (no ridge);
/// * `f(Y) = (1/2m) Σ_j ‖Yᵀb_j − e_{s_j}‖²` on the clean validation split;
/// * `∇_Y g = Aᵀ(W R)/n`, `∂g/∂x_i = w'(x_i)‖r_i‖²/(2n)`;
/// * `H V = AᵀW A V/n` (the same `p × p` matrix on every column), `(J V)_i = w'(x_i)⟨r_i,
///   (AV)_i⟩/n`.
///
/// `S(x) = {Y : AᵀWA Y = AᵀW T}`. With positive weights and A of full row rank this is
/// `{AY = T}`: it does **not** depend on x, and neither do the optimistic selection, gradient
/// descent's minimum-norm selection `A^†T` and φ, so `∇φ = 0`. The problem isolates the
/// selection (compare `phi_optimistic` with `phi_min_norm` in the metrics) rather than the
/// weights. With repeated training rows (or clipped weights) S(x) depends on the weights and
/// φ varies with x; the references handle the general case (`B = W^{½}A`, SVDs).
#[derive(Debug)]
pub struct OverparamCleaning {
    data: MlData,
    k: usize,
    weights: SampleWeights,
    scratch: Mutex<CleaningScratch>,
    cache: Mutex<SelectionCache>,
    rank: usize,
}

impl OverparamCleaning {
    /// The problem on prepared (possibly corrupted) data with fewer training rows than
    /// features.
    pub fn new(data: MlData, weights: SampleWeights) -> Result<Self, ProblemError> {
        check_overparameterised("overparam-cleaning", &data)?;
        if data.classes < 2 {
            return Err(ProblemError::invalid(
                "data",
                "overparam-cleaning needs at least 2 classes",
                data.classes,
            ));
        }
        let (p, k) = (data.train.p, data.classes);
        let rank = RankSvd::new(mat_rm(&data.train.features, data.train.n, p).as_ref())
            .map_or(0, |s| s.rank());
        Ok(OverparamCleaning {
            scratch: Mutex::new(CleaningScratch {
                engine: KernelOptions::default_for(p).engine(p, 2 * k, k),
                yv: vec![0.0; 2 * p * k],
            }),
            data,
            k,
            weights,
            cache: Mutex::new(SelectionCache::default()),
            rank,
        })
    }

    /// The data (training labels corrupted).
    pub fn data(&self) -> &MlData {
        &self.data
    }

    /// Whether the selections are the same for every x: positive weights everywhere (sigmoid)
    /// and a training matrix of full row rank.
    pub fn selection_is_constant(&self) -> bool {
        self.weights == SampleWeights::Sigmoid && self.rank == self.data.train.n
    }

    fn one_hot(d: &Design, k: usize) -> Mat<f64> {
        Mat::from_fn(d.n, k, |i, c| {
            f64::from(u8::from(d.labels[i] as usize == c))
        })
    }

    /// `B = W^{½} A` and `W^{½} T` for the weights at x.
    fn weighted(&self, x: &[f64]) -> (Mat<f64>, Mat<f64>) {
        let d = &self.data.train;
        let sw: Vec<f64> = x
            .iter()
            .map(|&xi| self.weights.w(xi).max(0.0).sqrt())
            .collect();
        let b = Mat::from_fn(d.n, d.p, |i, j| sw[i] * d.features[i * d.p + j]);
        let t = Mat::from_fn(d.n, self.k, |i, c| {
            sw[i] * f64::from(u8::from(d.labels[i] as usize == c))
        });
        (b, t)
    }

    /// The selections at x (cached: for every x when [`Self::selection_is_constant`], else for
    /// the last weights).
    fn selections_at(&self, x: &[f64]) -> Option<Selections> {
        let key: Vec<f64> = if self.selection_is_constant() {
            Vec::new()
        } else {
            x.iter().map(|&xi| self.weights.w(xi)).collect()
        };
        let mut cache = lock(&self.cache);
        if cache.key.as_ref() == Some(&key) {
            return cache.sel.clone();
        }
        let (b, t) = self.weighted(x);
        let va = &self.data.validation;
        let sel = selections(
            b.as_ref(),
            t.as_ref(),
            mat_rm(&va.features, va.n, va.p).as_ref(),
            Self::one_hot(va, self.k).as_ref(),
        );
        cache.key = Some(key);
        cache.sel = sel.clone();
        sel
    }

    /// Gradient descent's selection from `Y = 0`: the minimum-norm point `B^† W^{½}T`.
    pub fn min_norm_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(to_rm(self.selections_at(x)?.min_norm.as_ref()))
    }

    #[allow(clippy::too_many_arguments)]
    fn rows_sq(
        &self,
        e: &mut Engine,
        d: &Design,
        y: &[f64],
        c: &(impl Fn(usize) -> f64 + Sync),
        r: &(impl Fn(usize) -> f64 + Sync),
        grad: Option<&mut [f64]>,
        row_out: &mut [f64],
    ) -> f64 {
        let k = self.k;
        let labels = &d.labels;
        let map = |r0: usize, z: &[f64], g: &mut [f64], ro: &mut [f64]| {
            let mut tot = 0.0;
            for (i, zi) in z.chunks_exact(k).enumerate() {
                let row = r0 + i;
                let t = labels[row] as usize;
                let mut sq = 0.0;
                for (cc, &zc) in zi.iter().enumerate() {
                    let res = zc - f64::from(u8::from(cc == t));
                    sq += res * res;
                    if !g.is_empty() {
                        g[i * k + cc] = c(row) * res;
                    }
                }
                if !ro.is_empty() {
                    ro[i] = 0.5 * r(row) * sq;
                }
                tot += 0.5 * c(row) * sq;
            }
            tot
        };
        let kb = if grad.is_some() { k } else { 0 };
        let pass = Pass {
            a: &d.features,
            n: d.n,
            p: d.p,
            rhs: y,
            kk: k,
            kb,
        };
        match grad {
            Some(out) => e.pass(&pass, out, row_out, &map),
            None => e.pass(&pass, &mut [], row_out, &map),
        }
    }

    /// The mean squared loss `(1/n) Σ_i ½‖Yᵀa_i − e_{t_i}‖²` over the rows of `d`.
    fn mean_sq_loss(&self, e: &mut Engine, d: &Design, y: &[f64]) -> f64 {
        let c = 1.0 / d.n as f64;
        self.rows_sq(e, d, y, &|_| c, &|_| 0.0, None, &mut [])
    }

    /// Fraction of the rows of `d` whose largest score is their class in `labels`.
    fn accuracy(&self, e: &mut Engine, d: &Design, labels: &[u32], y: &[f64]) -> f64 {
        let rows = Rows {
            labels,
            ..Rows::from(d)
        };
        softmax::correct(e, rows, self.k, y) as f64 / d.n as f64
    }
}

impl OverparamCleaning {
    /// Name and dimensions.
    fn shape(&self) -> Shape {
        Shape::new(
            "overparam-cleaning",
            self.data.train.n,
            self.data.train.p * self.k,
        )
    }
}

impl Bilevel for OverparamCleaning {
    bilevel_shape!();

    fn f(&self, _x: &[f64], y: &Vec<f64>) -> f64 {
        let mut s = lock(&self.scratch);
        self.mean_sq_loss(&mut s.engine, &self.data.validation, y)
    }

    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let (w_n, _) = mean_weights(self.weights, x, self.data.train.n);
        let mut s = lock(&self.scratch);
        let d = &self.data.train;
        self.rows_sq(&mut s.engine, d, y, &w_n, &|_| 0.0, None, &mut [])
    }

    fn grad_f(&self, _x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        gx.iter_mut().for_each(|g| *g = 0.0);
        let c = 1.0 / self.data.validation.n as f64;
        let mut s = lock(&self.scratch);
        let d = &self.data.validation;
        self.rows_sq(&mut s.engine, d, y, &|_| c, &|_| 0.0, Some(gy), &mut []);
    }

    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        let (w_n, _) = mean_weights(self.weights, x, self.data.train.n);
        let mut s = lock(&self.scratch);
        let d = &self.data.train;
        self.rows_sq(&mut s.engine, d, y, &w_n, &|_| 0.0, Some(gy), &mut []);
    }

    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        let (_, dw_n) = mean_weights(self.weights, x, self.data.train.n);
        let mut s = lock(&self.scratch);
        let d = &self.data.train;
        self.rows_sq(&mut s.engine, d, y, &|_| 0.0, &dw_n, None, gx);
    }

    fn grad_g(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        let (w_n, dw_n) = mean_weights(self.weights, x, self.data.train.n);
        let mut s = lock(&self.scratch);
        let d = &self.data.train;
        self.rows_sq(&mut s.engine, d, y, &w_n, &dw_n, Some(gy), gx);
    }

    fn hvp(&self, x: &[f64], _y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let c = 1.0 / self.data.train.n as f64;
        let w = self.weights;
        let k = self.k;
        let mut s = lock(&self.scratch);
        let d = &self.data.train;
        let pass = Rows::from(d).pass(v, k, k);
        let map = |r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
            for (i, (zi, gi)) in z.chunks_exact(k).zip(g.chunks_exact_mut(k)).enumerate() {
                let wi = c * w.w(x[r0 + i]);
                gi.iter_mut().zip(zi).for_each(|(gv, zv)| *gv = wi * zv);
            }
            0.0
        };
        s.engine.pass(&pass, out, &mut [], &map);
    }

    fn cross(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        let c = 1.0 / self.data.train.n as f64;
        let w = self.weights;
        let k = self.k;
        let mut guard = lock(&self.scratch);
        let CleaningScratch { engine, yv } = &mut *guard;
        interleave(y, v, k, yv);
        let d = &self.data.train;
        let labels = &d.labels;
        let pass = Rows::from(d).pass(yv, 2 * k, 0);
        let map = |r0: usize, z: &[f64], _g: &mut [f64], ro: &mut [f64]| {
            for (i, zu) in z.chunks_exact(2 * k).enumerate() {
                let row = r0 + i;
                let t = labels[row] as usize;
                let (zi, ui) = zu.split_at(k);
                let mut s = 0.0;
                for cc in 0..k {
                    s += (zi[cc] - f64::from(u8::from(cc == t))) * ui[cc];
                }
                ro[i] = c * w.dw(x[row]) * s;
            }
            0.0
        };
        engine.pass(&pass, &mut [], out, &map);
    }

    fn derivatives(&self) -> DerivativeKind {
        DerivativeKind::Analytic
    }

    /// The optimistic selection (dense SVDs; see [`Selections`]).
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(to_rm(self.selections_at(x)?.optimistic.as_ref()))
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let y = self.reference_y(x)?;
        Some(self.f(x, &y))
    }
    /// `∇_x f − J H^† ∇_Y f` at the optimistic selection (`∇_x f = 0`), with
    /// `H^† = n (BᵀB)^†` per column, `B = W^{½}A`.
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let y = self.reference_y(x)?;
        let (m, d) = (self.dim_x(), self.dim_y());
        let (mut gx, mut gy) = (vec![0.0; m], vec![0.0; d]);
        self.grad_f(x, &y, &mut gx, &mut gy);
        let (b, _) = self.weighted(x);
        let svd = RankSvd::new(b.as_ref())?;
        let p = self.data.train.p;
        let u = svd.gram_pinv_apply(mat_rm(&gy, p, self.k).as_ref());
        let n = self.data.train.n as f64;
        let u: Vec<f64> = to_rm(u.as_ref()).iter().map(|v| n * v).collect();
        let mut ju = vec![0.0; m];
        self.cross(x, &y, &u, &mut ju);
        Some(gx.iter().zip(&ju).map(|(a, b)| a - b).collect())
    }
    /// `(p − rank A) · k` (for positive weights).
    fn reference_intrinsic_dimension(&self) -> Option<usize> {
        Some((self.data.train.p - self.rank) * self.k)
    }

    /// `train_accuracy` (corrupted labels), `train_clean_accuracy`, `validation_accuracy`,
    /// `validation_loss`, `test_accuracy`, `test_loss`, `corrupted_weight_mean`,
    /// `clean_weight_mean`, `phi_optimistic` and `phi_min_norm` (f at gradient descent's
    /// selection).
    fn metrics(&self, x: &[f64], y: &Vec<f64>) -> Vec<(String, f64)> {
        let d = &self.data;
        let mut out = Vec::with_capacity(10);
        {
            let mut s = lock(&self.scratch);
            let e = &mut s.engine;
            out.push((
                "train_accuracy".to_string(),
                self.accuracy(e, &d.train, &d.train.labels, y),
            ));
            out.push((
                "train_clean_accuracy".to_string(),
                self.accuracy(e, &d.train, &d.clean_train_labels, y),
            ));
            let test = (d.test.n > 0).then_some(&d.test);
            push_held_out_metrics(&mut out, &d.validation, test, |r| {
                let accuracy = self.accuracy(e, r, &r.labels, y);
                (accuracy, self.mean_sq_loss(e, r, y))
            });
        }
        out.extend(weight_means(self.weights, x, &d.corrupted));
        push_selection_metrics(self, x, || self.min_norm_y(x), &mut out);
        out
    }

    fn export_arrays(&self) -> Vec<NamedArray> {
        self.data.export(false)
    }
}

ml_config! {
    /// Parameters of `overparam-regsel` ([`OverparamRegsel`]). Defaults: `data =
    /// "breast-cancer"`, `train = 20` (fewer than the 31 features with the intercept),
    /// `validation = 0.25`, `standardize = "zscore"`, `intercept = true`, `x0 = 0`.
    OverparamRegselConfig {}
}

impl BuildProblem for OverparamRegselConfig {
    fn build(&self, ctx: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let d = overparam_defaults(0.0);
        self.finish(OverparamRegsel::new(self.prepare(&d, ctx)?)?, &d)
    }
    fn data_mut(&mut self) -> Option<&mut Option<DataSource>> {
        Some(&mut self.data)
    }
}

ml_config! {
    /// Parameters of `overparam-cleaning` ([`OverparamCleaning`]). Defaults: `data =
    /// "breast-cancer"`, `train = 20`, `validation = 0.25`, `standardize = "zscore"`,
    /// `intercept = true`, `corruption = 0.5`, `weights = "sigmoid"`, `x0 = -2`.
    OverparamCleaningConfig {
        /// Fraction of training labels replaced by uniform random labels, in [0, 1].
        corruption: f64,
        /// Sample-weight map: `"sigmoid"` or `"clip"`.
        weights: SampleWeights,
    }
}

impl BuildProblem for OverparamCleaningConfig {
    fn build(&self, ctx: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let d = overparam_defaults(HyperCleaning::DEFAULT_X0);
        let corruption = self.corruption.unwrap_or(HyperCleaning::DEFAULT_CORRUPTION);
        check_fraction(corruption)?;
        let mut data = self.prepare(&d, ctx)?;
        data.corrupt(corruption, self.seed.unwrap_or(0))?;
        let p = OverparamCleaning::new(data, self.weights.unwrap_or_default())?;
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
    use bilevel_core::derivatives::fd_gradient;
    use bilevel_core::rng::Rng;
    use bilevel_core::vector::norm;
    use faer::linalg::solvers::Solve;

    fn data(classes: usize, train: u64, seed: u64) -> MlData {
        let d = synthetic(120, 11, classes, 1.0, seed);
        let spec = SplitSpec {
            train: SplitSize::Count(train),
            validation: SplitSize::Count(40),
            test: None,
            seed,
            standardize: Standardize::Zscore,
            intercept: true,
        };
        MlData::prepare("syn", &d, None, &spec).unwrap()
    }

    fn normals(len: usize, scale: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut v = vec![0.0; len];
        rng.fill_normal(&mut v);
        v.iter_mut().for_each(|e| *e *= scale);
        v
    }

    /// The KKT solution `[A_valᵀA_val/m  Aᵀ; A  0][w; λ] = [A_valᵀT_val/m; T]`.
    fn kkt(a: &Design, t: &Mat<f64>, v: &Design, tv: &Mat<f64>) -> Mat<f64> {
        let (n, p, k) = (a.n, a.p, t.ncols());
        let am = mat_rm(&a.features, n, p);
        let vm = mat_rm(&v.features, v.n, p);
        let ata = vm.transpose() * &vm * (1.0 / v.n as f64);
        let q = p + n;
        let m = Mat::from_fn(q, q, |i, j| match (i < p, j < p) {
            (true, true) => ata[(i, j)],
            (true, false) => am[(j - p, i)],
            (false, true) => am[(i - p, j)],
            (false, false) => 0.0,
        });
        let atb = vm.transpose() * tv * (1.0 / v.n as f64);
        let rhs = Mat::from_fn(q, k, |i, j| if i < p { atb[(i, j)] } else { t[(i - p, j)] });
        let sol = m.partial_piv_lu().solve(&rhs);
        sol.subrows(0, p).to_owned()
    }

    #[test]
    fn regsel_oracles_match_finite_differences() {
        for classes in [2, 3] {
            let p = OverparamRegsel::new(data(classes, 6, 1)).unwrap();
            assert_eq!((p.dim_x(), p.dim_y()), (12, 12));
            check_oracles(&p, &normals(12, 0.5, 2), &normals(12, 0.5, 3), 4);
        }
    }

    #[test]
    fn regsel_optimistic_selection_is_exact_and_phi_is_flat() {
        let p = OverparamRegsel::new(data(2, 6, 5)).unwrap();
        assert_eq!(p.reference_intrinsic_dimension(), Some(12 - 6));
        let x = normals(12, 0.5, 6);
        let y = p.reference_y(&x).unwrap();
        // In S(x): ∇_y g = 0 (interpolation).
        let mut gy = vec![0.0; 12];
        p.grad_g_y(&x, &y, &mut gy);
        assert!(norm(&gy) < 1e-12, "{}", norm(&gy));
        assert!(p.g(&x, &y) < 1e-26);
        // Against the KKT system in w = e^x ⊙ y.
        let (tr, va) = (&p.data.train, &p.data.validation);
        let w = kkt(
            tr,
            &mat_rm(&p.t_train, tr.n, 1),
            va,
            &mat_rm(&p.t_val, va.n, 1),
        );
        for j in 0..12 {
            assert!((y[j] * x[j].exp() - w[(j, 0)]).abs() < 1e-9 * (1.0 + w[(j, 0)].abs()));
        }
        // φ is constant in x, ∇φ = 0 although ∇_x f ≠ 0 at the selection.
        let (mut fx, mut fy) = (vec![0.0; 12], vec![0.0; 12]);
        p.grad_f(&x, &y, &mut fx, &mut fy);
        assert!(
            norm(&fx) > 1e-2,
            "the formula's cancellation is not trivial"
        );
        let g = p.reference_grad_phi(&x).unwrap();
        assert!(norm(&g) < 1e-9 * norm(&fx), "∇φ = {g:?}");
        let fd = fd_gradient(|z| p.reference_phi(z).unwrap(), &x, 1e-4);
        assert!(norm(&fd) < 1e-9, "{fd:?}");
        let x2 = normals(12, 0.5, 7);
        let (phi, phi2) = (p.reference_phi(&x).unwrap(), p.reference_phi(&x2).unwrap());
        assert!((phi - phi2).abs() < 1e-12 * phi);
        // Gradient descent's selection depends on x and is worse than the optimistic one.
        let m1 = p.metrics(&x, &y);
        let m2 = p.metrics(&x2, &p.reference_y(&x2).unwrap());
        let get = |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).unwrap().1;
        let (a, b) = (get(&m1, "phi_min_norm"), get(&m2, "phi_min_norm"));
        assert!((a - b).abs() > 1e-3 * a, "{a} vs {b}");
        assert!(a > get(&m1, "phi_optimistic") && b > get(&m2, "phi_optimistic"));
        assert!((get(&m1, "phi_optimistic") - phi).abs() < 1e-14);
        // The min-norm point interpolates and is shorter than the optimistic point.
        let ymn = p.min_norm_y(&x).unwrap();
        assert!(p.g(&x, &ymn) < 1e-26);
        assert!(norm(&ymn) < norm(&y));
    }

    #[test]
    fn regsel_gradient_descent_reaches_the_min_norm_selection() {
        let p = OverparamRegsel::new(data(2, 6, 8)).unwrap();
        let x = normals(12, 0.3, 9);
        let mut y = vec![0.0; 12];
        let mut gy = vec![0.0; 12];
        // Step 1/L with L from a power iteration on H.
        let mut v = vec![1.0; 12];
        let mut hv = vec![0.0; 12];
        let mut l = 0.0;
        for _ in 0..200 {
            p.hvp(&x, &y, &v, &mut hv);
            l = norm(&hv) / norm(&v);
            v.copy_from_slice(&hv);
        }
        for _ in 0..20_000 {
            p.grad_g_y(&x, &y, &mut gy);
            y.iter_mut().zip(&gy).for_each(|(a, g)| *a -= g / l);
        }
        let ymn = p.min_norm_y(&x).unwrap();
        let d: Vec<f64> = y.iter().zip(&ymn).map(|(a, b)| a - b).collect();
        assert!(norm(&d) < 1e-6 * norm(&ymn), "{}", norm(&d));
    }

    #[test]
    fn overparameterisation_is_required() {
        let e = OverparamRegsel::new(data(2, 12, 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("problem.train: overparam-regsel needs fewer training rows"),
            "{e}"
        );
        let e = OverparamCleaning::new(data(3, 30, 1), SampleWeights::Sigmoid)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(got 30)"), "{e}");
    }

    #[test]
    fn cleaning_oracles_match_finite_differences() {
        let mut m = data(3, 7, 2);
        m.corrupt(0.5, 2).unwrap();
        let p = OverparamCleaning::new(m, SampleWeights::Sigmoid).unwrap();
        assert_eq!((p.dim_x(), p.dim_y()), (7, 36));
        check_oracles(&p, &normals(7, 1.0, 3), &normals(36, 0.5, 4), 5);
        let m = data(3, 7, 6);
        let p = OverparamCleaning::new(m, SampleWeights::Clip).unwrap();
        let x: Vec<f64> = normals(7, 1.0, 7)
            .iter()
            .map(|v| 0.5 + 0.3 * v.tanh())
            .collect();
        check_oracles(&p, &x, &normals(36, 0.5, 8), 9);
    }

    #[test]
    fn cleaning_selection_is_exact_and_constant_in_x() {
        let mut m = data(3, 7, 10);
        m.corrupt(0.5, 10).unwrap();
        let p = OverparamCleaning::new(m, SampleWeights::Sigmoid).unwrap();
        assert!(p.selection_is_constant());
        assert_eq!(p.reference_intrinsic_dimension(), Some((12 - 7) * 3));
        let x = normals(7, 1.0, 11);
        let y = p.reference_y(&x).unwrap();
        assert!(p.g(&x, &y) < 1e-26);
        let (tr, va) = (&p.data.train, &p.data.validation);
        let want = kkt(
            tr,
            &OverparamCleaning::one_hot(tr, 3),
            va,
            &OverparamCleaning::one_hot(va, 3),
        );
        for (i, yi) in y.iter().enumerate() {
            assert!((yi - want[(i / 3, i % 3)]).abs() < 1e-9 * (1.0 + yi.abs()));
        }
        let g = p.reference_grad_phi(&x).unwrap();
        assert!(norm(&g) < 1e-12, "{g:?}");
        let x2 = normals(7, 1.0, 12);
        assert_eq!(p.reference_y(&x2).unwrap(), y);
        let met = p.metrics(&x, &y);
        let get = |k: &str| met.iter().find(|(n, _)| n == k).unwrap().1;
        assert!(get("phi_min_norm") > get("phi_optimistic"));
        assert_eq!(
            get("train_accuracy"),
            1.0,
            "interpolation fits the (corrupted) labels"
        );
    }

    /// Two identical training rows with different labels make the least-squares solution set
    /// depend on the weights: φ varies with x, and the select-then-differentiate hypergradient
    /// matches central differences of the exact φ.
    #[test]
    fn cleaning_hypergradient_matches_differences_when_phi_depends_on_x() {
        let mut m = data(3, 7, 13);
        let p_ = m.train.p;
        let row0 = m.train.row(0).to_vec();
        m.train.features[p_..2 * p_].copy_from_slice(&row0);
        m.train.labels[1] = (m.train.labels[0] + 1) % 3;
        let p = OverparamCleaning::new(m, SampleWeights::Sigmoid).unwrap();
        assert!(!p.selection_is_constant());
        assert_eq!(p.reference_intrinsic_dimension(), Some((12 - 6) * 3));
        let x = normals(7, 1.0, 14);
        let y = p.reference_y(&x).unwrap();
        let mut gy = vec![0.0; 36];
        p.grad_g_y(&x, &y, &mut gy);
        assert!(norm(&gy) < 1e-12);
        let (g, _) = check_reference_gradient(&p, &x, 1e-4, 1e-5);
        assert!(g[0].abs() > 1e-4 && g[1].abs() > 1e-4, "{g:?}");
        assert!(g[2..].iter().all(|v| v.abs() < 1e-10), "{g:?}");
    }
}
