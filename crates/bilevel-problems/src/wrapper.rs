//! One definition per problem, three sources of second-order products.
//!
//! A problem implements [`ProblemDef`] (values, analytic gradients and products, closed-form
//! references) and [`GenericLowerGradient`] (`∇_y g`, `∇_x g` written once over any
//! [`Scalar`](bilevel_core::derivatives::Scalar)).
//! [`WithDerivatives`] turns it into a [`Bilevel`] oracle whose `H v` and `J v` come from the
//! source chosen at construction ([`Derivatives`]), so the dispatch is written once here and not
//! in every problem.

use crate::error::{check_positive, ProblemError};
use bilevel_core::derivatives::{
    dual_cross, dual_hvp, fd_directional, hyperdual_hvp_derivative, GenericLowerGradient, Scalar,
};
use bilevel_core::{Batch, Bilevel, DerivativeKind, Level, NamedArray};
use std::cell::RefCell;

/// Where `H v` and `J v` come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Derivatives {
    /// Exact products written by hand for the problem.
    Analytic,
    /// Exact products from forward-mode dual numbers over the generic gradient.
    Dual,
    /// Central finite differences of the analytic gradient with relative step `eps`
    /// (**approximate**; see [`bilevel_core::derivatives::fd_directional`]).
    FiniteDifference {
        /// Relative step (> 0).
        eps: f64,
    },
}

impl Derivatives {
    /// The [`DerivativeKind`] reported by a problem using this source.
    pub fn kind(&self) -> DerivativeKind {
        match *self {
            Derivatives::Analytic => DerivativeKind::Analytic,
            Derivatives::Dual => DerivativeKind::DualNumbers,
            Derivatives::FiniteDifference { eps } => DerivativeKind::FiniteDifference { eps },
        }
    }
}

/// A problem's identifier (as used in configurations) and dimensions: `x ∈ R^dim_x`,
/// `y ∈ R^dim_y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Identifier, for example `"circle-center"`.
    pub name: &'static str,
    /// Dimension m of x.
    pub dim_x: usize,
    /// Dimension d of y.
    pub dim_y: usize,
}

impl Shape {
    /// Problem `name` with `x ∈ R^dim_x`, `y ∈ R^dim_y`.
    pub const fn new(name: &'static str, dim_x: usize, dim_y: usize) -> Self {
        Shape { name, dim_x, dim_y }
    }
}

