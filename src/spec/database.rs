//! The `[database]` table: one RDS primary (PostgreSQL or MySQL) in the private subnets of every zone, and
//! `replicas` read replicas of it, reachable only from the web tier's security group.
//!
//! Safe by default: storage encrypted, never publicly accessible, deletion protection on, backups kept, and the
//! master password managed by RDS in Secrets Manager, so it never passes through webscale. The alternative,
//! `password_env`, names an environment variable holding it; the value is read when the spec is loaded and only
//! ever shown or stored as a salted digest.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape};
use super::{Peer, Protocol, SecurityGroup};

/// At most this many read replicas: RDS allows 15 per source instance.
pub const MAX_REPLICAS: u32 = 15;

#[derive(Debug, Clone)]
pub struct Database {
    pub engine: Engine,
    /// A major ("16") or full ("16.4") version; a major version follows RDS's minor upgrades without a diff.
    pub engine_version: String,
    pub instance_class: String,
    /// gp3, gp2, io1 or io2.
    pub storage_type: String,
    /// GiB allocated at creation.
    pub storage_gb: u32,
    /// Storage autoscaling ceiling in GiB; `None` turns autoscaling off.
    pub max_storage_gb: Option<u32>,
    pub multi_az: bool,
    pub backup_retention_days: u32,
    /// `hh:mm-hh:mm` UTC; `None` lets RDS pick.
    pub backup_window: Option<String>,
    /// `ddd:hh:mm-ddd:hh:mm` UTC; `None` lets RDS pick.
    pub maintenance_window: Option<String>,
    pub encrypted: bool,
    pub deletion_protection: bool,
    /// In-place changes now (a short outage for a class change) rather than in the next maintenance window.
    pub apply_immediately: bool,
    /// The name of the `[security_groups.NAME]` the database is in.
    pub security_group: String,
    pub port: u16,
    pub username: String,
    /// The database created inside the instance, if any.
    pub database_name: Option<String>,
    /// `password_env`: the master password comes from this environment variable; `None`: RDS manages it.
    pub password: Option<Password>,
    /// An existing DB parameter group; `None`: the engine's default.
    pub parameter_group: Option<String>,
    pub replicas: u32,
    /// The `[network.zones.NAME]` keys replicas are spread over, in order (replica_1 in the first, ...).
    pub replica_zones: Vec<String>,
}

/// The master password from the environment. Read when the spec is loaded, but required only by commands that
/// create or change the database (validate, plan, apply): `destroy`, `show` and `output` work without it.
#[derive(Debug, Clone)]
pub struct Password {
    pub env: String,
    /// The value, or why there is none (the variable is unset, or holds nothing RDS accepts), located in the file.
    pub value: Result<Secret, super::Diagnostic>,
}

/// A secret read from the environment: never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(super) fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    /// RDS's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    engine: Spanned<String>,
    engine_version: Spanned<String>,
    instance_class: Spanned<String>,
    storage_type: Option<Spanned<String>>,
    storage_gb: Option<Spanned<i64>>,
    max_storage_gb: Option<Spanned<i64>>,
    #[serde(default)]
    multi_az: bool,
    backup_retention_days: Option<Spanned<i64>>,
    backup_window: Option<Spanned<String>>,
    maintenance_window: Option<Spanned<String>>,
    encrypted: Option<Spanned<bool>>,
    deletion_protection: Option<bool>,
    #[serde(default)]
    apply_immediately: bool,
    security_group: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    username: Option<Spanned<String>>,
    database_name: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    parameter_group: Option<Spanned<String>>,
    replicas: Option<Spanned<i64>>,
    replica_zones: Option<Spanned<Vec<Spanned<String>>>>,
}

pub(super) fn shape() -> Shape {
    Shape::table::<RawDatabase>(vec![])
}

