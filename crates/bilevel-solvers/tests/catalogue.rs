//! The solver catalogue: every registered solver builds with its defaults, validates, parses
//! back from its own TOML, runs two iterations on a small quadratic problem, and continues from its
//! checkpoint exactly as an uninterrupted run does. A solver added by one registry row is checked
//! here with no other edit.

use bilevel_core::Bilevel;
use bilevel_problems::ProblemConfig;
use bilevel_solvers::executor::{run, Budget, InitialCounts, RunOptions};
use bilevel_solvers::registry::{solver_info, SolverConfig, SOLVERS};
use bilevel_solvers::State;

type Dyn = dyn Bilevel<Y = Vec<f64>> + Send + Sync;

fn opts(max_iter: usize) -> RunOptions {
    RunOptions {
        budget: Budget {
            max_iter,
            ..Budget::default()
        },
        ..RunOptions::default()
    }
}

#[test]
fn names_are_unique_and_resolve() {
    for (i, s) in SOLVERS.iter().enumerate() {
        assert!(
            SOLVERS[..i].iter().all(|t| t.name != s.name),
            "{} registered twice",
            s.name
        );
        assert_eq!(solver_info(s.name), Some(s));
        let c = SolverConfig::with_defaults(s.name).expect("every catalogue name has defaults");
        assert_eq!(c.name(), s.name);
        assert!(!s.description.is_empty());
    }
    assert!(SolverConfig::with_defaults("no-such-solver").is_none());
    assert_eq!(SolverConfig::default().name(), "hg-ms");
}

#[test]
fn defaults_validate_and_parse_back_from_toml() {
    for s in SOLVERS {
        let c = SolverConfig::with_defaults(s.name).unwrap();
        c.validate()
            .unwrap_or_else(|e| panic!("{}: defaults invalid: {e}", s.name));
        // The whole [solver] table, serialised and parsed again, is the same configuration.
        let text = toml::to_string(&c).unwrap();
        let back: SolverConfig = toml::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&c).unwrap(),
            "{}",
            s.name
        );
        // The located parser accepts the table without its tag line …
        let untagged: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("name ="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            SolverConfig::table_error(s.name, &untagged).is_none(),
            "{}: {untagged}",
            s.name
        );
        // … and names an unknown key with its span.
        let bad = format!("not_a_knob = 1\n{untagged}");
        let e = SolverConfig::table_error(s.name, &bad).expect("unknown key rejected");
        assert!(e.message().contains("not_a_knob"), "{}: {e}", s.name);
        assert_eq!(e.span().map(|r| r.start), Some(0), "{}", s.name);
    }
}

#[test]
fn every_solver_runs_and_resumes_from_its_checkpoint() {
    // A small strongly convex finite sum: every family (deterministic and stochastic) runs on it.
    let cfg: ProblemConfig =
        toml::from_str("name = \"quadratic\"\nn_inner = 64\nn_outer = 64\ndim_x = 5\ndim_y = 8\n")
            .unwrap();
    let built = cfg.build().unwrap();
    let p: &Dyn = built.problem.as_ref();
    let start = State {
        x: built.x0.clone(),
        y: built.y0.clone(),
        iteration: 0,
    };
    for s in SOLVERS {
        let c = SolverConfig::with_defaults(s.name).unwrap();
        let mut a = c.build::<Dyn>(p.dim_x());
        let two = run(
            p,
            a.as_mut(),
            start.clone(),
            &opts(2),
            InitialCounts::default(),
            &mut [],
        )
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(two.state.iteration, 2, "{}", s.name);
        assert!(two.state.x.iter().all(|v| v.is_finite()), "{}", s.name);
        let saved = a.checkpoint();
        // Uninterrupted: one more iteration on the same solver.
        let on = run(
            p,
            a.as_mut(),
            two.state.clone(),
            &opts(3),
            InitialCounts::default(),
            &mut [],
        )
        .unwrap();
        // Resumed: a fresh solver restored from the checkpoint.
        let mut b = c.build::<Dyn>(p.dim_x());
        b.restore(&saved)
            .unwrap_or_else(|e| panic!("{}: restore: {e}", s.name));
        let resumed = run(
            p,
            b.as_mut(),
            two.state.clone(),
            &opts(3),
            InitialCounts::default(),
            &mut [],
        )
        .unwrap();
        assert_eq!(on.state, resumed.state, "{}: resumed run differs", s.name);
        assert_eq!(b.checkpoint(), a.checkpoint(), "{}", s.name);
        // A checkpoint without the solver's state is refused, not silently restarted.
        let mut fresh = c.build::<Dyn>(p.dim_x());
        assert!(fresh.restore(&serde_json::json!({})).is_err(), "{}", s.name);
    }
}

