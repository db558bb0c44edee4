//! The clock: now as postroom stores it (Unix milliseconds), and that instant as people and
//! JSON read it (RFC 3339). One module so that the store, the status and the rules share it
//! without importing one another.

/// Now, as stored: Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix milliseconds → RFC 3339 for people and JSON.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
