//! Shared checks used by every problem's tests: products against finite differences and dual
//! numbers, gradients against finite differences of values, closed-form ∇φ against finite
//! differences of closed-form φ, and the pseudoinverse hypergradient at the reference selection.

use crate::config::{BuiltProblem, ProblemConfig};
use crate::wrapper::{Derivatives, ProblemDef, WithDerivatives};
use bilevel_core::derivatives::{fd_directional, fd_gradient, relative_error, DEFAULT_FD_EPS};
use bilevel_core::rng::Rng;
use bilevel_core::{Bilevel, DerivativeKind};
use faer::{Mat, Side};

/// The three derivative sources, finite differences at the default step.
pub(crate) const MODES: [Derivatives; 3] = [
    Derivatives::Analytic,
    Derivatives::Dual,
    Derivatives::FiniteDifference {
        eps: DEFAULT_FD_EPS,
    },
];

/// A Gaussian vector of length n, scaled.
pub(crate) fn gaussian(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

/// `def` wrapped with `mode`.
pub(crate) fn wrap<P: ProblemDef + Clone>(def: &P, mode: Derivatives) -> WithDerivatives<P> {
    WithDerivatives::new(def.clone(), mode).expect("valid derivative source")
}

/// Central finite difference of the analytic `∇_y g` along v (reference for `H v`).
fn fd_hvp<B: Bilevel<Y = Vec<f64>>>(p: &B, x: &[f64], y: &[f64], v: &[f64]) -> Vec<f64> {
    let d = y.len();
    let (mut w, mut t, mut out) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    fd_directional(
        |yy, o| {
            let mut g = vec![0.0; d];
            p.grad_g_y(x, &yy.to_vec(), &mut g);
            o.copy_from_slice(&g);
        },
        y,
        v,
        DEFAULT_FD_EPS,
        &mut w,
        &mut t,
        &mut out,
    );
    out
}

/// Central finite difference of the analytic `∇_x g` along v (reference for `J v`).
fn fd_cross<B: Bilevel<Y = Vec<f64>>>(p: &B, x: &[f64], y: &[f64], v: &[f64]) -> Vec<f64> {
    let (d, m) = (y.len(), x.len());
    let (mut w, mut t, mut out) = (vec![0.0; d], vec![0.0; m], vec![0.0; m]);
    fd_directional(
        |yy, o| p.grad_g_x(x, &yy.to_vec(), o),
        y,
        v,
        DEFAULT_FD_EPS,
        &mut w,
        &mut t,
        &mut out,
    );
    out
}

/// An ML problem's finite sums are its splits: `train` lower samples (the training rows of
/// `data`), `validation` upper ones (its validation rows).
pub(crate) fn check_split_sample_counts<B: Bilevel + ?Sized>(
    p: &B,
    data: &crate::ml::MlData,
    (train, validation): (usize, usize),
) {
    assert_eq!(p.sample_count(bilevel_core::Level::Lower), train);
    assert_eq!(p.sample_count(bilevel_core::Level::Upper), validation);
    assert_eq!(p.sample_count(bilevel_core::Level::Lower), data.train.n);
    assert_eq!(
        p.sample_count(bilevel_core::Level::Upper),
        data.validation.n
    );
}

/// A `[problem]` table's TOML text parsed as a configuration (the error as text).
pub(crate) fn parse_problem(s: &str) -> Result<ProblemConfig, String> {
    toml::from_str::<ProblemConfig>(s).map_err(|e| e.to_string())
}

/// [`parse_problem`], then built (the error as text).
pub(crate) fn build_problem(s: &str) -> Result<BuiltProblem, String> {
    parse_problem(s)?.build().map_err(|e| e.to_string())
}

/// Every configuration `src` of `cases` fails to build with a message starting with its `msg`.
pub(crate) fn assert_build_errors<S: AsRef<str>>(
    cases: impl IntoIterator<Item = (S, &'static str)>,
) {
    for (src, msg) in cases {
        let src = src.as_ref();
        let e = build_problem(src).unwrap_err();
        assert!(
            e.starts_with(msg),
            "config {src:?}: got {e:?}, want prefix {msg:?}"
        );
    }
}

/// For every derivative source and `n_points` random `(x, y, v)` (entries `N(0, scale²)`):
/// `H v` and `J v` agree with central differences of the analytic gradients to 1e-6 relative, and
/// analytic products agree with dual-number products to 1e-12 relative. Also checks the
/// reported [`DerivativeKind`].
pub(crate) fn check_products<P: ProblemDef + Clone>(
    def: &P,
    seed: u64,
    n_points: usize,
    scale: f64,
) {
    let (m, d) = (def.dim_x(), def.dim_y());
    let mut rng = Rng::new(seed);
    let analytic = wrap(def, Derivatives::Analytic);
    let dual = wrap(def, Derivatives::Dual);
    // (H v, J v) of `p` at (x, y).
    let products = |p: &WithDerivatives<P>, x: &[f64], y: &Vec<f64>, v: &Vec<f64>| {
        let (mut hv, mut jv) = (vec![0.0; d], vec![0.0; m]);
        p.hvp(x, y, v, &mut hv);
        p.cross(x, y, v, &mut jv);
        (hv, jv)
    };
    for _ in 0..n_points {
        let x = gaussian(&mut rng, m, scale);
        let y = gaussian(&mut rng, d, scale);
        let v = gaussian(&mut rng, d, 1.0);
        let hv_fd = fd_hvp(&analytic, &x, &y, &v);
        let jv_fd = fd_cross(&analytic, &x, &y, &v);
        let (hv_an, jv_an) = products(&analytic, &x, &y, &v);
        for mode in MODES {
            let p = wrap(def, mode);
            assert_eq!(p.derivatives(), mode.kind());
            let (hv, jv) = products(&p, &x, &y, &v);
            let eh = relative_error(&hv, &hv_fd, 1e-3);
            let ej = relative_error(&jv, &jv_fd, 1e-3);
            assert!(
                eh < 1e-6,
                "{} {mode:?}: H v vs FD rel err {eh:e} at x={x:?} y={y:?}",
                def.name()
            );
            assert!(
                ej < 1e-6,
                "{} {mode:?}: J v vs FD rel err {ej:e} at x={x:?} y={y:?}",
                def.name()
            );
        }
        let (hv_du, jv_du) = products(&dual, &x, &y, &v);
        let eh = relative_error(&hv_an, &hv_du, 1e-10);
        let ej = relative_error(&jv_an, &jv_du, 1e-10);
        assert!(
            eh <= 1e-12,
            "{}: analytic vs dual H v rel err {eh:e}",
            def.name()
        );
        assert!(
            ej <= 1e-12,
            "{}: analytic vs dual J v rel err {ej:e}",
            def.name()
        );
    }
    assert!(matches!(
        wrap(def, MODES[2]).derivatives(),
        DerivativeKind::FiniteDifference { eps } if eps == DEFAULT_FD_EPS
    ));
}

/// Gradients of f and g (both blocks, and `grad_g` jointly) against `fd_gradient` of the values
/// at random points, to 1e-7 relative.
pub(crate) fn check_gradients<P: ProblemDef + Clone>(
    def: &P,
    seed: u64,
    n_points: usize,
    scale: f64,
) {
    let (m, d) = (def.dim_x(), def.dim_y());
    let p = wrap(def, Derivatives::Analytic);
    let mut rng = Rng::new(seed);
    let tol = 1e-7;
    for _ in 0..n_points {
        let x = gaussian(&mut rng, m, scale);
        let y = gaussian(&mut rng, d, scale);
        let (mut fx, mut fy) = (vec![0.0; m], vec![0.0; d]);
        p.grad_f(&x, &y, &mut fx, &mut fy);
        let fx_fd = fd_gradient(|z| p.f(z, &y), &x, 1e-6);
        let fy_fd = fd_gradient(|z| p.f(&x, &z.to_vec()), &y, 1e-6);
        let (mut gx, mut gy) = (vec![0.0; m], vec![0.0; d]);
        p.grad_g_x(&x, &y, &mut gx);
        p.grad_g_y(&x, &y, &mut gy);
        let gx_fd = fd_gradient(|z| p.g(z, &y), &x, 1e-6);
        let gy_fd = fd_gradient(|z| p.g(&x, &z.to_vec()), &y, 1e-6);
        for (what, a, b) in [
            ("∇_x f", &fx, &fx_fd),
            ("∇_y f", &fy, &fy_fd),
            ("∇_x g", &gx, &gx_fd),
            ("∇_y g", &gy, &gy_fd),
        ] {
            let e = relative_error(a, b, 1.0);
            assert!(
                e < tol,
                "{}: {what} vs FD rel err {e:e} at x={x:?} y={y:?}",
                def.name()
            );
        }
        let (mut gx2, mut gy2) = (vec![0.0; m], vec![0.0; d]);
        p.grad_g(&x, &y, &mut gx2, &mut gy2);
        assert_eq!((&gx2, &gy2), (&gx, &gy));
        // The generic gradient on f64 is the analytic one.
        let mut gy3 = vec![0.0; d];
        bilevel_core::derivatives::GenericLowerGradient::grad_g_y_generic::<f64>(
            def, &x, &y, &mut gy3,
        );
        assert!(relative_error(&gy3, &gy, 1.0) < 1e-14);
    }
}

/// Closed-form references at `x`: ∇φ against `fd_gradient` of φ (relative 1e-6), y* in S(x)
/// (`g(x, y*) = 0 = min g`, `∇_y g(x, y*) = 0`) and `φ(x) = f(x, y*)`.
pub(crate) fn check_references<P: ProblemDef + Clone>(def: &P, x: &[f64]) {
    check_grad_phi(def, x);
    let p = wrap(def, Derivatives::Analytic);
    let y = p.reference_y(x).expect("unique selection");
    assert!(
        p.g(x, &y).abs() < 1e-20,
        "{}: g(x, y*) = {}",
        def.name(),
        p.g(x, &y)
    );
    check_stationary_selection(def, x);
}

/// `∇φ(x)` (closed form) against `fd_gradient` of the closed-form φ, relative 1e-6.
pub(crate) fn check_grad_phi<P: ProblemDef + Clone>(def: &P, x: &[f64]) {
    let p = wrap(def, Derivatives::Analytic);
    let grad = p.reference_grad_phi(x).expect("differentiable point");
    let grad_fd = fd_gradient(|z| p.reference_phi(z).expect("φ defined"), x, 1e-6);
    let e = relative_error(&grad, &grad_fd, 1.0);
    assert!(
        e < 1e-6,
        "{}: ∇φ vs FD of φ rel err {e:e} at x={x:?}",
        def.name()
    );
}

/// For lower levels whose minimum value is not zero: `φ(x) = f(x, y*)`, `∇_y g(x, y*) = 0`
/// (relative 1e-10) and `g(x, y*) ≤ g(x, y* + δ)` for a few random small δ.
pub(crate) fn check_stationary_selection<P: ProblemDef + Clone>(def: &P, x: &[f64]) {
    let p = wrap(def, Derivatives::Analytic);
    let y = p.reference_y(x).expect("unique selection");
    let phi = p.reference_phi(x).expect("φ defined");
    assert!(
        (p.f(x, &y) - phi).abs() <= 1e-12 * (1.0 + phi.abs()),
        "{}: f(x, y*) = {} vs φ = {phi}",
        def.name(),
        p.f(x, &y)
    );
    let mut gy = vec![0.0; y.len()];
    p.grad_g_y(x, &y, &mut gy);
    let yscale = 1.0 + bilevel_core::vector::norm(&y);
    assert!(
        bilevel_core::vector::norm(&gy) < 1e-10 * yscale,
        "{}: ∇_y g(x, y*) = {gy:?}",
        def.name()
    );
    let g0 = p.g(x, &y);
    let mut rng = Rng::new(99);
    for _ in 0..4 {
        let yp: Vec<f64> = y.iter().map(|v| v + 1e-3 * rng.normal()).collect();
        assert!(
            p.g(x, &yp) >= g0 - 1e-12 * (1.0 + g0.abs()),
            "{}: y* is not a minimiser of g",
            def.name()
        );
    }
}

/// What the pseudoinverse formula gives at a point.
pub(crate) struct PinvCheck {
    /// `∇_x f − J H^† ∇_y f`.
    pub hypergrad: Vec<f64>,
    /// Eigenvalues of H (ascending).
    pub eigenvalues: Vec<f64>,
    /// Number of eigenvalues with `|λ| ≤ 1e-10 max|λ|`.
    pub null_count: usize,
    /// `‖P_ker ∇_y f‖ / max(‖∇_y f‖, 1)`.
    pub kernel_component: f64,
}

/// Dense pseudoinverse hypergradient at `(x, y)`: H from `hvp` columns, faer's self-adjoint
/// eigendecomposition, eigenvalues below `1e-10 · max` dropped.
pub(crate) fn pinv_hypergrad<B: Bilevel<Y = Vec<f64>> + ?Sized>(
    p: &B,
    x: &[f64],
    y: &[f64],
) -> PinvCheck {
    let (m, d) = (p.dim_x(), p.dim_y());
    let y = y.to_vec();
    let mut cols = vec![vec![0.0; d]; d];
    let mut e = vec![0.0; d];
    for (j, col) in cols.iter_mut().enumerate() {
        e[j] = 1.0;
        p.hvp(x, &y, &e, col);
        e[j] = 0.0;
    }
    let h = Mat::from_fn(d, d, |i, j| 0.5 * (cols[j][i] + cols[i][j]));
    let evd = h
        .self_adjoint_eigen(Side::Lower)
        .expect("eigendecomposition");
    let (s, u) = (evd.S(), evd.U());
    let eigenvalues: Vec<f64> = (0..d).map(|i| s[i]).collect();
    let tau = 1e-10 * eigenvalues.iter().fold(0.0f64, |a, l| a.max(l.abs()));
    let (mut fx, mut fy) = (vec![0.0; m], vec![0.0; d]);
    p.grad_f(x, &y, &mut fx, &mut fy);
    let mut w = vec![0.0; d];
    let mut ker2 = 0.0;
    let mut null_count = 0;
    for (i, &l) in eigenvalues.iter().enumerate() {
        let c: f64 = (0..d).map(|r| u[(r, i)] * fy[r]).sum();
        if l.abs() > tau {
            (0..d).for_each(|r| w[r] += c / l * u[(r, i)]);
        } else {
            null_count += 1;
            ker2 += c * c;
        }
    }
    let mut jw = vec![0.0; m];
    p.cross(x, &y, &w, &mut jw);
    let hypergrad = fx.iter().zip(&jw).map(|(a, b)| a - b).collect();
    PinvCheck {
        hypergrad,
        eigenvalues,
        null_count,
        kernel_component: ker2.sqrt() / bilevel_core::vector::norm(&fy).max(1.0),
    }
}

/// At `y = reference_y(x)`: the pseudoinverse formula equals `reference_grad_phi` to 1e-8
/// relative, H has exactly k near-zero eigenvalues, and the kernel part of `∇_y f` vanishes
/// (1e-10 relative). Checked for the analytic and dual-number sources.
pub(crate) fn check_pseudoinverse<P: ProblemDef + Clone>(def: &P, x: &[f64]) -> PinvCheck {
    let mut last = None;
    for mode in [Derivatives::Analytic, Derivatives::Dual] {
        let p = wrap(def, mode);
        let y = p.reference_y(x).expect("unique selection");
        let c = pinv_hypergrad(&p, x, &y);
        let reference = p.reference_grad_phi(x).expect("differentiable point");
        let e = relative_error(&c.hypergrad, &reference, 1e-8);
        assert!(
            e < 1e-8,
            "{} {mode:?}: pseudoinverse formula {:?} vs ∇φ {reference:?} (rel err {e:e}) at x={x:?}",
            def.name(),
            c.hypergrad
        );
        assert_eq!(
            Some(c.null_count),
            p.reference_intrinsic_dimension(),
            "{}: near-zero eigenvalues {:?}",
            def.name(),
            c.eigenvalues
        );
        assert!(
            c.kernel_component < 1e-10,
            "{}: kernel component of ∇_y f at y* = {:e}",
            def.name(),
            c.kernel_component
        );
        last = Some(c);
    }
    last.expect("two modes checked")
}

/// Minibatch oracles of a finite-sum problem against its full oracles, at `(x, y)` with direction
/// `v`:
///
/// 1. the batch of every sample with weight 1 gives the full oracles (relative `1e-12`: the same
///    sums in another order);
/// 2. the average over all chunks of `b` samples, each with its weight `C·|c|/n`, is the full
///    oracle exactly (relative `1e-12`), with `b` chosen so the last chunk is partial;
/// 3. `lower_batch` equals the three separate batch oracles on one batch.
///
/// Both levels are checked (lower: `∇_y g`, `∇_x g`, `H v`, `J v`; upper: `∇f`).
pub(crate) fn check_batch_oracles<B: Bilevel<Y = Vec<f64>> + ?Sized>(
    p: &B,
    x: &[f64],
    y: &[f64],
    v: &[f64],
) {
    use bilevel_core::{Batch, BatchSampler, Level, Scheme};
    let (m, d) = (p.dim_x(), p.dim_y());
    let y = y.to_vec();
    let v = v.to_vec();
    // Full oracles, concatenated per level: lower [∇_y g, ∇_x g, H v, J v], upper [∇_x f, ∇_y f].
    let full_lower = {
        let (mut gy, mut gx, mut hv, mut jv) =
            (vec![0.0; d], vec![0.0; m], vec![0.0; d], vec![0.0; m]);
        p.grad_g_y(x, &y, &mut gy);
        p.grad_g_x(x, &y, &mut gx);
        p.hvp(x, &y, &v, &mut hv);
        p.cross(x, &y, &v, &mut jv);
        [gy, gx, hv, jv].concat()
    };
    let full_upper = {
        let (mut gx, mut gy) = (vec![0.0; m], vec![0.0; d]);
        p.grad_f(x, &y, &mut gx, &mut gy);
        [gx, gy].concat()
    };
    let lower = |b: &Batch<'_>| {
        let (mut gy, mut gx, mut hv, mut jv) =
            (vec![0.0; d], vec![0.0; m], vec![0.0; d], vec![0.0; m]);
        p.grad_g_y_batch(x, &y, b, &mut gy);
        p.grad_g_x_batch(x, &y, b, &mut gx);
        p.hvp_batch(x, &y, b, &v, &mut hv);
        p.cross_batch(x, &y, b, &v, &mut jv);
        let (mut gy2, mut hv2, mut jv2) = (vec![0.0; d], vec![0.0; d], vec![0.0; m]);
        p.lower_batch(x, &y, b, &v, &mut gy2, &mut hv2, &mut jv2);
        for (a, b, what) in [(&gy, &gy2, "∇_y g"), (&hv, &hv2, "H v"), (&jv, &jv2, "J v")] {
            let e = relative_error(a, b, 1e-12);
            assert!(
                e < 1e-12,
                "lower_batch vs separate batch oracles, {what}: {e:e}"
            );
        }
        [gy, gx, hv, jv].concat()
    };
    let upper = |b: &Batch<'_>| {
        let (mut gx, mut gy) = (vec![0.0; m], vec![0.0; d]);
        p.grad_f_batch(x, &y, b, &mut gx, &mut gy);
        [gx, gy].concat()
    };
    for (level, full) in [(Level::Lower, &full_lower), (Level::Upper, &full_upper)] {
        let n = p.sample_count(level);
        assert!(n > 1, "{level:?}: not a finite sum (sample_count = {n})");
        let eval = |b: &Batch<'_>| match level {
            Level::Lower => lower(b),
            Level::Upper => upper(b),
        };
        let all: Vec<usize> = (0..n).collect();
        let whole = eval(&Batch {
            indices: &all,
            weight: 1.0,
            chunk: None,
        });
        let e = relative_error(&whole, full, 1e-12);
        assert!(e < 1e-12, "{level:?}: full batch vs full oracle: {e:e}");
        // A chunk size that leaves a partial last chunk.
        let b = ((n / 3).max(1)..n)
            .find(|b| n % b != 0)
            .unwrap_or((n / 3).max(1));
        let s = BatchSampler::new(n, b, Scheme::Chunks, 0).expect("n, b ≥ 1");
        let mut mean = vec![0.0; full.len()];
        for c in 0..s.chunks() {
            let idx: Vec<usize> = s.chunk_range(c).collect();
            let est = eval(&Batch {
                indices: &idx,
                weight: s.chunk_weight(c),
                chunk: Some(c),
            });
            mean.iter_mut()
                .zip(&est)
                .for_each(|(a, e)| *a += e / s.chunks() as f64);
        }
        let e = relative_error(&mean, full, 1e-12);
        assert!(
            e < 1e-12,
            "{level:?}: chunk average (b = {b}) vs full oracle: {e:e}"
        );
    }
}
