//! The manager's store of groups, dataflows, workers, enrollment tokens and
//! custom collectors (their metadata; the packages are files, see
//! `manager::collectors`), behind the [`Store`] trait.
//!
//! Every change increments one cluster-wide revision and is journaled with
//! the time and the name of the token that made it; each dataflow keeps its
//! whole history. Writes take a [`Precondition`] on the object's revision, so
//! two operators never overwrite each other silently. The handlers only see
//! the trait: the embedded default ([`SqliteStore`]) can be joined later by a
//! store shared by several managers, such as etcd, whose transactions compare
//! revisions the same way.

mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use utoipa::ToSchema;

use datascale_dataflow::collector::{Manifest, package::Checked};
pub use sqlite::SqliteStore;

/// The group every new store starts with.
pub const DEFAULT_GROUP: &str = "default";

/// A group of workers, which run its dataflows.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Free text for people.
    pub description: String,
    /// The revision of its last change; its `ETag`.
    pub revision: u64,
    /// The revision that created it.
    pub created_revision: u64,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// How many dataflows it holds.
    pub dataflows: u64,
}

/// A dataflow as stored: its document and where it is in the history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredDataflow {
    /// The group it belongs to.
    pub group: String,
    /// The dataflow's name.
    pub name: String,
    /// The revision of its last change; its `ETag`.
    pub revision: u64,
    /// The revision that created it.
    pub created_revision: u64,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// The name of the token that last changed it.
    pub updated_by: String,
    /// The dataflow document.
    #[schema(value_type = crate::api::schema::DataflowDocument)]
    pub document: Value,
}

/// A worker as the store keeps it: its identity, its groups and its
/// credential's hash. What it reports in heartbeats is kept in memory.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkerRecord {
    /// Its stable id.
    pub id: String,
    /// Its host name.
    pub hostname: String,
    /// Its DataScale version when it last enrolled.
    pub version: String,
    /// The groups of its own configuration.
    pub own_groups: Vec<String>,
    /// Groups assigned on the manager, which win over its own.
    pub assigned_groups: Option<Vec<String>>,
    /// The revision of the last change to its groups: its enrollment (or a
    /// change of its own groups) or an assignment.
    pub groups_revision: u64,
    /// Whether its credential was revoked.
    pub revoked: bool,
    /// When it first enrolled (RFC 3339).
    pub enrolled_at: String,
    /// The enrollment token it enrolled with; null: the built-in one
    /// (`service.manager.worker_token`).
    #[schema(pattern = "^et-[0-9a-f]{16}$")]
    pub enrollment_token: Option<String>,
    /// The groups it may ask for itself, those of its enrollment token;
    /// null: any. Assignments on the manager are not limited by them.
    #[schema(value_type = Option<Vec<datascale_protocol::Name>>)]
    pub allowed_groups: Option<Vec<String>>,
    /// The SHA-256 of its credential, in hex.
    #[serde(skip)]
    pub credential_sha256: String,
}

impl WorkerRecord {
    /// The groups whose dataflows it runs: the assigned ones, else its own.
    pub fn groups(&self) -> &[String] {
        self.assigned_groups.as_deref().unwrap_or(&self.own_groups)
    }
}

/// What an enrolled worker changes of its own record: its identity, as its
/// heartbeats tell it, and, when it renews it, its credential.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerUpdate {
    /// Its id.
    pub id: String,
    /// Its host name.
    pub hostname: String,
    /// Its DataScale version.
    pub version: String,
    /// The groups of its own configuration.
    pub own_groups: Vec<String>,
    /// The SHA-256 of its new credential; none keeps the current one.
    pub credential_sha256: Option<String>,
}

/// What a worker enrolls with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The built-in enrollment token (`service.manager.worker_token`): any
    /// group.
    BuiltIn,
    /// An enrollment token made through the API, by id: only its groups,
    /// until it expires or is used up; enrolling counts as one use.
    Token(String),
}

/// An enrollment token made through the API. Its secret is shown once, when
/// it is made; the store keeps only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EnrollmentToken {
    /// Its id.
    #[schema(pattern = "^et-[0-9a-f]{16}$")]
    pub id: String,
    /// Free text for people.
    pub description: String,
    /// The groups a worker enrolling with it may ask for; null: any.
    #[schema(value_type = Option<Vec<datascale_protocol::Name>>)]
    pub groups: Option<Vec<String>>,
    /// When it stops enrolling workers (RFC 3339); null: never.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// How many workers it may enroll; null: any number.
    #[schema(minimum = 1, maximum = 9223372036854775807_u64)]
    pub max_uses: Option<u64>,
    /// How many workers it enrolled.
    #[schema(maximum = 9223372036854775807_u64)]
    pub uses: u64,
    /// When it was made (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The name of the admin token that made it.
    pub created_by: String,
    /// The SHA-256 of its secret, in hex.
    #[serde(skip)]
    pub secret_sha256: String,
}

