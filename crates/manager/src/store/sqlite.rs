//! The embedded store: one SQLite database file under `data_dir`, in WAL
//! mode with `synchronous = FULL`, so a change is on disk before it is
//! acknowledged and a SIGKILL at any moment leaves the last committed state.
//! One connection makes the changes in turn, on the blocking pool; each
//! change is one transaction that also bumps the cluster revision and writes
//! the change journal. A second connection serves the reads, which WAL lets
//! see the last committed state while a change is being written: a slow disk
//! holds up the writers, never the readers.

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use datascale_dataflow::collector::{self, package::Checked};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::watch;

use super::{
    Action, Change, DEFAULT_GROUP, EnrollRefusal, EnrollmentToken, Grant, Group, HistoryEntry,
    Outcome, Precondition, Store, StoreError, StoredCollector, StoredDataflow, WorkerRecord,
    WorkerUpdate, Written, out_of_scope,
};

/// The version of the schema below, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    token TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_revision INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dataflows (
    group_name TEXT NOT NULL REFERENCES groups(name),
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    created_revision INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (group_name, name)
);
CREATE TABLE IF NOT EXISTS dataflow_history (
    group_name TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    time TEXT NOT NULL,
    token TEXT NOT NULL,
    action TEXT NOT NULL,
    restored_from INTEGER,
    document TEXT,
    PRIMARY KEY (group_name, name, revision)
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    version TEXT NOT NULL,
    own_groups TEXT NOT NULL,
    assigned_groups TEXT,
    groups_revision INTEGER NOT NULL,
    revoked INTEGER NOT NULL,
    enrolled_at TEXT NOT NULL,
    credential_sha256 TEXT NOT NULL,
    enrollment_token TEXT,
    allowed_groups TEXT
);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    groups TEXT,
    expires_at TEXT,
    max_uses INTEGER,
    uses INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collectors (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    revision INTEGER NOT NULL,
    uploaded_at TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
";

const COLLECTOR_COLUMNS: &str =
    "name, version, sha256, size, manifest, revision, uploaded_at, uploaded_by";

/// What schema 3 added to the tables of schemas 1 and 2.
const FROM_SCHEMA_2: &str = "
ALTER TABLE workers ADD COLUMN enrollment_token TEXT;
ALTER TABLE workers ADD COLUMN allowed_groups TEXT;
";

const WORKER_COLUMNS: &str = "id, hostname, version, own_groups, assigned_groups,
     groups_revision, revoked, enrolled_at, credential_sha256, enrollment_token, allowed_groups";

const ENROLLMENT_TOKEN_COLUMNS: &str = "id, secret_sha256, description, groups, expires_at,
     max_uses, uses, created_at, created_by";

const GROUP_COLUMNS: &str = "g.name, g.description, g.revision, g.created_revision, g.updated_at,
     (SELECT COUNT(*) FROM dataflows d WHERE d.group_name = g.name)";

const DATAFLOW_COLUMNS: &str =
    "group_name, name, revision, created_revision, updated_at, updated_by, document";

/// The embedded store, one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    revision: watch::Sender<u64>,
    epoch: u64,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Backend(err.to_string())
    }
}

/// A change being written: its transaction, revision and time.
struct Writing<'a> {
    tx: &'a Transaction<'a>,
    revision: u64,
    time: String,
    change: &'a Change,
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (with the `default` group) on
    /// first use.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let opening = |err: rusqlite::Error| {
            StoreError::Backend(format!("cannot open the store {}: {err}", path.display()))
        };
        let mut connection = Connection::open(path).map_err(opening)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(opening)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(opening)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the store {} was written by a newer DataScale (schema {version}; this one knows {SCHEMA_VERSION})",
                path.display()
            )));
        }
        connection.execute_batch(SCHEMA).map_err(opening)?;
        // Schemas 1 and 2 had the workers table without these columns.
        if (1..=2).contains(&version) {
            connection
                .execute_batch(&format!(
                    "BEGIN; {FROM_SCHEMA_2} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(opening)?;
        }
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(opening)?;
        let read_epoch = |connection: &Connection| -> Result<Option<u64>, StoreError> {
            Ok(connection
                .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |row| {
                    row.get(0)
                })
                .optional()?)
        };
        let epoch = match read_epoch(&connection)? {
            Some(epoch) => epoch,
            None => {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
                let epoch = u64::from_le_bytes(bytes) >> 1;
                write(&mut connection, &Change::by("datascale"), |writing| {
                    writing.tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('epoch', ?1)",
                        params![epoch],
                    )?;
                    insert_group(writing, DEFAULT_GROUP, "Workers with no other group.")?;
                    Ok(((), Some(format!("create group {DEFAULT_GROUP}"))))
                })?;
                epoch
            }
        };
        let revision = current_revision(&connection)?;
        let reader = Connection::open(path).map_err(opening)?;
        reader
            .execute_batch("PRAGMA query_only = ON;")
            .map_err(opening)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            reader: Arc::new(Mutex::new(reader)),
            revision: watch::Sender::new(revision),
            epoch,
        })
    }

    /// Runs `op` on the writing connection, on the blocking pool.
    async fn with<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run(&self.connection, op).await
    }

    /// Runs `op`, which only reads, on the reading connection.
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run(&self.reader, |connection| op(connection)).await
    }

    /// Runs one change; announces its revision when it made one.
    async fn change<T, F>(&self, change: &Change, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Writing<'_>) -> Result<(T, Option<String>), StoreError> + Send + 'static,
    {
        let change = change.clone();
        let (value, revision) = self
            .with(move |connection| write(connection, &change, op))
            .await?;
        if let Some(revision) = revision {
            self.revision.send_replace(revision);
        }
        Ok(value)
    }
}

/// Runs `op` on `connection`, on the blocking pool.
async fn run<T, F>(connection: &Arc<Mutex<Connection>>, op: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    let connection = connection.clone();
    tokio::task::spawn_blocking(move || {
        let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
        op(&mut connection)
    })
    .await
    .map_err(|err| StoreError::Backend(format!("a store operation panicked: {err}")))?
}

