//! Kernel benchmarks of the machine-learning problems (`cargo bench -p bilevel-problems --bench
//! ml_kernels`): plain `std::time`, median of repeats after a warm-up (the minimum is printed
//! too: on a machine shared with other work it is the closer estimate of the uncontended time).
//!
//! * read bandwidth of one pass over a 20000 × 784 f64 array (the physical limit of a gradient);
//! * dense matmul 2048² (f64 and f32) with faer, one thread: GFLOP/s = 2n³/t;
//! * hyper-cleaning at 20000 × 784 × 10 (Fashion-MNIST when it is in the cache, else synthetic
//!   pixel data of that shape), f64, sigmoid weights, r = 0.2: the value, the full gradient
//!   `grad_g` (∇_x g and ∇_Y g in one pass; 2·2·n·p·k flops), the HVP (2·n·p·2k + 2·n·p·k), the
//!   cross product (2·n·p·2k), each with GB/s = 8·n·p bytes (one pass over X) per time; and a
//!   hypergradient as docs/PERFORMANCE.md counts it (50 lower gradient steps, 20 CG iterations, one
//!   cross product and one upper gradient);
//! * regsel-logistic at 2300 × 57 (Spambase's training size; Spambase when cached): gradient,
//!   HVP and the same hypergradient workload;
//! * minibatch oracles at batch 64, as a stochastic solver calls them once per iteration
//!   (`lower_batch` + `grad_f_batch`, µs per call, chunk and uniform batches drawn by
//!   `BatchSampler`): regsel-logistic at 2300 × 57 + intercept and hyper-cleaning at
//!   20000 × 784 × 10 (Spambase / Fashion-MNIST when cached, else synthetic data of that shape).
//!
//! Environment: `ML_BENCH_QUICK=1` fewer repeats; `ML_BENCH_SWEEP=1` also sweeps block rows and
//! threads of the hyper-cleaning gradient; `ML_BENCH_ONLY=stream|matmul|cleaning|logistic|batch`
//! runs one part; `ML_BENCH_ACCURACY=1` also reports the clean-data
//! Fashion-MNIST test accuracy of the lower-level solution for several r.

use bilevel_core::{Batch, BatchSampler, Bilevel, Level, Scheme};
use bilevel_data::{DataSource, Dataset};
use bilevel_problems::ml::data::{MlData, SplitSize, SplitSpec, Standardize};
use bilevel_problems::ml::{HyperCleaning, KernelOptions, RegselLogistic, SampleWeights};
use std::hint::black_box;
use std::time::Instant;

thread_local! {
    static LAST_MIN: std::cell::Cell<f64> = const { std::cell::Cell::new(f64::NAN) };
}

/// Median wall time (seconds) of `reps` runs of `f` after `warm` warm-up runs; the minimum is
/// kept for [`last_min`].
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
    LAST_MIN.with(|m| m.set(t[0]));
    t[t.len() / 2]
}

/// The minimum of the last [`median_time`].
fn last_min() -> f64 {
    LAST_MIN.with(|m| m.get())
}