impl EnrollmentToken {
    /// Why it may not enroll a worker in `groups` at `now`, if it may not.
    pub fn refusal(&self, groups: &[String], now: DateTime<Utc>) -> Option<EnrollRefusal> {
        if let Some(expired) = self.expires_at.as_deref().filter(|at| expired(at, now)) {
            return Some(EnrollRefusal::Expired {
                id: self.id.clone(),
                at: expired.to_owned(),
            });
        }
        if let Some(max_uses) = self.max_uses.filter(|&max| self.uses >= max) {
            return Some(EnrollRefusal::UsedUp {
                id: self.id.clone(),
                max_uses,
            });
        }
        out_of_scope(
            self.groups.as_deref(),
            groups,
            &format!("enrollment token `{}`", self.id),
        )
    }
}

/// Whether the RFC 3339 time `at` is at or before `now`; a time that does
/// not parse counts as past, so that a damaged row enrolls nobody.
fn expired(at: &str, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(at).map_or(true, |at| at <= now)
}

/// Why a worker may not ask for `groups` when it may ask only for `allowed`
/// (`None`: any), which come from `limited_by`.
pub fn out_of_scope(
    allowed: Option<&[String]>,
    groups: &[String],
    limited_by: &str,
) -> Option<EnrollRefusal> {
    let allowed = allowed?;
    let outside: Vec<String> = groups
        .iter()
        .filter(|group| !allowed.contains(group))
        .cloned()
        .collect();
    (!outside.is_empty()).then(|| EnrollRefusal::OutOfScope {
        limited_by: limited_by.to_owned(),
        groups: outside,
        allowed: allowed.to_vec(),
    })
}

/// Why a worker may not enroll, or change its record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollRefusal {
    /// The enrollment token was revoked.
    #[error(
        "enrollment token `{0}` was revoked; ask an admin for another (datascale enrollment-token create)"
    )]
    TokenGone(String),
    /// The enrollment token expired.
    #[error(
        "enrollment token `{id}` expired at {at}; ask an admin for another (datascale enrollment-token create)"
    )]
    Expired {
        /// The token.
        id: String,
        /// When it expired (RFC 3339).
        at: String,
    },
    /// The enrollment token enrolled as many workers as it may.
    #[error(
        "enrollment token `{id}` is used up: it enrolled its {max_uses} worker(s); ask an admin for another (datascale enrollment-token create)"
    )]
    UsedUp {
        /// The token.
        id: String,
        /// How many it may enroll.
        max_uses: u64,
    },
    /// The worker asks for groups it may not have.
    #[error("{limited_by} allows only group(s) {}, not {}; ask only for those (service.worker.groups), or enroll with a token that allows them; an admin may assign any group to an enrolled worker", quoted(.allowed), quoted(.groups))]
    OutOfScope {
        /// What limits the groups: the token, or the worker's enrollment.
        limited_by: String,
        /// The groups asked for and not allowed.
        groups: Vec<String>,
        /// The groups allowed.
        allowed: Vec<String>,
    },
    /// The worker was revoked.
    #[error(
        "worker `{0}` was revoked; delete it on the manager (DELETE /api/v1/workers/{0}, or datascale worker delete {0}) to let it enroll again"
    )]
    Revoked(String),
    /// A worker of this id is enrolled, and not revoked.
    #[error(
        "worker id `{0}` is taken: a worker of this id is enrolled, and only its own credential renews it. If this is that worker and it lost its credential, an admin resets it with DELETE /api/v1/workers/{0} (datascale worker delete {0}), and it enrolls again"
    )]
    Taken(String),
    /// The worker is not enrolled (any more).
    #[error("worker `{0}` is not enrolled here (deleted, or expired); enroll again")]
    NotEnrolled(String),
}

/// Names in backquotes, separated by commas.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One version of a custom collector, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredCollector {
    /// The collector's name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The SHA-256 of its package, in hex.
    pub sha256: String,
    /// The size of its package, in bytes.
    pub size: u64,
    /// Its manifest, `collector.toml`.
    pub manifest: Manifest,
    /// The cluster revision of its upload.
    pub revision: u64,
    /// When it was uploaded (RFC 3339).
    pub uploaded_at: String,
    /// The name of the token that uploaded it.
    pub uploaded_by: String,
}