/// A bad value of a solver's knob is refused by `validate`, naming `solver.<key>`; the `None`
/// rows are values at the edge of the accepted range. Rows exercise each kind of check (counts
/// ≥ 1, positive steps, nonnegative exponents, momenta in (0, 1], optional periods, NaN/∞,
/// SABA's chunk sampling) for the stochastic solvers and one bad value per deterministic one.
#[test]
fn bad_values_are_refused_naming_the_key() {
    let rows: &[(&str, &str, Option<&str>)] = &[
        ("itd", "lower_lr = 0.0", Some("lower_lr")),
        ("implicit", "backtrack = 1.0", Some("backtrack")),
        ("bome", "eta = -1.0", Some("eta")),
        ("f2sa", "lr_z = 0.0", Some("lr_z")),
        ("f2sa", "decay = false\ninner_steps = 3", None),
        ("pbgd", "gamma_max = 0.5", Some("gamma_max")),
        ("galet", "w_lr = nan", Some("w_lr")),
        ("galet", "w_steps = 3\nw_lr = 0.05", None),
        ("pzobo", "mu = 0.0", Some("mu")),
        ("pzobo", "samples = 4\nseed = 9", None),
        ("amigo", "v_steps = 0", Some("v_steps")),
        ("amigo", "v_step = nan", Some("v_step")),
        ("amigo", "outer_exponent = -0.5", Some("outer_exponent")),
        ("bsa", "neumann_steps = 0", Some("neumann_steps")),
        ("bsa", "inner_exponent = inf", Some("inner_exponent")),
        ("f2sa-stochastic", "lambda_max = 0.0", Some("lambda_max")),
        ("f2sa-stochastic", "z_exponent = -0.1", Some("z_exponent")),
        ("f2sa-stochastic", "inner_steps = 0", Some("inner_steps")),
        ("fsla", "record_every = 0", Some("record_every")),
        ("fsla", "momentum = 0.0", Some("momentum")),
        ("fsla", "momentum = 1.5", Some("momentum")),
        ("fsla", "momentum = nan", Some("momentum")),
        ("fsla", "momentum = 1.0", None),
        (
            "fsla",
            "momentum_exponent = -0.5",
            Some("momentum_exponent"),
        ),
        ("mrbo", "momentum = 1.5", Some("momentum")),
        (
            "mrbo",
            "momentum_exponent = -1.0",
            Some("momentum_exponent"),
        ),
        ("mrbo", "neumann_step = 0.0", Some("neumann_step")),
        ("saba", "batch_size = 0", Some("batch_size")),
        ("saba", "outer_exponent = -1.0", Some("outer_exponent")),
        ("saba", "sampling = \"uniform\"", Some("sampling")),
        ("saba", "init_memory = \"full\"", None),
        ("soba", "batch_size = 0", Some("batch_size")),
        ("soba", "inner_exponent = -1.0", Some("inner_exponent")),
        ("srba", "step_size = 0.0", Some("step_size")),
        ("srba", "period = 0", Some("period")),
        ("srba", "period = 12", None),
        ("stocbio", "inner_steps = 0", Some("inner_steps")),
        ("stocbio", "neumann_step = -0.1", Some("neumann_step")),
        ("stocbio", "batch_size = 0", Some("batch_size")),
        ("sustain", "neumann_steps = 0", Some("neumann_steps")),
        ("sustain", "momentum = 0.0", Some("momentum")),
        ("ttsa", "neumann_steps = 0", Some("neumann_steps")),
        ("ttsa", "outer_ratio = 0.0", Some("outer_ratio")),
        ("vrbo", "neumann_step = -0.1", Some("neumann_step")),
        ("vrbo", "inner_steps = 0", Some("inner_steps")),
        ("vrbo", "period = 0", Some("period")),
        ("vrbo", "neumann_steps = 3\nperiod = 2", None),
    ];
    for (solver, line, key) in rows {
        let c: SolverConfig = toml::from_str(&format!("name = \"{solver}\"\n{line}\n"))
            .unwrap_or_else(|e| panic!("{solver}: `{line}` does not parse: {e}"));
        match (c.validate(), key) {
            (Err(e), Some(k)) => assert!(
                e.contains(&format!("solver.{k}:")),
                "{solver}: `{line}` refused without naming solver.{k}: {e}"
            ),
            (Ok(()), Some(k)) => panic!("{solver}: `{line}` accepted (expected an error on {k})"),
            (Err(e), None) => panic!("{solver}: `{line}` refused: {e}"),
            (Ok(()), None) => {}
        }
    }
}
