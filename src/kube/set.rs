//! The set as its StatefulSet describes it, checked, and merged under the flags: a flag or its
//! environment variable wins, and where it disagrees with the StatefulSet a warning names both.
//! Pure.

use anyhow::ensure;

use crate::names::MAX_ORDINAL;

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
