//! `regsel-logistic`: per-feature L2 strengths of a binary logistic regression, selected on a
//! validation split (docs/PROBLEMS.md §E.1).

use super::config::ml_config;
use super::config::small_defaults;
use super::data::{Design, MlData};
use super::kernels::{sigmoid, softplus, BatchEngine, BatchPass, Engine, ExpCache, Pass};
use super::reference::{newton_references, WarmStart};
use super::softmax::interleave;
use super::{bilevel_shape, split_sums};
use super::{lock, push_held_out_metrics, KernelOptions};
use crate::config::{BuildContext, BuildProblem, BuiltProblem};
use crate::error::ProblemError;
use crate::wrapper::Shape;
use bilevel_core::{Batch, Bilevel, NamedArray};
use bilevel_data::DataSource;
use std::sync::Mutex;

/// Binary targets `t_i ∈ {−1, +1}` (class 1 ↦ +1) of a design.
fn signs(d: &Design) -> Vec<f64> {
    d.labels
        .iter()
        .map(|&l| if l == 1 { 1.0 } else { -1.0 })
        .collect()
}

/// A design with ±1 targets.
#[derive(Clone, Copy, Debug)]
struct Binary<'a> {
    a: &'a [f64],
    t: &'a [f64],
    n: usize,
    p: usize,
}

/// `Σ_i c · softplus(−t_i a_iᵀy)` (only with `value`; 0 otherwise); with `grad`, also
/// `grad ← c Aᵀ r`, `r_i = −t_i σ(−t_i a_iᵀy)`.
fn loss_pass(
    e: &mut Engine,
    d: Binary<'_>,
    y: &[f64],
    c: f64,
    value: bool,
    grad: Option<&mut [f64]>,
) -> f64 {
    let t = d.t;
    let map = |r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
        let mut tot = 0.0;
        if value {
            for (i, &zi) in z.iter().enumerate() {
                tot += softplus(-t[r0 + i] * zi);
            }
        }
        for (i, (&zi, gi)) in z.iter().zip(g.iter_mut()).enumerate() {
            let ti = t[r0 + i];
            *gi = -c * ti * sigmoid(-ti * zi);
        }
        c * tot
    };
    let kb = usize::from(grad.is_some());
    let pass = Pass {
        a: d.a,
        n: d.n,
        p: d.p,
        rhs: y,
        kk: 1,
        kb,
    };
    match grad {
        Some(out) => e.pass(&pass, out, &mut [], &map),
        None => e.pass(&pass, &mut [], &mut [], &map),
    }
}

/// Number of rows with `sign(a_iᵀy) = t_i` (a zero score predicts −1).
fn correct(e: &mut Engine, d: Binary<'_>, y: &[f64]) -> usize {
    let t = d.t;
    let map = |r0: usize, z: &[f64], _g: &mut [f64], _ro: &mut [f64]| {
        z.iter()
            .enumerate()
            .filter(|(i, &zi)| (zi > 0.0) == (t[r0 + i] > 0.0))
            .count() as f64
    };
    let pass = Pass {
        a: d.a,
        n: d.n,
        p: d.p,
        rhs: y,
        kk: 1,
        kb: 0,
    };
    e.pass(&pass, &mut [], &mut [], &map) as usize
}

#[derive(Debug)]
struct Scratch {
    engine: Engine,
    yv: Vec<f64>,
}

/// `(−t σ(−t z), σ(z)(1 − σ(z)))`: the derivative and the curvature of `softplus(−t z)` in the
/// score z of a row with target `t = ±1`, from one exponential.
#[inline]
fn row_derivatives(z: f64, t: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let hi = 1.0 / (1.0 + e); // σ(|z|)
    let lo = e * hi; // σ(−|z|)
    let s = if t * z >= 0.0 { lo } else { hi }; // σ(−t z)
    (-t * s, hi * lo)
}

/// Scratch of the minibatch oracles: the batch pass, `[y v]`, the `p × 2` output of the
/// combined pass and `e^x`.
#[derive(Debug)]
struct BatchScratch {
    engine: BatchEngine,
    yv: Vec<f64>,
    out: Vec<f64>,
    ex: ExpCache,
}

