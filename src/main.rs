//! The rolecall binary: parse, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;
use rolecall::cli::Cli;
use rolecall::error::usage_error;
use rolecall::memory::Budgeted;
use rolecall::output::say;

/// musl's allocator maps and unmaps pages for small allocations: over a hundred mmap and munmap
/// calls in a render, about a fifth of its time. TLSF (rlsf) maps memory in 64 KiB pieces and
/// reuses what is freed, never giving it back: rolecall lives for milliseconds, or waits with a
/// steady few. See BENCHMARKS.md. Every allocation counts against the memory budget.
#[global_allocator]
static ALLOCATOR: Budgeted<rlsf::SmallGlobalTlsf> = Budgeted::new(rlsf::SmallGlobalTlsf::new());

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(&e)),
    };
    match rolecall::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // The exit code stands whatever happens to the message (a full or closed stderr).
            say(&format!("rolecall: {failure}"));
            ExitCode::from(failure.exit.code())
        }
    }
}
