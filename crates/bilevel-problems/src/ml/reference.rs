//! Exact references for strongly convex lower levels: Newton–CG inner solves with warm starts
//! and the implicit-function hypergradient.

use bilevel_core::krylov::{cg, CgWorkspace, KrylovOptions};
use bilevel_core::vector::{dot, norm};
use bilevel_core::Bilevel;
use std::sync::Mutex;

/// The references of an ML problem with a strongly convex lower level (`k = 0`), as `Bilevel`
/// methods inside its `impl Bilevel`: `y*(x)` by the warm-started Newton–CG solve of the
/// problem's `warm: WarmStart`, `φ(x) = f(x, y*)`, and `∇φ(x)` by the implicit formula
/// ([`implicit_hypergradient`]).
macro_rules! newton_references {
    () => {
        fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
            self.warm.y_star(self, x)
        }
        fn reference_phi(&self, x: &[f64]) -> Option<f64> {
            let y = self.warm.y_star(self, x)?;
            Some(self.f(x, &y))
        }
        fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
            let y = self.warm.y_star(self, x)?;
            $crate::ml::reference::implicit_hypergradient(self, x, &y)
        }
        fn reference_intrinsic_dimension(&self) -> Option<usize> {
            Some(0)
        }
    };
}
pub(crate) use newton_references;

/// Tolerance on `‖∇_y g‖` of the reference inner solve.
pub const INNER_TOL: f64 = 1e-10;
/// Relative residual of the reference CG solve `H v = ∇_y f`.
pub const CG_RTOL: f64 = 1e-12;

/// Minimise `y ↦ g(x, y)` (strongly convex) by Newton–CG from the `y` passed in, to
/// `‖∇_y g‖ ≤ tol`: each step solves `H s = −∇_y g` by CG with forcing term
/// `min(0.1, √‖∇_y g‖)` (superlinear convergence), then backtracks from the full step until
/// `g` decreases by Armijo's rule (with a rounding allowance of `1e-13 |g|`). Returns the number
/// of Newton steps, or `None` when 100 steps do not reach `tol`.
pub fn newton_cg<P: Bilevel<Y = Vec<f64>> + ?Sized>(
    p: &P,
    x: &[f64],
    y: &mut Vec<f64>,
    tol: f64,
) -> Option<usize> {
    let d = p.dim_y();
    let mut grad = vec![0.0; d];
    let mut rhs = vec![0.0; d];
    let mut step = vec![0.0; d];
    let mut trial = vec![0.0; d];
    let mut ws = CgWorkspace::new(&grad);
    for it in 0..100 {
        p.grad_g_y(x, y, &mut grad);
        let gn = norm(&grad);
        if !gn.is_finite() {
            return None;
        }
        if gn <= tol {
            return Some(it);
        }
        rhs.iter_mut().zip(&grad).for_each(|(r, g)| *r = -g);
        step.iter_mut().for_each(|s| *s = 0.0);
        let opts = KrylovOptions {
            max_iter: (10 * d).clamp(100, 20_000),
            rtol: 0.1f64.min(gn.sqrt()).max(1e-14),
            shift: 0.0,
            stagnation_window: 0,
        };
        {
            let yy: &Vec<f64> = y;
            let mut op = |v: &Vec<f64>, out: &mut Vec<f64>| p.hvp(x, yy, v, out);
            cg(&mut op, &rhs, &mut step, &opts, &mut ws);
        }
        let mut slope = dot(&grad, &step);
        // Not a descent direction (or NaN): fall back to steepest descent.
        if slope.is_nan() || slope >= 0.0 {
            step.copy_from_slice(&rhs);
            slope = -gn * gn;
        }
        let g0 = p.g(x, y);
        let mut alpha = 1.0;
        let mut accepted = false;
        for _ in 0..60 {
            trial
                .iter_mut()
                .zip(y.iter().zip(&step))
                .for_each(|(t, (yi, si))| *t = yi + alpha * si);
            let gt = p.g(x, &trial);
            if gt <= g0 + 1e-4 * alpha * slope + 1e-13 * g0.abs() {
                accepted = true;
                break;
            }
            alpha *= 0.5;
        }
        if !accepted {
            return None;
        }
        y.copy_from_slice(&trial);
    }
    p.grad_g_y(x, y, &mut grad);
    (norm(&grad) <= tol).then_some(100)
}

/// The implicit-function hypergradient `∇φ = ∇_x f − J H⁻¹ ∇_y f` at `(x, y)` (`y = y*(x)`),
/// with `H v = ∇_y f` solved by CG to relative residual [`CG_RTOL`]; `None` when CG does not get
/// below `1e-9` (rounding can stop it a little above `CG_RTOL` on ill-conditioned `H`).
pub fn implicit_hypergradient<P: Bilevel<Y = Vec<f64>> + ?Sized>(
    p: &P,
    x: &[f64],
    y: &Vec<f64>,
) -> Option<Vec<f64>> {
    let (m, d) = (p.dim_x(), p.dim_y());
    let mut gx = vec![0.0; m];
    let mut gy = vec![0.0; d];
    p.grad_f(x, y, &mut gx, &mut gy);
    let mut v = vec![0.0; d];
    let mut ws = CgWorkspace::new(&gy);
    let opts = KrylovOptions {
        max_iter: (20 * d).clamp(200, 50_000),
        rtol: CG_RTOL,
        shift: 0.0,
        stagnation_window: 50,
    };
    let mut op = |u: &Vec<f64>, out: &mut Vec<f64>| p.hvp(x, y, u, out);
    let info = cg(&mut op, &gy, &mut v, &opts, &mut ws);
    if info.relative_residual.is_nan() || info.relative_residual > 1e-9 {
        return None;
    }
    let mut jv = vec![0.0; m];
    p.cross(x, y, &v, &mut jv);
    gx.iter_mut().zip(&jv).for_each(|(g, j)| *g -= j);
    Some(gx)
}

/// The last reference solve `(x, y*(x))`, reused when the same `x` is asked again and used as
/// the warm start otherwise.
#[derive(Debug, Default)]
pub struct WarmStart {
    last: Mutex<Option<(Vec<f64>, Vec<f64>)>>,
}

impl Clone for WarmStart {
    fn clone(&self) -> Self {
        WarmStart {
            last: Mutex::new(self.lock().clone()),
        }
    }
}

impl WarmStart {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Vec<f64>, Vec<f64>)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `y*(x)` by [`newton_cg`] to [`INNER_TOL`], warm-started from the previous solution.
    pub fn y_star<P: Bilevel<Y = Vec<f64>> + ?Sized>(&self, p: &P, x: &[f64]) -> Option<Vec<f64>> {
        let start = {
            let last = self.lock();
            match &*last {
                Some((lx, ly)) if lx.as_slice() == x => return Some(ly.clone()),
                Some((_, ly)) => ly.clone(),
                None => p.zeros_y(),
            }
        };
        let mut y = start;
        if newton_cg(p, x, &mut y, INNER_TOL).is_none() {
            // A warm start far from the new solution can only slow Newton down; retry cold.
            y = p.zeros_y();
            newton_cg(p, x, &mut y, INNER_TOL)?;
        }
        *self.lock() = Some((x.to_vec(), y.clone()));
        Some(y)
    }
}