/// The mathematical content of a problem: everything except the choice of derivative source.
///
/// Slices have the problem's dimensions: `x` has [`ProblemDef::dim_x`] entries, `y` and `v`
/// [`ProblemDef::dim_y`]. `∇_y g` and `∇_x g` default to the generic gradient evaluated on `f64`
/// (it is hand-written, so these are the analytic gradients).
pub trait ProblemDef: GenericLowerGradient {
    /// The identifier and the dimensions.
    fn shape(&self) -> Shape;
    /// Identifier as used in configurations (for example `"circle-center"`).
    fn name(&self) -> &'static str {
        self.shape().name
    }
    /// Dimension m of x.
    fn dim_x(&self) -> usize {
        self.shape().dim_x
    }
    /// Dimension d of y.
    fn dim_y(&self) -> usize {
        self.shape().dim_y
    }
    /// Upper objective `f(x, y)`.
    fn f(&self, x: &[f64], y: &[f64]) -> f64;
    /// Lower objective `g(x, y)`.
    fn g(&self, x: &[f64], y: &[f64]) -> f64;
    /// `(∇_x f, ∇_y f)`.
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]);
    /// `∇_y g`.
    fn grad_g_y(&self, x: &[f64], y: &[f64], gy: &mut [f64]) {
        self.grad_g_y_generic::<f64>(x, y, gy)
    }
    /// `∇_x g`.
    fn grad_g_x(&self, x: &[f64], y: &[f64], gx: &mut [f64]) {
        self.grad_g_x_generic::<f64>(x, y, gx)
    }
    /// Exact `H v = ∇²_yy g · v`, written by hand; must not allocate. The default is the
    /// dual-number product over the generic gradient (exact as well: what `derivatives =
    /// "dual"` computes), so a problem need not write it.
    fn hvp_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        dual_hvp(self, x, y, v, out)
    }
    /// Exact `J v = ∇²_xy g · v` (length m), written by hand; must not allocate. The default is
    /// the dual-number product, as for [`ProblemDef::hvp_analytic`].
    fn cross_analytic(&self, x: &[f64], y: &[f64], v: &[f64], out: &mut [f64]) {
        dual_cross(self, x, y, v, out)
    }
    /// Exact `∇²_yy f · v` written by hand, returning `true`; the default `false` makes the
    /// second-order selection check difference `∇_y f` instead. Must not allocate.
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], _out: &mut [f64]) -> bool {
        false
    }
    /// The problem's data as named arrays (for `bilevel hypergrad --export`); default: none.
    fn export_arrays(&self) -> Vec<NamedArray> {
        Vec::new()
    }
    /// Closed-form `φ(x)`; default: none known.
    fn reference_phi(&self, _x: &[f64]) -> Option<f64> {
        None
    }
    /// Closed-form `∇φ(x)`; `None` where φ is not differentiable or no closed form is known.
    fn reference_grad_phi(&self, _x: &[f64]) -> Option<Vec<f64>> {
        None
    }
    /// Closed-form optimistic selection `y*(x)`; `None` where it is not unique or not known.
    fn reference_y(&self, _x: &[f64]) -> Option<Vec<f64>> {
        None
    }
    /// Intrinsic dimension k of the solution manifold `S(x)`.
    fn intrinsic_dimension(&self) -> usize;
    /// Project `y` on the lower-level feasible set (default: unconstrained, the identity).
    /// Solvers call it after every lower-level step; must not allocate.
    fn project_y(&self, _y: &mut [f64]) {}
    /// The known bilevel solution `x*`, where there is a finite one.
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        None
    }
    /// The known optimal value `φ* = inf φ`, where there is one.
    fn reference_phi_star(&self) -> Option<f64> {
        None
    }

    /// Samples of the finite sum of `level` (see [`Bilevel::sample_count`]; 1: not a finite sum).
    fn sample_count(&self, _level: Level) -> usize {
        1
    }
    /// Minibatch `∇_y g` (see [`Bilevel`]'s finite sums); must not allocate.
    fn grad_g_y_batch(&self, x: &[f64], y: &[f64], _b: &Batch<'_>, gy: &mut [f64]) {
        self.grad_g_y(x, y, gy)
    }
    /// Minibatch `∇_x g`; must not allocate.
    fn grad_g_x_batch(&self, x: &[f64], y: &[f64], _b: &Batch<'_>, gx: &mut [f64]) {
        self.grad_g_x(x, y, gx)
    }
    /// Minibatch `(∇_x f, ∇_y f)`; must not allocate.
    fn grad_f_batch(&self, x: &[f64], y: &[f64], _b: &Batch<'_>, gx: &mut [f64], gy: &mut [f64]) {
        self.grad_f(x, y, gx, gy)
    }
    /// Minibatch exact `H v`; must not allocate.
    fn hvp_batch(&self, x: &[f64], y: &[f64], _b: &Batch<'_>, v: &[f64], out: &mut [f64]) {
        self.hvp_analytic(x, y, v, out)
    }
    /// Minibatch exact `J v`; must not allocate.
    fn cross_batch(&self, x: &[f64], y: &[f64], _b: &Batch<'_>, v: &[f64], out: &mut [f64]) {
        self.cross_analytic(x, y, v, out)
    }
    /// `∇_y g`, `H v`, `J v` on one batch (override to share the pass); must not allocate.
    #[allow(clippy::too_many_arguments)]
    fn lower_batch(
        &self,
        x: &[f64],
        y: &[f64],
        b: &Batch<'_>,
        v: &[f64],
        gy: &mut [f64],
        hv: &mut [f64],
        jv: &mut [f64],
    ) {
        self.grad_g_y_batch(x, y, b, gy);
        self.hvp_batch(x, y, b, v, hv);
        self.cross_batch(x, y, b, v, jv);
    }
}

