//! The stack lock: one `apply` or `destroy` of a stack at a time, with nothing the user sets up first.
//!
//! Two runs of one stack at once would both plan "create", and both create: with no state file, nothing else
//! stops them. The lock is an SSM parameter, `/webscale/<stack>/lock`, in the stack's home region, created with
//! `PutParameter` and `Overwrite=false`: Parameter Store creates it only if it is absent, atomically, so exactly one
//! of two racing runs gets it and the other is refused (`ParameterAlreadyExists`). Its value says who holds it
//! (host, pid, user, command, since when) and carries a random token; release deletes it only while the token is
//! ours, so a run whose lock was broken never deletes the next holder's. It carries the `webscale:stack` tag (the
//! stack owns it), set in the create call (tags are allowed there because Overwrite is false; AWS rejects Tags
//! only together with Overwrite=true). It is not a resource kind: plans never read it, so it never shows as drift
//! and destroy never plans it away.
//!
//! A run killed hard (SIGKILL, a lost machine) leaves the lock behind. When the holder ran on this host and its
//! process is gone, the refusal says the lock is stale; `webscale unlock` breaks it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;
use crate::ui::Ui;

/// The lock parameter's name. Nothing else of a stack lives under `/webscale/<stack>/`.
pub fn parameter_name(stack: &str) -> String {
    format!("/webscale/{stack}/lock")
}

/// Whether an SSM parameter name is a stack lock: for any future reader of SSM parameters, which must leave locks
/// alone (they are never resources of the stack).
pub fn is_lock_parameter(name: &str) -> bool {
    name.starts_with("/webscale/") && name.ends_with("/lock") && name.matches('/').count() == 3
}

/// Who holds a lock: the parameter's value, as JSON. Every field defaults, so a value written by hand (or by another
/// version) still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `apply` or `destroy`.
    pub command: String,
    /// RFC 3339, UTC.
    pub started: String,
    /// Random: tells our lock from a later holder's.
    pub token: String,
    /// When the holder's process started (clock ticks since boot, from /proc): a live process with that pid but
    /// another start time got the pid after the holder died (or the machine rebooted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_started: Option<u64>,
}

/// Whether a holder still runs, as far as this machine can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// On this host, its process is running.
    Running,
    /// On this host, its process is gone (the reason): the lock is stale.
    Gone(String),
    /// Cannot be told from here (the reason, a clause): another host, no process named, or no /proc.
    Unknown(String),
}

impl Holder {
    /// This process, running `command`.
    pub fn me(command: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            host: this_host().to_string(),
            pid,
            user: ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty())),
            command: command.to_string(),
            started: rfc3339(SystemTime::now()),
            token: token(),
            pid_started: process_state(pid).map(|(_, started)| started),
        }
    }

    pub fn liveness(&self) -> Liveness {
        if self.host != this_host() {
            let host = if self.host.is_empty() { "an unknown host" } else { &self.host };
            return Liveness::Unknown(format!("it runs on host {host}, not this one"));
        }
        if self.pid == 0 {
            return Liveness::Unknown("the lock names no process".to_string());
        }
        if !Path::new("/proc/self/stat").exists() {
            return Liveness::Unknown("this system has no /proc to look for its process in".to_string());
        }
        let pid = self.pid;
        match process_state(pid) {
            None => Liveness::Gone(format!("pid {pid} is not running on this host")),
            Some(('Z' | 'X', _)) => Liveness::Gone(format!("pid {pid} has exited")),
            Some((_, started)) if self.pid_started.is_some_and(|s| s != started) => {
                Liveness::Gone(format!("pid {pid} on this host is another process now (the holder's has exited)"))
            }
            Some(_) => Liveness::Running,
        }
    }

    /// `an apply by alice on host build-7 (pid 4242), since 2026-11-25T10:00:00Z (3m ago)`.
    pub fn describe(&self) -> String {
        let command = if self.command.is_empty() { "a run" } else { &self.command };
        let article = if command.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        let who = self.user.as_deref().map(|u| format!(" by {u}")).unwrap_or_default();
        let host = if self.host.is_empty() { "?" } else { &self.host };
        let since = if self.started.is_empty() {
            "since an unknown time".to_string()
        } else {
            let ago = parse_rfc3339(&self.started)
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map(|d| format!(" ({} ago)", short_duration(d)))
                .unwrap_or_default();
            format!("since {}{ago}", self.started)
        };
        format!("{article} {command}{who} on host {host} (pid {}), {since}", self.pid)
    }
}

