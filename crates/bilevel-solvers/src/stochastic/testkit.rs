//! Shared checks of the stochastic solvers: a small quadratic finite sum with exact `∇φ`, the
//! full-batch oracles for updates written by hand, and a convergence check.
#![allow(dead_code)]

use super::{Stochastic, StochasticStep};
use crate::State;
use bilevel_core::{Bilevel, Counted};
use bilevel_problems::{Quadratic, QuadraticParams, WithDerivatives};

/// The test problem.
pub type Quad = WithDerivatives<Quadratic>;

/// A quadratic benchmark instance small enough for debug-build tests: n = 200 lower and
/// m = 150 upper samples (batches of 64 leave a partial last chunk), d = 20, m_x = 10.
pub fn quadratic() -> Quad {
    WithDerivatives::analytic(
        Quadratic::new(QuadraticParams {
            n_inner: 200,
            n_outer: 150,
            dim_y: 20,
            dim_x: 10,
            seed: 4,
            ..QuadraticParams::default()
        })
        .expect("valid quadratic"),
    )
}

/// The start `x = 0`, `y = 0`.
pub fn start(p: &Quad) -> (Vec<f64>, Vec<f64>) {
    (vec![0.0; p.dim_x()], vec![0.0; p.dim_y()])
}

/// The full-batch oracles at `(x, y)` and direction `v`.
pub struct Full {
    /// `∇_y g`.
    pub gy: Vec<f64>,
    /// `∇_x g`.
    pub gx: Vec<f64>,
    /// `H v`.
    pub hv: Vec<f64>,
    /// `J v`.
    pub jv: Vec<f64>,
    /// `∇_x f`.
    pub fx: Vec<f64>,
    /// `∇_y f`.
    pub fy: Vec<f64>,
}

impl Full {
    /// Evaluate every full oracle.
    pub fn at<P: Bilevel<Y = Vec<f64>>>(p: &P, x: &[f64], y: &[f64], v: &[f64]) -> Full {
        let (m, d) = (p.dim_x(), p.dim_y());
        let (y, v) = (y.to_vec(), v.to_vec());
        let mut o = Full {
            gy: vec![0.0; d],
            gx: vec![0.0; m],
            hv: vec![0.0; d],
            jv: vec![0.0; m],
            fx: vec![0.0; m],
            fy: vec![0.0; d],
        };
        p.grad_g_y(x, &y, &mut o.gy);
        p.grad_g_x(x, &y, &mut o.gx);
        p.hvp(x, &y, &v, &mut o.hv);
        p.cross(x, &y, &v, &mut o.jv);
        p.grad_f(x, &y, &mut o.fx, &mut o.fy);
        o
    }
}

/// Run `k` stochastic iterations of `solver` on `p` from [`start`].
pub fn run_steps<S: StochasticStep<Quad>>(p: &Quad, solver: S, k: usize) -> State<Vec<f64>> {
    let (x, y) = start(p);
    let mut state = State { x, y, iteration: 0 };
    let c = Counted::new(p);
    let mut s = Stochastic::new(solver);
    s.advance(&c, &mut state, k).expect("steps succeed");
    state
}

/// Advances a fresh solver `before` iterations, checkpoints it through JSON text and restores
/// the checkpoint into a second fresh solver, advances both `after` more iterations and asserts
/// bit-identical x and y; returns both solvers (for checks of their internal state) and the
/// final state.
pub fn checkpoint_round_trip<S: StochasticStep<Quad>>(
    make: impl Fn(usize) -> S,
    before: usize,
    after: usize,
) -> (Stochastic<S>, Stochastic<S>, State<Vec<f64>>) {
    use crate::BilevelSolver;
    let p = quadratic();
    let c = Counted::new(&p);
    let (x, y) = start(&p);
    let mut a_state = State { x, y, iteration: 0 };
    let mut a = Stochastic::new(make(p.dim_x()));
    a.advance(&c, &mut a_state, before).expect("steps succeed");
    let text = serde_json::to_string(&BilevelSolver::<Quad>::checkpoint(&a)).expect("serialises");
    let mut b = Stochastic::new(make(p.dim_x()));
    BilevelSolver::<Quad>::restore(&mut b, &serde_json::from_str(&text).expect("parses"))
        .expect("restores");
    let mut b_state = a_state.clone();
    a.advance(&c, &mut a_state, after).expect("steps succeed");
    b.advance(&c, &mut b_state, after).expect("steps succeed");
    assert_eq!(a_state.x, b_state.x);
    assert_eq!(a_state.y, b_state.y);
    (a, b, b_state)
}

