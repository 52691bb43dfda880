//! What rolecall prints and the small files it writes besides the templates: shell `export`
//! lines, single fields, the plan table, the peers file and the summary line.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::model::{Cluster, Member, View};
use crate::write::Change;

/// Writes one line to stderr. A full or closed stderr loses the line, never the outcome: the
/// exit code is what a caller goes by.
pub fn say(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(line.as_bytes())
        .and_then(|()| stderr.write_all(b"\n"));
}

/// Named values of `rolecall env` / `rolecall get`, in output order.
pub type Fields = Vec<(String, String)>;

/// A view's fields, flattened for the shell: the set's pods as their comma-separated addresses,
/// the leader as its FQDN, absent values empty, the topology as `topology.zone` and
/// `topology.region` (only when a source for it was given), each var as `vars.KEY`. Fields the
/// view lacks (the set's, while its size is unknown) are left out.
pub fn fields(view: &View) -> Fields {
    let serde_json::Value::Object(map) = serde_json::to_value(view).unwrap_or_default() else {
        return Fields::new();
    };
    let mut fields = Fields::new();
    for (name, value) in map {
        let text = match value {
            // Vars follow, typed as the role declares them (a float var `1.0` prints `1`).
            _ if name == "vars" => continue,
            Value::Object(topology) if name == "topology" => {
                if view.topology.known {
                    for (key, value) in topology {
                        fields.push((format!("topology.{key}"), text_of(&value)));
                    }
                }
                continue;
            }
            Value::Array(peers) => peers
                .iter()
                .map(|p| text_of(&p["address"]))
                .collect::<Vec<_>>()
                .join(","),
            Value::Object(peer) => text_of(&peer["fqdn"]),
            scalar => text_of(&scalar),
        };
        fields.push((name, text));
    }
    fields.extend(
        view.vars
            .iter()
            .map(|(k, v)| (format!("vars.{k}"), v.to_string())),
    );
    fields
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The environment variable a field is exported as: `ROLECALL_SERVER_ID`, `ROLECALL_VAR_KEY`,
/// `ROLECALL_TOPOLOGY_ZONE`.
pub fn env_name(field: &str) -> String {
    match field.strip_prefix("vars.") {
        Some(var) => format!("ROLECALL_VAR_{}", var.to_ascii_uppercase()),
        None => format!("ROLECALL_{}", field.to_ascii_uppercase().replace('.', "_")),
    }
}

/// `export NAME='value'` lines, quoted so that `eval` runs none of a value.
pub fn shell_env(fields: &Fields) -> String {
    let mut out = String::new();
    for (field, value) in fields {
        // Values never hold NUL (arguments and env cannot); anything else is quoted.
        let quoted = shlex::try_quote(value)
            .map(|q| q.into_owned())
            .unwrap_or_else(|_| "''".into());
        let _ = writeln!(out, "export {}={quoted}", env_name(field));
    }
    out
}

/// The peers file: one `host:port` per line, in ordinal order.
pub fn peers_file(cluster: &Cluster) -> String {
    cluster
        .members
        .iter()
        .map(|m| format!("{}\n", m.address))
        .collect()
}

/// One pod in `plan --format json`.
#[derive(Serialize)]
struct PlanPod<'a> {
    #[serde(flatten)]
    member: &'a Member,
    is_leader: bool,
    files: Vec<&'a str>,
}

/// `plan --format json`.
#[derive(Serialize)]
struct Plan<'a> {
    role: &'a str,
    name: &'a str,
    service: &'a str,
    namespace: &'a str,
    cluster_domain: &'a str,
    start_ordinal: u32,
    replicas: u32,
    leader: Option<&'a str>,
    warnings: &'a [String],
    pods: Vec<PlanPod<'a>>,
}

fn files_of<'a>(cluster: &'a Cluster, member: &Member) -> Vec<&'a str> {
    cluster.model.files(member).map(|f| f.name()).collect()
}

pub fn plan_json(cluster: &Cluster) -> String {
    let placement = &cluster.model.placement;
    let plan = Plan {
        role: &cluster.model.role().name,
        name: &cluster.model.set.name,
        service: &placement.service,
        namespace: &placement.namespace,
        cluster_domain: &placement.cluster_domain,
        start_ordinal: cluster.model.start_ordinal,
        replicas: cluster.replicas,
        leader: cluster.leader().map(|l| l.hostname.as_str()),
        warnings: &cluster.warnings,
        pods: cluster
            .members
            .iter()
            .map(|m| PlanPod {
                member: m,
                is_leader: cluster.leader() == Some(m),
                files: files_of(cluster, m),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&plan).unwrap_or_default();
    text.push('\n');
    text
}

/// `plan`: one aligned row per pod.
pub fn plan_table(cluster: &Cluster) -> String {
    let header = ["POD", "ORDINAL", "ID", "ROLE", "FQDN", "FILES"].map(String::from);
    let rows: Vec<[String; 6]> = cluster
        .members
        .iter()
        .map(|m| {
            let role = if cluster.leader() == Some(m) {
                format!("{}*", m.role)
            } else {
                m.role.clone()
            };
            [
                m.hostname.clone(),
                m.ordinal.to_string(),
                m.server_id.to_string(),
                role,
                m.fqdn.clone(),
                files_of(cluster, m).join(","),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("(* = leader)\n");
    out
}

/// The line `render` prints before its summary when the set's size is unknown: what it left
/// out, and why.
pub fn without_set_size(out: &std::path::Path) -> String {
    let mut line = "rolecall: the set's size is unknown (no --replicas, no --from-api) and no \
        template needs it: no peers file, and rolecall.env without ROLECALL_REPLICAS, PEERS, \
        LEADER and LEADER_ADDRESS"
        .to_string();
    if out.join("peers").exists() {
        line.push_str(&format!(
            "; {} is left from an earlier render",
            out.join("peers").display()
        ));
    }
    line
}

/// The one line `render` prints on stderr.
pub fn summary(me: &Member, changes: &[(String, Change)], dry_run: bool) -> String {
    let list = |want: &[Change]| {
        changes
            .iter()
            .filter(|(_, c)| want.contains(c))
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let changed = list(&[Change::Created, Change::Updated]);
    let unchanged = list(&[Change::Unchanged]);
    let verb = if dry_run { "would write" } else { "wrote" };
    let mut line = format!(
        "rolecall: {} -> ordinal {}, server-id {}, role {}",
        me.hostname, me.ordinal, me.server_id, me.role
    );
    match (changed.is_empty(), unchanged.is_empty()) {
        (false, true) => line.push_str(&format!("; {verb} {changed}")),
        (false, false) => line.push_str(&format!("; {verb} {changed}; unchanged {unchanged}")),
        (true, _) => line.push_str(&format!("; all unchanged ({unchanged})")),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(env_name("server_id"), "ROLECALL_SERVER_ID");
        assert_eq!(env_name("vars.group_id"), "ROLECALL_VAR_GROUP_ID");
        assert_eq!(env_name("topology.zone"), "ROLECALL_TOPOLOGY_ZONE");
    }

    #[test]
    fn hostile_values_are_quoted() {
        let fields = vec![(
            "vars.x".to_string(),
            "$(touch /tmp/pwned) `id` 'q' \"d\"\nnext".to_string(),
        )];
        let text = shell_env(&fields);
        assert!(text.starts_with("export ROLECALL_VAR_X='"), "{text}");
    }
}
