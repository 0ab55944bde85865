//! "Right or flagged": HG-MS with its shipped defaults on seeded random instances of every
//! closed-form problem, log-uniform across scales (1e-3 … 1e3) and with adversarial lower-level
//! starts (maximisers of f on S(x), the ray that leads gradient descent to them, stationary points
//! of g that are not minimisers, far inside and far outside the manifold). Every hypergradient
//! must be within 1e-6 (relative) of the closed-form ∇φ or carry a warning (or fail with an
//! error): a silent wrong answer fails the test. The counts are printed per problem.
//!
//! `cargo test -p bilevel-solvers --test right_or_flagged` runs 200 draws per problem; the
//! ignored `right_or_flagged_large` runs `RIGHT_OR_FLAGGED_DRAWS` (default 2000) per problem.

mod common;

use bilevel_core::derivatives::relative_error;
use bilevel_core::Counted;
use bilevel_solvers::hgms::{Hgms, HgmsConfig};
use bilevel_solvers::{BilevelSolver, State};
use common::draws::{draw, PROBLEMS};

/// Relative accuracy a hypergradient must reach to count as right.
const RIGHT_RTOL: f64 = 1e-6;

#[derive(Default, Debug)]
struct Counts {
    right: usize,
    flagged: usize,
    errors: usize,
    /// Draws outside the configuration's reach (sphere d = 1 without probes), not run.
    skipped: usize,
    silent: Vec<String>,
    /// Right answers that nevertheless carried a warning (false alarms).
    right_but_warned: usize,
    /// Warning codes seen, with counts.
    codes: std::collections::BTreeMap<String, usize>,
}

fn run(name: &str, n: u64, seed: u64, config: &HgmsConfig) -> Counts {
    let mut c = Counts::default();
    for i in 0..n {
        let case = draw(name, seed, i);
        let p = case.problem.as_ref();
        if config.selection.probes == 0 && p.dim_y() == 1 {
            // Two isolated points (sphere, d = 1): only a global probe can move between them.
            c.skipped += 1;
            continue;
        }
        let truth = p
            .reference_grad_phi(&case.x)
            .expect("the draws avoid kinks");
        let mut solver = Hgms::new(config.clone(), p.dim_x());
        let counted = Counted::new(p);
        let mut state = State {
            x: case.x.clone(),
            y: case.y0.clone(),
            iteration: 0,
        };
        let rep = match solver.hypergradient(&counted, &mut state, true) {
            Ok(r) => r,
            Err(_) => {
                c.errors += 1;
                continue;
            }
        };
        let err = relative_error(&rep.hypergradient, &truth, 1e-300);
        for w in &rep.warnings {
            *c.codes.entry(w.code.clone()).or_default() += 1;
        }
        if std::env::var("RIGHT_OR_FLAGGED_VERBOSE").is_ok() && !rep.warnings.is_empty() {
            eprintln!("{} err {err:.1e}: {:?}", case.label, rep.warnings);
        }
        let right = err <= RIGHT_RTOL && rep.hypergradient.iter().all(|v| v.is_finite());
        if right {
            c.right += 1;
            if !rep.warnings.is_empty() {
                c.right_but_warned += 1;
            }
        } else if !rep.warnings.is_empty() {
            c.flagged += 1;
        } else {
            c.silent
                .push(format!("{} (relative error {err:.2e})", case.label));
        }
    }
    c
}

/// Print the report of draw `RIGHT_OR_FLAGGED_CASE=problem:index` (debugging aid).
#[test]
#[ignore = "debugging aid"]
fn right_or_flagged_one() {
    let spec = std::env::var("RIGHT_OR_FLAGGED_CASE").unwrap_or_default();
    let Some((name, i)) = spec.split_once(':') else {
        return;
    };
    let case = draw(name, 12, i.parse().expect("index"));
    let p = case.problem.as_ref();
    let truth = p.reference_grad_phi(&case.x).expect("differentiable");
    let mut solver = Hgms::new(HgmsConfig::default(), p.dim_x());
    let counted = Counted::new(p);
    let mut state = State {
        x: case.x.clone(),
        y: case.y0.clone(),
        iteration: 0,
    };
    let rep = solver.hypergradient(&counted, &mut state, true);
    println!("{}", case.label);
    match rep {
        Ok(rep) => {
            let err = relative_error(&rep.hypergradient, &truth, 1e-300);
            let yref = p.reference_y(&case.x).unwrap_or_default();
            println!(
                "error {err:.3e}; y error {:.3e}; {:#?}; counts {:?}",
                relative_error(&state.y, &yref, 1e-300),
                rep,
                counted.counts()
            );
        }
        Err(e) => println!("error: {e}"),
    }
}

fn check(n: u64, config: &HgmsConfig, problems: &[&str]) {
    let mut failures = Vec::new();
    for &name in problems {
        let c = run(name, n, 12, config);
        println!(
            "{name:<14} right {:>5}  flagged {:>4}  errors {:>3}  silent {:>3}  of {n}, {} skipped  (right but warned: {})",
            c.right,
            c.flagged,
            c.errors,
            c.silent.len(),
            c.skipped,
            c.right_but_warned
        );
        println!("    warnings: {:?}", c.codes);
        failures.extend(c.silent);
    }
    assert!(
        failures.is_empty(),
        "{} silent wrong hypergradients:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn right_or_flagged() {
    check(200, &HgmsConfig::default(), &PROBLEMS);
}

/// The second-order check and its escapes alone (no global probes) on the manifold problems:
/// maximisers and saddles of f on S(x) are escaped or flagged, never returned silently.
#[test]
fn right_or_flagged_without_probes() {
    let mut config = HgmsConfig::default();
    config.selection.probes = 0;
    check(
        100,
        &config,
        &["circle-center", "circle-radius", "sphere", "circle-sine"],
    );
}

#[test]
#[ignore = "large: RIGHT_OR_FLAGGED_DRAWS (default 2000) draws per problem"]
fn right_or_flagged_large() {
    let n = std::env::var("RIGHT_OR_FLAGGED_DRAWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    check(n, &HgmsConfig::default(), &PROBLEMS);
}