/// `‖a − b‖ ≤ 1e-12 (1 + ‖b‖)`: the same arithmetic up to summation order.
pub fn assert_close(a: &[f64], b: &[f64], what: &str) {
    let diff = crate::testutil::diff_norm(a, b);
    let scale = 1.0 + crate::testutil::norm(b);
    assert!(
        diff <= 1e-12 * scale,
        "{what}: solver vs hand-computed update differ by {diff:e} (‖ref‖ = {scale})"
    );
}

/// `‖∇φ(x)‖²` from the closed form.
pub fn grad_phi_sq(p: &Quad, x: &[f64]) -> f64 {
    let g = p.reference_grad_phi(x).expect("closed-form ∇φ");
    g.iter().map(|v| v * v).sum()
}

/// Run `iterations` of the solver built by `make(m)` with its default parameters and assert
/// `‖∇φ(x_T)‖² ≤ ratio · ‖∇φ(x_0)‖²`; returns the achieved ratio.
pub fn assert_converges<S: StochasticStep<Quad>>(
    make: impl Fn(usize) -> S,
    iterations: usize,
    ratio: f64,
) -> f64 {
    let p = quadratic();
    let (x0, _) = start(&p);
    let s = make(p.dim_x());
    let name = s.name();
    let state = run_steps(&p, s, iterations);
    let r = grad_phi_sq(&p, &state.x) / grad_phi_sq(&p, &x0);
    assert!(
        r <= ratio,
        "{name}: ‖∇φ‖² fell only to {r:e} of its start after {iterations} iterations (bar {ratio:e})"
    );
    r
}

/// Iterations of `solver` from `x = 0`, `y = 0` on `p` until ‖∇φ‖² ≤ `ratio`·start (checked
/// every `every` iterations), with the final ratio; `None` if not reached within `max`.
pub fn iterations_to<S: StochasticStep<Quad>>(
    p: &Quad,
    solver: S,
    ratio: f64,
    every: usize,
    max: usize,
) -> (Option<usize>, f64) {
    let (x, y) = start(p);
    let start = grad_phi_sq(p, &x);
    let mut state = State { x, y, iteration: 0 };
    let c = Counted::new(p);
    let mut s = Stochastic::new(solver);
    let mut r = 1.0;
    for k in (every..=max).step_by(every) {
        s.advance(&c, &mut state, every).unwrap();
        r = grad_phi_sq(p, &state.x) / start;
        if r <= ratio {
            return (Some(k), r);
        }
        if !r.is_finite() {
            break;
        }
    }
    (None, r)
}

/// A boxed solver is a solver (the family tests hold one table of differently typed solvers).
impl<P: Bilevel + ?Sized> StochasticStep<P> for Box<dyn StochasticStep<P>> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn common(&self) -> &super::Common {
        (**self).common()
    }
    fn check(&self, p: &P, ctx: &super::Context) -> Result<(), crate::SolverError> {
        (**self).check(p, ctx)
    }
    fn step(
        &mut self,
        p: &Counted<P>,
        state: &mut State<P::Y>,
        ctx: &mut super::Context,
    ) -> Result<(), crate::SolverError> {
        (**self).step(p, state, ctx)
    }
    fn direction(&self) -> &[f64] {
        (**self).direction()
    }
    fn estimates_hypergradient(&self) -> bool {
        (**self).estimates_hypergradient()
    }
    fn extra(&self) -> Vec<(String, f64)> {
        (**self).extra()
    }
    fn save(&self) -> serde_json::Value {
        (**self).save()
    }
    fn load(&mut self, saved: &serde_json::Value) -> Result<(), crate::SolverError> {
        (**self).load(saved)
    }
}
