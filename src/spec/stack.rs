//! The `[stack]` table: the stack's name, its region, and the tags webscale puts on (or leaves alone on) every
//! resource. Checked first: the other tiers need the region (zones) and the name (group descriptions).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape, key_segment};

/// Where the stack's region comes from when the file is not the last word.
#[derive(Debug, Clone, Default)]
pub struct RegionChoice {
    /// `--region`: beats the file.
    pub forced: Option<String>,
    /// AWS_REGION / the profile: used when the file names no region.
    pub ambient: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStack {
    name: Spanned<String>,
    /// Optional: without it the stack follows AWS_REGION / the profile's region.
    region: Option<Spanned<String>>,
    #[serde(default)]
    tags: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Tag keys other tools manage (`"CreatedBy"`, or a prefix `"cost:*"`): never diffed, never removed.
    #[serde(default)]
    ignore_tags: Vec<Spanned<String>>,
}

/// `[stack]`'s keys, for finding every unknown key at once; `tags` is a table of the user's own keys.
pub(super) fn shape() -> Shape {
    Shape::table::<RawStack>(vec![])
}

/// `[stack]` checked: the parts of [`super::Stack`] this table sets.
pub(super) struct StackTable {
    pub(super) name: String,
    /// `None` when there is no usable region (already reported), so zone checks can skip rather than pile on
    /// errors about an empty region.
    pub(super) region: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) ignore_tags: Vec<String>,
}

pub(super) fn check(cx: &mut Checker, raw: Spanned<RawStack>, choice: &RegionChoice) -> StackTable {
    let stack_span = raw.span();
    let raw = raw.into_inner();
    let name = stack_name(cx, &raw.name);
    let region = choose_region(cx, raw.region.as_ref(), choice, stack_span);
    let tags = tags(cx, &raw.tags);
    let ignore_tags = ignore_tags(cx, &raw.ignore_tags, &tags);
    StackTable { name, region, tags, ignore_tags }
}

fn stack_name(cx: &mut Checker, name: &Spanned<String>) -> String {
    let n = name.get_ref();
    let ok = (1..=32).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok && n.starts_with("sg-") {
        // Security group names start with the stack name, and AWS refuses group names starting with "sg-".
        cx.err(name.span(), "stack.name", format!("{n:?} starts with \"sg-\", which AWS refuses in security group names (they start with the stack name); pick another name"));
    } else if !ok {
        cx.err(
            name.span(),
            "stack.name",
            format!(
                "{n:?} is not a valid stack name: use 1 to 32 lowercase letters, digits and hyphens, starting with a letter"
            ),
        );
    }
    n.clone()
}

/// `--region` beats the file, which beats AWS_REGION / the profile. `None` when there is no usable region
/// (already reported).
fn choose_region(
    cx: &mut Checker,
    in_file: Option<&Spanned<String>>,
    choice: &RegionChoice,
    stack_span: Range<usize>,
) -> Option<String> {
    // The file's region is checked even when --region overrides it: the file is wrong for anyone who runs it
    // without the flag.
    let file_region = in_file.and_then(|r| {
        let ok = is_region_name(r.get_ref());
        if !ok {
            cx.err(
                r.span(),
                "stack.region",
                format!("{:?} is not an AWS region name such as \"us-east-1\"", r.get_ref()),
            );
        }
        ok.then(|| r.get_ref().clone())
    });
    // A region from outside the file has no place in it to point at: blame `region` if written, else [stack].
    let outside = |cx: &mut Checker, r: &String, from: &str| {
        if is_region_name(r) {
            return Some(r.clone());
        }
        let span = in_file.map_or(stack_span.clone(), |f| f.span());
        cx.err(span, "stack.region", format!("{r:?} (from {from}) is not an AWS region name such as \"us-east-1\""));
        None
    };
    match (&choice.forced, in_file, &choice.ambient) {
        (Some(forced), _, _) => outside(cx, forced, "--region"),
        (None, Some(_), _) => file_region,
        (None, None, Some(ambient)) => outside(cx, ambient, "AWS_REGION / the AWS profile"),
        (None, None, None) => {
            cx.err(
                stack_span,
                "stack.region",
                "no region: set `region = \"us-east-1\"` (for example) in [stack], set AWS_REGION, or pass --region",
            );
            None
        }
    }
}

/// Whether `r` looks like an AWS region name: at least three hyphen-separated lowercase parts, the last a number
/// (`us-east-1`, `us-gov-west-1`, `ap-southeast-2`).
fn is_region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn tags(cx: &mut Checker, raw: &BTreeMap<Spanned<String>, Spanned<String>>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for (k, v) in raw {
        let key = k.get_ref();
        let field = format!("stack.tags.{}", key_segment(key));
        // AWS refuses "aws:" in any letter case; "webscale:" and Name are set on every resource by webscale
        // (resources::ec2_tags), which would silently overwrite the user's value.
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("aws:") || lower.starts_with("webscale:") {
            cx.err(
                k.span(),
                field,
                format!("tag key {key:?} is reserved: keys starting with \"aws:\" or \"webscale:\" belong to AWS and webscale; pick another key"),
            );
        } else if key == "Name" {
            cx.err(
                k.span(),
                field,
                "tag key \"Name\" is reserved: webscale names every resource STACK-KIND-NAME; pick another key",
            );
        } else if key.is_empty() || key.chars().count() > 128 {
            cx.err(k.span(), field, "a tag key must be 1 to 128 characters long");
        } else if v.get_ref().chars().count() > 256 {
            cx.err(
                v.span(),
                field,
                format!("this tag value is {} characters long; AWS allows at most 256", v.get_ref().chars().count()),
            );
        }
        tags.insert(key.clone(), v.get_ref().clone());
    }
    // AWS allows 50 tags per resource; webscale sets three of its own (Name and the ownership pair).
    if tags.len() > 47 {
        let span = raw.keys().nth(47).map(|k| k.span()).unwrap_or(0..0);
        cx.err(
            span,
            "stack.tags",
            format!("{} tags; AWS allows 50 per resource and webscale sets 3, so at most 47", tags.len()),
        );
    }
    tags
}

/// Tag keys another tool owns. webscale's own keys cannot be given away: ownership depends on them.
fn ignore_tags(cx: &mut Checker, raw: &[Spanned<String>], tags: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let pattern = p.get_ref();
        let field = format!("stack.ignore_tags[{i}]");
        let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
        if prefix.is_empty() || prefix.contains('*') {
            cx.err(
                p.span(),
                field,
                format!("{pattern:?} is not a tag key or a prefix ending in one `*` (\"CreatedBy\", \"cost:*\")"),
            );
        } else if ["Name", "webscale:stack", "webscale:address"].iter().any(|k| pattern_ignores(pattern, k)) {
            cx.err(
                p.span(),
                field,
                format!(
                    "{pattern:?} would ignore a tag webscale sets (Name, webscale:*); it cannot be left to another tool"
                ),
            );
        } else if let Some(k) = tags.keys().find(|k| pattern_ignores(pattern, k)) {
            cx.err(
                p.span(),
                field,
                format!(
                    "{pattern:?} ignores {k:?}, which [stack.tags] sets; a tag is either webscale's or another tool's"
                ),
            );
        } else {
            out.push(pattern.clone());
        }
    }
    out
}

/// One pattern of `ignore_tags`, matched the way the plan will match it later.
fn pattern_ignores(pattern: &str, key: &str) -> bool {
    super::tag_ignored(&[pattern.to_string()], key)
}
