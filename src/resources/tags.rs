//! Ownership tags, for every service. Every resource gets `webscale:stack` (which stack owns it) and
//! `webscale:address` (which spec entry it is) in its create call, never in a later call: a crash between the two
//! would leave an orphan that no read can find. Each service spells tags its own way (EC2's `TagSpecification`,
//! ELBv2's and RDS's `Tag` lists, Lambda's and CloudWatch Logs' maps, S3's `Tagging`); a kind converts the one
//! [`Tags`] map here into its service's form, and reads live tags back through [`owned_address`] and [`live`].

use std::collections::BTreeMap;

use super::{Address, stray};
use crate::spec::Stack;

pub const TAG_STACK: &str = "webscale:stack";
pub const TAG_ADDRESS: &str = "webscale:address";

/// A resource's tags, key -> value.
pub type Tags = BTreeMap<String, String>;

/// The full tag set a resource should carry: the stack's extra tags, a readable Name, the ownership pair.
pub fn desired(stack: &Stack, address: &Address) -> Tags {
    let mut tags = stack.tags.clone();
    // For people in the console: stack, kind, name (`shop-route-table-public`), never two alike.
    tags.insert("Name".into(), format!("{}-{}", stack.name, address.as_str().replace(['_', '.'], "-")));
    tags.insert(TAG_STACK.into(), stack.name.clone());
    tags.insert(TAG_ADDRESS.into(), address.to_string());
    tags
}

/// Live tags as compared with desired ones: `aws:` tags belong to AWS and are never diffed.
pub fn live<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs.into_iter().filter(|(k, _)| !k.starts_with("aws:")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The address recorded on a resource the stack owns (it carries the stack tag). When the address tag is missing
/// or hand-edited into nonsense (not `KIND.NAME` of this kind) the resource is still the stack's: it gets a
/// stray address, so the plan deletes it instead of it silently blocking the deletes of what contains it.
pub fn owned_address(address_tag: Option<&str>, kind: &str, id: &str) -> Address {
    address_tag.and_then(Address::parse).filter(|a| a.kind() == kind).unwrap_or_else(|| stray(kind, id))
}

/// Whether a live tag set marks the resource as the stack's (for services whose list calls cannot filter by tag).
pub fn owned_by(tags: &Tags, stack: &str) -> bool {
    tags.get(TAG_STACK).is_some_and(|s| s == stack)
}
