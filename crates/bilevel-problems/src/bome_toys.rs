//! Toy problems of the BOME paper (Liu, Ye, Wright, Stone, Liu: "BOME! Bilevel Optimization Made
//! Easy", NeurIPS 2022) with exact optima (docs/PROBLEMS.md §B): `coreset`, `non-singleton`, `minimax`.

use crate::config::{problem_config, BuildContext, BuildProblem, BuiltProblem};
use crate::error::{check_positive, check_vector, ProblemError};
use crate::wrapper::{ProblemDef, Shape};
use bilevel_core::derivatives::{GenericLowerGradient, Scalar};
use bilevel_core::NamedArray;
use serde::{Deserialize, Serialize};

/// `coreset`: choose convex weights (softmax of logits) of fixed points so that their weighted
/// mean, which the lower level reproduces exactly, is as close as possible to a target.
///
/// * points `c_1, …, c_k ∈ R²` (default `(1,3), (3,1), (−2,2), (−3,−2)`), target `y₀` (default
///   `(3, −2)`), upper `w ∈ R^k` (logits), `p = softmax(w)`, `z(w) = Σ_i p_i c_i`;
/// * `g(w, y) = ‖z(w) − y‖²` (`H = 2I`, strongly convex); `f(w, y) = 0.1‖y − y₀‖²`;
/// * `S(w) = {y*(w)}`, `y*(w) = z(w)`, intrinsic dimension 0;
/// * `φ(w) = 0.1‖z(w) − y₀‖²`, `∇φ(w) = 0.2 (diag p − p pᵀ) C (z − y₀)`, i.e.
///   `∂φ/∂w_i = 0.2 p_i ⟨c_i − z, z − y₀⟩` (C has rows `c_i`);
/// * `∇_w g = 2 (diag p − p pᵀ) C (z − y)`, so `J v = −2 (diag p − p pᵀ) C v`.
///
/// Optimum: `φ* = 0.1 dist(y₀, conv{c_i})²`. For the defaults `y₀` projects onto the hull edge
/// from `(−3,−2)` to `(3,1)` at `y* = (1.8, 0.4)` (weights 0.8 on `(3,1)`, 0.2 on `(−3,−2)`),
/// `φ* = 0.72`, reached only as logits diverge: there is no finite `x*`
/// ([`ProblemDef::reference_x_star`] is `None`). Starts in the paper's code: `w = 0`,
/// `y ∈ {(0, 3), (−3, 1), (3.5, −1)}` (the first is the default).
#[derive(Clone, Debug, PartialEq)]
pub struct Coreset {
    points: Vec<[f64; 2]>,
    target: [f64; 2],
    phi_star: f64,
}

impl Coreset {
    /// Default points `c_i`.
    pub const DEFAULT_POINTS: [[f64; 2]; 4] = [[1.0, 3.0], [3.0, 1.0], [-2.0, 2.0], [-3.0, -2.0]];
    /// Default target `y₀`.
    pub const DEFAULT_TARGET: [f64; 2] = [3.0, -2.0];
    /// Default lower start (the other starts of the paper are `(−3, 1)` and `(3.5, −1)`).
    pub const DEFAULT_Y0: [f64; 2] = [0.0, 3.0];
    /// Largest accepted number of points.
    pub const MAX_POINTS: usize = 256;

