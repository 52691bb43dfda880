//! Rendering: the role's templates overlaid by the config dir's keys, rendered with tera, and
//! every file one pod writes: its role's files, `peers` and `rolecall.env`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use tera::{Context, Kwargs, State, Tera, Value};

use crate::configdir::Keys;
use crate::model::{Cluster, Member, Model, PodFacts, SET_FIELDS, View};
use crate::names::check_file_name;
use crate::output;
use crate::role::{FileSpec, Role};
use crate::settings::RoleSettings;
use crate::write::OutFile;

/// No config file is this large: a template that produces more is looping by mistake.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// Every template a role may render or include, parsed.
pub struct Templates {
    tera: Tera,
    /// Where each template came from: a config-dir path or a built-in role file.
    origins: BTreeMap<String, String>,
    /// Config-dir keys that do not parse as templates, with the parse error. They are left out
    /// unless something renders or includes them: a ConfigMap may hold other files too.
    broken: BTreeMap<String, String>,
}

/// One rendered file, ready to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub name: String,
    pub content: Vec<u8>,
    /// The role's own mode for this file, if it sets one.
    pub mode: Option<u32>,
}

impl Templates {
    /// Collects the role's templates, then the config dir's keys over them (the user's file wins),
    /// and loads what the role renders and what that includes, extends or calls. Other keys are
    /// never parsed: a ConfigMap may hold thousands of files for other programs.
    pub fn load(role: &Role, config: Option<(&Path, &Keys)>) -> anyhow::Result<Templates> {
        let own = role
            .templates
            .iter()
            .map(|(name, t)| (name, t.bytes.as_slice(), t.origin.clone()));
        let keys = config.into_iter().flat_map(|(dir, keys)| {
            keys.iter().map(move |(key, bytes)| {
                (key, bytes.as_slice(), dir.join(key).display().to_string())
            })
        });
        let mut sources: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (key, bytes, origin) in own.chain(keys) {
            match std::str::from_utf8(bytes) {
                Ok(text) => {
                    broken.remove(key);
                    sources.insert(key.clone(), (text.to_string(), origin));
                }
                Err(_) => {
                    sources.remove(key);
                    broken.insert(key.clone(), format!("{origin} is not UTF-8 text"));
                }
            }
        }
        let mut tera = new_tera();
        let mut loader = Loader {
            sources: &sources,
            broken,
            good: Vec::new(),
            probe: Tera::default(),
        };
        for file in role.all_files() {
            loader.want(file.name());
        }
        // A template that parses may still fail tera's checks across templates: it includes,
        // extends or calls a component of a key not loaded yet (load that key too), or of one
        // that is missing or broken, or it is in an include cycle (set it aside: what renders it
        // fails, naming why). Round by round, until tera takes the set.
        while let Err(e) = tera.add_raw_templates(loader.good.iter().copied()) {
            if loader.want_referenced(&e) {
                continue;
            }
            let culprits = culprits(&e, &loader.good);
            if culprits.is_empty() {
                return Err(anyhow!("{e}")).context("cannot load templates");
            }
            for (name, why) in culprits {
                let origin = &sources[name].1;
                loader
                    .broken
                    .insert(name.to_string(), format!("{origin}: {why}"));
            }
            let broken = &loader.broken;
            loader.good.retain(|(name, _)| !broken.contains_key(*name));
        }
        let broken = loader.broken;
        let origins = sources
            .into_iter()
            .map(|(name, (_, origin))| (name, origin))
            .collect();
        Ok(Templates {
            tera,
            origins,
            broken,
        })
    }

