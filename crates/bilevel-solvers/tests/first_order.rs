//! Acceptance tests of the first-order and classical family (issue 3) on the BOME toys and the
//! quadratic benchmark, against the exact answers of docs/PROBLEMS.md §B and §D.

use bilevel_core::Bilevel;
use bilevel_problems::ProblemConfig;
use bilevel_solvers::executor::{run, Budget, InitialCounts, RunOptions};
use bilevel_solvers::{BilevelSolver, State};

type Dyn = dyn Bilevel<Y = Vec<f64>> + Send + Sync;

fn problem(text: &str) -> bilevel_problems::BuiltProblem {
    let pc: ProblemConfig = toml::from_str(text).unwrap();
    pc.build().unwrap()
}

fn solver(text: &str, m: usize) -> Box<dyn BilevelSolver<Dyn>> {
    use bilevel_solvers::*;
    let v: toml::Table = toml::from_str(text).unwrap();
    let name = v["name"].as_str().unwrap().to_string();
    let mut v = v.clone();
    v.remove("name");
    let val = toml::Value::Table(v);
    match name.as_str() {
        "bome" => Box::new(bome::Bome::new(val.try_into().unwrap(), m)),
        "itd" => Box::new(itd::Itd::new(val.try_into().unwrap(), m)),
        "aid" => Box::new(aid::Aid::new(val.try_into().unwrap(), m)),
        "hg-ms" => Box::new(hgms::Hgms::new(val.try_into().unwrap(), m)),
        "f2sa" => Box::new(f2sa::F2sa::new(val.try_into().unwrap(), m)),
        "pbgd" => Box::new(pbgd::Pbgd::new(val.try_into().unwrap(), m)),
        "galet" => Box::new(galet::Galet::new(val.try_into().unwrap(), m)),
        "pzobo" => Box::new(pzobo::Pzobo::new(val.try_into().unwrap(), m)),
        "implicit" => Box::new(implicit::Implicit::new(val.try_into().unwrap(), m)),
        other => panic!("unknown solver {other}"),
    }
}

fn go(
    p: &Dyn,
    s: &mut dyn BilevelSolver<Dyn>,
    x0: &[f64],
    y0: &[f64],
    max_iter: usize,
) -> State<Vec<f64>> {
    let opts = RunOptions {
        budget: Budget {
            max_iter,
            ..Budget::default()
        },
        diagnostics_every: 0,
        ..RunOptions::default()
    };
    let st = State {
        x: x0.to_vec(),
        y: y0.to_vec(),
        iteration: 0,
    };
    run(p, s, st, &opts, InitialCounts::default(), &mut [])
        .unwrap()
        .state
}

/// BOME on coreset reaches f within 1e-2 of 0.72 with y within 1e-2 of (1.8, 0.4) from the three
/// starts of the paper's code (T = 10, η = 0.5, φ = η‖∇q‖², ξ = 0.01, 50,000 iterations).
#[test]
fn bome_coreset_from_three_starts() {
    for y0 in [[0.0, 3.0], [-3.0, 1.0], [3.5, -1.0]] {
        let b = problem(&format!("name = \"coreset\"\ny0 = [{}, {}]", y0[0], y0[1]));
        let p: &Dyn = b.problem.as_ref();
        // The optimum is reached only as the logits diverge, and y lags c̄(w) by O(ξ) while they
        // drift: ξ = 0.01 (the toys' 0.05 leaves f ≈ 0.700, y 0.04 off the hull).
        let mut s = solver("name = \"bome\"\n[upper]\nlr = 0.01", p.dim_x());
        let st = go(p, s.as_mut(), &b.x0, &b.y0, 50000);
        let f = p.f(&st.x, &st.y);
        let dy = ((st.y[0] - 1.8).powi(2) + (st.y[1] - 0.4).powi(2)).sqrt();
        assert!(
            (f - 0.72).abs() < 1e-2 && dy < 1e-2,
            "start {y0:?}: f {f}, y {:?}",
            st.y
        );
    }
}

/// BOME on non-singleton reaches (w, y) = (1, (1, 1)) to 1e-3; on minimax |w| < 1e-2.
#[test]
fn bome_non_singleton_and_minimax() {
    let b = problem("name = \"non-singleton\"");
    let p: &Dyn = b.problem.as_ref();
    let mut s = solver("name = \"bome\"\n[upper]\nlr = 0.05", p.dim_x());
    let st = go(p, s.as_mut(), &b.x0, &b.y0, 20000);
    let err = (st.x[0] - 1.0)
        .abs()
        .max((st.y[0] - 1.0).abs())
        .max((st.y[1] - 1.0).abs());
    assert!(err < 1e-3, "w {:?} y {:?}", st.x, st.y);

    let b = problem("name = \"minimax\"");
    let p: &Dyn = b.problem.as_ref();
    let mut s = solver(
        "name = \"bome\"\n[upper]\nlr = 0.05\nlower = -10.0\nupper = 10.0",
        p.dim_x(),
    );
    let st = go(p, s.as_mut(), &b.x0, &b.y0, 20000);
    assert!(st.x[0].abs() < 1e-2, "w {:?} y {:?}", st.x, st.y);
}

