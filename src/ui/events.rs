//! `webscale publish` and `webscale logs`: what was sent, and each log event as it arrives.

use super::Ui;
use crate::events::{LogEvent, Published};

impl Ui {
    pub fn published(&self, p: &Published) {
        if self.json {
            self.out(&serde_json::to_string(p).unwrap_or_default());
        } else {
            self.out(&format!(
                "Published message {} to {}.\nIts log line appears in a few seconds: `webscale logs --follow`.",
                p.message_id, p.topic_arn
            ));
        }
    }

    /// One event: `TIME  MESSAGE` for a person (UTC, to the millisecond), one JSON object per line for a script.
    pub fn log_event(&self, e: &LogEvent) {
        if self.json {
            self.out(&serde_json::to_string(e).unwrap_or_default());
        } else {
            self.out(&format!("{}  {}", utc(e.timestamp), e.message));
        }
    }
}

/// `2026-11-26T08:00:00.000Z` from milliseconds since the epoch (civil-from-days, H. Hinnant's algorithm).
fn utc(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_utc_to_the_millisecond() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_680_000_000), "2026-11-26T08:00:00.000Z");
    }
}