/// Runs `op` in one immediate transaction. `op` returns its result and, when
/// it changed something, a summary for the journal: then the revision is
/// bumped and the transaction committed; otherwise it is rolled back.
fn write<T>(
    connection: &mut Connection,
    change: &Change,
    op: impl FnOnce(&Writing<'_>) -> Result<(T, Option<String>), StoreError>,
) -> Result<(T, Option<u64>), StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let revision = current_revision(&tx)? + 1;
    let writing = Writing {
        tx: &tx,
        revision,
        time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        change,
    };
    let (value, summary) = op(&writing)?;
    let Some(summary) = summary else {
        return Ok((value, None));
    };
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('revision', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![revision],
    )?;
    tx.execute(
        "INSERT INTO changes (revision, time, token, summary) VALUES (?1, ?2, ?3, ?4)",
        params![revision, writing.time, change.token, summary],
    )?;
    tx.commit()?;
    Ok((value, Some(revision)))
}

fn current_revision(connection: &Connection) -> Result<u64, StoreError> {
    let revision: Option<u64> = connection
        .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(revision.unwrap_or(0))
}

fn insert_group(writing: &Writing<'_>, name: &str, description: &str) -> Result<(), StoreError> {
    writing.tx.execute(
        "INSERT INTO groups (name, description, created_revision, revision, updated_at)
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![name, description, writing.revision, writing.time],
    )?;
    Ok(())
}

fn group_row(row: &Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        name: row.get(0)?,
        description: row.get(1)?,
        revision: row.get(2)?,
        created_revision: row.get(3)?,
        updated_at: row.get(4)?,
        dataflows: row.get(5)?,
    })
}

fn read_group(connection: &Connection, name: &str) -> Result<Option<Group>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.name = ?1"),
            params![name],
            group_row,
        )
        .optional()?)
}

/// A column stored as JSON text (a document, a list of groups), read back.
fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(err))
    })
}

fn dataflow_row(row: &Row<'_>) -> rusqlite::Result<StoredDataflow> {
    Ok(StoredDataflow {
        group: row.get(0)?,
        name: row.get(1)?,
        revision: row.get(2)?,
        created_revision: row.get(3)?,
        updated_at: row.get(4)?,
        updated_by: row.get(5)?,
        document: json_column(&row.get::<_, String>(6)?)?,
    })
}

fn read_dataflow(
    connection: &Connection,
    group: &str,
    name: &str,
) -> Result<Option<StoredDataflow>, StoreError> {
    Ok(connection
        .query_row(
            &format!(
                "SELECT {DATAFLOW_COLUMNS} FROM dataflows WHERE group_name = ?1 AND name = ?2"
            ),
            params![group, name],
            dataflow_row,
        )
        .optional()?)
}

fn worker_row(row: &Row<'_>) -> rusqlite::Result<WorkerRecord> {
    Ok(WorkerRecord {
        id: row.get(0)?,
        hostname: row.get(1)?,
        version: row.get(2)?,
        own_groups: json_column(&row.get::<_, String>(3)?)?,
        assigned_groups: optional_json(row.get(4)?)?,
        groups_revision: row.get(5)?,
        revoked: row.get(6)?,
        enrolled_at: row.get(7)?,
        credential_sha256: row.get(8)?,
        enrollment_token: row.get(9)?,
        allowed_groups: optional_json(row.get(10)?)?,
    })
}

/// A nullable column stored as JSON text, read back.
fn optional_json<T: serde::de::DeserializeOwned>(
    text: Option<String>,
) -> rusqlite::Result<Option<T>> {
    text.as_deref().map(json_column).transpose()
}

/// A value kept as JSON text in a nullable column.
fn to_optional_json(value: Option<&[String]>) -> Option<String> {
    value.map(|names| serde_json::to_string(names).expect("names serialize"))
}

fn enrollment_token_row(row: &Row<'_>) -> rusqlite::Result<EnrollmentToken> {
    Ok(EnrollmentToken {
        id: row.get(0)?,
        secret_sha256: row.get(1)?,
        description: row.get(2)?,
        groups: optional_json(row.get(3)?)?,
        expires_at: row.get(4)?,
        max_uses: row.get(5)?,
        uses: row.get(6)?,
        created_at: row.get(7)?,
        created_by: row.get(8)?,
    })
}

fn read_enrollment_token(
    connection: &Connection,
    id: &str,
) -> Result<Option<EnrollmentToken>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {ENROLLMENT_TOKEN_COLUMNS} FROM enrollment_tokens WHERE id = ?1"),
            params![id],
            enrollment_token_row,
        )
        .optional()?)
}

fn read_worker(connection: &Connection, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?1"),
            params![id],
            worker_row,
        )
        .optional()?)
}

fn collector_row(row: &Row<'_>) -> rusqlite::Result<StoredCollector> {
    Ok(StoredCollector {
        name: row.get(0)?,
        version: row.get(1)?,
        sha256: row.get(2)?,
        size: row.get(3)?,
        manifest: json_column(&row.get::<_, String>(4)?)?,
        revision: row.get(5)?,
        uploaded_at: row.get(6)?,
        uploaded_by: row.get(7)?,
    })
}

/// The versions of collector `name` (every collector's when `None`), from
/// the lowest to the highest.
fn read_collectors(
    connection: &Connection,
    name: Option<&str>,
) -> Result<Vec<StoredCollector>, StoreError> {
    let mut statement = connection.prepare(&format!(
        "SELECT {COLLECTOR_COLUMNS} FROM collectors WHERE ?1 IS NULL OR name = ?1"
    ))?;
    let mut collectors = statement
        .query_map(params![name], collector_row)?
        .collect::<Result<Vec<_>, _>>()?;
    collectors.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| collector::compare_versions(&a.version, &b.version))
    });
    Ok(collectors)
}

/// The dataflows (`group/name`) that would lose a collector version they
/// run if `doomed` were deleted from `versions`, the versions of `name`.
fn dataflows_using(
    connection: &Connection,
    name: &str,
    versions: &[StoredCollector],
    doomed: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let latest = collector::resolve(versions.iter().map(|c| c.version.as_str()), None);
    let mut statement = connection
        .prepare("SELECT group_name, name, document FROM dataflows ORDER BY group_name, name")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            json_column::<Value>(&row.get::<_, String>(2)?)?,
        ))
    })?;
    let mut users = Vec::new();
    for row in rows {
        let (group, dataflow, document) = row?;
        let uses = collector::uses(&document).into_iter().any(|used| {
            used.collector == name
                && match (doomed, used.version.as_deref()) {
                    (None, _) => true,
                    (Some(doomed), Some(pinned)) => pinned == doomed,
                    (Some(doomed), None) => latest == Some(doomed),
                }
        });
        if uses {
            users.push(format!("{group}/{dataflow}"));
        }
    }
    Ok(users)
}

