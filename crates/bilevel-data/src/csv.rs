//! Delimited text (CSV, `;`-separated, tab-separated) with an optional header row.
//!
//! Fields are trimmed and one pair of surrounding quotes is removed; quoted delimiters and
//! multi-line fields are not supported. Blank lines are skipped.

use std::path::Path;

use crate::error::{clip, DataError, Result};
use crate::labels::labelled;
use crate::text::{check_size, lines, maybe_gunzip, read_file, unquote};
use crate::{parse_finite, Dataset};

/// Which column holds the label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelColumn {
    /// 0-based index; negative counts from the end (`-1` = last).
    Index(isize),
    /// Header name (requires a header row).
    Name(String),
}

/// How to read a delimited file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter: `b','` (default), `b';'`, `b'\t'`, …
    pub delimiter: u8,
    /// Whether the first non-blank line is a header of column names.
    pub has_header: bool,
    /// The label column (default: the last).
    pub label: LabelColumn,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            has_header: false,
            label: LabelColumn::Index(-1),
        }
    }
}

/// Reads and parses a delimited file (gzipped or not).
pub fn load_csv_file(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Dataset> {
    let (bytes, name) = read_file(path.as_ref())?;
    load_csv(&bytes, &name, opts)
}

/// Parses delimited text; `source_name` names the source in errors.
///
/// Labels may be numbers or strings (see [`Dataset::class_names`] for the mapping). Ragged rows,
/// non-numeric or NaN/inf features, empty labels and an input without data rows are errors
/// naming `source_name:line:column`.
pub fn load_csv(bytes: &[u8], source_name: &str, opts: &CsvOptions) -> Result<Dataset> {
    let bytes = maybe_gunzip(bytes, source_name)?;
    let delim = char::from(opts.delimiter);
    let mut header: Option<Vec<String>> = None;
    let mut width: Option<usize> = None;
    let mut label_col = 0usize;
    let mut features = Vec::new();
    let mut raw_labels = Vec::new();
    let mut n = 0usize;

    for item in lines(&bytes, source_name) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(delim).map(|f| unquote(f.trim())).collect();
        let Some(w) = width else {
            width = Some(fields.len());
            label_col = resolve_label(&fields, source_name, opts)?;
            if opts.has_header {
                header = Some(fields.iter().map(|f| f.to_string()).collect());
                continue;
            }
            parse_row(
                &fields,
                line,
                label_col,
                None,
                source_name,
                &mut features,
                &mut raw_labels,
            )?;
            n += 1;
            continue;
        };
        if fields.len() != w {
            return Err(DataError::Ragged {
                source_name: source_name.to_string(),
                line,
                expected: w,
                found: fields.len(),
            });
        }
        check_size(n + 1, w.saturating_sub(1), source_name, line)?;
        parse_row(
            &fields,
            line,
            label_col,
            header.as_deref(),
            source_name,
            &mut features,
            &mut raw_labels,
        )?;
        n += 1;
    }
    if n == 0 {
        return Err(DataError::Empty {
            source_name: source_name.to_string(),
        });
    }
    let p = width.unwrap_or(1) - 1;
    let feature_names = header.map(|h| {
        h.into_iter()
            .enumerate()
            .filter(|&(j, _)| j != label_col)
            .map(|(_, s)| s)
            .collect()
    });
    Ok(labelled(features, n, p, &raw_labels, feature_names))
}

fn resolve_label(first: &[&str], name: &str, opts: &CsvOptions) -> Result<usize> {
    let w = first.len();
    let not_found = |column: String, reason: String| DataError::NoSuchColumn {
        source_name: name.to_string(),
        column,
        reason,
    };
    match &opts.label {
        LabelColumn::Index(i) => {
            let idx = if *i < 0 {
                w.checked_sub(i.unsigned_abs())
            } else {
                Some(*i as usize).filter(|&j| j < w)
            };
            idx.ok_or_else(|| not_found(i.to_string(), format!("the first row has {w} columns")))
        }
        LabelColumn::Name(label) => {
            if !opts.has_header {
                return Err(not_found(label.clone(), "no header row".to_string()));
            }
            first
                .iter()
                .position(|f| f == label)
                .ok_or_else(|| not_found(label.clone(), "not in the header".to_string()))
        }
    }
}

