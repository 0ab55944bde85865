//! Conjugate gradients (Hestenes & Stiefel 1952) on `(H + γI) v = b`.
//!
//! Started at `v₀ = 0` on a consistent singular PSD system, every iterate stays in
//! `K(H, b) ⊂ range H`, so CG converges to the minimum-norm solution `H^† b` at a rate governed by
//! `λ_max/μ` (μ the smallest nonzero eigenvalue). When `b` has a kernel component the residual
//! cannot fall below `‖P_ker b‖`; the solver then reports `Stagnated` or `IndefiniteDetected`.

use super::{KrylovInfo, KrylovOptions, KrylovStatus, LinearOperator, StagnationTracker};
use crate::vector::Vector;

/// Buffers for [`cg`] (residual, direction, operator image).
#[derive(Clone, Debug)]
pub struct CgWorkspace<V> {
    r: V,
    p: V,
    ap: V,
}

impl<V: Vector> CgWorkspace<V> {
    /// Buffers shaped like `like`.
    pub fn new(like: &V) -> Self {
        CgWorkspace {
            r: like.zeros_like(),
            p: like.zeros_like(),
            ap: like.zeros_like(),
        }
    }
}

/// Solve `(A + γI) v = b` by CG, starting from the `v` passed in (pass zeros for `H^† b`).
///
/// A curvature `pᵀ(A + γI)p ≤ 1e-13 · λ̂ · ‖p‖²` (λ̂ the largest Rayleigh quotient seen) stops
/// with `IndefiniteDetected`: the operator is (numerically) singular or indefinite along `p`.
pub fn cg<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    b: &V,
    v: &mut V,
    opts: &KrylovOptions,
    ws: &mut CgWorkspace<V>,
) -> KrylovInfo {
    let CgWorkspace { r, p, ap } = ws;
    let bnorm = b.norm();
    let mut applications = 0;
    if bnorm == 0.0 {
        v.set_zero();
        return KrylovInfo {
            iterations: 0,
            operator_applications: 0,
            relative_residual: 0.0,
            status: KrylovStatus::Converged,
        };
    }
    // r = b − (A + γI) v
    r.assign(b);
    if v.norm() > 0.0 {
        op.apply(v, ap);
        applications += 1;
        if opts.shift != 0.0 {
            ap.axpy(opts.shift, v);
        }
        r.axpy(-1.0, ap);
    }
    p.assign(r);
    let mut rr = r.dot(r);
    let mut lam_hat = 0.0f64;
    let mut tracker = StagnationTracker::new(opts.stagnation_window);
    let mut k = 0;
    let status = loop {
        let rel = rr.sqrt() / bnorm;
        if rel <= opts.rtol {
            break KrylovStatus::Converged;
        }
        if !rel.is_finite() {
            break KrylovStatus::Diverged;
        }
        if k >= opts.max_iter {
            break KrylovStatus::MaxIterations;
        }
        if tracker.stagnated(rel) {
            break KrylovStatus::Stagnated;
        }
        op.apply(p, ap);
        applications += 1;
        if opts.shift != 0.0 {
            ap.axpy(opts.shift, p);
        }
        let pap = p.dot(ap);
        let pp = p.dot(p);
        lam_hat = lam_hat.max(pap / pp);
        if pap <= 1e-13 * lam_hat * pp {
            break KrylovStatus::IndefiniteDetected;
        }
        let alpha = rr / pap;
        v.axpy(alpha, p);
        r.axpy(-alpha, ap);
        let rr_new = r.dot(r);
        p.xpby(r, rr_new / rr);
        rr = rr_new;
        k += 1;
    };
    KrylovInfo {
        iterations: k,
        operator_applications: applications,
        relative_residual: rr.sqrt() / bnorm,
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
    fn cg_spd_matches_dense_solve() {
        let mut rng = Rng::new(1);
        let (a, _, _) = psd_with_null(30, 0, 0.1, 2.0, &mut rng);
        let mut b = vec![0.0; 30];
        rng.fill_normal(&mut b);
        let mut v = vec![0.0; 30];
        let opts = KrylovOptions {
            rtol: 1e-13,
            ..Default::default()
        };
        let info = cg(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &b,
            &mut v,
            &opts,
            &mut CgWorkspace::new(&b),
        );
        assert_eq!(info.status, KrylovStatus::Converged);
        let reference = sym_eig(&a, 30).unwrap().pinv_apply(&b, 1e-12);
        let err = crate::derivatives::relative_error(&v, &reference, 1e-300);
        assert!(err < 1e-10, "err {err}");
    }

    #[test]
    fn shifted_cg_solves_shifted_system() {
        let mut rng = Rng::new(2);
        let (a, _, _) = psd_with_null(12, 4, 0.5, 1.0, &mut rng);
        let mut b = vec![0.0; 12];
        rng.fill_normal(&mut b);
        let gamma = 0.3;
        let mut shifted = a.clone();
        for i in 0..12 {
            shifted[i * 12 + i] += gamma;
        }
        let mut v = vec![0.0; 12];
        let opts = KrylovOptions {
            rtol: 1e-13,
            shift: gamma,
            ..Default::default()
        };
        let info = cg(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &b,
            &mut v,
            &opts,
            &mut CgWorkspace::new(&b),
        );
        assert!(info.status.is_success());
        let reference = sym_eig(&shifted, 12).unwrap().pinv_apply(&b, 1e-14);
        assert!(crate::derivatives::relative_error(&v, &reference, 1e-300) < 1e-10);
    }
}
