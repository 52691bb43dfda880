//! Durations as flags give them (`300`, `90s`, `5m`, `1.5s`, `1m30s`) and as messages show them.

use std::time::Duration;

/// The longest duration a flag may give: a typo guard far beyond any real wait.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// `300` (seconds), `300s`, `5m`, `1.5s`, `250ms`, `1h`, `1m30s`. The error says what is wrong,
/// for a message that starts with the flag and its value.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    const UNITS: &str = "use a number with ms, s, m or h, like 300s, 5m or 1.5s";
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    if text.is_empty() {
        return Err(format!("is empty; {UNITS}"));
    }
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest.find(|c| !is_number(c)).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("is not a duration; {UNITS}"))?;
        let split = tail.find(is_number).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(split);
        let scale = match unit {
            // A bare number is seconds, but only on its own: `1m30` is a mistake.
            "" if rest.len() == text.len() => 1.0,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("is not a duration; {UNITS}")),
        };
        seconds += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| "is longer than a year".to_string())
}

/// `300ms`, `2.5s`, `45s`, `5m`, `1m30s`, `2h`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        return if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let s = (ms + 500) / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let ms = Duration::from_millis;
        for (text, d) in [
            ("0", ms(0)),
            ("300", ms(300_000)),
            ("300s", ms(300_000)),
            ("5m", ms(300_000)),
            ("1.5s", ms(1500)),
            ("250ms", ms(250)),
            ("1h", ms(3_600_000)),
            ("1m30s", ms(90_000)),
            ("0.5", ms(500)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
        for text in [
            "", "s", "5x", "1m30", "-1", "1e3", "inf", "1.2.3s", " 5s", "5 s", "9999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn durations_show_short() {
        let ms = Duration::from_millis;
        for (d, text) in [
            (ms(0), "0ms"),
            (ms(250), "250ms"),
            (ms(1000), "1s"),
            (ms(1540), "1.5s"),
            (ms(59_990), "60s"),
            (ms(300_000), "5m"),
            (ms(90_000), "1m30s"),
            (ms(7_200_000), "2h"),
            (ms(3_690_000), "1h1m30s"),
        ] {
            assert_eq!(show(d), text, "{d:?}");
        }
    }
}
