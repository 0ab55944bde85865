//! The bilevel oracle interface and oracle-call accounting.
//!
//! A problem `min_x f(x, y*(x))`, `y*(x) ∈ argmin_y g(x, y)` is seen by algorithms only through the
//! methods of [`Bilevel`]: values and gradients of `f` and `g`, the Hessian-vector product
//! `H v = ∇²_yy g · v` and the cross product `J v = ∇²_xy g · v` (an m-vector, entries
//! `Σ_j ∂²g/∂x_i∂y_j v_j`). Where the products come from is a property of the problem
//! ([`DerivativeKind`]), never of the algorithm.
//!
//! The upper variable `x` is always a host `&[f64]`: upper variables are hyperparameters (a few to a
//! few thousand numbers) even when the lower variable `y` is a large model, which is generic
//! ([`Bilevel::Y`]).

use crate::sampling::Batch;
use crate::vector::Vector;
use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// Where a problem's second-order products come from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DerivativeKind {
    /// Exact products written by hand for this problem.
    Analytic,
    /// Exact products from forward-mode dual numbers over a generically written gradient.
    DualNumbers,
    /// Central finite differences of the gradient with relative step `eps`: **approximate**.
    FiniteDifference {
        /// Relative step.
        eps: f64,
    },
}

impl DerivativeKind {
    /// `true` for analytic and dual-number products.
    pub fn is_exact(&self) -> bool {
        !matches!(self, DerivativeKind::FiniteDifference { .. })
    }
    /// Short label used in every output (`"analytic"`, `"dual-numbers"`,
    /// `"finite-difference (approximate)"`).
    pub fn label(&self) -> &'static str {
        match self {
            DerivativeKind::Analytic => "analytic",
            DerivativeKind::DualNumbers => "dual-numbers",
            DerivativeKind::FiniteDifference { .. } => "finite-difference (approximate)",
        }
    }
}

/// Which finite sum a minibatch is drawn from: the lower objective g's samples or the upper
/// objective f's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Samples of g (`g = (1/n) Σ_i g_i + r_g`).
    Lower,
    /// Samples of f (`f = (1/m) Σ_j f_j + r_f`).
    Upper,
}

/// First- and second-order oracles of a bilevel problem.
///
/// **Finite sums.** Problems whose objectives are `g(x, y) = (1/n) Σ_{i<n} g_i(x, y) + r_g(x, y)`
/// and `f(x, y) = (1/m) Σ_{j<m} f_j(x, y) + r_f(x, y)` (`r` a deterministic part such as a
/// regulariser) report `n`, `m` through [`Bilevel::sample_count`] and override the `*_batch`
/// oracles: on a [`Batch`] `B` with weight `w` they return the unbiased estimate
/// `w · (1/|B|) Σ_{i∈B} ∇g_i + ∇r_g` (and likewise for f, `H`, `J`), so that with every index and
/// `w = 1` they equal the full oracles. A problem that is not a finite sum is one with a single
/// sample: `sample_count` is 1 and the batch oracles are the full ones (the defaults).
///
/// All outputs are written into caller-provided buffers so that algorithms allocate nothing in
/// their loops. `gx` buffers have length [`Bilevel::dim_x`].
pub trait Bilevel {
    /// The lower-level variable's vector type.
    type Y: Vector;

    /// Short identifier (as used in configs).
    fn name(&self) -> &str;
    /// Dimension m of the upper variable x.
    fn dim_x(&self) -> usize;
    /// Dimension d of the lower variable y.
    fn dim_y(&self) -> usize;
    /// A zero lower-level vector (allocates).
    fn zeros_y(&self) -> Self::Y;