    /// Checks that every file exists as a template, before anything is rendered.
    pub fn check_files<'a>(
        &self,
        files: impl IntoIterator<Item = &'a FileSpec>,
        config_dir: Option<&Path>,
    ) -> anyhow::Result<()> {
        for file in files {
            let name = file.name();
            check_file_name(name)?;
            if let Some(why) = self.broken.get(name) {
                bail!(
                    "template `{name}` cannot be used: {why}{}",
                    self.hint(why, name)
                );
            }
            if !self.origins.contains_key(name) {
                let looked = match config_dir {
                    Some(dir) => {
                        format!("config dir {} or the role's own templates", dir.display())
                    }
                    None => "the role's own templates (no --config-dir given)".to_string(),
                };
                bail!(
                    "template `{name}` not found in {looked}; add a key `{name}` to the ConfigMap"
                );
            }
        }
        Ok(())
    }

    /// Renders each file for one pod.
    pub fn render<'a>(
        &self,
        files: impl IntoIterator<Item = &'a FileSpec>,
        view: &View,
        membership: Option<&serde_json::Value>,
    ) -> anyhow::Result<Vec<Rendered>> {
        let mut context = Context::from_serialize(view)
            .map_err(|e| anyhow!("{e}"))
            .context("cannot build the template context")?;
        // `null` unless a render joined a running cluster (see `member`).
        context.insert("membership", &membership);
        files
            .into_iter()
            .map(|file| {
                let name = file.name();
                let mut out = Limited(Vec::new());
                let origin = self.origins.get(name).map_or(name, String::as_str);
                self.tera.render_to(name, &context, &mut out).map_err(|e| {
                    if matches!(e.kind(), tera::ErrorKind::Io(_)) {
                        anyhow!(
                            "rendering {origin}: output is larger than {} MiB",
                            MAX_OUTPUT_BYTES >> 20
                        )
                    } else {
                        anyhow!(
                            "rendering {origin}:\n{e}{}",
                            self.hint(&e.to_string(), name)
                        )
                    }
                })?;
                Ok(Rendered {
                    name: name.to_string(),
                    content: out.0,
                    mode: file.mode(),
                })
            })
            .collect()
    }

    /// The first of `files` that reads a field only the set's size gives (itself or through a
    /// template it includes or extends): its name and origin, and the field. Found by name, so
    /// also under an `if`, where an undefined value would pass unnoticed as false.
    pub fn set_field_used<'a>(
        &self,
        files: impl IntoIterator<Item = &'a FileSpec>,
    ) -> Option<(String, &'static str)> {
        files.into_iter().find_map(|file| {
            let name = file.name();
            let used = self.tera.get_template_variables(name).ok()?;
            let field = SET_FIELDS.into_iter().find(|f| used.contains(f))?;
            let origin = self.origins.get(name).map_or(name, String::as_str);
            Some((format!("`{name}` ({origin})"), field))
        })
    }

    /// When a template includes a key that did not load, say why it is missing.
    fn hint(&self, text: &str, template: &str) -> String {
        self.broken
            .iter()
            .filter(|(name, _)| {
                *name != template
                    && (text.contains(&format!("`{name}`")) || text.contains(&format!("'{name}'")))
            })
            .map(|(_, why)| format!("\n(note: {why})"))
            .collect()
    }
}

/// The templates to load: those wanted so far that parse, and those set aside with why.
struct Loader<'s> {
    sources: &'s BTreeMap<String, (String, String)>,
    broken: BTreeMap<String, String>,
    good: Vec<(&'s str, &'s str)>,
    /// Parses one template at a time for its syntax errors alone (building tera's builtins
    /// costs more than parsing a small template, so one probe serves all).
    probe: Tera,
}

impl<'s> Loader<'s> {
    /// Takes the template `name` into the set, unless it is missing (reported when used),
    /// already in, or does not parse (set aside with the error).
    fn want(&mut self, name: &str) -> bool {
        let Some((key, (text, origin))) = self.sources.get_key_value(name) else {
            return false;
        };
        if self.broken.contains_key(name) || self.good.iter().any(|(n, _)| *n == name) {
            return false;
        }
        match self.probe.add_raw_template(key, text) {
            Err(e) if matches!(e.kind(), tera::ErrorKind::SyntaxError(_)) => {
                self.broken.insert(key.clone(), format!("{origin}: {e}"));
            }
            _ => self.good.push((key.as_str(), text.as_str())),
        }
        true
    }

