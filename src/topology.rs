//! Where this pod runs: the zone and region of its node, from the node's well-known labels
//! `topology.kubernetes.io/zone` and `topology.kubernetes.io/region`, read from the Node through
//! the API or from a downward-API labels file. Every value is checked as a Kubernetes label
//! value before a template sees it, so it is data in any format a role writes. Pure but for
//! reading a labels file.

use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use serde::Serialize;

use crate::names::is_label_value;

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// The fields `get` and `env` show when a topology source is given.
pub const TOPOLOGY_FIELDS: [&str; 2] = ["topology.zone", "topology.region"];

/// The pod's zone and region as templates see them (`topology.zone`, `topology.region`): empty
/// when unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub zone: String,
    pub region: String,
    /// A source was given (a labels file, or the node through the API). Only then do `env`,
    /// `get` and `rolecall.env` carry the two fields, empty where the node has no such label;
    /// without one they print what they printed before topology existed.
    #[serde(skip)]
    pub known: bool,
}

impl Topology {
    /// The topology from a set of labels, looked up with `label`; `origin` names where they came
    /// from, for the error when a value is not a label value.
    pub fn from_labels<'a>(
        label: impl Fn(&str) -> Option<&'a str>,
        origin: &str,
    ) -> anyhow::Result<Topology> {
        let value = |key: &str| -> anyhow::Result<String> {
            let value = label(key).unwrap_or_default();
            ensure!(
                is_label_value(value),
                "{origin}: label {key} is `{}`, which is no Kubernetes label value (at most 63 \
                 letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit)",
                value.escape_debug()
            );
            Ok(value.to_string())
        };
        Ok(Topology {
            zone: value(ZONE_LABEL)?,
            region: value(REGION_LABEL)?,
            known: true,
        })
    }

    /// The topology from the labels file at `path` (see `from_labels_file`).
    pub fn read_labels_file(path: &Path) -> anyhow::Result<Topology> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the labels file {}", path.display()))?;
        Topology::from_labels_file(&text, &path.display().to_string())
    }

    /// The topology from a downward-API labels file (a `downwardAPI` volume item with
    /// `fieldRef: {fieldPath: metadata.labels}`): one `key="value"` line per label, as the
    /// kubelet writes them (Go's `%q` quoting; a label value never needs an escape). On
    /// Kubernetes 1.33 and later the PodTopologyLabelsAdmission feature copies the node's zone
    /// and region labels onto the pod. `origin` names the file in errors.
    pub fn from_labels_file(text: &str, origin: &str) -> anyhow::Result<Topology> {
        let mut found: Vec<(&str, &str)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let Some((key, quoted)) = line.split_once('=') else {
                bail!(
                    "{origin} line {}: `{}` is not `key=\"value\"`; give the file of a \
                     downwardAPI volume item with fieldRef metadata.labels",
                    number + 1,
                    line.escape_debug()
                );
            };
            if key != ZONE_LABEL && key != REGION_LABEL {
                continue;
            }
            let value = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .filter(|v| !v.contains(['"', '\\']));
            let Some(value) = value else {
                bail!(
                    "{origin} line {}: the value of {key} is `{}`, not a quoted label value",
                    number + 1,
                    quoted.escape_debug()
                );
            };
            found.push((key, value));
        }
        Topology::from_labels(
            |key| found.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v),
            origin,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A labels file as the kubelet writes it: keys sorted, `%q` values, no final newline.
    const KUBELET: &str = "app.kubernetes.io/name=\"kafka\"\napps.kubernetes.io/pod-index=\"2\"\n\
        controller-revision-hash=\"kafka-5d4c8b7f9\"\n\
        statefulset.kubernetes.io/pod-name=\"kafka-2\"\n\
        topology.kubernetes.io/region=\"europe-west1\"\n\
        topology.kubernetes.io/zone=\"europe-west1-b\"";

    #[test]
    fn a_kubelet_labels_file_gives_zone_and_region() {
        let topology = Topology::from_labels_file(KUBELET, "labels").unwrap();
        assert_eq!(topology.zone, "europe-west1-b");
        assert_eq!(topology.region, "europe-west1");
        assert!(topology.known);
    }

    #[test]
    fn missing_labels_are_empty_but_known() {
        let topology = Topology::from_labels_file("app=\"x\"\n", "labels").unwrap();
        assert_eq!(
            topology,
            Topology {
                known: true,
                ..Topology::default()
            }
        );
        assert!(!Topology::default().known);
    }

    #[test]
    fn values_that_are_no_label_values_are_refused() {
        for (line, why) in [
            (
                "topology.kubernetes.io/zone=\"a b\"",
                "no Kubernetes label value",
            ),
            (
                "topology.kubernetes.io/zone=\"a\\nb\"",
                "not a quoted label value",
            ),
            (
                "topology.kubernetes.io/zone=\"a\\\"b\"",
                "not a quoted label value",
            ),
            ("topology.kubernetes.io/zone=a", "not a quoted label value"),
            (
                "topology.kubernetes.io/region=\"-eu\"",
                "no Kubernetes label value",
            ),
            ("a token, not labels", "is not `key=\"value\"`"),
        ] {
            let err = Topology::from_labels_file(line, "/etc/podinfo/labels").unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("/etc/podinfo/labels"), "{text}");
            assert!(text.contains(why), "{line}: {text}");
        }
    }

    #[test]
    fn other_lines_are_not_checked() {
        let text = "note=\"a\\tb\"\ntopology.kubernetes.io/zone=\"z1\"\n";
        assert_eq!(Topology::from_labels_file(text, "f").unwrap().zone, "z1");
    }
}
