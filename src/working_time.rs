//! Working time: the helpdesk's opening hours, its UTC offset and its holidays, and the two
//! sums the queue's targets need (issue 17) — how much working time lies between two instants
//! ([`WorkingHours::worked_ms`]) and when a span of working time that starts at an instant
//! ends ([`WorkingHours::add_ms`]). Pure: instants are Unix milliseconds, days are counted in
//! the helpdesk's local time (the instant plus the offset).
//!
//! The readers of the config's text (`hours`, `timezone`, a holiday) are here too, so that
//! the section's check (`queue_config.rs`) only names the key of a value that does not read.

use chrono::{Datelike, NaiveDate};
use std::collections::BTreeSet;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
/// A sum never looks further than this many days ahead: a calendar with no working time
/// left (every day a holiday) has no end rather than a loop without one.
const MAX_DAYS: i64 = 3 * 366;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// When the helpdesk works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    /// For each weekday, Monday first: the working minutes of the local day, `[start, end)`.
    days: [Option<(i64, i64)>; 7],
    /// Local time minus UTC, in minutes.
    offset_minutes: i64,
    /// Local days off, as days since 1970-01-01.
    holidays: BTreeSet<i64>,
}

impl Default for WorkingHours {
    /// Monday to Friday, 09:00 to 17:00 UTC, no holidays.
    fn default() -> Self {
        let day = Some((9 * 60, 17 * 60));
        WorkingHours {
            days: [day, day, day, day, day, None, None],
            offset_minutes: 0,
            holidays: BTreeSet::new(),
        }
    }
}

impl WorkingHours {
    /// `days` from [`parse_hours`], `offset_minutes` from [`parse_offset`], holidays from
    /// [`parse_day`].
    pub fn new(
        days: [Option<(i64, i64)>; 7],
        offset_minutes: i64,
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> WorkingHours {
        WorkingHours {
            days,
            offset_minutes,
            holidays: holidays.into_iter().map(day_number).collect(),
        }
    }

    /// The longest working day, in minutes: what "1 working day" of a target means.
    pub fn day_minutes(&self) -> i64 {
        self.days
            .iter()
            .flatten()
            .map(|(s, e)| e - s)
            .max()
            .unwrap_or(0)
    }

    /// The working window of local day `day` (days since 1970-01-01), as local ms.
    fn window(&self, day: i64) -> Option<(i64, i64)> {
        if self.holidays.contains(&day) {
            return None;
        }
        let (start, end) = self.hours_of(day)?;
        let base = day * DAY_MS;
        Some((base + start * MINUTE_MS, base + end * MINUTE_MS))
    }

    /// The opening hours of `day`'s weekday, holiday or not (minutes).
    fn hours_of(&self, day: i64) -> Option<(i64, i64)> {
        let weekday = usize::try_from((day + 3).rem_euclid(7)).ok()?;
        *self.days.get(weekday)?
    }

    /// Working ms of a whole `day` were it not a holiday.
    fn open_ms(&self, day: i64) -> i64 {
        self.hours_of(day).map_or(0, |(s, e)| (e - s) * MINUTE_MS)
    }

    fn local(&self, utc_ms: i64) -> i64 {
        utc_ms.saturating_add(self.offset_minutes * MINUTE_MS)
    }

    /// Working milliseconds in `[from, to)` (0 when `to` is not after `from`). The first and
    /// last days are counted by their windows; the whole days between by whole weeks, the
    /// days left over and the holidays among them, so a request a year old costs what one an
    /// hour old does.
    pub fn worked_ms(&self, from_ms: i64, to_ms: i64) -> i64 {
        if to_ms <= from_ms {
            return 0;
        }
        let (from, to) = (self.local(from_ms), self.local(to_ms));
        let part = |d: i64| {
            self.window(d)
                .map_or(0, |(s, e)| (e.min(to) - s.max(from)).max(0))
        };
        let (first, last) = (from.div_euclid(DAY_MS), to.div_euclid(DAY_MS));
        if last - first < 2 {
            return (first..=last).map(part).sum();
        }
        let (a, b) = (first + 1, last - 1);
        let weeks = (b - a + 1) / 7;
        let week_ms: i64 = (0..7).map(|d| self.open_ms(d)).sum();
        let rest: i64 = (a + weeks * 7..=b).map(|d| self.open_ms(d)).sum();
        let off: i64 = self.holidays.range(a..=b).map(|d| self.open_ms(*d)).sum();
        part(first) + part(last) + weeks * week_ms + rest - off
    }

    /// The instant at which `work_ms` of working time, counted from `from_ms`, has passed;
    /// `None` when the calendar has no such time within three years. A request arriving out
    /// of hours starts counting when the next working window opens.
    pub fn add_ms(&self, from_ms: i64, work_ms: i64) -> Option<i64> {
        let from = self.local(from_ms);
        let mut left = work_ms.max(0);
        let first = from.div_euclid(DAY_MS);
        for d in first..=first + MAX_DAYS {
            let Some((s, e)) = self.window(d) else {
                continue;
            };
            let start = s.max(from);
            if start >= e {
                continue;
            }
            if left <= e - start {
                return Some(start + left - self.offset_minutes * MINUTE_MS);
            }
            left -= e - start;
        }
        None
    }
}

fn day_number(date: NaiveDate) -> i64 {
    // 719_163: days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
    i64::from(date.num_days_from_ce()) - 719_163
}

/// A holiday: `2026-12-25`.
pub fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date like \"2026-12-25\""))
}

