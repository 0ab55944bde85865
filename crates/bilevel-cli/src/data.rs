//! `bilevel data list|fetch`: the catalogue of named data sets and fetching them into the cache.
//!
//! ```text
//! bilevel data list [--dir DIR]                 name, shape, classes, source, cached?, path
//! bilevel data fetch NAME... [--dir DIR] [--force]
//! bilevel data fetch all                        every set that is not embedded
//! ```
//!
//! The cache is `DIR`, else `$BILEVEL_DATA_DIR`, else `$XDG_CACHE_HOME/bilevel`, else
//! `$HOME/.cache/bilevel`. Exit status: 0 success, 1 a fetch failed (the others are still
//! tried), 2 an unknown name (nothing is fetched).

use std::path::{Path, PathBuf};

use bilevel_data::{cache_dir, fetch, fetchable_sets, known_set, known_sets, FetchAction};

use crate::Failure;

fn dir_or_default(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(cache_dir)
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
    println!("\nfetch with `bilevel data fetch NAME...` (or `all`); embedded sets need no fetch");
    Ok(())
}

/// `bilevel data fetch NAME...`: resolves every name first (an unknown one is exit 2 and
/// nothing is fetched), then fetches each; any failure makes the exit status 1.
pub fn fetch_command(names: &[String], dir: Option<PathBuf>, force: bool) -> Result<(), Failure> {
    let dir = dir_or_default(dir);
    let mut sets = Vec::new();
    for name in names {
        if name == "all" {
            for set in fetchable_sets() {
                if !sets.contains(&set.name) {
                    sets.push(set.name);
                }
            }
            continue;
        }
        let set = known_set(name).map_err(|e| Failure::config(e.to_string()))?;
        if !sets.contains(&set.name) {
            sets.push(set.name);
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
    let set = known_set(name).map_err(|e| e.to_string())?;
    if !set.embedded() && (force || !set.is_present(dir)) {
        println!("{name}: fetching from {} ({}) …", set.origin, set.size);
    }
    let started = std::time::Instant::now();
    let report = fetch(name, dir, force).map_err(|e| e.to_string())?;
    let (n, test_n, p, classes) = report.shape;
    let shape = if test_n > 0 {
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