    /// Takes in the templates a failed load names as unknown (an include, a parent) or that
    /// define an unknown component; whether any was taken in.
    fn want_referenced(&mut self, e: &tera::Error) -> bool {
        let mut wanted = false;
        if let tera::ErrorKind::MissingParent { parent, .. } = e.kind() {
            wanted |= self.want(parent);
        }
        let text = e.to_string();
        for name in between(&text, "Unknown template `", "`") {
            wanted |= self.want(name);
        }
        for component in between(&text, "Unknown component `", "`") {
            let definition = format!("component {component}(");
            let defining: Vec<&str> = self
                .sources
                .iter()
                .filter(|(_, (text, _))| text.contains(&definition))
                .map(|(name, _)| name.as_str())
                .collect();
            for name in defining {
                wanted |= self.want(name);
            }
        }
        wanted
    }
}

/// Every text between `start` and the next `end` in `text`.
fn between<'t>(text: &'t str, start: &'t str, end: &'t str) -> impl Iterator<Item = &'t str> {
    text.split(start)
        .skip(1)
        .filter_map(move |rest| rest.split_once(end).map(|(inside, _)| inside))
}

/// Every file the pod at `index` writes, with its final mode: the role's templates for it, the
/// `peers` file and `rolecall.env`.
pub fn render_pod(
    templates: &Templates,
    role: &RoleSettings,
    cluster: &Cluster,
    index: u32,
    facts: PodFacts,
    mode: u32,
    membership: Option<&serde_json::Value>,
) -> anyhow::Result<Vec<OutFile>> {
    let view = cluster.view(index, facts);
    let me = &cluster.members[index as usize];
    let mut out = role_files(templates, role, &cluster.model, me, &view, mode, membership)?;
    out.push(OutFile {
        name: "peers".into(),
        content: output::peers_file(cluster).into_bytes(),
        mode,
    });
    out.push(env_file(&view, mode));
    Ok(out)
}

/// The files of pod `me` while the set's size is unknown: the role's files and `rolecall.env`
/// without the set's fields; no `peers`. The caller has made sure no template reads those
/// fields (`Templates::set_field_used`).
pub fn render_alone(
    templates: &Templates,
    role: &RoleSettings,
    model: &Model,
    me: &Member,
    facts: PodFacts,
    mode: u32,
) -> anyhow::Result<Vec<OutFile>> {
    let view = model.view(me, facts);
    let mut out = role_files(templates, role, model, me, &view, mode, None)?;
    out.push(env_file(&view, mode));
    Ok(out)
}

/// The role's files for `me`.
fn role_files(
    templates: &Templates,
    role: &RoleSettings,
    model: &Model,
    me: &Member,
    view: &View,
    mode: u32,
    membership: Option<&serde_json::Value>,
) -> anyhow::Result<Vec<OutFile>> {
    // Every file of the role, not only this pod's: a missing leader template is a mistake to
    // report on every pod, not only when the leader restarts.
    templates.check_files(role.role.all_files(), role.config_dir.as_deref())?;
    let rendered = templates.render(model.files(me), view, membership)?;
    Ok(rendered
        .into_iter()
        .map(|r| OutFile {
            name: r.name,
            content: r.content,
            mode: r.mode.unwrap_or(mode),
        })
        .collect())
}

/// `rolecall.env`: what `rolecall env` prints for this view.
fn env_file(view: &View, mode: u32) -> OutFile {
    OutFile {
        name: "rolecall.env".into(),
        content: output::shell_env(&output::fields(view)).into_bytes(),
        mode,
    }
}

/// The templates a failed load blames, each with its part of the error.
fn culprits<'a>(e: &tera::Error, loaded: &[(&'a str, &str)]) -> BTreeMap<&'a str, String> {
    let find = |name: &str| loaded.iter().map(|(n, _)| *n).find(|n| *n == name);
    let mut blamed = BTreeMap::new();
    match e.kind() {
        tera::ErrorKind::CircularInclude { tpl, .. }
        | tera::ErrorKind::CircularExtend { tpl, .. }
        | tera::ErrorKind::MissingParent { current: tpl, .. } => {
            if let Some(name) = find(tpl) {
                blamed.insert(name, e.to_string());
            }
        }
        _ if e.to_string().contains("is defined in both") => {
            // `Component `X` is defined in both `A` and `B``: neither can be trusted.
            let text = e.to_string();
            let (_, both) = text.split_once("is defined in both").unwrap_or_default();
            for name in between(both, "`", "`").filter_map(find) {
                blamed.insert(name, text.clone());
            }
        }
        _ => {
            // Reference checks report every offending template as `error: ... --> NAME:L:C`.
            for report in e.to_string().split("\n\nerror: ") {
                let report = format!("error: {}", report.trim_start_matches("error: "));
                let name = loaded
                    .iter()
                    .map(|(n, _)| *n)
                    .filter(|n| report.contains(&format!("--> {n}:")))
                    .max_by_key(|n| n.len());
                if let Some(name) = name {
                    let why: &mut String = blamed.entry(name).or_default();
                    if !why.is_empty() {
                        why.push_str("\n\n");
                    }
                    why.push_str(&report);
                }
            }
        }
    }
    blamed
}

