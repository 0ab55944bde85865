//! A problem whose second-order products come from dual numbers: write `f`, `g`, `∇f` and the
//! lower gradient `∇g` once, generically over a scalar type, and `WithDerivatives` with
//! `Derivatives::Dual` (`derivatives = "dual"` in a config) differentiates that gradient in
//! forward mode, so `H v = ∇²_yy g · v` and `J v = ∇²_xy g · v` are exact to rounding without
//! being written by hand.
//!
//! The problem is the ridge shrinkage of `examples/custom_problem.rs` (there every product is
//! written by hand): with `x ∈ R`, `y ∈ R^d`,
//!
//! ```text
//! g(x, y) = ½‖y − a‖² + ½ eˣ ‖y‖²     ∇_y g = y − a + eˣ y,   ∇_x g = ½ eˣ ‖y‖²
//! f(x, y) = ½‖y − b‖²                 y*(x) = a t,  t = 1/(1 + eˣ),  x* = ln(1/t* − 1)
//! ```
//!
//! with `t* = ⟨a, b⟩/‖a‖²`. What a [`ProblemDef`] must provide: `shape`, `f`, `g`, `grad_f`,
//! the generic lower gradient ([`GenericLowerGradient`]: `∇_y g` and `∇_x g` over any
//! [`Scalar`], from which the `f64` gradients are also taken) and `intrinsic_dimension`; the
//! hand-written products `hvp_analytic`/`cross_analytic` default to these dual-number ones, the
//! closed-form references (`reference_phi`, …) to "none", the projection to the identity and
//! the finite-sum oracles to one sample.
//!
//! Run: `cargo run --release -p bilevel-solvers --example dual_problem`.

use bilevel_core::derivatives::{GenericLowerGradient, Scalar};
use bilevel_core::{Bilevel, DerivativeKind};
use bilevel_problems::{Derivatives, ProblemDef, Shape, WithDerivatives};
use bilevel_solvers::executor::{run, Budget, InitialCounts, RunOptions};
use bilevel_solvers::registry::SolverConfig;
use bilevel_solvers::State;

/// Ridge shrinkage of `a` toward 0 with strength `eˣ`, judged by the distance to `b`.
struct Shrinkage {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl GenericLowerGradient for Shrinkage {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let s = x[0].exp();
        for ((o, &u), &a) in out.iter_mut().zip(y).zip(&self.a) {
            *o = u - T::from(a) + s * u;
        }
    }
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let sq = y.iter().fold(T::from(0.0), |acc, &u| acc + u * u);
        out[0] = T::from(0.5) * x[0].exp() * sq;
    }
}

impl ProblemDef for Shrinkage {
    fn shape(&self) -> Shape {
        Shape::new("shrinkage", 1, self.a.len())
    }
    fn f(&self, _x: &[f64], y: &[f64]) -> f64 {
        0.5 * y
            .iter()
            .zip(&self.b)
            .map(|(u, v)| (u - v).powi(2))
            .sum::<f64>()
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        let fit: f64 = y.iter().zip(&self.a).map(|(u, v)| (u - v).powi(2)).sum();
        0.5 * fit + 0.5 * x[0].exp() * y.iter().map(|u| u * u).sum::<f64>()
    }
    fn grad_f(&self, _x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = 0.0;
        for ((g, u), v) in gy.iter_mut().zip(y).zip(&self.b) {
            *g = u - v;
        }
    }
    /// Strongly convex lower level: a single minimiser.
    fn intrinsic_dimension(&self) -> usize {
        0
    }
}

fn main() {
    let (a, b) = (vec![2.0, 1.0], vec![1.0, 0.6]);
    let problem = WithDerivatives::new(Shrinkage { a, b }, Derivatives::Dual).expect("valid");
    assert_eq!(problem.derivatives(), DerivativeKind::DualNumbers);

    // The dual-number products against the closed forms H v = (1 + eˣ) v, J v = eˣ ⟨y, v⟩.
    let (x, y, v) = (vec![0.3], vec![0.7, -0.4], vec![1.5, 2.0]);
    let (mut hv, mut jv) = (vec![0.0; 2], vec![0.0]);
    problem.hvp(&x, &y, &v, &mut hv);
    problem.cross(&x, &y, &v, &mut jv);
    let s = x[0].exp();
    let hv_err = (hv[0] - (1.0 + s) * v[0]).abs() + (hv[1] - (1.0 + s) * v[1]).abs();
    let jv_err = (jv[0] - s * (y[0] * v[0] + y[1] * v[1])).abs();
    println!("dual H v error {hv_err:.1e}, J v error {jv_err:.1e} (closed forms)");
    assert!(hv_err < 1e-14 && jv_err < 1e-14);

    // Closed form: t* = ⟨a, b⟩/‖a‖² = 0.52, x* = ln(1/t* − 1).
    let t_star = (2.0 * 1.0 + 1.0 * 0.6) / 5.0;
    let x_star = (1.0 / t_star - 1.0_f64).ln();
    for name in ["hg-ms", "aid"] {
        let config = SolverConfig::with_defaults(name).expect("registered");
        let mut solver = config.build::<WithDerivatives<Shrinkage>>(problem.dim_x());
        let opts = RunOptions {
            budget: Budget {
                max_iter: 2000,
                hypergradient_tol: Some(1e-10),
                ..Budget::default()
            },
            ..RunOptions::default()
        };
        let start = State {
            x: vec![1.0],
            y: vec![0.0, 0.0],
            iteration: 0,
        };
        let out = run(
            &problem,
            solver.as_mut(),
            start,
            &opts,
            InitialCounts::default(),
            &mut [],
        )
        .expect("the run succeeds");
        let x = out.state.x[0];
        println!(
            "{name:<6} x = {x:.10}  (closed form {x_star:.10}, error {:.1e}) after {} iterations",
            (x - x_star).abs(),
            out.state.iteration,
        );
        assert!((x - x_star).abs() < 1e-6, "{name} missed x*");
    }
}