/// `gy ← s Σ_{i∈B} (−t_i σ(−t_i a_iᵀy)) a_i` over the batch rows of `d` (repeats counted).
fn batch_loss_gradient(
    e: &mut BatchEngine,
    d: Binary<'_>,
    idx: &[usize],
    y: &[f64],
    s: f64,
    gy: &mut [f64],
) {
    let t = d.t;
    let pass = BatchPass {
        a: d.a,
        p: d.p,
        idx,
        rhs: y,
        kk: 1,
        kb: 1,
    };
    e.pass(&pass, gy, |rows, z, g| {
        for ((&i, &zi), gi) in rows.iter().zip(z).zip(g.iter_mut()) {
            *gi = s * row_derivatives(zi, t[i]).0;
        }
        0.0
    });
}

/// `regsel-logistic`: per-feature regularisation selection for binary logistic regression.
///
/// With the training matrix `A` (`n × p`, after scaling and the optional intercept column),
/// targets `t_i ∈ {−1, +1}`, `x, y ∈ R^p`:
///
/// * `g(x, y) = (1/n) Σ_i log(1 + exp(−t_i a_iᵀy)) + ½ Σ_j e^{x_j} y_j²`;
/// * `f(y) = (1/m) Σ_j log(1 + exp(−s_j b_jᵀy))` on the validation split (`∇_x f = 0`);
/// * `∇_y g = Aᵀ(−t ⊙ σ(−t ⊙ Ay))/n + e^x ⊙ y`, `∇_x g = ½ e^x ⊙ y²`;
/// * `H v = Aᵀ(D ⊙ Av)/n + e^x ⊙ v`, `D_i = σ(z_i)(1 − σ(z_i))`, `z = Ay`;
/// * `J v = e^x ⊙ y ⊙ v`.
///
/// `g` is `min_j e^{x_j}`-strongly convex, so `S(x) = {y*(x)}`; the references solve it by
/// Newton–CG to `‖∇_y g‖ ≤ 1e-10` and use the implicit formula `∇φ = −J H⁻¹∇_y f`.
///
/// **Minibatches.** `g` is a finite sum over the n training rows (the ridge deterministic) and
/// `f` over the m validation rows. On a batch B with `s = `[`Batch::sum_scale`] (repeats
/// counted):
///
/// * `∇_y g_B = s Σ_{i∈B} (−t_i σ(−t_i a_iᵀy)) a_i + e^x ⊙ y`;
/// * `H_B v = s Σ_{i∈B} D_i (a_iᵀv) a_i + e^x ⊙ v`;
/// * `∇_x g_B = ½ e^x ⊙ y²` and `J_B v = e^x ⊙ y ⊙ v` (the ridge only: the full oracles);
/// * `∇_y f_B = s Σ_{j∈B} (−s_j σ(−s_j b_jᵀy)) b_j`, `∇_x f_B = 0`.
///
/// They run on the calling thread over the batch rows only, read in place (no gathering), with
/// one exponential per row.
#[derive(Debug)]
pub struct RegselLogistic {
    data: MlData,
    t_train: Vec<f64>,
    t_val: Vec<f64>,
    t_test: Vec<f64>,
    scratch: Mutex<Scratch>,
    batch: Mutex<BatchScratch>,
    warm: WarmStart,
}

impl RegselLogistic {
    /// Default start of every `x_j` (strength e⁰ = 1).
    pub const DEFAULT_X0: f64 = 0.0;

    /// The problem on prepared binary data (exactly 2 classes; class 1 is `t = +1`).
    pub fn new(data: MlData) -> Result<Self, ProblemError> {
        if data.classes != 2 {
            return Err(ProblemError::invalid(
                "data",
                format!(
                    "regsel-logistic needs a binary data set; {} has {} classes (use \
                     regsel-multinomial)",
                    data.name, data.classes
                ),
                data.classes,
            ));
        }
        let p = data.train.p;
        Ok(RegselLogistic {
            t_train: signs(&data.train),
            t_val: signs(&data.validation),
            t_test: signs(&data.test),
            scratch: Mutex::new(Scratch {
                engine: KernelOptions::default_for(p).engine(p, 2, 1),
                yv: vec![0.0; 2 * p],
            }),
            batch: Mutex::new(BatchScratch {
                engine: BatchEngine::new(p, 2, 2),
                yv: vec![0.0; 2 * p],
                out: vec![0.0; 2 * p],
                ex: ExpCache::new(p),
            }),
            data,
            warm: WarmStart::default(),
        })
    }

