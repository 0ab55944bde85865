//! Weighted softmax cross-entropy of a linear model `Z = A Y` (`Y`: `p × k`, row-major), as
//! blocked passes ([`Engine`]). Row `i` has logits `z_i = Yᵀa_i`, probabilities
//! `s_i = softmax(z_i)` and loss `CE_i = log Σ_c e^{z_ic} − z_{i t_i}`; every routine takes a
//! per-row coefficient `c_i` (a sample weight divided by n, say).
//!
//! * [`value`]: `Σ_i c_i CE_i`, and optionally `row_i = r_i CE_i`;
//! * [`gradient`]: `∇_Y Σ_i c_i CE_i = Aᵀ[c ⊙ (S − T)]` (T one-hot), with the value and the rows;
//! * [`hvp`]: `∇²_Y(Σ_i c_i CE_i)[V] = Aᵀ[c ⊙ (S ⊙ U − S ⊙ rowsum(S ⊙ U))]` with `U = A V`;
//! * [`directional_rows`]: `row_i = c_i ⟨s_i − e_{t_i}, u_i⟩ = c_i ∂CE_i/∂Y [V]`.
//!
//! The second-order routines read `[Y V]` interleaved row by row (`p × 2k`, see [`interleave`])
//! so that one product gives both `Z` and `U` in one pass over `A`.
//!
//! The `batch_*` routines are the same sums over the rows `i ∈ B` of a minibatch (any indices,
//! repeats counted), by [`BatchEngine`] on the calling thread, with the same per-row math;
//! [`batch_lower`] gives the gradient, the HVP and the directional derivatives in one pass.

use super::kernels::{argmax, log_sum_exp, softmax_lse, BatchEngine, BatchPass, Engine, Pass};

/// Rows of a data matrix with their class labels.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    /// Row-major `n × p`.
    pub a: &'a [f64],
    /// Class per row.
    pub labels: &'a [u32],
    /// Rows.
    pub n: usize,
    /// Columns.
    pub p: usize,
}

impl<'a> Rows<'a> {
    /// A pass over these rows with right-hand side `rhs` (`p × kk`) and `kb` back-product columns.
    pub fn pass(&self, rhs: &'a [f64], kk: usize, kb: usize) -> Pass<'a> {
        Pass {
            a: self.a,
            n: self.n,
            p: self.p,
            rhs,
            kk,
            kb,
        }
    }

    /// A pass over the batch rows `idx` with right-hand side `rhs` (`p × kk`) and `kb` back-product
    /// columns.
    pub fn batch(&self, idx: &'a [usize], rhs: &'a [f64], kk: usize, kb: usize) -> BatchPass<'a> {
        BatchPass {
            a: self.a,
            p: self.p,
            idx,
            rhs,
            kk,
            kb,
        }
    }
}

impl<'a> From<&'a super::data::Design> for Rows<'a> {
    fn from(d: &'a super::data::Design) -> Self {
        Rows {
            a: &d.features,
            labels: &d.labels,
            n: d.n,
            p: d.p,
        }
    }
}

/// `yv ← [Y V]` row by row: `yv[j, 0..k] = Y[j, :]`, `yv[j, k..2k] = V[j, :]`.
pub fn interleave(y: &[f64], v: &[f64], k: usize, yv: &mut [f64]) {
    if k == 1 {
        // Entry by entry: a `copy_from_slice` of one entry is a `memcpy` call.
        for ((dst, &yj), &vj) in yv.chunks_exact_mut(2).zip(y).zip(v) {
            dst[0] = yj;
            dst[1] = vj;
        }
        return;
    }
    for ((dst, yr), vr) in yv
        .chunks_exact_mut(2 * k)
        .zip(y.chunks_exact(k))
        .zip(v.chunks_exact(k))
    {
        dst[..k].copy_from_slice(yr);
        dst[k..].copy_from_slice(vr);
    }
}

/// One row of the gradient: `g ← c (s − e_t)` from the logits `z`; returns `CE = lse(z) − z_t`.
#[inline]
fn gradient_row(z: &[f64], g: &mut [f64], t: usize, c: f64) -> f64 {
    let ce = softmax_lse(z, g) - z[t];
    g.iter_mut().for_each(|v| *v *= c);
    g[t] -= c;
    ce
}

/// One row of the HVP: `g ← c s ⊙ (u − ⟨s, u⟩)` from `zu = [z u]` (`2k` entries, `k = g.len()`).
#[inline]
fn hvp_row(zu: &[f64], g: &mut [f64], c: f64) {
    let (zi, ui) = zu.split_at(g.len());
    softmax_lse(zi, g);
    let su: f64 = g.iter().zip(ui).map(|(s, u)| s * u).sum();
    g.iter_mut()
        .zip(ui)
        .for_each(|(s, u)| *s = c * *s * (u - su));
}

