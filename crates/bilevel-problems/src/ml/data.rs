//! The data pipeline shared by the machine-learning problems: a stratified train / validation /
//! test split with exact counts, feature scaling fitted on the training split only, an optional
//! intercept column and seeded label corruption.

use crate::error::ProblemError;
use bilevel_core::rng::Rng;
use bilevel_core::NamedArray;
use bilevel_data::{Dataset, Standardizer};
use serde::{Deserialize, Serialize};

/// Feature scaling, fitted on the training split and applied to every split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standardize {
    /// `(x_j − mean_j) / std_j` per feature (constant features: std 1).
    #[default]
    Zscore,
    /// `sign(x)·ln(1 + |x|)` per entry, then z-score (heavy-tailed counts such as Spambase).
    Log1p,
    /// The raw features.
    None,
    /// Every entry divided by the largest `|x|` of the training split (one number for the whole
    /// matrix; pixels in `[0, 255]` become `[0, 1]`).
    Scale,
}

/// The size of a split: a number of rows (a TOML integer) or a fraction of the pool it is drawn
/// from (a TOML float in `(0, 1]`).
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SplitSize {
    /// Exactly this many rows.
    Count(u64),
    /// `round(fraction · pool rows)` rows.
    Fraction(f64),
}

impl std::fmt::Debug for SplitSize {
    /// As written in a configuration: `300` or `0.5`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitSize::Count(c) => write!(f, "{c}"),
            SplitSize::Fraction(x) => write!(f, "{x:?}"),
        }
    }
}

/// How to split, scale and augment a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitSpec {
    /// Training rows.
    pub train: SplitSize,
    /// Validation rows (drawn from the same pool as training).
    pub validation: SplitSize,
    /// Test rows; `None`: every remaining row of the pool, or the whole official test split.
    pub test: Option<SplitSize>,
    /// Seed of the split (sub-stream 1) and of the corruption (sub-stream 2).
    pub seed: u64,
    /// Feature scaling.
    pub standardize: Standardize,
    /// Append a constant-1 feature (after scaling).
    pub intercept: bool,
}

/// One split as the oracles see it: features row-major `n × p` (after scaling and the
/// intercept) and class indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    /// Row-major `n × p`.
    pub features: Vec<f64>,
    /// Class index per row (for the training split of hyper-cleaning: the corrupted labels).
    pub labels: Vec<u32>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub p: usize,
}

impl Design {
    /// The labels as numbers: `±1` with `binary` (class 1 ↦ +1, the regression targets of the
    /// binary problems), the class index otherwise.
    pub fn label_values(&self, binary: bool) -> Vec<f64> {
        self.labels
            .iter()
            .map(|&l| {
                if binary {
                    if l == 1 {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    f64::from(l)
                }
            })
            .collect()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.p..(i + 1) * self.p]
    }

    fn from_dataset(d: &Dataset, intercept: bool) -> Design {
        let p = d.p + usize::from(intercept);
        let features = if intercept {
            let mut f = Vec::with_capacity(d.n * p);
            for i in 0..d.n {
                f.extend_from_slice(d.row(i));
                f.push(1.0);
            }
            f
        } else {
            d.features.clone()
        };
        Design {
            features,
            labels: d.labels.clone(),
            n: d.n,
            p,
        }
    }
}

/// Train / validation / test designs of one problem.
#[derive(Clone, Debug, PartialEq)]
pub struct MlData {
    /// Name of the data set (for messages).
    pub name: String,
    /// Number of classes.
    pub classes: usize,
    /// Training split; its labels are the corrupted ones where [`MlData::corrupted`] is set.
    pub train: Design,
    /// Validation split (clean labels).
    pub validation: Design,
    /// Test split (clean labels; may be empty).
    pub test: Design,
    /// The training labels before corruption.
    pub clean_train_labels: Vec<u32>,
    /// `corrupted[i]`: training row i had its label replaced by a uniform random class (the new
    /// label may equal the old one).
    pub corrupted: Vec<bool>,
}

/// Rows of a split of a pool of `pool` rows; errors name `field`.
fn resolve_size(field: &'static str, s: SplitSize, pool: usize) -> Result<usize, ProblemError> {
    match s {
        SplitSize::Count(c) => Ok(usize::try_from(c).unwrap_or(usize::MAX)),
        SplitSize::Fraction(f) => {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return Err(ProblemError::invalid(
                    field,
                    "a fraction must be in (0, 1] (or give a row count as an integer)",
                    f,
                ));
            }
            Ok((f * pool as f64).round() as usize)
        }
    }
}

