//! Small helpers between stored data and what a page shows or a form sends: times, ages,
//! optional form values, query strings and the "go back to" path after signing in.

use chrono::{DateTime, NaiveDate, Utc};

/// Unix ms → `2026-11-26 18:47 UTC`: what a person reads in a table.
pub fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Like [`time`], for an optional value (`—` when missing).
pub fn time_opt(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".into())
}

/// How long ago, in the largest unit that fits: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn age(ms: i64, now_ms: i64) -> String {
    let secs = now_ms.saturating_sub(ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A form or query value: trimmed, and `None` when empty.
pub fn opt(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Like [`opt`], lower-cased (addresses are stored lower-case).
pub fn opt_lower(value: &Option<String>) -> Option<String> {
    opt(value).map(|v| v.to_lowercase())
}

/// `YYYY-MM-DD` (a date input's value) → Unix ms at the start of that day, UTC; `end` gives
/// the start of the next day, so a range "from A to B" includes all of day B.
pub fn day_ms(value: &Option<String>, end: bool) -> Result<Option<i64>, String> {
    let Some(v) = opt(value) else {
        return Ok(None);
    };
    let day = NaiveDate::parse_from_str(&v, "%Y-%m-%d")
        .map_err(|_| format!("`{v}` is not a date like 2026-11-26"))?;
    let day = if end {
        day.succ_opt().unwrap_or(day)
    } else {
        day
    };
    Ok(day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis()))
}

/// A query string from pairs, leaving out empty values (`?a=1&b=x%20y`, or `""`).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    serde_urlencoded::to_string(kept)
        .map(|q| format!("?{q}"))
        .unwrap_or_default()
}

/// Where to go after signing in: only a path on this site (`/…`, not `//host` or `/\host`,
/// which browsers read as another site), made of plain URL characters; otherwise the queue.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 2000
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A request reference as it may appear in a URL we build (`HD-000042`): letters, digits,
/// `-` and `_`. Anything else is not a reference of ours.
pub fn is_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_unit_that_fits() {
        assert_eq!(age(0, 59_000), "59 s");
        assert_eq!(age(0, 600_000), "10 min");
        assert_eq!(age(0, 5 * 3_600_000), "5 h");
        assert_eq!(age(0, 3 * 86_400_000), "3 d");
        assert_eq!(age(10, 0), "0 s");
    }

    #[test]
    fn dates_cover_whole_days() {
        let from = day_ms(&Some("2026-11-26".into()), false).unwrap().unwrap();
        let to = day_ms(&Some("2026-11-26".into()), true).unwrap().unwrap();
        assert_eq!(to - from, 86_400_000);
        assert_eq!(day_ms(&Some(" ".into()), false), Ok(None));
        assert!(day_ms(&Some("26/11/2026".into()), false).is_err());
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/requests/HD-000001?x=1")),
            "/requests/HD-000001?x=1"
        );
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "/a\r\nSet-Cookie: x=1",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn query_strings_leave_out_empty_values() {
        assert_eq!(
            query(&[
                ("a", Some("x y".into())),
                ("b", None),
                ("c", Some(String::new()))
            ]),
            "?a=x+y"
        );
        assert_eq!(query(&[("b", None)]), "");
    }
}
