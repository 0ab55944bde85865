//! Test problems with exact answers and helpers shared by the solver tests.
#![allow(dead_code, clippy::needless_range_loop)]

use crate::executor::{run, Budget, InitialCounts, RunOptions, RunOutcome};
use crate::{BilevelSolver, State};
use bilevel_core::{Bilevel, DerivativeKind};

/// Row-major `rows × cols` matrix times vector.
pub fn matvec(a: &[f64], rows: usize, cols: usize, v: &[f64], out: &mut [f64]) {
    for i in 0..rows {
        out[i] = (0..cols).map(|j| a[i * cols + j] * v[j]).sum();
    }
}

/// `Aᵀ v` for row-major `rows × cols` `A`.
pub fn matvec_t(a: &[f64], rows: usize, cols: usize, v: &[f64], out: &mut [f64]) {
    for j in 0..cols {
        out[j] = (0..rows).map(|i| a[i * cols + j] * v[i]).sum();
    }
}

/// Solve the `n × n` system `A z = b` by Gaussian elimination with partial pivoting.
pub fn solve(a: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut z = b.to_vec();
    for k in 0..n {
        let piv = (k..n)
            .max_by(|&i, &j| m[i * n + k].abs().total_cmp(&m[j * n + k].abs()))
            .unwrap();
        for j in 0..n {
            m.swap(k * n + j, piv * n + j);
        }
        z.swap(k, piv);
        for i in k + 1..n {
            let l = m[i * n + k] / m[k * n + k];
            for j in k..n {
                m[i * n + j] -= l * m[k * n + j];
            }
            z[i] -= l * z[k];
        }
    }
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| m[k * n + j] * z[j]).sum();
        z[k] = (z[k] - s) / m[k * n + k];
    }
    z
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

pub fn diff_norm(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Strongly convex quadratic bilevel problem:
/// `g = ½ yᵀAy − yᵀBx`, `f = ½‖y − c‖² + ½ρ‖x − e‖²`, so `y*(x) = A⁻¹Bx =: Mx`,
/// `φ(x) = ½‖Mx − c‖² + ½ρ‖x − e‖²`, `∇φ = Mᵀ(Mx − c) + ρ(x − e)`.
/// With `nonlinear = true`, `g` gains `¼Σ y_j⁴` and the coupling becomes `−Σ y_j sin((Bx)_j)`
/// (strongly convex in y, not quadratic; no closed form).
#[derive(Clone, Debug)]
pub struct Quad {
    pub m: usize,
    pub d: usize,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    pub e: Vec<f64>,
    pub rho: f64,
    pub nonlinear: bool,
}

impl Quad {
    /// m = 1, d = 1: `g = y² − xy`, `f = ½(y − 1)² + ¼x²`.
    pub fn tiny() -> Self {
        Quad {
            m: 1,
            d: 1,
            a: vec![2.0],
            b: vec![1.0],
            c: vec![1.0],
            e: vec![0.0],
            rho: 0.5,
            nonlinear: false,
        }
    }
    /// m = 2, d = 3.
    pub fn small() -> Self {
        Quad {
            m: 2,
            d: 3,
            a: vec![2.0, 0.3, 0.0, 0.3, 1.5, 0.2, 0.0, 0.2, 1.0],
            b: vec![1.0, 0.5, -0.3, 0.8, 0.4, -0.6],
            c: vec![1.0, -0.5, 0.3],
            e: vec![0.2, -0.1],
            rho: 0.5,
            nonlinear: false,
        }
    }
    /// [`Quad::small`] with the nonquadratic lower level.
    pub fn nonlinear() -> Self {
        Quad {
            nonlinear: true,
            ..Quad::small()
        }
    }
    fn z(&self, x: &[f64]) -> Vec<f64> {
        let mut z = vec![0.0; self.d];
        matvec(&self.b, self.d, self.m, x, &mut z);
        z
    }
    /// `M = A⁻¹B`, column by column (row-major d × m).
    pub fn mmat(&self) -> Vec<f64> {
        assert!(!self.nonlinear);
        let mut mm = vec![0.0; self.d * self.m];
        for k in 0..self.m {
            let col: Vec<f64> = (0..self.d).map(|i| self.b[i * self.m + k]).collect();
            let s = solve(&self.a, self.d, &col);
            for i in 0..self.d {
                mm[i * self.m + k] = s[i];
            }
        }
        mm
    }
    /// `x* = (MᵀM + ρI)⁻¹(Mᵀc + ρe)`.
    pub fn x_star(&self) -> Vec<f64> {
        let mm = self.mmat();
        let (m, d) = (self.m, self.d);
        let mut h = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                h[i * m + j] = (0..d).map(|k| mm[k * m + i] * mm[k * m + j]).sum::<f64>()
                    + if i == j { self.rho } else { 0.0 };
            }
        }
        let mut r = vec![0.0; m];
        matvec_t(&mm, d, m, &self.c, &mut r);
        for (ri, ei) in r.iter_mut().zip(&self.e) {
            *ri += self.rho * ei;
        }
        solve(&h, m, &r)
    }
}