/// `UTC`, `Z`, `+01:00`, `-05:30`, `UTC+1`: local time minus UTC, in minutes.
pub fn parse_offset(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{s}` is not a UTC offset like \"+01:00\" or \"UTC\" (named zones such as Europe/London are not read: give the offset)"
        )
    };
    let t = s.trim();
    let t = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    if t.is_empty() || t == "Z" {
        return Ok(0);
    }
    let (sign, rest) = match t.split_at_checked(1) {
        Some(("+", r)) => (1, r),
        Some(("-", r)) => (-1, r),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// One line of opening hours: `Mon-Fri 08:00-18:00`, `Sat 09:00-12:00`, `Mon,Wed 10:00-16:00`.
/// Several lines make the week; a day named twice is refused.
pub fn parse_hours(lines: &[String]) -> Result<[Option<(i64, i64)>; 7], String> {
    let mut days = [None; 7];
    for line in lines {
        let (names, times) = line
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("`{line}` is not like \"Mon-Fri 08:00-18:00\""))?;
        let (start, end) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("`{times}` is not a time range like \"08:00-18:00\""))?;
        let (start, end) = (clock(start)?, clock(end)?);
        if start >= end {
            return Err(format!("`{times}`: the day must end after it starts"));
        }
        for d in weekdays(names)? {
            let slot = days
                .get_mut(d)
                .ok_or_else(|| format!("`{names}` is not a day"))?;
            if slot.is_some() {
                return Err(format!("`{line}`: {} is given twice", DAY_NAMES[d % 7]));
            }
            *slot = Some((start, end));
        }
    }
    if days.iter().all(Option::is_none) {
        return Err("no working day is given".into());
    }
    Ok(days)
}

/// `08:00` → minutes after midnight; `24:00` is the end of the day.
fn clock(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a time like \"08:00\"");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if !(0..60).contains(&m) || !(0..=24).contains(&h) || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `Mon-Fri`, `Sat`, `Mon,Wed,Fri` → weekday indexes, Monday 0.
fn weekdays(s: &str) -> Result<Vec<usize>, String> {
    let index = |name: &str| {
        let n = name.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|d| n.get(..3) == Some(*d) && d.len() <= n.len())
            .ok_or_else(|| format!("`{name}` is not a day (Mon … Sun)"))
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                if a > b {
                    return Err(format!("`{part}`: a range runs from Monday towards Sunday"));
                }
                out.extend(a..=b);
            }
            None => out.push(index(part)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a UTC date and time.
    fn at(date: &str, time: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    const H: i64 = 3_600_000;

    fn office() -> WorkingHours {
        // 2026-12-07 is a Monday.
        WorkingHours::new(
            parse_hours(&["Mon-Fri 08:00-18:00".into()]).unwrap(),
            0,
            [parse_day("2026-12-25").unwrap()],
        )
    }

    #[test]
    fn within_one_working_day() {
        let w = office();
        assert_eq!(
            w.worked_ms(at("2026-12-07", "09:00"), at("2026-12-07", "10:30")),
            H + H / 2
        );
        assert_eq!(
            w.add_ms(at("2026-12-07", "09:00"), H),
            Some(at("2026-12-07", "10:00"))
        );
    }

    #[test]
    fn across_days_the_night_does_not_count() {
        let w = office();
        // 17:00 Monday + 2 working hours = 09:00 Tuesday.
        assert_eq!(
            w.add_ms(at("2026-12-07", "17:00"), 2 * H),
            Some(at("2026-12-08", "09:00"))
        );
        assert_eq!(
            w.worked_ms(at("2026-12-07", "17:00"), at("2026-12-08", "09:00")),
            2 * H
        );
        // One working day (10 h) from Monday 10:00 is Tuesday 10:00.
        assert_eq!(w.day_minutes(), 600);
        assert_eq!(
            w.add_ms(at("2026-12-07", "10:00"), 10 * H),
            Some(at("2026-12-08", "10:00"))
        );
    }

    #[test]
    fn weekends_do_not_count() {
        let w = office();
        // Friday 17:30 + 1 h = Monday 08:30.
        assert_eq!(
            w.add_ms(at("2026-12-11", "17:30"), H),
            Some(at("2026-12-14", "08:30"))
        );
        assert_eq!(
            w.worked_ms(at("2026-12-11", "17:30"), at("2026-12-14", "08:30")),
            H
        );
        // A whole weekend is no working time.
        assert_eq!(
            w.worked_ms(at("2026-12-12", "00:00"), at("2026-12-14", "00:00")),
            0
        );
    }

    #[test]
    fn holidays_do_not_count() {
        let w = office();
        // Thursday 24th 17:00 + 2 h: Friday 25th is a holiday, so Monday 28th 09:00.
        assert_eq!(
            w.add_ms(at("2026-12-24", "17:00"), 2 * H),
            Some(at("2026-12-28", "09:00"))
        );
        assert_eq!(
            w.worked_ms(at("2026-12-25", "08:00"), at("2026-12-25", "18:00")),
            0
        );
    }

    #[test]
    fn a_request_arriving_out_of_hours_waits_for_the_opening() {
        let w = office();
        // Saturday 11:00 + 1 h = Monday 09:00; before the opening the clock has not started.
        assert_eq!(
            w.add_ms(at("2026-12-12", "11:00"), H),
            Some(at("2026-12-14", "09:00"))
        );
        assert_eq!(
            w.add_ms(at("2026-12-08", "06:00"), H),
            Some(at("2026-12-08", "09:00"))
        );
        assert_eq!(
            w.worked_ms(at("2026-12-08", "06:00"), at("2026-12-08", "07:59")),
            0
        );
        // Arrived at 20:00: at 08:30 the next morning, 30 minutes have passed.
        assert_eq!(
            w.worked_ms(at("2026-12-08", "20:00"), at("2026-12-09", "08:30")),
            H / 2
        );
    }

    #[test]
    fn the_offset_moves_the_day() {
        // 08:00-18:00 at UTC+2 is 06:00-16:00 UTC.
        let w = WorkingHours::new(
            parse_hours(&["Mon-Fri 08:00-18:00".into()]).unwrap(),
            parse_offset("+02:00").unwrap(),
            [],
        );
        assert_eq!(
            w.add_ms(at("2026-12-07", "05:00"), H),
            Some(at("2026-12-07", "07:00"))
        );
        assert_eq!(
            w.worked_ms(at("2026-12-07", "15:00"), at("2026-12-07", "17:00")),
            H
        );
    }

    #[test]
    fn no_working_time_has_no_end() {
        let w = WorkingHours::new(
            parse_hours(&["Sat 09:00-10:00".into()]).unwrap(),
            0,
            (0..1200)
                .map(|i| NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(i)),
        );
        assert_eq!(w.add_ms(at("2026-01-01", "00:00"), H), None);
    }

    /// The sum by whole weeks is the sum day by day.
    #[test]
    fn long_spans_count_like_day_by_day() {
        let w = WorkingHours::new(
            parse_hours(&["Mon-Thu 08:00-18:00".into(), "Sat 09:30-12:00".into()]).unwrap(),
            parse_offset("-03:30").unwrap(),
            ["2026-12-25", "2027-01-01", "2027-04-03", "2026-12-26"]
                .iter()
                .map(|d| parse_day(d).unwrap()),
        );
        let naive = |from: i64, to: i64| -> i64 {
            let (f, t) = (w.local(from), w.local(to));
            (f.div_euclid(DAY_MS)..=t.div_euclid(DAY_MS))
                .filter_map(|d| w.window(d))
                .map(|(s, e)| (e.min(t) - s.max(f)).max(0))
                .sum()
        };
        let start = at("2026-12-01", "13:17");
        for span_h in [1, 30, 100, 24 * 9 + 5, 24 * 30, 24 * 200 + 7, 24 * 400 + 13] {
            for shift_h in [0, 3, 11, 50] {
                let from = start + shift_h * H;
                let to = from + span_h * H;
                assert_eq!(
                    w.worked_ms(from, to),
                    naive(from, to),
                    "{span_h} h from +{shift_h} h"
                );
            }
        }
    }

    #[test]
    fn the_texts_read_or_say_why_not() {
        let days = parse_hours(&["Mon-Thu 08:00-18:00".into(), "Fri 08:00-16:00".into()]).unwrap();
        assert_eq!(days[0], Some((480, 1080)));
        assert_eq!(days[4], Some((480, 960)));
        assert_eq!(days[5], None);
        assert_eq!(
            parse_hours(&["Mon,Wed 10:00-24:00".into()]).unwrap()[2],
            Some((600, 1440))
        );
        for bad in [
            "Mon-Fri",
            "Mon-Fri 08:00",
            "Mon-Fri 18:00-08:00",
            "Fri-Mon 08:00-18:00",
            "Funday 08:00-18:00",
            "Mon 8h-18h",
            "Mon 08:00-25:00",
        ] {
            assert!(parse_hours(&[bad.into()]).is_err(), "{bad}");
        }
        let twice = parse_hours(&["Mon-Fri 08:00-18:00".into(), "Fri 09:00-12:00".into()]);
        assert!(twice.unwrap_err().contains("fri is given twice"));
        assert_eq!(parse_offset("UTC").unwrap(), 0);
        assert_eq!(parse_offset("+01:00").unwrap(), 60);
        assert_eq!(parse_offset("-05:30").unwrap(), -330);
        assert_eq!(parse_offset("UTC+1").unwrap(), 60);
        assert!(parse_offset("Europe/London").is_err());
        assert!(parse_offset("+25:00").is_err());
        assert!(parse_day("25/12/2026").is_err());
    }
}
