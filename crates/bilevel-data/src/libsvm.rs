//! LIBSVM / SVMlight text: `label idx:val idx:val … [# comment]`, 1-based increasing indices.

use std::path::Path;

use crate::error::{clip, DataError, Result};
use crate::labels::labelled;
use crate::text::{check_size, lines, maybe_gunzip, read_file};
use crate::{parse_finite, Dataset};

/// How to read a LIBSVM file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibsvmOptions {
    /// Number of features; `None`: the largest index in the file. An index beyond a given
    /// dimension is an error.
    pub dimension: Option<usize>,
}

/// Reads and parses a LIBSVM file (gzipped or not).
pub fn load_libsvm_file(path: impl AsRef<Path>, opts: &LibsvmOptions) -> Result<Dataset> {
    let (bytes, name) = read_file(path.as_ref())?;
    load_libsvm(&bytes, &name, opts)
}

/// Parses LIBSVM text into a dense data set (absent features are 0).
///
/// Labels (`+1`, `-1`, `0`, `1`, `2`, …) are mapped to classes as described at
/// [`Dataset::class_names`]: non-negative integers directly, other numbers in increasing order.
/// Index 0, non-increasing indices, malformed pairs and NaN/inf values are errors naming the line
/// and token.
pub fn load_libsvm(bytes: &[u8], source_name: &str, opts: &LibsvmOptions) -> Result<Dataset> {
    let bytes = maybe_gunzip(bytes, source_name)?;
    let mut rows: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut raw_labels = Vec::new();
    let mut max_idx = 0usize;
    let mut last_line = 0;
    let err = |line, column, field: &str, text: &str, reason: &str| DataError::Invalid {
        source_name: source_name.to_string(),
        line,
        column: Some(column),
        field: field.to_string(),
        text: clip(text),
        reason: reason.to_string(),
    };
    let bad_index = |line, column, text: &str, reason: String| DataError::BadIndex {
        source_name: source_name.to_string(),
        line,
        column,
        text: clip(text),
        reason,
    };
    for item in lines(&bytes, source_name) {
        let (line, text) = item?;
        last_line = line;
        let body = text.split('#').next().unwrap_or("");
        let mut tokens = body.split_ascii_whitespace();
        let Some(label) = tokens.next() else {
            continue;
        };
        match parse_finite(label) {
            Ok(_) => raw_labels.push(label.to_string()),
            Err(true) => {
                return Err(DataError::NonFinite {
                    source_name: source_name.to_string(),
                    line,
                    column: 1,
                    field: "label".to_string(),
                    text: clip(label),
                })
            }
            Err(false) => return Err(err(line, 1, "label", label, "not a number")),
        }
        let mut row = Vec::new();
        let mut prev = 0usize;
        for (t, pair) in tokens.enumerate() {
            let column = t + 2;
            let Some((idx, val)) = pair.split_once(':') else {
                return Err(err(line, column, "pair", pair, "expected `idx:val`"));
            };
            let idx: usize = idx
                .parse()
                .map_err(|_| err(line, column, "index", pair, "not a non-negative integer"))?;
            if idx == 0 {
                return Err(bad_index(line, column, pair, "indices start at 1".into()));
            }
            if idx <= prev {
                return Err(bad_index(
                    line,
                    column,
                    pair,
                    format!("indices must increase (previous {prev})"),
                ));
            }
            if let Some(dim) = opts.dimension {
                if idx > dim {
                    return Err(bad_index(
                        line,
                        column,
                        pair,
                        format!("exceeds the dimension {dim}"),
                    ));
                }
            }
            let v = match parse_finite(val) {
                Ok(v) => v,
                Err(true) => {
                    return Err(DataError::NonFinite {
                        source_name: source_name.to_string(),
                        line,
                        column,
                        field: format!("feature {idx}"),
                        text: clip(pair),
                    })
                }
                Err(false) => {
                    return Err(err(
                        line,
                        column,
                        &format!("feature {idx}"),
                        pair,
                        "not a number",
                    ))
                }
            };
            prev = idx;
            max_idx = max_idx.max(idx);
            row.push((idx, v));
        }
        rows.push(row);
        check_size(
            rows.len(),
            opts.dimension.unwrap_or(max_idx),
            source_name,
            line,
        )?;
    }
    if rows.is_empty() {
        return Err(DataError::Empty {
            source_name: source_name.to_string(),
        });
    }
    let p = opts.dimension.unwrap_or(max_idx);
    check_size(rows.len(), p, source_name, last_line)?;
    let n = rows.len();
    let mut features = vec![0.0; n * p];
    for (i, row) in rows.iter().enumerate() {
        for &(j, v) in row {
            features[i * p + j - 1] = v;
        }
    }
    Ok(labelled(features, n, p, &raw_labels, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Dataset> {
        load_libsvm(text.as_bytes(), "t.svm", &LibsvmOptions::default())
    }

    #[test]
    fn parses_sparse_rows_with_comments() {
        let d = load("# header comment\n+1 1:0.5 3:2 # trailing\n-1 2:-1\n\n+1\n").unwrap();
        assert_eq!((d.n, d.p, d.classes), (3, 3, 2));
        assert_eq!(
            d.features,
            vec![0.5, 0.0, 2.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(d.labels, vec![1, 0, 1]);
        assert_eq!(d.class_names, vec!["-1", "1"]);
    }

    #[test]
    fn multiclass_and_given_dimension() {
        let opts = LibsvmOptions { dimension: Some(4) };
        let d = load_libsvm(b"2 1:1\n0 2:1\n1 4:3\n", "t.svm", &opts).unwrap();
        assert_eq!((d.p, d.classes), (4, 3));
        assert_eq!(d.labels, vec![2, 0, 1]);
        assert_eq!(d.row(2), &[0.0, 0.0, 0.0, 3.0]);
        let e = load_libsvm(b"1 5:1\n", "t.svm", &opts).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadIndex {
                    line: 1,
                    column: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn index_zero_and_non_increasing() {
        let e = load("1 1:1\n1 0:2\n").unwrap_err();
        assert!(matches!(
            e,
            DataError::BadIndex {
                line: 2,
                column: 2,
                ..
            }
        ));
        assert!(e.to_string().contains("t.svm:2:2"), "{e}");
        let e = load("1 3:1 3:2\n").unwrap_err();
        assert!(matches!(
            e,
            DataError::BadIndex {
                line: 1,
                column: 3,
                ..
            }
        ));
        let e = load("1 3:1 2:2\n").unwrap_err();
        assert!(
            e.to_string().contains("t.svm:1:3") && e.to_string().contains("2:2"),
            "{e}"
        );
    }

    #[test]
    fn malformed_pairs_and_values() {
        for (text, column) in [
            ("1 1:1 2\n", 3),
            ("1 a:1\n", 2),
            ("1 1:x\n", 2),
            ("x 1:1\n", 1),
        ] {
            let e = load(text).unwrap_err();
            assert!(
                matches!(e, DataError::Invalid { line: 1, column: Some(c), .. } if c == column),
                "{text:?}: {e}"
            );
            assert!(e.to_string().starts_with("t.svm:1:"), "{e}");
        }
        let e = load("1 1:nan\n").unwrap_err();
        assert!(matches!(
            e,
            DataError::NonFinite {
                line: 1,
                column: 2,
                ..
            }
        ));
    }

    #[test]
    fn empty_file() {
        assert!(matches!(
            load("# only a comment\n"),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn huge_index_is_an_error_not_an_allocation() {
        let e = load("1 1:1\n1 99999999999:1\n").unwrap_err();
        assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
    }
}