thread_local! {
    /// Work buffers of the finite-difference products (`y ± h v` and the minus-side gradient),
    /// reused across calls so that repeated products do not allocate.
    static FD_SCRATCH: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Run `f` with a work buffer of length `n_work` and a temporary of length `n_tmp`.
fn with_fd_scratch<R>(
    n_work: usize,
    n_tmp: usize,
    f: impl FnOnce(&mut [f64], &mut [f64]) -> R,
) -> R {
    FD_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (work, tmp) = &mut *s;
            work.resize(n_work, 0.0);
            tmp.resize(n_tmp, 0.0);
            f(&mut work[..n_work], &mut tmp[..n_tmp])
        }
        // Re-entered (a gradient that itself takes finite-difference products): fall back to
        // fresh buffers rather than panic.
        Err(_) => f(&mut vec![0.0; n_work], &mut vec![0.0; n_tmp]),
    })
}

/// Central difference of `grad` along `v` at `y` with relative step `eps`
/// ([`fd_directional`]) into `out`, on this thread's reusable work buffers.
fn fd_product(
    grad: impl FnMut(&[f64], &mut [f64]),
    y: &[f64],
    v: &[f64],
    eps: f64,
    out: &mut [f64],
) {
    with_fd_scratch(y.len(), out.len(), |work, tmp| {
        fd_directional(grad, y, v, eps, work, tmp, out)
    })
}

/// A [`ProblemDef`] with a chosen source of second-order products: the [`Bilevel`] oracle.
#[derive(Clone, Debug)]
pub struct WithDerivatives<P> {
    def: P,
    derivatives: Derivatives,
}

impl<P: ProblemDef> WithDerivatives<P> {
    /// Wrap `def`. Fails when a finite-difference step is not a positive finite number
    /// (the error names `problem.fd_eps`).
    pub fn new(def: P, derivatives: Derivatives) -> Result<Self, ProblemError> {
        if let Derivatives::FiniteDifference { eps } = derivatives {
            check_positive("fd_eps", eps)?;
        }
        Ok(WithDerivatives { def, derivatives })
    }
    /// Wrap `def` with hand-written products.
    pub fn analytic(def: P) -> Self {
        WithDerivatives {
            def,
            derivatives: Derivatives::Analytic,
        }
    }
    /// The problem definition (for problem-specific accessors).
    pub fn def(&self) -> &P {
        &self.def
    }
    /// The chosen derivative source.
    pub fn derivative_source(&self) -> Derivatives {
        self.derivatives
    }
}

impl<P: ProblemDef> GenericLowerGradient for WithDerivatives<P> {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        self.def.grad_g_y_generic(x, y, out)
    }
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        self.def.grad_g_x_generic(x, y, out)
    }
}

impl<P: ProblemDef> Bilevel for WithDerivatives<P> {
    type Y = Vec<f64>;

