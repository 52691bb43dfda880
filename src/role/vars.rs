//! Template vars: their values, what a role declares each may hold, and `--set` applied over
//! the defaults. A value a user passes is data in every file a role writes: a declared string
//! var holds one line unless its role says otherwise, and may be held to a kind or a pattern.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, bail, ensure};
use regex_lite::Regex;
use serde::{Deserialize, Serialize};

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

/// What a string var may hold.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One line: no control character (no line break, tab, escape). The default.
    Line,
    /// Lines: no control character but line breaks and tabs.
    Text,
    /// A name: letters, digits, `.`, `_` and `-`, starting with a letter or digit.
    Name,
    /// An absolute path of letters, digits and `/._-+@=,:`: nothing a config format or a shell
    /// would read as more than a path.
    Path,
    /// A host name or an IP address (v4 or v6), or a listen address like `0.0.0.0` or `::`.
    Host,
    /// Anything: the role's templates escape it themselves.
    Any,
}

impl Kind {
    fn holds(self, value: &str) -> bool {
        let plain = |c: char| !c.is_control();
        match self {
            Kind::Line => value.chars().all(plain),
            Kind::Text => value.chars().all(|c| plain(c) || c == '\n' || c == '\t'),
            Kind::Name => {
                value.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            }
            Kind::Path => {
                value.starts_with('/')
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/._-+@=,:".contains(c))
            }
            Kind::Host => {
                !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:%".contains(c))
            }
            Kind::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Line => "one line (no line break or other control character)",
            Kind::Text => "text without control characters other than line breaks and tabs",
            Kind::Name => {
                "a name: letters, digits, `.`, `_` and `-`, starting with a letter or digit"
            }
            Kind::Path => "an absolute path of letters, digits and `/._-+@=,:`",
            Kind::Host => "a host name or an IP address",
            Kind::Any => "anything",
        }
    }
}

/// What one string var may hold: a kind, and a pattern its whole value must match.
#[derive(Clone, Debug)]
pub struct VarRule {
    pub kind: Kind,
    pub pattern: Option<Regex>,
}

impl VarRule {
    /// Checks a value given with `--set`; the empty value always passes (it means "unset", and
    /// each role says what that gives).
    fn check(&self, key: &str, value: &str) -> anyhow::Result<()> {
        if value.is_empty() {
            return Ok(());
        }
        let shown = value.escape_debug();
        ensure!(
            self.kind.holds(value),
            "--set {key}=`{shown}`: `{key}` must be {}",
            self.kind.describe()
        );
        if let Some(pattern) = &self.pattern {
            ensure!(
                pattern.is_match(value),
                "--set {key}=`{shown}`: `{key}` must match `{}`",
                pattern.as_str()
            );
        }
        Ok(())
    }
}

/// The rules of a role's string vars, by name.
pub type VarRules = BTreeMap<String, VarRule>;

