//! Exit codes and the error type that carries one.
//!
//! Stages return `anyhow::Result`; the commands in `commands.rs` tag each stage's errors with the
//! exit code that stage stands for, so `main` can print the message once and exit with the right
//! code.

use std::fmt;

/// The documented exit codes (see the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A bug or an environment failure nobody could foresee.
    Internal = 1,
    /// Bad flags or values given on the command line.
    Usage = 2,
    /// Who this pod is cannot be worked out: no ordinal, out of range, pod-index mismatch,
    /// replicas missing.
    Identity = 3,
    /// A bad role file, a missing or broken template, a server id out of range.
    Template = 4,
    /// The output cannot be created or written.
    Output = 5,
    /// `wait` gave up before its targets were ready.
    Timeout = 6,
    /// A membership change (join, replace, leave) could not be made: no member answered in
    /// time, or the cluster refused it.
    Membership = 7,
    /// The Kubernetes API could not be read: no in-cluster configuration, unreachable, a TLS
    /// failure, a token refused, access forbidden, the object not found, or a malformed answer.
    Api = 8,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit,
            error: error.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// Tags an error with the exit code of the stage it came from.
pub trait OrExit<T> {
    fn or_exit(self, exit: Exit) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for std::result::Result<T, E> {
    fn or_exit(self, exit: Exit) -> Result<T> {
        self.map_err(|e| Failure::new(exit, e))
    }
}

/// Returns early with an error tagged by an exit code: `fail!(Exit::Usage, "bad {x}")`.
#[macro_export]
macro_rules! fail {
    ($exit:expr, $($arg:tt)*) => {
        return Err($crate::error::Failure::new($exit, anyhow::anyhow!($($arg)*)))
    };
}

/// Reports a command-line error as every other error is reported (`rolecall: ...`, naming the
/// environment variable when the bad value came from one) and returns its exit code. Help and
/// version requests are printed as clap prints them.
pub fn usage_error(e: &clap::Error) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return u8::try_from(e.exit_code()).unwrap_or(Exit::Usage.code());
    }
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let rendered = e.render().to_string();
    let mut text = rendered
        .trim_end()
        .strip_prefix("error: ")
        .unwrap_or(rendered.trim_end())
        .to_string();
    if let (Some(arg), Some(value)) = (
        context(ContextKind::InvalidArg),
        context(ContextKind::InvalidValue),
    ) && let Some(var) = env_of(arg).filter(|var| {
        std::env::var_os(var).is_some_and(|v| v.to_string_lossy() == value)
            && !std::env::args().any(|a| a == value || a.ends_with(&format!("={value}")))
    }) {
        text = text.replacen(
            &format!("for '{arg}'"),
            &format!("for '{arg}' (from environment variable {var})"),
            1,
        );
    }
    crate::output::say(&format!("rolecall: {text}"));
    Exit::Usage.code()
}

/// The environment variable behind a flag as clap names it in errors (`--replicas <N>`).
fn env_of(arg: &str) -> Option<String> {
    use clap::CommandFactory as _;
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let mut command = crate::cli::Cli::command();
    command.build();
    let env = command
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?;
    Some(env.to_string_lossy().into_owned())
}