fn grad_phi_sq(p: &Dyn, x: &[f64]) -> f64 {
    p.reference_grad_phi(x).unwrap().iter().map(|v| v * v).sum()
}

/// Quadratic benchmark (n = m = 1024, dims 100): the solvers that compute a hypergradient
/// estimate match the exact ∇φ at x0 once their inner problems are solved accurately.
#[test]
fn quadratic_hypergradient_estimates_match_exact_grad_phi() {
    let b = problem("name = \"quadratic\"");
    let p: &Dyn = b.problem.as_ref();
    let exact = p.reference_grad_phi(&b.x0).unwrap();
    let ys = p.reference_y(&b.x0).unwrap();
    let cases: &[(&str, f64)] = &[
        ("name = \"implicit\"", 1e-10),
        ("name = \"hg-ms\"\nlower_lr = 0.8\n[selection]\nstrategy = \"none\"", 1e-8),
        ("name = \"aid\"\nlower_lr = 0.8\n[hypergradient]\nsolver = \"cg\"\nmax_iter = 300\nrtol = 1e-12\nwarm_start = false", 1e-8),
        ("name = \"itd\"\nlower_steps = 400\nlower_lr = 0.8", 1e-6),
        ("name = \"galet\"\nlower_steps = 10\nlower_lr = 0.8\nw_steps = 4000\nw_lr = 0.7", 1e-6),
    ];
    for (cfg, tol) in cases {
        let mut s = solver(cfg, p.dim_x());
        let c = bilevel_core::Counted::new(p);
        // Start the lower level at y*(x0) so that every method's remaining error is its own.
        let mut st = State {
            x: b.x0.clone(),
            y: ys.clone(),
            iteration: 0,
        };
        let rep = s.hypergradient(&c, &mut st, false).unwrap();
        let err = bilevel_core::derivatives::relative_error(&rep.hypergradient, &exact, 1e-300);
        assert!(err < *tol, "{cfg}: relative error {err}");
    }
}

/// Quadratic benchmark: within the documented iteration budgets each of these solvers reduces
/// ‖∇φ‖² by at least 1e-4 relative to its start, and the exact implicit solver by 1e-10
/// (budgets as in configs/compare-quadratic.toml; measured costs in the README).
#[test]
fn quadratic_solvers_reduce_grad_phi() {
    let b = problem("name = \"quadratic\"");
    let p: &Dyn = b.problem.as_ref();
    let start = grad_phi_sq(p, &b.x0);
    let cases: &[(&str, usize, f64)] = &[
        ("name = \"implicit\"\n[upper]\nlr = 0.5", 200, 1e-10),
        ("name = \"hg-ms\"\nlower_lr = 0.8\n[selection]\nstrategy = \"none\"\n[upper]\nlr = 0.5", 200, 1e-10),
        ("name = \"galet\"\nlower_lr = 0.8\nw_lr = 0.8\n[upper]\nlr = 0.5", 400, 1e-10),
        ("name = \"aid\"\nlower_steps = 10\nlower_lr = 0.8\nlower_tol = 0.0\n[hypergradient]\nsolver = \"cg\"\nmax_iter = 10\n[upper]\nlr = 0.5", 400, 1e-4),
        ("name = \"itd\"\nlower_steps = 150\nlower_lr = 0.8\n[upper]\nlr = 0.5", 200, 1e-4),
        ("name = \"pbgd\"\nlower_lr = 0.8\ngamma_max = 1000.0\nramp = 5000\n[upper]\nlr = 0.0008", 20000, 1e-4),
        ("name = \"bome\"\nlower_steps = 150\nlower_lr = 0.8\nlambda_step_scale = 10.0\n[upper]\nlr = 0.1", 1500, 1e-4),
        ("name = \"pzobo\"\nlower_steps = 150\nlower_lr = 0.8\nsamples = 100\ndirections = \"orthogonal\"\nmu = 0.001\n[upper]\nlr = 0.5", 12, 1e-4),
        ("name = \"f2sa\"\ndecay = false\nscale_y_step = true\nlr_y = 0.8\nlr_z = 0.8\nlambda_max = 1000.0\n[upper]\nlr = 0.05", 2000, 1e-4),
    ];
    for (cfg, iters, target) in cases {
        let mut s = solver(cfg, p.dim_x());
        let st = go(p, s.as_mut(), &b.x0, &b.y0, *iters);
        let ratio = grad_phi_sq(p, &st.x) / start;
        assert!(
            ratio <= *target,
            "{cfg}: ‖∇φ‖² ratio {ratio:e} after {iters} iterations"
        );
    }
}
