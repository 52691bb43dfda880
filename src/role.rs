//! Roles as data: the role.toml schema, the built-in roles embedded from `roles/`, a user's own
//! role file, and the ad-hoc role built from flags.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail, ensure};
use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};

use crate::cli::MAX_REPLICAS;
use crate::configdir;

/// The built-in roles: one directory per role, each with a role.toml and its templates.
static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/roles");

/// The name of the role description file inside a role directory.
pub const ROLE_FILE: &str = "role.toml";

/// Files rolecall writes for every pod, whatever the role: no template may take these names.
pub const RESERVED_FILES: [&str; 2] = ["peers", "rolecall.env"];

/// A role: how to pick each pod's server id, role and files, and the templates to render them.
#[derive(Clone, Debug)]
pub struct Role {
    /// `mysql`, a role file's path, or `ad-hoc`.
    pub name: String,
    pub spec: RoleSpec,
    /// The role's own templates, by name. A config-dir key of the same name wins over these.
    pub templates: BTreeMap<String, Template>,
}

/// A template source and where it came from, for error messages.
#[derive(Clone, Debug)]
pub struct Template {
    pub text: String,
    pub origin: String,
}

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

/// A name that works as a tera identifier and, upper-cased, as a shell variable name.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A file name that stays inside the output directory: one path component, not hidden.
pub fn check_file_name(name: &str) -> anyhow::Result<()> {
    ensure!(!name.is_empty(), "a file name is empty");
    ensure!(
        !name.contains('/') && !name.contains('\0'),
        "file name `{}` contains `/`; templates and output files are single names in one directory",
        name.escape_debug()
    );
    ensure!(
        !name.starts_with('.') && !name.chars().any(char::is_control),
        "file name `{}` starts with `.` or has control characters; use a plain file name",
        name.escape_debug()
    );
    Ok(())
}

impl Role {
    /// Loads `--role NAME` (a built-in) or `--role PATH` (a role.toml and the templates beside it).
    pub fn load(arg: &str) -> anyhow::Result<Role> {
        if arg.contains('/') || arg.ends_with(".toml") {
            Role::from_path(Path::new(arg))
        } else {
            Role::builtin(arg)
        }
    }

    /// A built-in role by name.
    pub fn builtin(name: &str) -> anyhow::Result<Role> {
        let dir = BUILTIN
            .get_dir(name)
            .filter(|_| !name.is_empty() && !name.starts_with('.'));
        let Some(dir) = dir else {
            bail!(
                "no built-in role `{name}` (built-in: {}); pass --role ./path/to/role.toml for your own",
                builtin_names().join(", ")
            );
        };
        let mut files = BTreeMap::new();
        for file in dir.files() {
            let file_name = file
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let text = file
                .contents_utf8()
                .ok_or_else(|| anyhow!("built-in role {name}: {file_name} is not UTF-8"))?;
            files.insert(file_name.to_string(), text.to_string());
        }
        let spec_text = files
            .remove(ROLE_FILE)
            .ok_or_else(|| anyhow!("built-in role {name} has no {ROLE_FILE}"))?;
        let templates = files
            .into_iter()
            .map(|(file, text)| {
                let origin = format!("built-in role {name}: {file}");
                (file, Template { text, origin })
            })
            .collect();
        Role::new(name.to_string(), &spec_text, templates)
    }

    /// A user's role file; its templates are the other files in its directory (read like a
    /// ConfigMap mount, so the role can live in the same ConfigMap as its templates).
    pub fn from_path(path: &Path) -> anyhow::Result<Role> {
        let spec_text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read role file {}", path.display()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let keys = configdir::read(&dir)?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(ROLE_FILE);
        let templates = keys
            .into_iter()
            .filter(|(key, _)| key != file_name)
            .filter_map(|(key, bytes)| {
                let text = String::from_utf8(bytes).ok()?;
                let origin = dir.join(&key).display().to_string();
                Some((key, Template { text, origin }))
            })
            .collect();
        Role::new(path.display().to_string(), &spec_text, templates)
    }