    /// Upper objective `f(x, y)`.
    fn f(&self, x: &[f64], y: &Self::Y) -> f64;
    /// Lower objective `g(x, y)`.
    fn g(&self, x: &[f64], y: &Self::Y) -> f64;
    /// `(∇_x f, ∇_y f)`.
    fn grad_f(&self, x: &[f64], y: &Self::Y, gx: &mut [f64], gy: &mut Self::Y);
    /// `∇_y g`.
    fn grad_g_y(&self, x: &[f64], y: &Self::Y, gy: &mut Self::Y);
    /// `∇_x g`.
    fn grad_g_x(&self, x: &[f64], y: &Self::Y, gx: &mut [f64]);
    /// `(∇_x g, ∇_y g)` together (override where sharing work is cheaper).
    fn grad_g(&self, x: &[f64], y: &Self::Y, gx: &mut [f64], gy: &mut Self::Y) {
        self.grad_g_x(x, y, gx);
        self.grad_g_y(x, y, gy);
    }
    /// `H v = ∇²_yy g(x, y) · v`.
    fn hvp(&self, x: &[f64], y: &Self::Y, v: &Self::Y, out: &mut Self::Y);
    /// `J v = ∇²_xy g(x, y) · v` (length m).
    fn cross(&self, x: &[f64], y: &Self::Y, v: &Self::Y, out: &mut [f64]);
    /// How `hvp` and `cross` are computed.
    fn derivatives(&self) -> DerivativeKind;

    /// Exact `∇²_yy f(x, y) · v` into `out`, where the problem provides it; returns `false` (and
    /// leaves `out` unspecified) where it does not, and callers fall back to central differences
    /// of `∇_y f`. Used by the second-order check of the optimistic selection.
    fn hvp_upper(&self, _x: &[f64], _y: &Self::Y, _v: &Self::Y, _out: &mut Self::Y) -> bool {
        false
    }
    /// Exact `D_w[H] v = d/dε ∇²_yy g(x, y + ε w) v |_{ε=0}` (the third derivative of g contracted
    /// with `w` and `v`) into `out`, where the problem provides it; `false` where it does not
    /// (callers then difference two HVPs). Used by the second-order check of the selection.
    fn hvp_lower_derivative(
        &self,
        _x: &[f64],
        _y: &Self::Y,
        _w: &Self::Y,
        _v: &Self::Y,
        _out: &mut Self::Y,
    ) -> bool {
        false
    }

    /// Project `y` on the lower-level feasible set (a box, for example); the identity for
    /// unconstrained lower levels. Solvers call it after every lower-level step.
    fn project_y(&self, _y: &mut Self::Y) {}

    /// Number of samples of the finite sum of `level` (1 for problems that are not finite sums).
    fn sample_count(&self, _level: Level) -> usize {
        1
    }
    /// Minibatch `∇_y g` on a batch of lower samples (see the trait's documentation).
    fn grad_g_y_batch(&self, x: &[f64], y: &Self::Y, _batch: &Batch<'_>, gy: &mut Self::Y) {
        self.grad_g_y(x, y, gy)
    }
    /// Minibatch `∇_x g` on a batch of lower samples.
    fn grad_g_x_batch(&self, x: &[f64], y: &Self::Y, _batch: &Batch<'_>, gx: &mut [f64]) {
        self.grad_g_x(x, y, gx)
    }
    /// Minibatch `(∇_x f, ∇_y f)` on a batch of upper samples.
    fn grad_f_batch(
        &self,
        x: &[f64],
        y: &Self::Y,
        _batch: &Batch<'_>,
        gx: &mut [f64],
        gy: &mut Self::Y,
    ) {
        self.grad_f(x, y, gx, gy)
    }
    /// Minibatch `H v` on a batch of lower samples.
    fn hvp_batch(
        &self,
        x: &[f64],
        y: &Self::Y,
        _batch: &Batch<'_>,
        v: &Self::Y,
        out: &mut Self::Y,
    ) {
        self.hvp(x, y, v, out)
    }
    /// Minibatch `J v` (length m) on a batch of lower samples.
    fn cross_batch(
        &self,
        x: &[f64],
        y: &Self::Y,
        _batch: &Batch<'_>,
        v: &Self::Y,
        out: &mut [f64],
    ) {
        self.cross(x, y, v, out)
    }
    /// `∇_y g`, `H v` and `J v` on the same lower batch (override where one pass over the batch
    /// serves all three; counted as one call of each kind).
    #[allow(clippy::too_many_arguments)]
    fn lower_batch(
        &self,
        x: &[f64],
        y: &Self::Y,
        batch: &Batch<'_>,
        v: &Self::Y,
        gy: &mut Self::Y,
        hv: &mut Self::Y,
        jv: &mut [f64],
    ) {
        self.grad_g_y_batch(x, y, batch, gy);
        self.hvp_batch(x, y, batch, v, hv);
        self.cross_batch(x, y, batch, v, jv);
    }

