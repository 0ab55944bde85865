//! Blocked dense kernels shared by the machine-learning problems.
//!
//! Every oracle of a linear model over a data matrix `A` (`n × p`, row-major) has the shape
//!
//! ```text
//! Z = A R            (R: p × kk, the model Y or the pair [Y V])
//! G_i = φ_i(Z_i)      (a per-row map: softmax, sigmoid, residual; also per-row scalars)
//! out = Aᵀ G          (p × kb, optional)
//! ```
//!
//! [`Engine::pass`] evaluates it block by block: for rows `b = r₀..r₁` it computes `Z_b = A_b R`,
//! the per-row map and `out += A_bᵀ G_b` while `A_b` is still in cache, so `A` is read once per
//! pass instead of twice. The products are faer's matmul on row blocks (`Par::Seq`, followed by
//! `vzeroupper`: see [`clear_upper_ymm`]); large passes
//! are split over worker threads (`std::thread::scope`), each with its own scratch and
//! accumulator, summed at the end. All scratch is allocated by [`Engine::new`]; a pass allocates
//! nothing on one thread (spawning workers allocates their thread handles, a few hundred bytes
//! per pass that uses them).
//!
//! [`BatchEngine::pass`] is the same pass over the rows `A_B` of a minibatch `B` (any indices,
//! repeats allowed), always on the calling thread: the few-column kernels read the batch rows in
//! place ([`super::small::forward_indexed`]); wider products gather non-contiguous rows into a
//! block (contiguous chunks are used in place) for faer's matmul.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// `log(1 + e^u)` without overflow: `u + log1p(e^{−u})` for `u > 0`, `log1p(e^u)` otherwise.
#[inline]
pub fn softplus(u: f64) -> f64 {
    if u > 0.0 {
        u + (-u).exp().ln_1p()
    } else {
        u.exp().ln_1p()
    }
}

/// The logistic function `σ(u) = 1 / (1 + e^{−u})`, evaluated without overflow for any `u`.
#[inline]
pub fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// `s ← softmax(z)` and the return value `log Σ_c e^{z_c}` (shifted by `max z`, so no overflow).
#[inline]
pub fn softmax_lse(z: &[f64], s: &mut [f64]) -> f64 {
    let m = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0.0;
    for (si, &zi) in s.iter_mut().zip(z) {
        *si = (zi - m).exp();
        sum += *si;
    }
    let inv = 1.0 / sum;
    s.iter_mut().for_each(|v| *v *= inv);
    m + sum.ln()
}

/// `log Σ_c e^{z_c}` (shifted by `max z`).
#[inline]
pub fn log_sum_exp(z: &[f64]) -> f64 {
    let m = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    m + z.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

/// Index of the largest entry (the first on ties).
#[inline]
pub fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

/// Clear the upper halves of the YMM registers (`vzeroupper`) on x86-64 CPUs with AVX.
///
/// faer's matmul kernels return with the upper register state dirty; on the machines this
/// project runs on, every later SSE instruction then pays a transition penalty, and glibc's `exp`
/// (called per logit by the softmax) became 15× slower (10 ns → 150 ns, measured) until the next
/// `vzeroupper`. Called after every faer product below.
#[inline]
pub fn clear_upper_ymm() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        fn zero_upper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above).
            unsafe { zero_upper() };
        }
    }
}

/// `C ← A B` (or `C ← C + A B` with `add`) for row-major `A` (`m × k`), `B` (`k × n`),
/// `C` (`m × n`), by faer's matmul.
pub fn gemm_rm(c: &mut [f64], add: bool, a: &[f64], b: &[f64], m: usize, k: usize, n: usize) {
    let accum = if add { Accum::Add } else { Accum::Replace };
    matmul(
        MatMut::from_row_major_slice_mut(c, m, n),
        accum,
        MatRef::from_row_major_slice(a, m, k),
        MatRef::from_row_major_slice(b, k, n),
        1.0,
        Par::Seq,
    );
    clear_upper_ymm();
}

/// `C ← Aᵀ B` (or `C ← C + Aᵀ B` with `add`) for row-major `A` (`m × k`), `B` (`m × n`),
/// `C` (`k × n`), by faer's matmul.
pub fn gemm_tn_rm(c: &mut [f64], add: bool, a: &[f64], b: &[f64], m: usize, k: usize, n: usize) {
    let accum = if add { Accum::Add } else { Accum::Replace };
    matmul(
        MatMut::from_row_major_slice_mut(c, k, n),
        accum,
        MatRef::from_row_major_slice(a, m, k).transpose(),
        MatRef::from_row_major_slice(b, m, n),
        1.0,
        Par::Seq,
    );
    clear_upper_ymm();
}

