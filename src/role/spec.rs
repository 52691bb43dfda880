//! The role.toml schema: ids, sizes, rules, files and vars, and `--set` applied over the vars.

use std::collections::BTreeMap;

use anyhow::{bail, ensure};
use serde::Deserialize;

use super::vars::{Var, VarDecl, VarRules, Vars, same_env_name};

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
    /// Day-2 membership actions rolecall takes for this role (see `member`): with `--data-dir`,
    /// a render joins the running cluster; `rolecall leave` leaves it.
    #[serde(default)]
    pub membership: Option<Membership>,
    /// Template vars as declared: a default, or a table with the default and what a value may
    /// hold. Read through `vars` and `var_rules`.
    #[serde(default, rename = "vars")]
    pub(crate) declared: BTreeMap<String, VarDecl>,
    /// Template vars with their defaults; `--set KEY=VALUE` overrides them.
    #[serde(skip)]
    pub vars: Vars,
    /// What each string var may hold.
    #[serde(skip)]
    pub var_rules: VarRules,
}

/// The systems whose membership rolecall changes itself.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    /// etcd, through its v3 JSON gateway; needs the vars `peer_port` and `bootstrap_size`.
    Etcd,
    /// ZooKeeper 3.5 and later, by dynamic reconfiguration; needs the integer vars
    /// `quorum_port`, `election_port` and `bootstrap_size` and the string var
    /// `super_password_file`.
    Zookeeper,
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

impl RoleSpec {
    /// Checks what can be checked without a pod: names, ranges, rules.
    /// Reads the declared vars into `vars` and `var_rules`; then `validate`.
    pub(crate) fn declare_vars(&mut self) -> anyhow::Result<()> {
        for (key, decl) in &self.declared {
            let (default, rule) = decl.resolve(key)?;
            self.vars.insert(key.clone(), default);
            if let Some(rule) = rule {
                self.var_rules.insert(key.clone(), rule);
            }
        }
        Ok(())
    }

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
        if let Some(membership) = spec.membership {
            // What its actions read: integer vars, string vars, and the role's `port`.
            let (name, ints, strings, port): (_, &[&str], &[&str], _) = match membership {
                Membership::Etcd => ("etcd", &["peer_port", "bootstrap_size"], &[], "`port`"),
                Membership::Zookeeper => (
                    "zookeeper",
                    &["quorum_port", "election_port", "bootstrap_size"],
                    &["super_password_file"],
                    "`port` (the client port)",
                ),
            };
            for var in ints {
                ensure!(
                    matches!(spec.vars.get(*var), Some(Var::Int(_))),
                    "membership `{name}` needs the integer var `{var}`"
                );
            }
            for var in strings {
                ensure!(
                    matches!(spec.vars.get(*var), Some(Var::Str(_))),
                    "membership `{name}` needs the string var `{var}`"
                );
            }
            ensure!(
                spec.port.is_some(),
                "membership `{name}` needs the role's {port}"
            );
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
