//! Truncated Neumann series `v = η Σ_{q<Q} (I − ηA)^q b` for `A v = b`, `η ≤ 1/λ_max`.
//!
//! With `p_q = (I − ηA)^q b` the residual after Q terms is exactly `b − A v = p_Q`, so the
//! reported relative residual costs nothing extra. On `range A` the series converges to `A^† b`;
//! a kernel component of `b` is added unchanged at every term, so it grows linearly in Q.

use super::{KrylovInfo, KrylovOptions, KrylovStatus, LinearOperator, StagnationTracker};
use crate::vector::Vector;

/// Buffers for [`neumann`].
#[derive(Clone, Debug)]
pub struct NeumannWorkspace<V> {
    p: V,
    ap: V,
}

impl<V: Vector> NeumannWorkspace<V> {
    /// Buffers shaped like `like`.
    pub fn new(like: &V) -> Self {
        NeumannWorkspace {
            p: like.zeros_like(),
            ap: like.zeros_like(),
        }
    }
}

/// `v ← η Σ_{q<Q} (I − η(A + γI))^q b` with `Q = opts.max_iter` terms (fewer if the residual
/// `‖p_q‖/‖b‖` falls below `opts.rtol`). Uses Q operator applications.
pub fn neumann<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    b: &V,
    v: &mut V,
    eta: f64,
    opts: &KrylovOptions,
    ws: &mut NeumannWorkspace<V>,
) -> KrylovInfo {
    let NeumannWorkspace { p, ap } = ws;
    v.set_zero();
    let bnorm = b.norm();
    if bnorm == 0.0 {
        return KrylovInfo {
            iterations: 0,
            operator_applications: 0,
            relative_residual: 0.0,
            status: KrylovStatus::Converged,
        };
    }
    p.assign(b);
    let mut rel = 1.0;
    let mut tracker = StagnationTracker::new(opts.stagnation_window);
    let mut q = 0;
    let status = loop {
        if rel <= opts.rtol {
            break KrylovStatus::Converged;
        }
        if q >= opts.max_iter {
            break KrylovStatus::MaxIterations;
        }
        if !rel.is_finite() || rel > 1e8 {
            break KrylovStatus::Diverged;
        }
        if tracker.stagnated(rel) {
            break KrylovStatus::Stagnated;
        }
        v.axpy(eta, p);
        op.apply(p, ap);
        if opts.shift != 0.0 {
            ap.axpy(opts.shift, p);
        }
        p.axpy(-eta, ap);
        q += 1;
        rel = p.norm() / bnorm;
    };
    KrylovInfo {
        iterations: q,
        operator_applications: q,
        relative_residual: rel,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{matvec, psd_with_null};
    use super::*;
    use crate::dense::sym_eig;
    use crate::rng::Rng;

    #[test]
    fn neumann_matches_closed_form_partial_sum() {
        let mut rng = Rng::new(4);
        let (a, q, lam) = psd_with_null(10, 2, 0.5, 1.0, &mut rng);
        let mut b = vec![0.0; 10];
        rng.fill_normal(&mut b);
        let (eta, terms) = (0.8, 15);
        let mut v = vec![0.0; 10];
        let opts = KrylovOptions {
            max_iter: terms,
            rtol: 0.0,
            stagnation_window: 0,
            ..Default::default()
        };
        let info = neumann(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &b,
            &mut v,
            eta,
            &opts,
            &mut NeumannWorkspace::new(&b),
        );
        assert_eq!(info.iterations, terms);
        // In the eigenbasis: coefficient (1 − (1 − ηλ)^Q)/λ, or ηQ on the kernel.
        let mut expected = vec![0.0; 10];
        for k in 0..10 {
            let qk = &q[k * 10..(k + 1) * 10];
            let c = crate::vector::dot(qk, &b);
            let s = if lam[k] == 0.0 {
                eta * terms as f64
            } else {
                (1.0 - (1.0 - eta * lam[k]).powi(terms as i32)) / lam[k]
            };
            crate::vector::axpy(&mut expected, c * s, qk);
        }
        assert!(crate::derivatives::relative_error(&v, &expected, 1e-300) < 1e-12);
        let _ = sym_eig(&a, 10).unwrap();
    }
}
