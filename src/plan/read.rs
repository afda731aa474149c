//! Live state: every kind reads what the stack owns, all kinds and regions at once. A fixed number of calls per
//! kind and region is the budget (one tag-filtered, paginated describe for EC2 kinds), whatever the stack's size;
//! global kinds (Route 53, CloudFront, IAM) are read once, not once per region.

use futures::future::join_all;

use crate::aws::CloudError;
use crate::resources::{Address, Desired, GLOBAL, Kind, Kinds, Live, ReadCtx, Scope};

/// Everything the stack owns in the cloud's regions, sorted by region, address, id (stable output), and the
/// warnings for kinds that could not be read but that the spec does not use.
///
/// A kind whose service the endpoint does not serve (LocalStack's free edition has no ELBv2, RDS or CloudFront),
/// or that the credentials may not read, is only a warning while the spec declares nothing of it: there is
/// nothing of it to plan, though a leftover could go unseen, and the warning says so. When the spec does declare
/// it, the plan fails with the reason.
pub async fn read_live(
    kinds: Kinds<'_>,
    ctx: &ReadCtx<'_>,
    desired: &[Desired],
) -> Result<(Vec<Live>, Vec<String>), CloudError> {
    let cloud = ctx.cloud;
    let mut reads = Vec::new();
    for kind in kinds.iter().copied() {
        match kind.scope() {
            Scope::Global => reads.push((kind, GLOBAL)),
            Scope::Regional => reads.extend(cloud.regions().filter(|r| *r != GLOBAL).map(|r| (kind, r))),
        }
    }
    let results = join_all(reads.iter().map(|&(kind, region)| kind.read(ctx, region))).await;
    let mut live = Vec::new();
    let mut warnings = Vec::new();
    for ((kind, region), result) in reads.into_iter().zip(results) {
        let region = if region == GLOBAL { "the account (global)".to_string() } else { region.to_string() };
        match result {
            Ok(found) => live.extend(found),
            Err(e) if e.is_unserved() && !desired.iter().any(|d| d.address.kind() == kind.name()) => {
                warnings.push(format!(
                    "{} in {region} not checked ({} says {}): the spec declares none, but a leftover one would go unseen",
                    plural(kind),
                    kind.service(),
                    e.code_or_message()
                ));
            }
            Err(e) if e.is_unserved() => {
                return Err(CloudError {
                    message: format!(
                        "{}. Cannot plan {} in {region}: the endpoint does not serve {} or the credentials may not read it.",
                        e.message.trim_end_matches('.'),
                        plural(kind),
                        kind.service()
                    ),
                    ..e
                });
            }
            Err(e) => return Err(e),
        }
    }
    live.iter_mut().for_each(|l| {
        l.applied = super::drift::take_record(&mut l.attrs);
        forget_ignored_tags(&cloud.ignore_tags, l)
    });
    live.sort_by(|a, b| (&a.region, &a.address, &a.id).cmp(&(&b.region, &b.address, &b.id)));
    Ok((live, warnings))
}

fn plural(kind: &dyn Kind) -> String {
    format!("{}s", kind.name().replace('_', " "))
}

/// The live resources at one address: a retried create checks for its one resource, not the whole kind again.
pub async fn read_one(
    kind: &dyn Kind,
    ctx: &ReadCtx<'_>,
    region: &str,
    address: &Address,
) -> Result<Vec<Live>, CloudError> {
    let narrow = ctx.only(address);
    let mut found = kind.read(&narrow, region).await?;
    found.retain(|l| &l.address == address);
    found.iter_mut().for_each(|l| {
        l.applied = super::drift::take_record(&mut l.attrs);
        forget_ignored_tags(&ctx.cloud.ignore_tags, l)
    });
    Ok(found)
}

/// Tags another tool owns are not part of what the stack manages: not diffed, so never removed either.
pub fn forget_ignored_tags(ignore: &[String], live: &mut Live) {
    if let Some(serde_json::Value::Object(tags)) = live.attrs.get_mut("tags") {
        tags.retain(|k, _| !crate::spec::tag_ignored(ignore, k));
    }
}
