//! `bilevel data list|fetch`: the catalogue of named data sets and fetching them into the cache.
//!
//! ```text
//! bilevel data list [--dir DIR]                 name, shape, classes, source, cached?, path
//!                                               (then the text sources: documents, source, …)
//! bilevel data fetch NAME... [--dir DIR] [--force]
//! bilevel data fetch all                        every set and text source that is not embedded
//!                                               or committed
//! ```
//!
//! The cache is `DIR`, else `$BILEVEL_DATA_DIR`, else `$XDG_CACHE_HOME/bilevel`, else
//! `$HOME/.cache/bilevel`. Exit status: 0 success, 1 a fetch failed (the others are still
//! tried), 2 an unknown name (nothing is fetched).

use std::path::{Path, PathBuf};

use bilevel_data::{
    default_cache_dir, fetch, fetchable_corpora, fetchable_sets, known_corpora, known_corpus,
    known_sets, resolve_name, FetchAction,
};

use crate::Failure;

fn dir_or_default(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(default_cache_dir)
}

/// `bilevel data list`: one row per named set.
pub fn list_command(dir: Option<PathBuf>) -> Result<(), Failure> {
    let dir = dir_or_default(dir);
    println!("cache: {}", dir.display());
    println!(
        "{:<14} {:>18} {:>7}  {:<30} {:<6} path",
        "name", "rows × features", "classes", "source", "cached"
    );
    for set in known_sets() {
        let shape = if set.test_rows > 0 {
            format!("{}+{} × {}", set.rows, set.test_rows, set.features)
        } else {
            format!("{} × {}", set.rows, set.features)
        };
        let (cached, path) = if set.embedded() {
            ("yes", "(compiled in)".to_string())
        } else if set.is_present(&dir) {
            ("yes", set.dir_in(&dir).display().to_string())
        } else {
            ("no", set.dir_in(&dir).display().to_string())
        };
        println!(
            "{:<14} {:>18} {:>7}  {:<30} {:<6} {}",
            set.name,
            shape,
            set.classes,
            set.origin.to_string(),
            cached,
            path
        );
    }
    println!("\ntext sources (language-model data mixtures):");
    println!(
        "{:<14} {:>9}  {:<6} {:<44} source",
        "name", "documents", "cached", "path"
    );
    for set in known_corpora() {
        let documents = set
            .documents
            .map_or("varies".to_string(), |n| n.to_string());
        let cached = if set.is_present(&dir) { "yes" } else { "no" };
        println!(
            "{:<14} {:>9}  {:<6} {:<44} {}",
            set.name,
            documents,
            cached,
            set.dir_in(&dir).display().to_string(),
            set.origin
        );
    }
    println!(
        "\nfetch with `bilevel data fetch NAME...` (or `all`); embedded sets and GSM8K (committed \
         in data/gsm8k) need no fetch"
    );
    Ok(())
}

/// `bilevel data fetch NAME...`: resolves every name first (an unknown one is exit 2 and
/// nothing is fetched), then fetches each; any failure makes the exit status 1.
pub fn fetch_command(names: &[String], dir: Option<PathBuf>, force: bool) -> Result<(), Failure> {
    let dir = dir_or_default(dir);
    let mut sets = Vec::new();
    for name in names {
        if name == "all" {
            let all = fetchable_sets()
                .into_iter()
                .map(|s| s.name)
                .chain(fetchable_corpora().into_iter().map(|c| c.name));
            for set in all {
                if !sets.contains(&set) {
                    sets.push(set);
                }
            }
            continue;
        }
        let set = resolve_name(name).map_err(|e| Failure::config(e.to_string()))?;
        if !sets.contains(&set) {
            sets.push(set);
        }
    }
    let mut failed = Vec::new();
    for name in sets {
        if let Err(message) = fetch_one(name, &dir, force) {
            eprintln!("error: {message}");
            failed.push(name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(format!(
            "could not fetch {}",
            failed.join(", ")
        )))
    }
}

fn fetch_one(name: &str, dir: &Path, force: bool) -> Result<(), String> {
    if let Ok(set) = known_corpus(name) {
        if set.fetched() && (force || !set.is_present(dir)) {
            println!("{name}: fetching from {} ({}) …", set.origin, set.size);
        }
    } else {
        let set = bilevel_data::known_set(name).map_err(|e| e.to_string())?;
        if !set.embedded() && (force || !set.is_present(dir)) {
            println!("{name}: fetching from {} ({}) …", set.origin, set.size);
        }
    }
    let started = std::time::Instant::now();
    let report = fetch(name, dir, force).map_err(|e| e.to_string())?;
    let (n, test_n, p, classes) = report.shape;
    let shape = if let Some(text) = report.text {
        format!("{} documents, {} bytes", text.documents, text.bytes)
    } else if test_n > 0 {
        format!("{n} train + {test_n} test rows × {p} features, {classes} classes")
    } else {
        format!("{n} rows × {p} features, {classes} classes")
    };
    let place = report
        .dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    match report.action {
        FetchAction::Embedded if report.text.is_some() => println!(
            "{name}: in the {}, nothing to fetch: {shape}",
            report.package
        ),
        FetchAction::Embedded => println!(
            "{name}: embedded ({}), nothing to fetch: {shape}",
            report.package
        ),
        FetchAction::AlreadyPresent => {
            println!("{name}: already in {place} and verified: {shape} (--force to fetch again)")
        }
        FetchAction::Fetched => println!(
            "{name}: fetched {} into {place} in {:.1} s, verified: {shape}",
            report.package,
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}
