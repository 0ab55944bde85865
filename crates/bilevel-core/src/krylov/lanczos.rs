//! Lanczos (1950) with full reorthogonalisation: Ritz values of `A` on `K_k(A, q₁)`, extreme
//! eigenvalues, and the near-null space seen from a start vector.
//!
//! Started at `b`, the Krylov space contains exactly the components of `b`: in exact arithmetic
//! `K(A, b) = span{P_ker b} ⊕ K(A, P_range b)`, so the Ritz vector of the (near-)zero Ritz value is
//! `P_ker b / ‖P_ker b‖` and `‖P_ker b‖ = ‖b‖ · (Σ_{θ_i ≈ 0} s_{1i}²)^{1/2}`, with `s` the Ritz
//! vectors of the tridiagonal matrix. Lanczos cannot see eigenvalue multiplicities (one Ritz value
//! per distinct eigenvalue); the intrinsic dimension is estimated separately
//! ([`crate::hypergrad::spectral_sketch`]).

use super::LinearOperator;
use crate::dense::{tridiagonal_eig, DenseError, SymEig};
use crate::vector::Vector;

/// Options for [`lanczos`].
#[derive(Clone, Copy, Debug)]
pub struct LanczosOptions {
    /// Maximum Krylov dimension.
    pub max_iter: usize,
    /// Stop when `β_j ≤ tol · ‖T‖` (invariant subspace found; Ritz values are then accurate to
    /// `β_j`). Rounding leaves `β ≈ 1e-12 ‖T‖` at exhaustion, so do not set it much below 1e-10.
    pub tol: f64,
    /// At the first `β_j ≤ tol · ‖T‖` that is still above rounding (`10³ε‖T‖`), take one more
    /// step before stopping. That step resolves a part of the start vector below the tolerance
    /// (an eigen-direction holding a fraction `< tol` of it), which projections of the start
    /// vector need: without it, a tangent component of `∇_y f` smaller than `1e-10 ‖∇_y f‖` is
    /// invisible.
    pub resolve_start: bool,
}

impl Default for LanczosOptions {
    fn default() -> Self {
        LanczosOptions {
            max_iter: 100,
            tol: 1e-10,
            resolve_start: false,
        }
    }
}

/// Basis storage for [`lanczos`] (grows to `max_iter` vectors, then reused).
#[derive(Clone, Debug)]
pub struct LanczosWorkspace<V> {
    basis: Vec<V>,
    w: V,
}

impl<V: Vector> LanczosWorkspace<V> {
    /// Workspace for vectors shaped like `like`.
    pub fn new(like: &V) -> Self {
        LanczosWorkspace {
            basis: Vec::new(),
            w: like.zeros_like(),
        }
    }
}

/// Ritz decomposition of `A` on the Krylov space from `q₁ = start/‖start‖`.
#[derive(Clone, Debug)]
pub struct LanczosResult {
    /// Krylov dimension reached (= number of operator applications).
    pub steps: usize,
    /// Whether an invariant subspace was found (the Ritz values are exact eigenvalues).
    pub invariant: bool,
    /// `‖start‖`.
    pub start_norm: f64,
    /// Ritz values (ascending) and Ritz vectors in Lanczos coordinates.
    pub ritz: SymEig,
    /// Residual bounds `|β_k s_{k,i}|` of each Ritz pair.
    pub residual_bounds: Vec<f64>,
}