/// What a change to a dataflow did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// It did not exist and now does.
    Create,
    /// Its document was replaced.
    Update,
    /// An earlier revision's document was brought back.
    Restore,
    /// It was deleted.
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Restore => "restore",
            Action::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Action::Create,
            Action::Update,
            Action::Restore,
            Action::Delete,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
    }
}

/// One entry of a dataflow's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The cluster revision of the change.
    pub revision: u64,
    /// When it was made (RFC 3339).
    pub time: String,
    /// The name of the token that made it.
    pub token: String,
    /// What it did.
    pub action: Action,
    /// For a restore, the revision whose document was brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
    /// The document as of this revision; none for a deletion. Left out of
    /// history listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::api::schema::DataflowDocument>)]
    pub document: Option<Value>,
}

/// What a write expects of the object's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: create or replace.
    None,
    /// The object exists, at any revision (`If-Match: *`).
    Exists,
    /// The object exists at exactly this revision (`If-Match: "N"`).
    Revision(u64),
    /// The object does not exist (a create).
    Absent,
}

impl Precondition {
    /// Whether an object at `current` (none: absent) satisfies it.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Precondition::None => true,
            Precondition::Exists => current.is_some(),
            Precondition::Revision(expected) => current == Some(expected),
            Precondition::Absent => current.is_none(),
        }
    }
}

/// Who makes a change, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The name of the token (never the secret).
    pub token: String,
    /// For a restore, the revision whose document is brought back.
    pub restored_from: Option<u64>,
}

