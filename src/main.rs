//! The rolecall binary: parse, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;
use rolecall::cli::Cli;

fn main() -> ExitCode {
    match rolecall::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("rolecall: {failure}");
            ExitCode::from(failure.exit.code())
        }
    }
}
