//! Property tests: CG-from-zero, MINRES and Lanczos against a dense pseudoinverse
//! (eigendecomposition) on random PSD matrices with a known null space.

use super::testutil::{matvec, psd_with_null};
use super::*;
use crate::dense::sym_eig;
use crate::derivatives::relative_error;
use crate::rng::Rng;
use crate::vector::Vector;
use proptest::prelude::*;

struct Case {
    a: Vec<f64>,
    q: Vec<f64>,
    d: usize,
    null_dim: usize,
}

fn case(d: usize, null_frac: f64, mu: f64, seed: u64) -> Case {
    let null_dim = ((d as f64 * null_frac).round() as usize).clamp(1, d / 2);
    let mut rng = Rng::new(seed);
    let (a, q, _) = psd_with_null(d, null_dim, mu, 1.0, &mut rng);
    Case { a, q, d, null_dim }
}

/// A right-hand side `Σ_{range} c_i q_i + kernel_weight Σ_{kernel} c_i q_i`.
fn rhs(c: &Case, kernel_weight: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed ^ 0xabc);
    let mut b = vec![0.0; c.d];
    for k in 0..c.d {
        let w = if k < c.null_dim { kernel_weight } else { 1.0 };
        crate::vector::axpy(&mut b, w * rng.normal(), &c.q[k * c.d..(k + 1) * c.d]);
    }
    b
}

fn opts() -> KrylovOptions {
    KrylovOptions {
        max_iter: 3000,
        rtol: 1e-12,
        shift: 0.0,
        stagnation_window: 50,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(20261122), ..ProptestConfig::default() })]

    /// b ∈ range H: CG from 0 and MINRES return H^† b to 1e-8 (κ ≤ 100, rtol 1e-12 ⇒ error ≲ κ·1e-12).
    #[test]
    fn consistent_singular_systems_give_pseudoinverse(
        d in 2usize..=500, null_frac in 0.0f64..0.5, mu in 0.01f64..0.5, seed in any::<u64>()
    ) {
        let c = case(d, null_frac, mu, seed);
        let b = rhs(&c, 0.0, seed);
        let e = sym_eig(&c.a, d).unwrap();
        let reference = e.pinv_apply(&b, 1e-9);
        let a = &c.a;
        let mut op = |x: &Vec<f64>, o: &mut Vec<f64>| matvec(a, x, o);
        let mut v = vec![0.0; d];
        let info = cg(&mut op, &b, &mut v, &opts(), &mut CgWorkspace::new(&b));
        prop_assert_eq!(info.status, KrylovStatus::Converged);
        let err = relative_error(&v, &reference, 1e-300);
        prop_assert!(err < 1e-8, "CG error {} ({:?})", err, info);
        let info = minres(&mut op, &b, &mut v, &opts(), &mut MinresWorkspace::new(&b));
        prop_assert_eq!(info.status, KrylovStatus::Converged);
        let err = relative_error(&v, &reference, 1e-300);
        prop_assert!(err < 1e-8, "MINRES error {} ({:?})", err, info);
        // Lanczos from b sees no kernel component.
        let lz = lanczos(&mut op, &b, &LanczosOptions { max_iter: d, tol: 1e-10, resolve_start: false }, &mut LanczosWorkspace::new(&b)).unwrap();
        prop_assert!(lz.start_component_below(1e-6 * lz.lambda_max()) < 1e-8 * b.norm());
    }

    /// b ∉ range H: CG does not claim convergence, MINRES reports a least-squares solution whose
    /// residual is ‖P_ker b‖ (and corrects to H^† b to ≈ 1e-6), and Lanczos measures ‖P_ker b‖.
    #[test]
    fn inconsistent_systems_are_reported(
        d in 4usize..=500, null_frac in 0.0f64..0.5, mu in 0.01f64..0.5,
        kernel_weight in 0.05f64..2.0, seed in any::<u64>()
    ) {
        let c = case(d, null_frac, mu, seed);
        let b = rhs(&c, kernel_weight, seed);
        let e = sym_eig(&c.a, d).unwrap();
        let kernel = e.kernel_component(&b, 1e-9);
        prop_assume!(kernel > 1e-3 * b.norm());
        let reference = e.pinv_apply(&b, 1e-9);
        let a = &c.a;
        let mut op = |x: &Vec<f64>, o: &mut Vec<f64>| matvec(a, x, o);
        let mut v = vec![0.0; d];
        let info = cg(&mut op, &b, &mut v, &opts(), &mut CgWorkspace::new(&b));
        prop_assert!(!info.status.is_success(), "CG claimed {:?}", info);
        prop_assert!(info.relative_residual >= 0.999 * kernel / b.norm());
        let info = minres(&mut op, &b, &mut v, &opts(), &mut MinresWorkspace::new(&b));
        // Never `Converged`; normally `LeastSquares` with the minimum-norm solution, occasionally
        // `Stagnated` when the second (projected) pass cannot certify optimality to 1e-6.
        prop_assert!(
            matches!(info.status, KrylovStatus::LeastSquares | KrylovStatus::Stagnated),
            "{:?}", info
        );
        prop_assert!((info.relative_residual - kernel / b.norm()).abs() < 1e-6, "{:?}", info);
        if info.status == KrylovStatus::LeastSquares {
            let err = relative_error(&v, &reference, 1e-300);
            prop_assert!(err < 1e-4, "MINRES min-norm error {} {:?}", err, info);
        }
        let lz = lanczos(&mut op, &b, &LanczosOptions { max_iter: d, tol: 1e-10, resolve_start: false }, &mut LanczosWorkspace::new(&b)).unwrap();
        let kc = lz.start_component_below(1e-6 * lz.lambda_max());
        prop_assert!((kc - kernel).abs() < 1e-6 * b.norm(), "Lanczos {} vs {}", kc, kernel);
    }
}

/// The extreme sizes named in the acceptance criteria: d = 500 with null spaces of dimension 1
/// and d/2.
#[test]
fn largest_cases_match_dense_pseudoinverse() {
    for (null_frac, seed) in [(0.0, 11u64), (0.5, 12)] {
        let c = case(500, null_frac, 0.05, seed);
        assert_eq!(c.null_dim, if null_frac == 0.0 { 1 } else { 250 });
        let b = rhs(&c, 0.0, seed);
        let reference = sym_eig(&c.a, 500).unwrap().pinv_apply(&b, 1e-9);
        let a = &c.a;
        let mut op = |x: &Vec<f64>, o: &mut Vec<f64>| matvec(a, x, o);
        let mut v = vec![0.0; 500];
        let info = cg(&mut op, &b, &mut v, &opts(), &mut CgWorkspace::new(&b));
        assert_eq!(info.status, KrylovStatus::Converged);
        assert!(relative_error(&v, &reference, 1e-300) < 1e-8);
        let info = minres(&mut op, &b, &mut v, &opts(), &mut MinresWorkspace::new(&b));
        assert_eq!(info.status, KrylovStatus::Converged);
        assert!(relative_error(&v, &reference, 1e-300) < 1e-8);
    }
}