    fn name(&self) -> &str {
        self.def.name()
    }
    fn dim_x(&self) -> usize {
        self.def.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.def.dim_y()
    }
    fn zeros_y(&self) -> Vec<f64> {
        vec![0.0; self.def.dim_y()]
    }
    fn f(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        self.def.f(x, y)
    }
    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        self.def.g(x, y)
    }
    fn grad_f(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        debug_assert_eq!(gx.len(), self.def.dim_x());
        debug_assert_eq!(gy.len(), self.def.dim_y());
        self.def.grad_f(x, y, gx, gy)
    }
    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        debug_assert_eq!(gy.len(), self.def.dim_y());
        self.def.grad_g_y(x, y, gy)
    }
    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        debug_assert_eq!(gx.len(), self.def.dim_x());
        self.def.grad_g_x(x, y, gx)
    }
    fn hvp(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        debug_assert_eq!(out.len(), self.def.dim_y());
        match self.derivatives {
            Derivatives::Analytic => self.def.hvp_analytic(x, y, v, out),
            Derivatives::Dual => dual_hvp(&self.def, x, y, v, out),
            Derivatives::FiniteDifference { eps } => {
                fd_product(|yy, o| self.def.grad_g_y(x, yy, o), y, v, eps, out)
            }
        }
    }
    fn cross(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.def.dim_x());
        match self.derivatives {
            Derivatives::Analytic => self.def.cross_analytic(x, y, v, out),
            Derivatives::Dual => dual_cross(&self.def, x, y, v, out),
            Derivatives::FiniteDifference { eps } => {
                fd_product(|yy, o| self.def.grad_g_x(x, yy, o), y, v, eps, out)
            }
        }
    }
    fn derivatives(&self) -> DerivativeKind {
        self.derivatives.kind()
    }
    fn hvp_upper(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) -> bool {
        match self.derivatives {
            Derivatives::FiniteDifference { .. } => false,
            _ => self.def.hvp_upper_analytic(x, y, v, out),
        }
    }
    /// Exact by hyper-dual numbers over the generic gradient (analytic and dual sources); the
    /// finite-difference source leaves it to the caller's differences of HVPs.
    fn hvp_lower_derivative(
        &self,
        x: &[f64],
        y: &Vec<f64>,
        w: &Vec<f64>,
        v: &Vec<f64>,
        out: &mut Vec<f64>,
    ) -> bool {
        match self.derivatives {
            Derivatives::FiniteDifference { .. } => false,
            _ => {
                hyperdual_hvp_derivative(&self.def, x, y, w, v, out);
                true
            }
        }
    }
    fn export_arrays(&self) -> Vec<NamedArray> {
        self.def.export_arrays()
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        self.def.reference_phi(x)
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.def.reference_grad_phi(x)
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.def.reference_y(x)
    }
    fn reference_intrinsic_dimension(&self) -> Option<usize> {
        Some(self.def.intrinsic_dimension())
    }
    fn project_y(&self, y: &mut Vec<f64>) {
        self.def.project_y(y)
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        self.def.reference_x_star()
    }
    fn reference_phi_star(&self) -> Option<f64> {
        self.def.reference_phi_star()
    }
    // Minibatch oracles: the problem's own (analytic products on the batch, whatever the
    // full-batch derivative source; batch products of finite sums are sums of exact per-sample
    // products).
    fn sample_count(&self, level: Level) -> usize {
        self.def.sample_count(level)
    }
    fn grad_g_y_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, gy: &mut Vec<f64>) {
        self.def.grad_g_y_batch(x, y, b, gy)
    }
    fn grad_g_x_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, gx: &mut [f64]) {
        self.def.grad_g_x_batch(x, y, b, gx)
    }
    fn grad_f_batch(
        &self,
        x: &[f64],
        y: &Vec<f64>,
        b: &Batch<'_>,
        gx: &mut [f64],
        gy: &mut Vec<f64>,
    ) {
        self.def.grad_f_batch(x, y, b, gx, gy)
    }
    fn hvp_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, v: &Vec<f64>, out: &mut Vec<f64>) {
        if self.def.sample_count(Level::Lower) == 1 {
            // Not a finite sum: the batch product is the full one, from the chosen source.
            self.hvp(x, y, v, out)
        } else {
            self.def.hvp_batch(x, y, b, v, out)
        }
    }
    fn cross_batch(&self, x: &[f64], y: &Vec<f64>, b: &Batch<'_>, v: &Vec<f64>, out: &mut [f64]) {
        if self.def.sample_count(Level::Lower) == 1 {
            self.cross(x, y, v, out)
        } else {
            self.def.cross_batch(x, y, b, v, out)
        }
    }
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
        if self.def.sample_count(Level::Lower) == 1 {
            self.grad_g_y(x, y, gy);
            self.hvp(x, y, v, hv);
            self.cross(x, y, v, jv);
        } else {
            self.def.lower_batch(x, y, b, v, gy, hv, jv)
        }
    }
}