    /// Replace the blocking and threading of the passes (benchmarks).
    pub fn set_kernel_options(&self, opts: KernelOptions) {
        let p = self.data.train.p;
        lock(&self.scratch).engine = opts.engine(p, 2, 1);
    }

    /// The data.
    pub fn data(&self) -> &MlData {
        &self.data
    }

    fn part<'a>(&'a self, d: &'a Design, t: &'a [f64]) -> Binary<'a> {
        Binary {
            a: &d.features,
            t,
            n: d.n,
            p: d.p,
        }
    }
    fn train(&self) -> Binary<'_> {
        self.part(&self.data.train, &self.t_train)
    }
    fn val(&self) -> Binary<'_> {
        self.part(&self.data.validation, &self.t_val)
    }
    /// [`loss_pass`] over split `d` with the mean's weight `c = 1/n`, on the oracle scratch.
    fn mean_loss_pass(
        &self,
        d: Binary<'_>,
        y: &[f64],
        value: bool,
        grad: Option<&mut [f64]>,
    ) -> f64 {
        let c = 1.0 / d.n as f64;
        loss_pass(&mut lock(&self.scratch).engine, d, y, c, value, grad)
    }
    fn test(&self) -> Binary<'_> {
        self.part(&self.data.test, &self.t_test)
    }
}

impl RegselLogistic {
    /// Name and dimensions.
    fn shape(&self) -> Shape {
        Shape::new("regsel-logistic", self.data.train.p, self.data.train.p)
    }
}

impl Bilevel for RegselLogistic {
    bilevel_shape!();

