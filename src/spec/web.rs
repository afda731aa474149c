//! The `[web]` table: the web servers. `count` instances spread evenly over the private subnets of every zone,
//! launched from an AMI (an id, or an SSM public parameter path looked up at plan time) with user data read from
//! a file next to the stack file.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape};

/// At most this many web instances: a plan of more is a typo, and EC2's default quota is far below it.
pub const MAX_INSTANCES: u32 = 100;
/// RunInstances takes at most 16 KB of user data (before base64).
pub const MAX_USER_DATA: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct Web {
    pub count: u32,
    pub instance_type: String,
    pub ami: Ami,
    /// The user data file as written in the spec (relative to the stack file), for messages.
    pub user_data_file: String,
    /// Its content, read when the spec is loaded.
    pub user_data: String,
    /// The name of the `[security_groups.NAME]` the instances are in.
    pub security_group: String,
    /// Root volume size in GiB (always encrypted, gp3).
    pub root_volume_size: u32,
}

/// Where the machine image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ami {
    /// An image id, used as is.
    Id(String),
    /// An SSM parameter path holding the current image id (AWS publishes the latest Amazon Linux under
    /// `/aws/service/ami-amazon-linux-latest/`): looked up at every plan, so a new release plans a roll.
    Parameter(String),
}

impl Ami {
    pub fn as_str(&self) -> &str {
        match self {
            Ami::Id(s) | Ami::Parameter(s) => s,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    #[serde(default = "two")]
    count: Spanned<i64>,
    instance_type: Spanned<String>,
    ami: Spanned<String>,
    user_data: Spanned<String>,
    #[serde(default = "web_group")]
    security_group: Spanned<String>,
    #[serde(default = "eight")]
    root_volume_size: Spanned<i64>,
}

fn two() -> Spanned<i64> {
    Spanned::new(0..0, 2)
}

fn eight() -> Spanned<i64> {
    Spanned::new(0..0, 8)
}

fn web_group() -> Spanned<String> {
    Spanned::new(0..0, "web".into())
}

pub(super) fn shape() -> Shape {
    Shape::table::<RawWeb>(vec![])
}

/// `groups`: the security group names the spec defines. `file`: the stack file (user data is relative to it).
pub(super) fn check(cx: &mut Checker, raw: Spanned<RawWeb>, groups: &[String], file: &Path) -> Web {
    let table = raw.span();
    let raw = raw.into_inner();
    let count = match u32::try_from(*raw.count.get_ref()) {
        Ok(n) if n <= MAX_INSTANCES => n,
        _ => {
            cx.err(
                raw.count.span(),
                "web.count",
                format!("{} instances: use 0 to {MAX_INSTANCES}", raw.count.get_ref()),
            );
            0
        }
    };
    let instance_type = raw.instance_type.get_ref().clone();
    let well_formed = instance_type.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && instance_type.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    });
    if !well_formed {
        cx.err(
            raw.instance_type.span(),
            "web.instance_type",
            format!("{instance_type:?} is not an EC2 instance type such as \"t3.micro\" (FAMILY.SIZE)"),
        );
    }
    let ami = ami(cx, &raw.ami);
    let (user_data_file, user_data) = user_data(cx, &raw.user_data, file);
    let security_group = raw.security_group.get_ref().clone();
    if !groups.contains(&security_group) {
        let span = if raw.security_group.span() == (0..0) { table.clone() } else { raw.security_group.span() };
        cx.err(span, "web.security_group", unknown_group(&security_group, groups));
    }
    let root_volume_size = match u32::try_from(*raw.root_volume_size.get_ref()) {
        Ok(n) if (8..=16384).contains(&n) => n,
        _ => {
            cx.err(
                raw.root_volume_size.span(),
                "web.root_volume_size",
                format!(
                    "{} GiB: a root volume is 8 to 16384 GiB (Amazon Linux 2023 needs 8)",
                    raw.root_volume_size.get_ref()
                ),
            );
            8
        }
    };
    Web { count, instance_type, ami, user_data_file, user_data, security_group, root_volume_size }
}

fn ami(cx: &mut Checker, raw: &Spanned<String>) -> Ami {
    let s = raw.get_ref();
    if let Some(hex) = s.strip_prefix("ami-")
        && (8..=17).contains(&hex.len())
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Ami::Id(s.clone());
    }
    if s.starts_with('/') && s.len() > 1 && !s.contains(char::is_whitespace) {
        return Ami::Parameter(s.clone());
    }
    cx.err(
        raw.span(),
        "web.ami",
        format!(
            "{s:?} is neither an AMI id (\"ami-0abc12345def67890\") nor an SSM parameter path \
             (\"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64\")"
        ),
    );
    Ami::Id(s.clone())
}

/// Reads the user data file, relative to the stack file's folder.
fn user_data(cx: &mut Checker, raw: &Spanned<String>, file: &Path) -> (String, String) {
    let written = raw.get_ref().clone();
    let path = file.parent().unwrap_or(Path::new("")).join(&written);
    match std::fs::read_to_string(&path) {
        Err(e) => {
            cx.err(
                raw.span(),
                "web.user_data",
                format!("cannot read {} ({e}); the path is relative to the stack file's folder", path.display()),
            );
            (written, String::new())
        }
        Ok(text) if text.len() > MAX_USER_DATA => {
            cx.err(
                raw.span(),
                "web.user_data",
                format!(
                    "{} is {} bytes; EC2 takes at most {MAX_USER_DATA} bytes of user data",
                    path.display(),
                    text.len()
                ),
            );
            (written, text)
        }
        Ok(text) => (written, text),
    }
}

/// The message for a `security_group` that names no `[security_groups.NAME]`.
pub(super) fn unknown_group(name: &str, groups: &[String]) -> String {
    let known = if groups.is_empty() {
        "the file defines none".to_string()
    } else {
        format!("defined: {}", groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(", "))
    };
    format!("no [security_groups.{name}] in this file ({known}); name one of them or add it")
}
