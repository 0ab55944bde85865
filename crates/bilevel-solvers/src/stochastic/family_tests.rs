//! The tests every stochastic solver shares, run over one table: convergence on the small test
//! quadratic of [`testkit`] with the default parameters, and (ignored: slow) the ratio reached on
//! the default quadratic benchmark (n = m = 1024, d = m_x = 100, μ = 0.1). Each bar sits a
//! factor 2–4 above the value measured when the solver was written, so a change of seed stream
//! or summation order passes and a real regression fails. Configuration
//! errors, checkpoint resumption and the two-iteration smoke run are checked for every solver of
//! the registry in `tests/catalogue.rs`; what is particular to one solver (its update written by
//! hand, its oracle counts, its memory) stays in its own file.

use super::testkit::{self, Quad};
use super::{amigo, bsa, f2sa_stoch, fsla, mrbo, saba, soba, srba, stocbio, sustain, ttsa, vrbo};
use super::{Stochastic, StochasticStep};
use crate::State;
use bilevel_core::{Bilevel, Counted};

type Make = fn(usize) -> Box<dyn StochasticStep<Quad>>;

/// One solver's row: constructor with the defaults, (iterations, bar) on the test quadratic and,
/// where it has a ratio bar, on the default benchmark (the variance-reduced solvers have their own
/// test to 1e-6 on it in their files). Comments give the ratios measured when the bars were set.
struct Row {
    make: Make,
    test: (usize, f64),
    benchmark: Option<(usize, f64)>,
}

macro_rules! row {
    ($m:ident :: $ty:ident ($cfg:ident), $test:expr, $bench:expr) => {
        Row {
            make: |m| Box::new($m::$ty::new($m::$cfg::default(), m)),
            test: $test,
            benchmark: $bench,
        }
    };
}

fn family() -> Vec<Row> {
    vec![
        // Decreasing steps: a sublinear rate; 1e-2 within 40 passes is the documented bar.
        row!(soba::Soba(SobaConfig), (20_000, 1e-2), None),
        // Variance-reduced, constant steps: 1e-6 reached after 256, 216 and 31 iterations.
        row!(saba::Saba(SabaConfig), (1_000, 1e-6), None),
        row!(srba::Srba(SrbaConfig), (1_000, 1e-6), None),
        row!(vrbo::Vrbo(VrboConfig), (60, 1e-6), None),
        // Decreasing steps and momentum: a sublinear rate, the documented lower bar.
        row!(fsla::Fsla(FslaConfig), (10_000, 1e-2), None),
        // Constant steps (a noise floor plus the Neumann truncation): measured 2.8e-4 / 1.4e-2.
        row!(
            stocbio::Stocbio(StocbioConfig),
            (3000, 1e-3),
            Some((3000, 3e-2))
        ),
        // Constant steps: measured 7.5e-5 / 4.5e-3.
        row!(amigo::Amigo(AmigoConfig), (3000, 3e-4), Some((3000, 1e-2))),
        // Decreasing steps: measured 6.0e-4 / 1.0e-2.
        row!(bsa::Bsa(BsaConfig), (3000, 2e-3), Some((3000, 3e-2))),
        // Two timescales, one lower step per iteration: measured 2.9e-4 / 8.9e-3.
        row!(ttsa::Ttsa(TtsaConfig), (20_000, 1e-3), Some((20_000, 3e-2))),
        // Decreasing steps and momentum: measured 3.4e-4 / 1.2e-2 and 3.2e-4 / 2.0e-2.
        row!(mrbo::Mrbo(MrboConfig), (3000, 1e-3), Some((3000, 3e-2))),
        row!(
            sustain::Sustain(SustainConfig),
            (3000, 1e-3),
            Some((3000, 5e-2))
        ),
        // The floor is the O(1/λ) bias of λ_max = 5: measured 5.9e-3 / 4.3e-2.
        row!(
            f2sa_stoch::F2saStoch(F2saStochConfig),
            (3000, 1e-2),
            Some((3000, 1e-1))
        ),
    ]
}

/// The twelve stochastic solvers of the registry, each once.
#[test]
fn the_table_holds_each_stochastic_solver_once() {
    let names: std::collections::BTreeSet<&str> =
        family().iter().map(|r| (r.make)(1).name()).collect();
    assert_eq!(names.len(), 12);
    for n in names {
        assert!(crate::registry::SOLVERS.iter().any(|s| s.name == n), "{n}");
    }
}

/// Default parameters on the test quadratic: ‖∇φ(x_T)‖² ≤ bar · ‖∇φ(x_0)‖².
#[test]
fn every_solver_converges_on_the_test_quadratic() {
    for row in family() {
        let (iterations, bar) = row.test;
        testkit::assert_converges(row.make, iterations, bar);
    }
}

/// Default parameters on the default quadratic benchmark (about 10 s in the test profile).
#[test]
#[ignore = "slow: default-size benchmark"]
fn every_solver_on_the_default_benchmark() {
    for row in family() {
        if let Some((iterations, bar)) = row.benchmark {
            default_benchmark(row.make, iterations, bar);
        }
    }
}

/// Ratio `‖∇φ(x_T)‖²/‖∇φ(x_0)‖²` after `iterations` on the default quadratic benchmark.
fn default_benchmark(make: Make, iterations: usize, bar: f64) -> f64 {
    use bilevel_problems::{Quadratic, QuadraticParams, WithDerivatives};
    let p = WithDerivatives::analytic(Quadratic::new(QuadraticParams::default()).unwrap());
    let (x0, y0) = (vec![0.0; p.dim_x()], vec![0.0; p.dim_y()]);
    let c = Counted::new(&p);
    let mut state = State {
        x: x0.clone(),
        y: y0,
        iteration: 0,
    };
    let s = make(p.dim_x());
    let name = s.name();
    let mut s = Stochastic::new(s);
    s.advance(&c, &mut state, iterations).unwrap();
    let r = testkit::grad_phi_sq(&p, &state.x) / testkit::grad_phi_sq(&p, &x0);
    // Both levels hold 1024 samples and the batches 64: a pass is 16 batch calls.
    let calls = c.counts().total();
    eprintln!(
        "{name}, default benchmark: {iterations} iterations, {calls} batch oracle calls \
         (≈ {:.0} passes), ‖∇φ‖² ratio {r:e}",
        calls as f64 / 16.0
    );
    assert!(r <= bar, "{name}: ratio {r:e} above the documented {bar:e}");
    r
}
