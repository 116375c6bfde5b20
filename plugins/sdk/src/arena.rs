//! The policy's memory allocator on `wasm32`: a bump arena in front of the system allocator.
//!
//! A decision allocates a few hundred small blocks (the host lowers every catalog string into the
//! guest through `cabi_realloc`, the policy builds its route) and frees them by the end of the
//! call. [`Arena`] serves them by moving a pointer through a fixed buffer and counts the blocks
//! still live; when the count falls to zero, the buffer is used again from its start. Freeing is
//! a counter's decrement, and a block grows in place when it is the last one handed out. What
//! does not fit, and everything once the buffer is full, goes to the system allocator. On a fresh
//! instance (the default) every decision starts with an empty buffer anyway; on a reused one
//! (`reuse_instances`) a block kept across decisions (a cache, or the standard output's buffer
//! after a first `print!`) stops the buffer from starting again: its freed space is not reused,
//! and once it is full every block comes from the system allocator, which frees and reuses as
//! usual. It may touch only its own buffer and the system allocator; `wasm32-wasip2` runs one
//! thread, which is what makes its unsynchronised cells sound. A policy that wants another
//! allocator turns off the SDK's default `arena` feature.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use std::alloc::System;

/// Bytes of the arena's buffer: room for the largest decisions of the bundled policies several
/// times over (they allocate 2-10 KiB), the size of one page of linear memory.
const ARENA_BYTES: usize = 64 << 10;

/// The arena: where the next block starts (an offset into the buffer), how many blocks are live,
/// and the buffer.
pub struct Arena {
    top: Cell<usize>,
    live: Cell<usize>,
    buffer: UnsafeCell<[u8; ARENA_BYTES]>,
}

// SAFETY: the arena is used only on `wasm32` targets without threads (`wasm32-wasip2`, where a
// component instance runs one call at a time), so its cells are never shared between threads.
unsafe impl Sync for Arena {}

impl Arena {
    /// An empty arena.
    pub const fn new() -> Self {
        Self {
            top: Cell::new(0),
            live: Cell::new(0),
            buffer: UnsafeCell::new([0; ARENA_BYTES]),
        }
    }

    fn start(&self) -> *mut u8 {
        self.buffer.get().cast()
    }

    /// Whether `ptr` was handed out by the arena.
    fn owns(&self, ptr: *mut u8) -> bool {
        (ptr as usize).wrapping_sub(self.start() as usize) < ARENA_BYTES
    }

    /// A block of `layout` from the buffer, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = self.start() as usize;
        let aligned = (start + self.top.get()).checked_next_multiple_of(layout.align())? - start;
        let end = aligned.checked_add(layout.size())?;
        if end > ARENA_BYTES || aligned == ARENA_BYTES {
            return None;
        }
        self.top.set(end);
        self.live.set(self.live.get() + 1);
        // SAFETY: `aligned` is within the buffer.
        Some(unsafe { self.start().add(aligned) })
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks from the buffer never overlap: the top moves past each block handed out, back to
// the end of the last block when that block shrinks in place, and to the start only when no
// block is live. Every other block is the system allocator's, and goes back to it.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: `layout` is the caller's, valid for `alloc`.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: a block the arena does not own came from the system allocator.
            return unsafe { System.dealloc(ptr, layout) };
        }
        self.live.set(self.live.get() - 1);
        if self.live.get() == 0 {
            self.top.set(0);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: the caller's block came from the system allocator.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let offset = ptr as usize - self.start() as usize;
        let is_last = offset + layout.size() == self.top.get();
        if is_last && offset + new_size <= ARENA_BYTES {
            self.top.set(offset + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `layout.align()` is a valid alignment and the caller guarantees `new_size` is
        // a valid size for it.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`; the old block stays valid until it is freed below.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are at least `layout.size()` bytes and distinct.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: `ptr` is the caller's live block of `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused_once_all_are_freed() {
        let arena = Box::new(Arena::new());
        unsafe {
            let a = arena.alloc(layout(3, 1));
            let b = arena.alloc(layout(8, 8));
            assert!(arena.owns(a) && arena.owns(b));
            assert_eq!(b as usize % 8, 0);
            assert!(b as usize >= a as usize + 3);
            arena.dealloc(a, layout(3, 1));
            let c = arena.alloc(layout(4, 4));
            assert!(
                c as usize >= b as usize + 8,
                "a live block is never overlapped"
            );
            arena.dealloc(b, layout(8, 8));
            arena.dealloc(c, layout(4, 4));
            assert_eq!(
                arena.alloc(layout(3, 1)),
                a,
                "all freed: the buffer starts again"
            );
        }
    }

    #[test]
    fn the_last_block_grows_in_place_and_others_move() {
        let arena = Box::new(Arena::new());
        unsafe {
            let a = arena.alloc(layout(4, 1));
            a.copy_from([1, 2, 3, 4].as_ptr(), 4);
            assert_eq!(arena.realloc(a, layout(4, 1), 100), a);
            let b = arena.alloc(layout(1, 1));
            let moved = arena.realloc(a, layout(100, 1), 200);
            assert_ne!(moved, a);
            assert_eq!(core::slice::from_raw_parts(moved, 4), [1, 2, 3, 4]);
            arena.dealloc(b, layout(1, 1));
            arena.dealloc(moved, layout(200, 1));
            assert_eq!(arena.live.get(), 0);
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_system_allocator() {
        let arena = Box::new(Arena::new());
        unsafe {
            let big = arena.alloc(layout(ARENA_BYTES + 1, 8));
            assert!(!big.is_null() && !arena.owns(big));
            let kept = arena.alloc(layout(ARENA_BYTES - 16, 8));
            assert!(arena.owns(kept));
            let overflow = arena.alloc(layout(64, 8));
            assert!(
                !arena.owns(overflow),
                "a full buffer sends blocks to the system"
            );
            let grown = arena.realloc(kept, layout(ARENA_BYTES - 16, 8), ARENA_BYTES + 64);
            assert!(!arena.owns(grown));
            assert_eq!(arena.live.get(), 0);
            arena.dealloc(big, layout(ARENA_BYTES + 1, 8));
            arena.dealloc(overflow, layout(64, 8));
            arena.dealloc(grown, layout(ARENA_BYTES + 64, 8));
        }
    }
}
