//! MINRES (Paige & Saunders 1975) on `(H + γI) v = b`, with a minimum-norm correction for
//! inconsistent singular systems.
//!
//! From `v₀ = 0` the iterates lie in `K(A, b)`. For consistent systems MINRES therefore returns
//! `A^† b`. For inconsistent ones it converges to *a* least-squares solution whose residual is
//! `P_ker b`, and its iterates pick up a kernel component that grows like `1/θ` (θ the Ritz value
//! approximating 0). We stop the first pass there (a zero QR pivot or `‖A r‖ ≤ tol ‖A‖‖r‖`), take
//! `n = r/‖r‖ ≈ P_ker b/‖P_ker b‖`, and solve again from 0 with `b − ⟨b, n⟩ n`, a consistent
//! system whose MINRES solution is the minimum-norm least-squares solution `A^† b` — the answer
//! MINRES-QLP (Choi, Paige & Saunders 2011) computes, at about twice the cost.

use super::{KrylovInfo, KrylovOptions, KrylovStatus, LinearOperator, StagnationTracker};
use crate::vector::Vector;

/// Floor of the least-squares stopping test `‖A r‖/(‖A‖‖r‖)`: on inconsistent systems the
/// projected second pass starts from a right-hand side accurate to ≈ `κ · LS_TOL_FLOOR`; plain
/// Lanczos loses orthogonality soon after the Krylov space is exhausted, so tighter is not safer.
pub const LS_TOL_FLOOR: f64 = 1e-8;

/// Relative size `γ_k/‖T_k‖` below which the QR pivot of the Lanczos matrix counts as zero.
const SINGULAR_PIVOT: f64 = 1e-8;

/// Buffers for [`minres`].
#[derive(Clone, Debug)]
pub struct MinresWorkspace<V> {
    r1: V,
    r2: V,
    y: V,
    vk: V,
    w: V,
    w1: V,
    w2: V,
    rhs: V,
}

impl<V: Vector> MinresWorkspace<V> {
    /// Buffers shaped like `like`.
    pub fn new(like: &V) -> Self {
        MinresWorkspace {
            r1: like.zeros_like(),
            r2: like.zeros_like(),
            y: like.zeros_like(),
            vk: like.zeros_like(),
            w: like.zeros_like(),
            w1: like.zeros_like(),
            w2: like.zeros_like(),
            rhs: like.zeros_like(),
        }
    }
}

/// Solve `(A + γI) v = b` by MINRES from `v = 0` (the incoming `v` is overwritten).
///
/// Stops with `Converged` when `‖r‖ ≤ rtol ‖b‖`, with `LeastSquares` when
/// `‖A r‖ ≤ rtol ‖A‖ ‖r‖` (then `v` is corrected to the minimum-norm least-squares solution
/// and `relative_residual` is `‖P_ker b‖/‖b‖`).
pub fn minres<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    b: &V,
    v: &mut V,
    opts: &KrylovOptions,
    ws: &mut MinresWorkspace<V>,
) -> KrylovInfo {
    let first = minres_pass(op, b, v, opts, ws);
    if first.status != KrylovStatus::LeastSquares || opts.shift != 0.0 {
        return first.info;
    }
    // Inconsistent system: r = b − A v ≈ P_ker b. Solve again, from 0, with b' = b − ⟨b, n⟩ n,
    // n = r/‖r‖: now (nearly) consistent, so MINRES returns A^† b' = A^† b, the minimum-norm
    // least-squares solution, without the cancellation of a large kernel component.
    let mut bp = std::mem::replace(&mut ws.rhs, b.zeros_like());
    bp.assign(b);
    let rr = ws.r1.dot(&ws.r1);
    if rr > 0.0 {
        let c = bp.dot(&ws.r1) / rr;
        bp.axpy(-c, &ws.r1);
    }
    let second = minres_pass(op, &bp, v, opts, ws);
    ws.rhs = bp;
    // Residual against the original b, and least-squares optimality ‖A r‖ ≤ tol ‖A‖ ‖r‖.
    let MinresWorkspace { r1, y, r2, .. } = ws;
    op.apply(v, y);
    r1.assign(b);
    r1.axpy(-1.0, y);
    op.apply(r1, r2);
    let rnorm = r1.norm();
    let bnorm = b.norm();
    let anorm_est = first.anorm.max(second.anorm);
    let optimal = r2.norm() <= 1e3 * LS_TOL_FLOOR.max(opts.rtol) * anorm_est * rnorm;
    KrylovInfo {
        iterations: first.info.iterations + second.info.iterations,
        operator_applications: first.info.operator_applications
            + second.info.operator_applications
            + 2,
        relative_residual: rnorm / bnorm,
        status: if optimal {
            KrylovStatus::LeastSquares
        } else {
            KrylovStatus::Stagnated
        },
    }
}

