//! Products of a row block with very few right-hand sides (`k ≤` [`MAX_K`]: binary logistic
//! regression, its HVP pair `[y v]`, the over-parameterised regression), where a general GEMM's
//! dispatch and packing cost more than the arithmetic:
//!
//! * [`forward`]: `z_iq = ⟨a_i, r_q⟩` for each row and each column of `R` (from `Rᵀ`, `k × p`),
//!   8 independent lanes per dot product;
//! * [`backward`]: `Outᵀ_q += g_iq a_i` (`Outᵀ`: `k × p`), one axpy per row and column;
//! * [`forward_indexed`], [`backward_indexed`]: the same on the rows `a_{idx[b]}` of a minibatch
//!   (any indices, repeats allowed), read in place instead of gathered.
//!
//! On x86-64 with AVX2 and FMA (detected at run time) explicit 256-bit fused multiply-add
//! kernels run (LLVM emits `vzeroupper` on return); elsewhere portable loops over 8-lane chunks.

/// Largest number of right-hand sides handled here.
pub const MAX_K: usize = 4;

#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn dot<const FMA: bool>(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] = madd::<FMA>(x[l], y[l], acc[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        s = madd::<FMA>(*x, *y, s);
    }
    s
}

#[inline(always)]
fn axpy<const FMA: bool>(out: &mut [f64], s: f64, a: &[f64]) {
    let mut oc = out.chunks_exact_mut(8);
    let mut ac = a.chunks_exact(8);
    for (o, x) in (&mut oc).zip(&mut ac) {
        for l in 0..8 {
            o[l] = madd::<FMA>(s, x[l], o[l]);
        }
    }
    for (o, x) in oc.into_remainder().iter_mut().zip(ac.remainder()) {
        *o = madd::<FMA>(s, *x, *o);
    }
}

/// The rows a kernel reads: a contiguous block, or the rows of a matrix at given indices.
trait RowSet<'a>: Copy {
    /// Number of rows.
    fn count(self) -> usize;
    /// Row `b` (`p` entries).
    fn row(self, b: usize) -> &'a [f64];
}

/// Consecutive rows of a row-major block.
#[derive(Clone, Copy)]
struct Block<'a> {
    a: &'a [f64],
    p: usize,
}

impl<'a> RowSet<'a> for Block<'a> {
    #[inline(always)]
    fn count(self) -> usize {
        self.a.len() / self.p
    }
    #[inline(always)]
    fn row(self, b: usize) -> &'a [f64] {
        &self.a[b * self.p..(b + 1) * self.p]
    }
}

/// Rows `idx[b]` of a row-major matrix (any order, repeats allowed).
#[derive(Clone, Copy)]
struct Gather<'a> {
    a: &'a [f64],
    p: usize,
    idx: &'a [usize],
}

impl<'a> RowSet<'a> for Gather<'a> {
    #[inline(always)]
    fn count(self) -> usize {
        self.idx.len()
    }
    #[inline(always)]
    fn row(self, b: usize) -> &'a [f64] {
        let i = self.idx[b];
        &self.a[i * self.p..(i + 1) * self.p]
    }
}

#[inline(always)]
fn forward_body<'a, const FMA: bool>(
    rows: impl RowSet<'a>,
    p: usize,
    rt: &[f64],
    k: usize,
    z: &mut [f64],
) {
    for (b, zi) in z.chunks_exact_mut(k).take(rows.count()).enumerate() {
        let ai = rows.row(b);
        for (q, zq) in zi.iter_mut().enumerate() {
            *zq = dot::<FMA>(ai, &rt[q * p..(q + 1) * p]);
        }
    }
}

