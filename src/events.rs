//! Operating the logging pipeline: `webscale publish` sends a test event to the stack's topic, `webscale logs`
//! prints what reached the stack's log groups. Both find what they act on the way every command does: the topic
//! through its kind's read (owned by the stack, never a topic that merely has the name), the log groups by the names
//! the spec gives them.

use std::time::Duration;

use serde::Serialize;

use crate::aws::{CallExt, Cloud};
use crate::spec::Stack;
use crate::spec::logging::{APP, Logging, PIPELINE};

/// What `publish` sent.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub topic_arn: String,
    pub message_id: String,
}

/// One event of a log group, as `logs` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    /// Milliseconds since the epoch, as CloudWatch Logs keeps them.
    pub timestamp: i64,
    pub log_group: String,
    pub log_stream: String,
    pub message: String,
    #[serde(skip)]
    pub id: String,
}

fn logging(stack: &Stack) -> Result<&Logging, crate::Error> {
    stack.logging.as_ref().ok_or_else(|| {
        crate::Error::Operate(format!(
            "stack {} has no [logging]: add one (see the reference stack, templates/webscale.toml) and apply it",
            stack.name
        ))
    })
}

/// The log group `group` names: `events` (the function's, the default) or `app` (the web tier's).
pub fn log_group(stack: &Stack, group: &str) -> Result<String, crate::Error> {
    logging(stack)?;
    match group {
        PIPELINE => Ok(Logging::function_log_group(&stack.name)),
        APP => Ok(Logging::app_log_group(&stack.name)),
        other => Err(crate::Error::Operate(format!(
            "--group {other:?}: use {PIPELINE:?} (the function's log group) or {APP:?} (the web tier's)"
        ))),
    }
}

/// Publishes `message` to the stack's topic, found through the topic kind's read.
pub async fn publish(
    cloud: &Cloud,
    stack: &Stack,
    message: &str,
    subject: Option<&str>,
) -> Result<Published, crate::Error> {
    logging(stack)?;
    let topic = crate::resources::kind("topic")
        .ok_or_else(|| crate::Error::Operate("this build of webscale manages no SNS topics".to_string()))?;
    let inventory = crate::plan::inventory::inventory(&[topic], cloud, stack).await?;
    let address = crate::resources::Address::new("topic", PIPELINE);
    let topic_arn = inventory
        .resources
        .iter()
        .find(|o| o.address == address && o.region == stack.region)
        .map(|o| o.id.clone())
        .ok_or_else(|| {
            crate::Error::Operate(format!("{address} does not exist in {}: run `webscale apply` first", stack.region))
        })?;
    let sns = &cloud.clients(&stack.region).map_err(crate::Error::Read)?.sns;
    let out = sns
        .publish()
        .topic_arn(&topic_arn)
        .message(message)
        .set_subject(subject.map(str::to_string))
        .send()
        .await
        .call("Publish")
        .map_err(crate::Error::Read)?;
    Ok(Published { topic_arn, message_id: out.message_id.unwrap_or_default() })
}

/// How far back `--since` reaches: `90s`, `10m`, `2h`, `1d`.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 30s, 10m, 2h or 1d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{text:?} is not a duration such as 30s, 10m, 2h or 1d (units: s, m, h, d)")),
    };
    Ok(Duration::from_secs(seconds))
}

/// A duration as `--since` takes it, for messages: the largest whole unit.
pub fn since_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s > 0 && s % 86400 == 0 => format!("{}d", s / 86400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Reads `group`'s events from `start_ms` on (one FilterLogEvents listing, every page), oldest first, each handed to
/// `sink` once; with `follow`, keeps polling every `poll` until `stop` resolves (Ctrl-C).
pub async fn logs(
    cloud: &Cloud,
    stack: &Stack,
    group: &str,
    start_ms: i64,
    follow: Option<Duration>,
    sink: &mut dyn FnMut(&LogEvent),
) -> Result<(), crate::Error> {
    let logs = &cloud.clients(&stack.region).map_err(crate::Error::Read)?.logs;
    let mut from = start_ms;
    // Events already printed at the newest timestamp: the next poll starts from that millisecond again (events
    // arrive late and out of order within it) and skips these.
    let mut seen: std::collections::HashSet<String> = Default::default();
    loop {
        let mut pages = logs.filter_log_events().log_group_name(group).start_time(from).into_paginator().send();
        let mut batch: Vec<LogEvent> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page.call("FilterLogEvents") {
                Ok(p) => p,
                Err(e) if e.is_not_found() => {
                    return Err(crate::Error::Operate(format!(
                        "the log group {group} does not exist in {}: run `webscale apply` first",
                        stack.region
                    )));
                }
                Err(e) => return Err(crate::Error::Read(e)),
            };
            for e in page.events.unwrap_or_default() {
                let timestamp = e.timestamp.unwrap_or_default();
                batch.push(LogEvent {
                    id: e.event_id.unwrap_or_else(|| format!("{timestamp}:{}", batch.len())),
                    timestamp,
                    log_group: group.to_string(),
                    log_stream: e.log_stream_name.unwrap_or_default(),
                    message: e.message.unwrap_or_default().trim_end_matches('\n').to_string(),
                });
            }
        }
        batch.sort_by_key(|e| e.timestamp);
        for e in batch {
            if seen.contains(&e.id) {
                continue;
            }
            if e.timestamp > from {
                from = e.timestamp;
                seen.clear();
            }
            seen.insert(e.id.clone());
            sink(&e);
        }
        let Some(poll) = follow else { return Ok(()) };
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_seconds_minutes_hours_and_days_and_says_what_is_valid() {
        assert_eq!(parse_since("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86400)));
        for bad in ["", "m", "10", "10w", "-5m", "1.5h"] {
            let e = parse_since(bad).unwrap_err();
            assert!(e.contains("30s, 10m, 2h or 1d"), "{bad}: {e}");
        }
    }
}
