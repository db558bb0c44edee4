//! The `[queue]` section (issue 17): the helpdesk's working hours, UTC offset and holidays, a
//! target per request kind counted in that working time, and who is told when a waiting
//! request passes its target. The checked data, the file's raw form, the defaults and the
//! check; the arithmetic is `working_time.rs`, its use `deadlines.rs`. Imports only the
//! request kinds and the low key error and value readers.

use crate::config_value::{ConfigError, OneOrMany, key_err, looks_like_address, parse_duration};
use crate::request::RequestKind;
use crate::working_time::{WorkingHours, parse_day, parse_hours, parse_offset};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// How long a waiting request of each kind may wait, in working time, and who hears of it.
#[derive(Debug, Clone, Default)]
pub struct QueueConfig {
    pub hours: WorkingHours,
    /// Working milliseconds per kind; a kind without one has no target.
    pub targets: BTreeMap<RequestKind, i64>,
    /// A staff address told once when a request passes its target (`None`: nobody).
    pub notify: Option<String>,
}

impl QueueConfig {
    /// The working time a request of `kind` may wait.
    pub fn target_ms(&self, kind: RequestKind) -> Option<i64> {
        self.targets.get(&kind).copied()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    hours: Option<OneOrMany<String>>,
    timezone: Option<String>,
    holidays: Option<Vec<String>>,
    targets: Option<HashMap<String, String>>,
    notify: Option<String>,
}

pub(crate) fn check_queue(r: RawQueue) -> Result<QueueConfig, ConfigError> {
    let days = match r.hours {
        Some(h) => parse_hours(&h.into_vec()).map_err(|e| key_err("queue.hours", e))?,
        None => parse_hours(&["Mon-Fri 09:00-17:00".to_owned()])
            .map_err(|e| key_err("queue.hours", e))?,
    };
    let offset = match r.timezone {
        Some(t) => parse_offset(&t).map_err(|e| key_err("queue.timezone", e))?,
        None => 0,
    };
    let holidays = r
        .holidays
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, d)| parse_day(d).map_err(|e| key_err(&format!("queue.holidays[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let hours = WorkingHours::new(days, offset, holidays);
    let mut targets = BTreeMap::new();
    let mut given: Vec<(String, String)> = r.targets.unwrap_or_default().into_iter().collect();
    given.sort();
    for (name, value) in given {
        let key = format!("queue.targets.{name}");
        let kind = name
            .parse::<RequestKind>()
            .map_err(|_| key_err(&key, format!("`{name}` is not a request kind")))?;
        let ms = working_span(&value, hours.day_minutes()).map_err(|e| key_err(&key, e))?;
        targets.insert(kind, ms);
    }
    let notify = match r.notify.map(|n| n.trim().to_owned()) {
        Some(n) if !looks_like_address(&n) => {
            return Err(key_err("queue.notify", format!("`{n}` is not an address")));
        }
        n => n,
    };
    Ok(QueueConfig {
        hours,
        targets,
        notify,
    })
}

/// A target: `"1d"`, `"2 days"` (working days, each the longest working day) or a duration of
/// working time (`"1h"`, `"30m"`, `"1h 30m"`), in milliseconds.
fn working_span(value: &str, day_minutes: i64) -> Result<i64, String> {
    let v = value.trim();
    let days = ["days", "day", "d"]
        .iter()
        .find_map(|unit| v.strip_suffix(unit))
        .and_then(|n| n.trim().parse::<i64>().ok());
    let ms = match days {
        Some(n) => n.saturating_mul(day_minutes).saturating_mul(60_000),
        None => parse_duration(v)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .map_err(|e| format!("{e} (or working days: \"1d\")"))?,
    };
    if ms <= 0 {
        return Err(format!("`{value}`: a target must be more than nothing"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str) -> Result<QueueConfig, String> {
        let raw: RawQueue = toml::from_str(toml).map_err(|e| e.to_string())?;
        check_queue(raw).map_err(|e| e.to_string())
    }

    #[test]
    fn targets_are_working_time_per_kind() {
        let q = check(
            "hours = \"Mon-Fri 08:00-18:00\"\ntimezone = \"+01:00\"\nholidays = [\"2026-12-25\"]\nnotify = \"leads@helpdesk.example\"\n[targets]\npassword_reset = \"1h\"\nnew_account = \"1d\"\nunknown = \"2 days\"\n",
        )
        .unwrap();
        assert_eq!(q.target_ms(RequestKind::PasswordReset), Some(3_600_000));
        // One working day is the 10 hours of the day.
        assert_eq!(q.target_ms(RequestKind::NewAccount), Some(36_000_000));
        assert_eq!(q.target_ms(RequestKind::Unknown), Some(72_000_000));
        assert_eq!(q.target_ms(RequestKind::Leaver), None);
        assert_eq!(q.notify.as_deref(), Some("leads@helpdesk.example"));
        // No section: no targets, Monday to Friday 09:00-17:00 UTC.
        let q = check("").unwrap();
        assert!(q.targets.is_empty() && q.notify.is_none());
        assert_eq!(q.hours.day_minutes(), 480);
    }

    #[test]
    fn errors_name_the_key() {
        for (toml, key) in [
            ("hours = \"Mon-Fri 8-18\"", "`queue.hours`"),
            (
                "hours = [\"Mon-Fri 08:00-18:00\", \"Mon 09:00-10:00\"]",
                "`queue.hours`",
            ),
            ("timezone = \"Europe/London\"", "`queue.timezone`"),
            (
                "holidays = [\"2026-12-25\", \"Boxing Day\"]",
                "`queue.holidays[1]`",
            ),
            (
                "[targets]\npassword_rest = \"1h\"",
                "`queue.targets.password_rest`",
            ),
            ("[targets]\nunlock = \"soon\"", "`queue.targets.unlock`"),
            ("[targets]\nunlock = \"0d\"", "`queue.targets.unlock`"),
            ("notify = \"the team\"", "`queue.notify`"),
        ] {
            let e = check(toml).unwrap_err();
            assert!(e.contains(key), "{toml}: {e}");
        }
        assert!(check("colour = \"red\"").is_err());
    }
}