    /// Points `c_i` (1 to [`Coreset::MAX_POINTS`] of them) and target `y₀`.
    pub fn new(points: &[[f64; 2]], target: &[f64]) -> Result<Self, ProblemError> {
        if points.is_empty() || points.len() > Self::MAX_POINTS {
            return Err(ProblemError::invalid(
                "points",
                format!("must have 1 to {} points", Self::MAX_POINTS),
                points.len(),
            ));
        }
        if let Some((i, c)) = points
            .iter()
            .enumerate()
            .find(|(_, c)| !(c[0].is_finite() && c[1].is_finite()))
        {
            return Err(ProblemError::invalid(
                "points",
                format!("point {i} must have finite coordinates"),
                c,
            ));
        }
        check_vector("target", target, 2)?;
        let target = [target[0], target[1]];
        let phi_star = 0.1 * hull_distance_sq(points, target);
        Ok(Coreset {
            points: points.to_vec(),
            target,
            phi_star,
        })
    }
    /// The points `c_i`.
    pub fn points(&self) -> &[[f64; 2]] {
        &self.points
    }
    /// The target `y₀`.
    pub fn target(&self) -> [f64; 2] {
        self.target
    }
    /// `(p, z)`: the softmax weights of `w` and the weighted mean `z(w)`.
    pub fn weights_and_mean(&self, w: &[f64]) -> (Vec<f64>, [f64; 2]) {
        let mut p = vec![0.0; w.len()];
        let z = softmax_mean(&self.points, w, &mut p);
        (p, z)
    }
}

impl Default for Coreset {
    fn default() -> Self {
        Coreset::new(&Self::DEFAULT_POINTS, &Self::DEFAULT_TARGET).expect("valid defaults")
    }
}

/// `e_i = exp(w_i − max w)` into `e` (length k) and `(Σ e_i, Σ e_i c_i)`.
#[inline]
fn softmax_parts<T: Scalar>(points: &[[f64; 2]], w: &[T], mut e: Option<&mut [T]>) -> (T, [T; 2]) {
    let wmax = w.iter().fold(f64::NEG_INFINITY, |a, wi| a.max(wi.re()));
    let (mut s, mut z0, mut z1) = (T::from(0.0), T::from(0.0), T::from(0.0));
    for (i, (wi, c)) in w.iter().zip(points).enumerate() {
        let ei = (*wi - wmax).exp();
        s += ei;
        z0 += ei * c[0];
        z1 += ei * c[1];
        if let Some(e) = e.as_deref_mut() {
            e[i] = ei;
        }
    }
    (s, [z0 / s, z1 / s])
}

/// Softmax weights into `p` and the weighted mean `z = Σ p_i c_i` (no allocation).
#[inline]
fn softmax_mean(points: &[[f64; 2]], w: &[f64], p: &mut [f64]) -> [f64; 2] {
    let (s, z) = softmax_parts(points, w, Some(&mut *p));
    p.iter_mut().for_each(|pi| *pi /= s);
    z
}

/// Squared distance from `q` to the convex hull of `points` (2-D): zero inside a triangle (or on a
/// segment) of points, otherwise the smallest distance to a segment between two points.
pub(crate) fn hull_distance_sq(points: &[[f64; 2]], q: [f64; 2]) -> f64 {
    let d2 = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let seg = |a: [f64; 2], b: [f64; 2]| {
        let (ab, aq) = ([b[0] - a[0], b[1] - a[1]], [q[0] - a[0], q[1] - a[1]]);
        let l2 = ab[0] * ab[0] + ab[1] * ab[1];
        let t = if l2 > 0.0 {
            ((aq[0] * ab[0] + aq[1] * ab[1]) / l2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        d2([a[0] + t * ab[0], a[1] + t * ab[1]], q)
    };
    let cross =
        |a: [f64; 2], b: [f64; 2]| (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]);
    let k = points.len();
    let mut best = points
        .iter()
        .map(|&c| d2(c, q))
        .fold(f64::INFINITY, f64::min);
    for i in 0..k {
        for j in i + 1..k {
            best = best.min(seg(points[i], points[j]));
            for l in j + 1..k {
                let (a, b, c) = (points[i], points[j], points[l]);
                let area2 = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
                if area2 == 0.0 {
                    // Degenerate (collinear) triangle: covered by its segments.
                    continue;
                }
                let (s1, s2, s3) = (cross(a, b), cross(b, c), cross(c, a));
                let inside =
                    (s1 >= 0.0 && s2 >= 0.0 && s3 >= 0.0) || (s1 <= 0.0 && s2 <= 0.0 && s3 <= 0.0);
                if inside {
                    return 0.0;
                }
            }
        }
    }
    best
}

impl GenericLowerGradient for Coreset {
    /// `∇_y g = 2(y − z)`.
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let (_, z) = softmax_parts(&self.points, x, None);
        out[0] = (y[0] - z[0]) * 2.0;
        out[1] = (y[1] - z[1]) * 2.0;
    }
    /// `∂g/∂w_i = 2 p_i ⟨c_i − z, z − y⟩`.
    fn grad_g_x_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        let (s, z) = softmax_parts(&self.points, x, Some(&mut *out));
        let r = [z[0] - y[0], z[1] - y[1]];
        for (o, c) in out.iter_mut().zip(&self.points) {
            let pi = *o / s;
            *o = pi * (r[0] * (-z[0] + c[0]) + r[1] * (-z[1] + c[1])) * 2.0;
        }
    }
}