/// A var as a role file declares it: its default alone, or a table.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a var default: a string, an integer, a float or a boolean; or a table \
                 { default = ..., kind = \"line|text|name|path|host|any\", pattern = \"^...$\" }"
)]
pub(crate) enum VarDecl {
    Plain(Var),
    Declared(Declared),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Declared {
    default: Var,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    pattern: Option<String>,
}

impl VarDecl {
    /// The default, and for a string var its rule (one line unless declared otherwise). The
    /// default itself must keep the rule.
    pub(crate) fn resolve(&self, key: &str) -> anyhow::Result<(Var, Option<VarRule>)> {
        let (default, kind, pattern) = match self {
            VarDecl::Plain(default) => (default, None, None),
            VarDecl::Declared(d) => (&d.default, d.kind, d.pattern.as_deref()),
        };
        let Var::Str(text) = default else {
            ensure!(
                kind.is_none() && pattern.is_none(),
                "var `{key}`: only a string var takes a kind or a pattern"
            );
            return Ok((default.clone(), None));
        };
        let pattern = pattern
            .map(|p| {
                Regex::new(p).map_err(|e| anyhow!("var `{key}`: pattern `{p}` is not a regex: {e}"))
            })
            .transpose()?;
        let rule = VarRule {
            kind: kind.unwrap_or(Kind::Line),
            pattern,
        };
        rule.check(key, text)
            .map_err(|e| anyhow!("var `{key}`: its default breaks its own rule ({e})"))?;
        Ok((default.clone(), Some(rule)))
    }
}

/// Applies `--set KEY=VALUE` pairs over the role's defaults, each typed like its default and
/// held to its rule. Keys the role does not declare are kept as strings, unchecked (the user's
/// own templates escape them), and reported back, so the caller can warn about a likely typo.
pub fn apply_sets(
    defaults: &Vars,
    rules: &VarRules,
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
        if let (Some(rule), Var::Str(text)) = (rules.get(key), &var) {
            rule.check(key, text)?;
        }
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
pub(crate) fn same_env_name(vars: &Vars) -> Option<(&str, &str)> {
    let mut seen = BTreeMap::new();
    vars.keys().find_map(|key| {
        seen.insert(key.to_ascii_uppercase(), key.as_str())
            .map(|other| (other, key.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (vars, undeclared) = apply_sets(&defaults, &VarRules::new(), &sets).unwrap();
        assert_eq!(vars["n"], Var::Int(5));
        assert_eq!(vars["x"], Var::Str("y".into()));
        assert_eq!(undeclared, ["x"]);
        let five = [("n".to_string(), "five".to_string())];
        assert!(apply_sets(&defaults, &VarRules::new(), &five).is_err());
    }

    #[test]
    fn kinds_hold_what_they_say() {
        for (kind, good, bad) in [
            (
                Kind::Line,
                &["a b", "ünï", "$(x)"][..],
                &["a\nb", "a\rb", "a\tb", "\u{1b}[0m"][..],
            ),
            (Kind::Text, &["a\nb", "a\tb"], &["a\rb", "\u{7}"]),
            (
                Kind::Name,
                &["rs0", "my-set.v2", "A_b"],
                &["-x", "a b", "a'b", "a/b", "$x"],
            ),
            (
                Kind::Path,
                &["/data", "/var/lib/x-1", "/a@b+c"],
                &["data", "/a b", "/a'b", "/a$b", "/a;b"],
            ),
            (
                Kind::Host,
                &["0.0.0.0", "::", "fe80::1%eth0", "db.example"],
                &["a b", "a/b", "*"],
            ),
        ] {
            for value in good {
                assert!(kind.holds(value), "{kind:?} {value:?}");
            }
            for value in bad {
                assert!(!kind.holds(value), "{kind:?} {value:?}");
            }
        }
    }

    #[test]
    fn declared_rules_are_kept_by_defaults_and_sets() {
        let decl: VarDecl = toml::from_str::<BTreeMap<String, VarDecl>>(
            "v = { default = \"rs0\", kind = \"name\", pattern = \"^rs[0-9]+$\" }",
        )
        .unwrap()
        .remove("v")
        .unwrap();
        let (default, rule) = decl.resolve("v").unwrap();
        assert_eq!(default, Var::Str("rs0".into()));
        let rules: VarRules = [("v".to_string(), rule.unwrap())].into();
        let defaults: Vars = [("v".to_string(), default)].into();
        let set = |value: &str| apply_sets(&defaults, &rules, &[("v".into(), value.into())]);
        assert!(set("rs7").is_ok());
        assert!(set("").is_ok(), "empty means unset");
        let err = set("rs0\ninitial-cluster: evil").unwrap_err().to_string();
        assert!(err.contains("`v` must be a name"), "{err}");
        let err = set("db1").unwrap_err().to_string();
        assert!(err.contains("must match `^rs[0-9]+$`"), "{err}");
        // A plain string var holds one line.
        let (_, rule) = VarDecl::Plain(Var::Str("x".into())).resolve("p").unwrap();
        assert_eq!(rule.unwrap().kind, Kind::Line);
        // A default that breaks its own rule is the role file's mistake.
        let bad: BTreeMap<String, VarDecl> =
            toml::from_str("v = { default = \"a b\", kind = \"name\" }").unwrap();
        assert!(bad["v"].resolve("v").is_err());
        let typed: BTreeMap<String, VarDecl> =
            toml::from_str("v = { default = 3, kind = \"name\" }").unwrap();
        assert!(typed["v"].resolve("v").is_err());
    }
}