/// Checks `[database]`. `groups` are the file's security groups; `web_group` the web tier's, if any; `zones` the
/// `[network.zones]` keys.
pub(super) fn check(
    cx: &mut Checker,
    raw: Spanned<RawDatabase>,
    groups: &[SecurityGroup],
    web_group: Option<&str>,
    zones: &[String],
) -> Database {
    let table = raw.span();
    let raw = raw.into_inner();
    let f = |name: &str| format!("database.{name}");

    let engine = match raw.engine.get_ref().as_str() {
        "postgres" => Engine::Postgres,
        "mysql" => Engine::Mysql,
        other => {
            cx.err(
                raw.engine.span(),
                f("engine"),
                format!("{other:?} is not an engine webscale runs: use \"postgres\" or \"mysql\""),
            );
            Engine::Postgres
        }
    };
    let engine_version = raw.engine_version.get_ref().clone();
    if engine_version.is_empty()
        || !engine_version.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        cx.err(
            raw.engine_version.span(),
            f("engine_version"),
            format!("{engine_version:?} is not a version: use a major version (\"16\") or a full one (\"16.4\")"),
        );
    }
    let instance_class = raw.instance_class.get_ref().clone();
    if !instance_class.starts_with("db.") || instance_class.split('.').count() != 3 {
        cx.err(
            raw.instance_class.span(),
            f("instance_class"),
            format!("{instance_class:?} is not an RDS instance class such as \"db.t4g.micro\" or \"db.r6g.large\""),
        );
    }
    let storage_type = match &raw.storage_type {
        None => "gp3".to_string(),
        Some(s) => {
            if !["gp3", "gp2", "io1", "io2"].contains(&s.get_ref().as_str()) {
                cx.err(
                    s.span(),
                    f("storage_type"),
                    format!("{:?} is not a storage type: use \"gp3\", \"gp2\", \"io1\" or \"io2\"", s.get_ref()),
                );
            }
            s.get_ref().clone()
        }
    };
    let storage_gb = int(cx, raw.storage_gb.as_ref(), &f("storage_gb"), 20, 20, 65536, "20 to 65536 GiB");
    let max_storage_gb = raw.max_storage_gb.as_ref().map(|m| {
        let n = int(cx, Some(m), &f("max_storage_gb"), storage_gb, 21, 65536, "21 to 65536 GiB");
        if n <= storage_gb {
            cx.err(m.span(), f("max_storage_gb"), format!("the autoscaling ceiling ({n} GiB) must be above storage_gb ({storage_gb} GiB); leave it out to turn autoscaling off"));
        }
        n
    });
    let replicas = int(
        cx,
        raw.replicas.as_ref(),
        &f("replicas"),
        0,
        0,
        MAX_REPLICAS as i64,
        &format!("0 to {MAX_REPLICAS} (RDS's limit per primary)"),
    );
    let backup_retention_days = match &raw.backup_retention_days {
        None => 7,
        Some(b) => {
            let n = int(cx, Some(b), &f("backup_retention_days"), 7, 0, 35, "0 to 35 days");
            if n == 0 && replicas > 0 {
                cx.err(b.span(), f("backup_retention_days"), format!("read replicas need backups on the primary: use 1 to 35 days, or set replicas = 0 (now {replicas})"));
            }
            n
        }
    };
    let backup_window = raw.backup_window.as_ref().map(|w| {
        if !is_window(w.get_ref(), false) || window_minutes(w.get_ref()) < 30 {
            cx.err(
                w.span(),
                f("backup_window"),
                format!(
                    "{:?} is not a daily window: use \"hh:mm-hh:mm\" in UTC, at least 30 minutes, e.g. \"03:00-04:00\"",
                    w.get_ref()
                ),
            );
        }
        w.get_ref().clone()
    });
    let maintenance_window = raw.maintenance_window.as_ref().map(|w| {
        if !is_window(w.get_ref(), true) {
            cx.err(
                w.span(),
                f("maintenance_window"),
                format!(
                    "{:?} is not a weekly window: use \"ddd:hh:mm-ddd:hh:mm\" in UTC, e.g. \"sun:05:00-sun:06:00\"",
                    w.get_ref()
                ),
            );
        }
        w.get_ref().to_ascii_lowercase()
    });
    let encrypted = match &raw.encrypted {
        None => true,
        Some(e) => *e.get_ref(),
    };
    let port = match &raw.port {
        None => engine.default_port(),
        Some(p) => {
            int(cx, Some(p), &f("port"), engine.default_port() as u32, 1150, 65535, "1150 to 65535 (RDS's range)")
                as u16
        }
    };

    // The group: one of the file's, admitting nothing but security groups, and the web tier's on the port.
    let security_group = raw.security_group.as_ref().map_or_else(|| "db".to_string(), |g| g.get_ref().clone());
    let group_span = raw.security_group.as_ref().map_or(table.clone(), |g| g.span());
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    match groups.iter().find(|g| g.name == security_group) {
        None => cx.err(group_span, f("security_group"), super::web::unknown_group(&security_group, &names)),
        Some(group) => {
            if let Some(open) = group.ingress.iter().find_map(|r| match &r.peer {
                Peer::Cidr(c) => Some(c),
                Peer::Group(_) => None,
            }) {
                cx.err(group_span.clone(), f("security_group"), format!("[security_groups.{security_group}] admits {open}: a database admits only security groups (the web tier's), never addresses"));
            }
            if let Some(web) = web_group {
                let covers = group.ingress.iter().any(|r| {
                    r.peer == Peer::Group(web.to_string())
                        && matches!(r.protocol, Protocol::Tcp | Protocol::All)
                        && r.ports.is_none_or(|p| p.from <= port && port <= p.to)
                });
                if !covers {
                    cx.err(group_span, f("security_group"), format!("[security_groups.{security_group}] does not admit the web servers on the database's port: add {{ protocol = \"tcp\", ports = {port}, security_group = \"{web}\" }} to its ingress"));
                }
            }
        }
    }

    let username = match &raw.username {
        None => "webscale".to_string(),
        Some(u) => {
            let s = u.get_ref();
            let reserved = ["admin", "postgres", "rdsadmin", "root", "mysql"].contains(&s.as_str());
            let ok = (1..=16).contains(&s.len())
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok || reserved {
                cx.err(u.span(), f("username"), format!("{s:?} cannot be the master user: use 1 to 16 letters, digits and underscores, starting with a letter, and not a reserved name (admin, postgres, rdsadmin, root, mysql)"));
            }
            s.clone()
        }
    };
    let database_name = raw.database_name.as_ref().map(|d| {
        let s = d.get_ref();
        let ok = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            cx.err(
                d.span(),
                f("database_name"),
                format!(
                    "{s:?} is not a database name: use 1 to 63 letters, digits and underscores, starting with a letter"
                ),
            );
        }
        s.clone()
    });
    let password = raw.password_env.as_ref().and_then(|v| {
        let name = v.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cx.err(v.span(), f("password_env"), format!("{name:?} is not an environment variable name (letters, digits, underscores)"));
            return None;
        }
        let value = match std::env::var(name) {
            // RDS's rules: 8 to 128 printable ASCII characters other than / " @ and space. Said without the value.
            Ok(p) if (8..=128).contains(&p.len()) && p.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '"' | '@')) => {
                Ok(Secret(p))
            }
            Ok(_) => Err(cx.diagnostic(v.span(), f("password_env"), format!("the password in ${name} is not one RDS accepts: use 8 to 128 printable ASCII characters other than /, \", @ and spaces"))),
            Err(_) => Err(cx.diagnostic(v.span(), f("password_env"), format!("the environment variable {name} is not set: set it to the database's master password (webscale shows and keeps only a salted digest of it)"))),
        };
        Some(Password { env: name.clone(), value })
    });
    // AWS makes no read replica of a primary whose password RDS manages in Secrets Manager (RDS User Guide,
    // "Password management with Amazon RDS and AWS Secrets Manager", limitations): say so here, not after the
    // primary exists and the first replica fails.
    if replicas > 0 && password.is_none() && raw.password_env.is_none() {
        let span = raw.replicas.as_ref().map_or(table.clone(), |r| r.span());
        cx.err(span, f("replicas"), format!("read replicas need password_env: AWS makes no replica of a primary whose password RDS manages in Secrets Manager. Set password_env = \"NAME\" (an environment variable holding the master password), or replicas = 0 (now {replicas})"));
    }
    let parameter_group = raw.parameter_group.as_ref().map(|p| p.get_ref().clone());
    let replica_zones = match &raw.replica_zones {
        None => zones.to_vec(),
        Some(list) => {
            if list.get_ref().is_empty() {
                cx.err(
                    list.span(),
                    f("replica_zones"),
                    "an empty list places no replica: leave replica_zones out to spread them over every zone",
                );
            }
            for z in list.get_ref() {
                if !zones.contains(z.get_ref()) {
                    cx.err(
                        z.span(),
                        f("replica_zones"),
                        format!(
                            "{:?} is not a zone of this file: use one of the [network.zones] names ({})",
                            z.get_ref(),
                            zones.join(", ")
                        ),
                    );
                }
            }
            list.get_ref().iter().map(|z| z.get_ref().clone()).collect()
        }
    };
    Database {
        engine,
        engine_version,
        instance_class,
        storage_type,
        storage_gb,
        max_storage_gb,
        multi_az: raw.multi_az,
        backup_retention_days,
        backup_window,
        maintenance_window,
        encrypted,
        deletion_protection: raw.deletion_protection.unwrap_or(true),
        apply_immediately: raw.apply_immediately,
        security_group,
        port,
        username,
        database_name,
        password,
        parameter_group,
        replicas,
        replica_zones,
    }
}