impl ProblemDef for Coreset {
    fn shape(&self) -> Shape {
        Shape::new("coreset", self.points.len(), 2)
    }
    fn f(&self, _x: &[f64], y: &[f64]) -> f64 {
        0.1 * ((y[0] - self.target[0]).powi(2) + (y[1] - self.target[1]).powi(2))
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        let (_, z) = softmax_parts(&self.points, x, None);
        (z[0] - y[0]).powi(2) + (z[1] - y[1]).powi(2)
    }
    fn grad_f(&self, _x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx.iter_mut().for_each(|g| *g = 0.0);
        gy[0] = 0.2 * (y[0] - self.target[0]);
        gy[1] = 0.2 * (y[1] - self.target[1]);
    }
    fn grad_g_x(&self, x: &[f64], y: &[f64], gx: &mut [f64]) {
        let z = softmax_mean(&self.points, x, gx);
        let r = [z[0] - y[0], z[1] - y[1]];
        for (o, c) in gx.iter_mut().zip(&self.points) {
            *o *= 2.0 * (r[0] * (c[0] - z[0]) + r[1] * (c[1] - z[1]));
        }
    }
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = 2.0 * v[0];
        out[1] = 2.0 * v[1];
    }
    /// `(J v)_i = −2 p_i ⟨c_i − z, v⟩`.
    fn cross_analytic(&self, x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        let z = softmax_mean(&self.points, x, out);
        for (o, c) in out.iter_mut().zip(&self.points) {
            *o *= -2.0 * (v[0] * (c[0] - z[0]) + v[1] * (c[1] - z[1]));
        }
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        out[0] = 0.2 * v[0];
        out[1] = 0.2 * v[1];
        true
    }
    /// `points` (k×2) and `target` (2).
    fn export_arrays(&self) -> Vec<NamedArray> {
        vec![
            NamedArray::matrix("points", self.points.len(), 2, self.points.concat()),
            NamedArray::vector("target", self.target.to_vec()),
        ]
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        let (_, z) = softmax_parts(&self.points, x, None);
        Some(self.f(x, &z))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        let (mut p, z) = self.weights_and_mean(x);
        let r = [z[0] - self.target[0], z[1] - self.target[1]];
        for (pi, c) in p.iter_mut().zip(&self.points) {
            *pi *= 0.2 * (r[0] * (c[0] - z[0]) + r[1] * (c[1] - z[1]));
        }
        Some(p)
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        let (_, z) = softmax_parts(&self.points, x, None);
        Some(z.to_vec())
    }
    fn intrinsic_dimension(&self) -> usize {
        0
    }
    fn reference_phi_star(&self) -> Option<f64> {
        Some(self.phi_star)
    }
}

