//! A stochastic iteration at batch 64 allocates nothing after the first one (workspaces, memory
//! tables and samplers are set up then), counted by a global allocator that tallies this thread's
//! allocations. Problems: the quadratic benchmark and per-feature L2 selection (logistic).

use bilevel_core::alloc_count::{allocations, Counting};
use bilevel_core::{Bilevel, Counted};
use bilevel_problems::ml::data::{synthetic, MlData, SplitSize, SplitSpec, Standardize};
use bilevel_problems::ml::RegselLogistic;
use bilevel_problems::{Quadratic, QuadraticParams, WithDerivatives};
use bilevel_solvers::stochastic::{Stochastic, StochasticStep};
use bilevel_solvers::State;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Run the solver a little (warm-up: first iteration, first full refresh, memory tables), then
/// count the allocations of many more iterations: must be zero.
fn check<P: Bilevel<Y = Vec<f64>>, S: StochasticStep<P>>(p: &P, solver: S, label: &str) {
    let c = Counted::new(p);
    let mut state = State {
        x: vec![0.0; p.dim_x()],
        y: vec![0.0; p.dim_y()],
        iteration: 0,
    };
    let mut s = Stochastic::new(solver);
    // Enough iterations to pass a variance-reduction period and a full pass of chunks.
    let warm = 3 * p.sample_count(bilevel_core::Level::Lower).div_ceil(64) + 40;
    s.advance(&c, &mut state, warm).expect("warm-up");
    let before = allocations();
    s.advance(&c, &mut state, 2 * warm).expect("steps");
    let after = allocations();
    assert!(state.x.iter().all(|v| v.is_finite()), "{label}: diverged");
    assert_eq!(
        after - before,
        0,
        "{label}: {} allocations in {} iterations",
        after - before,
        2 * warm
    );
}

fn quadratic() -> WithDerivatives<Quadratic> {
    WithDerivatives::analytic(
        Quadratic::new(QuadraticParams {
            n_inner: 512,
            n_outer: 300,
            dim_y: 40,
            dim_x: 20,
            ..QuadraticParams::default()
        })
        .expect("valid"),
    )
}

fn regsel() -> RegselLogistic {
    let d = synthetic(1200, 22, 2, 1.0, 3);
    let spec = SplitSpec {
        train: SplitSize::Count(700),
        validation: SplitSize::Count(300),
        test: None,
        seed: 1,
        standardize: Standardize::Zscore,
        intercept: true,
    };
    RegselLogistic::new(MlData::prepare("syn", &d, None, &spec).expect("split")).expect("valid")
}

/// Every stochastic solver with its defaults at batch 64, chunk and uniform sampling (SABA's
/// memory is per chunk: chunks only).
fn all<P: Bilevel<Y = Vec<f64>>>(p: &P) {
    use bilevel_solvers::stochastic::*;
    let m = p.dim_x();
    check(p, saba::Saba::new(Default::default(), m), "saba");
    for sampling in [bilevel_core::Scheme::Chunks, bilevel_core::Scheme::Uniform] {
        let c = soba::SobaConfig {
            sampling,
            ..Default::default()
        };
        check(p, soba::Soba::new(c, m), "soba");
        let c = srba::SrbaConfig {
            sampling,
            ..Default::default()
        };
        check(p, srba::Srba::new(c, m), "srba");
        let c = vrbo::VrboConfig {
            sampling,
            ..Default::default()
        };
        check(p, vrbo::Vrbo::new(c, m), "vrbo");
        let c = fsla::FslaConfig {
            sampling,
            ..Default::default()
        };
        check(p, fsla::Fsla::new(c, m), "fsla");
        let c = stocbio::StocbioConfig {
            sampling,
            ..Default::default()
        };
        check(p, stocbio::Stocbio::new(c, m), "stocbio");
        let c = amigo::AmigoConfig {
            sampling,
            ..Default::default()
        };
        check(p, amigo::Amigo::new(c, m), "amigo");
        let c = bsa::BsaConfig {
            sampling,
            ..Default::default()
        };
        check(p, bsa::Bsa::new(c, m), "bsa");
        let c = ttsa::TtsaConfig {
            sampling,
            ..Default::default()
        };
        check(p, ttsa::Ttsa::new(c, m), "ttsa");
        let c = mrbo::MrboConfig {
            sampling,
            ..Default::default()
        };
        check(p, mrbo::Mrbo::new(c, m), "mrbo");
        let c = sustain::SustainConfig {
            sampling,
            ..Default::default()
        };
        check(p, sustain::Sustain::new(c, m), "sustain");
        let c = f2sa_stoch::F2saStochConfig {
            sampling,
            ..Default::default()
        };
        check(p, f2sa_stoch::F2saStoch::new(c, m), "f2sa_stoch");
    }
}

#[test]
fn stochastic_iterations_do_not_allocate() {
    let before = allocations();
    let v = std::hint::black_box(vec![1.0f64; 16]);
    assert!(
        allocations() > before && v.len() == 16,
        "the counter counts"
    );
    all(&quadratic());
    all(&regsel());
}