/// Per-worker scratch: a logits block, a back-product block and a private accumulator.
#[derive(Clone, Debug)]
struct Worker {
    z: Vec<f64>,
    g: Vec<f64>,
    acc: Vec<f64>,
}

/// Shape of a blocked pass (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct Pass<'a> {
    /// Data matrix `A`, row-major `n × p`.
    pub a: &'a [f64],
    /// Rows n.
    pub n: usize,
    /// Columns p.
    pub p: usize,
    /// Right-hand side `R`, row-major `p × kk`.
    pub rhs: &'a [f64],
    /// Columns kk of `R` (and of each logits row `Z_i`).
    pub kk: usize,
    /// Columns kb of `G` and of the output `Aᵀ G` (0: no back product).
    pub kb: usize,
}

/// The per-row map of a pass: called once per block with the first row index `r₀`, the block's
/// rows of `Z` (`rows × kk`), the block's rows of `G` to fill (`rows × kb`) and the block's slice
/// of the per-row output (`rows` entries, or empty when the pass has none); returns a partial sum
/// (for example of the losses), which the pass adds up.
pub trait RowMap: Sync {
    /// Process one block.
    fn rows(&self, r0: usize, z: &[f64], g: &mut [f64], row_out: &mut [f64]) -> f64;
}

impl<F: Fn(usize, &[f64], &mut [f64], &mut [f64]) -> f64 + Sync> RowMap for F {
    fn rows(&self, r0: usize, z: &[f64], g: &mut [f64], row_out: &mut [f64]) -> f64 {
        self(r0, z, g, row_out)
    }
}

/// Blocked passes over one data matrix with preallocated scratch (see the module
/// documentation).
#[derive(Clone, Debug)]
pub struct Engine {
    block: usize,
    threads: usize,
    min_parallel: usize,
    max_kk: usize,
    max_kb: usize,
    max_p: usize,
    /// `Rᵀ` (`kk × p`) for the small-k kernels.
    rt: Vec<f64>,
    workers: Vec<Worker>,
}

/// Default rows per block for `p` columns: about 1.6 MB of `A` per block (256 rows of 784
/// pixels; the block is re-read from L2/L3 by the second product), between 16 and 1024 rows.
/// Measured on the 2-core development machine: blocks of 16–512 rows are within noise of each
/// other for the hyper-cleaning gradient; 256 was the most consistent.
pub fn default_block_rows(p: usize) -> usize {
    (200_000 / p.max(1)).clamp(16, 1024)
}

/// Default worker threads: the available parallelism (at most 8).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Passes over fewer elements `n·p` than this run on the calling thread only (spawning costs
/// tens of microseconds).
pub const DEFAULT_MIN_PARALLEL: usize = 1 << 19;

impl Engine {
    /// Scratch for passes over matrices with at most `max_p` columns, `R` with at most `max_kk`
    /// columns and `G` with at most `max_kb`, `block` rows per block and up to `threads`
    /// workers (1 to 8).
    pub fn new(max_p: usize, max_kk: usize, max_kb: usize, block: usize, threads: usize) -> Self {
        let block = block.max(1);
        let threads = threads.clamp(1, 8);
        let workers = (0..threads)
            .map(|_| Worker {
                z: vec![0.0; block * max_kk],
                g: vec![0.0; block * max_kb],
                acc: vec![0.0; max_p * max_kb],
            })
            .collect();
        Engine {
            block,
            threads,
            min_parallel: DEFAULT_MIN_PARALLEL,
            max_kk,
            max_kb,
            max_p,
            rt: vec![0.0; max_kk.min(super::small::MAX_K) * max_p],
            workers,
        }
    }

    /// Set the smallest `n·p` that is split over threads.
    pub fn with_min_parallel(mut self, min_parallel: usize) -> Self {
        self.min_parallel = min_parallel;
        self
    }

    /// Rows per block.
    pub fn block_rows(&self) -> usize {
        self.block
    }

