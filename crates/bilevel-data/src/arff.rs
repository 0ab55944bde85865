//! ARFF (Weka): `@relation`, `@attribute name numeric|real|integer|{a,b,c}`, `@data` with
//! comma-separated rows; `%` starts a comment line.
//!
//! Nominal feature attributes are encoded as the index of the value in their declaration.
//! String, date and relational attributes, sparse rows (`{…}`) and missing values (`?`) are
//! errors.

use std::path::Path;

use crate::error::{clip, DataError, Result};
use crate::labels::map_labels;
use crate::text::{check_size, lines, maybe_gunzip, read_file, unquote};
use crate::{parse_finite, Dataset};

/// How to read an ARFF file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArffOptions {
    /// Name of the class attribute; `None`: the last attribute.
    pub class_attribute: Option<String>,
}

/// Reads and parses an ARFF file (gzipped or not).
pub fn load_arff_file(path: impl AsRef<Path>, opts: &ArffOptions) -> Result<Dataset> {
    let (bytes, name) = read_file(path.as_ref())?;
    load_arff(&bytes, &name, opts)
}

enum Kind {
    Numeric,
    Nominal(Vec<String>),
}

struct Attribute {
    name: String,
    kind: Kind,
}

/// Parses ARFF text. A nominal class attribute maps to the index of its value in the
/// declaration (`class_names` are the declared values); a numeric one as in
/// [`Dataset::class_names`].
pub fn load_arff(bytes: &[u8], source_name: &str, opts: &ArffOptions) -> Result<Dataset> {
    let bytes = maybe_gunzip(bytes, source_name)?;
    let invalid = |line, column, field: &str, text: &str, reason: &str| DataError::Invalid {
        source_name: source_name.to_string(),
        line,
        column,
        field: field.to_string(),
        text: clip(text),
        reason: reason.to_string(),
    };
    let unsupported = |line, what: &str, text: &str| DataError::Unsupported {
        source_name: source_name.to_string(),
        line,
        what: what.to_string(),
        text: clip(text),
    };
    let mut attrs: Vec<Attribute> = Vec::new();
    let mut class_idx: Option<usize> = None;
    let mut in_data = false;
    let mut features = Vec::new();
    let mut class_values: Vec<String> = Vec::new();
    let mut nominal_labels: Vec<u32> = Vec::new();
    let mut n = 0usize;

    for item in lines(&bytes, source_name) {
        let (line, text) = item?;
        let t = text.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        if !in_data {
            let lower = t.to_ascii_lowercase();
            if lower.starts_with("@relation") {
                continue;
            }
            if lower.starts_with("@attribute") {
                attrs.push(parse_attribute(
                    &t["@attribute".len()..],
                    line,
                    source_name,
                )?);
                continue;
            }
            if lower.starts_with("@data") {
                if attrs.is_empty() {
                    return Err(invalid(
                        line,
                        None,
                        "@data",
                        t,
                        "no @attribute before @data",
                    ));
                }
                let ci = match &opts.class_attribute {
                    None => attrs.len() - 1,
                    Some(c) => attrs.iter().position(|a| &a.name == c).ok_or_else(|| {
                        DataError::NoSuchColumn {
                            source_name: source_name.to_string(),
                            column: c.clone(),
                            reason: "no such @attribute".to_string(),
                        }
                    })?,
                };
                class_idx = Some(ci);
                in_data = true;
                continue;
            }
            return Err(invalid(
                line,
                None,
                "header",
                t,
                "expected @relation, @attribute or @data",
            ));
        }
        let ci = class_idx.unwrap_or(0);
        if t.starts_with('{') {
            return Err(unsupported(line, "sparse ARFF rows are not supported", t));
        }
        let values: Vec<&str> = t.split(',').map(|v| unquote(v.trim())).collect();
        if values.len() != attrs.len() {
            return Err(DataError::Ragged {
                source_name: source_name.to_string(),
                line,
                expected: attrs.len(),
                found: values.len(),
            });
        }
        check_size(n + 1, attrs.len() - 1, source_name, line)?;
        for (j, (v, a)) in values.iter().zip(&attrs).enumerate() {
            if *v == "?" {
                return Err(DataError::Missing {
                    source_name: source_name.to_string(),
                    line,
                    attribute: a.name.clone(),
                });
            }
            let value = match &a.kind {
                Kind::Numeric => match parse_finite(v) {
                    Ok(x) => x,
                    Err(true) => {
                        return Err(DataError::NonFinite {
                            source_name: source_name.to_string(),
                            line,
                            column: j + 1,
                            field: a.name.clone(),
                            text: clip(v),
                        })
                    }
                    Err(false) => {
                        return Err(invalid(line, Some(j + 1), &a.name, v, "not a number"))
                    }
                },
                Kind::Nominal(vals) => match vals.iter().position(|x| x == v) {
                    Some(k) => k as f64,
                    None => {
                        return Err(invalid(
                            line,
                            Some(j + 1),
                            &a.name,
                            v,
                            "value not declared for this nominal attribute",
                        ))
                    }
                },
            };
            if j == ci {
                class_values.push(v.to_string());
                nominal_labels.push(value as u32);
            } else {
                features.push(value);
            }
        }
        n += 1;
    }
    let Some(ci) = class_idx.filter(|_| n > 0) else {
        return Err(DataError::Empty {
            source_name: source_name.to_string(),
        });
    };
    let (labels, class_names) = match &attrs[ci].kind {
        Kind::Nominal(vals) => (nominal_labels, vals.clone()),
        Kind::Numeric => map_labels(&class_values),
    };
    let feature_names = attrs
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != ci)
        .map(|(_, a)| a.name.clone())
        .collect();
    Ok(Dataset {
        features,
        labels,
        n,
        p: attrs.len() - 1,
        classes: class_names.len(),
        feature_names: Some(feature_names),
        class_names,
    })
}

