//! The rolecall binary: parse, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;
use rolecall::cli::Cli;

/// musl's allocator maps and unmaps pages for small allocations: over a hundred mmap and munmap
/// calls in a render, about a fifth of its time. TLSF (rlsf) maps memory in 64 KiB pieces and
/// reuses what is freed, never giving it back: rolecall lives for milliseconds, or waits with a
/// steady few. See BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

fn main() -> ExitCode {
    match rolecall::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("rolecall: {failure}");
            ExitCode::from(failure.exit.code())
        }
    }
}