fn new_tera() -> Tera {
    let mut tera = Tera::default();
    // Config files are not HTML: never escape.
    tera.autoescape_on(Vec::<&str>::new());
    tera.register_function("get_env", get_env);
    tera.register_filter("map", map);
    tera.register_filter("filter", filter);
    tera.register_filter("shell", shell);
    tera.register_filter("yaml", yaml);
    tera.register_filter("json", json);
    tera.register_filter("line", line);
    tera.register_filter("properties", properties);
    tera.register_function("base64_uuid", base64_uuid);
    tera
}

// Escaping filters: a value a user passes is data in every format a template writes.

/// The text of a value, as `{{ value }}` prints it.
fn text(value: &Value) -> String {
    format!("{value}")
}

/// A control character the value may not hold in a line-based format.
fn refuse_control(filter: &str, text: &str, allowed: &[char]) -> tera::TeraResult<()> {
    match text
        .chars()
        .find(|c| c.is_control() && !allowed.contains(c))
    {
        None => Ok(()),
        Some(c) => Err(tera::Error::message(format!(
            "`{filter}`: the value `{}` holds {}, which would end or break the line it goes into",
            text.escape_debug(),
            c.escape_debug()
        ))),
    }
}

/// `vars.x | shell`: one single-quoted POSIX shell word, whatever the value holds; `eval`, `sh -c`
/// and `. file` read it back unchanged and run none of it.
fn shell(value: Value, _: Kwargs, _: &State) -> String {
    format!("'{}'", text(&value).replace('\'', r"'\''"))
}

/// `vars.x | yaml`: a double-quoted YAML scalar (JSON's string syntax, which YAML reads alike):
/// a line break or a `: ` in the value cannot start a new key.
fn yaml(value: Value, _: Kwargs, _: &State) -> String {
    serde_json::Value::String(text(&value)).to_string()
}

/// `x | json`: the value as JSON: a string quoted and escaped, numbers, booleans, lists and maps
/// as they are.
fn json(value: Value, _: Kwargs, _: &State) -> tera::TeraResult<String> {
    serde_json::to_string(&value).map_err(|e| tera::Error::message(format!("`json`: {e}")))
}

/// `vars.x | line`: the value unchanged, for a line-based format (`.conf`, `.cnf`, `.cfg`); an
/// error if it holds a line break or another control character.
fn line(value: Value, _: Kwargs, _: &State) -> tera::TeraResult<String> {
    let text = text(&value);
    refuse_control("line", &text, &[])?;
    Ok(text)
}

/// `vars.x | properties`: a Java `.properties` value: backslashes doubled (a trailing one would
/// join the next line) and a leading space kept; an error on a line break or control character.
fn properties(value: Value, _: Kwargs, _: &State) -> tera::TeraResult<String> {
    let text = text(&value);
    refuse_control("properties", &text, &[])?;
    let escaped = text.replace('\\', r"\\");
    Ok(match escaped.strip_prefix(' ') {
        Some(rest) => format!(r"\ {rest}"),
        None => escaped,
    })
}

/// `peers | map(attribute="address")`, as in tera 1: that attribute of every item.
fn map(items: &[Value], kwargs: Kwargs, _: &State) -> tera::TeraResult<Vec<Value>> {
    let attribute = kwargs.must_get::<&str>("attribute")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get_from_path(attribute).cloned().ok_or_else(|| {
                tera::Error::message(format!("map: item {i} has no attribute `{attribute}`"))
            })
        })
        .collect()
}