/// One row's directional derivative `⟨s − e_t, u⟩` from `zu = [z u]` (`2k` entries).
#[inline]
fn directional_row(zu: &[f64], t: usize) -> f64 {
    let (zi, ui) = zu.split_at(zu.len() / 2);
    let lse = log_sum_exp(zi);
    let su: f64 = zi.iter().zip(ui).map(|(z, u)| (z - lse).exp() * u).sum();
    su - ui[t]
}

/// `Σ_i c_i CE_i`; with a non-empty `row_out`, also `row_out[i] = r_i CE_i`.
pub fn value(
    e: &mut Engine,
    d: Rows<'_>,
    k: usize,
    y: &[f64],
    c: &(impl Fn(usize) -> f64 + Sync),
    r: &(impl Fn(usize) -> f64 + Sync),
    row_out: &mut [f64],
) -> f64 {
    let pass = d.pass(y, k, 0);
    let labels = d.labels;
    let map = |r0: usize, z: &[f64], _g: &mut [f64], ro: &mut [f64]| {
        let mut tot = 0.0;
        for (i, zi) in z.chunks_exact(k).enumerate() {
            let row = r0 + i;
            let ce = log_sum_exp(zi) - zi[labels[row] as usize];
            if !ro.is_empty() {
                ro[i] = r(row) * ce;
            }
            tot += c(row) * ce;
        }
        tot
    };
    e.pass(&pass, &mut [], row_out, &map)
}

/// `out ← Aᵀ[c ⊙ (S − T)]` (the gradient of `Σ_i c_i CE_i` in Y, `p × k`); returns
/// `Σ_i c_i CE_i`; with a non-empty `row_out`, also `row_out[i] = r_i CE_i`.
#[allow(clippy::too_many_arguments)]
pub fn gradient(
    e: &mut Engine,
    d: Rows<'_>,
    k: usize,
    y: &[f64],
    c: &(impl Fn(usize) -> f64 + Sync),
    r: &(impl Fn(usize) -> f64 + Sync),
    out: &mut [f64],
    row_out: &mut [f64],
) -> f64 {
    let pass = d.pass(y, k, k);
    let labels = d.labels;
    let map = |r0: usize, z: &[f64], g: &mut [f64], ro: &mut [f64]| {
        let mut tot = 0.0;
        for (i, (zi, gi)) in z.chunks_exact(k).zip(g.chunks_exact_mut(k)).enumerate() {
            let row = r0 + i;
            let ci = c(row);
            let ce = gradient_row(zi, gi, labels[row] as usize, ci);
            if !ro.is_empty() {
                ro[i] = r(row) * ce;
            }
            tot += ci * ce;
        }
        tot
    };
    e.pass(&pass, out, row_out, &map)
}

/// `out ← Aᵀ[c ⊙ (S ⊙ U − S ⊙ rowsum(S ⊙ U))]`, `U = A V`, from `yv = [Y V]`
/// ([`interleave`]): the Hessian of `Σ_i c_i CE_i` in Y applied to V.
pub fn hvp(
    e: &mut Engine,
    d: Rows<'_>,
    k: usize,
    yv: &[f64],
    c: &(impl Fn(usize) -> f64 + Sync),
    out: &mut [f64],
) {
    let pass = d.pass(yv, 2 * k, k);
    let map = |r0: usize, z: &[f64], g: &mut [f64], _ro: &mut [f64]| {
        for (i, (zu, gi)) in z.chunks_exact(2 * k).zip(g.chunks_exact_mut(k)).enumerate() {
            hvp_row(zu, gi, c(r0 + i));
        }
        0.0
    };
    e.pass(&pass, out, &mut [], &map);
}

/// `row_out[i] = c_i ⟨s_i − e_{t_i}, u_i⟩` (the derivative of `c_i CE_i` along V), from
/// `yv = [Y V]` ([`interleave`]).
pub fn directional_rows(
    e: &mut Engine,
    d: Rows<'_>,
    k: usize,
    yv: &[f64],
    c: &(impl Fn(usize) -> f64 + Sync),
    row_out: &mut [f64],
) {
    let pass = d.pass(yv, 2 * k, 0);
    let labels = d.labels;
    let map = |r0: usize, z: &[f64], _g: &mut [f64], ro: &mut [f64]| {
        for (i, zu) in z.chunks_exact(2 * k).enumerate() {
            let row = r0 + i;
            ro[i] = c(row) * directional_row(zu, labels[row] as usize);
        }
        0.0
    };
    e.pass(&pass, &mut [], row_out, &map);
}

/// `each(i, CE_i)` for every row `i` of the batch `idx` (once per occurrence).
pub fn batch_values(
    e: &mut BatchEngine,
    d: Rows<'_>,
    k: usize,
    idx: &[usize],
    y: &[f64],
    mut each: impl FnMut(usize, f64),
) {
    let labels = d.labels;
    e.pass(&d.batch(idx, y, k, 0), &mut [], |rows, z, _g| {
        for (&i, zi) in rows.iter().zip(z.chunks_exact(k)) {
            each(i, log_sum_exp(zi) - zi[labels[i] as usize]);
        }
        0.0
    });
}