/// `non-singleton`: the lower level leaves `y₂` free, so `S(w)` is a line and the optimistic
/// selection matters.
///
/// * `w ∈ R`, `y ∈ R²`; `g(w, y) = ½y₁² − w y₁`; `f(w, y) = ½(w − y₂)² + ½(y₁ − 1)²`;
/// * `S(w) = {y : y₁ = w}` (y₂ free), intrinsic dimension 1; `H = diag(1, 0)` is singular;
/// * optimistic selection `y*(w) = (w, w)`, `φ(w) = ½(w − 1)²`, `∇φ(w) = w − 1`;
/// * `∇_w g = −y₁`, `J v = −v₁`; the pseudoinverse formula `∇_w f − J H^† ∇_y f` at `y*` gives
///   `0 + (w − 1)` = ∇φ.
///
/// Optimum `w* = 1`, `y = (1, 1)`, `φ* = 0`. Start in the paper's code: `w = 0`, `y = (0, 0)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NonSingleton;

impl GenericLowerGradient for NonSingleton {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], y: &[T], out: &mut [T]) {
        out[0] = y[0] - x[0];
        out[1] = T::from(0.0);
    }
    fn grad_g_x_generic<T: Scalar>(&self, _x: &[T], y: &[T], out: &mut [T]) {
        out[0] = -y[0];
    }
}

impl ProblemDef for NonSingleton {
    fn shape(&self) -> Shape {
        Shape::new("non-singleton", 1, 2)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        0.5 * (x[0] - y[1]).powi(2) + 0.5 * (y[0] - 1.0).powi(2)
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        0.5 * y[0] * y[0] - x[0] * y[0]
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = x[0] - y[1];
        gy[0] = y[0] - 1.0;
        gy[1] = y[1] - x[0];
    }
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = v[0];
        out[1] = 0.0;
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = -v[0];
    }
    fn hvp_upper_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        out.copy_from_slice(v);
        true
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(0.5 * (x[0] - 1.0).powi(2))
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![x[0] - 1.0])
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![x[0], x[0]])
    }
    fn intrinsic_dimension(&self) -> usize {
        1
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        Some(vec![1.0])
    }
    fn reference_phi_star(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// `minimax`: a bilinear game, the lower level constrained to a box.
///
/// * `w ∈ R`, `y ∈ [−b, b]` (`b` = `bound`, default 10; the paper also boxes `w`, which is the
///   solvers' upper-level business); `f(w, y) = y w`, `g(w, y) = −y w`;
/// * lower argmin over the box: `y*(w) = b·sign(w)` (the whole box at `w = 0`, where the
///   optimistic choice gives `φ(0) = 0`), intrinsic dimension 0 for `w ≠ 0`;
/// * `φ(w) = b|w|`, `∇φ(w) = b·sign(w)` (`None` at 0); optimum `w* = 0`, `φ* = 0`;
/// * [`ProblemDef::project_y`] clamps y to `[−b, b]`; `H = 0`, `J v = −v`: the problem is for
///   first-order (projected) methods, implicit-differentiation formulas do not apply.
///
/// Start in the paper's code: `(w, y) = (4, 4)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimax {
    bound: f64,
}

impl Minimax {
    /// Default box half-width.
    pub const DEFAULT_BOUND: f64 = 10.0;

    /// A box `[−bound, bound]`, `bound > 0`.
    pub fn new(bound: f64) -> Result<Self, ProblemError> {
        check_positive("bound", bound)?;
        Ok(Minimax { bound })
    }
    /// The box half-width b.
    pub fn bound(&self) -> f64 {
        self.bound
    }
}

impl Default for Minimax {
    fn default() -> Self {
        Minimax {
            bound: Self::DEFAULT_BOUND,
        }
    }
}

impl GenericLowerGradient for Minimax {
    fn grad_g_y_generic<T: Scalar>(&self, x: &[T], _y: &[T], out: &mut [T]) {
        out[0] = -x[0];
    }
    fn grad_g_x_generic<T: Scalar>(&self, _x: &[T], y: &[T], out: &mut [T]) {
        out[0] = -y[0];
    }
}

