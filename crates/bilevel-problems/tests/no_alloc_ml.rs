//! The oracles of the machine-learning problems allocate nothing after their first call
//! (scratch is preallocated; the passes run on the calling thread below the threading
//! threshold), counted by a global allocator that tallies this thread's allocations. The
//! minibatch oracles allocate nothing either, on chunk and uniform batches of 64 rows (and they
//! never spawn threads: a spawn allocates on the calling thread).

mod common;

use bilevel_core::alloc_count::Counting;
use bilevel_core::{Batch, Bilevel, Level};
use bilevel_problems::ml::data::{synthetic, MlData, SplitSize, SplitSpec, Standardize};
use bilevel_problems::ml::{
    HyperCleaning, OverparamCleaning, OverparamRegsel, RegselLogistic, RegselMultinomial,
    SampleWeights, StrengthPer,
};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn data(classes: usize, n: usize, p: usize, train: u64, corrupt: bool) -> MlData {
    data_with(classes, n, p, train, 40, corrupt)
}

fn data_with(
    classes: usize,
    n: usize,
    p: usize,
    train: u64,
    validation: u64,
    corrupt: bool,
) -> MlData {
    let d = synthetic(n, p, classes, 1.0, 3);
    let spec = SplitSpec {
        train: SplitSize::Count(train),
        validation: SplitSize::Count(validation),
        test: None,
        seed: 1,
        standardize: Standardize::Zscore,
        intercept: true,
    };
    let mut m = MlData::prepare("syn", &d, None, &spec).expect("split");
    if corrupt {
        m.corrupt(0.5, 1).expect("corrupt");
    }
    m
}

/// Every oracle once (warm-up), then again while counting.
fn check(p: &dyn Bilevel<Y = Vec<f64>>) {
    let name = p.name().to_string();
    let (m, d) = (p.dim_x(), p.dim_y());
    let x: Vec<f64> = (0..m).map(|i| 0.1 * (i % 7) as f64 - 0.3).collect();
    let y: Vec<f64> = (0..d).map(|i| 0.02 * (i % 11) as f64 - 0.1).collect();
    let v: Vec<f64> = (0..d).map(|i| 1.0 + 0.01 * (i % 5) as f64).collect();
    let (mut gx, mut gy, mut hv, mut jv) = (vec![0.0; m], vec![0.0; d], vec![0.0; d], vec![0.0; m]);
    let mut run = || {
        let mut s = p.f(&x, &y) + p.g(&x, &y);
        p.grad_f(&x, &y, &mut gx, &mut gy);
        p.grad_g_y(&x, &y, &mut gy);
        p.grad_g_x(&x, &y, &mut gx);
        p.grad_g(&x, &y, &mut gx, &mut gy);
        p.hvp(&x, &y, &v, &mut hv);
        p.cross(&x, &y, &v, &mut jv);
        s += gx[0] + gy[0] + hv[0] + jv[0];
        s
    };
    run();
    common::assert_no_allocation(&format!("{name}: oracles allocated"), run);
}

#[test]
fn ml_oracles_do_not_allocate() {
    common::assert_counter_counts();

    check(&RegselLogistic::new(data(2, 300, 9, 150, false)).expect("valid"));
    for per in [StrengthPer::Class, StrengthPer::Feature] {
        check(&RegselMultinomial::new(data(4, 300, 9, 150, false), per).expect("valid"));
    }
    for w in [SampleWeights::Sigmoid, SampleWeights::Clip] {
        check(&HyperCleaning::new(data(4, 300, 9, 150, true), 0.2, w).expect("valid"));
    }
    check(&OverparamRegsel::new(data(2, 300, 30, 12, false)).expect("valid"));
    check(
        &OverparamCleaning::new(data(3, 300, 30, 12, true), SampleWeights::Sigmoid).expect("valid"),
    );
}

fn batch(indices: &[usize]) -> Batch<'_> {
    Batch {
        indices,
        weight: 1.0,
        chunk: None,
    }
}

