//! `db_instance.primary` and `db_instance.replica_1..N`: the RDS database (`[database]`) and its read replicas.
//!
//! The primary sits in `db_subnet_group.main`, in the database security group, encrypted, never public. Its
//! master password never passes through webscale by default: RDS keeps it in Secrets Manager
//! (ManageMasterUserPassword) and the outputs give the secret's ARN. With `password_env` the password is a
//! write-only attribute: sent in the create call, kept on the instance only as a salted digest (the
//! `webscale:password` tag), never read back.
//!
//! Replicas are `CreateDBInstanceReadReplica` of the primary, each pinned to a zone. They reference the primary, so
//! the engine creates them only once the primary's create wait has seen it `available` (creating -> backing-up ->
//! available on AWS: a replica's source must have backups), replaces them when the primary is replaced, and deletes
//! them before it. Deleting a replica never takes a final snapshot; deleting the primary takes one (named in the
//! plan, unless `--skip-final-snapshot`) and is refused by apply unless `--allow-data-loss` names it
//! ([`Kind::data_loss`]), which is also what lets webscale turn its deletion protection off.
//!
//! In place: class, storage, backups, windows, engine version, groups, port, protection, password. Whether such a
//! change waits for the maintenance window is `apply_immediately`; a change RDS holds as pending
//! (`PendingModifiedValues`) reads as already made, so the next plan does not repeat it.
//!
//! Read: one DescribeDBInstances per 100 instances (tags come inline), filtered on the stack tag here: RDS cannot
//! filter by tag.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::client::Waiters;
use aws_sdk_rds::types::DbInstance as Instance;
use serde::Deserialize;
use serde_json::{Value, json};

use super::rds_tags::{live_tags, sync_tags, tag_list};
use super::tags::{self, TAG_ADDRESS, TAG_STACK, Tags};
use super::{
    Address, Attr, Attrs as AttrMap, Created, DataLoss, Desired, Kind, Live, Op, Progress, ReadCtx, Timeouts, cloud_id,
    reference,
};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Database, Stack};

pub struct DbInstance;

/// The tag keeping the digest of the master password set from `password_env` (see the module comment).
pub const PASSWORD_TAG: &str = "webscale:password";

/// How often a wait looks at the instance to report its status (the SDK waiters poll every 30 s).
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// What the SDK waiter is given as its limit: the engine bounds every wait by the kind's timeouts and by Ctrl-C.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

pub fn primary() -> Address {
    Address::new("db_instance", "primary")
}

pub fn replica(n: u32) -> Address {
    Address::new("db_instance", &format!("replica_{n}"))
}

/// The DB instance identifier: AWS keeps it unique per region and account; letters, digits and single hyphens,
/// starting with a letter, at most 63 characters, stored in lower case.
pub fn identifier(stack: &str, address: &Address) -> String {
    let raw = format!("{stack}-{}", address.name().replace('_', "-")).to_ascii_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out.trim_end_matches('-').chars().take(63).collect()
}

/// The final snapshot a delete of `id` keeps: named after the instance and its resource id (unique to this
/// instance's lifetime, so a later database of the same name never collides with it), the same in the plan and in
/// the delete.
pub fn final_snapshot(id: &str, resource_id: &str) -> String {
    let suffix: String = resource_id
        .trim_start_matches("db-")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{id}-final-{suffix}")
}

/// The attributes of both shapes (a replica has `source` and `availability_zone`; the primary the rest).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Attrs {
    // Both.
    instance_class: String,
    security_groups: Vec<String>,
    publicly_accessible: bool,
    deletion_protection: bool,
    apply_immediately: bool,
    tags: Tags,
    // Replica.
    source: Option<String>,
    availability_zone: Option<String>,
    // Primary.
    engine: String,
    engine_version: String,
    storage_type: String,
    storage_gb: i32,
    max_storage_gb: Option<i32>,
    multi_az: bool,
    backup_retention_days: i32,
    backup_window: Option<String>,
    maintenance_window: Option<String>,
    encrypted: bool,
    subnet_group: String,
    username: String,
    database_name: Option<String>,
    port: i32,
    parameter_group: Option<String>,
    manage_password: bool,
    password: Option<String>,
}

