//! The process's allocator: the system allocator, with large blocks offered to transparent huge pages.
//!
//! An analysis touches each page of a few large buffers once — the object's bytes, the node table, the walk's
//! per-instruction arrays, the ORC rows — so checking a large object takes a page fault per 4 KiB of them (12 600
//! for a 1 MiB-text object, about a fifth of its time on the KVM guest of docs/performance.md). Blocks of [`LARGE`]
//! bytes or more are aligned to 2 MiB and marked `madvise(MADV_HUGEPAGE)`, so that where transparent huge pages
//! are in `madvise` mode (Debian's and Ubuntu's default) the kernel can back them with 2 MiB pages: 5 600 faults
//! and −23 % time for that object, for +9 % peak RSS (a huge page is resident whole once touched). Where THP is
//! `never` the advice is refused and nothing changes; where it is `always` the kernel does this anyway. Smaller
//! blocks go to the system allocator untouched.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size up are huge-page aligned and advised (2 MiB gave a little more speed for a little more
/// memory; 8 MiB left most faults).
pub const LARGE: usize = 4 << 20;

/// The x86-64 transparent huge page size, the alignment of large blocks.
const HUGE_PAGE: usize = 2 << 20;

/// [`System`], with blocks of [`LARGE`] bytes or more aligned to a huge page and advised for huge pages.
pub struct HugeForLarge;

/// The layout a block of `layout` is really allocated with.
fn actual(layout: Layout) -> Layout {
    if layout.size() < LARGE {
        return layout;
    }
    Layout::from_size_align(layout.size(), layout.align().max(HUGE_PAGE)).unwrap_or(layout)
}

/// `ptr` (a block just allocated with `real`, or null) after advising it for huge pages if it is a large block.
fn advised(ptr: *mut u8, real: Layout) -> *mut u8 {
    if real.align() >= HUGE_PAGE && !ptr.is_null() {
        advise(ptr, real.size());
    }
    ptr
}

#[cfg(target_os = "linux")]
fn advise(ptr: *mut u8, len: usize) {
    extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    const MADV_HUGEPAGE: i32 = 14;
    // SAFETY: `ptr..ptr+len` is a block this allocator just obtained; the advice changes no contents and a refusal
    // (THP disabled, an old kernel) is harmless, so the result is ignored.
    unsafe {
        madvise(ptr.cast(), len, MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_ptr: *mut u8, _len: usize) {}

/// Hands memory the process freed back to the system (glibc's `malloc_trim`): glibc keeps freed blocks in its
/// per-thread arenas, so without it the resident set of a long-running server stays at its peak after the
/// analyses of closed files are dropped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it is thread-safe.
    unsafe {
        malloc_trim(0);
    }
}

/// Nothing to do where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

// SAFETY: every block comes from `System` with the layout `actual` gives, and goes back to it with the same layout
// (`actual` is a function of the caller's layout, which `GlobalAlloc` guarantees is the one it was allocated with).
unsafe impl GlobalAlloc for HugeForLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let real = actual(layout);
        // SAFETY: forwarded with a valid, non-zero-size layout (`real` is at least as large as `layout`).
        advised(unsafe { System.alloc(real) }, real)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let real = actual(layout);
        // SAFETY: as in `alloc`.
        advised(unsafe { System.alloc_zeroed(real) }, real)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc`/`alloc_zeroed`/`realloc` above with `actual(layout)`.
        unsafe { System.dealloc(ptr, actual(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < LARGE && new_size < LARGE {
            // SAFETY: both layouts are the caller's own (no adjustment below `LARGE`).
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a fresh block from `alloc`; the old one is copied (the smaller of the two sizes) and freed with
        // the layout it was allocated with, as `GlobalAlloc::realloc` requires.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_and_keep_their_contents() {
        let a = HugeForLarge;
        // SAFETY: layouts are valid and non-zero; every block is freed with the layout it was made with.
        unsafe {
            let small = Layout::from_size_align(100, 8).expect("layout");
            let p = a.alloc(small);
            assert!(!p.is_null());
            p.write_bytes(7, 100);
            // Small → large: moved to an aligned block with the contents.
            let q = a.realloc(p, small, LARGE + 10);
            assert!(!q.is_null());
            assert_eq!(q as usize % HUGE_PAGE, 0);
            assert_eq!(*q.add(99), 7);
            q.add(LARGE + 9).write(9);
            // Large → larger and large → small keep what fits.
            let big = Layout::from_size_align(LARGE + 10, 8).expect("layout");
            let r = a.realloc(q, big, 3 * LARGE);
            assert_eq!(r as usize % HUGE_PAGE, 0);
            assert_eq!((*r.add(99), *r.add(LARGE + 9)), (7, 9));
            let bigger = Layout::from_size_align(3 * LARGE, 8).expect("layout");
            let s = a.realloc(r, bigger, 50);
            assert_eq!(*s.add(49), 7);
            a.dealloc(s, Layout::from_size_align(50, 8).expect("layout"));
            let z = Layout::from_size_align(LARGE, 64).expect("layout");
            let zp = a.alloc_zeroed(z);
            assert_eq!(zp as usize % HUGE_PAGE, 0);
            assert_eq!(*zp.add(LARGE - 1), 0);
            a.dealloc(zp, z);
        }
    }
}
