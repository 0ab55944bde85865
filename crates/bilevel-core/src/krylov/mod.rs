//! Krylov solvers for symmetric (possibly singular) systems `(H + γI) v = b`, generic over
//! [`Vector`](crate::vector::Vector).
//!
//! | solver | `b ∈ range H` | `b` has a `ker H` component |
//! |---|---|---|
//! | [`cg`] from `v₀ = 0` | converges to `H^† b` | cannot converge: reports `Stagnated` / `IndefiniteDetected` |
//! | [`minres`] from 0 | `H^† b` | least-squares solution, corrected to the minimum-norm one (`H^† b`), status `LeastSquares` |
//! | [`neumann`] `η Σ_{q<Q}(I − ηH)^q b` | `H^† b` | kernel part grows linearly in Q |
//!
//! [`lanczos`] gives Ritz values (extreme eigenvalues) and the near-null space.
//! Every solver takes a preallocated workspace and allocates nothing while iterating.
//!
//! ```
//! use bilevel_core::krylov::{minres, KrylovOptions, KrylovStatus, MinresWorkspace};
//! // H = diag(2, 1, 0) is singular; b = (4, 3, 0) lies in its range, so H^† b = (2, 3, 0).
//! let h = [2.0, 1.0, 0.0];
//! let mut op = |v: &Vec<f64>, out: &mut Vec<f64>| {
//!     for i in 0..3 {
//!         out[i] = h[i] * v[i];
//!     }
//! };
//! let b = vec![4.0, 3.0, 0.0];
//! let mut v = vec![0.0; 3];
//! let info = minres(&mut op, &b, &mut v, &KrylovOptions::default(), &mut MinresWorkspace::new(&b));
//! assert_eq!(info.status, KrylovStatus::Converged);
//! assert!((v[0] - 2.0).abs() < 1e-12 && (v[1] - 3.0).abs() < 1e-12 && v[2] == 0.0);
//!
//! // With a kernel component, b = (4, 3, 1) is not in range H: MINRES says so and returns the
//! // minimum-norm least-squares solution, with residual ‖P_ker b‖ = 1.
//! let b = vec![4.0, 3.0, 1.0];
//! let info = minres(&mut op, &b, &mut v, &KrylovOptions::default(), &mut MinresWorkspace::new(&b));
//! assert_eq!(info.status, KrylovStatus::LeastSquares);
//! assert!((info.relative_residual - 1.0 / 26f64.sqrt()).abs() < 1e-8);
//! assert!((v[0] - 2.0).abs() < 1e-6 && (v[1] - 3.0).abs() < 1e-6 && v[2].abs() < 1e-6);
//! ```

mod cg;
mod lanczos;
mod minres;
mod neumann;
#[cfg(test)]
mod proptests;

pub use cg::{cg, CgWorkspace};
pub use lanczos::{
    lanczos, lanczos_in_subspace, project_start_below, ritz_vector, LanczosOptions, LanczosResult,
    LanczosWorkspace,
};
pub use minres::{minres, MinresWorkspace};
pub use neumann::{neumann, NeumannWorkspace};

use serde::{Deserialize, Serialize};

/// A symmetric linear operator `out ← A x`.
pub trait LinearOperator<V> {
    /// `out ← A x`.
    fn apply(&mut self, x: &V, out: &mut V);
}

impl<V, F: FnMut(&V, &mut V)> LinearOperator<V> for F {
    fn apply(&mut self, x: &V, out: &mut V) {
        self(x, out)
    }
}

/// Why a Krylov solver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KrylovStatus {
    /// `‖b − A v‖ ≤ rtol ‖b‖`.
    Converged,
    /// The system is inconsistent (`b` has a component in `ker A`); a least-squares solution
    /// (`‖A r‖ ≤ rtol ‖A‖ ‖r‖`) was reached and, for MINRES, corrected to minimum norm.
    LeastSquares,
    /// The residual stopped decreasing (typically: `b` has a component in `ker A`).
    Stagnated,
    /// CG met a direction with `pᵀ A p ≤ 0` (relative to `‖A‖‖p‖²`): `A` is indefinite or
    /// singular along the search direction.
    IndefiniteDetected,
    /// The iteration grew without bound (Neumann with `η > 2/λ_max`).
    Diverged,
    /// The iteration limit was reached first.
    MaxIterations,
}

