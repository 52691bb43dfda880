//! Roles as data: the built-in roles embedded from `roles/`, a user's own role file, and the
//! ad-hoc role built from flags. The role.toml schema is in [`spec`].

mod builtin;
mod spec;
mod vars;

pub use spec::{Bound, FileSpec, IdSpec, Membership, RoleSpec, Rule, SizeSpec};
pub use vars::{Kind, Var, VarRule, VarRules, Vars, apply_sets};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};

use crate::configdir;

/// The name of the role description file inside a role directory.
pub const ROLE_FILE: &str = "role.toml";

/// A role: how to pick each pod's server id, role and files, and the templates to render them.
#[derive(Clone, Debug)]
pub struct Role {
    /// `mysql`, a role file's path, or `ad-hoc`.
    pub name: String,
    pub spec: RoleSpec,
    /// The role's own templates, by name. A config-dir key of the same name wins over these.
    pub templates: BTreeMap<String, Template>,
}

/// A template source and where it came from, for error messages. Kept as bytes, as a config
/// dir's keys are: a file that is not UTF-8 is an error only where something renders it.
#[derive(Clone, Debug)]
pub struct Template {
    pub bytes: Vec<u8>,
    pub origin: String,
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
        let Some(files) = builtin::files(name) else {
            bail!(
                "no built-in role `{name}` (built-in: {}); pass --role ./path/to/role.toml for your own",
                builtin_names().join(", ")
            );
        };
        let mut files = files?;
        let spec_text = files
            .remove(ROLE_FILE)
            .ok_or_else(|| anyhow!("built-in role {name} has no {ROLE_FILE}"))?;
        let templates = files
            .into_iter()
            .map(|(file, text)| {
                let origin = format!("built-in role {name}: {file}");
                let bytes = text.into_bytes();
                (file, Template { bytes, origin })
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
            .map(|(key, bytes)| {
                let origin = dir.join(&key).display().to_string();
                (key, Template { bytes, origin })
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
                    bytes: text.as_bytes().to_vec(),
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
            membership: None,
            declared: BTreeMap::new(),
            vars: Vars::new(),
            var_rules: VarRules::new(),
        };
        let role = Role {
            name: "ad-hoc".into(),
            spec,
            templates,
        };
        role.spec.validate()?;
        Ok(role)
    }

    /// A role from the text of a role.toml and its templates (public for the fuzz targets).
    pub fn new(
        name: String,
        spec_text: &str,
        templates: BTreeMap<String, Template>,
    ) -> anyhow::Result<Role> {
        let mut spec: RoleSpec =
            toml::from_str(spec_text).with_context(|| format!("invalid role file {name}"))?;
        spec.declare_vars()
            .and_then(|()| spec.validate())
            .with_context(|| format!("invalid role file {name}"))?;
        let role = Role {
            name,
            spec,
            templates,
        };
        Ok(role)
    }

    /// Every template any pod of this role renders.
    pub fn all_files(&self) -> impl Iterator<Item = &FileSpec> {
        self.spec.all_files()
    }

    /// The role leaders have.
    pub fn leader_role(&self) -> &str {
        self.spec.leader_role()
    }

    /// The role file and templates as they are shipped, for `roles show`.
    pub fn show_builtin(name: &str) -> anyhow::Result<String> {
        Role::builtin(name)?;
        let mut files: Vec<_> = builtin::files(name)
            .ok_or_else(|| anyhow!("no built-in role `{name}`"))??
            .into_iter()
            .collect();
        // role.toml first, then the templates by name.
        files.sort_by(|(a, _), (b, _)| (a != ROLE_FILE, a).cmp(&(b != ROLE_FILE, b)));
        let mut out = String::new();
        for (file, text) in files {
            out.push_str(&format!("# ==> roles/{name}/{file} <==\n"));
            out.push_str(&text);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// The names of the built-in roles, sorted.
pub fn builtin_names() -> Vec<&'static str> {
    builtin::names()
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

    /// A role with membership actions declares what they read, each missing piece named.
    #[test]
    fn membership_needs_its_vars_and_port() {
        let zk_vars = "quorum_port = 2888\nelection_port = 3888\nbootstrap_size = 3\n\
                       super_password_file = ''\n";
        let etcd_vars = "peer_port = 2380\nbootstrap_size = 3\n";
        let role = |kind: &str, port: &str, vars: &str| {
            let text = format!(
                "description = 'x'\n{port}membership = '{kind}'\n[vars]\n{vars}[[rules]]\nrole = 'a'\n"
            );
            Role::new("t".into(), &text, BTreeMap::new()).map_err(|e| format!("{e:#}"))
        };
        assert!(role("etcd", "port = 2379\n", etcd_vars).is_ok());
        assert!(role("zookeeper", "port = 2181\n", zk_vars).is_ok());
        for (kind, port, vars, says) in [
            (
                "etcd",
                "port = 2379\n",
                "bootstrap_size = 3\n",
                "membership `etcd` needs the integer var `peer_port`",
            ),
            (
                "etcd",
                "port = 2379\n",
                "peer_port = '2380'\nbootstrap_size = 3\n",
                "membership `etcd` needs the integer var `peer_port`",
            ),
            (
                "etcd",
                "",
                etcd_vars,
                "membership `etcd` needs the role's `port`",
            ),
            (
                "zookeeper",
                "port = 2181\n",
                "quorum_port = 2888\nelection_port = 3888\nbootstrap_size = 3\n",
                "membership `zookeeper` needs the string var `super_password_file`",
            ),
            (
                "zookeeper",
                "port = 2181\n",
                "quorum_port = 2888\nbootstrap_size = 3\nsuper_password_file = ''\n",
                "membership `zookeeper` needs the integer var `election_port`",
            ),
            (
                "zookeeper",
                "",
                zk_vars,
                "membership `zookeeper` needs the role's `port` (the client port)",
            ),
        ] {
            let err = role(kind, port, vars).unwrap_err();
            assert!(err.contains(says), "{kind} {vars:?}: {err}");
        }
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
}
