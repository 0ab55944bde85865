//! The oracles of the machine-learning problems allocate nothing after their first call
//! (scratch is preallocated; the passes run on the calling thread below the threading
//! threshold), counted by a global allocator that tallies this thread's allocations.

use bilevel_core::Bilevel;
use bilevel_problems::ml::data::{synthetic, MlData, SplitSize, SplitSpec, Standardize};
use bilevel_problems::ml::{
    HyperCleaning, OverparamCleaning, OverparamRegsel, RegselLogistic, RegselMultinomial,
    SampleWeights, StrengthPer,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCS.with(|c| c.get())
}

fn data(classes: usize, n: usize, p: usize, train: u64, corrupt: bool) -> MlData {
    let d = synthetic(n, p, classes, 1.0, 3);
    let spec = SplitSpec {
        train: SplitSize::Count(train),
        validation: SplitSize::Count(40),
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
    let before = allocations();
    let s = run();
    let after = allocations();
    assert!(s.is_finite());
    assert_eq!(after - before, 0, "{name}: oracles allocated");
}

#[test]
fn ml_oracles_do_not_allocate() {
    let before = allocations();
    let v = std::hint::black_box(vec![1.0f64; 16]);
    assert!(allocations() > before && v.len() == 16);

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