/// `out ← Σ_{i∈B} c_i a_i (s_i − e_{t_i})ᵀ` (`p × k`, the gradient of `Σ_{i∈B} c_i CE_i` in Y,
/// repeats counted); returns `Σ_{i∈B} c_i CE_i`.
pub fn batch_gradient(
    e: &mut BatchEngine,
    d: Rows<'_>,
    k: usize,
    idx: &[usize],
    y: &[f64],
    c: impl Fn(usize) -> f64,
    out: &mut [f64],
) -> f64 {
    let labels = d.labels;
    e.pass(&d.batch(idx, y, k, k), out, |rows, z, g| {
        let mut tot = 0.0;
        for ((&i, zi), gi) in rows
            .iter()
            .zip(z.chunks_exact(k))
            .zip(g.chunks_exact_mut(k))
        {
            let ci = c(i);
            tot += ci * gradient_row(zi, gi, labels[i] as usize, ci);
        }
        tot
    })
}

/// `out ← Σ_{i∈B} c_i a_i [(diag s_i − s_i s_iᵀ) u_i]ᵀ`, `u_i = Vᵀa_i`, from `yv = [Y V]`
/// ([`interleave`]): the Hessian of `Σ_{i∈B} c_i CE_i` in Y applied to V.
pub fn batch_hvp(
    e: &mut BatchEngine,
    d: Rows<'_>,
    k: usize,
    idx: &[usize],
    yv: &[f64],
    c: impl Fn(usize) -> f64,
    out: &mut [f64],
) {
    e.pass(&d.batch(idx, yv, 2 * k, k), out, |rows, z, g| {
        for ((&i, zu), gi) in rows
            .iter()
            .zip(z.chunks_exact(2 * k))
            .zip(g.chunks_exact_mut(k))
        {
            hvp_row(zu, gi, c(i));
        }
        0.0
    });
}

/// `each(i, ⟨s_i − e_{t_i}, u_i⟩)` (the derivative of `CE_i` along V) for every row `i` of the
/// batch (once per occurrence), from `yv = [Y V]` ([`interleave`]).
pub fn batch_directional(
    e: &mut BatchEngine,
    d: Rows<'_>,
    k: usize,
    idx: &[usize],
    yv: &[f64],
    mut each: impl FnMut(usize, f64),
) {
    let labels = d.labels;
    e.pass(&d.batch(idx, yv, 2 * k, 0), &mut [], |rows, z, _g| {
        for (&i, zu) in rows.iter().zip(z.chunks_exact(2 * k)) {
            each(i, directional_row(zu, labels[i] as usize));
        }
        0.0
    });
}

/// [`batch_gradient`], [`batch_hvp`] and [`batch_directional`] in one pass over the batch rows,
/// from `yv = [Y V]`: `out` (`p × 2k`) ← row `j` = `[∇_Y row j | HV row j]`, i.e.
/// `Σ_{i∈B} a_i [c_i (s_i − e_{t_i})ᵀ | c_i ((diag s_i − s_i s_iᵀ) u_i)ᵀ]`, and
/// `each(i, ⟨s_i − e_{t_i}, u_i⟩)` per batch row; one softmax per row serves all three.
#[allow(clippy::too_many_arguments)]
pub fn batch_lower(
    e: &mut BatchEngine,
    d: Rows<'_>,
    k: usize,
    idx: &[usize],
    yv: &[f64],
    c: impl Fn(usize) -> f64,
    out: &mut [f64],
    mut each: impl FnMut(usize, f64),
) {
    let labels = d.labels;
    e.pass(&d.batch(idx, yv, 2 * k, 2 * k), out, |rows, z, g| {
        for ((&i, zu), gi) in rows
            .iter()
            .zip(z.chunks_exact(2 * k))
            .zip(g.chunks_exact_mut(2 * k))
        {
            let t = labels[i] as usize;
            let ci = c(i);
            let (zi, ui) = zu.split_at(k);
            let (gg, gh) = gi.split_at_mut(k);
            softmax_lse(zi, gg);
            let su: f64 = gg.iter().zip(ui).map(|(s, u)| s * u).sum();
            for ((h, s), u) in gh.iter_mut().zip(gg.iter()).zip(ui) {
                *h = ci * *s * (u - su);
            }
            gg.iter_mut().for_each(|v| *v *= ci);
            gg[t] -= ci;
            each(i, su - ui[t]);
        }
        0.0
    });
}

/// Number of rows whose largest logit is at the label.
pub fn correct(e: &mut Engine, d: Rows<'_>, k: usize, y: &[f64]) -> usize {
    let pass = d.pass(y, k, 0);
    let labels = d.labels;
    let map = |r0: usize, z: &[f64], _g: &mut [f64], _ro: &mut [f64]| {
        z.chunks_exact(k)
            .enumerate()
            .filter(|(i, zi)| argmax(zi) == labels[r0 + i] as usize)
            .count() as f64
    };
    e.pass(&pass, &mut [], &mut [], &map) as usize
}
