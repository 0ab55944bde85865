//! Gradients and Hessian-vector products of a scalar loss with respect to (a subset of) a
//! model's parameters.
//!
//! - [`gradient`]: one backward pass, `∇_θ L` (detached).
//! - [`hvp`]: exact `H v = ∇_θ ⟨∇_θ L, v⟩` by double backward (needs
//!   [`enable_double_backward`](crate::enable_double_backward)).
//! - [`hvp_fd`]: the labelled fallback `(∇L(θ + εv) − ∇L(θ − εv)) / (2ε)`, error O(ε²).

use bilevel_core::Vector;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::params::{ParamVec, Params};

/// How Hessian-vector products are computed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum HvpMode {
    /// Exact, by double backward.
    #[default]
    Exact,
    /// Central finite differences of gradients with step `eps · max(1, ‖θ‖) / ‖v‖`.
    FiniteDifference {
        /// Relative step.
        eps: f64,
    },
}

/// `∇_θ L` for the parameters `sel`, detached; an error names any parameter without gradient.
pub fn gradient(loss: &Tensor, params: &Params, sel: &[usize]) -> Result<ParamVec> {
    let grads = loss.backward()?;
    let mut out = Vec::with_capacity(sel.len());
    for &i in sel {
        match grads.get(params.get(i)) {
            Some(g) => out.push(g.detach()),
            None => {
                return Err(NnError::MissingGradient {
                    param: params.names()[i].clone(),
                    pass: "backward",
                    hint: " (the loss does not depend on it: leave it out of the selection)",
                })
            }
        }
    }
    Ok(ParamVec(out))
}

/// `L` and `∇_θ L` for the parameters `sel`, `L` built by `loss` from the current values.
pub fn value_and_gradient(
    loss: &dyn Fn() -> Result<Tensor>,
    params: &Params,
    sel: &[usize],
) -> Result<(f64, ParamVec)> {
    let l = loss()?;
    let value = scalar(&l)?;
    Ok((value, gradient(&l, params, sel)?))
}

/// The value of a scalar tensor as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// Exact `H v = ∇_θ ⟨∇_θ L(θ), v⟩` for the parameters `sel` (others held fixed), by double
/// backward; `loss` builds `L` from the current parameter values. Cost ≈ a forward, a
/// backward and the backward of the backward.
///
/// Errors with [`NnError::DoubleBackwardDisabled`] when `CANDLE_GRAD_DO_NOT_DETACH` is not
/// set (candle would silently return no second-order gradient). A parameter whose gradient
/// does not depend on `θ` at all gets a zero row.
pub fn hvp(
    loss: &dyn Fn() -> Result<Tensor>,
    params: &Params,
    sel: &[usize],
    v: &ParamVec,
) -> Result<ParamVec> {
    if !crate::double_backward_enabled() {
        return Err(NnError::DoubleBackwardDisabled);
    }
    let l = loss()?;
    let grads = l.backward()?;
    let mut s: Option<Tensor> = None;
    for (k, &i) in sel.iter().enumerate() {
        let g = grads
            .get(params.get(i))
            .ok_or_else(|| NnError::MissingGradient {
                param: params.names()[i].clone(),
                pass: "backward",
                hint: " (the loss does not depend on it: leave it out of the selection)",
            })?;
        let term = (g * v.0[k].detach())?.sum_all()?;
        s = Some(match s {
            None => term,
            Some(acc) => (acc + term)?,
        });
    }
    let Some(s) = s else {
        return Ok(ParamVec(Vec::new()));
    };
    let grads2 = s.backward()?;
    let mut out = Vec::with_capacity(sel.len());
    let mut any = false;
    for &i in sel {
        match grads2.get(params.get(i)) {
            Some(h) => {
                any = true;
                out.push(h.detach());
            }
            None => out.push(params.get(i).zeros_like()?),
        }
    }
    if !any && v.norm() > 0.0 {
        return Err(NnError::MissingGradient {
            param: params.names()[sel[0]].clone(),
            pass: "double backward",
            hint: " (no parameter did: was CANDLE_GRAD_DO_NOT_DETACH set after this thread's first backward?)",
        });
    }
    Ok(ParamVec(out))
}

/// The finite-difference fallback `H v ≈ (∇L(θ + hv) − ∇L(θ − hv)) / (2h)` with
/// `h = eps · max(1, ‖θ_sel‖) / ‖v‖` (error O(h²)); the parameters are restored afterwards.
pub fn hvp_fd(
    loss: &dyn Fn() -> Result<Tensor>,
    params: &Params,
    sel: &[usize],
    v: &ParamVec,
    eps: f64,
) -> Result<ParamVec> {
    let vn = v.norm();
    if vn == 0.0 {
        return ParamVec::zeros(params, sel);
    }
    let theta = params.values(sel)?;
    let h = eps * theta.norm().max(1.0) / vn;
    let run = || -> Result<ParamVec> {
        params.add_scaled(sel, h, v)?;
        let (_, mut gp) = value_and_gradient(loss, params, sel)?;
        params.set(sel, &theta)?;
        params.add_scaled(sel, -h, v)?;
        let (_, gm) = value_and_gradient(loss, params, sel)?;
        gp.axpy(-1.0, &gm);
        gp.scale(0.5 / h);
        Ok(gp)
    };
    let out = run();
    params.set(sel, &theta)?;
    out
}

/// `H v` by the selected [`HvpMode`].
pub fn hvp_with(
    mode: HvpMode,
    loss: &dyn Fn() -> Result<Tensor>,
    params: &Params,
    sel: &[usize],
    v: &ParamVec,
) -> Result<ParamVec> {
    match mode {
        HvpMode::Exact => hvp(loss, params, sel, v),
        HvpMode::FiniteDifference { eps } => hvp_fd(loss, params, sel, v, eps),
    }
}