/// Every batch oracle once on each batch (warm-up), then again on a chunk batch and a uniform
/// batch (with repeats) of 64 rows of each level while counting.
fn check_batches(p: &dyn Bilevel<Y = Vec<f64>>) {
    let name = p.name().to_string();
    let (m, d) = (p.dim_x(), p.dim_y());
    let (n_lower, n_upper) = (p.sample_count(Level::Lower), p.sample_count(Level::Upper));
    assert!(n_lower >= 128 && n_upper >= 64, "{name}: too few samples");
    let x: Vec<f64> = (0..m).map(|i| 0.1 * (i % 7) as f64 - 0.3).collect();
    let y: Vec<f64> = (0..d).map(|i| 0.02 * (i % 11) as f64 - 0.1).collect();
    let v: Vec<f64> = (0..d).map(|i| 1.0 + 0.01 * (i % 5) as f64).collect();
    let (mut gx, mut gy, mut hv, mut jv) = (vec![0.0; m], vec![0.0; d], vec![0.0; d], vec![0.0; m]);
    let chunk = |n: usize| -> Vec<usize> { (n - 64..n).collect() };
    let uniform = |n: usize| -> Vec<usize> { (0..64).map(|i| (i * 37 + i * i) % n).collect() };
    let (lc, lu, uc, uu) = (
        chunk(n_lower),
        uniform(n_lower),
        chunk(n_upper),
        uniform(n_upper),
    );
    assert!(lu.len() == 64 && lu.iter().collect::<std::collections::BTreeSet<_>>().len() < 64);
    let mut run = |lower: &[usize], upper: &[usize]| {
        let (bl, bu) = (batch(lower), batch(upper));
        p.grad_g_y_batch(&x, &y, &bl, &mut gy);
        let mut s = gy[0];
        p.grad_g_x_batch(&x, &y, &bl, &mut gx);
        s += gx[0];
        p.hvp_batch(&x, &y, &bl, &v, &mut hv);
        s += hv[0];
        p.cross_batch(&x, &y, &bl, &v, &mut jv);
        s += jv[0];
        p.lower_batch(&x, &y, &bl, &v, &mut gy, &mut hv, &mut jv);
        s += gy[0] + hv[0] + jv[0];
        p.grad_f_batch(&x, &y, &bu, &mut gx, &mut gy);
        s + gx[0] + gy[0]
    };
    run(&lc, &uc);
    run(&lu, &uu);
    for (what, lower, upper) in [("chunk", &lc, &uc), ("uniform", &lu, &uu)] {
        let failure = format!("{name}: batch oracles allocated ({what} batch)");
        common::assert_no_allocation(&failure, || run(lower, upper));
    }
}

#[test]
fn ml_batch_oracles_do_not_allocate() {
    check_batches(&RegselLogistic::new(data_with(2, 400, 9, 200, 100, false)).expect("valid"));
    // Spambase's width (57 features and an intercept).
    check_batches(&RegselLogistic::new(data_with(2, 400, 57, 200, 100, false)).expect("valid"));
    for per in [StrengthPer::Class, StrengthPer::Feature] {
        // k = 2 (few-column kernels) and k = 4 (faer products on gathered rows).
        for k in [2, 4] {
            let d = data_with(k, 400, 9, 200, 100, false);
            check_batches(&RegselMultinomial::new(d, per).expect("valid"));
        }
    }
    for w in [SampleWeights::Sigmoid, SampleWeights::Clip] {
        let d = data_with(4, 400, 9, 200, 100, true);
        check_batches(&HyperCleaning::new(d, 0.2, w).expect("valid"));
    }
    // A wide one: 10 classes, 300 features.
    let d = data_with(10, 400, 300, 200, 100, true);
    check_batches(&HyperCleaning::new(d, 0.2, SampleWeights::Sigmoid).expect("valid"));
}
