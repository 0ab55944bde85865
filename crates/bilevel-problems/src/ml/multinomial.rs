//! `regsel-multinomial`: L2 strengths per class or per feature of a softmax regression,
//! selected on a validation split (PROBLEMS.md §E.1, multinomial version).

use super::data::{Design, MlData};
use super::kernels::Engine;
use super::reference::{implicit_hypergradient, WarmStart};
use super::softmax::{self, interleave, Rows};
use super::{lock, KernelOptions};
use crate::error::ProblemError;
use bilevel_core::{Bilevel, DerivativeKind, NamedArray};
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
#[derive(Debug)]
pub struct RegselMultinomial {
    data: MlData,
    k: usize,
    per: StrengthPer,
    scratch: Mutex<Scratch>,
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

impl Bilevel for RegselMultinomial {
    type Y = Vec<f64>;

    fn name(&self) -> &str {
        "regsel-multinomial"
    }
    fn dim_x(&self) -> usize {
        match self.per {
            StrengthPer::Class => self.k,
            StrengthPer::Feature => self.data.train.p,
        }
    }
    fn dim_y(&self) -> usize {
        self.data.train.p * self.k
    }
    fn zeros_y(&self) -> Vec<f64> {
        vec![0.0; self.dim_y()]
    }

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

    fn derivatives(&self) -> DerivativeKind {
        DerivativeKind::Analytic
    }

    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.warm.y_star(self, x)
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let y = self.warm.y_star(self, x)?;
        Some(self.f(x, &y))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let y = self.warm.y_star(self, x)?;
        implicit_hypergradient(self, x, &y)
    }
    fn reference_intrinsic_dimension(&self) -> Option<usize> {
        Some(0)
    }

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
        let mut out = vec![
            ("train_accuracy".to_string(), acc(e, &self.data.train)),
            (
                "validation_accuracy".to_string(),
                acc(e, &self.data.validation),
            ),
            (
                "validation_loss".to_string(),
                loss(e, &self.data.validation),
            ),
        ];
        if self.data.test.n > 0 {
            out.push(("test_accuracy".to_string(), acc(e, &self.data.test)));
            out.push(("test_loss".to_string(), loss(e, &self.data.test)));
        }
        out
    }

    fn export_arrays(&self) -> Vec<NamedArray> {
        self.data.export(false)
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
}
