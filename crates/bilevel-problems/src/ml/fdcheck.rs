//! Finite-difference checks of every oracle of an ML problem (tests only).
//!
//! Central differences with step h have truncation error `h²/6 · |∇³|` and rounding error
//! `≈ ε_mach |value| / h`; with `h = 1e-5` on unit-scale data both are below `1e-9` relative, so
//! a bound of `1e-6` leaves a wide margin and still catches any wrong term (those are O(1)).

use bilevel_core::derivatives::{fd_gradient, relative_error};
use bilevel_core::rng::Rng;
use bilevel_core::vector::dot;
use bilevel_core::Bilevel;

/// Step of the central differences.
pub const H: f64 = 1e-5;
/// Bound on the relative error of every check.
pub const TOL: f64 = 1e-6;

fn assert_close(what: &str, got: &[f64], fd: &[f64]) {
    let e = relative_error(got, fd, 1e-8);
    assert!(
        e <= TOL,
        "{what}: relative error {e:.3e} > {TOL:e}\n got {:?}\n fd  {:?}",
        &got[..got.len().min(6)],
        &fd[..fd.len().min(6)]
    );
}

/// Central difference of a vector-valued map along `v`.
fn fd_dir(mut f: impl FnMut(&[f64], &mut [f64]), z: &[f64], v: &[f64], out_len: usize) -> Vec<f64> {
    let zp: Vec<f64> = z.iter().zip(v).map(|(a, b)| a + H * b).collect();
    let zm: Vec<f64> = z.iter().zip(v).map(|(a, b)| a - H * b).collect();
    let (mut a, mut b) = (vec![0.0; out_len], vec![0.0; out_len]);
    f(&zp, &mut a);
    f(&zm, &mut b);
    a.iter().zip(&b).map(|(p, m)| (p - m) / (2.0 * H)).collect()
}

/// Check `∇f`, `∇_y g`, `∇_x g`, `grad_g`, `H v`, `J v` of `p` at `(x, y)` against central
/// differences, and the symmetry of `H`.
pub fn check_oracles<P: Bilevel<Y = Vec<f64>> + ?Sized>(p: &P, x: &[f64], y: &[f64], seed: u64) {
    let (m, d) = (p.dim_x(), p.dim_y());
    assert_eq!((x.len(), y.len()), (m, d));
    let y = y.to_vec();
    let name = p.name().to_string();
    let mut rng = Rng::new(seed);
    let mut v = vec![0.0; d];
    let mut u = vec![0.0; d];
    rng.fill_normal(&mut v);
    rng.fill_normal(&mut u);

    // ∇f.
    let (mut fx, mut fy) = (vec![0.0; m], vec![0.0; d]);
    p.grad_f(x, &y, &mut fx, &mut fy);
    let fd_fy = fd_gradient(|z| p.f(x, &z.to_vec()), &y, H);
    assert_close(&format!("{name} ∇_y f"), &fy, &fd_fy);
    let fd_fx = fd_gradient(|z| p.f(z, &y), x, H);
    if fd_fx.iter().any(|v| v.abs() > 0.0) || fx.iter().any(|v| v.abs() > 0.0) {
        assert_close(&format!("{name} ∇_x f"), &fx, &fd_fx);
    }

    // ∇g.
    let (mut gx, mut gy) = (vec![0.0; m], vec![0.0; d]);
    p.grad_g_y(x, &y, &mut gy);
    let fd_gy = fd_gradient(|z| p.g(x, &z.to_vec()), &y, H);
    assert_close(&format!("{name} ∇_y g"), &gy, &fd_gy);
    p.grad_g_x(x, &y, &mut gx);
    let fd_gx = fd_gradient(|z| p.g(z, &y), x, H);
    assert_close(&format!("{name} ∇_x g"), &gx, &fd_gx);
    let (mut gx2, mut gy2) = (vec![f64::NAN; m], vec![f64::NAN; d]);
    p.grad_g(x, &y, &mut gx2, &mut gy2);
    assert!(relative_error(&gx2, &gx, 1e-12) < 1e-13, "{name} grad_g x");
    assert!(relative_error(&gy2, &gy, 1e-12) < 1e-13, "{name} grad_g y");

    // H v = D_v ∇_y g, J v = D_v ∇_x g (derivative of ∇_x g along v in y).
    let mut hv = vec![f64::NAN; d];
    p.hvp(x, &y, &v, &mut hv);
    let fd_hv = fd_dir(
        |z, out| {
            let mut o = vec![0.0; d];
            p.grad_g_y(x, &z.to_vec(), &mut o);
            out.copy_from_slice(&o);
        },
        &y,
        &v,
        d,
    );
    assert_close(&format!("{name} H v"), &hv, &fd_hv);
    let mut jv = vec![f64::NAN; m];
    p.cross(x, &y, &v, &mut jv);
    let fd_jv = fd_dir(|z, out| p.grad_g_x(x, &z.to_vec(), out), &y, &v, m);
    assert_close(&format!("{name} J v"), &jv, &fd_jv);

    // Symmetry ⟨u, H v⟩ = ⟨v, H u⟩.
    let mut hu = vec![0.0; d];
    p.hvp(x, &y, &u, &mut hu);
    let (a, b) = (dot(&u, &hv), dot(&v, &hu));
    assert!(
        (a - b).abs() <= 1e-12 * (a.abs() + b.abs() + 1e-300),
        "{name}: H not symmetric: {a} vs {b}"
    );
}

/// Check `reference_grad_phi(x)` against central differences of `reference_phi` with step `h`
/// (relative error ≤ `tol`), on the coordinates `coords` of x (all when empty).
pub fn check_reference_gradient<P: Bilevel<Y = Vec<f64>> + ?Sized>(
    p: &P,
    x: &[f64],
    h: f64,
    tol: f64,
) -> (Vec<f64>, Vec<f64>) {
    let g = p.reference_grad_phi(x).expect("reference ∇φ");
    let fd = fd_gradient(|z| p.reference_phi(z).expect("reference φ"), x, h);
    let e = relative_error(&g, &fd, 1e-10);
    assert!(
        e <= tol,
        "{}: ∇φ relative error {e:.3e} > {tol:e}\n got {:?}\n fd  {:?}",
        p.name(),
        &g[..g.len().min(6)],
        &fd[..fd.len().min(6)]
    );
    (g, fd)
}