    /// The role used without --role: the leader (first pod) renders `leader_file`, the others
    /// `follower_file`, every pod `files` and the server-id file.
    pub fn ad_hoc(
        leader_file: Option<&str>,
        follower_file: Option<&str>,
        files: &[String],
        id_file: Option<&str>,
    ) -> anyhow::Result<Role> {
        let mut every: Vec<FileSpec> = files.iter().cloned().map(FileSpec::Name).collect();
        let mut templates = BTreeMap::new();
        if let Some(id_file) = id_file {
            let text = if id_file.ends_with(".cnf") {
                "[mysqld]\nserver-id={{ server_id }}\n"
            } else {
                "{{ server_id }}\n"
            };
            let origin = format!("built-in server-id file {id_file}");
            templates.insert(
                id_file.to_string(),
                Template {
                    text: text.to_string(),
                    origin,
                },
            );
            every.push(FileSpec::Name(id_file.to_string()));
        }
        let rule = |role: &str, index, file: Option<&str>| Rule {
            role: role.to_string(),
            index,
            from: None,
            below: None,
            files: file
                .map(|f| FileSpec::Name(f.to_string()))
                .into_iter()
                .collect(),
        };
        let spec = RoleSpec {
            description: "ad-hoc role from flags: leader = the first pod, follower = the rest"
                .into(),
            port: None,
            leader: None,
            files: every,
            server_id: IdSpec::default(),
            replicas: SizeSpec::default(),
            rules: vec![
                rule("leader", Some(Bound::Index(0)), leader_file),
                rule("follower", None, follower_file),
            ],
            vars: Vars::new(),
        };
        let role = Role {
            name: "ad-hoc".into(),
            spec,
            templates,
        };
        role.validate()?;
        Ok(role)
    }

    /// A role from the text of a role.toml and its templates (public for the fuzz targets).
    pub fn new(
        name: String,
        spec_text: &str,
        templates: BTreeMap<String, Template>,
    ) -> anyhow::Result<Role> {
        let spec: RoleSpec =
            toml::from_str(spec_text).with_context(|| format!("invalid role file {name}"))?;
        let role = Role {
            name,
            spec,
            templates,
        };
        role.validate()
            .with_context(|| format!("invalid role file {}", role.name))?;
        Ok(role)
    }

    /// Checks what can be checked without a pod: names, ranges, rules.
    fn validate(&self) -> anyhow::Result<()> {
        let spec = &self.spec;
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
        self.spec
            .files
            .iter()
            .chain(self.spec.rules.iter().flat_map(|r| &r.files))
    }

    /// The role leaders have.
    pub fn leader_role(&self) -> &str {
        self.spec
            .leader
            .as_deref()
            .unwrap_or(&self.spec.rules[0].role)
    }

    /// The role file and templates as they are shipped, for `roles show`.
    pub fn show_builtin(name: &str) -> anyhow::Result<String> {
        Role::builtin(name)?;
        let dir = BUILTIN
            .get_dir(name)
            .ok_or_else(|| anyhow!("no built-in role `{name}`"))?;
        let mut files: Vec<_> = dir.files().collect();
        // role.toml first, then the templates by name.
        files.sort_by_key(|f| (f.path().file_name() != Some(ROLE_FILE.as_ref()), f.path()));
        let mut out = String::new();
        for file in files {
            out.push_str(&format!("# ==> roles/{} <==\n", file.path().display()));
            out.push_str(file.contents_utf8().unwrap_or("(not UTF-8)\n"));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// The names of the built-in roles, sorted.
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<_> = BUILTIN
        .dirs()
        .filter_map(|d| d.path().file_name().and_then(|n| n.to_str()))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_role_loads() {
        assert!(builtin_names().len() >= 3, "{:?}", builtin_names());
        for name in builtin_names() {
            Role::builtin(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Role::new(
            "t".into(),
            "description = 'x'\nport = 1\nprot = 2\n[[rules]]\nrole = 'a'\n",
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }

    #[test]
    fn rule_var_must_be_declared() {
        let err = Role::new(
            "t".into(),
            "description = 'x'\nport = 1\n[[rules]]\nrole = 'a'\nfrom = 'nope'\n",
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("`nope`"), "{err:#}");
    }

    #[test]
    fn reserved_and_nested_file_names_are_rejected() {
        for files in ["['peers']", "['a/b']", "['../x']", "['.hidden']"] {
            let text =
                format!("description = 'x'\nport = 1\nfiles = {files}\n[[rules]]\nrole = 'a'\n");
            assert!(
                Role::new("t".into(), &text, BTreeMap::new()).is_err(),
                "{files}"
            );
        }
    }

    #[test]
    fn sets_are_typed_by_their_default() {
        let defaults: Vars = [
            ("n".to_string(), Var::Int(3)),
            ("s".to_string(), Var::Str("a".into())),
        ]
        .into();
        let sets = [
            ("n".to_string(), "5".to_string()),
            ("x".to_string(), "y".to_string()),
        ];
        let (vars, undeclared) = apply_sets(&defaults, &sets).unwrap();
        assert_eq!(vars["n"], Var::Int(5));
        assert_eq!(vars["x"], Var::Str("y".into()));
        assert_eq!(undeclared, ["x"]);
        assert!(apply_sets(&defaults, &[("n".into(), "five".into())]).is_err());
    }
}
