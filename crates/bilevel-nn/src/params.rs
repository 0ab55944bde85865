//! Named model parameters ([`Params`]) and parameter-space vectors ([`ParamVec`]).

use std::collections::HashMap;
use std::path::Path;

use bilevel_core::Vector;
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{NnError, Result};

/// A model's parameters: candle variables with names, in a fixed order.
#[derive(Clone, Debug)]
pub struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self {
            names: Vec::new(),
            vars: Vec::new(),
        }
    }

    /// Adds a parameter with initial value `value`; returns its index.
    pub fn push(&mut self, name: impl Into<String>, value: &Tensor) -> Result<usize> {
        self.names.push(name.into());
        self.vars.push(Var::from_tensor(value)?);
        Ok(self.vars.len() - 1)
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// `true` without parameters.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// Scalar parameters in the tensors `sel`.
    pub fn numel_of(&self, sel: &[usize]) -> usize {
        sel.iter().map(|&i| self.vars[i].elem_count()).sum()
    }

    /// The parameter names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The variables, in order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The `i`-th parameter's current value (tracked: gradients flow to it).
    pub fn get(&self, i: usize) -> &Tensor {
        self.vars[i].as_tensor()
    }

    /// All parameter indices `0..len`.
    pub fn all(&self) -> Vec<usize> {
        (0..self.len()).collect()
    }

    /// Indices of the parameters whose name starts with one of `prefixes` (a parameter subset
    /// such as the last blocks, for a memory-bounded Krylov solve).
    pub fn select_prefixes(&self, prefixes: &[String]) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| {
                prefixes
                    .iter()
                    .any(|p| self.names[i].starts_with(p.as_str()))
            })
            .collect()
    }

    /// The dtype of the parameters (that of the first one; `F32` when empty).
    pub fn dtype(&self) -> DType {
        self.vars.first().map_or(DType::F32, |v| v.dtype())
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.vars
            .first()
            .map_or(Device::Cpu, |v| v.device().clone())
    }

    /// A detached copy of the values of the parameters `sel`.
    pub fn values(&self, sel: &[usize]) -> Result<ParamVec> {
        sel.iter()
            .map(|&i| Ok(self.vars[i].as_tensor().detach().copy()?))
            .collect::<Result<Vec<_>>>()
            .map(ParamVec)
    }

    /// Overwrites the parameters `sel` with `value` (same shapes).
    pub fn set(&self, sel: &[usize], value: &ParamVec) -> Result<()> {
        for (k, &i) in sel.iter().enumerate() {
            self.vars[i].set(&value.0[k])?;
        }
        Ok(())
    }

    /// `θ_sel ← θ_sel + alpha · d` in place.
    pub fn add_scaled(&self, sel: &[usize], alpha: f64, d: &ParamVec) -> Result<()> {
        for (k, &i) in sel.iter().enumerate() {
            let t = self.vars[i].as_tensor();
            let upd = (t.detach() + d.0[k].affine(alpha, 0.0)?)?;
            self.vars[i].set(&upd)?;
        }
        Ok(())
    }

    /// A deep copy with fresh variables (the copy's updates do not touch `self`).
    pub fn deep_clone(&self) -> Result<Self> {
        let mut out = Self::new();
        for (n, v) in self.names.iter().zip(&self.vars) {
            out.push(n.clone(), &v.as_tensor().detach().copy()?)?;
        }
        Ok(out)
    }

    /// Writes the parameters to a safetensors file (names as keys).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> = self
            .names
            .iter()
            .zip(&self.vars)
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect();
        candle_core::safetensors::save(&map, path).map_err(|e| NnError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Loads values saved by [`save_safetensors`](Self::save_safetensors) into these
    /// parameters; every name must be present with the same shape.
    pub fn load_safetensors(&self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        let map =
            candle_core::safetensors::load(path, &self.device()).map_err(|e| NnError::Format {
                path: name.clone(),
                reason: e.to_string(),
            })?;
        for (n, v) in self.names.iter().zip(&self.vars) {
            let t = map.get(n).ok_or_else(|| NnError::Format {
                path: name.clone(),
                reason: format!("no tensor named `{n}`"),
            })?;
            if t.dims() != v.dims() {
                return Err(NnError::Format {
                    path: name.clone(),
                    reason: format!(
                        "tensor `{n}` has shape {:?}, the model expects {:?}",
                        t.dims(),
                        v.dims()
                    ),
                });
            }
            v.set(&t.to_dtype(v.dtype())?)?;
        }
        Ok(())
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::new()
    }
}

