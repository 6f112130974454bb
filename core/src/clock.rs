//! The wall clock, read one way everywhere: Unix seconds for comparisons and stored state,
//! RFC 3339 text for documents people read.

/// Seconds since the Unix epoch (0 for a clock set before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Now in RFC 3339, UTC, with the clock's fraction of a second (status documents, events).
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

/// Now in RFC 3339, UTC, to the whole second (file headers people compare by eye).
pub fn now_rfc3339_seconds() -> String {
    let now = time::OffsetDateTime::now_utc();
    format_rfc3339(now.replace_nanosecond(0).unwrap_or(now))
}

fn format_rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of a UTC time cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_readings_agree() {
        let before = unix_now();
        let text = now_rfc3339_seconds();
        let parsed =
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .expect("parses");
        assert!((parsed.unix_timestamp() - before).abs() <= 1, "{text}");
        assert!(!text.contains('.'), "{text}");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