fn no_worker(id: &str) -> StoreError {
    StoreError::NotFound(format!("no worker with id `{id}`"))
}

fn history_row(row: &Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let action: String = row.get(3)?;
    let document: Option<String> = row.get(5)?;
    Ok(HistoryEntry {
        revision: row.get(0)?,
        time: row.get(1)?,
        token: row.get(2)?,
        action: Action::parse(&action).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(3, action, rusqlite::types::Type::Text)
        })?,
        restored_from: row.get(4)?,
        document: document.as_deref().map(json_column).transpose()?,
    })
}

fn record_history(
    writing: &Writing<'_>,
    group: &str,
    name: &str,
    action: Action,
    document: Option<&str>,
) -> Result<(), StoreError> {
    writing.tx.execute(
        "INSERT INTO dataflow_history
             (group_name, name, revision, time, token, action, restored_from, document)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            group,
            name,
            writing.revision,
            writing.time,
            writing.change.token,
            action.as_str(),
            writing.change.restored_from,
            document
        ],
    )?;
    Ok(())
}

fn check(
    precondition: Precondition,
    current: Option<u64>,
    what: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match precondition.holds(current) {
        true => Ok(()),
        false => Err(StoreError::PreconditionFailed {
            what: what(),
            current,
            expected: precondition,
        }),
    }
}

fn no_group(name: &str) -> StoreError {
    StoreError::NotFound(format!("no group named `{name}`"))
}

