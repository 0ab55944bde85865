//! Mapping raw label texts to class indices.

use crate::Dataset;

/// Label texts → `(class indices, class names)`.
///
/// * all labels non-negative integers below 65536 (`0`, `3`, `7.0`): used directly as class
///   indices, `classes = max + 1`, names `"0".."k-1"`;
/// * otherwise all numeric (`-1`, `+1`, `2.5`): distinct values in increasing order;
/// * otherwise (strings): distinct texts in order of first appearance.
///
/// Callers have already rejected NaN/inf labels.
pub(crate) fn map_labels(raw: &[String]) -> (Vec<u32>, Vec<String>) {
    let numeric: Option<Vec<f64>> = raw.iter().map(|s| s.trim().parse::<f64>().ok()).collect();
    if let Some(values) = numeric {
        let direct = values
            .iter()
            .all(|&v| (0.0..65536.0).contains(&v) && v.fract() == 0.0);
        if direct {
            let labels: Vec<u32> = values.iter().map(|&v| v as u32).collect();
            let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
            return (labels, (0..k).map(|c| c.to_string()).collect());
        }
        let mut distinct = values.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let labels = values
            .iter()
            .map(|v| distinct.partition_point(|d| d < v) as u32)
            .collect();
        return (labels, distinct.iter().map(|v| v.to_string()).collect());
    }
    let mut names: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let labels = raw
        .iter()
        .map(|s| {
            *index.entry(s.clone()).or_insert_with(|| {
                names.push(s.clone());
                (names.len() - 1) as u32
            })
        })
        .collect();
    (labels, names)
}

/// A data set of `n` rows of `p` features (`features` row-major) labelled by the texts
/// `raw_labels`, mapped to classes by [`map_labels`].
pub(crate) fn labelled(
    features: Vec<f64>,
    n: usize,
    p: usize,
    raw_labels: &[String],
    feature_names: Option<Vec<String>>,
) -> Dataset {
    let (labels, class_names) = map_labels(raw_labels);
    Dataset {
        features,
        labels,
        n,
        p,
        classes: class_names.len(),
        feature_names,
        class_names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn direct_integer_labels() {
        let (l, names) = map_labels(&s(&["2", "0", "2.0"]));
        assert_eq!(l, vec![2, 0, 2]);
        assert_eq!(names, s(&["0", "1", "2"]));
    }

    #[test]
    fn signed_labels_sorted() {
        let (l, names) = map_labels(&s(&["+1", "-1", "1", "-1"]));
        assert_eq!(l, vec![1, 0, 1, 0]);
        assert_eq!(names, s(&["-1", "1"]));
    }

    #[test]
    fn string_labels_first_appearance() {
        let (l, names) = map_labels(&s(&["b", "a", "b", "c"]));
        assert_eq!(l, vec![0, 1, 0, 2]);
        assert_eq!(names, s(&["b", "a", "c"]));
    }
}
