//! The two objects rolecall reads, with only the fields it uses: an apps/v1 StatefulSet's
//! `spec.replicas`, `spec.ordinals.start` and `spec.serviceName`, and a v1 Node's labels. Every
//! other field the API server sends is ignored; a missing `spec` or `metadata` is an error.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSet {
    #[serde(default)]
    pub kind: String,
    pub spec: StatefulSetSpec,
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