/// A lock found in place.
#[derive(Debug, Clone)]
pub struct Found {
    /// The parameter's value as stored.
    pub raw: String,
    /// The value read as a holder; `None` if it is not one (written by something else).
    pub holder: Option<Holder>,
}

impl Found {
    fn describe(&self) -> String {
        match &self.holder {
            Some(h) => h.describe(),
            None => {
                let raw: String = self.raw.chars().take(200).collect();
                format!("a holder webscale cannot read (the parameter holds {raw:?})")
            }
        }
    }

    fn liveness(&self) -> Liveness {
        match &self.holder {
            Some(h) => h.liveness(),
            None => Liveness::Unknown("its value names no process".to_string()),
        }
    }
}

/// A lock this process holds.
#[derive(Debug, Clone)]
pub struct Lock {
    ssm: aws_sdk_ssm::Client,
    stack: String,
    name: String,
    holder: Holder,
    /// Given back already (a Ctrl-C and the end of the command may both try): shared by clones.
    released: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Takes the lock of `stack` for `command` (`apply`/`destroy`), or refuses with a message naming the holder and, for
/// a stale lock, how to break it. `file` is the stack file as given, for that hint.
pub async fn acquire(cloud: &Cloud, stack: &Stack, command: &str, file: &Path) -> Result<Lock, Error> {
    let ssm = cloud.clients(cloud.home_region()).map_err(|e| Error::Locked(e.to_string()))?.ssm.clone();
    let lock = Lock {
        ssm,
        stack: stack.name.clone(),
        name: parameter_name(&stack.name),
        holder: Holder::me(command),
        released: Default::default(),
    };
    let value = serde_json::to_string(&lock.holder).unwrap_or_default();
    let mut tags = vec![ssm_tag("webscale:stack", &stack.name)];
    tags.extend(stack.tags.iter().map(|(k, v)| ssm_tag(k, v)));
    // Released between our attempt and our look: try again, a few times.
    for _ in 0..3 {
        let put = lock
            .ssm
            .put_parameter()
            .name(&lock.name)
            .value(&value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .description(format!("webscale: lock of stack {}, held while an apply or destroy runs", stack.name))
            // Create only if absent: this is the lock. (Tags are allowed with Overwrite=false, rejected with true.)
            .overwrite(false)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .call("PutParameter");
        match put {
            Ok(_) => {
                tracing::debug!(parameter = %lock.name, "took the stack lock");
                return Ok(lock);
            }
            Err(e) if e.code() == "ParameterAlreadyExists" => match read(&lock.ssm, &lock.name).await {
                // Our own create, repeated by the SDK after its answer was lost.
                Ok(Some(found)) if found.holder.as_ref().is_some_and(|h| h.token == lock.holder.token) => {
                    return Ok(lock);
                }
                Ok(Some(found)) => return Err(Error::Locked(refusal(&stack.name, &found, file))),
                Ok(None) => continue,
                Err(e) => return Err(lock_failed(&lock, "read", &e)),
            },
            Err(e) => return Err(lock_failed(&lock, "take", &e)),
        }
    }
    Err(Error::Locked(format!(
        "cannot take the lock of stack {}: other runs kept taking and releasing it; nothing was changed, run the command again",
        stack.name
    )))
}

impl Lock {
    /// Gives the lock back: deletes the parameter if it still holds our token. Problems are warnings (the command's
    /// own outcome stands); a lock left behind is named with the way to break it.
    pub async fn release(&self, ui: &Ui) {
        if self.released.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // Right after the create, a read may not see it yet: a short while of "not found" is not a broken lock.
        let found = crate::aws::retrying(
            Duration::from_secs(5),
            Duration::from_millis(500),
            CloudError::is_not_found,
            || async {
                read(&self.ssm, &self.name).await?.ok_or_else(|| CloudError {
                    operation: "GetParameter".into(),
                    code: Some("ParameterNotFound".into()),
                    message: String::new(),
                })
            },
        )
        .await;
        let stack = &self.stack;
        let command = &self.holder.command;
        match found {
            Ok(found) if found.holder.as_ref().is_some_and(|h| h.token == self.holder.token) => {
                match self.ssm.delete_parameter().name(&self.name).send().await.call("DeleteParameter") {
                    Ok(_) => tracing::debug!(parameter = %self.name, "released the stack lock"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => ui.warn(&format!(
                        "could not release the lock of stack {stack} ({}: {e}); the next run will be refused until it is broken with `webscale unlock`",
                        self.name
                    )),
                }
            }
            Ok(found) => ui.warn(&format!(
                "the lock of stack {stack} was broken while this {command} ran and is now held by {}; it was left as it is",
                found.describe()
            )),
            Err(e) if e.is_not_found() => {
                ui.warn(&format!("the lock of stack {stack} was broken (removed) while this {command} ran"))
            }
            Err(e) => ui.warn(&format!(
                "could not release the lock of stack {stack} ({}: {e}); the next run will be refused until it is broken with `webscale unlock`",
                self.name
            )),
        }
    }

    /// The parameter's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `webscale unlock`: shows who holds the lock of `stack` and breaks it; without `force`, refuses while the holder
/// still runs on this host.
pub async fn unlock(cloud: &Cloud, stack: &Stack, force: bool, ui: &Ui) -> Result<(), Error> {
    // Fails fast, with the one clear message, when the endpoint or the credentials are wrong.
    cloud.whoami().await.map_err(|source| Error::Connect { endpoint: cloud.endpoint(), source })?;
    let ssm = &cloud.clients(cloud.home_region()).map_err(|e| Error::Locked(e.to_string()))?.ssm;
    let name = parameter_name(&stack.name);
    let failed = |what: &str, e: &CloudError| {
        Error::Locked(format!(
            "cannot {what} the lock of stack {} ({name} in {}): {e}",
            stack.name,
            cloud.home_region()
        ))
    };
    let Some(found) = read(ssm, &name).await.map_err(|e| failed("read", &e))? else {
        ui.out(&format!("Stack {} is not locked: nothing to break.", stack.name));
        return Ok(());
    };
    let liveness = found.liveness();
    let state = match &liveness {
        Liveness::Running => format!("still running: pid {} on this host", found.holder.as_ref().map_or(0, |h| h.pid)),
        Liveness::Gone(why) => format!("stale: {why}"),
        Liveness::Unknown(why) => format!("whether it still runs cannot be told from here: {why}"),
    };
    ui.out(&format!("Stack {} is locked by {} ({state}).", stack.name, found.describe()));
    if liveness == Liveness::Running && !force {
        return Err(Error::Locked(format!(
            "not breaking the lock of stack {}: its holder is still running on this host (pid {}). Let it finish, or stop it; `--force` breaks the lock anyway, for a run you are sure changes nothing any more.",
            stack.name,
            found.holder.as_ref().map_or(0, |h| h.pid)
        )));
    }
    match ssm.delete_parameter().name(&name).send().await.call("DeleteParameter") {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(failed("break", &e)),
    }
    ui.out(&format!("Broke the lock of stack {}.", stack.name));
    Ok(())
}

/// The lock parameter, if there is one.
async fn read(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Option<Found>, CloudError> {
    match ssm.get_parameter().name(name).send().await.call("GetParameter") {
        Ok(out) => {
            let raw = out.parameter().and_then(|p| p.value()).unwrap_or_default().to_string();
            let holder = serde_json::from_str::<Holder>(&raw).ok();
            Ok(Some(Found { raw, holder }))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The refusal: who holds the lock, since when, and what to do, stale or not.
fn refusal(stack: &str, found: &Found, file: &Path) -> String {
    let unlock = format!("webscale unlock -f {}", file.display());
    let what = match found.liveness() {
        Liveness::Gone(why) => format!(
            "The lock is stale: {why}, so that run was stopped before it could release it. Break the lock with `{unlock}`, then run this again."
        ),
        Liveness::Running => format!(
            "That run is still going (pid {} on this host): wait for it to finish, then run this again.",
            found.holder.as_ref().map_or(0, |h| h.pid)
        ),
        Liveness::Unknown(why) => format!(
            "Whether that run is still going cannot be told from here ({why}). If it is, wait for it to finish; if it was killed, the lock is stale: break it with `{unlock}`. Then run this again."
        ),
    };
    format!("stack {stack} is locked by {}; nothing was changed.\n  {what}", found.describe())
}

fn lock_failed(lock: &Lock, what: &str, e: &CloudError) -> Error {
    let region = lock.ssm.config().region().map(|r| r.to_string()).unwrap_or_default();
    let mut message = format!("cannot {what} the lock of stack {} ({} in {region}): {e}", lock.stack, lock.name);
    if e.is_unserved() {
        message.push_str(
            "\n  The stack lock needs ssm:PutParameter, ssm:GetParameter, ssm:DeleteParameter and ssm:AddTagsToResource on it.",
        );
    }
    Error::Locked(message)
}

fn ssm_tag(key: &str, value: &str) -> aws_sdk_ssm::types::Tag {
    // Key and value are both set, so the builder cannot fail.
    aws_sdk_ssm::types::Tag::builder().key(key).value(value).build().expect("key and value are set")
}

/// This machine's name, as the lock records it.
pub fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    })
}

/// A process's state letter and start time (clock ticks since boot), from `/proc/<pid>/stat`; `None` if there is
/// no such process (or no /proc).
fn process_state(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so fields count from the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat(5) is starttime; fields here start at field 3.
    let started = fields.get(22 - 3)?.parse().ok()?;
    Some((state, started))
}

/// 128 random bits as hex: the OS's randomness, else the standard library's randomly keyed hasher over the time
/// and pid.
fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_os {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2026-11-25T10:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The inverse of [`rfc3339`] (UTC `Z` only, fractions of a second ignored).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let time = time.split('.').next()?;
    let mut time = time.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hh * 3600 + mm * 60 + ss))
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `42s`, `3m`, `2h 5m`, `3d 4h`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_and_read_back() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(rfc3339(leap), "2000-02-29T01:02:03Z");
        assert_eq!(parse_rfc3339("2000-02-29T01:02:03Z"), Some(leap));
        assert_eq!(parse_rfc3339("2000-02-29T01:02:03.250Z"), Some(leap));
        let now = UNIX_EPOCH + Duration::from_secs(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(parse_rfc3339(&rfc3339(now)), Some(now));
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_holder_on_this_host_is_running_gone_or_replaced() {
        let me = Holder::me("apply");
        assert_eq!(me.host, this_host());
        assert_eq!(me.token.len(), 32);
        assert_ne!(me.token, Holder::me("apply").token);
        assert_eq!(me.liveness(), Liveness::Running);
        let gone = Holder { pid: 999_999_999, ..me.clone() };
        assert!(matches!(gone.liveness(), Liveness::Gone(why) if why.contains("999999999 is not running")));
        // The pid is alive but started at another time: another process got it.
        let reused = Holder { pid_started: me.pid_started.map(|s| s + 1), ..me.clone() };
        assert!(matches!(reused.liveness(), Liveness::Gone(_)), "{:?}", reused.liveness());
        let elsewhere = Holder { host: format!("not-{}", this_host()), ..me };
        assert!(matches!(elsewhere.liveness(), Liveness::Unknown(why) if why.contains("not this one")));
    }

    #[test]
    fn a_refusal_names_the_holder_and_how_to_break_a_stale_lock() {
        let holder = Holder {
            host: this_host().to_string(),
            pid: 999_999_999,
            user: Some("alice".into()),
            command: "apply".into(),
            started: rfc3339(SystemTime::now() - Duration::from_secs(190)),
            ..Holder::default()
        };
        let found = Found { raw: String::new(), holder: Some(holder) };
        let text = refusal("web", &found, Path::new("stack.toml"));
        assert!(text.starts_with("stack web is locked by an apply by alice on host "), "{text}");
        assert!(text.contains("(pid 999999999), since ") && text.contains("(3m ago)"), "{text}");
        assert!(text.contains("stale") && text.contains("`webscale unlock -f stack.toml`"), "{text}");
        // A value written by something else still reads, and still says how to break it.
        let odd = Found { raw: "taken".into(), holder: serde_json::from_str("\"taken\"").ok() };
        assert!(refusal("web", &odd, Path::new("s.toml")).contains("webscale unlock -f s.toml"));
    }

    #[test]
    fn only_lock_names_are_locks() {
        assert!(is_lock_parameter(&parameter_name("web")));
        assert!(!is_lock_parameter("/webscale/web/db/password"));
        assert!(!is_lock_parameter("/other/web/lock"));
    }
}