impl LanczosResult {
    /// Largest Ritz value (a lower bound on λ_max that converges fast).
    pub fn lambda_max(&self) -> f64 {
        self.ritz.values.last().copied().unwrap_or(0.0)
    }
    /// Smallest Ritz value.
    pub fn lambda_min(&self) -> f64 {
        self.ritz.values.first().copied().unwrap_or(0.0)
    }
    /// Smallest Ritz value above `threshold` (an estimate of the smallest nonzero eigenvalue μ).
    pub fn smallest_above(&self, threshold: f64) -> Option<f64> {
        self.ritz.values.iter().copied().find(|&t| t > threshold)
    }
    /// `‖P b‖` where `P` projects on the Ritz vectors with `|θ| ≤ threshold` and `b` is the start
    /// vector: the component of the start vector in the near-null space.
    pub fn start_component_below(&self, threshold: f64) -> f64 {
        let n = self.ritz.n;
        let s: f64 = (0..n)
            .filter(|&i| self.ritz.values[i].abs() <= threshold)
            .map(|i| self.ritz.vector(i)[0].powi(2))
            .fold(0.0, |a, b| a + b);
        self.start_norm * s.sqrt()
    }
    /// Number of Ritz values with `|θ| ≤ threshold`.
    pub fn count_below(&self, threshold: f64) -> usize {
        self.ritz
            .values
            .iter()
            .filter(|t| t.abs() <= threshold)
            .count()
    }
}

/// `out ← Σ_{|θ_i| ≤ threshold} ⟨start, z_i⟩ z_i`: the projection of the start vector on the
/// Ritz vectors `z_i = V s_i` with near-zero Ritz values (the near-null space of `A` seen from the
/// start vector). Unlike `start − A A^† start` from a converged solve, eigenvalues below the
/// threshold count as zero, so an inexact point's tiny tangent eigenvalue is not inverted.
/// `ws` must be the workspace of the [`lanczos`] call that produced `res`.
pub fn project_start_below<V: Vector>(
    res: &LanczosResult,
    ws: &LanczosWorkspace<V>,
    threshold: f64,
    out: &mut V,
) {
    out.set_zero();
    for i in 0..res.ritz.n {
        if res.ritz.values[i].abs() > threshold {
            continue;
        }
        // ⟨start, z_i⟩ = ‖start‖ s_i[0] (the start is the first Lanczos vector).
        let c = res.start_norm * res.ritz.vector(i)[0];
        add_ritz_vector(res, ws, i, c, out);
    }
}

/// `out ← out + c V s_i` (the Ritz vector `z_i`, scaled).
fn add_ritz_vector<V: Vector>(
    res: &LanczosResult,
    ws: &LanczosWorkspace<V>,
    i: usize,
    c: f64,
    out: &mut V,
) {
    let s = res.ritz.vector(i);
    for (j, q) in ws.basis.iter().take(res.ritz.n).enumerate() {
        out.axpy(c * s[j], q);
    }
}

/// `out ← V s_i`: the Ritz vector of Ritz value `i` (ascending order) in the original space, unit
/// norm. `ws` must be the workspace of the [`lanczos`] call that produced `res`.
pub fn ritz_vector<V: Vector>(
    res: &LanczosResult,
    ws: &LanczosWorkspace<V>,
    i: usize,
    out: &mut V,
) {
    out.set_zero();
    add_ritz_vector(res, ws, i, 1.0, out);
}

/// Run Lanczos with full reorthogonalisation (two Gram–Schmidt passes) from `start`.
pub fn lanczos<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    start: &V,
    opts: &LanczosOptions,
    ws: &mut LanczosWorkspace<V>,
) -> Result<LanczosResult, DenseError> {
    lanczos_in_subspace(op, start, opts, ws, &mut |_: &mut V| {})
}

