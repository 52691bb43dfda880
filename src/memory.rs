//! The memory budget. Every allocation is counted; one that would take rolecall past its budget
//! ends the process at once with a message and the exit code of the stage that asked for it
//! (4 while templates load and render), instead of an abort in the allocator or an OOM kill of
//! the pod. Nothing is written before rendering is done, so ending there leaves `--out` as it was.

use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::error::Exit;

/// The budget when none is given: far above any real render (10,000 peers take about 30 MiB),
/// far below what a runaway template would take.
pub const DEFAULT_LIMIT: usize = 256 << 20;
/// The smallest budget accepted: below it even a small render cannot run.
pub const MIN_LIMIT: usize = 16 << 20;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);
static USED: AtomicUsize = AtomicUsize::new(0);
static STAGE: AtomicU8 = AtomicU8::new(Stage::Other as u8);

/// What rolecall is doing, for the message and exit code when the budget runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Other = 0,
    /// Loading and rendering templates: a template that builds a huge value.
    Templates = 1,
}

/// Sets the budget, in bytes.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// Marks what rolecall does from now on.
pub fn set_stage(stage: Stage) {
    STAGE.store(stage as u8, Ordering::Relaxed);
}

/// `A`, counting what it hands out against the budget.
pub struct Budgeted<A> {
    inner: A,
}

impl<A> Budgeted<A> {
    pub const fn new(inner: A) -> Self {
        Budgeted { inner }
    }
}

/// Takes `bytes` from the budget, or ends the process.
fn reserve(bytes: usize) {
    let limit = LIMIT.load(Ordering::Relaxed);
    let before = USED.fetch_add(bytes, Ordering::Relaxed);
    if before.saturating_add(bytes) > limit {
        over_budget(bytes, before, limit);
    }
}

fn release(bytes: usize) {
    USED.fetch_sub(bytes, Ordering::Relaxed);
}

/// Takes `bytes` from the budget for `alloc`, and gives them back if it fails.
fn counted(bytes: usize, alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
    reserve(bytes);
    let ptr = alloc();
    if ptr.is_null() {
        release(bytes);
    }
    ptr
}

/// Says why and exits. Allocates nothing (the budget is spent): the message is formatted into a
/// buffer on the stack and written with one `write(2)`.
fn over_budget(asked: usize, used: usize, limit: usize) -> ! {
    let (code, what) = match STAGE.load(Ordering::Relaxed) {
        stage if stage == Stage::Templates as u8 => (
            Exit::Template,
            "rendering the templates needs more memory than the budget (a template that builds \
             a huge value?)",
        ),
        _ => (Exit::Internal, "rolecall needs more memory than the budget"),
    };
    let mut line = StackLine::default();
    let _ = writeln!(
        line,
        "rolecall: {what}: {} MiB used, {} MiB more asked, budget {} MiB; \
         raise it with --memory-limit or ROLECALL_MEMORY_LIMIT (e.g. 512Mi)",
        used >> 20,
        asked.div_ceil(1 << 20),
        limit >> 20
    );
    // SAFETY: write(2) and _exit(2) on a valid buffer; nothing is left to clean up.
    unsafe {
        nix::libc::write(2, line.buf.as_ptr().cast(), line.len);
        nix::libc::_exit(i32::from(code.code()));
    }
}

/// A line formatted without allocating; what does not fit is cut.
struct StackLine {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackLine {
    fn default() -> Self {
        StackLine {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackLine {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let take = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

// SAFETY: every call is passed on to `inner` unchanged; only the counting is added.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Budgeted<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        counted(layout.size(), || unsafe { self.inner.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        counted(layout.size(), || unsafe { self.inner.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.dealloc(ptr, layout) };
        release(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            reserve(new_size - old);
        }
        // SAFETY: the caller's contract, passed on.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if new.is_null() {
            if new_size > old {
                release(new_size - old);
            }
        } else if new_size < old {
            release(old - new_size);
        }
        new
    }
}

/// A Kubernetes quantity of bytes as a memory limit is written: `512Mi`, `1Gi`, `300M`,
/// `268435456`. The error says what is wrong, for a message that starts with the flag.
pub fn parse_quantity(text: &str) -> Result<usize, String> {
    const FORM: &str = "use bytes or a Kubernetes quantity like 256Mi, 1Gi or 500M";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("is not a size; {FORM}"))?;
    let scale: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        "T" => 1_000_000_000_000,
        "Ti" => 1 << 40,
        _ => return Err(format!("has an unknown unit `{suffix}`; {FORM}")),
    };
    let bytes = number
        .checked_mul(scale)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| "is too large".to_string())?;
    if bytes < MIN_LIMIT {
        return Err(format!(
            "is below the smallest budget, {} MiB",
            MIN_LIMIT >> 20
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("256Mi"), Ok(256 << 20));
        assert_eq!(parse_quantity("1Gi"), Ok(1 << 30));
        assert_eq!(parse_quantity("500M"), Ok(500_000_000));
        assert_eq!(parse_quantity("33554432"), Ok(32 << 20));
        for bad in ["", "Mi", "1.5Gi", "64mb", "-1Gi", "1Mi", "99999999999Ti"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_line_too_long_for_the_stack_buffer_is_cut_not_overrun() {
        let mut line = StackLine::default();
        let _ = write!(line, "{}", "x".repeat(2000));
        assert_eq!(line.len, 512);
    }
}
