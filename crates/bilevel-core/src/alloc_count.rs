//! A global allocator that counts the calling thread's allocations (`alloc` and `realloc`; frees
//! are not counted), for checking that a stretch of work allocates nothing:
//! `allocations()` after minus before is the number of allocations it made on this thread.
//! A binary (a test, typically) installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: bilevel_core::alloc_count::Counting = bilevel_core::alloc_count::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator: the system allocator plus a per-thread tally.
pub struct Counting;

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

/// Allocations made so far on this thread (only counted where [`Counting`] is installed).
pub fn allocations() -> usize {
    ALLOCS.with(|c| c.get())
}