fn env(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

fn reps(full: usize) -> usize {
    if env("ML_BENCH_QUICK") {
        full.div_ceil(4).max(3)
    } else {
        full
    }
}

/// `label: median … (rates), min … (rates)`; `flops` and `bytes` per run (0: not shown).
fn report(label: &str, t: f64, flops: f64, bytes: f64) {
    let rates = |t: f64| {
        let mut s = String::new();
        if flops > 0.0 {
            s += &format!(", {:.1} GFLOP/s", flops / t / 1e9);
        }
        if bytes > 0.0 {
            s += &format!(", {:.1} GB/s", bytes / t / 1e9);
        }
        s
    };
    let tm = last_min();
    let unit = |t: f64| {
        if t < 1e-3 {
            format!("{:.1} µs", t * 1e6)
        } else {
            format!("{:.2} ms", t * 1e3)
        }
    };
    println!(
        "{label}: median {}{}; min {}{}",
        unit(t),
        rates(t),
        unit(tm),
        rates(tm)
    );
}

fn stream_bench() {
    let v: Vec<f64> = (0..20_000 * 784).map(|i| (i % 7) as f64).collect();
    let t = median_time(2, reps(11), || {
        let s: f64 = v.chunks_exact(8).map(|c| c.iter().sum::<f64>()).sum();
        black_box(s);
    });
    report(
        "read pass over 20000×784 f64 (125 MB)",
        t,
        0.0,
        8.0 * v.len() as f64,
    );
}

fn matmul_bench() {
    let n = 2048;
    matmul_case(
        "faer matmul 2048² f64, 1 thread",
        n,
        |v| v as f64 * 0.1,
        1.0,
    );
    matmul_case(
        "faer matmul 2048² f32, 1 thread",
        n,
        |v| v as f32 * 0.1,
        1.0,
    );
}

/// One-thread faer matmul `C = A B` of `n × n` matrices with entries `val(small integer)`,
/// reported as `label` with `2n³` flops.
fn matmul_case<T: faer::traits::ComplexField>(
    label: &str,
    n: usize,
    val: impl Fn(usize) -> T,
    one: T,
) {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, Par};
    let flops = 2.0 * (n as f64).powi(3);
    let a = Mat::<T>::from_fn(n, n, |i, j| val((i * 7 + j * 13) % 17));
    let b = Mat::<T>::from_fn(n, n, |i, j| val((i * 5 + j * 3) % 11));
    let mut c = Mat::<T>::zeros(n, n);
    let t = median_time(1, reps(7), || {
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            b.as_ref(),
            one.clone(),
            Par::Seq,
        );
        black_box(&c);
    });
    report(label, t, flops, 0.0);
}