    fn f(&self, _x: &[f64], y: &Vec<f64>) -> f64 {
        self.mean_loss_pass(self.val(), y, true, None)
    }

    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let loss = self.mean_loss_pass(self.train(), y, true, None);
        let ridge: f64 = x.iter().zip(y).map(|(xj, yj)| xj.exp() * yj * yj).sum();
        loss + 0.5 * ridge
    }

    fn grad_f(&self, _x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        gx.iter_mut().for_each(|g| *g = 0.0);
        self.mean_loss_pass(self.val(), y, false, Some(gy));
    }

    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        self.mean_loss_pass(self.train(), y, false, Some(gy));
        for ((g, xj), yj) in gy.iter_mut().zip(x).zip(y) {
            *g += xj.exp() * yj;
        }
    }

    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        for ((g, xj), yj) in gx.iter_mut().zip(x).zip(y) {
            *g = 0.5 * xj.exp() * yj * yj;
        }
    }

    fn hvp(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let c = 1.0 / self.data.train.n as f64;
        let mut guard = lock(&self.scratch);
        let Scratch { engine, yv } = &mut *guard;
        interleave(y, v, 1, yv);
        let d = self.train();
        let pass = Pass {
            a: d.a,
            n: d.n,
            p: d.p,
            rhs: yv,
            kk: 2,
            kb: 1,
        };
        let map = |_r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
            for (zu, gi) in z.chunks_exact(2).zip(g.iter_mut()) {
                let s = sigmoid(zu[0]);
                *gi = c * s * (1.0 - s) * zu[1];
            }
            0.0
        };
        engine.pass(&pass, out, &mut [], &map);
        for ((o, xj), vj) in out.iter_mut().zip(x).zip(v) {
            *o += xj.exp() * vj;
        }
    }

    fn cross(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        for (((o, xj), yj), vj) in out.iter_mut().zip(x).zip(y).zip(v) {
            *o = xj.exp() * yj * vj;
        }
    }

    split_sums!();

    /// `∇_y g_B = s Σ_{i∈B} (−t_i σ(−t_i a_iᵀy)) a_i + e^x ⊙ y`, `s = w_B/|B|`.
    fn grad_g_y_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, gy: &mut Vec<f64>) {
        let mut guard = lock(&self.batch);
        let BatchScratch { engine, ex, .. } = &mut *guard;
        batch_loss_gradient(engine, self.train(), b.indices, y, b.sum_scale(), gy);
        for ((g, e), yj) in gy.iter_mut().zip(ex.get(x)).zip(y) {
            *g += e * yj;
        }
    }

    /// `∇_x g_B = ½ e^x ⊙ y²` (the ridge's: the samples do not depend on x).
    fn grad_g_x_batch(&self, x: &[f64], y: &Vec<f64>, _b: &Batch<'_>, gx: &mut [f64]) {
        self.grad_g_x(x, y, gx);
    }

    /// `∇_y f_B = s Σ_{j∈B} (−s_j σ(−s_j b_jᵀy)) b_j`, `∇_x f_B = 0`.
    fn grad_f_batch(
        &self,
        _x: &[f64],
        y: &Vec<f64>,
        b: &Batch<'_>,
        gx: &mut [f64],
        gy: &mut Vec<f64>,
    ) {
        gx.fill(0.0);
        let mut guard = lock(&self.batch);
        batch_loss_gradient(
            &mut guard.engine,
            self.val(),
            b.indices,
            y,
            b.sum_scale(),
            gy,
        );
    }

    /// `H_B v = s Σ_{i∈B} σ(z_i)(1 − σ(z_i)) (a_iᵀv) a_i + e^x ⊙ v`, `z_i = a_iᵀy`.
    fn hvp_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let s = b.sum_scale();
        let mut guard = lock(&self.batch);
        let BatchScratch { engine, yv, ex, .. } = &mut *guard;
        interleave(y, v, 1, yv);
        let d = self.train();
        let pass = BatchPass {
            a: d.a,
            p: d.p,
            idx: b.indices,
            rhs: yv,
            kk: 2,
            kb: 1,
        };
        engine.pass(&pass, out, |rows, z, g| {
            for ((&i, zu), gi) in rows.iter().zip(z.chunks_exact(2)).zip(g.iter_mut()) {
                *gi = s * row_derivatives(zu[0], d.t[i]).1 * zu[1];
            }
            0.0
        });
        for ((o, e), vj) in out.iter_mut().zip(ex.get(x)).zip(v) {
            *o += e * vj;
        }
    }

    /// `J_B v = e^x ⊙ y ⊙ v` (the ridge's: the full cross product).
    fn cross_batch(&self, x: &[f64], y: &Vec<f64>, _b: &Batch<'_>, v: &Vec<f64>, out: &mut [f64]) {
        self.cross(x, y, v, out);
    }

    /// `∇_y g_B`, `H_B v` and `J_B v` from one pass over the batch rows (one product with
    /// `[y v]`, one exponential per row, one back product for both sums); `e^x` is computed
    /// once per new x.
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
        let s = b.sum_scale();
        let mut guard = lock(&self.batch);
        let BatchScratch {
            engine,
            yv,
            out,
            ex,
        } = &mut *guard;
        interleave(y, v, 1, yv);
        let d = self.train();
        let pass = BatchPass {
            a: d.a,
            p: d.p,
            idx: b.indices,
            rhs: yv,
            kk: 2,
            kb: 2,
        };
        engine.pass(&pass, out, |rows, z, g| {
            for ((&i, zu), gi) in rows
                .iter()
                .zip(z.chunks_exact(2))
                .zip(g.chunks_exact_mut(2))
            {
                let (r, c) = row_derivatives(zu[0], d.t[i]);
                gi[0] = s * r;
                gi[1] = s * c * zu[1];
            }
            0.0
        });
        for (j, (o, &e)) in out.chunks_exact(2).zip(ex.get(x)).enumerate() {
            gy[j] = o[0] + e * y[j];
            hv[j] = o[1] + e * v[j];
            jv[j] = e * y[j] * v[j];
        }
    }

    newton_references!();

    /// `train_accuracy`, `validation_accuracy`, `validation_loss`, and `test_accuracy`,
    /// `test_loss` when there is a test split.
    fn metrics(&self, _x: &[f64], y: &Vec<f64>) -> Vec<(String, f64)> {
        let mut s = lock(&self.scratch);
        let e = &mut s.engine;
        let acc = |e: &mut Engine, d: Binary<'_>| correct(e, d, y) as f64 / d.n as f64;
        let loss = |e: &mut Engine, d: Binary<'_>| loss_pass(e, d, y, 1.0 / d.n as f64, true, None);
        let mut out = vec![("train_accuracy".to_string(), acc(e, self.train()))];
        let test = (self.data.test.n > 0).then(|| self.test());
        push_held_out_metrics(&mut out, self.val(), test, |d| (acc(e, d), loss(e, d)));
        out
    }

    fn export_arrays(&self) -> Vec<NamedArray> {
        self.data.export(true)
    }
}

