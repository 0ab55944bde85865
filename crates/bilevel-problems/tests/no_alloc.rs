//! The oracles of the BOME, V-PBGD and quadratic problems allocate nothing (analytic and
//! dual-number products, after the dual-number buffers' first use), counted by a global allocator
//! that tallies this thread's allocations.

mod common;

use bilevel_core::alloc_count::Counting;
use bilevel_core::Bilevel;
use bilevel_problems::{
    Coreset, Derivatives, Minimax, NonSingleton, ProblemDef, Quadratic, QuadraticParams, VpbgdToy,
    WithDerivatives,
};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Every oracle once (warm-up), then again while counting.
fn check<P: ProblemDef + Clone>(def: P) {
    let name = def.name();
    for mode in [Derivatives::Analytic, Derivatives::Dual] {
        let p = WithDerivatives::new(def.clone(), mode).expect("valid");
        let (m, d) = (p.dim_x(), p.dim_y());
        let x: Vec<f64> = (0..m).map(|i| 0.1 * i as f64 - 0.3).collect();
        let mut y: Vec<f64> = (0..d).map(|i| 0.2 - 0.05 * i as f64).collect();
        let v: Vec<f64> = (0..d).map(|i| 1.0 + 0.01 * i as f64).collect();
        let (mut gx, mut gy, mut hv, mut jv) =
            (vec![0.0; m], vec![0.0; d], vec![0.0; d], vec![0.0; m]);
        let mut run = |y: &mut Vec<f64>| {
            let mut s = p.f(&x, y) + p.g(&x, y);
            p.grad_f(&x, y, &mut gx, &mut gy);
            p.grad_g_y(&x, y, &mut gy);
            p.grad_g_x(&x, y, &mut gx);
            p.hvp(&x, y, &v, &mut hv);
            p.cross(&x, y, &v, &mut jv);
            p.project_y(y);
            s += gx[0] + gy[0] + hv[0] + jv[0];
            s
        };
        run(&mut y);
        let failure = format!("{name} {mode:?}: oracles allocated");
        common::assert_no_allocation(&failure, || run(&mut y));
    }
}

#[test]
fn oracles_do_not_allocate() {
    // The counter sees allocations.
    common::assert_counter_counts();
    check(Coreset::default());
    check(NonSingleton);
    check(Minimax::default());
    check(VpbgdToy);
    check(
        Quadratic::new(QuadraticParams {
            n_inner: 64,
            n_outer: 32,
            dim_y: 40,
            dim_x: 30,
            ..QuadraticParams::default()
        })
        .expect("valid"),
    );
}