#[async_trait]
impl Store for SqliteStore {
    async fn revision(&self) -> Result<u64, StoreError> {
        self.read(current_revision).await
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups g ORDER BY g.name"
            ))?;
            let groups = statement.query_map([], group_row)?;
            Ok(groups.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let name = name.to_owned();
        self.read(move |connection| read_group(connection, &name))
            .await
    }

    async fn put_group(
        &self,
        name: &str,
        description: &str,
        precondition: Precondition,
        change: &Change,
    ) -> Result<Written<Group>, StoreError> {
        let (name, description) = (name.to_owned(), description.to_owned());
        self.change(change, move |writing| {
            let current = read_group(writing.tx, &name)?;
            check(precondition, current.as_ref().map(|g| g.revision), || {
                format!("group `{name}`")
            })?;
            let (outcome, summary) = match current {
                Some(group) if group.description == description => {
                    return Ok((
                        Written {
                            value: group,
                            outcome: Outcome::Unchanged,
                        },
                        None,
                    ));
                }
                Some(_) => {
                    writing.tx.execute(
                        "UPDATE groups SET description = ?2, revision = ?3, updated_at = ?4
                         WHERE name = ?1",
                        params![name, description, writing.revision, writing.time],
                    )?;
                    (Outcome::Updated, format!("update group {name}"))
                }
                None => {
                    insert_group(writing, &name, &description)?;
                    (Outcome::Created, format!("create group {name}"))
                }
            };
            let value = read_group(writing.tx, &name)?.ok_or_else(|| no_group(&name))?;
            Ok((Written { value, outcome }, Some(summary)))
        })
        .await
    }

    async fn delete_group(
        &self,
        name: &str,
        precondition: Precondition,
        force: bool,
        change: &Change,
    ) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.change(change, move |writing| {
            let current = read_group(writing.tx, &name)?.ok_or_else(|| no_group(&name))?;
            check(precondition, Some(current.revision), || {
                format!("group `{name}`")
            })?;
            let mut statement = writing
                .tx
                .prepare("SELECT name FROM dataflows WHERE group_name = ?1 ORDER BY name")?;
            let held: Vec<String> = statement
                .query_map(params![name], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            if !held.is_empty() && !force {
                return Err(StoreError::Conflict(format!(
                    "group `{name}` holds {} dataflow(s): {}; delete them first, or delete with ?force=true",
                    held.len(),
                    held.join(", ")
                )));
            }
            for dataflow in &held {
                record_history(writing, &name, dataflow, Action::Delete, None)?;
            }
            writing
                .tx
                .execute("DELETE FROM dataflows WHERE group_name = ?1", params![name])?;
            writing
                .tx
                .execute("DELETE FROM groups WHERE name = ?1", params![name])?;
            Ok((writing.revision, Some(format!("delete group {name}"))))
        })
        .await
    }

    async fn dataflows(&self, group: Option<&str>) -> Result<Vec<StoredDataflow>, StoreError> {
        let group = group.map(str::to_owned);
        self.read(move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {DATAFLOW_COLUMNS} FROM dataflows
                 WHERE ?1 IS NULL OR group_name = ?1 ORDER BY group_name, name"
            ))?;
            let dataflows = statement.query_map(params![group], dataflow_row)?;
            Ok(dataflows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn dataflow(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<StoredDataflow>, StoreError> {
        let (group, name) = (group.to_owned(), name.to_owned());
        self.read(move |connection| read_dataflow(connection, &group, &name))
            .await
    }

    async fn put_dataflow(
        &self,
        group: &str,
        name: &str,
        document: &Value,
        precondition: Precondition,
        change: &Change,
    ) -> Result<Written<StoredDataflow>, StoreError> {
        let (group, name, document) = (group.to_owned(), name.to_owned(), document.clone());
        self.change(change, move |writing| {
            if read_group(writing.tx, &group)?.is_none() {
                return Err(no_group(&group));
            }
            let current = read_dataflow(writing.tx, &group, &name)?;
            check(precondition, current.as_ref().map(|d| d.revision), || {
                format!("dataflow `{group}/{name}`")
            })?;
            let action = match &current {
                Some(stored) if stored.document == document => {
                    let value = stored.clone();
                    return Ok((
                        Written {
                            value,
                            outcome: Outcome::Unchanged,
                        },
                        None,
                    ));
                }
                _ if writing.change.restored_from.is_some() => Action::Restore,
                Some(_) => Action::Update,
                None => Action::Create,
            };
            let text = document.to_string();
            writing.tx.execute(
                "INSERT INTO dataflows
                     (group_name, name, document, created_revision, revision, updated_at, updated_by)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
                 ON CONFLICT (group_name, name) DO UPDATE SET
                     document = excluded.document, revision = excluded.revision,
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![
                    group,
                    name,
                    text,
                    writing.revision,
                    writing.time,
                    writing.change.token
                ],
            )?;
            record_history(writing, &group, &name, action, Some(&text))?;
            let value = read_dataflow(writing.tx, &group, &name)?
                .ok_or_else(|| StoreError::Backend("a written dataflow is missing".to_owned()))?;
            let outcome = match current {
                Some(_) => Outcome::Updated,
                None => Outcome::Created,
            };
            let summary = format!("{} dataflow {group}/{name}", action.as_str());
            Ok((Written { value, outcome }, Some(summary)))
        })
        .await
    }

    async fn delete_dataflow(
        &self,
        group: &str,
        name: &str,
        precondition: Precondition,
        change: &Change,
    ) -> Result<u64, StoreError> {
        let (group, name) = (group.to_owned(), name.to_owned());
        self.change(change, move |writing| {
            let current = read_dataflow(writing.tx, &group, &name)?.ok_or_else(|| {
                StoreError::NotFound(format!("no dataflow named `{name}` in group `{group}`"))
            })?;
            check(precondition, Some(current.revision), || {
                format!("dataflow `{group}/{name}`")
            })?;
            writing.tx.execute(
                "DELETE FROM dataflows WHERE group_name = ?1 AND name = ?2",
                params![group, name],
            )?;
            record_history(writing, &group, &name, Action::Delete, None)?;
            Ok((
                writing.revision,
                Some(format!("delete dataflow {group}/{name}")),
            ))
        })
        .await
    }

    async fn dataflows_revision(&self, groups: &[String]) -> Result<u64, StoreError> {
        let groups = serde_json::to_string(groups).expect("names serialize");
        self.read(move |connection| {
            let newest: Option<u64> = connection.query_row(
                "SELECT MAX(revision) FROM dataflow_history
                 WHERE group_name IN (SELECT value FROM json_each(?1))",
                params![groups],
                |row| row.get(0),
            )?;
            Ok(newest.unwrap_or(0))
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.read(|connection| {
            let mut statement =
                connection.prepare(&format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY id"))?;
            let workers = statement.query_map([], worker_row)?;
            Ok(workers.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn enroll_worker(
        &self,
        record: WorkerRecord,
        grant: &Grant,
    ) -> Result<WorkerRecord, StoreError> {
        let change = Change::by(&format!("worker {}", record.id));
        let grant = grant.clone();
        self.change(&change, move |writing| {
            let (token, allowed) = match &grant {
                Grant::BuiltIn => (None, None),
                Grant::Token(id) => {
                    let token = read_enrollment_token(writing.tx, id)?
                        .ok_or_else(|| EnrollRefusal::TokenGone(id.clone()))?;
                    if let Some(refusal) = token.refusal(&record.own_groups, Utc::now()) {
                        return Err(refusal.into());
                    }
                    (Some(token.id), token.groups)
                }
            };
            if let Some(known) = read_worker(writing.tx, &record.id)? {
                return Err(match known.revoked {
                    true => EnrollRefusal::Revoked(record.id),
                    false => EnrollRefusal::Taken(record.id),
                }
                .into());
            }
            if let Some(id) = &token {
                writing.tx.execute(
                    "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?1",
                    params![id],
                )?;
            }
            writing.tx.execute(
                &format!(
                    "INSERT INTO workers ({WORKER_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, NULL, ?5, 0, ?6, ?7, ?8, ?9)"
                ),
                params![
                    record.id,
                    record.hostname,
                    record.version,
                    serde_json::to_string(&record.own_groups).expect("names serialize"),
                    writing.revision,
                    record.enrolled_at,
                    record.credential_sha256,
                    token,
                    to_optional_json(allowed.as_deref()),
                ],
            )?;
            let stored =
                read_worker(writing.tx, &record.id)?.ok_or_else(|| no_worker(&record.id))?;
            let summary = match &token {
                Some(token) => format!("enroll worker {} with enrollment token {token}", record.id),
                None => format!("enroll worker {}", record.id),
            };
            Ok((stored, Some(summary)))
        })
        .await
    }

    async fn update_worker(&self, update: WorkerUpdate) -> Result<WorkerRecord, StoreError> {
        let change = Change::by(&format!("worker {}", update.id));
        self.change(&change, move |writing| {
            let id = &update.id;
            let current = read_worker(writing.tx, id)?
                .ok_or_else(|| EnrollRefusal::NotEnrolled(id.clone()))?;
            if current.revoked {
                return Err(EnrollRefusal::Revoked(id.clone()).into());
            }
            let limited_by = format!("the enrollment of worker `{id}`");
            if let Some(refusal) = out_of_scope(
                current.allowed_groups.as_deref(),
                &update.own_groups,
                &limited_by,
            ) {
                return Err(refusal.into());
            }
            writing.tx.execute(
                "UPDATE workers SET hostname = ?2, version = ?3, own_groups = ?4,
                     credential_sha256 = COALESCE(?5, credential_sha256), groups_revision = ?6
                 WHERE id = ?1",
                params![
                    id,
                    update.hostname,
                    update.version,
                    serde_json::to_string(&update.own_groups).expect("names serialize"),
                    update.credential_sha256,
                    writing.revision
                ],
            )?;
            let stored = read_worker(writing.tx, id)?.ok_or_else(|| no_worker(id))?;
            let summary = match update.credential_sha256 {
                Some(_) => format!("renew the credential of worker {id}"),
                None => format!("update worker {id}"),
            };
            Ok((stored, Some(summary)))
        })
        .await
    }

    async fn enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {ENROLLMENT_TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY id"
            ))?;
            let tokens = statement.query_map([], enrollment_token_row)?;
            Ok(tokens.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_enrollment_token(
        &self,
        token: EnrollmentToken,
        change: &Change,
    ) -> Result<EnrollmentToken, StoreError> {
        self.change(change, move |writing| {
            writing.tx.execute(
                &format!(
                    "INSERT INTO enrollment_tokens ({ENROLLMENT_TOKEN_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)"
                ),
                params![
                    token.id,
                    token.secret_sha256,
                    token.description,
                    to_optional_json(token.groups.as_deref()),
                    token.expires_at,
                    token.max_uses,
                    writing.time,
                    writing.change.token
                ],
            )?;
            let stored = read_enrollment_token(writing.tx, &token.id)?.ok_or_else(|| {
                StoreError::Backend("a written enrollment token is missing".to_owned())
            })?;
            Ok((
                stored,
                Some(format!("create enrollment token {}", token.id)),
            ))
        })
        .await
    }

    async fn revoke_enrollment_token(
        &self,
        id: &str,
        change: &Change,
    ) -> Result<EnrollmentToken, StoreError> {
        let id = id.to_owned();
        self.change(change, move |writing| {
            let token = read_enrollment_token(writing.tx, &id)?
                .ok_or_else(|| StoreError::NotFound(format!("no enrollment token `{id}`")))?;
            writing
                .tx
                .execute("DELETE FROM enrollment_tokens WHERE id = ?1", params![id])?;
            Ok((token, Some(format!("revoke enrollment token {id}"))))
        })
        .await
    }

    async fn assign_groups(
        &self,
        id: &str,
        groups: Option<Vec<String>>,
        change: &Change,
    ) -> Result<Written<WorkerRecord>, StoreError> {
        let id = id.to_owned();
        self.change(change, move |writing| {
            let current = read_worker(writing.tx, &id)?.ok_or_else(|| no_worker(&id))?;
            if current.assigned_groups == groups {
                return Ok((
                    Written {
                        value: current,
                        outcome: Outcome::Unchanged,
                    },
                    None,
                ));
            }
            let assigned = groups
                .as_ref()
                .map(|groups| serde_json::to_string(groups).expect("names serialize"));
            writing.tx.execute(
                "UPDATE workers SET assigned_groups = ?2, groups_revision = ?3 WHERE id = ?1",
                params![id, assigned, writing.revision],
            )?;
            let value = read_worker(writing.tx, &id)?.ok_or_else(|| no_worker(&id))?;
            Ok((
                Written {
                    value,
                    outcome: Outcome::Updated,
                },
                Some(format!("assign groups of worker {id}")),
            ))
        })
        .await
    }

    async fn revoke_worker(&self, id: &str) -> Result<WorkerRecord, StoreError> {
        let id = id.to_owned();
        self.with(move |connection| {
            let changed =
                connection.execute("UPDATE workers SET revoked = 1 WHERE id = ?1", params![id])?;
            if changed == 0 {
                return Err(no_worker(&id));
            }
            read_worker(connection, &id)?.ok_or_else(|| no_worker(&id))
        })
        .await
    }

    async fn delete_worker(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.with(move |connection| {
            match connection.execute("DELETE FROM workers WHERE id = ?1", params![id])? {
                0 => Err(no_worker(&id)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn collectors(&self) -> Result<Vec<StoredCollector>, StoreError> {
        self.read(|connection| read_collectors(connection, None))
            .await
    }

    async fn put_collector(
        &self,
        package: &Checked,
        change: &Change,
    ) -> Result<Written<StoredCollector>, StoreError> {
        let package = package.clone();
        self.change(change, move |writing| {
            let (name, version) = (&package.manifest.name, &package.manifest.version);
            let current = read_collectors(writing.tx, Some(name))?
                .into_iter()
                .find(|stored| stored.version == *version);
            match current {
                Some(stored) if stored.sha256 == package.sha256 => {
                    return Ok((
                        Written {
                            value: stored,
                            outcome: Outcome::Unchanged,
                        },
                        None,
                    ));
                }
                Some(stored) => {
                    return Err(StoreError::Conflict(format!(
                        "collector `{name}` already has a version {version}, from another package (SHA-256 {}); give the new package another version, or delete this one first",
                        stored.sha256
                    )));
                }
                None => {}
            }
            let manifest = serde_json::to_string(&package.manifest).expect("a manifest serializes");
            writing.tx.execute(
                &format!("INSERT INTO collectors ({COLLECTOR_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    name,
                    version,
                    package.sha256,
                    package.size,
                    manifest,
                    writing.revision,
                    writing.time,
                    writing.change.token
                ],
            )?;
            let value = read_collectors(writing.tx, Some(name))?
                .into_iter()
                .find(|stored| stored.version == *version)
                .ok_or_else(|| StoreError::Backend(format!("collector {name} {version} was not stored")))?;
            Ok((
                Written {
                    value,
                    outcome: Outcome::Created,
                },
                Some(format!("upload collector {name} {version}")),
            ))
        })
        .await
    }

    async fn delete_collector(
        &self,
        name: &str,
        version: Option<&str>,
        change: &Change,
    ) -> Result<Vec<StoredCollector>, StoreError> {
        let (name, version) = (name.to_owned(), version.map(str::to_owned));
        self.change(change, move |writing| {
            let versions = read_collectors(writing.tx, Some(&name))?;
            let doomed: Vec<StoredCollector> = versions
                .iter()
                .filter(|stored| version.as_ref().is_none_or(|v| stored.version == *v))
                .cloned()
                .collect();
            let what = match &version {
                Some(version) => format!("collector `{name}` version {version}"),
                None => format!("collector `{name}`"),
            };
            if doomed.is_empty() {
                return Err(StoreError::NotFound(format!("no {what}")));
            }
            let users = dataflows_using(writing.tx, &name, &versions, version.as_deref())?;
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "{what} is in use by dataflow(s) {}; change or delete them first",
                    users.join(", ")
                )));
            }
            writing.tx.execute(
                "DELETE FROM collectors WHERE name = ?1 AND (?2 IS NULL OR version = ?2)",
                params![name, version],
            )?;
            Ok((doomed, Some(format!("delete {what}"))))
        })
        .await
    }

    async fn history(&self, group: &str, name: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let (group, name) = (group.to_owned(), name.to_owned());
        self.read(move |connection| {
            let mut statement = connection.prepare(
                "SELECT revision, time, token, action, restored_from, NULL
                 FROM dataflow_history WHERE group_name = ?1 AND name = ?2
                 ORDER BY revision DESC",
            )?;
            let entries = statement.query_map(params![group, name], history_row)?;
            Ok(entries.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn history_entry(
        &self,
        group: &str,
        name: &str,
        revision: u64,
    ) -> Result<Option<HistoryEntry>, StoreError> {
        // SQLite keeps signed 64-bit integers: no revision is beyond them.
        if i64::try_from(revision).is_err() {
            return Ok(None);
        }
        let (group, name) = (group.to_owned(), name.to_owned());
        self.read(move |connection| {
            Ok(connection
                .query_row(
                    "SELECT revision, time, token, action, restored_from, document
                     FROM dataflow_history
                     WHERE group_name = ?1 AND name = ?2 AND revision = ?3",
                    params![group, name, revision],
                    history_row,
                )
                .optional()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        (dir, store)
    }

    fn admin() -> Change {
        Change::by("admin")
    }

    fn flow(marker: u64) -> Value {
        json!({"name": "tail", "sources": [{"name": "s", "type": "demo", "conf": {"count": marker}}],
               "sinks": [{"name": "k", "type": "blackhole", "inputs": ["s"]}]})
    }

    #[tokio::test]
    async fn a_new_store_holds_the_default_group_at_revision_one() {
        let (_dir, store) = open();
        assert_eq!(store.revision().await.unwrap(), 1);
        let groups = store.groups().await.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].name, DEFAULT_GROUP);
        assert_eq!(groups[0].revision, 1);
    }

    #[tokio::test]
    async fn an_identical_put_makes_no_revision_and_a_changed_one_does() {
        let (_dir, store) = open();
        let mut revisions = store.subscribe();
        let first = store
            .put_dataflow("default", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        assert_eq!(first.outcome, Outcome::Created);
        assert_eq!(first.value.revision, 2);
        assert_eq!(*revisions.borrow_and_update(), 2);
        let same = store
            .put_dataflow("default", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        assert_eq!(same.outcome, Outcome::Unchanged);
        assert_eq!(same.value.revision, 2);
        assert_eq!(store.revision().await.unwrap(), 2);
        assert!(!revisions.has_changed().unwrap());
        let changed = store
            .put_dataflow("default", "tail", &flow(2), Precondition::None, &admin())
            .await
            .unwrap();
        assert_eq!(
            (changed.outcome, changed.value.revision),
            (Outcome::Updated, 3)
        );
        let history = store.history("default", "tail").await.unwrap();
        let revisions: Vec<_> = history.iter().map(|e| (e.revision, e.action)).collect();
        assert_eq!(revisions, [(3, Action::Update), (2, Action::Create)]);
        assert!(
            history
                .iter()
                .all(|e| e.document.is_none() && e.token == "admin")
        );
    }

    #[tokio::test]
    async fn a_stale_revision_changes_nothing() {
        let (_dir, store) = open();
        let created = store
            .put_dataflow("default", "tail", &flow(1), Precondition::Absent, &admin())
            .await
            .unwrap();
        let at = created.value.revision;
        store
            .put_dataflow(
                "default",
                "tail",
                &flow(2),
                Precondition::Revision(at),
                &admin(),
            )
            .await
            .unwrap();
        let stale = store
            .put_dataflow(
                "default",
                "tail",
                &flow(3),
                Precondition::Revision(at),
                &admin(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                stale,
                StoreError::PreconditionFailed {
                    current: Some(3),
                    ..
                }
            ),
            "{stale}"
        );
        let again = store
            .put_dataflow("default", "tail", &flow(3), Precondition::Absent, &admin())
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::PreconditionFailed { .. }));
        let delete = store
            .delete_dataflow("default", "tail", Precondition::Revision(at), &admin())
            .await
            .unwrap_err();
        assert!(delete.to_string().contains("at revision 3"), "{delete}");
        let stored = store.dataflow("default", "tail").await.unwrap().unwrap();
        assert_eq!(stored.document, flow(2));
        assert_eq!(store.revision().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_restore_brings_back_an_old_document_as_a_new_revision() {
        let (_dir, store) = open();
        for marker in 1..=3 {
            store
                .put_dataflow(
                    "default",
                    "tail",
                    &flow(marker),
                    Precondition::None,
                    &admin(),
                )
                .await
                .unwrap();
        }
        let old = store
            .history_entry("default", "tail", 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.document.as_ref(), Some(&flow(1)));
        let restore = Change {
            token: "admin".into(),
            restored_from: Some(2),
        };
        let restored = store
            .put_dataflow(
                "default",
                "tail",
                old.document.as_ref().unwrap(),
                Precondition::None,
                &restore,
            )
            .await
            .unwrap();
        assert_eq!(restored.value.revision, 5);
        assert_eq!(restored.value.document, flow(1));
        let newest = &store.history("default", "tail").await.unwrap()[0];
        assert_eq!(
            (newest.action, newest.restored_from),
            (Action::Restore, Some(2))
        );
    }

    #[tokio::test]
    async fn a_group_with_dataflows_is_deleted_only_by_force_and_history_stays() {
        let (_dir, store) = open();
        store
            .put_group("edge", "edge hosts", Precondition::Absent, &admin())
            .await
            .unwrap();
        store
            .put_dataflow("edge", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        let refused = store
            .delete_group("edge", Precondition::None, false, &admin())
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::Conflict(_)));
        assert!(refused.to_string().contains("tail"), "{refused}");
        let revision = store
            .delete_group("edge", Precondition::None, true, &admin())
            .await
            .unwrap();
        assert_eq!(revision, 4);
        assert!(store.group("edge").await.unwrap().is_none());
        assert!(store.dataflows(Some("edge")).await.unwrap().is_empty());
        let history = store.history("edge", "tail").await.unwrap();
        assert_eq!(history[0].action, Action::Delete);
        let missing = store
            .put_dataflow("edge", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::NotFound(_)));
    }

    fn package(version: &str, sha256: &str) -> Checked {
        let manifest = format!("name = \"probe\"\nversion = \"{version}\"\nentrypoint = \"run\"\n");
        Checked {
            manifest: collector::Manifest::parse(&manifest).unwrap(),
            sha256: sha256.to_owned(),
            size: 10,
        }
    }

    #[tokio::test]
    async fn a_collector_version_in_use_stays_and_the_latest_counts_as_used() {
        let (_dir, store) = open();
        for (version, sha256) in [("1.9.0", "a"), ("1.10.0", "b")] {
            let written = store
                .put_collector(&package(version, sha256), &admin())
                .await
                .unwrap();
            assert_eq!(written.outcome, Outcome::Created);
        }
        let again = store
            .put_collector(&package("1.10.0", "b"), &admin())
            .await
            .unwrap();
        assert_eq!(again.outcome, Outcome::Unchanged);
        let other = store
            .put_collector(&package("1.10.0", "c"), &admin())
            .await
            .unwrap_err();
        assert!(matches!(other, StoreError::Conflict(_)), "{other}");
        let versions: Vec<_> = store
            .collectors()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(versions, ["1.9.0", "1.10.0"]);

        let latest = json!({"name": "tail", "sources": [{"name": "s", "type": "collector", "conf": {"collector": "probe"}}],
                            "sinks": [{"name": "k", "type": "blackhole", "inputs": ["s"]}]});
        store
            .put_dataflow("default", "tail", &latest, Precondition::None, &admin())
            .await
            .unwrap();
        let refused = store
            .delete_collector("probe", Some("1.10.0"), &admin())
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("default/tail"), "{refused}");
        let refused = store
            .delete_collector("probe", None, &admin())
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");
        let deleted = store
            .delete_collector("probe", Some("1.9.0"), &admin())
            .await
            .unwrap();
        assert_eq!(deleted[0].version, "1.9.0");
        let missing = store
            .delete_collector("probe", Some("1.9.0"), &admin())
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
        store
            .delete_dataflow("default", "tail", Precondition::None, &admin())
            .await
            .unwrap();
        let deleted = store
            .delete_collector("probe", None, &admin())
            .await
            .unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(store.collectors().await.unwrap().is_empty());
    }

    fn worker(id: &str, credential: &str) -> WorkerRecord {
        WorkerRecord {
            id: id.to_owned(),
            hostname: format!("{id}.example"),
            version: "1.0.0".to_owned(),
            own_groups: vec!["default".to_owned()],
            assigned_groups: None,
            groups_revision: 0,
            revoked: false,
            enrolled_at: "2026-01-01T00:00:00Z".to_owned(),
            enrollment_token: None,
            allowed_groups: None,
            credential_sha256: credential.to_owned(),
        }
    }

    fn update(id: &str, groups: &[&str], credential: Option<&str>) -> WorkerUpdate {
        WorkerUpdate {
            id: id.to_owned(),
            hostname: format!("{id}.example"),
            version: "1.0.1".to_owned(),
            own_groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            credential_sha256: credential.map(str::to_owned),
        }
    }

    fn refusal(err: StoreError) -> EnrollRefusal {
        match err {
            StoreError::Enrollment(refusal) => refusal,
            other => panic!("not a refusal: {other}"),
        }
    }

    #[tokio::test]
    async fn workers_enroll_once_get_groups_assigned_and_a_revoked_one_stays_out() {
        let (_dir, store) = open();
        let enrolled = store
            .enroll_worker(worker("w1", "hash1"), &Grant::BuiltIn)
            .await
            .unwrap();
        assert_eq!(enrolled.groups_revision, 2, "an enrollment is a change");
        assert_eq!(
            (enrolled.enrollment_token, enrolled.allowed_groups),
            (None, None)
        );
        let assigned = store
            .assign_groups("w1", Some(vec!["edge".into()]), &admin())
            .await
            .unwrap();
        assert_eq!(assigned.outcome, Outcome::Updated);
        assert_eq!(assigned.value.groups(), ["edge"]);
        assert_eq!(assigned.value.groups_revision, 3);
        // The id is taken: enrolling it again is refused, and changes nothing.
        let taken = store
            .enroll_worker(worker("w1", "hash2"), &Grant::BuiltIn)
            .await
            .unwrap_err();
        assert_eq!(refusal(taken), EnrollRefusal::Taken("w1".into()));
        assert_eq!(store.workers().await.unwrap()[0].credential_sha256, "hash1");
        // Its own renewal keeps the assignment.
        let renewed = store
            .update_worker(update("w1", &["default"], Some("hash2")))
            .await
            .unwrap();
        assert_eq!(
            (renewed.groups(), renewed.credential_sha256.as_str()),
            (&["edge".to_owned()][..], "hash2")
        );
        // A change of identity alone keeps the credential.
        let changed = store
            .update_worker(update("w1", &["web"], None))
            .await
            .unwrap();
        assert_eq!(
            (changed.own_groups, changed.credential_sha256),
            (vec!["web".to_owned()], "hash2".to_owned())
        );
        store.revoke_worker("w1").await.unwrap();
        let refused = store
            .enroll_worker(worker("w1", "hash3"), &Grant::BuiltIn)
            .await
            .unwrap_err();
        assert_eq!(refusal(refused), EnrollRefusal::Revoked("w1".into()));
        let refused = store
            .update_worker(update("w1", &["default"], Some("hash3")))
            .await
            .unwrap_err();
        assert_eq!(refusal(refused), EnrollRefusal::Revoked("w1".into()));
        store.delete_worker("w1").await.unwrap();
        let gone = store
            .update_worker(update("w1", &["default"], None))
            .await
            .unwrap_err();
        assert_eq!(refusal(gone), EnrollRefusal::NotEnrolled("w1".into()));
        let back = store
            .enroll_worker(worker("w1", "hash4"), &Grant::BuiltIn)
            .await
            .unwrap();
        assert_eq!(back.groups(), ["default"]);
        assert!(
            back.groups_revision > assigned.value.groups_revision,
            "a worker enrolled again gets a newer desired revision than any it ran"
        );
    }

    fn token(id: &str, groups: Option<&[&str]>, max_uses: Option<u64>) -> EnrollmentToken {
        EnrollmentToken {
            id: id.to_owned(),
            description: format!("{id} for tests"),
            groups: groups.map(|groups| groups.iter().map(|group| (*group).to_owned()).collect()),
            expires_at: None,
            max_uses,
            uses: 0,
            created_at: String::new(),
            created_by: String::new(),
            secret_sha256: format!("{id}-secret"),
        }
    }

    fn in_groups(id: &str, groups: &[&str]) -> WorkerRecord {
        WorkerRecord {
            own_groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            ..worker(id, &format!("{id}-hash"))
        }
    }

    #[tokio::test]
    async fn an_enrollment_token_enrolls_within_its_groups_and_uses_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).unwrap();
        let made = store
            .create_enrollment_token(token("et-edge", Some(&["edge"]), Some(2)), &admin())
            .await
            .unwrap();
        assert_eq!((made.uses, made.created_by.as_str()), (0, "admin"));
        assert!(!made.created_at.is_empty());
        let grant = Grant::Token("et-edge".to_owned());
        let outside = store
            .enroll_worker(in_groups("w1", &["edge", "web"]), &grant)
            .await
            .unwrap_err();
        let EnrollRefusal::OutOfScope {
            groups, allowed, ..
        } = refusal(outside)
        else {
            panic!("not out of scope");
        };
        assert_eq!(
            (groups, allowed),
            (vec!["web".to_owned()], vec!["edge".to_owned()])
        );
        let enrolled = store
            .enroll_worker(in_groups("w1", &["edge"]), &grant)
            .await
            .unwrap();
        assert_eq!(enrolled.enrollment_token.as_deref(), Some("et-edge"));
        assert_eq!(enrolled.allowed_groups, Some(vec!["edge".to_owned()]));
        // A taken id is refused without counting a use.
        let taken = store
            .enroll_worker(in_groups("w1", &["edge"]), &grant)
            .await
            .unwrap_err();
        assert_eq!(refusal(taken), EnrollRefusal::Taken("w1".into()));
        // The worker itself may not step out of its token's groups either.
        let stepping_out = store
            .update_worker(update("w1", &["web"], None))
            .await
            .unwrap_err();
        assert!(matches!(
            refusal(stepping_out),
            EnrollRefusal::OutOfScope { .. }
        ));
        // An admin may assign any group.
        let assigned = store
            .assign_groups("w1", Some(vec!["web".into()]), &admin())
            .await
            .unwrap();
        assert_eq!(assigned.value.groups(), ["web"]);
        store
            .enroll_worker(in_groups("w2", &["edge"]), &grant)
            .await
            .unwrap();
        let used_up = store
            .enroll_worker(in_groups("w3", &["edge"]), &grant)
            .await
            .unwrap_err();
        assert_eq!(
            refusal(used_up),
            EnrollRefusal::UsedUp {
                id: "et-edge".into(),
                max_uses: 2
            }
        );
        drop(store);

        let store = SqliteStore::open(&path).unwrap();
        let kept = store.enrollment_tokens().await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].uses, kept[0].secret_sha256.as_str()),
            (2, "et-edge-secret")
        );
        let revoked = store
            .revoke_enrollment_token("et-edge", &admin())
            .await
            .unwrap();
        assert_eq!(revoked.id, "et-edge");
        let gone = store
            .enroll_worker(in_groups("w4", &["edge"]), &grant)
            .await
            .unwrap_err();
        assert_eq!(refusal(gone), EnrollRefusal::TokenGone("et-edge".into()));
        let again = store
            .revoke_enrollment_token("et-edge", &admin())
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::NotFound(_)), "{again}");
        // The workers it enrolled stay.
        assert_eq!(store.workers().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_expired_enrollment_token_enrolls_nobody() {
        let (_dir, store) = open();
        let expired = EnrollmentToken {
            expires_at: Some("2020-01-01T00:00:00Z".to_owned()),
            ..token("et-old", None, None)
        };
        store
            .create_enrollment_token(expired, &admin())
            .await
            .unwrap();
        let refused = store
            .enroll_worker(
                in_groups("w1", &["any"]),
                &Grant::Token("et-old".to_owned()),
            )
            .await
            .unwrap_err();
        assert_eq!(
            refusal(refused),
            EnrollRefusal::Expired {
                id: "et-old".into(),
                at: "2020-01-01T00:00:00Z".into()
            }
        );
        assert_eq!(store.enrollment_tokens().await.unwrap()[0].uses, 0);
    }

    #[tokio::test]
    async fn a_store_of_schema_2_gains_the_enrollment_columns_and_keeps_its_workers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(
                    "CREATE TABLE workers (id TEXT PRIMARY KEY, hostname TEXT NOT NULL,
                         version TEXT NOT NULL, own_groups TEXT NOT NULL, assigned_groups TEXT,
                         groups_revision INTEGER NOT NULL, revoked INTEGER NOT NULL,
                         enrolled_at TEXT NOT NULL, credential_sha256 TEXT NOT NULL);
                     INSERT INTO workers VALUES ('w1', 'h', '1.0.0', '[\"default\"]', NULL, 1, 0,
                         '2026-01-01T00:00:00Z', 'hash1');
                     PRAGMA user_version = 2;",
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let workers = store.workers().await.unwrap();
        assert_eq!(workers.len(), 1);
        assert_eq!(
            (
                workers[0].enrollment_token.as_ref(),
                workers[0].allowed_groups.as_ref()
            ),
            (None, None)
        );
        drop(store);
        // Opened again, it is at schema 3 and needs nothing more.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.workers().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_dataflows_revision_follows_its_groups_dataflows_only() {
        let (_dir, store) = open();
        store
            .put_group("edge", "", Precondition::None, &admin())
            .await
            .unwrap();
        let groups = ["default".to_owned()];
        assert_eq!(store.dataflows_revision(&groups).await.unwrap(), 0);
        store
            .put_dataflow("default", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        store
            .put_dataflow("edge", "tail", &flow(1), Precondition::None, &admin())
            .await
            .unwrap();
        assert_eq!(store.dataflows_revision(&groups).await.unwrap(), 3);
        let deleted = store
            .delete_dataflow("default", "tail", Precondition::None, &admin())
            .await
            .unwrap();
        assert_eq!(store.dataflows_revision(&groups).await.unwrap(), deleted);
    }

    #[tokio::test]
    async fn concurrent_writes_make_gap_free_revisions_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..20 {
            let store = store.clone();
            writers.spawn(async move {
                store
                    .put_dataflow(
                        "default",
                        &format!("flow{writer}"),
                        &flow(writer),
                        Precondition::None,
                        &admin(),
                    )
                    .await
                    .unwrap()
                    .value
                    .revision
            });
        }
        let mut revisions = writers.join_all().await;
        revisions.sort_unstable();
        assert_eq!(revisions, (2..22).collect::<Vec<u64>>());
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.revision().await.unwrap(), 21);
        assert_eq!(reopened.dataflows(None).await.unwrap().len(), 20);
        assert_eq!(reopened.groups().await.unwrap()[0].dataflows, 20);
    }
}