impl Change {
    /// A change by the token named `token`.
    pub fn by(token: &str) -> Self {
        Self {
            token: token.to_owned(),
            restored_from: None,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The object is new.
    Created,
    /// The object changed.
    Updated,
    /// The object already was so; no revision was made.
    Unchanged,
}

/// The object after a write, and what the write did.
#[derive(Debug, Clone, PartialEq)]
pub struct Written<T> {
    /// The object as stored now.
    pub value: T,
    /// What the write did.
    pub outcome: Outcome,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object (or its group) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the current state (it exists, it is in use).
    #[error("{0}")]
    Conflict(String),
    /// The object is not at the revision the caller expected.
    #[error("{what} is {}; the request expected {}", describe(*.current), describe_expected(*.expected))]
    PreconditionFailed {
        /// The object, for people (`dataflow default/tail`).
        what: String,
        /// Its current revision; none if it does not exist.
        current: Option<u64>,
        /// What the caller expected.
        expected: Precondition,
    },
    /// A worker may not enroll, or change its record so.
    #[error(transparent)]
    Enrollment(#[from] EnrollRefusal),
    /// The store itself failed (disk, database).
    #[error("the store failed: {0}")]
    Backend(String),
}

fn describe(current: Option<u64>) -> String {
    match current {
        Some(revision) => format!("at revision {revision}"),
        None => "absent".to_owned(),
    }
}

fn describe_expected(expected: Precondition) -> String {
    match expected {
        Precondition::None => "anything".to_owned(),
        Precondition::Exists => "that it exists".to_owned(),
        Precondition::Revision(revision) => format!("revision {revision}"),
        Precondition::Absent => "that it does not exist".to_owned(),
    }
}

/// The manager's durable state. Every method that changes something makes
/// exactly one new cluster revision, or none when nothing changed.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The current cluster revision (0 for an empty store).
    async fn revision(&self) -> Result<u64, StoreError>;

    /// Follows the cluster revision: the receiver sees every new value.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// Identifies this store's history, chosen when it was created:
    /// revisions compare only within one epoch (a store made anew starts
    /// counting again).
    fn epoch(&self) -> u64;

    /// Every group, by name.
    async fn groups(&self) -> Result<Vec<Group>, StoreError>;

    /// One group.
    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError>;

    /// Creates or changes a group.
    async fn put_group(
        &self,
        name: &str,
        description: &str,
        precondition: Precondition,
        change: &Change,
    ) -> Result<Written<Group>, StoreError>;

    /// Deletes a group; with `force` its dataflows too, else it must be empty.
    /// Returns the revision of the deletion.
    async fn delete_group(
        &self,
        name: &str,
        precondition: Precondition,
        force: bool,
        change: &Change,
    ) -> Result<u64, StoreError>;

    /// The dataflows of one group, or of every group, by group and name.
    async fn dataflows(&self, group: Option<&str>) -> Result<Vec<StoredDataflow>, StoreError>;

    /// One dataflow.
    async fn dataflow(&self, group: &str, name: &str)
    -> Result<Option<StoredDataflow>, StoreError>;

    /// Creates or replaces a dataflow of an existing group. A document equal
    /// to the stored one changes nothing and makes no revision.
    async fn put_dataflow(
        &self,
        group: &str,
        name: &str,
        document: &Value,
        precondition: Precondition,
        change: &Change,
    ) -> Result<Written<StoredDataflow>, StoreError>;

    /// Deletes a dataflow; its history is kept. Returns the revision of the
    /// deletion.
    async fn delete_dataflow(
        &self,
        group: &str,
        name: &str,
        precondition: Precondition,
        change: &Change,
    ) -> Result<u64, StoreError>;

    /// A dataflow's history, newest first, without the documents; empty when
    /// no dataflow of that name was ever stored in the group.
    async fn history(&self, group: &str, name: &str) -> Result<Vec<HistoryEntry>, StoreError>;

    /// The revision of the newest change to the dataflows of `groups`
    /// (creation, change or deletion); 0 when there was none.
    async fn dataflows_revision(&self, groups: &[String]) -> Result<u64, StoreError>;

    /// Every enrolled worker, by id.
    async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError>;

    /// Records a worker's enrollment with `grant`, which counts as one use
    /// of an enrollment token; the record's `enrollment_token` and
    /// `allowed_groups` come from the grant. Refused
    /// ([`StoreError::Enrollment`]) when the token is gone, expired, used up
    /// or does not allow the worker's groups, when the worker was revoked,
    /// and when a worker of that id is enrolled: only its own credential
    /// renews it ([`Store::update_worker`]). Makes a cluster revision, so
    /// that the worker's desired state gets a newer revision than any it
    /// ran before.
    async fn enroll_worker(
        &self,
        record: WorkerRecord,
        grant: &Grant,
    ) -> Result<WorkerRecord, StoreError>;

    /// Records what an enrolled worker changes of its record: host name,
    /// version, own groups (which must be among its `allowed_groups`) and,
    /// when it renews it, its credential's hash. Refused
    /// ([`StoreError::Enrollment`]) when it is not enrolled, was revoked, or
    /// asks for groups it may not have. Makes a cluster revision.
    async fn update_worker(&self, update: WorkerUpdate) -> Result<WorkerRecord, StoreError>;

    /// Every enrollment token made through the API, by id.
    async fn enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError>;

    /// Keeps a new enrollment token (its `uses` start at 0).
    async fn create_enrollment_token(
        &self,
        token: EnrollmentToken,
        change: &Change,
    ) -> Result<EnrollmentToken, StoreError>;

    /// Revokes (deletes) an enrollment token: it enrolls no worker from now
    /// on; the workers it enrolled keep their credentials.
    async fn revoke_enrollment_token(
        &self,
        id: &str,
        change: &Change,
    ) -> Result<EnrollmentToken, StoreError>;

    /// Assigns a worker's groups on the manager (none: back to its own).
    async fn assign_groups(
        &self,
        id: &str,
        groups: Option<Vec<String>>,
        change: &Change,
    ) -> Result<Written<WorkerRecord>, StoreError>;

    /// Revokes a worker's credential; it may not enroll again until deleted.
    async fn revoke_worker(&self, id: &str) -> Result<WorkerRecord, StoreError>;

    /// Forgets a worker; it may enroll again.
    async fn delete_worker(&self, id: &str) -> Result<(), StoreError>;

    /// Every version of every custom collector, by name, then from the
    /// lowest version to the highest.
    async fn collectors(&self) -> Result<Vec<StoredCollector>, StoreError>;

    /// Records the upload of a checked package. The same package again
    /// changes nothing; another package of a stored version is a
    /// [`StoreError::Conflict`].
    async fn put_collector(
        &self,
        package: &Checked,
        change: &Change,
    ) -> Result<Written<StoredCollector>, StoreError>;

    /// Deletes one version of a collector, or all of them (`None`), and
    /// returns what was deleted. Refused ([`StoreError::Conflict`], naming
    /// the dataflows) while a dataflow uses one of them: pins it, or names no
    /// version and it is the highest.
    async fn delete_collector(
        &self,
        name: &str,
        version: Option<&str>,
        change: &Change,
    ) -> Result<Vec<StoredCollector>, StoreError>;

    /// One entry of a dataflow's history, with its document.
    async fn history_entry(
        &self,
        group: &str,
        name: &str,
        revision: u64,
    ) -> Result<Option<HistoryEntry>, StoreError>;
}