/// One MINRES pass from 0 with the exact final residual left in `ws.r1`.
struct Pass {
    info: KrylovInfo,
    status: KrylovStatus,
    anorm: f64,
}

fn minres_pass<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    b: &V,
    v: &mut V,
    opts: &KrylovOptions,
    ws: &mut MinresWorkspace<V>,
) -> Pass {
    let MinresWorkspace {
        r1,
        r2,
        y,
        vk,
        w,
        w1,
        w2,
        ..
    } = ws;
    v.set_zero();
    let beta1 = b.norm();
    if beta1 == 0.0 {
        r1.set_zero();
        let info = KrylovInfo {
            iterations: 0,
            operator_applications: 0,
            relative_residual: 0.0,
            status: KrylovStatus::Converged,
        };
        return Pass {
            info,
            status: info.status,
            anorm: 0.0,
        };
    }
    let eps = f64::EPSILON;
    // Least-squares stop. The kernel part of the iterate grows like 1/test2 on inconsistent
    // systems, so pushing test2 to rounding level would swamp the correction in cancellation.
    let ls_tol = opts.rtol.max(LS_TOL_FLOOR);
    r1.assign(b);
    r2.assign(b);
    y.assign(b);
    w.set_zero();
    w2.set_zero();
    let (mut oldb, mut beta, mut dbar, mut epsln) = (0.0, beta1, 0.0, 0.0);
    let mut phibar = beta1;
    let (mut cs, mut sn) = (-1.0f64, 0.0f64);
    let mut tnorm2 = 0.0;
    let mut applications = 0;
    let mut itn = 0;
    // Stagnation means neither ‖r‖ nor ‖A r‖/(‖A‖‖r‖) improves (the first plateaus at ‖P_ker b‖
    // on inconsistent systems while the second keeps falling).
    let mut tracker = StagnationTracker::new(opts.stagnation_window);
    let mut tracker_ls = StagnationTracker::new(opts.stagnation_window);
    let mut status = KrylovStatus::MaxIterations;
    while itn < opts.max_iter {
        itn += 1;
        // Lanczos step.
        vk.assign(y);
        vk.scale(1.0 / beta);
        op.apply(vk, y);
        applications += 1;
        if opts.shift != 0.0 {
            y.axpy(opts.shift, vk);
        }
        if itn >= 2 {
            y.axpy(-beta / oldb, r1);
        }
        let alfa = vk.dot(y);
        y.axpy(-alfa / beta, r2);
        std::mem::swap(r1, r2);
        r2.assign(y);
        oldb = beta;
        beta = r2.norm();
        // ‖T_k‖_F²: α_k, the previous off-diagonal β_k and the new β_{k+1}. At k = 1 the
        // previous β is ‖b‖, which is not an entry of T (counting it would make ‖A‖ scale with
        // ‖b‖ and fire the least-squares test on well-posed systems with a large right-hand side).
        tnorm2 += alfa * alfa + beta * beta + if itn >= 2 { oldb * oldb } else { 0.0 };
        // Apply the previous rotation.
        let oldeps = epsln;
        let delta = cs * dbar + sn * alfa;
        let gbar = sn * dbar - cs * alfa;
        epsln = sn * beta;
        dbar = -cs * beta;
        let root = gbar.hypot(dbar);
        // New rotation. A (numerically) zero pivot means T_k is singular: the Krylov space now
        // holds a kernel direction of an inconsistent system, and the previous iterate already
        // minimises the residual. Updating would add a huge multiple of that direction.
        let gamma_raw = gbar.hypot(beta);
        if gamma_raw <= SINGULAR_PIVOT * tnorm2.sqrt() {
            status = KrylovStatus::LeastSquares;
            break;
        }
        let gamma = gamma_raw.max(eps);
        cs = gbar / gamma;
        sn = beta / gamma;
        let phi = cs * phibar;
        phibar *= sn;
        // Update the solution: w = (vk − oldeps w1 − delta w2)/gamma.
        std::mem::swap(w1, w2);
        std::mem::swap(w2, w);
        w.assign(vk);
        w.axpy(-oldeps, w1);
        w.axpy(-delta, w2);
        w.scale(1.0 / gamma);
        v.axpy(phi, w);

        let anorm = tnorm2.sqrt();
        let rnorm = phibar;
        let rel = rnorm / beta1;
        // ‖A r‖ / (‖A‖ ‖r‖) = root / ‖A‖ (Paige & Saunders' test2).
        let test2 = if anorm > 0.0 {
            root / anorm
        } else {
            f64::INFINITY
        };
        if !rel.is_finite() || !v.is_finite() {
            status = KrylovStatus::Diverged;
            break;
        }
        if rel <= opts.rtol {
            status = KrylovStatus::Converged;
            break;
        }
        if test2 <= ls_tol || beta <= 1e3 * eps * anorm {
            // Least-squares solution (or Krylov space exhausted): decide below.
            status = KrylovStatus::LeastSquares;
            break;
        }
        let (st_r, st_ls) = (tracker.stagnated(rel), tracker_ls.stagnated(test2));
        if st_r && st_ls {
            status = KrylovStatus::Stagnated;
            break;
        }
    }
    // Exact residual, and the minimum-norm correction for inconsistent systems.
    op.apply(v, y);
    applications += 1;
    if opts.shift != 0.0 {
        y.axpy(opts.shift, v);
    }
    r1.assign(b);
    r1.axpy(-1.0, y);
    let rnorm = r1.norm();
    let mut rel = rnorm / beta1;
    if status == KrylovStatus::LeastSquares {
        if rel <= opts.rtol.max(1e3 * eps) {
            status = KrylovStatus::Converged;
        }
    } else if status == KrylovStatus::Converged && rel > 10.0 * opts.rtol.max(1e3 * eps) {
        // The recursive residual drifted from the true one (loss of orthogonality).
        status = KrylovStatus::Stagnated;
    }
    if !rel.is_finite() {
        rel = f64::INFINITY;
        status = KrylovStatus::Diverged;
    }
    let info = KrylovInfo {
        iterations: itn,
        operator_applications: applications,
        relative_residual: rel,
        status,
    };
    Pass {
        info,
        status,
        anorm: tnorm2.sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{matvec, psd_with_null};
    use super::*;
    use crate::dense::sym_eig;
    use crate::derivatives::relative_error;
    use crate::rng::Rng;

    /// MINRES is invariant to the scales of A and b: the same system with A scaled by 10⁻⁶ and
    /// b by 10⁶ converges (an estimate of ‖A‖ that also counted ‖b‖ made the least-squares test
    /// fire here, on an SPD system).
    #[test]
    fn scale_invariant_on_spd_systems() {
        let mut rng = Rng::new(17);
        for (sa, sb) in [(1.0, 1.0), (1e-6, 1e6), (1e-3, 1e8), (1e4, 1e-6)] {
            let (a0, _, _) = psd_with_null(12, 0, 1e-3, 1.0, &mut rng);
            let a: Vec<f64> = a0.iter().map(|v| v * sa).collect();
            let mut b = vec![0.0; 12];
            rng.fill_normal(&mut b);
            b.iter_mut().for_each(|v| *v *= sb);
            let mut v = vec![0.0; 12];
            let info = minres(
                &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
                &b,
                &mut v,
                &KrylovOptions::default(),
                &mut MinresWorkspace::new(&b),
            );
            assert_eq!(
                info.status,
                KrylovStatus::Converged,
                "scales {sa}, {sb}: {info:?}"
            );
            let exact = sym_eig(&a, 12).unwrap().pinv_apply(&b, 1e-14);
            assert!(
                relative_error(&v, &exact, 1e-300) < 1e-6,
                "scales {sa}, {sb}"
            );
        }
    }

    #[test]
    fn inconsistent_system_gives_min_norm_least_squares() {
        let mut rng = Rng::new(3);
        let (a, q, _) = psd_with_null(40, 7, 0.2, 3.0, &mut rng);
        let mut b = vec![0.0; 40];
        rng.fill_normal(&mut b);
        let e = sym_eig(&a, 40).unwrap();
        let reference = e.pinv_apply(&b, 1e-10);
        let kernel = e.kernel_component(&b, 1e-10);
        assert!(kernel > 0.1);
        let mut v = vec![0.0; 40];
        let opts = KrylovOptions {
            rtol: 1e-12,
            max_iter: 400,
            ..Default::default()
        };
        let info = minres(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &b,
            &mut v,
            &opts,
            &mut MinresWorkspace::new(&b),
        );
        assert_eq!(info.status, KrylovStatus::LeastSquares, "{info:?}");
        assert!((info.relative_residual - kernel / b.norm()).abs() < 1e-9);
        let err = relative_error(&v, &reference, 1e-300);
        assert!(err < 1e-6, "err {err}");
        // No kernel component left in v.
        for k in 0..7 {
            assert!(crate::vector::dot(&q[k * 40..(k + 1) * 40], &v).abs() < 1e-9);
        }
    }
}