impl ProblemDef for Minimax {
    fn shape(&self) -> Shape {
        Shape::new("minimax", 1, 1)
    }
    fn f(&self, x: &[f64], y: &[f64]) -> f64 {
        x[0] * y[0]
    }
    fn g(&self, x: &[f64], y: &[f64]) -> f64 {
        -x[0] * y[0]
    }
    fn grad_f(&self, x: &[f64], y: &[f64], gx: &mut [f64], gy: &mut [f64]) {
        gx[0] = y[0];
        gy[0] = x[0];
    }
    fn hvp_analytic(&self, _x: &[f64], _y: &[f64], _v: &[f64], out: &mut [f64]) {
        out[0] = 0.0;
    }
    /// The box half-width `bound`.
    fn export_arrays(&self) -> Vec<NamedArray> {
        vec![NamedArray::vector("bound", vec![self.bound])]
    }
    fn cross_analytic(&self, _x: &[f64], _y: &[f64], v: &[f64], out: &mut [f64]) {
        out[0] = -v[0];
    }
    fn reference_phi(&self, x: &[f64]) -> Option<f64> {
        Some(self.bound * x[0].abs())
    }
    fn reference_grad_phi(&self, x: &[f64]) -> Option<Vec<f64>> {
        self.reference_y(x)
    }
    fn reference_y(&self, x: &[f64]) -> Option<Vec<f64>> {
        if x[0] > 0.0 {
            Some(vec![self.bound])
        } else if x[0] < 0.0 {
            Some(vec![-self.bound])
        } else {
            None
        }
    }
    fn intrinsic_dimension(&self) -> usize {
        0
    }
    fn project_y(&self, y: &mut [f64]) {
        y.iter_mut()
            .for_each(|v| *v = v.clamp(-self.bound, self.bound));
    }
    fn reference_x_star(&self) -> Option<Vec<f64>> {
        Some(vec![0.0])
    }
    fn reference_phi_star(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// The `points` key of `coreset`: a flat list `[x₁, y₁, x₂, y₂, …]` or a list of pairs
/// `[[x₁, y₁], [x₂, y₂], …]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointList {
    /// `[[x₁, y₁], [x₂, y₂], …]`.
    Pairs(Vec<[f64; 2]>),
    /// `[x₁, y₁, x₂, y₂, …]` (even length).
    Flat(Vec<f64>),
}

impl PointList {
    /// The points as pairs; a flat list of odd length is an error naming `problem.points`.
    pub fn to_pairs(&self) -> Result<Vec<[f64; 2]>, ProblemError> {
        match self {
            PointList::Pairs(p) => Ok(p.clone()),
            PointList::Flat(v) => {
                if v.len() % 2 != 0 {
                    return Err(ProblemError::invalid(
                        "points",
                        "a flat list needs an even number of coordinates (x₁, y₁, x₂, y₂, …)",
                        v.len(),
                    ));
                }
                Ok(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
            }
        }
    }
}

problem_config! {
    /// Parameters of `coreset` ([`Coreset`]).
    CoresetConfig {
        /// Points `c_i` in R², flat or as pairs (default `[[1, 3], [3, 1], [-2, 2], [-3, -2]]`).
        points: PointList,
        /// Target `y₀`, 2 entries (default `[3.0, -2.0]`).
        target: Vec<f64>,
    }
}

impl BuildProblem for CoresetConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let points = match &self.points {
            Some(p) => p.to_pairs()?,
            None => Coreset::DEFAULT_POINTS.to_vec(),
        };
        let target = self.target.as_deref().unwrap_or(&Coreset::DEFAULT_TARGET);
        let def = Coreset::new(&points, target)?;
        let k = def.dim_x();
        self.finish(def, vec![0.0; k], Coreset::DEFAULT_Y0.to_vec())
    }
}

problem_config! {
    /// Parameters of `non-singleton` ([`NonSingleton`]); only the common keys.
    NonSingletonConfig {}
}

impl BuildProblem for NonSingletonConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        self.finish(NonSingleton, vec![0.0], vec![0.0, 0.0])
    }
}

