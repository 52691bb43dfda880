//! The two objects rolecall reads, with only the fields it uses: an apps/v1 StatefulSet's
//! `spec.replicas`, `spec.ordinals.start` and `spec.serviceName`, and a v1 Node's labels. Every
//! other field the API server sends is ignored; a missing `spec` or `metadata` is an error.

use std::collections::BTreeMap;

use anyhow::{bail, ensure};
use serde::Deserialize;

use super::SetFacts;
use crate::names::{MAX_ORDINAL, MAX_REPLICAS, is_dns_label};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSet {
    #[serde(default)]
    pub kind: String,
    pub spec: StatefulSetSpec,
}

impl StatefulSet {
    /// The facts of StatefulSet `name`, refused when the set could hold no pod that rolecall
    /// can place.
    pub fn facts(&self, name: &str) -> anyhow::Result<SetFacts> {
        let spec = &self.spec;
        let replicas = spec.replicas.unwrap_or(1);
        // 0 is a set scaled to zero: a pause, which only `leave` takes (see `Inputs`).
        if replicas < 0 {
            bail!(
                "StatefulSet `{name}` has spec.replicas {replicas}, which no StatefulSet has; \
                 check the API server, or pass --replicas N"
            );
        }
        ensure!(
            replicas <= MAX_REPLICAS,
            "StatefulSet `{name}` has spec.replicas {replicas}, more than the {MAX_REPLICAS} pods \
             rolecall places"
        );
        let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
        ensure!(
            (0..=MAX_ORDINAL).contains(&start),
            "StatefulSet `{name}` has spec.ordinals.start {start}, outside 0..={MAX_ORDINAL}"
        );
        let service = spec.service_name.clone().filter(|s| !s.is_empty());
        if let Some(service) = &service {
            ensure!(
                is_dns_label(service),
                "StatefulSet `{name}` has spec.serviceName `{}`, which is not a DNS label",
                service.escape_debug()
            );
        }
        Ok(SetFacts {
            replicas: u32::try_from(replicas)?,
            start_ordinal: u32::try_from(start)?,
            service,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    /// Absent means 1 (the API server fills it in; a client may still see it left out).
    pub replicas: Option<i64>,
    pub ordinals: Option<Ordinals>,
    pub service_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Ordinals {
    /// Absent means 0.
    pub start: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub kind: String,
    pub metadata: Metadata,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(json: &str) -> StatefulSet {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn facts_default_as_the_api_does() {
        let facts = sts(r#"{"spec": {}}"#).facts("web").unwrap();
        assert_eq!(
            facts,
            SetFacts {
                replicas: 1,
                start_ordinal: 0,
                service: None
            }
        );
        let json =
            r#"{"spec": {"replicas": 5, "ordinals": {"start": 3}, "serviceName": "web-hs"}}"#;
        let facts = sts(json).facts("web").unwrap();
        assert_eq!(facts.replicas, 5);
        assert_eq!(facts.start_ordinal, 3);
        assert_eq!(facts.service.as_deref(), Some("web-hs"));
    }

    #[test]
    fn sets_rolecall_cannot_place_are_refused() {
        for (spec, why) in [
            (r#"{"replicas": -1}"#, "spec.replicas -1"),
            (r#"{"replicas": 10001}"#, "more than the 10000"),
            (r#"{"ordinals": {"start": -1}}"#, "spec.ordinals.start -1"),
            (
                r#"{"ordinals": {"start": 2147483648}}"#,
                "outside 0..=2147483647",
            ),
            (r#"{"serviceName": "Web Service"}"#, "not a DNS label"),
        ] {
            let err = sts(&format!(r#"{{"spec": {spec}}}"#))
                .facts("web")
                .unwrap_err();
            assert!(err.to_string().contains(why), "{spec}: {err}");
        }
    }

    /// A set scaled to 0 is read as it is: `leave` takes it for a pause, every other command
    /// refuses it (`Inputs`; tests/api.rs).
    #[test]
    fn a_set_scaled_to_zero_is_read_as_zero() {
        let facts = sts(r#"{"spec": {"replicas": 0}}"#).facts("web").unwrap();
        assert_eq!(facts.replicas, 0);
    }
}