    /// The known solution `x*` of the bilevel problem, where there is one (for distances to the
    /// optimum in benchmarks).
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        None
    }
    /// The known optimal value `φ* = φ(x*)`, where there is one.
    fn reference_phi_star(&self) -> Option<f64> {
        None
    }

    /// Closed-form hyper-objective `φ(x)`, where the problem has one.
    fn reference_phi(&self, _x: &[f64]) -> Option<f64> {
        None
    }
    /// Closed-form `∇φ(x)`, where the problem has one (and φ is differentiable at x).
    fn reference_grad_phi(&self, _x: &[f64]) -> Option<Vec<f64>> {
        None
    }
    /// Closed-form optimistic selection `y*(x)`, where the problem has one.
    fn reference_y(&self, _x: &[f64]) -> Option<Self::Y> {
        None
    }
    /// Known intrinsic dimension `k` of the lower-level solution manifold, if any.
    fn reference_intrinsic_dimension(&self) -> Option<usize> {
        None
    }

    /// Evaluation metrics at `(x, y)` for traces and benchmarks (for example
    /// `train_accuracy`, `validation_accuracy`, `test_accuracy`, `validation_loss`), as
    /// `(name, value)` pairs in a fixed order. They are diagnostics: no oracle call is counted.
    fn metrics(&self, _x: &[f64], _y: &Self::Y) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// The problem's data as named dense arrays (row-major `f64`, with their shape), for
    /// cross-implementation checks (`bilevel hypergrad --export`); empty for problems without
    /// data.
    fn export_arrays(&self) -> Vec<NamedArray> {
        Vec::new()
    }
}

/// A named dense array in row-major order (see [`Bilevel::export_arrays`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedArray {
    /// File-safe name, for example `train_features`.
    pub name: String,
    /// Shape (one or two dimensions).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

impl NamedArray {
    /// A vector, shape `[n]` (a scalar parameter is a vector of length 1).
    pub fn vector(name: impl Into<String>, data: Vec<f64>) -> Self {
        NamedArray {
            name: name.into(),
            shape: vec![data.len()],
            data,
        }
    }

    /// A `rows × cols` matrix, row-major; `data.len()` must be `rows · cols`.
    pub fn matrix(name: impl Into<String>, rows: usize, cols: usize, data: Vec<f64>) -> Self {
        debug_assert_eq!(data.len(), rows * cols, "NamedArray::matrix");
        NamedArray {
            name: name.into(),
            shape: vec![rows, cols],
            data,
        }
    }
}

/// Oracle calls by kind. Gradients computed jointly (`grad_g`) count once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleCounts {
    /// Upper-objective values.
    pub f_value: u64,
    /// Lower-objective values.
    pub g_value: u64,
    /// Upper gradients `(∇_x f, ∇_y f)`.
    pub grad_f: u64,
    /// Lower gradients (`∇_y g`, `∇_x g` or both).
    pub grad_g: u64,
    /// Hessian-vector products.
    pub hvp: u64,
    /// Cross products `J v`.
    pub cross: u64,
}

impl OracleCounts {
    /// Weights of the gradient-equivalent cost: a value costs ½ a gradient, an HVP or a cross
    /// product costs 2 gradients (a reverse-over-forward pass; Griewank & Walther's bound of ≤ 5 is
    /// rarely reached in practice).
    pub const VALUE_WEIGHT: f64 = 0.5;
    /// See [`OracleCounts::VALUE_WEIGHT`].
    pub const SECOND_ORDER_WEIGHT: f64 = 2.0;