#[async_trait]
impl Kind for DbInstance {
    fn name(&self) -> &'static str {
        "db_instance"
    }

    fn service(&self) -> &'static str {
        "rds"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(db) = &stack.database else { return Vec::new() };
        let groups = vec![reference(&super::security_group::address(&db.security_group))];
        let address = primary();
        let attrs = json!({
            "engine": db.engine.as_str(),
            "engine_version": db.engine_version,
            "instance_class": db.instance_class,
            "storage_type": db.storage_type,
            "storage_gb": db.storage_gb,
            "max_storage_gb": db.max_storage_gb,
            "multi_az": db.multi_az,
            "backup_retention_days": db.backup_retention_days,
            "backup_window": db.backup_window,
            "maintenance_window": db.maintenance_window,
            "encrypted": db.encrypted,
            "deletion_protection": db.deletion_protection,
            "publicly_accessible": false,
            "apply_immediately": db.apply_immediately,
            "subnet_group": reference(&super::db_subnet_group::address()),
            "security_groups": groups,
            "username": db.username,
            "database_name": db.database_name,
            "port": db.port,
            "parameter_group": db.parameter_group,
            "manage_password": db.password.is_none(),
            // Write-only: the engine turns it into a salted digest for the plan, and hands the kind the value.
            "password": db.password.as_ref().and_then(|p| p.value.as_ref().ok()).map(|secret| secret.expose()),
            "tags": tags::desired(stack, &address),
        });
        let mut out = vec![Desired::in_home_region(stack, address, &attrs)];
        for n in 1..=db.replicas {
            let address = replica(n);
            let zone = replica_zone(stack, db, n);
            let attrs = json!({
                "source": reference(&primary()),
                "availability_zone": zone,
                "instance_class": db.instance_class,
                "security_groups": groups,
                "publicly_accessible": false,
                // Replicas hold no data of their own: nothing to protect, and `destroy` must not need a flag for them.
                "deletion_protection": false,
                "apply_immediately": db.apply_immediately,
                "tags": tags::desired(stack, &address),
            });
            out.push(Desired::in_home_region(stack, address, &attrs));
        }
        out
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("engine").forces_replacement(),
            Attr::new("engine_version"),
            Attr::new("instance_class"),
            Attr::new("storage_type"),
            Attr::new("storage_gb"),
            Attr::new("max_storage_gb"),
            Attr::new("multi_az"),
            Attr::new("backup_retention_days"),
            Attr::new("backup_window"),
            Attr::new("maintenance_window"),
            Attr::new("encrypted").forces_replacement(),
            Attr::new("deletion_protection"),
            Attr::new("publicly_accessible"),
            Attr::new("apply_immediately"),
            Attr::new("subnet_group").forces_replacement(),
            Attr::new("security_groups"),
            Attr::new("username").forces_replacement(),
            Attr::new("database_name").forces_replacement(),
            Attr::new("port"),
            Attr::new("parameter_group"),
            Attr::new("manage_password"),
            Attr::new("password").write_only(),
            Attr::new("source").forces_replacement(),
            Attr::new("availability_zone").forces_replacement(),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    /// Terraform's defaults for RDS, raised for create: a replica of a few GB can take longer than 40 minutes.
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(60, 80, 60)
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || error.code() == "DBInstanceNotFoundFault"
    }

    fn data_loss(&self, live: &Live) -> Option<DataLoss> {
        if live.attrs.get("source").is_some_and(|s| !s.is_null()) {
            return None;
        }
        let text = |k: &str| live.attrs.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let gb = live.attrs.get("storage_gb").and_then(Value::as_i64).unwrap_or_default();
        // A failed instance is deleted without a snapshot (RDS refuses one): the plan promises none.
        let status = live.outputs.get("status").and_then(Value::as_str);
        let resource_id = live.outputs.get("resource_id").and_then(Value::as_str).filter(|_| !holds_nothing(status));
        Some(DataLoss {
            what: format!(
                "database {} ({} {}, {gb} GiB) and every row in it",
                live.id,
                text("engine"),
                text("engine_version")
            ),
            deletion_protection: live.attrs.get("deletion_protection") == Some(&Value::Bool(true)),
            final_snapshot: resource_id.map(|r| final_snapshot(&live.id, r)),
        })
    }

    fn update_note(&self, desired: &AttrMap, changed: &[String]) -> Option<String> {
        // What ModifyDBInstance holds for the maintenance window unless ApplyImmediately (API reference, per field).
        const DEFERRED: &[&str] =
            &["instance_class", "storage_gb", "storage_type", "multi_az", "engine_version", "max_storage_gb"];
        let has = |a: &str| changed.iter().any(|c| c == a);
        let mut notes = Vec::new();
        let waits: Vec<&str> = changed.iter().map(String::as_str).filter(|c| DEFERRED.contains(c)).collect();
        if !waits.is_empty() && desired.get("apply_immediately") != Some(&Value::Bool(true)) {
            notes.push(format!(
                "{} takes effect in the next maintenance window (apply_immediately = false)",
                waits.join(", ")
            ));
        }
        if has("port") {
            notes.push("a new port restarts the database at once, whatever apply_immediately says".to_string());
        }
        if has("parameter_group") {
            notes.push("a new parameter group takes effect at the database's next reboot".to_string());
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let all = super::rds_tags::instances(ctx, region).await?;
        let db = ctx.stack.database.as_ref();
        Ok(all
            .iter()
            .filter_map(|i| {
                let tags = live_tags(i.tag_list());
                if !tags::owned_by(&tags, ctx.cloud.stack()) {
                    return None;
                }
                if ctx.only.is_some_and(|a| tags.get(TAG_ADDRESS) != Some(&a.to_string())) {
                    return None;
                }
                Some(live_of(self.name(), region, i, tags, db))
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let rds = &cloud.clients(op.region)?.rds;
        let stack = want.tags.get(TAG_STACK).cloned().unwrap_or_default();
        let id = identifier(&stack, op.address);
        if let Some(source) = &want.source {
            // The engine has already waited for the primary; AWS may still answer with InvalidDBInstanceState if
            // the primary went back to `modifying` or `backing-up` since (a change applied in the same run).
            source_ready(rds, op.address, source).await?;
            let out = rds
                .create_db_instance_read_replica()
                .db_instance_identifier(&id)
                .source_db_instance_identifier(source)
                .db_instance_class(&want.instance_class)
                .set_availability_zone(want.availability_zone.clone())
                .publicly_accessible(false)
                .set_vpc_security_group_ids(Some(want.security_groups.clone()))
                .deletion_protection(want.deletion_protection)
                .set_tags(Some(tag_list(&want.tags)))
                .send()
                .await
                .call("CreateDBInstanceReadReplica")?;
            return Ok(created(out.db_instance(), &id));
        }
        let mut tags = want.tags.clone();
        if let Some(digest) = op.digests.get("password") {
            tags.insert(PASSWORD_TAG.into(), digest.clone());
        }
        let mut call = rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .engine(&want.engine)
            .engine_version(&want.engine_version)
            .db_instance_class(&want.instance_class)
            .storage_type(&want.storage_type)
            .allocated_storage(want.storage_gb)
            .set_max_allocated_storage(want.max_storage_gb)
            .multi_az(want.multi_az)
            .backup_retention_period(want.backup_retention_days)
            .set_preferred_backup_window(want.backup_window.clone())
            .set_preferred_maintenance_window(want.maintenance_window.clone())
            .storage_encrypted(want.encrypted)
            .deletion_protection(want.deletion_protection)
            .publicly_accessible(false)
            .db_subnet_group_name(&want.subnet_group)
            .set_vpc_security_group_ids(Some(want.security_groups.clone()))
            .master_username(&want.username)
            .set_db_name(want.database_name.clone())
            .port(want.port)
            .set_db_parameter_group_name(want.parameter_group.clone())
            .copy_tags_to_snapshot(true)
            .set_tags(Some(tag_list(&tags)));
        call = match (&want.password, want.manage_password) {
            (Some(password), false) => call.master_user_password(password),
            _ => call.manage_master_user_password(true),
        };
        // The identifier makes a repeat fail with DBInstanceAlreadyExists, which the engine finishes by reading the
        // instance back (it is tagged in this call) instead of making a second one.
        let out = call.send().await.call("CreateDBInstance")?;
        Ok(created(out.db_instance(), &id))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let rds = &cloud.clients(op.region)?.rds;
        let id = op.id()?;
        let mut call = rds.modify_db_instance().db_instance_identifier(id).apply_immediately(want.apply_immediately);
        let mut any = false;
        let mut set = |differs: bool| {
            any |= differs;
            differs
        };
        if set(want.instance_class != have.instance_class) {
            call = call.db_instance_class(&want.instance_class);
        }
        if set(want.security_groups_differ(&have)) {
            call = call.set_vpc_security_group_ids(Some(want.security_groups.clone()));
        }
        if set(want.publicly_accessible != have.publicly_accessible) {
            call = call.publicly_accessible(want.publicly_accessible);
        }
        if set(want.deletion_protection != have.deletion_protection) {
            call = call.deletion_protection(want.deletion_protection);
        }
        if want.source.is_none() {
            if set(want.storage_gb != have.storage_gb) {
                call = call.allocated_storage(want.storage_gb);
            }
            if set(want.max_storage_gb != have.max_storage_gb) {
                // No ceiling: AWS turns autoscaling off when the ceiling equals the allocation.
                call = call.max_allocated_storage(want.max_storage_gb.unwrap_or(want.storage_gb));
            }
            if set(want.storage_type != have.storage_type) {
                call = call.storage_type(&want.storage_type);
            }
            if set(want.multi_az != have.multi_az) {
                call = call.multi_az(want.multi_az);
            }
            if set(want.backup_retention_days != have.backup_retention_days) {
                call = call.backup_retention_period(want.backup_retention_days);
            }
            if set(want.backup_window.is_some() && want.backup_window != have.backup_window) {
                call = call.set_preferred_backup_window(want.backup_window.clone());
            }
            if set(want.maintenance_window.is_some() && want.maintenance_window != have.maintenance_window) {
                call = call.set_preferred_maintenance_window(want.maintenance_window.clone());
            }
            if set(want.engine_version != have.engine_version) {
                let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
                call = call
                    .engine_version(&want.engine_version)
                    .allow_major_version_upgrade(major(&want.engine_version) != major(&have.engine_version));
            }
            if set(want.port != have.port) {
                call = call.db_port_number(want.port);
            }
            if set(want.parameter_group.is_some() && want.parameter_group != have.parameter_group) {
                call = call.set_db_parameter_group_name(want.parameter_group.clone());
            }
            // A new password from the environment (its digest differs from the one kept on the instance), or a
            // switch between that and a password RDS manages. Only the digest tag changes otherwise.
            let digest = op.digests.get("password");
            match (&want.password, want.manage_password) {
                (Some(password), false) if set(have.manage_password || digest != have.password.as_ref()) => {
                    call = call.manage_master_user_password(false).master_user_password(password);
                }
                (_, true) if set(!have.manage_password) => call = call.manage_master_user_password(true),
                _ => {}
            }
        }
        let arn = if any {
            let out = call.send().await.call("ModifyDBInstance")?;
            out.db_instance().and_then(|i| i.db_instance_arn()).map(str::to_string)
        } else {
            None
        };
        let digest_differs = want.source.is_none() && op.digests.get("password") != have.password.as_ref();
        if op.changed("tags") || digest_differs {
            let arn = match arn {
                Some(arn) => arn,
                None => {
                    describe(rds, id).await?.and_then(|i| i.db_instance_arn().map(str::to_string)).unwrap_or_default()
                }
            };
            let mut want_tags = want.tags.clone();
            let mut have_tags = have.tags.clone();
            if want.source.is_none() {
                if let Some(d) = op.digests.get("password") {
                    want_tags.insert(PASSWORD_TAG.into(), d.clone());
                }
                if let Some(d) = &have.password {
                    have_tags.insert(PASSWORD_TAG.into(), d.clone());
                }
            }
            sync_tags(cloud, op.region, &arn, &want_tags, &have_tags).await?;
        }
        Ok(())
    }

    /// Turns deletion protection off first when it is on (apply has already refused unless the operator named this
    /// address with `--allow-data-loss`), then deletes: a replica without a snapshot (AWS refuses one), the
    /// primary with a final snapshot unless `--skip-final-snapshot`.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let rds = &cloud.clients(op.region)?.rds;
        let id = op.id()?;
        let Some(now) = describe(rds, id).await? else { return Ok(()) };
        if now.db_instance_status() == Some("deleting") {
            return Ok(());
        }
        if now.deletion_protection() == Some(true) {
            rds.modify_db_instance()
                .db_instance_identifier(id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .call("ModifyDBInstance")?;
        }
        let is_replica = now.read_replica_source_db_instance_identifier().is_some();
        let mut call = rds.delete_db_instance().db_instance_identifier(id);
        call = if is_replica || op.skip_final_snapshot || holds_nothing(now.db_instance_status()) {
            call.skip_final_snapshot(true)
        } else {
            let name = final_snapshot(id, now.dbi_resource_id().unwrap_or(id));
            call.skip_final_snapshot(false).final_db_snapshot_identifier(name)
        };
        match call.send().await.call("DeleteDBInstance") {
            Ok(_) => Ok(()),
            Err(e) if self.is_gone(&e) => Ok(()),
            // Already on its way out (a repeat of this delete whose answer was lost).
            Err(e) if e.code() == "InvalidDBInstanceState" && e.message.contains("already being deleted") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        let rds = &cloud.clients(op.region)?.rds;
        match phase {
            Phase::Create | Phase::Wait => until_available(rds, op.address, id, progress).await,
            Phase::Update => {
                until_available(rds, op.address, id, progress).await?;
                // Applied now: RDS shows the change as pending (often while still `available`) until it is done.
                // Deferred to the maintenance window: nothing to wait for.
                let immediate =
                    op.desired.as_ref().and_then(|d| d.get("apply_immediately")) == Some(&Value::Bool(true));
                if immediate { until_applied(rds, op.address, id, progress).await } else { Ok(()) }
            }
            Phase::Delete => until_deleted(rds, id, progress).await,
        }
    }
}

impl Attrs {
    fn security_groups_differ(&self, have: &Attrs) -> bool {
        let mut a = self.security_groups.clone();
        let mut b = have.security_groups.clone();
        a.sort();
        b.sort();
        a != b
    }
}

/// The zone replica `n` goes to: the spec's `replica_zones` in turn.
fn replica_zone(stack: &Stack, db: &Database, n: u32) -> Option<String> {
    if db.replica_zones.is_empty() {
        return None;
    }
    let name = &db.replica_zones[(n as usize - 1) % db.replica_zones.len()];
    stack.network.zones.iter().find(|z| &z.name == name).map(|z| z.availability_zone.clone())
}

fn created(instance: Option<&Instance>, id: &str) -> Created {
    let mut created = Created::from(instance.and_then(|i| i.db_instance_identifier()).unwrap_or(id).to_string());
    if let Some(i) = instance {
        created.outputs = outputs(i);
    }
    created
}

/// What other resources, `webscale output` and the plan (final snapshot names) use.
fn outputs(i: &Instance) -> AttrMap {
    let mut out = AttrMap::new();
    let endpoint = i.endpoint();
    out.insert("endpoint".into(), json!(endpoint.and_then(|e| e.address())));
    out.insert("port".into(), json!(endpoint.and_then(|e| e.port()).or(i.db_instance_port())));
    out.insert("arn".into(), json!(i.db_instance_arn()));
    out.insert("resource_id".into(), json!(i.dbi_resource_id()));
    out.insert("secret_arn".into(), json!(i.master_user_secret().and_then(|s| s.secret_arn())));
    out.insert("status".into(), json!(i.db_instance_status()));
    out
}

/// A live instance in the attributes' terms. `db` is the spec's table: where the spec leaves a value to AWS (a
/// window, the parameter group, the minor version, storage grown by autoscaling), the live value counts as the
/// spec's, so what AWS chose is not drift.
fn live_of(kind: &str, region: &str, i: &Instance, mut tags: Tags, db: Option<&Database>) -> Live {
    let id = i.db_instance_identifier().unwrap_or_default();
    let address = tags::owned_address(tags.get(TAG_ADDRESS).map(String::as_str), kind, id);
    let password = tags.remove(PASSWORD_TAG);
    let pending = i.pending_modified_values();
    let class = pending.and_then(|p| p.db_instance_class()).or(i.db_instance_class()).unwrap_or_default();
    let mut groups: Vec<String> = i
        .vpc_security_groups()
        .iter()
        .filter(|g| g.status() != Some("removing"))
        .filter_map(|g| g.vpc_security_group_id())
        .map(str::to_string)
        .collect();
    groups.sort();
    let groups: Vec<Value> = groups.into_iter().map(cloud_id).collect();
    let apply_immediately = db.is_some_and(|d| d.apply_immediately);
    let attrs = if let Some(source) = i.read_replica_source_db_instance_identifier() {
        json!({
            "source": cloud_id(source),
            "availability_zone": i.availability_zone(),
            "instance_class": class,
            "security_groups": groups,
            "publicly_accessible": i.publicly_accessible().unwrap_or(false),
            "deletion_protection": i.deletion_protection().unwrap_or(false),
            "apply_immediately": apply_immediately,
            "tags": tags,
        })
    } else {
        let version = pending.and_then(|p| p.engine_version()).or(i.engine_version()).unwrap_or_default();
        let version = match db {
            Some(d) if version.starts_with(&format!("{}.", d.engine_version)) => d.engine_version.clone(),
            _ => version.to_string(),
        };
        let mut storage = pending.and_then(|p| p.allocated_storage()).or(i.allocated_storage()).unwrap_or_default();
        let max = i.max_allocated_storage();
        if let Some(d) = db
            && d.max_storage_gb.is_some()
            && storage > d.storage_gb as i32
            && max.is_some_and(|m| storage <= m)
        {
            storage = d.storage_gb as i32;
        }
        // A ceiling equal to the allocation is how AWS says "no autoscaling".
        let max = max.filter(|m| *m > storage);
        let given = |spec: Option<&Option<String>>, live: Option<&str>| match spec {
            Some(None) => Value::Null,
            _ => json!(live),
        };
        json!({
            "engine": i.engine(),
            "engine_version": version,
            "instance_class": class,
            "storage_type": pending.and_then(|p| p.storage_type()).or(i.storage_type()),
            "storage_gb": storage,
            "max_storage_gb": max,
            "multi_az": pending.and_then(|p| p.multi_az()).or(i.multi_az()).unwrap_or(false),
            "backup_retention_days": pending.and_then(|p| p.backup_retention_period()).or(i.backup_retention_period()).unwrap_or(0),
            "backup_window": given(db.map(|d| &d.backup_window), i.preferred_backup_window()),
            "maintenance_window": given(db.map(|d| &d.maintenance_window), i.preferred_maintenance_window()),
            "encrypted": i.storage_encrypted().unwrap_or(false),
            "deletion_protection": i.deletion_protection().unwrap_or(false),
            "publicly_accessible": i.publicly_accessible().unwrap_or(false),
            "apply_immediately": apply_immediately,
            "subnet_group": i.db_subnet_group().and_then(|g| g.db_subnet_group_name()).map(cloud_id),
            "security_groups": groups,
            "username": i.master_username(),
            "database_name": i.db_name(),
            "port": pending.and_then(|p| p.port()).or(i.endpoint().and_then(|e| e.port())).or(i.db_instance_port()),
            "parameter_group": given(
                db.map(|d| &d.parameter_group),
                i.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name()),
            ),
            "manage_password": i.master_user_secret().is_some(),
            "password": password,
            "tags": tags,
        })
    };
    let mut live = Live::new(address, region, id, super::attrs(&attrs));
    live.outputs = outputs(i);
    live.pending = pending_status(i.db_instance_status());
    live
}

/// Statuses in which what depends on the instance must wait (a replica for its primary), or which the wait reports
/// as a failure. `available`, `storage-optimization` (usable, hours long) and `stopped` are settled.
fn pending_status(status: Option<&str>) -> Option<String> {
    match status? {
        "available" | "storage-optimization" | "stopped" => None,
        other => Some(other.to_string()),
    }
}

/// Statuses in which RDS deletes an instance only without a final snapshot (DeleteDBInstance, SkipFinalSnapshot):
/// it never came up, or cannot be read, so there is nothing to keep.
fn holds_nothing(status: Option<&str>) -> bool {
    matches!(status, Some("failed" | "incompatible-restore" | "incompatible-network"))
}

/// The instance now; `None` when AWS does not know it.
pub async fn describe(rds: &aws_sdk_rds::Client, id: &str) -> Result<Option<Instance>, CloudError> {
    match rds.describe_db_instances().db_instance_identifier(id).send().await.call("DescribeDBInstances") {
        Ok(out) => Ok(out.db_instances().iter().find(|i| i.db_instance_identifier() == Some(id)).cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A status the instance will not leave by waiting.
fn failed(address: &Address, i: &Instance) -> Option<CloudError> {
    let status = i.db_instance_status().unwrap_or_default();
    let id = i.db_instance_identifier().unwrap_or("?");
    let fix = match status {
        "failed" => {
            "AWS could not create it; see its events in the RDS console, then `webscale apply --replace ADDRESS --allow-data-loss ADDRESS`"
        }
        "deleting" => "someone is deleting it; run the apply again once it is gone to create a new one",
        s if s.starts_with("incompatible-") || s.starts_with("inaccessible-") || s == "storage-full" => {
            "RDS cannot run it as configured; fix the cause named by the status (RDS console, events)"
        }
        _ => return None,
    };
    Some(CloudError {
        operation: "wait for the database".into(),
        code: Some("DBInstanceFailed".into()),
        message: format!("{address} ({id}) is {status}: {}", fix.replace("ADDRESS", address.as_str())),
    })
}

/// The replica's source must be available (with backups: the spec requires them) before RDS accepts a replica.
async fn source_ready(rds: &aws_sdk_rds::Client, address: &Address, source: &str) -> Result<(), CloudError> {
    let progress = Progress::default();
    until_available(rds, address, source, &progress).await?;
    if let Some(i) = describe(rds, source).await?
        && i.backup_retention_period() == Some(0)
    {
        return Err(CloudError::internal(format!(
            "{address}: its primary {source} keeps no backups, and RDS makes replicas only of a primary with backups: set [database] backup_retention_days to 1 or more and apply"
        )));
    }
    Ok(())
}

/// Waits for `available` with no change still being applied (an immediate modification shows in
/// `PendingModifiedValues` until it is done), reporting RDS's status; the SDK waiter does the polling between looks.
async fn until_available(
    rds: &aws_sdk_rds::Client,
    address: &Address,
    id: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    loop {
        match describe(rds, id).await? {
            // Not visible yet right after the create (RDS's reads are eventually consistent), and the SDK waiter
            // has no case for "not found": look again at the waiter's pace, within the engine's bound.
            None => {
                progress.set("creating");
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            }
            Some(i) => {
                let status = i.db_instance_status().unwrap_or("unknown");
                progress.set(status);
                if let Some(e) = failed(address, &i) {
                    return Err(e);
                }
                if status == "available" || status == "storage-optimization" {
                    return Ok(());
                }
            }
        }
        let waiter = rds.wait_until_db_instance_available().db_instance_identifier(id).wait(UNBOUNDED);
        match tokio::time::timeout(STATUS_EVERY, waiter).await {
            Err(_) => continue,
            Ok(Ok(_)) => {
                progress.set("available");
                return Ok(());
            }
            // A failure state (deleting, failed, incompatible-...): the next look says which, and why.
            Ok(Err(aws_smithy_runtime_api::client::waiters::error::WaiterError::FailureState(_))) => continue,
            Ok(Err(e)) => return Err(e).call("wait for the database to become available"),
        }
    }
}

/// Whether RDS still holds changes to apply (class, storage, Multi-AZ, version, backups, port).
fn has_pending(i: &Instance) -> bool {
    i.pending_modified_values().is_some_and(|p| {
        p.db_instance_class().is_some()
            || p.allocated_storage().is_some()
            || p.multi_az().is_some()
            || p.engine_version().is_some()
            || p.storage_type().is_some()
            || p.backup_retention_period().is_some()
            || p.port().is_some()
    })
}

/// Polls until an immediate modification is done: `available` with nothing pending. No SDK waiter covers
/// pending modifications, hence the plain poll at the waiters' pace.
async fn until_applied(
    rds: &aws_sdk_rds::Client,
    address: &Address,
    id: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    loop {
        let Some(i) = describe(rds, id).await? else {
            return Err(CloudError::internal(format!("{address} ({id}) disappeared while its change was applied")));
        };
        if let Some(e) = failed(address, &i) {
            return Err(e);
        }
        let status = i.db_instance_status().unwrap_or("unknown");
        if status == "available" && !has_pending(&i) {
            progress.set("available");
            return Ok(());
        }
        progress.set(if status == "available" { "applying changes" } else { status });
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

async fn until_deleted(rds: &aws_sdk_rds::Client, id: &str, progress: &Progress) -> Result<(), CloudError> {
    loop {
        match describe(rds, id).await? {
            None => {
                progress.set("deleted");
                return Ok(());
            }
            Some(i) => progress.set(i.db_instance_status().unwrap_or("deleting")),
        }
        let waiter = rds.wait_until_db_instance_deleted().db_instance_identifier(id).wait(UNBOUNDED);
        match tokio::time::timeout(STATUS_EVERY, waiter).await {
            Err(_) => continue,
            Ok(Ok(_)) => {
                progress.set("deleted");
                return Ok(());
            }
            Ok(Err(e)) => return Err(e).call("wait for the database to be deleted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_rds_names() {
        assert_eq!(identifier("shop", &primary()), "shop-primary");
        assert_eq!(identifier("shop", &replica(2)), "shop-replica-2");
        assert_eq!(identifier("a--b-", &primary()), "a-b-primary", "no double hyphen");
        assert_eq!(final_snapshot("shop-primary", "db-ABCDEFGHIJKLMN"), "shop-primary-final-abcdefghij");
    }
}