/// Parses the part of an `@attribute` line after the keyword.
fn parse_attribute(rest: &str, line: usize, source_name: &str) -> Result<Attribute> {
    let rest = rest.trim();
    let invalid = |reason: &str| DataError::Invalid {
        source_name: source_name.to_string(),
        line,
        column: None,
        field: "@attribute".to_string(),
        text: clip(rest),
        reason: reason.to_string(),
    };
    let (name, ty) = match rest.chars().next() {
        Some(q @ ('\'' | '"')) => {
            let end = rest[1..]
                .find(q)
                .ok_or_else(|| invalid("unterminated quoted name"))?;
            (&rest[1..1 + end], &rest[2 + end..])
        }
        Some(_) => rest
            .split_once(|c: char| c.is_whitespace() || c == '{')
            .map(|(n, _)| (n, &rest[n.len()..]))
            .ok_or_else(|| invalid("missing type"))?,
        None => return Err(invalid("missing name and type")),
    };
    let ty = ty.trim();
    let lower = ty.to_ascii_lowercase();
    let lower = lower.split('%').next().unwrap_or("").trim();
    let kind = if matches!(lower, "numeric" | "real" | "integer") {
        Kind::Numeric
    } else if let Some(inner) = ty.strip_prefix('{') {
        let (inner, after) = inner
            .split_once('}')
            .ok_or_else(|| invalid("nominal values must end with `}`"))?;
        let after = after.trim();
        if !(after.is_empty() || after.starts_with('%')) {
            return Err(invalid("unexpected text after `}`"));
        }
        Kind::Nominal(
            inner
                .split(',')
                .map(|v| unquote(v.trim()).to_string())
                .collect(),
        )
    } else if lower == "string" || lower.starts_with("date") || lower.starts_with("relational") {
        return Err(DataError::Unsupported {
            source_name: source_name.to_string(),
            line,
            what: format!(
                "attribute `{name}`: {} attributes are not supported (only numeric and nominal)",
                lower.split_whitespace().next().unwrap_or("")
            ),
            text: clip(rest),
        });
    } else {
        return Err(invalid("unknown attribute type"));
    };
    Ok(Attribute {
        name: name.to_string(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IRIS: &str = "% a comment\n@RELATION iris\n\n@attribute sepal real\n\
        @attribute 'petal width' NUMERIC\n@attribute colour {red, 'dark blue'}\n\
        @attribute class {Iris-setosa,Iris-versicolor,Iris-virginica}\n@data\n\
        5.1,0.2,red,Iris-virginica\n% inside data\n4.9,1.5,'dark blue',Iris-setosa\n";

    fn load(text: &str, opts: &ArffOptions) -> Result<Dataset> {
        load_arff(text.as_bytes(), "t.arff", opts)
    }

    #[test]
    fn nominal_class_last() {
        let d = load(IRIS, &ArffOptions::default()).unwrap();
        assert_eq!((d.n, d.p, d.classes), (2, 3, 3));
        assert_eq!(d.features, vec![5.1, 0.2, 0.0, 4.9, 1.5, 1.0]);
        assert_eq!(d.labels, vec![2, 0]);
        assert_eq!(d.class_names[1], "Iris-versicolor");
        assert_eq!(
            d.feature_names,
            Some(vec!["sepal".into(), "petal width".into(), "colour".into()])
        );
    }

    #[test]
    fn named_class_attribute() {
        let opts = ArffOptions {
            class_attribute: Some("colour".into()),
        };
        let d = load(IRIS, &opts).unwrap();
        assert_eq!(d.labels, vec![0, 1]);
        assert_eq!(d.class_names, vec!["red", "dark blue"]);
        assert_eq!(d.features, vec![5.1, 0.2, 2.0, 4.9, 1.5, 0.0]);
        let opts = ArffOptions {
            class_attribute: Some("nope".into()),
        };
        assert!(matches!(
            load(IRIS, &opts),
            Err(DataError::NoSuchColumn { .. })
        ));
    }

    #[test]
    fn trailing_comment_after_nominal_values() {
        let text = "@attribute x real % metres\n@attribute 'total' { low, high} % low < 100\n@data\n1,high\n";
        let d = load(text, &ArffOptions::default()).unwrap();
        assert_eq!(d.labels, vec![1]);
        assert_eq!(d.class_names, vec!["low", "high"]);
    }

    #[test]
    fn numeric_class() {
        let d = load(
            "@attribute x real\n@attribute y integer\n@data\n1,1\n2,-1\n",
            &ArffOptions::default(),
        )
        .unwrap();
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.class_names, vec!["-1", "1"]);
    }

    #[test]
    fn missing_value_names_line_and_attribute() {
        let text = IRIS.replace("4.9,1.5", "4.9,?");
        let e = load(&text, &ArffOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Missing { line: 11, .. }), "{e}");
        assert!(e.to_string().contains("t.arff:11") && e.to_string().contains("petal width"));
    }

    #[test]
    fn string_attribute_is_clear_error() {
        let e = load(
            "@relation r\n@attribute text string\n@attribute c {a,b}\n@data\n",
            &ArffOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, DataError::Unsupported { line: 2, .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("t.arff:2") && msg.contains("string attributes are not supported"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_ragged_and_empty() {
        let e = load(&IRIS.replace("5.1", "five"), &ArffOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Invalid {
                    line: 9,
                    column: Some(1),
                    ..
                }
            ),
            "{e}"
        );
        let e = load(&IRIS.replace(",red", ",green"), &ArffOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("t.arff:9:3") && e.to_string().contains("green"),
            "{e}"
        );
        let e = load(&IRIS.replace(",red", ""), &ArffOptions::default()).unwrap_err();
        assert!(matches!(
            e,
            DataError::Ragged {
                line: 9,
                expected: 4,
                found: 3,
                ..
            }
        ));
        let e = load(
            "@attribute x real\n@attribute c {a}\n@data\n",
            &ArffOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }));
        assert!(matches!(
            load("", &ArffOptions::default()),
            Err(DataError::Empty { .. })
        ));
    }
}