problem_config! {
    /// Parameters of `minimax` ([`Minimax`]).
    MinimaxConfig {
        /// Half-width b > 0 of the lower box `[−b, b]` (default 10).
        bound: f64,
    }
}

impl BuildProblem for MinimaxConfig {
    fn build(&self, _: &BuildContext) -> Result<BuiltProblem, ProblemError> {
        let bound = self.bound.unwrap_or(Minimax::DEFAULT_BOUND);
        self.finish(Minimax::new(bound)?, vec![4.0], vec![4.0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        check_grad_phi, check_gradients, check_products, check_pseudoinverse, check_references,
        check_stationary_selection, wrap,
    };
    use crate::wrapper::{Derivatives, WithDerivatives};
    use bilevel_core::derivatives::relative_error;
    use bilevel_core::Bilevel;

    #[test]
    fn coreset_products_gradients_references() {
        let p = Coreset::default();
        check_products(&p, 11, 8, 1.5);
        check_gradients(&p, 12, 8, 1.5);
        for w in [
            [0.0; 4],
            [0.3, -1.0, 0.7, 2.0],
            [-2.0, 1.5, 0.1, -0.4],
            [5.0, -5.0, 0.0, 1.0],
        ] {
            check_references(&p, &w);
            let c = check_pseudoinverse(&p, &w);
            assert_eq!(c.eigenvalues, vec![2.0, 2.0]);
        }
        let q = Coreset::new(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &[2.0, 2.0]).unwrap();
        check_products(&q, 13, 4, 1.0);
        check_references(&q, &[0.2, -0.3, 0.5]);
        check_pseudoinverse(&q, &[0.2, -0.3, 0.5]);
    }

    #[test]
    fn coreset_reference_values_and_limit() {
        let p = Coreset::default();
        // w = 0: uniform weights, z = mean of the points = (−0.25, 1).
        let y = p.reference_y(&[0.0; 4]).unwrap();
        assert!(relative_error(&y, &[-0.25, 1.0], 1.0) < 1e-15, "{y:?}");
        let phi0 = 0.1 * ((-0.25f64 - 3.0).powi(2) + (1.0f64 + 2.0).powi(2));
        assert!((p.reference_phi(&[0.0; 4]).unwrap() - phi0).abs() < 1e-15);
        // Logits pushing weight 0.8 on (3, 1) and 0.2 on (−3, −2): p → (0, 0.8, 0, 0.2).
        for big in [10.0, 20.0, 30.0] {
            let w = [-big, 0.8f64.ln(), -big, 0.2f64.ln()];
            let (pw, z) = p.weights_and_mean(&w);
            let err = 3.0 * f64::exp(-big);
            assert!(
                relative_error(&pw, &[0.0, 0.8, 0.0, 0.2], 1.0) < err,
                "{pw:?}"
            );
            assert!(relative_error(&z, &[1.8, 0.4], 1.0) < 10.0 * err, "{z:?}");
            let phi = p.reference_phi(&w).unwrap();
            assert!((phi - 0.72).abs() < 10.0 * err, "φ = {phi}");
            assert!(phi >= 0.72 - 1e-15, "0.72 is the infimum");
            // The limit point is stationary: the active weights' partials vanish and the inactive
            // ones are O(p_i).
            let g = p.reference_grad_phi(&w).unwrap();
            assert!(bilevel_core::vector::norm(&g) < 10.0 * err, "{g:?}");
        }
        let w = [-30.0, 0.8f64.ln(), -30.0, 0.2f64.ln()];
        assert!((p.reference_phi(&w).unwrap() - 0.72).abs() < 1e-11);
        assert_eq!(p.reference_phi_star(), Some(0.1 * 7.2));
        assert!((p.reference_phi_star().unwrap() - 0.72).abs() < 1e-15);
        assert_eq!(p.reference_x_star(), None);
        assert_eq!(p.intrinsic_dimension(), 0);
        // Away from the limit φ is larger.
        let mut rng = bilevel_core::rng::Rng::new(5);
        for _ in 0..20 {
            let w: Vec<f64> = (0..4).map(|_| 3.0 * rng.normal()).collect();
            assert!(p.reference_phi(&w).unwrap() > 0.72);
        }
    }

    #[test]
    fn coreset_lower_gradient_descent_from_the_paper_starts() {
        // From each of the paper's starts, GD on g (step ¼, H = 2I) reaches y*(w) = z(w).
        let p = WithDerivatives::analytic(Coreset::default());
        let w = [0.5, -0.2, 0.1, 0.0];
        let ys = p.reference_y(&w).unwrap();
        for start in [[0.0, 3.0], [-3.0, 1.0], [3.5, -1.0]] {
            let mut y = start.to_vec();
            let mut gy = vec![0.0; 2];
            for _ in 0..60 {
                p.grad_g_y(&w, &y, &mut gy);
                y.iter_mut().zip(&gy).for_each(|(a, g)| *a -= 0.25 * g);
            }
            assert!(relative_error(&y, &ys, 1.0) < 1e-15, "{y:?} vs {ys:?}");
        }
    }

    #[test]
    fn hull_distance() {
        let pts = Coreset::DEFAULT_POINTS;
        assert!((hull_distance_sq(&pts, [3.0, -2.0]) - 7.2).abs() < 1e-14);
        assert_eq!(hull_distance_sq(&pts, [0.0, 0.0]), 0.0);
        assert_eq!(hull_distance_sq(&pts, [1.0, 3.0]), 0.0);
        assert!((hull_distance_sq(&[[0.0, 0.0]], [3.0, 4.0]) - 25.0).abs() < 1e-15);
        assert!((hull_distance_sq(&[[0.0, 0.0], [2.0, 0.0]], [1.0, 1.0]) - 1.0).abs() < 1e-15);
        // Collinear points, target on their line but beyond them.
        let line = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]];
        assert!((hull_distance_sq(&line, [5.0, 0.0]) - 9.0).abs() < 1e-15);
        assert_eq!(hull_distance_sq(&line, [1.5, 0.0]), 0.0);
        let c = Coreset::new(&pts, &[0.0, 0.0]).unwrap();
        assert_eq!(c.reference_phi_star(), Some(0.0));
    }

