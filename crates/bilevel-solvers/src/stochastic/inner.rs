//! The inner loop of the double-loop stochastic solvers: `K` warm-started SGD steps on the lower
//! level, `y ← Π(y − ρ ∇_y g_i(x, y))` on fresh lower batches `i` ([`sgd_lower`]; StocBiO, BSA,
//! AmIGO), a kept copy of a lower batch for reuse ([`KeptBatch`]; TTSA, MRBO, SUSTAIN), and the
//! double loop of StocBiO and BSA ([`DoubleLoop`]): inner SGD, an upper batch `j`,
//! `v ≈ H⁻¹∇_y f_j` by a Neumann estimate ([`super::neumann`]), `d = ∇_x f_j − J_i v` on a fresh
//! lower batch `i`, `x ← x − γ_t d`.

use super::neumann::{inverse_hvp, Neumann, NeumannWork, System};
use super::{descend, Common, Context, Schedule};
use crate::State;
use bilevel_core::{Batch, Bilevel, Counted, Vector};

/// `steps` SGD steps `y ← Π(y − step ∇_y g_i(x, y))`, each on a fresh lower batch.
pub(crate) fn sgd_lower<P: Bilevel + ?Sized>(
    p: &Counted<P>,
    x: &[f64],
    y: &mut P::Y,
    ctx: &mut Context,
    step: f64,
    steps: usize,
    gy: &mut P::Y,
) {
    for _ in 0..steps {
        p.grad_g_y_batch(x, y, &ctx.inner_batch(), gy);
        y.axpy(-step, gy);
        p.project_y(y);
    }
}

/// A copy of a lower batch, kept while other batches are drawn (the same batch `i` for a
/// gradient and a later cross product, as in TTSA, MRBO and SUSTAIN). Holds the sampler's
/// (clamped) batch size, so keeping a batch never allocates.
pub(crate) struct KeptBatch {
    indices: Vec<usize>,
    weight: f64,
    chunk: Option<usize>,
}

impl KeptBatch {
    /// Room for the batches of `ctx`'s lower sampler.
    pub(crate) fn for_lower(ctx: &Context) -> Self {
        KeptBatch {
            indices: Vec::with_capacity(ctx.inner.batch_size()),
            weight: 0.0,
            chunk: None,
        }
    }
    /// Copy `b`.
    pub(crate) fn keep(&mut self, b: &Batch<'_>) {
        self.indices.clear();
        self.indices.extend_from_slice(b.indices);
        self.weight = b.weight;
        self.chunk = b.chunk;
    }
    /// The kept batch.
    pub(crate) fn get(&self) -> Batch<'_> {
        Batch {
            indices: &self.indices,
            weight: self.weight,
            chunk: self.chunk,
        }
    }
}

/// The double loop shared by StocBiO and BSA: `K` inner SGD steps, an upper batch, a Neumann
/// estimate of `H⁻¹∇_y f`, a cross product on a fresh lower batch, the outer step.
pub(crate) struct DoubleLoop<Y> {
    pub(crate) common: Common,
    pub(crate) schedule: Schedule,
    pub(crate) inner_steps: usize,
    pub(crate) depth: usize,
    pub(crate) eta: f64,
    /// Draw the depth (HIA) instead of summing the series.
    pub(crate) truncated: bool,
    /// The last drawn depth (HIA).
    pub(crate) last_draws: usize,
    work: Option<LoopWork<Y>>,
    d: Vec<f64>,
}

struct LoopWork<Y> {
    gy: Y,
    fy: Y,
    neumann: NeumannWork<Y>,
    jv: Vec<f64>,
}

impl<Y: Vector> DoubleLoop<Y> {
    /// The loop for an `m`-dimensional `x`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        common: Common,
        exponents: (f64, f64),
        inner_steps: usize,
        depth: usize,
        eta: f64,
        truncated: bool,
        m: usize,
    ) -> Self {
        DoubleLoop {
            schedule: Schedule::new(&common, exponents.0, exponents.1),
            eta,
            common,
            inner_steps,
            depth,
            truncated,
            last_draws: 0,
            work: None,
            d: vec![0.0; m],
        }
    }

    /// One iteration.
    pub(crate) fn step<P: Bilevel<Y = Y> + ?Sized>(
        &mut self,
        p: &Counted<P>,
        state: &mut State<Y>,
        ctx: &mut Context,
    ) {
        let (rho, gamma) = self.schedule.at(ctx.t);
        let (x, y) = (&mut state.x, &mut state.y);
        let w = self.work.get_or_insert_with(|| LoopWork {
            gy: y.zeros_like(),
            fy: y.zeros_like(),
            neumann: NeumannWork::like(y),
            jv: vec![0.0; x.len()],
        });
        sgd_lower(p, x, y, ctx, rho, self.inner_steps, &mut w.gy);
        p.grad_f_batch(x, y, &ctx.outer_batch(), &mut self.d, &mut w.fy);
        let kind = Neumann::pick(ctx, self.depth, self.truncated, &mut self.last_draws);
        let sys = System {
            x,
            y,
            b: &mut w.fy,
            work: &mut w.neumann,
        };
        inverse_hvp(p, ctx, self.eta, kind, sys, None);
        // d = ∇_x f_j − J_i v on a fresh lower batch.
        p.cross_batch(x, y, &ctx.inner_batch(), &w.fy, &mut w.jv);
        bilevel_core::vector::axpy(&mut self.d, -1.0, &w.jv);
        descend(x, gamma, &self.d);
    }

    /// The last direction.
    pub(crate) fn direction(&self) -> &[f64] {
        &self.d
    }
}