/// A vector in (a subset of) parameter space: one tensor per parameter, detached.
///
/// Implements [`Vector`] with the Euclidean inner product `⟨a, b⟩ = Σ_k Σ a_k ⊙ b_k`,
/// accumulated in f64. The trait's methods cannot return errors: a shape mismatch between
/// two vectors of the same model is a programming error and panics with a message.
#[derive(Clone, Debug)]
pub struct ParamVec(pub Vec<Tensor>);

fn must<T>(r: candle_core::Result<T>, op: &str) -> T {
    match r {
        Ok(t) => t,
        Err(e) => panic!("ParamVec::{op}: {e}"),
    }
}

impl ParamVec {
    /// Zeros shaped like the parameters `sel`.
    pub fn zeros(params: &Params, sel: &[usize]) -> Result<Self> {
        sel.iter()
            .map(|&i| Ok(params.get(i).zeros_like()?))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// All entries, concatenated in order, as f64 (for tests and small dense references).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.dim());
        for t in &self.0 {
            out.extend(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    /// The same shapes as `self` filled from `values` (concatenated order).
    pub fn from_f64_like(&self, values: &[f64]) -> Result<Self> {
        let mut at = 0;
        let mut out = Vec::with_capacity(self.0.len());
        for t in &self.0 {
            let n = t.elem_count();
            let part = Tensor::from_slice(&values[at..at + n], t.dims(), t.device())?;
            out.push(part.to_dtype(t.dtype())?);
            at += n;
        }
        Ok(Self(out))
    }

    /// A standard normal vector shaped like `self`, drawn from `seed`.
    pub fn randn_like(&self, seed: u64) -> Self {
        let mut rng = bilevel_core::rng::Rng::new(seed);
        let mut v = self.zeros_like();
        v.fill_with(&mut || rng.normal());
        v
    }

    /// `‖self − reference‖ / ‖reference‖`.
    pub fn relative_error(&self, reference: &Self) -> f64 {
        let mut d = self.clone();
        d.axpy(-1.0, reference);
        d.norm() / reference.norm()
    }

    /// The tensors converted to `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        self.0
            .iter()
            .map(|t| Ok(t.to_dtype(dtype)?))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }
}

impl Vector for ParamVec {
    fn dot(&self, other: &Self) -> f64 {
        let mut s = 0.0;
        for (a, b) in self.0.iter().zip(&other.0) {
            let p = must((a * b).and_then(|p| p.sum_all()), "dot");
            s += must(
                p.to_dtype(DType::F64).and_then(|p| p.to_scalar::<f64>()),
                "dot",
            );
        }
        s
    }

    fn axpy(&mut self, alpha: f64, x: &Self) {
        for (a, b) in self.0.iter_mut().zip(&x.0) {
            *a = must(b.affine(alpha, 0.0).and_then(|bx| a.add(&bx)), "axpy");
        }
    }

    fn scale(&mut self, alpha: f64) {
        for a in &mut self.0 {
            *a = must(a.affine(alpha, 0.0), "scale");
        }
    }

    fn xpby(&mut self, x: &Self, beta: f64) {
        for (a, b) in self.0.iter_mut().zip(&x.0) {
            *a = must(a.affine(beta, 0.0).and_then(|ab| ab.add(b)), "xpby");
        }
    }

    fn assign(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = must(b.copy(), "assign");
        }
    }

    fn set_zero(&mut self) {
        for a in &mut self.0 {
            *a = must(a.zeros_like(), "set_zero");
        }
    }

    fn zeros_like(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|a| must(a.zeros_like(), "zeros_like"))
                .collect(),
        )
    }

    fn dim(&self) -> usize {
        self.0.iter().map(|t| t.elem_count()).sum()
    }

    fn is_finite(&self) -> bool {
        self.0.iter().all(|t| {
            let s = must(
                t.abs()
                    .and_then(|a| a.max_keepdim(0).and_then(|m| m.flatten_all()))
                    .and_then(|m| m.max(0))
                    .and_then(|m| m.to_dtype(DType::F64))
                    .and_then(|m| m.to_scalar::<f64>()),
                "is_finite",
            );
            s.is_finite()
        })
    }

    fn fill_with(&mut self, next: &mut dyn FnMut() -> f64) {
        for a in &mut self.0 {
            let vals: Vec<f64> = (0..a.elem_count()).map(|_| next()).collect();
            let t = must(Tensor::from_vec(vals, a.dims(), a.device()), "fill_with");
            *a = must(t.to_dtype(a.dtype()), "fill_with");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Params, ParamVec, ParamVec) {
        let dev = Device::Cpu;
        let mut p = Params::new();
        p.push(
            "a",
            &Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0]], &dev).unwrap(),
        )
        .unwrap();
        p.push("b.bias", &Tensor::new(&[5.0f64, -1.0, 0.5], &dev).unwrap())
            .unwrap();
        let all = p.all();
        let x = p.values(&all).unwrap();
        let y = x
            .from_f64_like(&[1.0, -1.0, 2.0, 0.0, 3.0, 1.0, -2.0])
            .unwrap();
        (p, x, y)
    }

    #[test]
    fn vector_ops_match_flat_arithmetic() {
        let (_, x, y) = sample();
        let xf = x.to_f64_vec().unwrap();
        let yf = y.to_f64_vec().unwrap();
        let dot: f64 = xf.iter().zip(&yf).map(|(a, b)| a * b).sum();
        assert_eq!(x.dot(&y), dot);
        assert_eq!(x.dim(), 7);
        let mut z = x.clone();
        z.axpy(-2.0, &y);
        let zf = z.to_f64_vec().unwrap();
        for k in 0..7 {
            assert_eq!(zf[k], xf[k] - 2.0 * yf[k]);
        }
        z.xpby(&y, 0.5);
        let zf2 = z.to_f64_vec().unwrap();
        for k in 0..7 {
            assert_eq!(zf2[k], yf[k] + 0.5 * zf[k]);
        }
        assert!(z.is_finite());
        let mut bad = z.clone();
        bad.0[1] = Tensor::new(&[f64::NAN, 0.0, 1.0], &Device::Cpu).unwrap();
        assert!(!bad.is_finite());
        bad.set_zero();
        assert_eq!(bad.norm(), 0.0);
    }

    #[test]
    fn set_add_scaled_and_safetensors_round_trip() {
        let (p, x, y) = sample();
        let all = p.all();
        p.add_scaled(&all, 0.5, &y).unwrap();
        let v = p.values(&all).unwrap().to_f64_vec().unwrap();
        let want: Vec<f64> = x
            .to_f64_vec()
            .unwrap()
            .iter()
            .zip(y.to_f64_vec().unwrap())
            .map(|(a, b)| a + 0.5 * b)
            .collect();
        assert_eq!(v, want);
        let dir = std::env::temp_dir().join(format!("bilevel-nn-params-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.safetensors");
        p.save_safetensors(&file).unwrap();
        p.set(&all, &x).unwrap();
        p.load_safetensors(&file).unwrap();
        assert_eq!(p.values(&all).unwrap().to_f64_vec().unwrap(), want);
        assert_eq!(p.select_prefixes(&["b.".to_string()]), vec![1]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
