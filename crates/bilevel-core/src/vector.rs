//! The vector-space abstraction every Krylov solver and bilevel algorithm is written against.
//!
//! Algorithms need only `dot`, `axpy`, `scale` and copies, so the same CG/MINRES/Lanczos code runs
//! on `Vec<f64>` today and on model parameters held elsewhere (a GPU) later.

/// A real inner-product space with in-place BLAS-1 operations.
///
/// Implementations must not allocate in any method except [`Vector::zeros_like`] (and `Clone`),
/// which solvers call only when they set up their workspaces.
pub trait Vector: Clone {
    /// Euclidean inner product `⟨self, other⟩`.
    fn dot(&self, other: &Self) -> f64;
    /// `self ← self + alpha · x`.
    fn axpy(&mut self, alpha: f64, x: &Self);
    /// `self ← alpha · self`.
    fn scale(&mut self, alpha: f64);
    /// `self ← x + beta · self` (the CG direction update).
    fn xpby(&mut self, x: &Self, beta: f64) {
        self.scale(beta);
        self.axpy(1.0, x);
    }
    /// `self ← other` (same dimension).
    fn assign(&mut self, other: &Self);
    /// `self ← 0`.
    fn set_zero(&mut self) {
        self.scale(0.0);
    }
    /// A zero vector of the same dimension (allocates; call outside loops).
    fn zeros_like(&self) -> Self;
    /// Dimension.
    fn dim(&self) -> usize;
    /// `true` when every entry is finite.
    fn is_finite(&self) -> bool;
    /// Overwrite the entries, in order, with successive values of `next` (used for random
    /// sketches; host-side generation, then a copy, for device-resident vectors).
    fn fill_with(&mut self, next: &mut dyn FnMut() -> f64);
    /// Euclidean norm `‖self‖₂`.
    fn norm(&self) -> f64 {
        self.dot(self).sqrt()
    }
}

impl Vector for Vec<f64> {
    #[inline]
    fn dot(&self, other: &Self) -> f64 {
        dot(self, other)
    }
    #[inline]
    fn axpy(&mut self, alpha: f64, x: &Self) {
        axpy(self, alpha, x)
    }
    #[inline]
    fn scale(&mut self, alpha: f64) {
        self.iter_mut().for_each(|v| *v *= alpha);
    }
    #[inline]
    fn xpby(&mut self, x: &Self, beta: f64) {
        debug_assert_eq!(self.len(), x.len());
        self.iter_mut()
            .zip(x)
            .for_each(|(s, &xi)| *s = xi + beta * *s);
    }
    #[inline]
    fn assign(&mut self, other: &Self) {
        self.copy_from_slice(other);
    }
    #[inline]
    fn set_zero(&mut self) {
        self.iter_mut().for_each(|v| *v = 0.0);
    }
    fn zeros_like(&self) -> Self {
        vec![0.0; self.len()]
    }
    fn dim(&self) -> usize {
        self.len()
    }
    fn is_finite(&self) -> bool {
        self.iter().all(|v| v.is_finite())
    }
    fn fill_with(&mut self, next: &mut dyn FnMut() -> f64) {
        self.iter_mut().for_each(|v| *v = next());
    }
    fn norm(&self) -> f64 {
        norm(self)
    }
}

/// `⟨a, b⟩` on slices (four accumulators so the compiler vectorises it).
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y ← y + alpha · x` on slices.
#[inline]
pub fn axpy(y: &mut [f64], alpha: f64, x: &[f64]) {
    debug_assert_eq!(y.len(), x.len());
    y.iter_mut().zip(x).for_each(|(yi, &xi)| *yi += alpha * xi);
}

/// `‖a‖₂` on slices, computed without overflow for moderate values.
#[inline]
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blas1_matches_definitions() {
        let a = vec![1.0, -2.0, 3.0, 0.5, 7.0];
        let b = vec![2.0, 1.0, -1.0, 4.0, 0.25];
        assert_eq!(a.dot(&b), 2.0 - 2.0 - 3.0 + 2.0 + 1.75);
        let mut c = a.clone();
        c.axpy(2.0, &b);
        assert_eq!(c, vec![5.0, 0.0, 1.0, 8.5, 7.5]);
        let mut d = a.clone();
        d.xpby(&b, -1.0);
        assert_eq!(d, vec![1.0, 3.0, -4.0, 3.5, -6.75]);
        assert!((a.norm() - (1.0f64 + 4.0 + 9.0 + 0.25 + 49.0).sqrt()).abs() < 1e-15);
        assert!(a.is_finite());
        assert!(!vec![1.0, f64::NAN].is_finite());
    }
}