fn parse_row(
    fields: &[&str],
    line: usize,
    label_col: usize,
    header: Option<&[String]>,
    name: &str,
    features: &mut Vec<f64>,
    raw_labels: &mut Vec<String>,
) -> Result<()> {
    let field_name = |j: usize| match header {
        Some(h) => h[j].clone(),
        None => format!("column {}", j + 1),
    };
    // Field j's text `text` is invalid for `reason`.
    let invalid = |j: usize, text: String, reason: &str| DataError::Invalid {
        source_name: name.to_string(),
        line,
        column: Some(j + 1),
        field: field_name(j),
        text,
        reason: reason.to_string(),
    };
    // Field j (text f) is NaN or infinite.
    let non_finite = |j: usize, f: &str| DataError::NonFinite {
        source_name: name.to_string(),
        line,
        column: j + 1,
        field: field_name(j),
        text: clip(f),
    };
    for (j, f) in fields.iter().enumerate() {
        if j == label_col {
            if f.is_empty() {
                return Err(invalid(j, String::new(), "empty label"));
            }
            if matches!(parse_finite(f), Err(true)) {
                return Err(non_finite(j, f));
            }
            raw_labels.push(f.to_string());
            continue;
        }
        match parse_finite(f) {
            Ok(v) => features.push(v),
            Err(true) => return Err(non_finite(j, f)),
            Err(false) => return Err(invalid(j, clip(f), "not a number")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, opts: &CsvOptions) -> Result<Dataset> {
        load_csv(text.as_bytes(), "t.csv", opts)
    }

    #[test]
    fn numeric_labels_last_column() {
        let d = load("1,2,0\n3.5,-4,2\n\n5,6e1,1\n", &CsvOptions::default()).unwrap();
        assert_eq!((d.n, d.p, d.classes), (3, 2, 3));
        assert_eq!(d.features, vec![1.0, 2.0, 3.5, -4.0, 5.0, 60.0]);
        assert_eq!(d.labels, vec![0, 2, 1]);
        assert_eq!(d.feature_names, None);
    }

    #[test]
    fn header_label_by_name_and_string_labels() {
        let opts = CsvOptions {
            delimiter: b';',
            has_header: true,
            label: LabelColumn::Name("species".into()),
        };
        let d = load(
            "a;species;b\r\n1;\"virginica\";2\r\n3;setosa;4\r\n5;virginica;6\r\n",
            &opts,
        )
        .unwrap();
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.labels, vec![0, 1, 0]);
        assert_eq!(d.class_names, vec!["virginica", "setosa"]);
        assert_eq!(d.feature_names, Some(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn tab_delimiter_label_first_and_negative_index() {
        let opts = CsvOptions {
            delimiter: b'\t',
            label: LabelColumn::Index(0),
            ..CsvOptions::default()
        };
        let d = load("-1\t0.5\t1\n1\t2\t3\n", &opts).unwrap();
        assert_eq!(d.labels, vec![0, 1]);
        assert_eq!(d.class_names, vec!["-1", "1"]);
        assert_eq!(d.features, vec![0.5, 1.0, 2.0, 3.0]);
        let opts = CsvOptions {
            label: LabelColumn::Index(-2),
            ..CsvOptions::default()
        };
        let d = load("1,7,2\n3,8,4\n", &opts).unwrap();
        assert_eq!(d.labels, vec![7, 8]);
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn gzipped_input() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"1,2,1\n3,4,0\n").unwrap();
        let gz = enc.finish().unwrap();
        let d = load_csv(&gz, "t.csv.gz", &CsvOptions::default()).unwrap();
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(d.labels, vec![1, 0]);
    }

    #[test]
    fn ragged_row() {
        let e = load("1,2,0\n3,1\n", &CsvOptions::default()).unwrap_err();
        assert!(matches!(
            e,
            DataError::Ragged {
                line: 2,
                expected: 3,
                found: 2,
                ..
            }
        ));
        assert!(e.to_string().starts_with("t.csv:2:"), "{e}");
    }

    #[test]
    fn non_numeric_field_names_file_line_column() {
        let opts = CsvOptions {
            has_header: true,
            ..CsvOptions::default()
        };
        let e = load("x,y,c\n1,2,0\n3,abc,1\n", &opts).unwrap_err();
        assert!(matches!(
            e,
            DataError::Invalid {
                line: 3,
                column: Some(2),
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("t.csv:3:2") && msg.contains("`y`") && msg.contains("abc"),
            "{msg}"
        );
    }

    #[test]
    fn nan_and_inf_rejected() {
        for bad in ["NaN", "inf", "-infinity", "1e999"] {
            let e = load(&format!("1,2,0\n{bad},1,1\n"), &CsvOptions::default()).unwrap_err();
            assert!(
                matches!(
                    e,
                    DataError::NonFinite {
                        line: 2,
                        column: 1,
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("t.csv:2:1"), "{e}");
        }
    }

    #[test]
    fn empty_inputs() {
        for text in ["", "\n\n  \n"] {
            let e = load(text, &CsvOptions::default()).unwrap_err();
            assert!(matches!(e, DataError::Empty { .. }));
            assert!(e.to_string().contains("t.csv"));
        }
        let opts = CsvOptions {
            has_header: true,
            ..CsvOptions::default()
        };
        assert!(matches!(load("a,b\n", &opts), Err(DataError::Empty { .. })));
    }

    #[test]
    fn missing_label_column() {
        let opts = CsvOptions {
            has_header: true,
            label: LabelColumn::Name("class".into()),
            ..CsvOptions::default()
        };
        let e = load("a,b\n1,2\n", &opts).unwrap_err();
        assert!(matches!(e, DataError::NoSuchColumn { .. }));
        assert!(e.to_string().contains("t.csv") && e.to_string().contains("class"));
        let opts = CsvOptions {
            label: LabelColumn::Index(5),
            ..CsvOptions::default()
        };
        assert!(matches!(
            load("1,2\n", &opts),
            Err(DataError::NoSuchColumn { .. })
        ));
    }

    #[test]
    fn empty_label_rejected() {
        let e = load("1,2,\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Invalid {
                    line: 1,
                    column: Some(3),
                    ..
                }
            ),
            "{e}"
        );
    }
}
