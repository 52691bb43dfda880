//! Fuzzes hostname parsing: `identity::split` and `identity::resolve` with any hostname, pod-index
//! label, start ordinal, set size and (short) ordinal regex. Besides "never panics", checks what
//! the README promises of a parsed hostname.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rolecall::identity::{self, Shape};
use rolecall::names::{self, MAX_ORDINAL, MAX_REPLICAS};

const DEFAULT_REGEX: &str = r"^(?P<name>.+)-(?P<ordinal>[0-9]+)$";

#[derive(Arbitrary, Debug)]
struct Input {
    hostname: String,
    /// `None`: the default regex.
    regex: Option<String>,
    pod_index: Option<u32>,
    start_ordinal: u32,
    replicas: Option<u32>,
}

fuzz_target!(|input: Input| {
    let regex = match &input.regex {
        None => identity::ordinal_regex(DEFAULT_REGEX).unwrap(),
        // Whatever the settings accept (a regex with an `ordinal` group); keep them short so each
        // run is fast.
        Some(re) if re.len() <= 64 => match identity::ordinal_regex(re) {
            Ok(re) => re,
            Err(_) => return,
        },
        Some(_) => return,
    };
    // What the settings stage lets through: start <= MAX_ORDINAL, 1 <= replicas <= MAX_REPLICAS,
    // and the last ordinal of the set within MAX_ORDINAL.
    let start_ordinal = input.start_ordinal % (MAX_ORDINAL as u32 + 1);
    let replicas = input
        .replicas
        .map(|r| r % MAX_REPLICAS as u32 + 1)
        .filter(|r| i64::from(start_ordinal) + i64::from(*r) - 1 <= MAX_ORDINAL);
    let shape = Shape {
        start_ordinal,
        replicas,
    };

    let split = identity::split(&input.hostname, &regex);
    if let Ok((set, ordinal)) = &split {
        assert!(i64::from(*ordinal) <= MAX_ORDINAL, "{input:?}");
        let pod = set.pod(*ordinal);
        assert!(names::is_dns_label(&pod), "{pod:?} from {input:?}");
        assert!(names::is_dns_label(&set.name), "{set:?} from {input:?}");
        // The pod name is the hostname's first label, never rebuilt.
        let short = input.hostname.split('.').next().unwrap();
        assert_eq!(short, pod, "{input:?}");
        if input.regex.is_none() {
            assert_eq!(pod, names::pod_name(&set.name, *ordinal), "{input:?}");
        }
    }
    match identity::resolve(&input.hostname, &regex, input.pod_index, &shape) {
        Ok(id) => {
            let (set, ordinal) = split.expect("resolve succeeded where split failed");
            assert_eq!((&id.set, id.ordinal), (&set, ordinal));
            assert_eq!(id.index, ordinal - start_ordinal);
            if let Some(label) = input.pod_index {
                assert_eq!(label, ordinal);
            }
            if let Some(replicas) = replicas {
                assert!(id.index < replicas, "{id:?} outside {replicas} replicas");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