/// `peers | filter(attribute="role", value="observer")`, as in tera 1: the items whose attribute
/// equals the value (or, without a value, is truthy).
fn filter(items: &[Value], kwargs: Kwargs, _: &State) -> tera::TeraResult<Vec<Value>> {
    let attribute = kwargs.must_get::<&str>("attribute")?;
    let value = kwargs.get::<Value>("value")?;
    let keep = |item: &&Value| match (item.get_from_path(attribute), &value) {
        (Some(found), Some(want)) => found == want,
        (Some(found), None) => found.is_truthy(),
        (None, _) => false,
    };
    Ok(items.iter().filter(keep).cloned().collect())
}

/// `base64_uuid(name="...")`: an id for whatever `name` names, the same for the same name on every
/// machine and in every version, as the 22 characters of URL-safe base64 without padding that
/// Kafka's `kafka-storage.sh random-uuid` prints. It is the 128-bit FNV-1a hash of the name's
/// UTF-8 bytes, finished as MurmurHash3 x64 128 finishes its hash, with the RFC 9562 version (8)
/// and variant bits set, and never starts with `-`
/// (kafka-storage.sh would take it for an option): that character's 6 bits lose their top one.
/// Not a secret and not collision-proof against a chosen name; distinct for distinct set names.
fn base64_uuid(kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    const FNV_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    const BASE64URL: &[u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let name = kwargs.must_get::<&str>("name")?;
    let hash = name.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(FNV_PRIME)
    });
    // FNV leaves the high bits of a short name's hash nearly constant: MurmurHash3's x64 128-bit
    // finalization makes every bit depend on every byte.
    let fmix64 = |mut k: u64| {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    };
    let (mut h1, mut h2) = ((hash >> 64) as u64, hash as u64);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    let mut bytes = ((u128::from(h1) << 64) | u128::from(h2)).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    if bytes[0] >> 2 == 62 {
        bytes[0] &= 0x7f;
    }
    let bits = u128::from_be_bytes(bytes);
    // 21 characters of 6 bits, then the last 2 bits padded with zeros.
    let id = (0..22)
        .map(|i| {
            let six = if i < 21 {
                bits >> (122 - 6 * i)
            } else {
                bits << 4
            };
            char::from(BASE64URL[(six & 63) as usize])
        })
        .collect();
    Ok(id)
}

/// `get_env(name="VAR", default="...")`, as in tera 1: the environment variable, or the
/// default, or an error naming the variable.
fn get_env(kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    let name = kwargs.must_get::<&str>("name")?;
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(_) => match kwargs.get::<&str>("default")? {
            Some(default) => Ok(default.to_string()),
            None => Err(tera::Error::message(format!(
                "environment variable `{name}` is not set and get_env has no default"
            ))),
        },
    }
}

/// A writer that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Limited(Vec<u8>);

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(io::Error::other("output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Template;

    /// A role's own file that is not UTF-8 is named as such where it is used, as a config-dir key
    /// is; a config-dir key of the same name replaces it.
    #[test]
    fn a_template_that_is_not_utf8_says_so_where_it_is_used() {
        let template = |bytes: &[u8]| Template {
            bytes: bytes.to_vec(),
            origin: "role dir/a.conf".into(),
        };
        let templates = [
            ("a.conf".to_string(), template(b"\xff\xfe")),
            ("unused".to_string(), template(b"\xff")),
        ];
        let spec = "description = 'x'\nfiles = ['a.conf']\n[[rules]]\nrole = 'a'\n";
        let role = Role::new("t".into(), spec, templates.into()).unwrap();
        let loaded = Templates::load(&role, None).unwrap();
        let err = loaded.check_files(role.all_files(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template `a.conf` cannot be used: role dir/a.conf is not UTF-8 text"
        );
        let keys: Keys = [("a.conf".to_string(), b"a".to_vec())].into();
        let loaded = Templates::load(&role, Some((Path::new("/cm"), &keys))).unwrap();
        loaded.check_files(role.all_files(), None).unwrap();
    }
}