/// Synthetic pixel-like data: integers 0..=255 (about half zero), `k` balanced classes.
fn pixels(n: usize, p: usize, k: usize, seed: u64) -> Dataset {
    let mut rng = bilevel_core::rng::Rng::new(seed);
    let features = (0..n * p)
        .map(|_| {
            if rng.uniform() < 0.5 {
                0.0
            } else {
                rng.below(256) as f64
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

/// Pool and official test split of a named set, when it is in the cache.
fn cached(name: &str) -> Option<(Dataset, Option<Dataset>)> {
    match DataSource::Named(name.into()).load(&bilevel_data::default_cache_dir()) {
        Ok(l) => Some((l.train, l.test)),
        Err(e) => {
            println!("({name}: {e}; using synthetic data of the same shape)");
            None
        }
    }
}

/// The workload docs/PERFORMANCE.md times as one hypergradient: 50 gradient steps on y (warm
/// start), 20 CG iterations on `H v = ∇_y f`, one upper gradient and one cross product.
fn hypergradient_workload(p: &dyn Bilevel<Y = Vec<f64>>, x: &[f64], y0: &[f64], eta: f64) -> f64 {
    let (m, d) = (p.dim_x(), p.dim_y());
    let mut y = y0.to_vec();
    let mut g = vec![0.0; d];
    for _ in 0..50 {
        p.grad_g_y(x, &y, &mut g);
        y.iter_mut().zip(&g).for_each(|(a, b)| *a -= eta * b);
    }
    let (mut fx, mut fy) = (vec![0.0; m], vec![0.0; d]);
    p.grad_f(x, &y, &mut fx, &mut fy);
    // CG from 0 on H v = ∇_y f, 20 iterations.
    let mut v = vec![0.0; d];
    let mut r = fy.clone();
    let mut q = r.clone();
    let mut hq = vec![0.0; d];
    let mut rr: f64 = r.iter().map(|a| a * a).sum();
    for _ in 0..20 {
        p.hvp(x, &y, &q, &mut hq);
        let qhq: f64 = q.iter().zip(&hq).map(|(a, b)| a * b).sum();
        if qhq <= 0.0 || rr == 0.0 {
            break;
        }
        let alpha = rr / qhq;
        v.iter_mut().zip(&q).for_each(|(a, b)| *a += alpha * b);
        r.iter_mut().zip(&hq).for_each(|(a, b)| *a -= alpha * b);
        let rr2: f64 = r.iter().map(|a| a * a).sum();
        let beta = rr2 / rr;
        rr = rr2;
        q.iter_mut().zip(&r).for_each(|(a, b)| *a = b + beta * *a);
    }
    let mut jv = vec![0.0; m];
    p.cross(x, &y, &v, &mut jv);
    fx.iter().zip(&jv).map(|(a, b)| a - b).sum()
}

/// Hyper-cleaning at 20000 × 784 × 10 (Fashion-MNIST when cached, else synthetic pixels), half
/// the training labels corrupted, sigmoid weights, r = 0.2; and the data's name.
fn cleaning_problem() -> (HyperCleaning, &'static str) {
    let (n, p, k) = (20_000, 784, 10);
    let spec = SplitSpec {
        train: SplitSize::Count(n as u64),
        validation: SplitSize::Count(5_000),
        test: Some(SplitSize::Count(0)),
        seed: 0,
        standardize: Standardize::Scale,
        intercept: false,
    };
    let (mut m, source) = match cached("fashion-mnist") {
        Some((pool, test)) => (
            MlData::prepare("fashion-mnist", &pool, test.as_ref(), &spec).expect("split"),
            "Fashion-MNIST",
        ),
        None => {
            let d = pixels(n + 5_000, p, k, 1);
            (
                MlData::prepare("synthetic", &d, None, &spec).expect("split"),
                "synthetic",
            )
        }
    };
    m.corrupt(0.5, 0).expect("corrupt");
    let prob = HyperCleaning::new(m, 0.2, SampleWeights::Sigmoid).expect("problem");
    (prob, source)
}

fn cleaning_bench() {
    let (n, p, k) = (20_000, 784, 10);
    let (prob, source) = cleaning_problem();
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
    let npk = (n * p * k) as f64;
    let bytes = 8.0 * (n * p) as f64;
    let default = KernelOptions::default_for(p);
    println!(
        "hyper-cleaning on {source} {n}×{p}×{k}, f64; {} rows per block, up to {} threads",
        default.block_rows, default.threads
    );
    let r = reps(21);
    for (label, opts) in [
        ("", default),
        (
            ", 1 thread",
            KernelOptions {
                threads: 1,
                ..default
            },
        ),
    ] {
        prob.set_kernel_options(opts);
        let t = median_time(2, r, || {
            black_box(prob.g(&x, &y));
        });
        report(&format!("  value g{label}"), t, 2.0 * npk, bytes);
        let t = median_time(2, r, || {
            prob.grad_g(&x, &y, &mut gx, &mut gy);
            black_box((&gx, &gy));
        });
        report(&format!("  full gradient{label}"), t, 4.0 * npk, bytes);
        let t = median_time(2, r, || {
            prob.hvp(&x, &y, &v, &mut hv);
            black_box(&hv);
        });
        report(&format!("  HVP{label}"), t, 6.0 * npk, bytes);
        let t = median_time(2, r, || {
            prob.cross(&x, &y, &v, &mut jv);
            black_box(&jv);
        });
        report(&format!("  cross product{label}"), t, 4.0 * npk, bytes);
    }
    prob.set_kernel_options(default);
    let t = median_time(1, reps(5), || {
        black_box(hypergradient_workload(&prob, &x, &y, 1.0));
    });
    report(
        "  hypergradient (50 GD steps + 20 CG + cross + ∇f)",
        t,
        0.0,
        0.0,
    );
    if env("ML_BENCH_SWEEP") {
        for threads in [1, 2] {
            for block in [32, 64, 128, 256, 512, 1024] {
                prob.set_kernel_options(KernelOptions {
                    block_rows: block,
                    threads,
                    min_parallel: 0,
                });
                let t = median_time(2, r, || {
                    prob.grad_g(&x, &y, &mut gx, &mut gy);
                    black_box((&gx, &gy));
                });
                report(
                    &format!("  full gradient, block {block}, {threads} threads"),
                    t,
                    4.0 * npk,
                    bytes,
                );
            }
        }
        prob.set_kernel_options(default);
    }
}

/// regsel-logistic at 2300 × 57 (Spambase when cached, else synthetic), log1p-scaled, with or
/// without an intercept column; and the data's name.
fn logistic_problem(intercept: bool) -> (RegselLogistic, &'static str) {
    let spec = SplitSpec {
        train: SplitSize::Count(2300),
        validation: SplitSize::Count(1150),
        test: None,
        seed: 0,
        standardize: Standardize::Log1p,
        intercept,
    };
    let (m, source) = match cached("spambase") {
        Some((pool, _)) => (
            MlData::prepare("spambase", &pool, None, &spec).expect("split"),
            "Spambase",
        ),
        None => {
            let mut d = pixels(4601, 57, 2, 3);
            d.features.iter_mut().for_each(|v| *v /= 255.0);
            (
                MlData::prepare("synthetic", &d, None, &spec).expect("split"),
                "synthetic",
            )
        }
    };
    (RegselLogistic::new(m).expect("problem"), source)
}

fn logistic_bench() {
    let (prob, source) = logistic_problem(false);
    let (n, p) = (2300.0, 57);
    let x = vec![-3.0; p];
    let y = vec![0.05; p];
    let (mut gx, mut gy, mut hv) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
    println!("regsel-logistic on {source} 2300×57, f64");
    let r = reps(201);
    let t = median_time(20, r, || {
        prob.grad_g(&x, &y, &mut gx, &mut gy);
        black_box((&gx, &gy));
    });
    report("  full gradient", t, 4.0 * n * p as f64, 8.0 * n * p as f64);
    let t = median_time(20, r, || {
        prob.hvp(&x, &y, &y, &mut hv);
        black_box(&hv);
    });
    report("  HVP", t, 6.0 * n * p as f64, 8.0 * n * p as f64);
    let t = median_time(3, reps(51), || {
        black_box(hypergradient_workload(&prob, &x, &y, 1.0));
    });
    report(
        "  hypergradient (50 GD steps + 20 CG + cross + ∇f)",
        t,
        0.0,
        0.0,
    );
}

/// Clean-data Fashion-MNIST test accuracy of the lower-level solution (all weights ≈ 1) for
/// several ridge strengths r of `r‖Y‖²`, with pixels scaled to [0, 1] and z-scored (as the
/// reference benchmark does).
fn accuracy_check() {
    let Some((pool, test)) = cached("fashion-mnist") else {
        return;
    };
    for standardize in [Standardize::Scale, Standardize::Zscore] {
        let spec = SplitSpec {
            train: SplitSize::Count(20_000),
            validation: SplitSize::Count(5_000),
            test: None,
            seed: 0,
            standardize,
            intercept: false,
        };
        let m = MlData::prepare("fashion-mnist", &pool, test.as_ref(), &spec).expect("split");
        for reg in [0.2, 0.02, 2e-3, 2e-4] {
            let prob = HyperCleaning::new(m.clone(), reg, SampleWeights::Sigmoid).expect("problem");
            let x = vec![40.0; prob.dim_x()];
            let s = Instant::now();
            let Some(y) = prob.reference_y(&x) else {
                println!("{standardize:?}, r = {reg}: inner solve did not converge");
                continue;
            };
            let met = prob.metrics(&x, &y);
            let get = |k: &str| met.iter().find(|(n, _)| n == k).map_or(f64::NAN, |e| e.1);
            println!(
                "clean Fashion-MNIST, {standardize:?}, r = {reg}: train {:.4}, validation {:.4}, \
                 test {:.4} accuracy (Newton-CG {:.1} s)",
                get("train_accuracy"),
                get("validation_accuracy"),
                get("test_accuracy"),
                s.elapsed().as_secs_f64()
            );
        }
    }
}

/// [`report`] of the median time per call, each run of `f` making `calls` calls.
fn report_per_call(label: &str, reps: usize, calls: usize, f: impl FnMut()) {
    let t = median_time(2, reps, f) / calls as f64;
    LAST_MIN.with(|c| c.set(c.get() / calls as f64));
    report(label, t, 0.0, 0.0);
}

/// A drawn batch (indices and weight) as a [`Batch`].
fn batch(b: &(Vec<usize>, f64)) -> Batch<'_> {
    Batch {
        indices: &b.0,
        weight: b.1,
        chunk: None,
    }
}

/// `lower_batch` + `grad_f_batch` on batches of 64 rows (chunk and uniform), µs per call pair,
/// and each alone; 256 pre-drawn batches per level are cycled through, and x alternates between
/// two values (a solver moves x every iteration: nothing cached on x is reused).
fn batch_case(label: &str, prob: &dyn Bilevel<Y = Vec<f64>>, x: &[f64], y: &[f64], calls: usize) {
    let (m, d) = (prob.dim_x(), prob.dim_y());
    let y = &y.to_vec();
    let x2: Vec<f64> = x.iter().map(|e| e + 1e-3).collect();
    let xs = [x, &x2[..]];
    let v: Vec<f64> = y.iter().map(|e| 1.0 - e).collect();
    let (mut gy, mut hv, mut jv) = (vec![0.0; d], vec![0.0; d], vec![0.0; m]);
    let (mut fx, mut fy) = (vec![0.0; m], vec![0.0; d]);
    let draw = |level: Level, scheme: Scheme| -> Vec<(Vec<usize>, f64)> {
        let mut s = BatchSampler::new(prob.sample_count(level), 64, scheme, 7).expect("n ≥ 1");
        (0..256)
            .map(|_| {
                let b = s.next_batch();
                (b.indices.to_vec(), b.weight)
            })
            .collect()
    };
    let r = reps(31);
    for scheme in [Scheme::Chunks, Scheme::Uniform] {
        let (lower, upper) = (draw(Level::Lower, scheme), draw(Level::Upper, scheme));
        let mut which = 0usize;
        let mut both = || {
            for _ in 0..calls {
                let (bl, bu) = (batch(&lower[which % 256]), batch(&upper[which % 256]));
                let x = xs[which % 2];
                prob.lower_batch(x, y, &bl, &v, &mut gy, &mut hv, &mut jv);
                prob.grad_f_batch(x, y, &bu, &mut fx, &mut fy);
                which += 1;
            }
            black_box((&gy, &hv, &jv, &fy));
        };
        let what = format!("  {label}, {scheme:?}: lower_batch + grad_f_batch, per call");
        report_per_call(&what, r, calls, &mut both);
        let mut lower_only = || {
            for _ in 0..calls {
                prob.lower_batch(
                    xs[which % 2],
                    y,
                    &batch(&lower[which % 256]),
                    &v,
                    &mut gy,
                    &mut hv,
                    &mut jv,
                );
                which += 1;
            }
            black_box((&gy, &hv, &jv));
        };
        let what = format!("  {label}, {scheme:?}: lower_batch alone");
        report_per_call(&what, r, calls, &mut lower_only);
        let mut upper_only = || {
            for _ in 0..calls {
                let x = xs[which % 2];
                prob.grad_f_batch(x, y, &batch(&upper[which % 256]), &mut fx, &mut fy);
                which += 1;
            }
            black_box(&fy);
        };
        let what = format!("  {label}, {scheme:?}: grad_f_batch alone");
        report_per_call(&what, r, calls, &mut upper_only);
    }
    // For scale: the full oracles the batch calls replace.
    let t = median_time(2, reps(11), || {
        prob.grad_g_y(x, y, &mut gy);
        prob.hvp(x, y, &v, &mut hv);
        prob.cross(x, y, &v, &mut jv);
        prob.grad_f(x, y, &mut fx, &mut fy);
        black_box((&gy, &hv, &jv, &fy));
    });
    report(
        &format!("  {label}: full grad_g_y + hvp + cross + grad_f (for scale)"),
        t,
        0.0,
        0.0,
    );
}

fn batch_bench() {
    let (prob, source) = logistic_problem(true);
    let p = prob.dim_y();
    println!("minibatch oracles, batch 64, calling thread only");
    let x = vec![-3.0; p];
    let y = vec![0.05; p];
    batch_case(
        &format!("regsel-logistic on {source} 2300×{p}"),
        &prob,
        &x,
        &y,
        1000,
    );
    drop(prob);
    let (prob, source) = cleaning_problem();
    let x = vec![-2.0; prob.dim_x()];
    let mut rng = bilevel_core::rng::Rng::new(2);
    let mut y = vec![0.0; prob.dim_y()];
    rng.fill_normal(&mut y);
    y.iter_mut().for_each(|v| *v *= 0.01);
    batch_case(
        &format!("hyper-cleaning on {source} 20000×784×10"),
        &prob,
        &x,
        &y,
        20,
    );
}

fn main() {
    if env("ML_BENCH_ACCURACY") {
        accuracy_check();
        if env("ML_BENCH_ONLY") {
            return;
        }
    }
    // `ML_BENCH_ONLY=logistic` (or `cleaning`, `matmul`) runs one part.
    let only = std::env::var("ML_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("stream") {
        stream_bench();
    }
    if run("matmul") {
        matmul_bench();
    }
    if run("cleaning") {
        cleaning_bench();
    }
    if run("logistic") {
        logistic_bench();
    }
    if run("batch") {
        batch_bench();
    }
}
