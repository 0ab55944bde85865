//! Gradient descent on the lower objective, `y ← y − β ∇_y g(x, y)`, shared by every solver.

use bilevel_core::{Bilevel, Counted, Vector};

/// Run at most `steps` steps of `y ← Π(y − β ∇_y g(x, y))` (Π = [`Bilevel::project_y`], the
/// identity for unconstrained lower levels), stopping early once
/// `‖∇_y g‖ ≤ tol` (checked before each step). `grad` is scratch. Returns `‖∇_y g‖` at the final
/// `y` (one more gradient, which the next phase usually needs anyway) and the steps taken.
pub fn descend<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    steps: usize,
    beta: f64,
    tol: f64,
    grad: &mut P::Y,
) -> (f64, usize) {
    let mut taken = 0;
    loop {
        p.grad_g_y(x, y, grad);
        let n = grad.norm();
        if n <= tol || taken >= steps || !n.is_finite() {
            return (n, taken);
        }
        y.axpy(-beta, grad);
        p.project_y(y);
        taken += 1;
    }
}

/// Exactly `steps` steps `y ← Π(y − β ∇_y g(x, y))` (no stopping test, so no extra gradient):
/// the fixed `T`-step map the unrolled and zeroth-order methods differentiate. `grad` is scratch.
pub fn gd_steps<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    steps: usize,
    beta: f64,
    grad: &mut P::Y,
) {
    for _ in 0..steps {
        p.grad_g_y(x, y, grad);
        y.axpy(-beta, grad);
        p.project_y(y);
    }
}