    /// Total number of calls of any kind.
    pub fn total(&self) -> u64 {
        self.f_value + self.g_value + self.grad_f + self.grad_g + self.hvp + self.cross
    }
    /// Gradient-equivalent cost `½(values) + (gradients) + 2(HVPs + cross products)`.
    pub fn gradient_equivalents(&self) -> f64 {
        Self::VALUE_WEIGHT * (self.f_value + self.g_value) as f64
            + (self.grad_f + self.grad_g) as f64
            + Self::SECOND_ORDER_WEIGHT * (self.hvp + self.cross) as f64
    }
    /// Component-wise sum.
    pub fn add(&self, o: &OracleCounts) -> OracleCounts {
        OracleCounts {
            f_value: self.f_value + o.f_value,
            g_value: self.g_value + o.g_value,
            grad_f: self.grad_f + o.grad_f,
            grad_g: self.grad_g + o.grad_g,
            hvp: self.hvp + o.hvp,
            cross: self.cross + o.cross,
        }
    }
}

/// A problem wrapped so that every oracle call is counted.
///
/// Calls made inside [`Counted::diagnostic`] are counted separately: diagnostics (kernel
/// components, intrinsic dimension) never consume an algorithm's budget.
pub struct Counted<'a, P: Bilevel + ?Sized> {
    problem: &'a P,
    counts: Cell<OracleCounts>,
    diagnostic_counts: Cell<OracleCounts>,
    in_diagnostic: Cell<bool>,
}

impl<'a, P: Bilevel + ?Sized> Counted<'a, P> {
    /// Wrap `problem` with zero counts.
    pub fn new(problem: &'a P) -> Self {
        Counted {
            problem,
            counts: Cell::new(OracleCounts::default()),
            diagnostic_counts: Cell::new(OracleCounts::default()),
            in_diagnostic: Cell::new(false),
        }
    }
    /// The wrapped problem (calls through it are not counted).
    pub fn inner(&self) -> &'a P {
        self.problem
    }
    /// Calls made by the algorithm so far.
    pub fn counts(&self) -> OracleCounts {
        self.counts.get()
    }
    /// Calls made for diagnostics so far.
    pub fn diagnostic_counts(&self) -> OracleCounts {
        self.diagnostic_counts.get()
    }
    /// Replace the algorithm counts (used when resuming from a checkpoint).
    pub fn set_counts(&self, c: OracleCounts) {
        self.counts.set(c);
    }
    /// Replace the diagnostic counts (used when resuming from a checkpoint).
    pub fn set_diagnostic_counts(&self, c: OracleCounts) {
        self.diagnostic_counts.set(c);
    }
    /// Run `f` with every oracle call counted as a diagnostic call.
    pub fn diagnostic<R>(&self, f: impl FnOnce() -> R) -> R {
        let was = self.in_diagnostic.replace(true);
        let r = f();
        self.in_diagnostic.set(was);
        r
    }
    #[inline]
    fn bump(&self, k: impl FnOnce(&mut OracleCounts)) {
        let cell = if self.in_diagnostic.get() {
            &self.diagnostic_counts
        } else {
            &self.counts
        };
        let mut c = cell.get();
        k(&mut c);
        cell.set(c);
    }
}

