//! JSON lines: one object per line with a numeric array field and a label field.

use std::path::Path;

use serde_json::Value;

use crate::error::{clip, DataError, Result};
use crate::labels::labelled;
use crate::text::{check_size, lines, maybe_gunzip, read_file};
use crate::Dataset;

/// How to read a JSON-lines file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonlOptions {
    /// Field holding the feature array (default `"features"`).
    pub features_field: String,
    /// Field holding the label, a number or a string (default `"label"`).
    pub label_field: String,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        JsonlOptions {
            features_field: "features".to_string(),
            label_field: "label".to_string(),
        }
    }
}

/// Reads and parses a JSON-lines file (gzipped or not).
pub fn load_jsonl_file(path: impl AsRef<Path>, opts: &JsonlOptions) -> Result<Dataset> {
    let (bytes, name) = read_file(path.as_ref())?;
    load_jsonl(&bytes, &name, opts)
}

/// Parses JSON lines (blank lines skipped). Labels map to classes as described at
/// [`Dataset::class_names`]. Errors name the line and the field (`features[3]` for an element).
pub fn load_jsonl(bytes: &[u8], source_name: &str, opts: &JsonlOptions) -> Result<Dataset> {
    let bytes = maybe_gunzip(bytes, source_name)?;
    let invalid = |line, column, field: &str, text: &str, reason: String| DataError::Invalid {
        source_name: source_name.to_string(),
        line,
        column,
        field: field.to_string(),
        text: clip(text),
        reason,
    };
    let mut features = Vec::new();
    let mut raw_labels = Vec::new();
    let mut p: Option<usize> = None;
    let mut n = 0usize;
    for item in lines(&bytes, source_name) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| invalid(line, Some(e.column()), "<json>", text, e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(invalid(
                line,
                None,
                "<json>",
                text,
                "expected an object".into(),
            ));
        };
        let ff = &opts.features_field;
        let Some(arr) = obj.get(ff) else {
            return Err(invalid(line, None, ff, text, "missing field".into()));
        };
        let Value::Array(arr) = arr else {
            return Err(invalid(
                line,
                None,
                ff,
                &arr.to_string(),
                "expected an array of numbers".into(),
            ));
        };
        match p {
            None => p = Some(arr.len()),
            Some(w) if w != arr.len() => {
                return Err(DataError::Ragged {
                    source_name: source_name.to_string(),
                    line,
                    expected: w,
                    found: arr.len(),
                })
            }
            Some(_) => {}
        }
        check_size(n + 1, arr.len(), source_name, line)?;
        for (j, v) in arr.iter().enumerate() {
            match v.as_f64() {
                Some(x) if x.is_finite() => features.push(x),
                _ => {
                    return Err(invalid(
                        line,
                        Some(j + 1),
                        &format!("{ff}[{j}]"),
                        &v.to_string(),
                        "not a finite number".into(),
                    ))
                }
            }
        }
        let lf = &opts.label_field;
        let label = match obj.get(lf) {
            Some(Value::Number(x)) => x.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                return Err(invalid(
                    line,
                    None,
                    lf,
                    &other.to_string(),
                    "expected a number or a non-empty string".into(),
                ))
            }
            None => return Err(invalid(line, None, lf, text, "missing field".into())),
        };
        raw_labels.push(label);
        n += 1;
    }
    let Some(p) = p else {
        return Err(DataError::Empty {
            source_name: source_name.to_string(),
        });
    };
    Ok(labelled(features, n, p, &raw_labels, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Dataset> {
        load_jsonl(text.as_bytes(), "t.jsonl", &JsonlOptions::default())
    }

    #[test]
    fn parses_objects() {
        let d = load("{\"features\": [1, 2.5], \"label\": 1}\n\n{\"label\": 0, \"features\": [-3, 4e2], \"x\": null}\n")
            .unwrap();
        assert_eq!((d.n, d.p, d.classes), (2, 2, 2));
        assert_eq!(d.features, vec![1.0, 2.5, -3.0, 400.0]);
        assert_eq!(d.labels, vec![1, 0]);
    }

    #[test]
    fn custom_fields_and_string_labels() {
        let opts = JsonlOptions {
            features_field: "x".into(),
            label_field: "y".into(),
        };
        let d = load_jsonl(
            b"{\"x\":[1],\"y\":\"cat\"}\n{\"x\":[2],\"y\":\"dog\"}\n{\"x\":[3],\"y\":\"cat\"}",
            "t",
            &opts,
        )
        .unwrap();
        assert_eq!(d.labels, vec![0, 1, 0]);
        assert_eq!(d.class_names, vec!["cat", "dog"]);
        assert_eq!(d.features, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                "{\"features\":[1,2],\"label\":0}\n{\"features\":[1,\"a\"],\"label\":0}",
                "features[1]",
            ),
            ("{\"features\":[1],\"label\":0}\n{\"label\":0}", "features"),
            (
                "{\"features\":[1],\"label\":0}\n{\"features\":[1]}",
                "label",
            ),
            (
                "{\"features\":[1],\"label\":0}\n{\"features\":[1],\"label\":[0]}",
                "label",
            ),
            (
                "{\"features\":[1],\"label\":0}\n{\"features\":3,\"label\":0}",
                "features",
            ),
            (
                "{\"features\":[1],\"label\":0}\n{\"features\":[1],",
                "<json>",
            ),
            ("{\"features\":[1],\"label\":0}\n[1,2]", "<json>"),
        ];
        for (text, field) in cases {
            let e = load(text).unwrap_err();
            match &e {
                DataError::Invalid {
                    line: 2, field: f, ..
                } => assert_eq!(f, field, "{e}"),
                _ => panic!("{text:?}: {e}"),
            }
            assert!(e.to_string().starts_with("t.jsonl:2"), "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
        let e =
            load("{\"features\":[1],\"label\":0}\n{\"features\":[1,2],\"label\":0}").unwrap_err();
        assert!(matches!(
            e,
            DataError::Ragged {
                line: 2,
                expected: 1,
                found: 2,
                ..
            }
        ));
        assert!(matches!(load("\n"), Err(DataError::Empty { .. })));
    }
}
