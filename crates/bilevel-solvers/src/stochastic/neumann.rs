//! Neumann-series estimates of `v = H⁻¹ b`, `H = ∇²_yy g(x, y)`, from minibatch Hessian-vector
//! products, shared by StocBiO, BSA, TTSA, MRBO and SUSTAIN.
//!
//! * the sum (Ji, Yang & Liang 2021, Algorithm 3): `v = η Σ_{q=0}^{Q} Π_{l≤q}(I − η H_{k_l}) b`
//!   on `Q` fresh lower batches (`Q` HVPs);
//! * the truncated product, HIA (Ghadimi & Wang 2018): `v = Q η Π_{l<p}(I − η H_{k_l}) b` with
//!   `p` uniform in `0..Q` ([`draw_depth`]), whose mean over `p` is `η Σ_{q<Q}(I − ηH)^q b`.
//!
//! Both are biased: `η Σ_{q≤Q}(I − ηH)^q = H⁻¹(I − (I − ηH)^{Q+1})` misses the fraction
//! `(1 − ηλ)^{Q+1}` of `H⁻¹` on an eigenvalue λ of H (η below `2/L` of the batch Hessians).

use super::Context;
use bilevel_core::{Bilevel, Counted, Vector};

/// Which Neumann-series estimate of `H⁻¹ b` to form (η the series step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Neumann {
    /// `η Σ_{q=0}^{Q} Π_{l≤q}(I − η H_{k_l}) b` on `Q` fresh lower batches (Ji, Yang & Liang
    /// 2021, Algorithm 3; StocBiO, MRBO).
    Sum {
        /// Q.
        depth: usize,
    },
    /// `Q η Π_{l<p}(I − η H_{k_l}) b` on `p` fresh lower batches, `p` drawn uniformly from
    /// `0..Q` by the caller ([`draw_depth`]; Ghadimi & Wang 2018, the HIA of BSA, TTSA and
    /// SUSTAIN). Its mean over `p` is `η Σ_{q<Q} (I − ηH)^q b`.
    Truncated {
        /// Q.
        depth: usize,
        /// The drawn p.
        draws: usize,
    },
}

impl Neumann {
    /// This iteration's estimate of depth `Q = depth`: with `truncated`, HIA with a fresh `p`
    /// ([`draw_depth`], also stored in `last_draws`); otherwise the sum (no draw).
    pub(crate) fn pick(
        ctx: &mut Context,
        depth: usize,
        truncated: bool,
        last_draws: &mut usize,
    ) -> Self {
        if truncated {
            *last_draws = draw_depth(ctx, depth);
            Neumann::Truncated {
                depth,
                draws: *last_draws,
            }
        } else {
            Neumann::Sum { depth }
        }
    }
}

/// Draw the HIA depth `p`, uniform in `0..depth` (`depth ≥ 1`), from the run's random stream.
fn draw_depth(ctx: &mut Context, depth: usize) -> usize {
    ctx.rng.below(depth as u64) as usize
}

/// Workspace of one Neumann estimate.
pub(crate) struct NeumannWork<Y> {
    term: Y,
    hv: Y,
}

impl<Y: Vector> NeumannWork<Y> {
    /// Buffers shaped like `y`.
    pub(crate) fn like(y: &Y) -> Self {
        NeumannWork {
            term: y.zeros_like(),
            hv: y.zeros_like(),
        }
    }
}

/// One linear system `H(x, y) v = b` of a Neumann estimate: `b` holds the right-hand side on
/// entry and the estimate on return.
pub(crate) struct System<'a, Y> {
    /// Upper point.
    pub x: &'a [f64],
    /// Lower point (where `H` is taken).
    pub y: &'a Y,
    /// Right-hand side in, estimate out.
    pub b: &'a mut Y,
    /// Buffers.
    pub work: &'a mut NeumannWork<Y>,
}

/// The Neumann estimate `kind` of `H⁻¹ b` for `first` and, when given, `second` with the same
/// lower batches (the joint estimates of MRBO and SUSTAIN at the new and the previous iterate).
pub(crate) fn inverse_hvp<'a, P: Bilevel + ?Sized>(
    p: &Counted<P>,
    ctx: &mut Context,
    eta: f64,
    kind: Neumann,
    mut first: System<'a, P::Y>,
    mut second: Option<System<'a, P::Y>>,
) {
    match kind {
        Neumann::Sum { depth } => {
            for s in std::iter::once(&mut first).chain(second.as_mut()) {
                s.work.term.assign(s.b);
            }
            for _ in 0..depth {
                let batch = ctx.inner.next_batch();
                for s in std::iter::once(&mut first).chain(second.as_mut()) {
                    p.hvp_batch(s.x, s.y, &batch, &s.work.term, &mut s.work.hv);
                    s.work.term.axpy(-eta, &s.work.hv);
                    s.b.axpy(1.0, &s.work.term);
                }
            }
            for s in std::iter::once(&mut first).chain(second.as_mut()) {
                s.b.scale(eta);
            }
        }
        Neumann::Truncated { depth, draws } => {
            for _ in 0..draws {
                let batch = ctx.inner.next_batch();
                for s in std::iter::once(&mut first).chain(second.as_mut()) {
                    p.hvp_batch(s.x, s.y, &batch, s.b, &mut s.work.hv);
                    s.b.axpy(-eta, &s.work.hv);
                }
            }
            for s in std::iter::once(&mut first).chain(second.as_mut()) {
                s.b.scale(depth as f64 * eta);
            }
        }
    }
}
