//! Seeded stratified train / validation / test split.

use bilevel_core::rng::Rng;

use crate::Dataset;

/// Splits `data` into `(train, validation, test)` with the same class proportions in each.
///
/// `fractions` are normalised by their sum. For each class with `m` rows, `round(m·train)` rows go
/// to training, `round(m·val)` to validation (reduced if both rounded up past `m`) and the rest to
/// test, so each split's class count is within one row of its exact share. The rows of a class are
/// shuffled by Fisher–Yates with [`Rng::below`] from `Rng::new(seed)`, and then each split is
/// shuffled, so the result is a function of `seed` alone.
///
/// # Panics
/// If a fraction is negative or not finite, or all are zero.
pub fn split_stratified(
    data: &Dataset,
    fractions: (f64, f64, f64),
    seed: u64,
) -> (Dataset, Dataset, Dataset) {
    let (a, b, c) = fractions;
    let sum = a + b + c;
    assert!(
        [a, b, c].iter().all(|f| f.is_finite() && *f >= 0.0) && sum > 0.0,
        "split_stratified: fractions must be finite, non-negative and not all zero (got {fractions:?})"
    );
    let (a, b) = (a / sum, b / sum);
    let mut rng = Rng::new(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.classes];
    for (i, &l) in data.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for mut rows in by_class {
        shuffle(&mut rows, &mut rng);
        let m = rows.len();
        let n_train = ((m as f64 * a).round() as usize).min(m);
        let n_val = ((m as f64 * b).round() as usize).min(m - n_train);
        train.extend_from_slice(&rows[..n_train]);
        val.extend_from_slice(&rows[n_train..n_train + n_val]);
        test.extend_from_slice(&rows[n_train + n_val..]);
    }
    for part in [&mut train, &mut val, &mut test] {
        shuffle(part, &mut rng);
    }
    (data.subset(&train), data.subset(&val), data.subset(&test))
}

fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 classes of 50, 30 and 7 rows; feature 0 is the row id.
    fn data() -> Dataset {
        let mut labels = Vec::new();
        for (c, m) in [50, 30, 7].iter().enumerate() {
            labels.extend(std::iter::repeat_n(c as u32, *m));
        }
        let n = labels.len();
        Dataset {
            features: (0..n).flat_map(|i| [i as f64, 1.0]).collect(),
            labels,
            n,
            p: 2,
            classes: 3,
            feature_names: None,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    fn ids(d: &Dataset) -> Vec<usize> {
        (0..d.n).map(|i| d.row(i)[0] as usize).collect()
    }

    #[test]
    fn proportions_disjoint_covering() {
        let d = data();
        let fr = (0.6, 0.2, 0.2);
        let (tr, va, te) = split_stratified(&d, fr, 7);
        let counts = d.class_counts();
        for (part, f) in [(&tr, fr.0), (&va, fr.1), (&te, fr.2)] {
            for (c, &m) in counts.iter().enumerate() {
                let got = part.class_counts()[c] as f64;
                assert!(
                    (got - m as f64 * f).abs() <= 1.0,
                    "class {c}: {got} vs {}",
                    m as f64 * f
                );
            }
            for i in 0..part.n {
                assert_eq!(part.labels[i], d.labels[part.row(i)[0] as usize]);
            }
        }
        let mut all: Vec<usize> = [ids(&tr), ids(&va), ids(&te)].concat();
        all.sort_unstable();
        assert_eq!(all, (0..d.n).collect::<Vec<_>>());
        assert_eq!(tr.n + va.n + te.n, d.n);
    }

    #[test]
    fn fractions_are_normalised() {
        let (tr, va, te) = split_stratified(&data(), (3.0, 1.0, 0.0), 1);
        assert_eq!(te.n, 0);
        assert_eq!(tr.class_counts(), vec![38, 23, 5]);
        assert_eq!(va.class_counts(), vec![12, 7, 2]);
    }

    #[test]
    fn seed_determines_split() {
        let d = data();
        let (a, b, c) = split_stratified(&d, (0.5, 0.25, 0.25), 42);
        let (a2, b2, c2) = split_stratified(&d, (0.5, 0.25, 0.25), 42);
        assert_eq!((ids(&a), ids(&b), ids(&c)), (ids(&a2), ids(&b2), ids(&c2)));
        let (a3, _, _) = split_stratified(&d, (0.5, 0.25, 0.25), 43);
        assert_ne!(ids(&a), ids(&a3));
        let mut s1 = ids(&a);
        let mut s3 = ids(&a3);
        s1.sort_unstable();
        s3.sort_unstable();
        assert_ne!(
            s1, s3,
            "different seeds should select different rows, not only reorder"
        );
    }
}