    /// Worker threads available to a pass.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run one pass: `out ← Aᵀ G` (overwritten; ignored when `kb = 0`) and `row_out`
    /// (length n, or empty) filled by `map`; returns the sum of `map`'s partial sums.
    ///
    /// # Panics
    /// If the shapes exceed those given to [`Engine::new`] or the slices have the wrong lengths.
    pub fn pass<M: RowMap>(
        &mut self,
        s: &Pass<'_>,
        out: &mut [f64],
        row_out: &mut [f64],
        map: &M,
    ) -> f64 {
        assert!(s.p <= self.max_p && s.kk <= self.max_kk && s.kb <= self.max_kb);
        assert_eq!(s.a.len(), s.n * s.p);
        assert_eq!(s.rhs.len(), s.p * s.kk);
        assert!(s.kb == 0 || out.len() == s.p * s.kb);
        assert!(row_out.is_empty() || row_out.len() == s.n);
        let (p, kk, kb) = (s.p, s.kk, s.kb);
        // Few right-hand sides: the plain kernels of `small` on Rᵀ, accumulators Outᵀ (kb × p).
        let small = kk <= super::small::MAX_K && kb <= super::small::MAX_K;
        if small {
            for j in 0..p {
                for q in 0..kk {
                    self.rt[q * p + j] = s.rhs[j * kk + q];
                }
            }
        }
        let nt = if s.n * s.p >= self.min_parallel {
            self.threads.min(s.n.div_ceil(self.block)).max(1)
        } else {
            1
        };
        let k = Kernel {
            block: self.block,
            small,
            rt: &self.rt[..if small { kk * p } else { 0 }],
        };
        let total = if nt == 1 {
            let w = &mut self.workers[0];
            k.rows(s, 0, s.n, w, row_out, map)
        } else {
            // Contiguous row ranges of whole blocks, one per worker.
            let per = s.n.div_ceil(self.block).div_ceil(nt) * self.block;
            let k = &k;
            std::thread::scope(|scope| {
                let mut handles = [None, None, None, None, None, None, None];
                let (first, rest) = self.workers.split_at_mut(1);
                let mut row_rest: &mut [f64] = row_out;
                let mut take = |len: usize| -> &mut [f64] {
                    if row_rest.is_empty() {
                        <&mut [f64]>::default()
                    } else {
                        let (mine, tail) = std::mem::take(&mut row_rest).split_at_mut(len);
                        row_rest = tail;
                        mine
                    }
                };
                let end0 = per.min(s.n);
                let row0 = take(end0);
                let mut start = end0;
                for (t, w) in rest.iter_mut().enumerate().take(nt - 1) {
                    let end = (start + per).min(s.n);
                    let mine = take(end - start);
                    let lo = start;
                    handles[t] = Some(scope.spawn(move || k.rows(s, lo, end, w, mine, map)));
                    start = end;
                }
                let mut total = k.rows(s, 0, end0, &mut first[0], row0, map);
                for h in handles.iter_mut().filter_map(Option::take) {
                    total += h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                }
                total
            })
        };
        if kb > 0 {
            let accs = &self.workers[..nt];
            if small {
                for j in 0..p {
                    for c in 0..kb {
                        out[j * kb + c] = accs.iter().map(|w| w.acc[c * p + j]).sum();
                    }
                }
            } else {
                out.copy_from_slice(&accs[0].acc[..p * kb]);
                for w in &accs[1..] {
                    out.iter_mut()
                        .zip(&w.acc[..p * kb])
                        .for_each(|(o, a)| *o += a);
                }
            }
        }
        total
    }
}

/// The read-only part of a pass, shared by its workers.
struct Kernel<'a> {
    block: usize,
    /// Use the kernels of [`super::small`] on `rt`.
    small: bool,
    rt: &'a [f64],
}