#[inline(always)]
fn backward_body<'a, const FMA: bool>(
    rows: impl RowSet<'a>,
    p: usize,
    g: &[f64],
    k: usize,
    out_t: &mut [f64],
) {
    for (b, gi) in g.chunks_exact(k).take(rows.count()).enumerate() {
        let ai = rows.row(b);
        for (q, &s) in gi.iter().enumerate() {
            axpy::<FMA>(&mut out_t[q * p..(q + 1) * p], s, ai);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The same kernels with explicit AVX2 + FMA intrinsics (LLVM's auto-vectoriser paired the
    //! lanes of the portable code into 128-bit shuffles).
    use std::arch::x86_64::*;

    /// `Σ a_j b_j` with two 4-lane accumulators.
    #[target_feature(enable = "avx2,fma")]
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let n8 = n / 8 * 8;
        let mut s0 = _mm256_setzero_pd();
        let mut s1 = _mm256_setzero_pd();
        let mut j = 0;
        while j < n8 {
            let (x, y) = (&a[j..j + 8], &b[j..j + 8]);
            // SAFETY: `x` and `y` have 8 entries, so both 4-entry loads are in bounds.
            unsafe {
                s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x.as_ptr()), _mm256_loadu_pd(y.as_ptr()), s0);
                s1 = _mm256_fmadd_pd(
                    _mm256_loadu_pd(x.as_ptr().add(4)),
                    _mm256_loadu_pd(y.as_ptr().add(4)),
                    s1,
                );
            }
            j += 8;
        }
        let s = _mm256_add_pd(s0, s1);
        let hi = _mm256_extractf128_pd(s, 1);
        let lo = _mm256_castpd256_pd128(s);
        let pair = _mm_add_pd(lo, hi);
        let mut t = _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
        for jj in n8..n {
            t = a[jj].mul_add(b[jj], t);
        }
        t
    }

    /// `out ← out + s a`.
    #[target_feature(enable = "avx2,fma")]
    fn axpy(out: &mut [f64], s: f64, a: &[f64]) {
        let n = out.len().min(a.len());
        let n4 = n / 4 * 4;
        let sv = _mm256_set1_pd(s);
        let mut j = 0;
        while j < n4 {
            let (o, x) = (&mut out[j..j + 4], &a[j..j + 4]);
            // SAFETY: `o` and `x` have 4 entries: the loads and the store are in bounds.
            unsafe {
                let r =
                    _mm256_fmadd_pd(sv, _mm256_loadu_pd(x.as_ptr()), _mm256_loadu_pd(o.as_ptr()));
                _mm256_storeu_pd(o.as_mut_ptr(), r);
            }
            j += 4;
        }
        for jj in n4..n {
            out[jj] = s.mul_add(a[jj], out[jj]);
        }
    }

    /// Horizontal sums of four vectors: `[Σ v0, Σ v1, Σ v2, Σ v3]`.
    #[target_feature(enable = "avx2,fma")]
    fn hsum4(v0: __m256d, v1: __m256d, v2: __m256d, v3: __m256d) -> __m256d {
        // [v0₀+v0₁, v1₀+v1₁, v0₂+v0₃, v1₂+v1₃] and likewise for v2, v3.
        let a = _mm256_hadd_pd(v0, v1);
        let b = _mm256_hadd_pd(v2, v3);
        // [a₀ a₁ b₂ b₃] + [a₂ a₃ b₀ b₁].
        let lo = _mm256_blend_pd(a, b, 0b1100);
        let hi = _mm256_permute2f128_pd(a, b, 0x21);
        _mm256_add_pd(lo, hi)
    }

    /// `⟨a_r, c⟩` for four rows `a_r` (each `c.len()` entries) and one vector c, two
    /// accumulators per row (8 independent chains).
    #[target_feature(enable = "avx2,fma")]
    fn dot4(a: [&[f64]; 4], c: &[f64]) -> [f64; 4] {
        let n = c.len();
        let n8 = n / 8 * 8;
        let mut s = [_mm256_setzero_pd(); 8];
        let mut j = 0;
        while j < n8 {
            let cj = &c[j..j + 8];
            let rows = [
                &a[0][j..j + 8],
                &a[1][j..j + 8],
                &a[2][j..j + 8],
                &a[3][j..j + 8],
            ];
            // SAFETY: every slice above has 8 entries: the 4-entry loads at 0 and 4 are in
            // bounds.
            unsafe {
                let c0 = _mm256_loadu_pd(cj.as_ptr());
                let c1 = _mm256_loadu_pd(cj.as_ptr().add(4));
                for (r, row) in rows.iter().enumerate() {
                    s[2 * r] = _mm256_fmadd_pd(_mm256_loadu_pd(row.as_ptr()), c0, s[2 * r]);
                    s[2 * r + 1] =
                        _mm256_fmadd_pd(_mm256_loadu_pd(row.as_ptr().add(4)), c1, s[2 * r + 1]);
                }
            }
            j += 8;
        }
        let v = hsum4(
            _mm256_add_pd(s[0], s[1]),
            _mm256_add_pd(s[2], s[3]),
            _mm256_add_pd(s[4], s[5]),
            _mm256_add_pd(s[6], s[7]),
        );
        let mut out = [0.0; 4];
        // SAFETY: `out` has 4 entries.
        unsafe { _mm256_storeu_pd(out.as_mut_ptr(), v) };
        for (r, o) in out.iter_mut().enumerate() {
            for jj in n8..n {
                *o = a[r][jj].mul_add(c[jj], *o);
            }
        }
        out
    }

    /// `out ← out + Σ_r s_r a_r` over four rows.
    #[target_feature(enable = "avx2,fma")]
    fn axpy4(out: &mut [f64], s: [f64; 4], a: [&[f64]; 4]) {
        let n = out.len();
        let n4 = n / 4 * 4;
        let sv = [
            _mm256_set1_pd(s[0]),
            _mm256_set1_pd(s[1]),
            _mm256_set1_pd(s[2]),
            _mm256_set1_pd(s[3]),
        ];
        let mut j = 0;
        while j < n4 {
            let o = &mut out[j..j + 4];
            let rows = [
                &a[0][j..j + 4],
                &a[1][j..j + 4],
                &a[2][j..j + 4],
                &a[3][j..j + 4],
            ];
            // SAFETY: every slice above has 4 entries: the loads and the store are in bounds.
            unsafe {
                let mut acc = _mm256_loadu_pd(o.as_ptr());
                for (r, row) in rows.iter().enumerate() {
                    acc = _mm256_fmadd_pd(sv[r], _mm256_loadu_pd(row.as_ptr()), acc);
                }
                _mm256_storeu_pd(o.as_mut_ptr(), acc);
            }
            j += 4;
        }
        for jj in n4..n {
            let mut t = out[jj];
            for r in 0..4 {
                t = s[r].mul_add(a[r][jj], t);
            }
            out[jj] = t;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn forward<'a>(
        a: impl super::RowSet<'a>,
        p: usize,
        rt: &[f64],
        k: usize,
        z: &mut [f64],
    ) {
        let rows = a.count();
        let mut i = 0;
        while i + 4 <= rows {
            let ar = [a.row(i), a.row(i + 1), a.row(i + 2), a.row(i + 3)];
            for q in 0..k {
                let d = dot4(ar, &rt[q * p..(q + 1) * p]);
                for (r, dr) in d.iter().enumerate() {
                    z[(i + r) * k + q] = *dr;
                }
            }
            i += 4;
        }
        for (b, zi) in z.chunks_exact_mut(k).enumerate().take(rows).skip(i) {
            let ai = a.row(b);
            for (q, zq) in zi.iter_mut().enumerate() {
                *zq = dot(ai, &rt[q * p..(q + 1) * p]);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn backward<'a>(
        a: impl super::RowSet<'a>,
        p: usize,
        g: &[f64],
        k: usize,
        out_t: &mut [f64],
    ) {
        let rows = a.count();
        let mut i = 0;
        while i + 4 <= rows {
            let ar = [a.row(i), a.row(i + 1), a.row(i + 2), a.row(i + 3)];
            for q in 0..k {
                let s = [
                    g[i * k + q],
                    g[(i + 1) * k + q],
                    g[(i + 2) * k + q],
                    g[(i + 3) * k + q],
                ];
                axpy4(&mut out_t[q * p..(q + 1) * p], s, ar);
            }
            i += 4;
        }
        for (b, gi) in g.chunks_exact(k).enumerate().take(rows).skip(i) {
            let ai = a.row(b);
            for (q, &s) in gi.iter().enumerate() {
                axpy(&mut out_t[q * p..(q + 1) * p], s, ai);
            }
        }
    }
}

/// Whether the AVX2 + FMA instances can run on this CPU.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `Z ← A_b R` for the rows of `a` (row-major, `p` columns), `Rᵀ` row-major `k × p`, `Z`
/// row-major `rows × k`.
pub fn forward(a: &[f64], p: usize, rt: &[f64], k: usize, z: &mut [f64]) {
    let rows = a.len() / p.max(1);
    assert!(p > 0 && k <= MAX_K && a.len() == rows * p && rt.len() >= k * p && z.len() >= rows * k);
    forward_rows(Block { a, p }, p, rt, k, z)
}

/// `Outᵀ ← Outᵀ + Gᵀ A_b` for the rows of `a` (row-major, `p` columns), `G` row-major
/// `rows × k`, `Outᵀ` row-major `k × p`.
pub fn backward(a: &[f64], p: usize, g: &[f64], k: usize, out_t: &mut [f64]) {
    let rows = a.len() / p.max(1);
    assert!(
        p > 0 && k <= MAX_K && a.len() == rows * p && g.len() >= rows * k && out_t.len() >= k * p
    );
    backward_rows(Block { a, p }, p, g, k, out_t)
}

/// `z_bq ← ⟨a_{idx[b]}, r_q⟩` for the rows `idx` (any order, repeats allowed) of `a` (row-major,
/// `p` columns), `Rᵀ` row-major `k × p`, `Z` row-major `idx.len() × k`.
///
/// # Panics
/// If an index is out of range or the shapes do not match.
pub fn forward_indexed(a: &[f64], p: usize, idx: &[usize], rt: &[f64], k: usize, z: &mut [f64]) {
    assert!(p > 0 && k <= MAX_K && rt.len() >= k * p && z.len() >= idx.len() * k);
    forward_rows(Gather { a, p, idx }, p, rt, k, z)
}

/// `Outᵀ_q ← Outᵀ_q + Σ_b g_bq a_{idx[b]}` for the rows `idx` (any order, repeats allowed) of
/// `a` (row-major, `p` columns), `G` row-major `idx.len() × k`, `Outᵀ` row-major `k × p`.
///
/// # Panics
/// If an index is out of range or the shapes do not match.
pub fn backward_indexed(
    a: &[f64],
    p: usize,
    idx: &[usize],
    g: &[f64],
    k: usize,
    out_t: &mut [f64],
) {
    assert!(p > 0 && k <= MAX_K && g.len() >= idx.len() * k && out_t.len() >= k * p);
    backward_rows(Gather { a, p, idx }, p, g, k, out_t)
}

fn forward_rows<'a>(rows: impl RowSet<'a>, p: usize, rt: &[f64], k: usize, z: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { x86::forward(rows, p, rt, k, z) };
        return;
    }
    forward_body::<false>(rows, p, rt, k, z)
}

fn backward_rows<'a>(rows: impl RowSet<'a>, p: usize, g: &[f64], k: usize, out_t: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { x86::backward(rows, p, g, k, out_t) };
        return;
    }
    backward_body::<false>(rows, p, g, k, out_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bilevel_core::rng::Rng;

    /// Both instances against naive loops, on widths with every remainder mod 8.
    #[test]
    fn products_match_naive_loops() {
        let mut rng = Rng::new(1);
        for (rows, p, k) in [(7, 13, 1), (9, 57, 2), (4, 8, 4), (5, 3, 3), (1, 1, 1)] {
            let mut a = vec![0.0; rows * p];
            let mut rt = vec![0.0; k * p];
            let mut g = vec![0.0; rows * k];
            let mut init = vec![0.0; k * p];
            rng.fill_normal(&mut a);
            rng.fill_normal(&mut rt);
            rng.fill_normal(&mut g);
            rng.fill_normal(&mut init);
            let mut z = vec![f64::NAN; rows * k];
            forward(&a, p, &rt, k, &mut z);
            let mut z0 = vec![f64::NAN; rows * k];
            forward_body::<false>(Block { a: &a, p }, p, &rt, k, &mut z0);
            let mut out = init.clone();
            backward(&a, p, &g, k, &mut out);
            let mut out0 = init.clone();
            backward_body::<false>(Block { a: &a, p }, p, &g, k, &mut out0);
            for i in 0..rows {
                for q in 0..k {
                    let want: f64 = (0..p).map(|j| a[i * p + j] * rt[q * p + j]).sum();
                    for got in [z[i * k + q], z0[i * k + q]] {
                        assert!((got - want).abs() < 1e-13 * (1.0 + want.abs()));
                    }
                }
            }
            for q in 0..k {
                for j in 0..p {
                    let want = init[q * p + j]
                        + (0..rows).map(|i| g[i * k + q] * a[i * p + j]).sum::<f64>();
                    for got in [out[q * p + j], out0[q * p + j]] {
                        assert!((got - want).abs() < 1e-13 * (1.0 + want.abs()));
                    }
                }
            }
        }
    }

    /// The indexed kernels equal the block kernels on the gathered rows (repeats included), for
    /// both instances.
    #[test]
    fn indexed_products_match_gathered_rows() {
        let mut rng = Rng::new(2);
        let n = 11;
        for (b, p, k) in [(9, 13, 2), (4, 57, 1), (7, 8, 4), (1, 3, 3), (0, 5, 2)] {
            let mut a = vec![0.0; n * p];
            let mut rt = vec![0.0; k * p];
            let mut g = vec![0.0; b * k];
            let mut init = vec![0.0; k * p];
            rng.fill_normal(&mut a);
            rng.fill_normal(&mut rt);
            rng.fill_normal(&mut g);
            rng.fill_normal(&mut init);
            let idx: Vec<usize> = (0..b).map(|i| (i * 7 + 3) % 5).collect();
            let gathered: Vec<f64> = idx
                .iter()
                .flat_map(|&i| a[i * p..(i + 1) * p].iter().copied())
                .collect();
            let mut z = vec![f64::NAN; b * k];
            let mut z0 = vec![f64::NAN; b * k];
            let mut z1 = vec![f64::NAN; b * k];
            forward_indexed(&a, p, &idx, &rt, k, &mut z);
            forward_body::<false>(
                Gather {
                    a: &a,
                    p,
                    idx: &idx,
                },
                p,
                &rt,
                k,
                &mut z0,
            );
            if b > 0 {
                forward(&gathered, p, &rt, k, &mut z1);
            } else {
                z1.clear();
            }
            let (mut out, mut out0, mut out1) = (init.clone(), init.clone(), init.clone());
            backward_indexed(&a, p, &idx, &g, k, &mut out);
            backward_body::<false>(
                Gather {
                    a: &a,
                    p,
                    idx: &idx,
                },
                p,
                &g,
                k,
                &mut out0,
            );
            if b > 0 {
                backward(&gathered, p, &g, k, &mut out1);
            }
            for (x, y) in z.iter().zip(&z1).chain(z0.iter().zip(&z1)) {
                assert!((x - y).abs() < 1e-13 * (1.0 + y.abs()), "{b} {p} {k}");
            }
            for (x, y) in out.iter().zip(&out1).chain(out0.iter().zip(&out1)) {
                assert!((x - y).abs() < 1e-13 * (1.0 + y.abs()), "{b} {p} {k}");
            }
        }
    }
}
