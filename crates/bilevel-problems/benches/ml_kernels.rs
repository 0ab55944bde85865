//! Kernel benchmarks of the machine-learning problems (`cargo bench -p bilevel-problems --bench
//! ml_kernels`): plain `std::time`, median of repeats after a warm-up.
//!
//! * dense matmul 2048² (f64 and f32) with faer: GFLOP/s = 2n³/t;
//! * hyper-cleaning at 20000 × 784 × 10 (synthetic data of that shape, pixel-like values in
//!   [0, 1]): full gradient `grad_g` (∇_x g and ∇_Y g in one pass), HVP and cross product,
//!   with GFLOP/s (2·2·n·p·k for the two products of the gradient; 2·n·p·2k + 2·n·p·k for the HVP;
//!   2·n·p·2k for the cross product) and GB/s (8·n·p bytes: one pass over X);
//! * regsel-logistic gradient and HVP at 2300 × 57 (Spambase's training size).
//!
//! Options: `ML_BENCH_QUICK=1` fewer repeats; `ML_BENCH_SWEEP=1` also sweeps block rows and
//! thread counts of the hyper-cleaning gradient.

use bilevel_core::Bilevel;
use bilevel_data::Dataset;
use bilevel_problems::ml::data::{MlData, SplitSize, SplitSpec, Standardize};
use bilevel_problems::ml::{HyperCleaning, KernelOptions, SampleWeights};
use std::hint::black_box;
use std::time::Instant;

/// Median wall time (seconds) of `reps` runs of `f` after `warm` warm-up runs.
fn median_time(warm: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warm {
        f();
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn quick() -> bool {
    std::env::var_os("ML_BENCH_QUICK").is_some()
}

fn matmul_bench() {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, Par};
    let n = 2048;
    let reps = if quick() { 3 } else { 7 };
    let a = Mat::<f64>::from_fn(n, n, |i, j| ((i * 7 + j * 13) % 17) as f64 * 0.1);
    let b = Mat::<f64>::from_fn(n, n, |i, j| ((i * 5 + j * 3) % 11) as f64 * 0.1);
    let mut c = Mat::<f64>::zeros(n, n);
    let t = median_time(1, reps, || {
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            b.as_ref(),
            1.0,
            Par::Seq,
        );
        black_box(&c);
    });
    let gf = 2.0 * (n as f64).powi(3) / t / 1e9;
    println!(
        "matmul 2048² f64 (1 thread): {:.1} ms, {gf:.1} GFLOP/s",
        t * 1e3
    );
    let a32 = Mat::<f32>::from_fn(n, n, |i, j| ((i * 7 + j * 13) % 17) as f32 * 0.1);
    let b32 = Mat::<f32>::from_fn(n, n, |i, j| ((i * 5 + j * 3) % 11) as f32 * 0.1);
    let mut c32 = Mat::<f32>::zeros(n, n);
    let t = median_time(1, reps, || {
        matmul(
            c32.as_mut(),
            Accum::Replace,
            a32.as_ref(),
            b32.as_ref(),
            1.0,
            Par::Seq,
        );
        black_box(&c32);
    });
    let gf = 2.0 * (n as f64).powi(3) / t / 1e9;
    println!(
        "matmul 2048² f32 (1 thread): {:.1} ms, {gf:.1} GFLOP/s",
        t * 1e3
    );
}

/// A synthetic data set of the given shape with pixel-like features (integers 0..=255, about
/// half zero) and `k` balanced classes.
fn pixels(n: usize, p: usize, k: usize, seed: u64) -> Dataset {
    let mut rng = bilevel_core::rng::Rng::new(seed);
    let features = (0..n * p)
        .map(|_| {
            let u = rng.uniform();
            if u < 0.5 {
                0.0
            } else {
                (rng.below(256)) as f64
            }
        })
        .collect();
    Dataset {
        features,
        labels: (0..n).map(|i| (i % k) as u32).collect(),
        n,
        p,
        classes: k,
        feature_names: None,
        class_names: (0..k).map(|c| c.to_string()).collect(),
    }
}

fn cleaning_bench() {
    let (n, p, k) = (20_000, 784, 10);
    let d = pixels(n + 5_000, p, k, 1);
    let spec = SplitSpec {
        train: SplitSize::Count(n as u64),
        validation: SplitSize::Count(5_000),
        test: Some(SplitSize::Count(0)),
        seed: 0,
        standardize: Standardize::Scale,
        intercept: false,
    };
    let mut m = MlData::prepare("synthetic-pixels", &d, None, &spec).expect("split");
    m.corrupt(0.5, 0).expect("corrupt");
    let prob = HyperCleaning::new(m, 0.2, SampleWeights::Sigmoid).expect("problem");
    let x = vec![-2.0; n];
    let mut rng = bilevel_core::rng::Rng::new(2);
    let mut y = vec![0.0; p * k];
    rng.fill_normal(&mut y);
    y.iter_mut().for_each(|v| *v *= 0.01);
    let v = y.clone();
    let (mut gx, mut gy, mut hv, mut jv) = (
        vec![0.0; n],
        vec![0.0; p * k],
        vec![0.0; p * k],
        vec![0.0; n],
    );
    let reps = if quick() { 5 } else { 21 };
    let bytes = 8.0 * (n * p) as f64;
    let report = |what: &str, t: f64, flops: f64| {
        println!(
            "hyper-cleaning {what} ({n}×{p}×{k}, f64): {:.2} ms, {:.1} GFLOP/s, {:.1} GB/s",
            t * 1e3,
            flops / t / 1e9,
            bytes / t / 1e9
        );
    };
    let default = KernelOptions::default_for(p);
    println!(
        "  default kernel options: {} rows per block, up to {} threads",
        default.block_rows, default.threads
    );
    let mut run_all = |label: &str, opts: KernelOptions| {
        prob.set_kernel_options(opts);
        let t = median_time(2, reps, || {
            prob.grad_g(&x, &y, &mut gx, &mut gy);
            black_box((&gx, &gy));
        });
        report(
            &format!("full gradient{label}"),
            t,
            4.0 * (n * p * k) as f64,
        );
        let t = median_time(2, reps, || {
            prob.hvp(&x, &y, &v, &mut hv);
            black_box(&hv);
        });
        report(&format!("HVP{label}"), t, 6.0 * (n * p * k) as f64);
        let t = median_time(2, reps, || {
            prob.cross(&x, &y, &v, &mut jv);
            black_box(&jv);
        });
        report(
            &format!("cross product{label}"),
            t,
            4.0 * (n * p * k) as f64,
        );
    };
    run_all("", default);
    run_all(
        " [1 thread]",
        KernelOptions {
            threads: 1,
            ..default
        },
    );
    if std::env::var_os("ML_BENCH_SWEEP").is_some() {
        for threads in [1, 2] {
            for block in [16, 32, 64, 128, 256, 512, 1024] {
                prob.set_kernel_options(KernelOptions {
                    block_rows: block,
                    threads,
                    min_parallel: 0,
                });
                let t = median_time(2, reps, || {
                    prob.grad_g(&x, &y, &mut gx, &mut gy);
                    black_box((&gx, &gy));
                });
                report(
                    &format!("full gradient [block {block}, {threads} threads]"),
                    t,
                    4.0 * (n * p * k) as f64,
                );
            }
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    matmul_bench();
    cleaning_bench();
}
