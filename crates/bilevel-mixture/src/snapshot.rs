//! Checkpoint snapshots: named tensors (one safetensors file) plus JSON state, written
//! atomically (temporary files, then rename) so an interrupted write never replaces a good
//! checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bilevel_core::rng::Rng;
use bilevel_nn::{AdamW, ParamVec, Params};
use candle_core::{Device, Tensor};

use crate::error::{io_err, MixtureError, Result};

/// Tensors and JSON values under string keys.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Tensors (model parameters, optimiser moments).
    pub tensors: HashMap<String, Tensor>,
    /// Everything else.
    pub json: serde_json::Map<String, serde_json::Value>,
}

fn ckpt_err(path: &Path, reason: impl ToString) -> MixtureError {
    MixtureError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl Snapshot {
    /// Stores the parameters `params` under `prefix.name`.
    pub fn put_params(&mut self, prefix: &str, params: &Params) {
        for (n, v) in params.names().iter().zip(params.vars()) {
            self.tensors
                .insert(format!("{prefix}.{n}"), v.as_tensor().detach());
        }
    }

    /// Restores parameters stored by [`put_params`](Self::put_params).
    pub fn get_params(&self, prefix: &str, params: &Params) -> Result<()> {
        for (n, v) in params.names().iter().zip(params.vars()) {
            let key = format!("{prefix}.{n}");
            let t = self
                .tensors
                .get(&key)
                .ok_or_else(|| MixtureError::Checkpoint {
                    path: "<snapshot>".into(),
                    reason: format!("no tensor `{key}`"),
                })?;
            v.set(&t.to_dtype(v.dtype())?.to_device(v.device())?)?;
        }
        Ok(())
    }

    /// Stores an optimiser's moments and step count.
    pub fn put_adam(&mut self, prefix: &str, opt: &AdamW) {
        for (k, (m, v)) in opt.m.0.iter().zip(&opt.v.0).enumerate() {
            self.tensors.insert(format!("{prefix}.m.{k}"), m.clone());
            self.tensors.insert(format!("{prefix}.v.{k}"), v.clone());
        }
        self.json.insert(format!("{prefix}.t"), opt.t.into());
    }

    /// Restores an optimiser stored by [`put_adam`](Self::put_adam).
    pub fn get_adam(&self, prefix: &str, opt: &mut AdamW) -> Result<()> {
        let get = |key: String| -> Result<Tensor> {
            self.tensors
                .get(&key)
                .cloned()
                .ok_or_else(|| ckpt_err(Path::new("<snapshot>"), format!("no tensor `{key}`")))
        };
        let n = opt.m.0.len();
        let m: Vec<Tensor> = (0..n)
            .map(|k| get(format!("{prefix}.m.{k}")))
            .collect::<Result<_>>()?;
        let v: Vec<Tensor> = (0..n)
            .map(|k| get(format!("{prefix}.v.{k}")))
            .collect::<Result<_>>()?;
        let dev = opt.m.0.first().map(|t| t.device().clone());
        let to = |x: Vec<Tensor>| -> Result<Vec<Tensor>> {
            match &dev {
                Some(d) => x.iter().map(|t| Ok(t.to_device(d)?)).collect(),
                None => Ok(x),
            }
        };
        opt.m = ParamVec(to(m)?);
        opt.v = ParamVec(to(v)?);
        opt.t = self.get_json(&format!("{prefix}.t"))?;
        Ok(())
    }

    /// Stores a serialisable value.
    pub fn put_json<T: serde::Serialize>(&mut self, key: &str, value: &T) {
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.json.insert(key.to_string(), v);
    }

    /// Reads a value stored by [`put_json`](Self::put_json).
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        let v = self
            .json
            .get(key)
            .ok_or_else(|| ckpt_err(Path::new("<snapshot>"), format!("no entry `{key}`")))?;
        serde_json::from_value(v.clone())
            .map_err(|e| ckpt_err(Path::new("<snapshot>"), format!("entry `{key}`: {e}")))
    }

    /// Stores an RNG.
    pub fn put_rng(&mut self, key: &str, rng: &Rng) {
        self.put_json(key, rng);
    }

    /// Writes `<stem>.safetensors` and `<stem>.json` atomically.
    pub fn save(&self, stem: &Path) -> Result<()> {
        let (st, js) = paths(stem);
        let tmp_st = st.with_extension("safetensors.tmp");
        let tmp_js = js.with_extension("json.tmp");
        candle_core::safetensors::save(&self.tensors, &tmp_st).map_err(|e| ckpt_err(&st, e))?;
        let text = serde_json::to_string(&self.json).map_err(|e| ckpt_err(&js, e))?;
        std::fs::write(&tmp_js, text).map_err(|e| io_err(&tmp_js, e))?;
        std::fs::rename(&tmp_st, &st).map_err(|e| io_err(&st, e))?;
        std::fs::rename(&tmp_js, &js).map_err(|e| io_err(&js, e))?;
        Ok(())
    }

    /// Reads a snapshot written by [`save`](Self::save); `None` when there is none.
    pub fn load(stem: &Path) -> Result<Option<Self>> {
        let (st, js) = paths(stem);
        if !js.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&js).map_err(|e| io_err(&js, e))?;
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| ckpt_err(&js, e))?;
        let tensors = if st.exists() {
            candle_core::safetensors::load(&st, &Device::Cpu).map_err(|e| ckpt_err(&st, e))?
        } else {
            HashMap::new()
        };
        Ok(Some(Self { tensors, json }))
    }
}

fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (
        stem.with_extension("safetensors"),
        stem.with_extension("json"),
    )
}