fn int(cx: &mut Checker, v: Option<&Spanned<i64>>, field: &str, default: u32, lo: i64, hi: i64, valid: &str) -> u32 {
    let Some(v) = v else { return default };
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        return n as u32;
    }
    cx.err(v.span(), field, format!("{n} is out of range: use {valid}"));
    default
}

/// How long a daily `hh:mm-hh:mm` window lasts, in minutes (it may run past midnight); 0 if it is not one.
fn window_minutes(s: &str) -> u32 {
    let minute = |p: &str| -> Option<u32> {
        let (h, m) = p.split_once(':')?;
        Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
    };
    match s.split_once('-').and_then(|(a, b)| Some((minute(a)?, minute(b)?))) {
        Some((a, b)) => (b + 24 * 60 - a) % (24 * 60),
        None => 0,
    }
}

/// `hh:mm-hh:mm` (daily) or `ddd:hh:mm-ddd:hh:mm` (weekly).
fn is_window(s: &str, weekly: bool) -> bool {
    let point = |p: &str| -> bool {
        let parts: Vec<&str> = p.split(':').collect();
        let (day, hm) = match (weekly, parts.as_slice()) {
            (true, [d, h, m]) => (Some(*d), (*h, *m)),
            (false, [h, m]) => (None, (*h, *m)),
            _ => return false,
        };
        let day_ok = day.is_none_or(|d| {
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(&d.to_ascii_lowercase().as_str())
        });
        let num = |x: &str, max: u32| x.len() == 2 && x.parse::<u32>().is_ok_and(|n| n <= max);
        day_ok && num(hm.0, 23) && num(hm.1, 59)
    };
    s.split_once('-').is_some_and(|(a, b)| point(a) && point(b))
}
