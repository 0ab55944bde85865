//! Define a bilevel problem by implementing the oracle trait, then run registered solvers on it.
//!
//! The problem (ridge shrinkage toward a target): with `x ∈ R` and `y ∈ R^d`,
//!
//! ```text
//! g(x, y) = ½‖y − a‖² + ½ eˣ ‖y‖²      (lower: y*(x) = a / (1 + eˣ))
//! f(x, y) = ½‖y − b‖²                  (upper)
//! φ(x)    = ½‖a t − b‖²,  t = 1/(1 + eˣ),  minimised at t* = ⟨a, b⟩/‖a‖²
//! ```
//!
//! [`Bilevel`] asks for values, gradients and the two second-order products by hand:
//! `H v = ∇²_yy g v = (1 + eˣ) v` and `J v = ∇²_xy g v = eˣ ⟨y, v⟩`. Everything else has a
//! default: `grad_g` (calls both partial gradients), the finite-sum batch oracles (a problem
//! that is not a finite sum is one sample), `project_y` (identity), `hvp_upper` and
//! `hvp_lower_derivative` (the selection check then differences gradients). Problems written
//! with `bilevel_problems::ProblemDef` and wrapped in `WithDerivatives` can instead obtain exact
//! products from dual numbers over a generically written lower gradient (`derivatives = "dual"`
//! in a config): the same problem that way is `examples/dual_problem.rs`.
//!
//! Run: `cargo run --release -p bilevel-solvers --example custom_problem`.

use bilevel_core::{Bilevel, DerivativeKind, Vector};
use bilevel_solvers::executor::{run, Budget, InitialCounts, RunOptions};
use bilevel_solvers::registry::SolverConfig;
use bilevel_solvers::State;

/// Ridge shrinkage of `a` toward 0 with strength `eˣ`, judged by the distance to `b`.
struct Shrinkage {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Bilevel for Shrinkage {
    type Y = Vec<f64>;
    fn name(&self) -> &str {
        "shrinkage"
    }
    fn dim_x(&self) -> usize {
        1
    }
    fn dim_y(&self) -> usize {
        self.a.len()
    }
    fn zeros_y(&self) -> Vec<f64> {
        vec![0.0; self.a.len()]
    }
    fn f(&self, _x: &[f64], y: &Vec<f64>) -> f64 {
        0.5 * y
            .iter()
            .zip(&self.b)
            .map(|(u, v)| (u - v).powi(2))
            .sum::<f64>()
    }
    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let fit: f64 = y.iter().zip(&self.a).map(|(u, v)| (u - v).powi(2)).sum();
        0.5 * fit + 0.5 * x[0].exp() * y.dot(y)
    }
    fn grad_f(&self, _x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        gx[0] = 0.0;
        for ((g, u), v) in gy.iter_mut().zip(y).zip(&self.b) {
            *g = u - v;
        }
    }
    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        let s = x[0].exp();
        for ((g, u), v) in gy.iter_mut().zip(y).zip(&self.a) {
            *g = u - v + s * u;
        }
    }
    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        gx[0] = 0.5 * x[0].exp() * y.dot(y);
    }
    fn hvp(&self, x: &[f64], _y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        let s = 1.0 + x[0].exp();
        for (o, u) in out.iter_mut().zip(v) {
            *o = s * u;
        }
    }
    fn cross(&self, x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        out[0] = x[0].exp() * y.dot(v);
    }
    fn derivatives(&self) -> DerivativeKind {
        DerivativeKind::Analytic
    }
}

fn main() {
    let problem = Shrinkage {
        a: vec![2.0, 1.0],
        b: vec![1.0, 0.6],
    };
    // Closed form: t* = ⟨a, b⟩/‖a‖² = 0.52, x* = ln(1/t* − 1).
    let t_star = (2.0 * 1.0 + 1.0 * 0.6) / 5.0;
    let x_star = (1.0 / t_star - 1.0_f64).ln();
    for name in ["hg-ms", "aid", "implicit"] {
        // Any registered solver, by name, with its defaults (a config file would set knobs).
        let config = SolverConfig::with_defaults(name).expect("registered");
        let mut solver = config.build::<Shrinkage>(problem.dim_x());
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
            "{name:<9} x = {x:.10}  (closed form {x_star:.10}, error {:.1e}) after {} iterations, stop: {:?}",
            (x - x_star).abs(),
            out.state.iteration,
            out.stop
        );
        assert!((x - x_star).abs() < 1e-6, "{name} missed x*");
    }
}