impl Kernel<'_> {
    /// Rows `lo..hi` of a pass on the calling thread: the worker's accumulator ← the rows'
    /// `Aᵀ G` (`p × kb`, or `kb × p` for the small kernels), `row_out` (rows `lo..hi`, or
    /// empty).
    fn rows<M: RowMap>(
        &self,
        s: &Pass<'_>,
        lo: usize,
        hi: usize,
        w: &mut Worker,
        row_out: &mut [f64],
        map: &M,
    ) -> f64 {
        let (p, kk, kb) = (s.p, s.kk, s.kb);
        let acc = &mut w.acc[..p * kb];
        acc.iter_mut().for_each(|o| *o = 0.0);
        let mut total = 0.0;
        // The small kernels work row by row: blocks of about 16 KiB keep a block in L1 between
        // its two products.
        let block = if self.small {
            (2048 / p.max(1)).max(8).min(self.block)
        } else {
            self.block
        };
        let mut r0 = lo;
        while r0 < hi {
            let r1 = (r0 + block).min(hi);
            let rows = r1 - r0;
            let ab = &s.a[r0 * p..r1 * p];
            let z = &mut w.z[..rows * kk];
            if self.small {
                super::small::forward(ab, p, self.rt, kk, z);
            } else {
                gemm_rm(z, false, ab, s.rhs, rows, p, kk);
            }
            let g = &mut w.g[..rows * kb];
            let ro = if row_out.is_empty() {
                <&mut [f64]>::default()
            } else {
                &mut row_out[r0 - lo..r1 - lo]
            };
            total += map.rows(r0, z, g, ro);
            if kb > 0 {
                if self.small {
                    super::small::backward(ab, p, g, kb, acc);
                } else {
                    gemm_tn_rm(acc, true, ab, g, rows, p, kb);
                }
            }
            r0 = r1;
        }
        total
    }
}

/// `e^{x_l}` of the last upper variable `x` seen (compared bitwise), recomputed only when `x`
/// changes: the ridge terms of the regularisation-selection batch oracles need one exponential
/// per strength, which is a sizeable part of a batch of 64 rows, and solvers often call several
/// oracles at the same x.
#[derive(Clone, Debug)]
pub struct ExpCache {
    x: Vec<f64>,
    ex: Vec<f64>,
}

impl ExpCache {
    /// A cache for `x` of up to `m` entries (longer ones allocate).
    pub fn new(m: usize) -> Self {
        ExpCache {
            x: Vec::with_capacity(m),
            ex: Vec::with_capacity(m),
        }
    }

    /// `e^x` entrywise.
    pub fn get(&mut self, x: &[f64]) -> &[f64] {
        let same = self.x.len() == x.len()
            && self
                .x
                .iter()
                .zip(x)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            self.x.clear();
            self.x.extend_from_slice(x);
            self.ex.clear();
            self.ex.extend(x.iter().map(|v| v.exp()));
        }
        &self.ex
    }
}

/// Shape of a pass over the rows of a minibatch (see [`BatchEngine::pass`]).
#[derive(Clone, Copy, Debug)]
pub struct BatchPass<'a> {
    /// Data matrix `A`, row-major with `p` columns.
    pub a: &'a [f64],
    /// Columns p.
    pub p: usize,
    /// Rows of `A` in the batch (any order, repeats allowed).
    pub idx: &'a [usize],
    /// Right-hand side `R`, row-major `p × kk`.
    pub rhs: &'a [f64],
    /// Columns kk of `R`.
    pub kk: usize,
    /// Columns kb of `G` and of the output `A_Bᵀ G` (0: no back product).
    pub kb: usize,
}

/// Passes `Z = A_B R`, `G = φ(Z)`, `out = A_Bᵀ G` over the rows `B` of a minibatch, on the
/// calling thread, with scratch preallocated by [`BatchEngine::new`] (a pass allocates nothing,
/// whatever the batch size: long batches are processed in blocks).
#[derive(Clone, Debug)]
pub struct BatchEngine {
    block: usize,
    max_p: usize,
    max_kk: usize,
    max_kb: usize,
    /// Gathered rows of a non-contiguous block (wide products only).
    rows: Vec<f64>,
    z: Vec<f64>,
    g: Vec<f64>,
    /// `A_Bᵀ G` (`p × kb`, or `kb × p` for the few-column kernels).
    acc: Vec<f64>,
    /// `Rᵀ` (`kk × p`) for the few-column kernels.
    rt: Vec<f64>,
}

impl BatchEngine {
    /// Scratch for batch passes over matrices with at most `max_p` columns, `R` with at most
    /// `max_kk` columns and `G` with at most `max_kb` (blocks of [`default_block_rows`] rows).
    pub fn new(max_p: usize, max_kk: usize, max_kb: usize) -> Self {
        let block = default_block_rows(max_p);
        let small = max_kk <= super::small::MAX_K && max_kb <= super::small::MAX_K;
        BatchEngine {
            block,
            max_p,
            max_kk,
            max_kb,
            rows: vec![0.0; if small { 0 } else { block * max_p }],
            z: vec![0.0; block * max_kk],
            g: vec![0.0; block * max_kb],
            acc: vec![0.0; max_p * max_kb],
            rt: vec![0.0; max_kk.min(super::small::MAX_K) * max_p],
        }
    }

