//! Per-feature standardisation, optionally after a `log1p` transform.

use serde::{Deserialize, Serialize};

use crate::Dataset;

/// Per-feature affine map `x ↦ (t(x) − mean) / std`, where `t` is the identity or, with
/// `log1p`, the sign-preserving `sign(x)·ln(1 + |x|)` for heavy-tailed features (Spambase).
///
/// Fit it on the **training split only** and apply the same map to validation and test data, so no
/// statistics leak from held-out rows into training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per-feature mean (after the `log1p` transform when enabled).
    pub mean: Vec<f64>,
    /// Per-feature population standard deviation; 1 for a constant feature.
    pub std: Vec<f64>,
    /// Whether `sign(x)·ln(1 + |x|)` is applied before centring and scaling.
    pub log1p: bool,
}

impl Standardizer {
    /// Fits means and standard deviations of `data`'s features (use the training split).
    pub fn fit(data: &Dataset) -> Standardizer {
        Self::fit_with(data, false)
    }

    /// As [`fit`](Self::fit), on `sign(x)·ln(1 + |x|)` of each feature.
    pub fn fit_log1p(data: &Dataset) -> Standardizer {
        Self::fit_with(data, true)
    }

    fn fit_with(data: &Dataset, log1p: bool) -> Standardizer {
        let p = data.p;
        let t = |x: f64| if log1p { signed_log1p(x) } else { x };
        let mut mean = vec![0.0; p];
        let mut std = vec![1.0; p];
        if data.n > 0 {
            for j in 0..p {
                let col = (0..data.n).map(|i| t(data.features[i * p + j]));
                let first = t(data.features[j]);
                let (mut sum, mut constant) = (0.0, true);
                for x in col.clone() {
                    sum += x;
                    constant &= x == first;
                }
                if constant {
                    mean[j] = first;
                    continue;
                }
                let m = sum / data.n as f64;
                let var = col.map(|x| (x - m) * (x - m)).sum::<f64>() / data.n as f64;
                mean[j] = m;
                std[j] = if var > 0.0 { var.sqrt() } else { 1.0 };
            }
        }
        Standardizer { mean, std, log1p }
    }

    /// Applies the fitted map to `data`'s features in place.
    ///
    /// # Panics
    /// If `data.p` differs from the number of fitted features.
    pub fn transform(&self, data: &mut Dataset) {
        assert_eq!(
            data.p,
            self.mean.len(),
            "Standardizer::transform: fitted on {} features, data has {}",
            self.mean.len(),
            data.p
        );
        if data.p == 0 {
            return;
        }
        for row in data.features.chunks_exact_mut(data.p) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                let v = if self.log1p { signed_log1p(*x) } else { *x };
                *x = (v - m) / s;
            }
        }
    }
}

fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: &[[f64; 3]]) -> Dataset {
        Dataset {
            features: rows.iter().flatten().copied().collect(),
            labels: vec![0; rows.len()],
            n: rows.len(),
            p: 3,
            classes: 1,
            feature_names: None,
            class_names: vec!["0".into()],
        }
    }

    fn moments(d: &Dataset, j: usize) -> (f64, f64) {
        let col: Vec<f64> = (0..d.n).map(|i| d.row(i)[j]).collect();
        let m = col.iter().sum::<f64>() / d.n as f64;
        let v = col.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / d.n as f64;
        (m, v.sqrt())
    }

    #[test]
    fn training_features_mean_zero_std_one() {
        let mut d = data(&[
            [1.0, 0.1, 100.0],
            [2.0, 0.1, -3.0],
            [4.0, 0.1, 7.5],
            [9.0, 0.1, 1e4],
        ]);
        let s = Standardizer::fit(&d);
        assert_eq!(s.std[1], 1.0);
        assert!((s.mean[0] - 4.0).abs() < 1e-15);
        s.transform(&mut d);
        for j in [0, 2] {
            let (m, sd) = moments(&d, j);
            assert!(
                m.abs() < 1e-12 && (sd - 1.0).abs() < 1e-12,
                "feature {j}: {m} {sd}"
            );
        }
        assert!(d.features.iter().skip(1).step_by(3).all(|&x| x == 0.0));
    }

    #[test]
    fn applies_training_statistics_to_other_data() {
        let train = data(&[[0.0, 1.0, 2.0], [2.0, 1.0, 4.0]]);
        let s = Standardizer::fit(&train);
        let mut test = data(&[[4.0, 5.0, 3.0]]);
        s.transform(&mut test);
        assert_eq!(test.features, vec![3.0, 4.0, 0.0]);
    }

    #[test]
    fn log1p_then_standardise() {
        let mut d = data(&[[0.0, 1.0, -1.0], [1e6, 3.0, 0.0], [10.0, 7.0, 5.0]]);
        let s = Standardizer::fit_log1p(&d);
        assert!((s.mean[0] - (1e6f64.ln_1p() + 10f64.ln_1p()) / 3.0).abs() < 1e-12);
        s.transform(&mut d);
        for j in 0..3 {
            let (m, sd) = moments(&d, j);
            assert!(
                m.abs() < 1e-12 && (sd - 1.0).abs() < 1e-12,
                "feature {j}: {m} {sd}"
            );
        }
    }
}