impl KrylovStatus {
    /// `true` for `Converged` and `LeastSquares`.
    pub fn is_success(&self) -> bool {
        matches!(self, KrylovStatus::Converged | KrylovStatus::LeastSquares)
    }
}

/// Stopping rules shared by the solvers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KrylovOptions {
    /// Iteration limit.
    pub max_iter: usize,
    /// Relative residual tolerance `‖b − A v‖ / ‖b‖`.
    pub rtol: f64,
    /// Shift γ ≥ 0: solve `(H + γ I) v = b`.
    pub shift: f64,
    /// Stagnation window: stop when the best residual has not dropped by 1% in this many
    /// iterations (0 disables).
    pub stagnation_window: usize,
}

impl Default for KrylovOptions {
    fn default() -> Self {
        KrylovOptions {
            max_iter: 200,
            rtol: 1e-10,
            shift: 0.0,
            stagnation_window: 25,
        }
    }
}

/// What a solve achieved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KrylovInfo {
    /// Iterations performed.
    pub iterations: usize,
    /// Applications of the operator.
    pub operator_applications: usize,
    /// Final `‖b − A v‖ / ‖b‖` (recursively updated; exact for Neumann).
    pub relative_residual: f64,
    /// Why it stopped.
    pub status: KrylovStatus,
}

/// Tracks the best residual and reports stagnation.
#[derive(Clone, Copy, Debug)]
struct StagnationTracker {
    best: f64,
    since: usize,
    window: usize,
}

impl StagnationTracker {
    fn new(window: usize) -> Self {
        StagnationTracker {
            best: f64::INFINITY,
            since: 0,
            window,
        }
    }
    /// Feed a residual; `true` when it has not improved by 1% for `window` iterations.
    fn stagnated(&mut self, r: f64) -> bool {
        if r < 0.99 * self.best {
            self.best = r;
            self.since = 0;
            false
        } else {
            self.since += 1;
            self.window > 0 && self.since >= self.window
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Random PSD test matrices with a known null space.
    use crate::rng::Rng;

    /// A random symmetric PSD matrix `Q diag(λ) Qᵀ` (row-major) with `null_dim` zero eigenvalues
    /// and the rest log-spaced in `[mu, l]`; also returns `Q` (column-major) and `λ`.
    pub fn psd_with_null(
        d: usize,
        null_dim: usize,
        mu: f64,
        l: f64,
        rng: &mut Rng,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        // Orthonormal Q by modified Gram-Schmidt (twice) on Gaussian columns.
        let mut q = vec![0.0; d * d];
        rng.fill_normal(&mut q);
        for j in 0..d {
            for _ in 0..2 {
                for k in 0..j {
                    let (a, b) = q.split_at_mut(j * d);
                    let qk = &a[k * d..(k + 1) * d];
                    let qj = &mut b[..d];
                    let c = crate::vector::dot(qk, qj);
                    crate::vector::axpy(qj, -c, qk);
                }
            }
            let col = &mut q[j * d..(j + 1) * d];
            let n = crate::vector::norm(col);
            col.iter_mut().for_each(|v| *v /= n);
        }
        let r = d - null_dim;
        let lam: Vec<f64> = (0..d)
            .map(|i| {
                if i < null_dim {
                    0.0
                } else if r == 1 {
                    l
                } else {
                    let t = (i - null_dim) as f64 / (r - 1) as f64;
                    (mu.ln() + t * (l.ln() - mu.ln())).exp()
                }
            })
            .collect();
        let mut a = vec![0.0; d * d];
        for k in null_dim..d {
            let qk = &q[k * d..(k + 1) * d];
            for i in 0..d {
                let s = lam[k] * qk[i];
                for j in 0..d {
                    a[i * d + j] += s * qk[j];
                }
            }
        }
        (a, q, lam)
    }

    /// `out = A x` for row-major dense `A`.
    pub fn matvec(a: &[f64], x: &[f64], out: &mut [f64]) {
        let d = x.len();
        for (i, o) in out.iter_mut().enumerate() {
            *o = crate::vector::dot(&a[i * d..(i + 1) * d], x);
        }
    }
}