    #[test]
    fn coreset_is_validated() {
        assert_eq!(
            Coreset::new(&[], &[0.0, 0.0]).unwrap_err().to_string(),
            "problem.points: must have 1 to 256 points (got 0)"
        );
        assert!(Coreset::new(&[[f64::NAN, 0.0]], &[0.0, 0.0])
            .unwrap_err()
            .to_string()
            .starts_with("problem.points: point 0"));
        assert_eq!(
            Coreset::new(&[[0.0, 0.0]], &[0.0]).unwrap_err().to_string(),
            "problem.target: expected 2 entries, got 1"
        );
    }

    #[test]
    fn non_singleton_products_gradients_references() {
        let p = NonSingleton;
        check_products(&p, 21, 8, 1.5);
        check_gradients(&p, 22, 8, 1.5);
        for w in [0.0, 1.0, -2.5, 0.7, 3.0] {
            check_grad_phi(&p, &[w]);
            // min g = −w²/2 ≠ 0: the stationary variant of the selection check.
            check_stationary_selection(&p, &[w]);
            let c = check_pseudoinverse(&p, &[w]);
            assert_eq!(c.eigenvalues, vec![0.0, 1.0]);
            assert_eq!(p.reference_grad_phi(&[w]), Some(vec![w - 1.0]));
            assert_eq!(p.reference_y(&[w]), Some(vec![w, w]));
            assert_eq!(p.reference_phi(&[w]), Some(0.5 * (w - 1.0) * (w - 1.0)));
            // Every y = (w, t) is in S(w) and the optimistic one is t = w.
            for t in [-1.0, 0.0, 2.0] {
                assert_eq!(p.g(&[w], &[w, t]), -0.5 * w * w);
                assert!(p.f(&[w], &[w, t]) >= p.f(&[w], &[w, w]));
            }
        }
        assert_eq!(p.reference_x_star(), Some(vec![1.0]));
        assert_eq!(p.reference_phi_star(), Some(0.0));
        assert_eq!(p.f(&[1.0], &[1.0, 1.0]), 0.0);
        assert_eq!(p.intrinsic_dimension(), 1);
    }

