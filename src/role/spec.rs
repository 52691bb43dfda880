//! The role.toml schema: ids, sizes, rules, files and vars, and `--set` applied over the vars.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::names::{MAX_REPLICAS, RESERVED_FILES, check_file_name, is_identifier};

/// The role.toml schema. Unknown keys are rejected, so a typo cannot slip through.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// One line for `rolecall roles`.
    pub description: String,
    /// The port every peer listens on (the `port` and `address` of each peer).
    #[serde(default)]
    pub port: Option<u16>,
    /// The role that leads; the leader is the first pod with it [default: the first rule's role].
    #[serde(default)]
    pub leader: Option<String>,
    /// Templates every pod renders, besides those of its rule.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub server_id: IdSpec,
    #[serde(default)]
    pub replicas: SizeSpec,
    /// Checked in order; the first rule that matches a pod's index gives its role and files.
    pub rules: Vec<Rule>,
    /// Template vars with their defaults; `--set KEY=VALUE` overrides them.
    #[serde(default)]
    pub vars: BTreeMap<String, Var>,
}

/// Server id = offset + ordinal, valid in `min..=max`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdSpec {
    pub offset: u64,
    pub min: u64,
    pub max: u64,
}

impl Default for IdSpec {
    fn default() -> Self {
        IdSpec {
            offset: 0,
            min: 0,
            max: u64::from(u32::MAX),
        }
    }
}

/// The set sizes the system can run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SizeSpec {
    pub min: u32,
    pub max: u32,
    /// Warn when the set has an even number of pods (quorum systems gain nothing from it).
    pub warn_even: bool,
}

impl Default for SizeSpec {
    fn default() -> Self {
        SizeSpec {
            min: 1,
            max: MAX_REPLICAS as u32,
            warn_even: false,
        }
    }
}

/// A rule over the pod's index (ordinal - start ordinal). All given conditions must hold.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub role: String,
    /// Matches exactly this index.
    #[serde(default)]
    pub index: Option<Bound>,
    /// Matches this index and every later one.
    #[serde(default)]
    pub from: Option<Bound>,
    /// Matches every index before this one.
    #[serde(default)]
    pub below: Option<Bound>,
    /// Templates pods of this rule render.
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

/// A rule bound: a number, or the name of a var holding one (an empty var disables the rule).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "a rule bound: a whole number from 0, or the name of a var holding one"
)]
pub enum Bound {
    Index(u32),
    Var(String),
}

/// A file to render: a template name, written under the same name.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(
    untagged,
    deny_unknown_fields,
    expecting = "a file: a template name, or { name = \"NAME\", mode = 0o644 } (only these keys)"
)]
pub enum FileSpec {
    Name(String),
    #[serde(rename_all = "snake_case")]
    Detailed {
        name: String,
        /// File mode, e.g. `0o755` for a script; wins over --mode.
        mode: Option<u32>,
    },
}

impl FileSpec {
    pub fn name(&self) -> &str {
        match self {
            FileSpec::Name(name) | FileSpec::Detailed { name, .. } => name,
        }
    }

    pub fn mode(&self) -> Option<u32> {
        match self {
            FileSpec::Name(_) => None,
            FileSpec::Detailed { mode, .. } => *mode,
        }
    }
}

/// A template var: string, integer, float or boolean, as written in TOML.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(
    untagged,
    expecting = "a var default: a string, an integer, a float or a boolean"
)]
pub enum Var {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Bool(b) => write!(f, "{b}"),
            Var::Int(i) => write!(f, "{i}"),
            Var::Float(x) => write!(f, "{x}"),
            Var::Str(s) => f.write_str(s),
        }
    }
}

impl Var {
    /// Parses a `--set` value as the same type as the var's default.
    pub fn parse_like(&self, value: &str) -> Option<Var> {
        match self {
            Var::Bool(_) => value.parse().ok().map(Var::Bool),
            Var::Int(_) => value.parse().ok().map(Var::Int),
            Var::Float(_) => value.parse().ok().map(Var::Float),
            Var::Str(_) => Some(Var::Str(value.to_string())),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Var::Bool(_) => "a boolean (true or false)",
            Var::Int(_) => "an integer",
            Var::Float(_) => "a number",
            Var::Str(_) => "a string",
        }
    }
}

/// Template vars after `--set`.
pub type Vars = BTreeMap<String, Var>;

