//! Live state: every kind reads what the stack owns, all kinds and regions at once. One tag-filtered, paginated
//! describe per kind and region is the budget; no per-resource calls on the read path.

use futures::future::try_join_all;

use crate::aws::{Cloud, CloudError};
use crate::resources::{Live, REGISTRY};

/// Everything the stack owns in the cloud's regions, sorted by address then id (stable output).
pub async fn read_live(cloud: &Cloud) -> Result<Vec<Live>, CloudError> {
    let reads = cloud
        .regions()
        .flat_map(|region| REGISTRY.iter().map(move |kind| kind.read(cloud, region)))
        .collect::<Vec<_>>();
    let mut live: Vec<Live> = try_join_all(reads).await?.into_iter().flatten().collect();
    live.iter_mut().for_each(|l| forget_ignored_tags(cloud, l));
    live.sort_by(|a, b| (&a.address, &a.id).cmp(&(&b.address, &b.id)));
    Ok(live)
}

/// Tags another tool owns are not part of what the stack manages: not diffed, so never removed either.
pub fn forget_ignored_tags(cloud: &Cloud, live: &mut Live) {
    if let Some(serde_json::Value::Object(tags)) = live.attrs.get_mut("tags") {
        tags.retain(|k, _| !crate::spec::tag_ignored(&cloud.ignore_tags, k));
    }
}