    #[test]
    fn non_singleton_wrong_selection_is_flagged() {
        // At y = (w, 0) ∈ S(w) (not the optimistic one) ∇_y f has a kernel part.
        let w = [0.5];
        let c = crate::testing::pinv_hypergrad(
            &wrap(&NonSingleton, Derivatives::Analytic),
            &w,
            &[0.5, 0.0],
        );
        assert!(c.kernel_component > 0.1);
    }

    #[test]
    fn minimax_products_gradients_references() {
        let p = Minimax::default();
        // H = 0 and J = −1: the product checks hold trivially (exact zeros); the pseudoinverse
        // and stationarity checks do not apply (the minimiser is on the box boundary, where
        // ∇_y g = −w ≠ 0), so only ∇φ vs finite differences of φ is checked.
        check_products(&p, 31, 6, 3.0);
        check_gradients(&p, 32, 6, 3.0);
        for w in [4.0, -0.5, 0.01, -7.0] {
            check_grad_phi(&p, &[w]);
            assert_eq!(p.reference_phi(&[w]), Some(10.0 * f64::abs(w)));
            assert_eq!(p.reference_grad_phi(&[w]), Some(vec![10.0 * w.signum()]));
            let y = p.reference_y(&[w]).unwrap();
            assert_eq!(y, vec![10.0 * w.signum()]);
            // y* minimises g over the box.
            for t in [-10.0, -3.0, 0.0, 5.0, 10.0] {
                assert!(p.g(&[w], &y) <= p.g(&[w], &[t]));
            }
            assert_eq!(p.f(&[w], &y), 10.0 * w.abs());
        }
        assert_eq!(p.reference_grad_phi(&[0.0]), None);
        assert_eq!(p.reference_y(&[0.0]), None);
        assert_eq!(p.reference_phi(&[0.0]), Some(0.0));
        assert_eq!(p.reference_x_star(), Some(vec![0.0]));
        assert_eq!(p.reference_phi_star(), Some(0.0));
    }

    #[test]
    fn minimax_projection_clamps_to_the_box() {
        let p = WithDerivatives::analytic(Minimax::default());
        for (y, expect) in [(12.0, 10.0), (-40.0, -10.0), (3.5, 3.5), (10.0, 10.0)] {
            let mut v = vec![y];
            p.project_y(&mut v);
            assert_eq!(v, vec![expect]);
        }
        let q = WithDerivatives::analytic(Minimax::new(2.0).unwrap());
        let mut v = vec![4.0];
        q.project_y(&mut v);
        assert_eq!(v, vec![2.0]);
        assert_eq!(q.reference_phi(&[-3.0]), Some(6.0));
        // Projected gradient descent on g from the paper's start reaches y* = 10 sign(w).
        let (w, mut y, mut gy) = ([4.0], vec![4.0], vec![0.0]);
        for _ in 0..10 {
            p.grad_g_y(&w, &y, &mut gy);
            y[0] -= 0.5 * gy[0];
            p.project_y(&mut y);
        }
        assert_eq!(y, vec![10.0]);
        assert_eq!(
            Minimax::new(0.0).unwrap_err().to_string(),
            "problem.bound: must be positive (got 0.0)"
        );
        assert!(Minimax::new(-1.0).is_err());
        // The projection is the identity for unconstrained problems.
        let c = WithDerivatives::analytic(NonSingleton);
        let mut v = vec![1e9, -1e9];
        c.project_y(&mut v);
        assert_eq!(v, vec![1e9, -1e9]);
    }
}
