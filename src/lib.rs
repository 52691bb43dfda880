//! rolecall: gives each StatefulSet pod its identity and config.
//!
//! The pipeline, one module per stage: inputs ([`settings`], then `inputs`, which every command
//! enters through; `configdir`, [`role`]) -> [`identity`] -> [`model`] -> [`render`] -> `write`,
//! with [`output`] for what is printed and `wait` for waiting on peers before a render (or on
//! its own). [`names`] holds the name rules and limits of the domain. `commands` has one short
//! function per subcommand; each tags its stages' errors with their exit codes ([`error::Exit`]).
//! `kube` reads the pod's StatefulSet and node from the Kubernetes API (`--from-api`), and
//! [`topology`] holds the node's zone and region; [`member`] changes a running cluster's
//! membership on day 2 (join, replace, leave).
//!
//! Public are the command line, the error type, and what the fuzz targets drive.

pub mod cli;
mod commands;
mod configdir;
mod duration;
pub mod error;
pub mod identity;
mod inputs;
mod kube;
#[cfg(feature = "member")]
pub mod member;
pub mod memory;
pub mod model;
pub mod names;
pub mod output;
mod preview;
pub mod render;
pub mod role;
mod settings;
pub mod topology;
mod wait;
mod write;

use crate::cli::{Cli, Command};

/// Runs one command line.
pub fn run(cli: Cli) -> error::Result<()> {
    match cli.command {
        Command::Render(args) => commands::render(&args),
        Command::Exec(args) => commands::exec(&args),
        Command::Env(args) => commands::env(&args),
        Command::Get(args) => commands::get(&args),
        Command::Plan(args) => commands::plan(&args),
        Command::Check(args) => commands::check(&args),
        Command::Roles(args) => commands::roles(&args),
        Command::Wait(args) => commands::wait(&args),
        Command::Leave(args) => commands::leave(&args),
        Command::Install(args) => commands::install(&args),
    }
}