impl Bilevel for Quad {
    type Y = Vec<f64>;
    fn name(&self) -> &str {
        "test-quad"
    }
    fn dim_x(&self) -> usize {
        self.m
    }
    fn dim_y(&self) -> usize {
        self.d
    }
    fn zeros_y(&self) -> Vec<f64> {
        vec![0.0; self.d]
    }
    fn f(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        0.5 * diff_norm(y, &self.c).powi(2) + 0.5 * self.rho * diff_norm(x, &self.e).powi(2)
    }
    fn g(&self, x: &[f64], y: &Vec<f64>) -> f64 {
        let mut ay = vec![0.0; self.d];
        matvec(&self.a, self.d, self.d, y, &mut ay);
        let z = self.z(x);
        let quad: f64 = 0.5 * y.iter().zip(&ay).map(|(a, b)| a * b).sum::<f64>();
        if self.nonlinear {
            quad + y
                .iter()
                .zip(&z)
                .map(|(yi, zi)| 0.25 * yi.powi(4) - yi * zi.sin())
                .sum::<f64>()
        } else {
            quad - y.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>()
        }
    }
    fn grad_f(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64], gy: &mut Vec<f64>) {
        for i in 0..self.m {
            gx[i] = self.rho * (x[i] - self.e[i]);
        }
        for j in 0..self.d {
            gy[j] = y[j] - self.c[j];
        }
    }
    fn grad_g_y(&self, x: &[f64], y: &Vec<f64>, gy: &mut Vec<f64>) {
        matvec(&self.a, self.d, self.d, y, gy);
        let z = self.z(x);
        for j in 0..self.d {
            if self.nonlinear {
                gy[j] += y[j].powi(3) - z[j].sin();
            } else {
                gy[j] -= z[j];
            }
        }
    }
    fn grad_g_x(&self, x: &[f64], y: &Vec<f64>, gx: &mut [f64]) {
        let z = self.z(x);
        let w: Vec<f64> = if self.nonlinear {
            y.iter().zip(&z).map(|(yi, zi)| yi * zi.cos()).collect()
        } else {
            y.clone()
        };
        matvec_t(&self.b, self.d, self.m, &w, gx);
        gx.iter_mut().for_each(|v| *v = -*v);
    }
    fn hvp(&self, _x: &[f64], y: &Vec<f64>, v: &Vec<f64>, out: &mut Vec<f64>) {
        matvec(&self.a, self.d, self.d, v, out);
        if self.nonlinear {
            for j in 0..self.d {
                out[j] += 3.0 * y[j] * y[j] * v[j];
            }
        }
    }
    fn cross(&self, x: &[f64], _y: &Vec<f64>, v: &Vec<f64>, out: &mut [f64]) {
        let z = self.z(x);
        let w: Vec<f64> = if self.nonlinear {
            v.iter().zip(&z).map(|(vi, zi)| vi * zi.cos()).collect()
        } else {
            v.clone()
        };
        matvec_t(&self.b, self.d, self.m, &w, out);
        out.iter_mut().for_each(|v| *v = -*v);
    }
    fn derivatives(&self) -> DerivativeKind {
        DerivativeKind::Analytic
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        (!self.nonlinear).then(|| {
            let mut y = vec![0.0; self.d];
            matvec(&self.mmat(), self.d, self.m, x, &mut y);
            y
        })
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let y = self.reference_y(x)?;
        Some(self.f(x, &y))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let y = self.reference_y(x)?;
        let r: Vec<f64> = y.iter().zip(&self.c).map(|(a, b)| a - b).collect();
        let mut g = vec![0.0; self.m];
        matvec_t(&self.mmat(), self.d, self.m, &r, &mut g);
        for i in 0..self.m {
            g[i] += self.rho * (x[i] - self.e[i]);
        }
        Some(g)
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        (!self.nonlinear).then(|| self.x_star())
    }
    fn reference_phi_star(&self) -> Option<f64> {
        self.reference_x_star().and_then(|x| self.reference_phi(&x))
    }
}

/// `y_T(x)`: `T` plain GD steps on `g(x, ·)` from `y0` (computed independently of the solvers).
pub fn unroll<P: Bilevel<Y = Vec<f64>>>(
    p: &P,
    x: &[f64],
    y0: &[f64],
    steps: usize,
    beta: f64,
) -> Vec<f64> {
    let mut y = y0.to_vec();
    let mut g = vec![0.0; y.len()];
    for _ in 0..steps {
        p.grad_g_y(x, &y, &mut g);
        for (a, b) in y.iter_mut().zip(&g) {
            *a -= beta * b;
        }
        p.project_y(&mut y);
    }
    y
}

/// Central differences of `x ↦ f(x, y_T(x))` (the unrolled hyper-objective).
pub fn unrolled_grad_fd<P: Bilevel<Y = Vec<f64>>>(
    p: &P,
    x: &[f64],
    y0: &[f64],
    steps: usize,
    beta: f64,
    eps: f64,
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let mut xp = x.to_vec();
            let mut xm = x.to_vec();
            xp[i] += eps;
            xm[i] -= eps;
            let fp = p.f(&xp, &unroll(p, &xp, y0, steps, beta));
            let fm = p.f(&xm, &unroll(p, &xm, y0, steps, beta));
            (fp - fm) / (2.0 * eps)
        })
        .collect()
}

/// Run `solver` for `iters` outer iterations from `(x0, y0)`, no diagnostics.
pub fn run_for<P: Bilevel<Y = Vec<f64>>>(
    p: &P,
    solver: &mut dyn BilevelSolver<P>,
    x0: &[f64],
    y0: &[f64],
    iters: usize,
) -> RunOutcome<Vec<f64>> {
    let opts = RunOptions {
        budget: Budget {
            max_iter: iters,
            ..Budget::default()
        },
        diagnostics_every: 0,
        ..RunOptions::default()
    };
    let start = State {
        x: x0.to_vec(),
        y: y0.to_vec(),
        iteration: 0,
    };
    run(p, solver, start, &opts, InitialCounts::default(), &mut []).unwrap()
}
