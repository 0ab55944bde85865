//! Helpers of the no-allocation tests (each test binary installs
//! [`Counting`](bilevel_core::alloc_count::Counting) as its global allocator).

use bilevel_core::alloc_count::allocations;

/// The installed counter sees allocations: a fresh vector counts.
pub fn assert_counter_counts() {
    let before = allocations();
    let v = std::hint::black_box(vec![1.0f64; 16]);
    assert!(allocations() > before && v.len() == 16);
}

/// `run()` makes no allocation on this thread and returns a finite checksum; `failure` is the
/// assertion's message.
pub fn assert_no_allocation(failure: &str, run: impl FnOnce() -> f64) {
    let before = allocations();
    let s = run();
    let after = allocations();
    assert!(s.is_finite());
    assert_eq!(after - before, 0, "{failure}");
}
