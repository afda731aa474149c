//! What the stack owns, as `webscale show` lists it: every live resource the kinds' reads find (the same reads a
//! plan makes, all kinds and regions at once), without planning or diffing.

use std::collections::HashSet;

use serde::Serialize;

use crate::resources::{self, Address, Key, Kinds, ReadCtx};

/// One live resource of the stack.
#[derive(Debug, Clone, Serialize)]
pub struct Owned {
    pub address: Address,
    pub region: String,
    pub id: String,
    /// What AWS says while it is still bringing the resource up or changing it (`pending`); else `ready`.
    pub state: String,
    /// Whether the spec declares it; one it does not is deleted by the next apply.
    pub in_spec: bool,
    /// It carries the stack tag but no valid address tag (made by hand?); never in the spec.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stray: bool,
    /// What others may refer to (a DNS name, name servers): `webscale output` reads them. Not part of `show`.
    #[serde(skip)]
    pub outputs: resources::Attrs,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub stack: String,
    pub region: String,
    pub account: Option<String>,
    /// In the kinds' order (a VPC before what is in it), then by region, address and id.
    pub resources: Vec<Owned>,
    /// What the stack uses but does not own (an adopted hosted zone, an AMI from a parameter), as found.
    pub lookups: Vec<Owned>,
    /// How many resources the spec declares that do not exist (yet).
    pub missing: usize,
    /// Kinds that could not be read (see `read::read_live`).
    pub warnings: Vec<String>,
}

/// Reads everything `stack` owns over `kinds`; asks STS who we are alongside, as a plan does.
pub async fn inventory(
    kinds: Kinds<'_>,
    cloud: &crate::aws::Cloud,
    stack: &crate::spec::Stack,
) -> Result<Inventory, crate::Error> {
    let desired = resources::desired_of(kinds, stack);
    let ctx = ReadCtx::new(cloud, stack);
    let whoami = async {
        match &cloud.account {
            Some(a) => Ok(Some(a.clone())),
            None => cloud.whoami().await.map_err(|source| crate::Error::Connect { endpoint: cloud.endpoint(), source }),
        }
    };
    let reads = async { super::read::read_live(kinds, &ctx, &desired).await.map_err(crate::Error::Read) };
    let (account, (live, warnings)) = futures::future::try_join(whoami, reads).await?;
    let lookup = |a: &Address| resources::find(kinds, a.kind()).is_some_and(|k| k.is_lookup());
    let declared: HashSet<Key> = desired.iter().filter(|d| !lookup(&d.address)).map(|d| d.key()).collect();
    let found: HashSet<Key> = live.iter().map(|l| l.key()).collect();
    let rank = |a: &Address| kinds.iter().position(|k| k.name() == a.kind()).unwrap_or(usize::MAX);
    let (lookups, live): (Vec<_>, Vec<_>) = live.into_iter().partition(|l| lookup(&l.address));
    let as_owned = |l: resources::Live| Owned {
        in_spec: declared.contains(&l.key()),
        stray: l.address.name().starts_with(resources::STRAY),
        state: l.pending.clone().unwrap_or_else(|| "ready".to_string()),
        address: l.address,
        region: l.region,
        id: l.id,
        outputs: l.outputs,
    };
    let mut owned: Vec<Owned> = live.into_iter().map(as_owned).collect();
    let lookups: Vec<Owned> = lookups.into_iter().map(as_owned).collect();
    owned.sort_by(|a, b| {
        (rank(&a.address), &a.region, &a.address, &a.id).cmp(&(rank(&b.address), &b.region, &b.address, &b.id))
    });
    Ok(Inventory {
        stack: stack.name.clone(),
        region: stack.region.clone(),
        account,
        resources: owned,
        lookups,
        missing: declared.difference(&found).count(),
        warnings,
    })
}