    /// The same scratch with `block` rows per block (at least 1).
    pub fn with_block_rows(self, block: usize) -> Self {
        let block = block.max(1);
        BatchEngine {
            block,
            rows: vec![
                0.0;
                if self.rows.is_empty() {
                    0
                } else {
                    block * self.max_p
                }
            ],
            z: vec![0.0; block * self.max_kk],
            g: vec![0.0; block * self.max_kb],
            ..self
        }
    }

    /// Run one pass: `out ← A_Bᵀ G` (`p × kb`, overwritten; ignored when `kb = 0`), where
    /// `map(rows, z, g)` fills the rows `g` of `G` (`rows.len() × kb`) from the rows `z` of
    /// `Z = A_B R` (`rows.len() × kk`) for consecutive pieces `rows` of the batch's indices, and
    /// returns a partial sum; the pass returns the sum of the partial sums. An empty batch gives
    /// `out = 0`.
    ///
    /// # Panics
    /// If the shapes exceed those given to [`BatchEngine::new`], the slices have the wrong
    /// lengths or an index is out of range.
    pub fn pass<M: FnMut(&[usize], &[f64], &mut [f64]) -> f64>(
        &mut self,
        s: &BatchPass<'_>,
        out: &mut [f64],
        mut map: M,
    ) -> f64 {
        let (p, kk, kb) = (s.p, s.kk, s.kb);
        assert!(p > 0 && p <= self.max_p && kk <= self.max_kk && kb <= self.max_kb);
        assert_eq!(s.a.len() % p, 0);
        assert_eq!(s.rhs.len(), p * kk);
        assert!(kb == 0 || out.len() == p * kb);
        let small = kk <= super::small::MAX_K && kb <= super::small::MAX_K;
        let mut total = 0.0;
        if small {
            for j in 0..p {
                for q in 0..kk {
                    self.rt[q * p + j] = s.rhs[j * kk + q];
                }
            }
            let acc = &mut self.acc[..kb * p];
            acc.iter_mut().for_each(|o| *o = 0.0);
            // Blocks of about 16 KiB, as in the full passes.
            let block = (2048 / p).max(8).min(self.block);
            for rows in s.idx.chunks(block) {
                let z = &mut self.z[..rows.len() * kk];
                super::small::forward_indexed(s.a, p, rows, &self.rt[..kk * p], kk, z);
                let g = &mut self.g[..rows.len() * kb];
                total += map(rows, z, g);
                if kb > 0 {
                    super::small::backward_indexed(s.a, p, rows, g, kb, acc);
                }
            }
            for j in 0..p {
                for c in 0..kb {
                    out[j * kb + c] = acc[c * p + j];
                }
            }
        } else {
            let mut first = true;
            for rows in s.idx.chunks(self.block) {
                let r = rows.len();
                let contiguous = rows.windows(2).all(|w| w[1] == w[0] + 1);
                let ab: &[f64] = if contiguous {
                    &s.a[rows[0] * p..(rows[0] + r) * p]
                } else {
                    for (dst, &i) in self.rows.chunks_exact_mut(p).zip(rows) {
                        dst.copy_from_slice(&s.a[i * p..(i + 1) * p]);
                    }
                    &self.rows[..r * p]
                };
                let z = &mut self.z[..r * kk];
                gemm_rm(z, false, ab, s.rhs, r, p, kk);
                let g = &mut self.g[..r * kb];
                total += map(rows, z, g);
                if kb > 0 {
                    gemm_tn_rm(out, !first, ab, g, r, p, kb);
                    first = false;
                }
            }
            if first && kb > 0 {
                out.iter_mut().for_each(|o| *o = 0.0);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bilevel_core::rng::Rng;

    fn naive_ab(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn scalar_functions_are_stable_and_exact() {
        for u in [-800.0, -40.0, -1.0, 0.0, 0.5, 40.0, 800.0] {
            let sp = softplus(u);
            assert!(sp.is_finite() && sp >= 0.0);
            let s = sigmoid(u);
            assert!((0.0..=1.0).contains(&s));
            if u.abs() < 30.0 {
                assert!((sp - (1.0 + f64::exp(u)).ln()).abs() < 1e-15 * (1.0 + sp));
                assert!((s - 1.0 / (1.0 + (-u).exp())).abs() < 1e-16);
            }
        }
        assert_eq!(softplus(800.0), 800.0);
        assert_eq!(sigmoid(-800.0), 0.0);
        // Symmetry σ(−u) = 1 − σ(u) and softplus(u) − softplus(−u) = u.
        for u in [0.3, 2.0, 7.5] {
            assert!((sigmoid(-u) - (1.0 - sigmoid(u))).abs() < 2e-16);
            assert!((softplus(u) - softplus(-u) - u).abs() < 1e-15);
        }
        let z = [1000.0, 1001.0, 999.0];
        let mut s = [0.0; 3];
        let lse = softmax_lse(&z, &mut s);
        let e = [(-1.0f64).exp(), 1.0, (-2.0f64).exp()];
        let sum: f64 = e.iter().sum();
        assert!((lse - (1001.0 + sum.ln())).abs() < 1e-12);
        assert!((log_sum_exp(&z) - lse).abs() < 1e-12);
        for c in 0..3 {
            assert!((s[c] - e[c] / sum).abs() < 1e-15);
        }
        assert_eq!(argmax(&z), 1);
        assert_eq!(argmax(&[2.0, 2.0]), 0);
    }

    #[test]
    fn gemm_wrappers_match_naive_products() {
        let mut rng = Rng::new(3);
        let (m, k, n) = (7, 5, 3);
        let mut a = vec![0.0; m * k];
        let mut b = vec![0.0; k * n];
        let mut bt = vec![0.0; m * n];
        rng.fill_normal(&mut a);
        rng.fill_normal(&mut b);
        rng.fill_normal(&mut bt);
        let mut c = vec![1.0; m * n];
        gemm_rm(&mut c, false, &a, &b, m, k, n);
        let want = naive_ab(&a, &b, m, k, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-13);
        }
        gemm_rm(&mut c, true, &a, &b, m, k, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - 2.0 * y).abs() < 1e-13);
        }
        // Aᵀ B with A m×k, B m×n.
        let mut at = vec![0.0; k * m];
        for i in 0..m {
            for j in 0..k {
                at[j * m + i] = a[i * k + j];
            }
        }
        let mut d = vec![0.0; k * n];
        gemm_tn_rm(&mut d, false, &a, &bt, m, k, n);
        let want = naive_ab(&at, &bt, k, m, n);
        for (x, y) in d.iter().zip(&want) {
            assert!((x - y).abs() < 1e-13);
        }
    }

    /// A pass computing `Aᵀ (2 · A R)` with row sums as the per-row output, checked against the
    /// naive products, for one and several threads and block sizes that do not divide n, with
    /// the small-k kernels (kk = 3) and faer (kk = 6).
    #[test]
    fn blocked_pass_matches_naive_for_every_split() {
        blocked_pass_case(3);
        blocked_pass_case(6);
    }

    fn blocked_pass_case(kk: usize) {
        let mut rng = Rng::new(5);
        let (n, p) = (103, 9);
        let mut a = vec![0.0; n * p];
        let mut r = vec![0.0; p * kk];
        rng.fill_normal(&mut a);
        rng.fill_normal(&mut r);
        let z = naive_ab(&a, &r, n, p, kk);
        let mut at = vec![0.0; p * n];
        for i in 0..n {
            for j in 0..p {
                at[j * n + i] = a[i * p + j];
            }
        }
        let g: Vec<f64> = z.iter().map(|v| 2.0 * v).collect();
        let want = naive_ab(&at, &g, p, n, kk);
        let want_rows: Vec<f64> = (0..n)
            .map(|i| z[i * kk..(i + 1) * kk].iter().sum())
            .collect();
        let want_total: f64 = want_rows.iter().sum();
        let map = |_r0: usize, z: &[f64], g: &mut [f64], ro: &mut [f64]| {
            for (gi, zi) in g.iter_mut().zip(z) {
                *gi = 2.0 * zi;
            }
            let mut t = 0.0;
            for (i, row) in z.chunks_exact(kk).enumerate() {
                let s: f64 = row.iter().sum();
                if !ro.is_empty() {
                    ro[i] = s;
                }
                t += s;
            }
            t
        };
        for (block, threads) in [(1000, 1), (10, 1), (7, 2), (16, 3), (5, 8)] {
            let mut e = Engine::new(p, kk, kk, block, threads).with_min_parallel(0);
            let s = Pass {
                a: &a,
                n,
                p,
                rhs: &r,
                kk,
                kb: kk,
            };
            let mut out = vec![f64::NAN; p * kk];
            let mut rows = vec![f64::NAN; n];
            let total = e.pass(&s, &mut out, &mut rows, &map);
            assert!((total - want_total).abs() < 1e-11, "{block} {threads}");
            for (x, y) in out.iter().zip(&want) {
                assert!((x - y).abs() < 1e-11, "{block} {threads}");
            }
            for (x, y) in rows.iter().zip(&want_rows) {
                assert!((x - y).abs() < 1e-12, "{block} {threads}");
            }
            // No back product, no per-row output.
            let s0 = Pass { kb: 0, ..s };
            let total = e.pass(&s0, &mut [], &mut [], &map);
            assert!((total - want_total).abs() < 1e-11);
        }
    }

    #[test]
    fn exp_cache_follows_x() {
        let mut c = ExpCache::new(3);
        assert_eq!(c.get(&[0.0, 1.0]), &[1.0, 1f64.exp()]);
        assert_eq!(c.get(&[0.0, 1.0]), &[1.0, 1f64.exp()]);
        assert_eq!(c.get(&[2.0, 1.0]), &[2f64.exp(), 1f64.exp()]);
        assert_eq!(c.get(&[-0.0]), &[1.0]);
        assert_eq!(c.get(&[]), &[] as &[f64]);
        assert!(c.get(&[f64::NAN])[0].is_nan());
        assert_eq!(
            c.get(&[3.0, 0.5, -1.0]),
            &[3f64.exp(), 0.5f64.exp(), (-1f64).exp()]
        );
    }

    /// Batch passes against the naive `A_Bᵀ (2 · A_B R)` on the gathered rows: contiguous, out
    /// of order with repeats, empty; few-column kernels (kk = 2) and faer (kk = 6); one block
    /// and several.
    #[test]
    fn batch_pass_matches_naive_on_gathered_rows() {
        let mut rng = Rng::new(8);
        let (n, p) = (50, 9);
        let mut a = vec![0.0; n * p];
        rng.fill_normal(&mut a);
        let contiguous: Vec<usize> = (13..33).collect();
        let repeats: Vec<usize> = (0..23).map(|i| (i * 17 + 5) % n).chain([3, 3, 3]).collect();
        for kk in [2, 6] {
            let mut r = vec![0.0; p * kk];
            rng.fill_normal(&mut r);
            for block in [1000, 7, 1] {
                let mut e = BatchEngine::new(p, kk, kk).with_block_rows(block);
                for idx in [&contiguous[..], &repeats[..], &[]] {
                    let b = idx.len();
                    let ab: Vec<f64> = idx
                        .iter()
                        .flat_map(|&i| a[i * p..(i + 1) * p].iter().copied())
                        .collect();
                    let z = naive_ab(&ab, &r, b, p, kk);
                    let mut abt = vec![0.0; p * b];
                    for i in 0..b {
                        for j in 0..p {
                            abt[j * b + i] = ab[i * p + j];
                        }
                    }
                    let g: Vec<f64> = z.iter().map(|v| 2.0 * v).collect();
                    let want = naive_ab(&abt, &g, p, b, kk);
                    let want_total: f64 = z.iter().sum();
                    let mut seen = Vec::new();
                    let s = BatchPass {
                        a: &a,
                        p,
                        idx,
                        rhs: &r,
                        kk,
                        kb: kk,
                    };
                    let mut out = vec![f64::NAN; p * kk];
                    let total = e.pass(&s, &mut out, |rows, z, g| {
                        seen.extend_from_slice(rows);
                        for (gi, zi) in g.iter_mut().zip(z) {
                            *gi = 2.0 * zi;
                        }
                        z.iter().sum()
                    });
                    assert_eq!(seen, idx, "kk {kk} block {block}");
                    assert!((total - want_total).abs() < 1e-11, "kk {kk} block {block}");
                    for (x, y) in out.iter().zip(&want) {
                        assert!((x - y).abs() < 1e-11, "kk {kk} block {block} b {b}");
                    }
                    let s0 = BatchPass { kb: 0, ..s };
                    let total = e.pass(&s0, &mut [], |_, z, _| z.iter().sum());
                    assert!((total - want_total).abs() < 1e-11);
                }
            }
        }
    }
}
