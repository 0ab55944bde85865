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

use super::kernels::{argmax, log_sum_exp, softmax_lse, Engine, Pass};

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
    for ((dst, yr), vr) in yv
        .chunks_exact_mut(2 * k)
        .zip(y.chunks_exact(k))
        .zip(v.chunks_exact(k))
    {
        dst[..k].copy_from_slice(yr);
        dst[k..].copy_from_slice(vr);
    }
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
            let t = labels[row] as usize;
            let ce = softmax_lse(zi, gi) - zi[t];
            let ci = c(row);
            gi.iter_mut().for_each(|v| *v *= ci);
            gi[t] -= ci;
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
            let (zi, ui) = zu.split_at(k);
            softmax_lse(zi, gi);
            let su: f64 = gi.iter().zip(ui).map(|(s, u)| s * u).sum();
            let ci = c(r0 + i);
            gi.iter_mut()
                .zip(ui)
                .for_each(|(s, u)| *s = ci * *s * (u - su));
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
            let (zi, ui) = zu.split_at(k);
            let lse = log_sum_exp(zi);
            let su: f64 = zi.iter().zip(ui).map(|(z, u)| (z - lse).exp() * u).sum();
            ro[i] = c(row) * (su - ui[labels[row] as usize]);
        }
        0.0
    };
    e.pass(&pass, &mut [], row_out, &map);
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
