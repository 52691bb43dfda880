//! The set as its StatefulSet describes it, checked, and merged under the flags: a flag or its
//! environment variable wins, and where it disagrees with the StatefulSet a warning names both.
//! Pure.

use anyhow::{bail, ensure};

use super::objects::StatefulSet;
use crate::names::{MAX_ORDINAL, MAX_REPLICAS, is_dns_label};

/// What rolecall takes from a StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetFacts {
    pub replicas: u32,
    pub start_ordinal: u32,
    /// `spec.serviceName`; `None` when empty or absent (then the set name, as without the API).
    pub service: Option<String>,
}

/// The set's values as the flags give them (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct SetFlags {
    pub replicas: Option<u32>,
    pub start_ordinal: Option<u32>,
    pub service: Option<String>,
}

impl SetFacts {
    /// The facts of StatefulSet `name`, refused when the set could hold no pod that rolecall
    /// can place.
    pub fn of(sts: &StatefulSet, name: &str) -> anyhow::Result<SetFacts> {
        let spec = &sts.spec;
        let replicas = spec.replicas.unwrap_or(1);
        if replicas < 1 {
            bail!(
                "StatefulSet `{name}` has spec.replicas {replicas}: none of its pods should be \
                 running; scale it up, or pass --replicas N"
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

    /// The flags over these facts, with a warning for each flag that disagrees; an error when
    /// the two together reach past the largest ordinal.
    pub fn under(&self, flags: &SetFlags, name: &str) -> anyhow::Result<(SetFacts, Vec<String>)> {
        let mut warnings = Vec::new();
        let mut pick = |flag: &str, given: Option<String>, api: String, field: &str| {
            if let Some(given) = given.filter(|g| *g != api) {
                warnings.push(format!(
                    "{flag} is {given} but StatefulSet `{name}` has {field} {api}; using {given}, \
                     as given"
                ));
            }
        };
        pick(
            "--replicas (ROLECALL_REPLICAS)",
            flags.replicas.map(|r| r.to_string()),
            self.replicas.to_string(),
            "spec.replicas",
        );
        pick(
            "--start-ordinal (ROLECALL_START_ORDINAL)",
            flags.start_ordinal.map(|s| s.to_string()),
            self.start_ordinal.to_string(),
            "spec.ordinals.start",
        );
        let api_service = self.service.clone().unwrap_or_else(|| name.to_string());
        pick(
            "--service (ROLECALL_SERVICE)",
            flags.service.clone(),
            api_service,
            "spec.serviceName",
        );
        let merged = SetFacts {
            replicas: flags.replicas.unwrap_or(self.replicas),
            start_ordinal: flags.start_ordinal.unwrap_or(self.start_ordinal),
            service: flags.service.clone().or_else(|| self.service.clone()),
        };
        let last = i64::from(merged.start_ordinal) + i64::from(merged.replicas) - 1;
        ensure!(
            last <= MAX_ORDINAL,
            "start ordinal {} with {} replicas (from the flags and StatefulSet `{name}`) reaches \
             ordinal {last}, beyond the largest Kubernetes ordinal {MAX_ORDINAL}",
            merged.start_ordinal,
            merged.replicas
        );
        Ok((merged, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(json: &str) -> StatefulSet {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn facts_default_as_the_api_does() {
        let facts = SetFacts::of(&sts(r#"{"spec": {}}"#), "web").unwrap();
        assert_eq!(
            facts,
            SetFacts {
                replicas: 1,
                start_ordinal: 0,
                service: None
            }
        );
        let facts = SetFacts::of(
            &sts(r#"{"spec": {"replicas": 5, "ordinals": {"start": 3}, "serviceName": "web-hs"}}"#),
            "web",
        )
        .unwrap();
        assert_eq!(facts.replicas, 5);
        assert_eq!(facts.start_ordinal, 3);
        assert_eq!(facts.service.as_deref(), Some("web-hs"));
    }

    #[test]
    fn sets_rolecall_cannot_place_are_refused() {
        for (spec, why) in [
            (r#"{"replicas": 0}"#, "spec.replicas 0"),
            (r#"{"replicas": -1}"#, "spec.replicas -1"),
            (r#"{"replicas": 10001}"#, "more than the 10000"),
            (r#"{"ordinals": {"start": -1}}"#, "spec.ordinals.start -1"),
            (
                r#"{"ordinals": {"start": 2147483648}}"#,
                "outside 0..=2147483647",
            ),
            (r#"{"serviceName": "Web Service"}"#, "not a DNS label"),
        ] {
            let err = SetFacts::of(&sts(&format!(r#"{{"spec": {spec}}}"#)), "web").unwrap_err();
            assert!(err.to_string().contains(why), "{spec}: {err}");
        }
    }

    #[test]
    fn flags_win_and_a_disagreement_names_both_values() {
        let api = SetFacts {
            replicas: 5,
            start_ordinal: 3,
            service: Some("web-hs".into()),
        };
        let (merged, warnings) = api.under(&SetFlags::default(), "web").unwrap();
        assert_eq!(merged, api);
        assert!(warnings.is_empty());
        let flags = SetFlags {
            replicas: Some(3),
            start_ordinal: Some(3),
            service: Some("web".into()),
        };
        let (merged, warnings) = api.under(&flags, "web").unwrap();
        assert_eq!((merged.replicas, merged.start_ordinal), (3, 3));
        assert_eq!(merged.service.as_deref(), Some("web"));
        assert_eq!(
            warnings,
            [
                "--replicas (ROLECALL_REPLICAS) is 3 but StatefulSet `web` has spec.replicas 5; \
                 using 3, as given",
                "--service (ROLECALL_SERVICE) is web but StatefulSet `web` has spec.serviceName \
                 web-hs; using web, as given"
            ]
        );
    }

    #[test]
    fn a_flag_equal_to_the_default_service_agrees_with_an_empty_service_name() {
        let api = SetFacts {
            replicas: 1,
            start_ordinal: 0,
            service: None,
        };
        let flags = SetFlags {
            service: Some("web".into()),
            ..SetFlags::default()
        };
        assert!(api.under(&flags, "web").unwrap().1.is_empty());
    }

    #[test]
    fn flags_and_api_together_stay_within_the_ordinals() {
        let api = SetFacts {
            replicas: 3,
            start_ordinal: 2147483646,
            service: None,
        };
        assert!(api.under(&SetFlags::default(), "web").is_err());
    }
}
