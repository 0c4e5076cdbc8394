//! The server's global allocator: jemalloc for small blocks, the system's
//! (glibc, tuned by [`tune_glibc`]) for large ones. Without the
//! `split-allocator` feature only the tuning is here (glibc alone).
//!
//! Each alone failed one of two measurements (docs/BENCHMARKS.md, issue 15;
//! docs/RELIABILITY.md): jemalloc's RSS climbed under a steady stream of
//! distinct transforms (it keeps pages of freed multi-megabyte blocks), and
//! glibc with a fixed mmap threshold and two arenas keeps RSS flat but costs
//! a cache hit 20–30 % more CPU (its arena locks and `malloc_consolidate` on
//! the ~40 small blocks a request allocates, and the futex waits that
//! brings). Split by size, a hit's blocks all come from jemalloc's
//! thread caches, and every block of [`LARGE`] bytes or more (decoded and
//! resized pixels, originals read for a transform, encoder output) is an
//! `mmap` of glibc's that goes back to the system when freed.
//!
//! Sound because `GlobalAlloc` passes `dealloc` and `realloc` the layout
//! the block was allocated with: its size says which allocator owns it. A
//! `realloc` across the boundary moves the block from one to the other.

#[cfg(feature = "split-allocator")]
use std::alloc::{GlobalAlloc, Layout, System};

#[cfg(feature = "split-allocator")]
use tikv_jemallocator::Jemalloc;

/// Blocks of this many bytes or more come from the system allocator, and
/// glibc's mmap threshold ([`tune_glibc`]): each is its own mapping.
pub const LARGE: usize = 256 << 10;

/// glibc's defaults let a server's RSS climb under transforms: large
/// buffers (decoded photos, several MB) stop being mmapped once one is freed
/// (the threshold adapts upwards) and then fragment the heap, and each
/// thread may get its own arena (up to 8 per core) that keeps its peak.
/// A fixed mmap threshold of [`LARGE`] returns every large buffer to the
/// system when freed; two arenas bound the rest. With the split allocator
/// glibc sees only those large blocks and the C codecs' own buffers.
/// Measured by `bench/soak.py` (docs/RELIABILITY.md). Environment
/// `MALLOC_*` settings still win (glibc reads them before `main`, and we
/// only set what they did not). Called first thing in `main`.
pub fn tune_glibc() {
    #[cfg(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "jemalloc"),
        not(feature = "mimalloc")
    ))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only changes allocator parameters; called first
        // thing in main, before any other thread exists.
        unsafe {
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
            }
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
        }
    }
}

/// jemalloc below [`LARGE`], the system allocator from it.
#[cfg(feature = "split-allocator")]
pub struct SplitAllocator;

/// jemalloc's `malloc_conf`: a C string pointer under jemalloc's (prefixed)
/// symbol name, exported by the binary.
#[cfg(feature = "split-allocator")]
#[repr(transparent)]
pub struct Options(*const std::ffi::c_char);

// SAFETY: the pointer is to a `'static` string that is never written.
#[cfg(feature = "split-allocator")]
unsafe impl Sync for Options {}

#[cfg(feature = "split-allocator")]
impl Options {
    pub const fn new(conf: &'static std::ffi::CStr) -> Self {
        Self(conf.as_ptr())
    }
}

#[cfg(feature = "split-allocator")]
fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is allocated and freed by the same allocator, chosen
// by its layout's size, which the caller passes back unchanged; a realloc
// that changes allocator copies the smaller of the two sizes and frees the
// old block only after the new one exists.
#[cfg(feature = "split-allocator")]
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract (non-zero size) is passed on.
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                Jemalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                Jemalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so its
        // size names the allocator that owns it.
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                Jemalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the new layout is valid because the
        // caller guarantees `new_size` rounded to `layout.align()` does
        // not overflow `isize`.
        unsafe {
            match (large(layout.size()), large(new_size)) {
                (false, false) => Jemalloc.realloc(ptr, layout, new_size),
                (true, true) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(all(test, feature = "split-allocator"))]
mod tests {
    use super::*;

    /// Fills a block, grows and shrinks it across the boundary and back,
    /// and checks the bytes survive every move.
    #[test]
    fn realloc_across_the_boundary_keeps_the_bytes() {
        let a = SplitAllocator;
        for align in [1, 8, 64, 4096] {
            let small = Layout::from_size_align(1000, align).unwrap();
            // SAFETY: non-zero sizes, each block freed with its own layout.
            unsafe {
                let p = a.alloc(small);
                assert!(!p.is_null());
                for i in 0..1000 {
                    *p.add(i) = (i % 251) as u8;
                }
                let big = a.realloc(p, small, LARGE + 4096);
                assert!(!big.is_null());
                assert_eq!(big as usize % align, 0);
                for i in 0..1000 {
                    assert_eq!(*big.add(i), (i % 251) as u8);
                }
                let big_layout = Layout::from_size_align(LARGE + 4096, align).unwrap();
                let bigger = a.realloc(big, big_layout, 2 * LARGE);
                let bigger_layout = Layout::from_size_align(2 * LARGE, align).unwrap();
                let back = a.realloc(bigger, bigger_layout, 500);
                assert!(!back.is_null());
                for i in 0..500 {
                    assert_eq!(*back.add(i), (i % 251) as u8);
                }
                a.dealloc(back, Layout::from_size_align(500, align).unwrap());
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        let a = SplitAllocator;
        for size in [64, LARGE - 1, LARGE, 3 * LARGE] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size, freed with its own layout.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                a.dealloc(p, layout);
            }
        }
    }
}