ml_config! {
    /// Parameters of `regsel-logistic` ([`RegselLogistic`]). Defaults: `data = "breast-cancer"`,
    /// `train = 0.5`, `validation = 0.25`, test the rest, `standardize = "zscore"`,
    /// `intercept = true`, `x0 = 0`.
    RegselLogisticConfig {}
}

impl BuildProblem for RegselLogisticConfig {
    fn build(&self, ctx: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let d = small_defaults("breast-cancer", RegselLogistic::DEFAULT_X0);
        self.finish(RegselLogistic::new(self.prepare(&d, ctx)?)?, &d)
    }
    fn data_mut(&mut self) -> Option<&mut Option<DataSource>> {
        Some(&mut self.data)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ml::data::{synthetic, SplitSize, SplitSpec, Standardize};
    use crate::ml::fdcheck::{check_oracles, check_reference_gradient};
    use bilevel_core::rng::Rng;
    use bilevel_core::vector::norm;

    pub(crate) fn small(seed: u64) -> RegselLogistic {
        let d = synthetic(100, 6, 2, 0.7, seed);
        let spec = SplitSpec {
            train: SplitSize::Count(40),
            validation: SplitSize::Count(30),
            test: None,
            seed,
            standardize: Standardize::Zscore,
            intercept: true,
        };
        RegselLogistic::new(MlData::prepare("syn", &d, None, &spec).unwrap()).unwrap()
    }

    #[test]
    fn oracles_match_finite_differences() {
        let p = small(1);
        assert_eq!((p.dim_x(), p.dim_y()), (7, 7));
        let mut rng = Rng::new(2);
        let mut x = vec![0.0; 7];
        let mut y = vec![0.0; 7];
        rng.fill_normal(&mut x);
        rng.fill_normal(&mut y);
        check_oracles(&p, &x, &y, 3);
    }

    #[test]
    fn values_are_the_documented_formulas() {
        let p = small(4);
        let (x, y) = (vec![0.3; 7], vec![0.2; 7]);
        let d = &p.data.train;
        let mut want = 0.0;
        for i in 0..d.n {
            let z: f64 = d.row(i).iter().zip(&y).map(|(a, b)| a * b).sum();
            want += (1.0 + (-p.t_train[i] * z).exp()).ln() / d.n as f64;
        }
        want += 0.5 * 7.0 * 0.3f64.exp() * 0.04;
        assert!((p.g(&x, &y) - want).abs() < 1e-14 * want);
        // Extreme scores do not overflow.
        let big = vec![1e3; 7];
        assert!(p.g(&x, &big).is_finite() && p.f(&x, &big).is_finite());
    }

    #[test]
    fn reference_hypergradient_matches_differences_of_phi() {
        let p = small(5);
        let x = vec![-1.0, 0.5, 0.0, 1.0, -0.5, 0.2, 0.0];
        let y = p.reference_y(&x).unwrap();
        let mut gy = vec![0.0; 7];
        p.grad_g_y(&x, &y, &mut gy);
        assert!(norm(&gy) <= 1e-10);
        let (g, _) = check_reference_gradient(&p, &x, 1e-4, 1e-5);
        assert!(norm(&g) > 1e-4);
    }

    #[test]
    fn non_binary_data_is_rejected() {
        let d = synthetic(60, 3, 3, 1.0, 1);
        let spec = SplitSpec {
            train: SplitSize::Count(30),
            validation: SplitSize::Count(20),
            test: None,
            seed: 0,
            standardize: Standardize::None,
            intercept: false,
        };
        let e = RegselLogistic::new(MlData::prepare("syn", &d, None, &spec).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("problem.data: regsel-logistic needs a binary"),
            "{e}"
        );
    }

    #[test]
    fn batch_oracles_are_exact_on_full_batches_and_unbiased_over_chunks() {
        let p = small(6);
        let mut rng = Rng::new(7);
        let (mut x, mut y, mut v) = (vec![0.0; 7], vec![0.0; 7], vec![0.0; 7]);
        rng.fill_normal(&mut x);
        rng.fill_normal(&mut y);
        rng.fill_normal(&mut v);
        crate::testing::check_batch_oracles(&p, &x, &y, &v);
    }

    #[test]
    fn sample_counts_are_the_split_sizes() {
        let p = small(8);
        crate::testing::check_split_sample_counts(&p, &p.data, (40, 30));
    }

    #[test]
    fn row_derivatives_are_the_sigmoid_formulas() {
        for z in [-800.0, -30.0, -2.5, -1e-3, 0.0, 1e-3, 0.7, 30.0, 800.0] {
            for t in [-1.0, 1.0] {
                let (r, c) = row_derivatives(z, t);
                let s = sigmoid(z);
                assert!((r - -t * sigmoid(-t * z)).abs() <= 1e-16 * (1.0 + r.abs()));
                assert!((c - s * (1.0 - s)).abs() <= 1e-16 + 1e-15 * c);
            }
        }
    }

    /// A uniform batch with repeats (more rows than one kernel block), against a direct
    /// per-sample loop; the outputs are overwritten, not accumulated.
    #[test]
    fn batch_oracles_match_a_direct_sum_with_repeats() {
        let p = small(9);
        let mut rng = Rng::new(10);
        let (mut x, mut y, mut v) = (vec![0.0; 7], vec![0.0; 7], vec![0.0; 7]);
        rng.fill_normal(&mut x);
        rng.fill_normal(&mut y);
        rng.fill_normal(&mut v);
        let idx: Vec<usize> = (0..700).map(|i| (i * i + 3 * i) % 40).collect();
        let b = Batch {
            indices: &idx,
            weight: 1.3,
            chunk: None,
        };
        let s = b.sum_scale();
        let d = &p.data.train;
        let mut gy: Vec<f64> = (0..7).map(|j| x[j].exp() * y[j]).collect();
        let mut hv: Vec<f64> = (0..7).map(|j| x[j].exp() * v[j]).collect();
        for &i in &idx {
            let a = d.row(i);
            let z: f64 = a.iter().zip(&y).map(|(a, b)| a * b).sum();
            let u: f64 = a.iter().zip(&v).map(|(a, b)| a * b).sum();
            let t = p.t_train[i];
            let sz = sigmoid(z);
            for j in 0..7 {
                gy[j] += s * -t * sigmoid(-t * z) * a[j];
                hv[j] += s * sz * (1.0 - sz) * u * a[j];
            }
        }
        let nan = || vec![f64::NAN; 7];
        let (mut gy2, mut hv2) = (nan(), nan());
        p.grad_g_y_batch(&x, &y, &b, &mut gy2);
        p.hvp_batch(&x, &y, &b, &v, &mut hv2);
        let (mut gy3, mut hv3, mut jv3) = (nan(), nan(), nan());
        p.lower_batch(&x, &y, &b, &v, &mut gy3, &mut hv3, &mut jv3);
        let mut jv = nan();
        p.cross(&x, &y, &v, &mut jv);
        use bilevel_core::derivatives::relative_error;
        for (got, want) in [
            (&gy2, &gy),
            (&hv2, &hv),
            (&gy3, &gy),
            (&hv3, &hv),
            (&jv3, &jv),
        ] {
            assert!(
                relative_error(got, want, 1e-300) < 1e-12,
                "{got:?} vs {want:?}"
            );
        }
        // Upper level on validation rows (30), with repeats.
        let vb = Batch {
            indices: &[29, 0, 29, 5],
            ..b
        };
        let s = vb.sum_scale();
        let dv = &p.data.validation;
        let mut fy = vec![0.0; 7];
        for &i in vb.indices {
            let a = dv.row(i);
            let z: f64 = a.iter().zip(&y).map(|(a, b)| a * b).sum();
            let t = p.t_val[i];
            for j in 0..7 {
                fy[j] += s * -t * sigmoid(-t * z) * a[j];
            }
        }
        let (mut fx2, mut fy2) = (nan(), nan());
        p.grad_f_batch(&x, &y, &vb, &mut fx2, &mut fy2);
        assert!(fx2.iter().all(|g| *g == 0.0));
        assert!(relative_error(&fy2, &fy, 1e-300) < 1e-12);
    }
}