/// Lanczos for an operator on a subspace given by its orthogonal projector `project`: every new
/// Lanczos vector is projected back after reorthogonalisation. Without it, rounding outside the
/// subspace (reintroduced by each Gram–Schmidt subtraction and divided by shrinking β's) grows
/// geometrically and the Ritz values leave the operator's range on the subspace. `start` must lie
/// in the subspace.
pub fn lanczos_in_subspace<V: Vector, A: LinearOperator<V> + ?Sized>(
    op: &mut A,
    start: &V,
    opts: &LanczosOptions,
    ws: &mut LanczosWorkspace<V>,
    project: &mut dyn FnMut(&mut V),
) -> Result<LanczosResult, DenseError> {
    let start_norm = start.norm();
    let mut alpha = Vec::with_capacity(opts.max_iter);
    let mut beta: Vec<f64> = Vec::with_capacity(opts.max_iter);
    let mut invariant = false;
    if start_norm == 0.0 || opts.max_iter == 0 {
        return Ok(LanczosResult {
            steps: 0,
            invariant: true,
            start_norm,
            ritz: tridiagonal_eig(&[], &[])?,
            residual_bounds: vec![],
        });
    }
    let LanczosWorkspace { basis, w } = ws;
    let ensure = |basis: &mut Vec<V>, j: usize| {
        if basis.len() <= j {
            basis.push(start.zeros_like());
        }
    };
    ensure(basis, 0);
    basis[0].assign(start);
    basis[0].scale(1.0 / start_norm);
    let mut tnorm = 0.0f64;
    let mut last_beta = 0.0;
    let mut stop_next = false;
    for j in 0..opts.max_iter {
        op.apply(&basis[j], w);
        let a = basis[j].dot(w);
        alpha.push(a);
        // Full reorthogonalisation against all previous vectors (twice is enough).
        for _ in 0..2 {
            for q in basis.iter().take(j + 1) {
                let c = q.dot(w);
                w.axpy(-c, q);
            }
        }
        project(w);
        let bnext = w.norm();
        tnorm = tnorm.max(a.abs() + bnext + beta.last().copied().unwrap_or(0.0));
        last_beta = bnext;
        let small = bnext <= opts.tol * tnorm.max(f64::MIN_POSITIVE);
        if stop_next {
            invariant = small;
            break;
        }
        if small {
            if opts.resolve_start && bnext > 1e3 * f64::EPSILON * tnorm && j + 1 < opts.max_iter {
                stop_next = true;
            } else {
                invariant = true;
                break;
            }
        }
        if j + 1 == opts.max_iter {
            break;
        }
        beta.push(bnext);
        ensure(basis, j + 1);
        let (head, tail) = basis.split_at_mut(j + 1);
        tail[0].assign(w);
        tail[0].scale(1.0 / bnext);
        let _ = head;
    }
    let steps = alpha.len();
    let ritz = tridiagonal_eig(&alpha, &beta[..steps - 1])?;
    let residual_bounds = (0..steps)
        .map(|i| {
            if invariant {
                0.0
            } else {
                (last_beta * ritz.vector(i)[steps - 1]).abs()
            }
        })
        .collect();
    Ok(LanczosResult {
        steps,
        invariant,
        start_norm,
        ritz,
        residual_bounds,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{matvec, psd_with_null};
    use super::*;
    use crate::dense::sym_eig;
    use crate::rng::Rng;

    /// A start vector with a part of relative size 10⁻¹² in the null space: the plain invariance
    /// test stops after one step and misses it; `resolve_start` takes the extra step and the
    /// projection recovers it to rounding.
    #[test]
    fn resolve_start_sees_a_tiny_null_component() {
        let d = 6;
        // A = diag(0, 1, 2, 3, 4, 5): e₀ spans the null space.
        let a: Vec<f64> = (0..d * d)
            .map(|k| {
                if k % (d + 1) == 0 {
                    (k / (d + 1)) as f64
                } else {
                    0.0
                }
            })
            .collect();
        let tiny = 1e-12;
        let mut b = vec![0.0; d];
        b[0] = tiny;
        b[3] = 1.0;
        for (resolve, want) in [(false, 0.0), (true, tiny)] {
            let mut ws = LanczosWorkspace::new(&b);
            let res = lanczos(
                &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
                &b,
                &LanczosOptions {
                    max_iter: d,
                    tol: 1e-10,
                    resolve_start: resolve,
                },
                &mut ws,
            )
            .unwrap();
            let mut t = vec![0.0; d];
            project_start_below(&res, &ws, 1e-6 * res.lambda_max(), &mut t);
            assert!(
                (crate::vector::norm(&t) - want).abs() <= 1e-3 * tiny,
                "resolve_start {resolve}: {t:?}"
            );
        }
    }

    /// With a subspace projector, Lanczos stays in the subspace: the Ritz values of P A P on it
    /// lie within A's spectrum there, where plain Lanczos on `P A` drifts out (rounding
    /// reintroduced by Gram–Schmidt, amplified by shrinking β's).
    #[test]
    fn lanczos_in_subspace_stays_in_it() {
        let mut rng = Rng::new(11);
        let d = 40;
        // A = I + M Mᵀ/d (eigenvalues ≥ 1), subspace = orthogonal complement of 25 random vectors.
        let mut m = vec![0.0; d * d];
        rng.fill_normal(&mut m);
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = (0..d).map(|k| m[i * d + k] * m[j * d + k]).sum::<f64>() / d as f64
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for _ in 0..25 {
            let mut z = vec![0.0; d];
            rng.fill_normal(&mut z);
            for _ in 0..2 {
                for q in &basis {
                    let c = crate::vector::dot(q, &z);
                    crate::vector::axpy(&mut z, -c, q);
                }
            }
            let n = crate::vector::norm(&z);
            z.iter_mut().for_each(|v| *v /= n);
            basis.push(z);
        }
        let project = |w: &mut Vec<f64>| {
            for _ in 0..2 {
                for q in &basis {
                    let c = crate::vector::dot(q, w);
                    crate::vector::axpy(w, -c, q);
                }
            }
        };
        let mut start = vec![0.0; d];
        rng.fill_normal(&mut start);
        project(&mut start);
        let mut ws = LanczosWorkspace::new(&start);
        let res = lanczos_in_subspace(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| {
                matvec(&a, x, o);
                project(o);
            },
            &start,
            &LanczosOptions {
                max_iter: 15,
                tol: 1e-10,
                resolve_start: false,
            },
            &mut ws,
            &mut |w: &mut Vec<f64>| project(w),
        )
        .unwrap();
        assert!(res.lambda_min() >= 1.0 - 1e-10, "{}", res.lambda_min());
    }

    #[test]
    fn lanczos_finds_extremes_and_kernel_component_of_start() {
        let mut rng = Rng::new(5);
        let d = 60;
        let (a, _, _) = psd_with_null(d, 10, 0.1, 4.0, &mut rng);
        let mut b = vec![0.0; d];
        rng.fill_normal(&mut b);
        let e = sym_eig(&a, d).unwrap();
        let res = lanczos(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &b,
            &LanczosOptions {
                max_iter: d,
                tol: 1e-10,
                resolve_start: false,
            },
            &mut LanczosWorkspace::new(&b),
        )
        .unwrap();
        // 50 distinct nonzero eigenvalues + the kernel: invariant after 51 steps in exact
        // arithmetic; in floating point the ten zero eigenvalues are ±1e-16 apart and Lanczos may
        // resolve two of them (52 steps, two Ritz values ≈ 1e-16).
        assert!(
            res.invariant && (51..=52).contains(&res.steps),
            "{} {}",
            res.steps,
            res.invariant
        );
        assert!((res.lambda_max() - 4.0).abs() < 1e-10);
        assert!((res.smallest_above(1e-8).unwrap() - 0.1).abs() < 1e-10);
        assert!((1..=2).contains(&res.count_below(1e-8)));
        let kc = res.start_component_below(1e-8);
        assert!((kc - e.kernel_component(&b, 1e-10)).abs() < 1e-10);
        // The projection vector equals the dense kernel projection of b.
        let mut pk = vec![0.0; d];
        let mut ws2 = LanczosWorkspace::new(&b);
        let res2 = lanczos(
            &mut |x: &Vec<f64>, o: &mut Vec<f64>| matvec(&a, x, o),
            &b,
            &LanczosOptions {
                max_iter: d,
                tol: 1e-10,
                resolve_start: false,
            },
            &mut ws2,
        )
        .unwrap();
        project_start_below(&res2, &ws2, 1e-8, &mut pk);
        let mut dense = vec![0.0; d];
        for i in 0..d {
            if e.values[i].abs() <= 1e-10 {
                let u = e.vector(i);
                crate::vector::axpy(&mut dense, crate::vector::dot(u, &b), u);
            }
        }
        assert!(crate::derivatives::relative_error(&pk, &dense, 1e-300) < 1e-9);
    }
}