impl<P: Bilevel + ?Sized> Bilevel for Counted<'_, P> {
    type Y = P::Y;
    fn name(&self) -> &str {
        self.problem.name()
    }
    fn dim_x(&self) -> usize {
        self.problem.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.problem.dim_y()
    }
    fn zeros_y(&self) -> P::Y {
        self.problem.zeros_y()
    }
    fn f(&self, x: &[f64], y: &P::Y) -> f64 {
        self.bump(|c| c.f_value += 1);
        self.problem.f(x, y)
    }
    fn g(&self, x: &[f64], y: &P::Y) -> f64 {
        self.bump(|c| c.g_value += 1);
        self.problem.g(x, y)
    }
    fn grad_f(&self, x: &[f64], y: &P::Y, gx: &mut [f64], gy: &mut P::Y) {
        self.bump(|c| c.grad_f += 1);
        self.problem.grad_f(x, y, gx, gy)
    }
    fn grad_g_y(&self, x: &[f64], y: &P::Y, gy: &mut P::Y) {
        self.bump(|c| c.grad_g += 1);
        self.problem.grad_g_y(x, y, gy)
    }
    fn grad_g_x(&self, x: &[f64], y: &P::Y, gx: &mut [f64]) {
        self.bump(|c| c.grad_g += 1);
        self.problem.grad_g_x(x, y, gx)
    }
    fn grad_g(&self, x: &[f64], y: &P::Y, gx: &mut [f64], gy: &mut P::Y) {
        self.bump(|c| c.grad_g += 1);
        self.problem.grad_g(x, y, gx, gy)
    }
    fn hvp(&self, x: &[f64], y: &P::Y, v: &P::Y, out: &mut P::Y) {
        self.bump(|c| c.hvp += 1);
        self.problem.hvp(x, y, v, out)
    }
    fn cross(&self, x: &[f64], y: &P::Y, v: &P::Y, out: &mut [f64]) {
        self.bump(|c| c.cross += 1);
        self.problem.cross(x, y, v, out)
    }
    fn derivatives(&self) -> DerivativeKind {
        self.problem.derivatives()
    }
    fn hvp_upper(&self, x: &[f64], y: &P::Y, v: &P::Y, out: &mut P::Y) -> bool {
        let done = self.problem.hvp_upper(x, y, v, out);
        if done {
            self.bump(|c| c.hvp += 1);
        }
        done
    }
    fn hvp_lower_derivative(
        &self,
        x: &[f64],
        y: &P::Y,
        w: &P::Y,
        v: &P::Y,
        out: &mut P::Y,
    ) -> bool {
        let done = self.problem.hvp_lower_derivative(x, y, w, v, out);
        if done {
            self.bump(|c| c.hvp += 1);
        }
        done
    }
    fn project_y(&self, y: &mut P::Y) {
        self.problem.project_y(y)
    }
    fn sample_count(&self, level: Level) -> usize {
        self.problem.sample_count(level)
    }
    fn grad_g_y_batch(&self, x: &[f64], y: &P::Y, b: &Batch<'_>, gy: &mut P::Y) {
        self.bump(|c| c.grad_g += 1);
        self.problem.grad_g_y_batch(x, y, b, gy)
    }
    fn grad_g_x_batch(&self, x: &[f64], y: &P::Y, b: &Batch<'_>, gx: &mut [f64]) {
        self.bump(|c| c.grad_g += 1);
        self.problem.grad_g_x_batch(x, y, b, gx)
    }
    fn grad_f_batch(&self, x: &[f64], y: &P::Y, b: &Batch<'_>, gx: &mut [f64], gy: &mut P::Y) {
        self.bump(|c| c.grad_f += 1);
        self.problem.grad_f_batch(x, y, b, gx, gy)
    }
    fn hvp_batch(&self, x: &[f64], y: &P::Y, b: &Batch<'_>, v: &P::Y, out: &mut P::Y) {
        self.bump(|c| c.hvp += 1);
        self.problem.hvp_batch(x, y, b, v, out)
    }
    fn cross_batch(&self, x: &[f64], y: &P::Y, b: &Batch<'_>, v: &P::Y, out: &mut [f64]) {
        self.bump(|c| c.cross += 1);
        self.problem.cross_batch(x, y, b, v, out)
    }
    fn lower_batch(
        &self,
        x: &[f64],
        y: &P::Y,
        b: &Batch<'_>,
        v: &P::Y,
        gy: &mut P::Y,
        hv: &mut P::Y,
        jv: &mut [f64],
    ) {
        self.bump(|c| {
            c.grad_g += 1;
            c.hvp += 1;
            c.cross += 1;
        });
        self.problem.lower_batch(x, y, b, v, gy, hv, jv)
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        self.problem.reference_x_star()
    }
    fn reference_phi_star(&self) -> Option<f64> {
        self.problem.reference_phi_star()
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        self.problem.reference_phi(x)
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.problem.reference_grad_phi(x)
    }
    fn reference_y(&self, x: &[f64]) -> Option<P::Y> {
        self.problem.reference_y(x)
    }
    fn reference_intrinsic_dimension(&self) -> Option<usize> {
        self.problem.reference_intrinsic_dimension()
    }
    fn metrics(&self, x: &[f64], y: &P::Y) -> Vec<(String, f64)> {
        self.problem.metrics(x, y)
    }
    fn export_arrays(&self) -> Vec<NamedArray> {
        self.problem.export_arrays()
    }
}