/// Applies `--set KEY=VALUE` pairs over the role's defaults. Keys the role does not declare are
/// kept as strings and reported back, so the caller can warn about a likely typo.
pub fn apply_sets(
    defaults: &Vars,
    sets: &[(String, String)],
) -> anyhow::Result<(Vars, Vec<String>)> {
    let mut vars = defaults.clone();
    let mut undeclared = Vec::new();
    for (key, value) in sets {
        let var = match defaults.get(key) {
            Some(default) => default.parse_like(value).ok_or_else(|| {
                anyhow!(
                    "--set {key}={value}: `{key}` is {}, as its default `{default}` is",
                    default.type_name()
                )
            })?,
            None => {
                undeclared.push(key.clone());
                Var::Str(value.clone())
            }
        };
        vars.insert(key.clone(), var);
    }
    if let Some((a, b)) = same_env_name(&vars) {
        bail!(
            "--set: vars `{a}` and `{b}` would both be exported as ROLECALL_VAR_{}; `eval \"$(rolecall env)\"` would see only one; use one spelling",
            a.to_ascii_uppercase()
        );
    }
    Ok((vars, undeclared))
}

/// Two var names that differ only in case share one environment variable name
/// (`ROLECALL_VAR_KEY`), so one value would silently shadow the other in `rolecall env`.
fn same_env_name(vars: &Vars) -> Option<(&str, &str)> {
    let mut seen = BTreeMap::new();
    vars.keys().find_map(|key| {
        seen.insert(key.to_ascii_uppercase(), key.as_str())
            .map(|other| (other, key.as_str()))
    })
}

impl RoleSpec {
    /// Checks what can be checked without a pod: names, ranges, rules.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let spec = self;
        ensure!(
            !spec.rules.is_empty(),
            "`rules` is empty; a role needs at least one [[rules]] entry"
        );
        for rule in &spec.rules {
            ensure!(
                !rule.role.is_empty()
                    && rule
                        .role
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "rule role `{}` must be a non-empty name of letters, digits, `-` and `_`",
                rule.role.escape_debug()
            );
            for bound in [&rule.index, &rule.from, &rule.below].into_iter().flatten() {
                if let Bound::Var(var) = bound {
                    ensure!(
                        spec.vars.contains_key(var),
                        "rule `{}` refers to var `{var}`, which [vars] does not declare",
                        rule.role
                    );
                }
            }
        }
        if let Some(leader) = &spec.leader {
            ensure!(
                spec.rules.iter().any(|r| &r.role == leader),
                "leader role `{leader}` is not the role of any rule"
            );
        }
        let ids = &spec.server_id;
        ensure!(
            ids.min <= ids.max,
            "server_id.min {} is above server_id.max {}",
            ids.min,
            ids.max
        );
        let sizes = &spec.replicas;
        ensure!(
            1 <= sizes.min && sizes.min <= sizes.max && sizes.max as i64 <= MAX_REPLICAS,
            "replicas.min {} and replicas.max {} must satisfy 1 <= min <= max <= {MAX_REPLICAS}",
            sizes.min,
            sizes.max
        );
        for key in spec.vars.keys() {
            ensure!(
                is_identifier(key),
                "var name `{}` is not an identifier ([A-Za-z_][A-Za-z0-9_]*)",
                key.escape_debug()
            );
        }
        if let Some((a, b)) = same_env_name(&spec.vars) {
            bail!(
                "vars `{a}` and `{b}` would both be exported as ROLECALL_VAR_{}; rename one",
                a.to_ascii_uppercase()
            );
        }
        for file in self.all_files() {
            check_file_name(file.name())?;
            ensure!(
                !RESERVED_FILES.contains(&file.name()),
                "file `{}` is written by rolecall itself; give the template another name",
                file.name()
            );
            if let Some(mode) = file.mode() {
                ensure!(
                    mode <= 0o7777,
                    "file `{}`: mode {mode:o} is not a file mode (at most 0o7777)",
                    file.name()
                );
            }
        }
        for rule in &spec.rules {
            let mut seen = std::collections::BTreeSet::new();
            for file in spec.files.iter().chain(&rule.files) {
                ensure!(
                    seen.insert(file.name()),
                    "rule `{}` renders `{}` twice",
                    rule.role,
                    file.name()
                );
            }
        }
        Ok(())
    }

    /// Every template any pod of this role renders.
    pub fn all_files(&self) -> impl Iterator<Item = &FileSpec> {
        self.files
            .iter()
            .chain(self.rules.iter().flat_map(|r| &r.files))
    }

    /// The role leaders have.
    pub fn leader_role(&self) -> &str {
        self.leader.as_deref().unwrap_or(&self.rules[0].role)
    }
}