/// An order of the rows of `labels` in which every prefix has each class within about one row
/// of its share: rows are shuffled within each class and sorted by `(rank + u) / class size`
/// with `u` uniform in `[0, 1)`.
fn stratified_order(labels: &[u32], classes: usize, rng: &mut Rng) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut keyed: Vec<(f64, usize)> = Vec::with_capacity(labels.len());
    for rows in &mut by_class {
        for i in (1..rows.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            rows.swap(i, j);
        }
        let m = rows.len() as f64;
        for (rank, &r) in rows.iter().enumerate() {
            keyed.push(((rank as f64 + rng.uniform()) / m, r));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Check that `d` is usable: at least one row and one feature, finite features.
fn check_dataset(d: &Dataset, what: &str) -> Result<(), ProblemError> {
    if d.n == 0 || d.p == 0 {
        return Err(ProblemError::invalid(
            "data",
            format!("the {what} set has no rows or no features"),
            (d.n, d.p),
        ));
    }
    if let Some(k) = d.features.iter().position(|v| !v.is_finite()) {
        return Err(ProblemError::invalid(
            "data",
            format!(
                "the {what} set has a non-finite feature at row {}, column {}",
                k / d.p,
                k % d.p
            ),
            d.features[k],
        ));
    }
    Ok(())
}

impl MlData {
    /// Split `pool` (and `official_test`, when the source has one) as `spec` says, scale, add
    /// the intercept; no corruption.
    ///
    /// Without an official test split, train, validation and test are consecutive slices of one
    /// stratified order of the pool; with one, train and validation come from the pool and the
    /// test rows from the official test split. Errors name the field (`train`, `validation`,
    /// `test`, `data`) and the value.
    pub fn prepare(
        name: &str,
        pool: &Dataset,
        official_test: Option<&Dataset>,
        spec: &SplitSpec,
    ) -> Result<MlData, ProblemError> {
        check_dataset(pool, "training")?;
        if let Some(t) = official_test {
            check_dataset(t, "test")?;
            if t.p != pool.p || t.classes != pool.classes {
                return Err(ProblemError::invalid(
                    "data",
                    format!(
                        "the test set has {} features and {} classes, the training set {} and {}",
                        t.p, t.classes, pool.p, pool.classes
                    ),
                    name,
                ));
            }
        }
        let n_pool = pool.n;
        let n_tr = resolve_size("train", spec.train, n_pool)?;
        let n_va = resolve_size("validation", spec.validation, n_pool)?;
        if n_tr == 0 {
            return Err(ProblemError::invalid(
                "train",
                "must be at least 1 row",
                spec.train,
            ));
        }
        if n_va == 0 {
            return Err(ProblemError::invalid(
                "validation",
                "must be at least 1 row",
                spec.validation,
            ));
        }
        if n_tr > n_pool {
            return Err(ProblemError::invalid(
                "train",
                format!("{name} has only {n_pool} rows to draw training rows from"),
                spec.train,
            ));
        }
        if n_tr + n_va > n_pool {
            return Err(ProblemError::invalid(
                "validation",
                format!(
                    "train + validation exceed the {n_pool} rows of {name} ({n_tr} training rows)"
                ),
                spec.validation,
            ));
        }
        let mut rng = Rng::substream(spec.seed, 1);
        let order = stratified_order(&pool.labels, pool.classes, &mut rng);
        let train = pool.subset(&order[..n_tr]);
        let validation = pool.subset(&order[n_tr..n_tr + n_va]);
        let test = match official_test {
            Some(t) => {
                let n_te = match spec.test {
                    None => t.n,
                    Some(s) => resolve_size("test", s, t.n)?,
                };
                if n_te > t.n {
                    return Err(ProblemError::invalid(
                        "test",
                        format!("the test split of {name} has only {} rows", t.n),
                        n_te,
                    ));
                }
                if n_te == t.n {
                    t.clone()
                } else {
                    let mut trng = Rng::substream(spec.seed, 3);
                    let o = stratified_order(&t.labels, t.classes, &mut trng);
                    t.subset(&o[..n_te])
                }
            }
            None => {
                let left = n_pool - n_tr - n_va;
                let n_te = match spec.test {
                    None => left,
                    Some(s) => resolve_size("test", s, n_pool)?,
                };
                if n_te > left {
                    return Err(ProblemError::invalid(
                        "test",
                        format!(
                            "only {left} rows of {name} remain after {n_tr} training and {n_va} \
                             validation rows"
                        ),
                        n_te,
                    ));
                }
                pool.subset(&order[n_tr + n_va..n_tr + n_va + n_te])
            }
        };
        let (mut train, mut validation, mut test) = (train, validation, test);
        match spec.standardize {
            Standardize::None => {}
            Standardize::Zscore | Standardize::Log1p => {
                let s = if spec.standardize == Standardize::Log1p {
                    Standardizer::fit_log1p(&train)
                } else {
                    Standardizer::fit(&train)
                };
                for d in [&mut train, &mut validation, &mut test] {
                    s.transform(d);
                }
            }
            Standardize::Scale => {
                let m = train.features.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                if m > 0.0 {
                    let inv = 1.0 / m;
                    for d in [&mut train, &mut validation, &mut test] {
                        d.features.iter_mut().for_each(|v| *v *= inv);
                    }
                }
            }
        }
        let train = Design::from_dataset(&train, spec.intercept);
        Ok(MlData {
            name: name.to_string(),
            classes: pool.classes,
            clean_train_labels: train.labels.clone(),
            corrupted: vec![false; train.n],
            validation: Design::from_dataset(&validation, spec.intercept),
            test: Design::from_dataset(&test, spec.intercept),
            train,
        })
    }

    /// Replace the labels of `round(fraction · n)` training rows, chosen uniformly without
    /// replacement, by uniform random classes (sub-stream 2 of `seed`; the new label may equal
    /// the old one, as in the reference benchmark). `fraction` must be in `[0, 1]`.
    pub fn corrupt(&mut self, fraction: f64, seed: u64) -> Result<(), ProblemError> {
        if !(fraction.is_finite() && (0.0..=1.0).contains(&fraction)) {
            return Err(ProblemError::invalid(
                "corruption",
                "must be a fraction in [0, 1]",
                fraction,
            ));
        }
        let n = self.train.n;
        let m = (fraction * n as f64).round() as usize;
        let mut rng = Rng::substream(seed, 2);
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..m {
            let j = i + rng.below((n - i) as u64) as usize;
            idx.swap(i, j);
        }
        for &i in &idx[..m] {
            self.corrupted[i] = true;
            self.train.labels[i] = rng.below(self.classes as u64) as u32;
        }
        Ok(())
    }

    /// The three designs as named arrays (`train_features`, `train_labels`, …), labels as `f64`
    /// class indices, or `±1` with `binary` (class 1 ↦ +1).
    pub fn export(&self, binary: bool) -> Vec<NamedArray> {
        let mut out = Vec::with_capacity(6);
        for (name, d) in [
            ("train", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ] {
            out.push(NamedArray::matrix(
                format!("{name}_features"),
                d.n,
                d.p,
                d.features.clone(),
            ));
            out.push(NamedArray::vector(
                format!("{name}_labels"),
                d.label_values(binary),
            ));
        }
        out
    }
}

/// A seeded synthetic classification set for tests and benchmarks: `n` rows, `p` features,
/// `classes` classes; class `c` has mean `μ_c ~ N(0, sep² I)` and unit Gaussian noise.
pub fn synthetic(n: usize, p: usize, classes: usize, sep: f64, seed: u64) -> Dataset {
    let mut rng = Rng::substream(seed, 11);
    let mut means = vec![0.0; classes * p];
    rng.fill_normal(&mut means);
    means.iter_mut().for_each(|m| *m *= sep);
    let mut features = vec![0.0; n * p];
    rng.fill_normal(&mut features);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % classes) as u32;
        labels.push(c);
        let mu = &means[c as usize * p..(c as usize + 1) * p];
        features[i * p..(i + 1) * p]
            .iter_mut()
            .zip(mu)
            .for_each(|(f, m)| *f += m);
    }
    Dataset {
        features,
        labels,
        n,
        p,
        classes,
        feature_names: None,
        class_names: (0..classes).map(|c| c.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(train: u64, validation: u64, test: Option<u64>) -> SplitSpec {
        SplitSpec {
            train: SplitSize::Count(train),
            validation: SplitSize::Count(validation),
            test: test.map(SplitSize::Count),
            seed: 4,
            standardize: Standardize::Zscore,
            intercept: false,
        }
    }

    #[test]
    fn split_has_exact_counts_is_stratified_disjoint_and_seeded() {
        // Feature 0 identifies the row (before scaling: standardize none).
        let mut d = synthetic(300, 3, 3, 1.0, 1);
        for i in 0..d.n {
            d.features[i * 3] = i as f64;
        }
        // Unbalanced classes: drop half of class 2.
        let keep: Vec<usize> = (0..d.n)
            .filter(|&i| d.labels[i] != 2 || i % 2 == 0)
            .collect();
        let d = d.subset(&keep);
        let mut s = spec(101, 40, Some(30));
        s.standardize = Standardize::None;
        let m = MlData::prepare("syn", &d, None, &s).unwrap();
        assert_eq!((m.train.n, m.validation.n, m.test.n), (101, 40, 30));
        let mut ids: Vec<usize> = [&m.train, &m.validation, &m.test]
            .iter()
            .flat_map(|x| (0..x.n).map(|i| x.row(i)[0] as usize))
            .collect();
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), total, "splits overlap");
        let counts = d.class_counts();
        for part in [&m.train, &m.validation, &m.test] {
            for (c, &cnt) in counts.iter().enumerate() {
                let got = part.labels.iter().filter(|&&l| l as usize == c).count() as f64;
                let share = cnt as f64 * part.n as f64 / d.n as f64;
                assert!((got - share).abs() <= 2.0, "class {c}: {got} vs {share}");
            }
        }
        assert_eq!(m, MlData::prepare("syn", &d, None, &s).unwrap());
        s.seed = 5;
        assert_ne!(m.train, MlData::prepare("syn", &d, None, &s).unwrap().train);
    }

    #[test]
    fn scaling_is_fitted_on_training_rows_and_intercept_appended() {
        let d = synthetic(200, 4, 2, 2.0, 2);
        let mut s = spec(120, 40, None);
        s.intercept = true;
        let m = MlData::prepare("syn", &d, None, &s).unwrap();
        assert_eq!((m.train.p, m.test.n), (5, 40));
        for j in 0..4 {
            let col: Vec<f64> = (0..m.train.n).map(|i| m.train.row(i)[j]).collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
        }
        assert!((0..m.test.n).all(|i| m.test.row(i)[4] == 1.0));
        s.standardize = Standardize::Scale;
        s.intercept = false;
        let m = MlData::prepare("syn", &d, None, &s).unwrap();
        let mx = m.train.features.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!((mx - 1.0).abs() < 1e-15);
    }

    #[test]
    fn official_test_split_is_used() {
        let d = synthetic(100, 3, 2, 1.0, 3);
        let t = synthetic(50, 3, 2, 1.0, 4);
        let m = MlData::prepare("syn", &d, Some(&t), &spec(60, 40, None)).unwrap();
        assert_eq!(m.test.n, 50);
        let m = MlData::prepare("syn", &d, Some(&t), &spec(60, 40, Some(20))).unwrap();
        assert_eq!(m.test.n, 20);
        let e = MlData::prepare("syn", &d, Some(&t), &spec(60, 40, Some(51))).unwrap_err();
        assert!(e.to_string().starts_with("problem.test:"), "{e}");
    }

    #[test]
    fn bad_sizes_name_the_field_and_value() {
        let d = synthetic(100, 3, 2, 1.0, 3);
        let cases = [
            (
                spec(0, 10, None),
                "problem.train: must be at least 1 row (got 0)",
            ),
            (spec(101, 10, None), "problem.train: syn has only 100 rows"),
            (
                spec(90, 20, None),
                "problem.validation: train + validation exceed",
            ),
            (
                spec(50, 0, None),
                "problem.validation: must be at least 1 row",
            ),
            (
                spec(50, 20, Some(31)),
                "problem.test: only 30 rows of syn remain",
            ),
        ];
        for (s, msg) in cases {
            let e = MlData::prepare("syn", &d, None, &s)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(msg), "{e} vs {msg}");
        }
        let mut s = spec(10, 10, None);
        s.train = SplitSize::Fraction(1.5);
        let e = MlData::prepare("syn", &d, None, &s)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("problem.train: a fraction must be in (0, 1]"),
            "{e}"
        );
        s.train = SplitSize::Fraction(0.5);
        s.validation = SplitSize::Fraction(0.25);
        let m = MlData::prepare("syn", &d, None, &s).unwrap();
        assert_eq!((m.train.n, m.validation.n, m.test.n), (50, 25, 25));
    }

    #[test]
    fn corruption_replaces_the_requested_share_reproducibly() {
        let d = synthetic(400, 2, 10, 1.0, 3);
        let mut m = MlData::prepare("syn", &d, None, &spec(200, 50, None)).unwrap();
        let mut m2 = m.clone();
        m.corrupt(0.5, 9).unwrap();
        m2.corrupt(0.5, 9).unwrap();
        assert_eq!(m, m2);
        assert_eq!(m.corrupted.iter().filter(|&&c| c).count(), 100);
        let changed = (0..200)
            .filter(|&i| m.train.labels[i] != m.clean_train_labels[i])
            .count();
        // Each corrupted label changes with probability 9/10: about 90 of 100.
        assert!((75..=100).contains(&changed), "{changed}");
        assert!((0..200).all(|i| m.corrupted[i] || m.train.labels[i] == m.clean_train_labels[i]));
        assert!(m
            .corrupt(1.5, 0)
            .unwrap_err()
            .to_string()
            .starts_with("problem.corruption: must be a fraction in [0, 1] (got 1.5)"));
        let ex = m.export(false);
        assert_eq!(ex.len(), 6);
        assert_eq!(ex[0].shape, vec![200, 2]);
        assert_eq!(ex[1].data[0], f64::from(m.train.labels[0]));
    }
}
