//! Event sets: the events workers send with the `yh` sink, stored on the
//! manager and searchable. Each set is one SQLite file under
//! `data_dir/event_sets/` (WAL, synchronous commits: an acknowledged write
//! survives a SIGKILL), with an FTS5 index of every event's values.
//!
//! An event's row id is its timestamp in ms shifted left by 20 bits plus a
//! sequence number, so the table's own order is time order: newest-first
//! pages, time ranges, cursors and retention by age are all ranges of the
//! primary key, and a full-text query walks the index newest first and
//! stops at the page's end.

pub mod query;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, SecondsFormat, Utc};
use datascale_core::names::check_name;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, params_from_iter, types::Value as SqlValue,
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use self::query::Query;

/// Bits of an event id below its timestamp.
const SEQUENCE_BITS: u32 = 20;

/// The most events one page may hold.
pub const MAX_LIMIT: usize = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts
    USING fts5(text, content = '', contentless_delete = 1);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 16);
INSERT INTO events_fts (events_fts, rank) VALUES ('crisismerge', 64);
";

/// How long and how much a set keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Events older than this many days are removed; 0 keeps them.
    pub max_age_days: u64,
    /// The oldest events are removed while the set is larger; 0: no limit.
    pub max_size_mb: u64,
}

/// A set's own retention, where it differs from `[event_sets]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionOverride {
    /// Days an event is kept; none: `event_sets.max_age_days`.
    #[schema(maximum = 36500)]
    pub max_age_days: Option<u64>,
    /// Megabytes the set may take; none: `event_sets.max_size_mb`.
    #[schema(maximum = 1073741824)]
    pub max_size_mb: Option<u64>,
}

/// The longest a set may keep events: a hundred years.
pub const MAX_AGE_DAYS: u64 = 36_500;

/// The most a set may take: a petabyte.
pub const MAX_SIZE_MB: u64 = 1 << 30;

impl RetentionOverride {
    /// Why these settings cannot be kept, if they cannot.
    pub fn problem(self) -> Option<String> {
        match (self.max_age_days, self.max_size_mb) {
            (Some(days), _) if days > MAX_AGE_DAYS => Some(format!(
                "max_age_days {days} is over {MAX_AGE_DAYS}; use 0 to keep events for ever"
            )),
            (_, Some(mb)) if mb > MAX_SIZE_MB => Some(format!(
                "max_size_mb {mb} is over {MAX_SIZE_MB}; use 0 for no limit"
            )),
            _ => None,
        }
    }

    fn over(self, defaults: Retention) -> Retention {
        Retention {
            max_age_days: self.max_age_days.unwrap_or(defaults.max_age_days),
            max_size_mb: self.max_size_mb.unwrap_or(defaults.max_size_mb),
        }
    }
}

fn read_override(connection: &Connection) -> Result<RetentionOverride, EventSetError> {
    let setting = |key: &str| -> Result<Option<u64>, EventSetError> {
        Ok(connection
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    };
    Ok(RetentionOverride {
        max_age_days: setting("max_age_days")?,
        max_size_mb: setting("max_size_mb")?,
    })
}

/// Why an event-set operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EventSetError {
    /// A line of an ingested body is not a JSON object.
    #[error("line {line}: {reason}; nothing of this request was stored")]
    BadLine {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An ingest without a single event (an empty body, or blank lines).
    #[error("the body holds no events: send one JSON object per line")]
    NoEvents,
    /// The set's name is outside the safe charset.
    #[error("the event set name `{name}`: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No set of that name.
    #[error("no event set named `{0}`")]
    NotFound(String),
    /// The cursor is not one this API gave out.
    #[error("`{0}` is not a cursor of this API; use the next_cursor of the previous page")]
    BadCursor(String),
    /// The database failed.
    #[error("the event store failed: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for EventSetError {
    fn from(err: rusqlite::Error) -> Self {
        EventSetError::Backend(err.to_string())
    }
}

/// One page of a search, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    /// The events.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// The cursor of the next (older) page, when there is one.
    pub next_cursor: Option<String>,
}

/// An event set as the list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetSummary {
    /// Its name.
    pub name: String,
    /// How many events it holds.
    pub events: u64,
    /// Its size on disk, in bytes.
    pub size_bytes: u64,
    /// The time of its oldest event (RFC 3339), if any.
    pub oldest: Option<String>,
    /// The time of its newest event (RFC 3339), if any.
    pub newest: Option<String>,
    /// What it keeps: its own settings over `[event_sets]`.
    pub retention: Retention,
}

#[derive(Debug)]
struct EventSet {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

/// Every event set of a manager.
#[derive(Debug)]
pub struct EventSets {
    dir: PathBuf,
    retention: Retention,
    sets: Mutex<HashMap<String, Arc<EventSet>>>,
    sequence: AtomicU64,
}

/// A connection to a set's file: WAL, synced at every commit (an
/// acknowledged write is on disk), with 8 MiB of page cache, since the
/// full-text index reads back the segments it merges.
fn open_connection(path: &Path) -> Result<Connection, EventSetError> {
    let connection = Connection::open(path)
        .map_err(|err| EventSetError::Backend(format!("cannot open {}: {err}", path.display())))?;
    connection.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         PRAGMA cache_size = -8192;",
    )?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// The time of an event id, as RFC 3339.
fn time_of(id: i64) -> String {
    DateTime::from_timestamp_millis(id >> SEQUENCE_BITS)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The first event id at or after `ms`.
fn first_id_at(ms: i64) -> i64 {
    ms.clamp(0, i64::MAX >> SEQUENCE_BITS) << SEQUENCE_BITS
}

/// Every string, number and boolean of an event, for the full-text index.
fn indexed_text(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => {
            out.push_str(text);
            out.push(' ');
        }
        Value::Number(number) => {
            out.push_str(&number.to_string());
            out.push(' ');
        }
        Value::Bool(flag) => out.push_str(if *flag { "true " } else { "false " }),
        Value::Array(items) => items.iter().for_each(|item| indexed_text(item, out)),
        Value::Object(fields) => fields.values().for_each(|item| indexed_text(item, out)),
        Value::Null => {}
    }
}

/// An ingested event: its time (ms) and its stored form.
struct Parsed {
    ms: i64,
    body: String,
    text: String,
}

/// Parses an NDJSON body: every non-empty line must be a JSON object. An
/// event without a readable `timestamp` gets the time of arrival.
fn parse_lines(body: &[u8], now: DateTime<Utc>) -> Result<Vec<Parsed>, EventSetError> {
    let mut events = Vec::new();
    for (index, line) in body.split(|byte| *byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |reason: String| EventSetError::BadLine {
            line: index + 1,
            reason,
        };
        let mut fields: Map<String, Value> = match serde_json::from_slice(line) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(bad("not a JSON object".to_owned())),
            Err(err) => return Err(bad(format!("not valid JSON ({err})"))),
        };
        let stamped = fields
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.timestamp_millis());
        // An event with its time is kept as it came (a checked JSON
        // object, so valid UTF-8); one without gets the time of arrival.
        let (ms, body) = match stamped {
            Some(ms) => (ms, String::from_utf8_lossy(line.trim_ascii()).into_owned()),
            None => {
                fields.insert(
                    "timestamp".to_owned(),
                    Value::String(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
                );
                let body = serde_json::to_string(&fields).expect("JSON values serialize");
                (now.timestamp_millis(), body)
            }
        };
        let mut text = String::new();
        fields
            .values()
            .for_each(|value| indexed_text(value, &mut text));
        events.push(Parsed { ms, body, text });
    }
    if events.is_empty() {
        return Err(EventSetError::NoEvents);
    }
    Ok(events)
}

/// The id a cursor names: the id of the last event of a page, up to 19
/// digits (the document's pattern); ids fit in an `i64`, and a larger
/// cursor is past every one of them.
fn cursor_id(cursor: &str) -> Result<i64, EventSetError> {
    let digits = (1..=19).contains(&cursor.len()) && cursor.bytes().all(|b| b.is_ascii_digit());
    let id: u64 = digits
        .then(|| cursor.parse().ok())
        .flatten()
        .ok_or_else(|| EventSetError::BadCursor(cursor.to_owned()))?;
    Ok(i64::try_from(id).unwrap_or(i64::MAX))
}

/// An FTS5 query that matches every term as a phrase.
fn match_expression(terms: &[String]) -> String {
    terms
        .iter()
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON path for `json_extract`, each part quoted.
fn json_path(field: &str) -> String {
    field
        .split('.')
        .fold("$".to_owned(), |path, part| format!("{path}.\"{part}\""))
}

impl EventSets {
    /// The event sets kept under `dir`, created when missing.
    pub fn open(dir: &Path, retention: Retention) -> Result<Arc<Self>, EventSetError> {
        std::fs::create_dir_all(dir).map_err(|err| {
            EventSetError::Backend(format!("cannot create {}: {err}", dir.display()))
        })?;
        Ok(Arc::new(Self {
            dir: dir.to_owned(),
            retention,
            sets: Mutex::default(),
            sequence: AtomicU64::new(0),
        }))
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.db"))
    }

    /// The set `name`; created when `create` is set, else `NotFound`.
    fn set(&self, name: &str, create: bool) -> Result<Arc<EventSet>, EventSetError> {
        check_name(name).map_err(|reason| EventSetError::BadName {
            name: name.to_owned(),
            reason,
        })?;
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = sets.get(name) {
            return Ok(set.clone());
        }
        let path = self.path_of(name);
        if !create && !path.exists() {
            return Err(EventSetError::NotFound(name.to_owned()));
        }
        let set = Arc::new(EventSet {
            writer: Mutex::new(open_connection(&path)?),
            reader: Mutex::new(open_connection(&path)?),
            path,
        });
        sets.insert(name.to_owned(), set.clone());
        Ok(set)
    }

    /// Stores the events of an NDJSON body in the set `name` (created on
    /// first use), all or nothing; returns how many. They are on disk when
    /// this returns.
    pub async fn ingest(
        self: &Arc<Self>,
        name: &str,
        body: Vec<u8>,
    ) -> Result<usize, EventSetError> {
        let set = self.set(name, true)?;
        let sets = self.clone();
        run_blocking(move || {
            let events = parse_lines(&body, Utc::now())?;
            let mut writer = set.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = writer.transaction()?;
            {
                let mut insert =
                    tx.prepare_cached("INSERT INTO events (id, body) VALUES (?1, ?2)")?;
                let mut index =
                    tx.prepare_cached("INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)")?;
                for event in &events {
                    let id = loop {
                        let sequence = sets.sequence.fetch_add(1, Ordering::Relaxed)
                            & ((1 << SEQUENCE_BITS) - 1);
                        let id = first_id_at(event.ms) | sequence as i64;
                        match insert.execute(rusqlite::params![id, event.body]) {
                            Ok(_) => break id,
                            Err(rusqlite::Error::SqliteFailure(failure, _))
                                if failure.code == ErrorCode::ConstraintViolation => {}
                            Err(err) => return Err(err.into()),
                        }
                    };
                    index.execute(rusqlite::params![id, event.text])?;
                }
            }
            tx.commit()?;
            Ok(events.len())
        })
        .await
    }

    /// One page of the events of `name` that match `query`, newest first,
    /// older than `cursor` when given.
    pub async fn search(
        &self,
        name: &str,
        query: Query,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, EventSetError> {
        let set = self.set(name, false)?;
        let before = cursor.map(cursor_id).transpose()?;
        let limit = limit.clamp(1, MAX_LIMIT);
        run_blocking(move || {
            let upper = [before, query.to_ms.map(first_id_at)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(i64::MAX);
            let lower = query.from_ms.map_or(0, first_id_at);
            let mut values = vec![SqlValue::Integer(upper), SqlValue::Integer(lower)];
            // Newest first by the id of the table that drives the scan, so
            // that it is read in that order and stops at the limit (with
            // terms, the index hands out ids newest first; ordering by the
            // joined table's id instead would sort every match).
            let (mut sql, newest_first) = match query.terms.is_empty() {
                true => (
                    "SELECT e.id, e.body FROM events e WHERE e.id < ?1 AND e.id >= ?2".to_owned(),
                    "e.id DESC",
                ),
                false => {
                    values.push(SqlValue::Text(match_expression(&query.terms)));
                    (
                        "SELECT e.id, e.body FROM events_fts f JOIN events e ON e.id = f.rowid
                         WHERE events_fts MATCH ?3 AND f.rowid < ?1 AND f.rowid >= ?2"
                            .to_owned(),
                        "f.rowid DESC",
                    )
                }
            };
            for (field, value) in &query.fields {
                values.push(SqlValue::Text(json_path(field)));
                let path = values.len();
                values.push(SqlValue::Text(value.clone()));
                sql.push_str(&format!(
                    " AND CAST(json_extract(e.body, ?{path}) AS TEXT) = ?{}",
                    path + 1
                ));
            }
            sql.push_str(&format!(" ORDER BY {newest_first} LIMIT {}", limit + 1));
            let reader = set.reader.lock().unwrap_or_else(PoisonError::into_inner);
            let mut statement = reader.prepare(&sql)?;
            let mut rows: Vec<(i64, String)> = statement
                .query_map(params_from_iter(values), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next_cursor = more
                .then(|| rows.last().map(|(id, _)| id.to_string()))
                .flatten();
            let events = rows
                .into_iter()
                .map(|(_, body)| serde_json::from_str(&body).unwrap_or(Value::String(body)))
                .collect();
            Ok(Page {
                events,
                next_cursor,
            })
        })
        .await
    }

    /// Every set with its counts, size and time span, by name.
    pub async fn list(&self) -> Result<Vec<SetSummary>, EventSetError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|err| {
                EventSetError::Backend(format!("cannot list {}: {err}", self.dir.display()))
            })?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let name = name.strip_suffix(".db")?.to_owned();
                check_name(&name).is_ok().then_some(name)
            })
            .collect();
        names.sort();
        let mut summaries = Vec::with_capacity(names.len());
        for name in names {
            let set = self.set(&name, false)?;
            let defaults = self.retention;
            summaries.push(
                run_blocking(move || {
                    let reader = set.reader.lock().unwrap_or_else(PoisonError::into_inner);
                    let (events, oldest, newest): (u64, Option<i64>, Option<i64>) = reader
                        .query_row("SELECT COUNT(*), MIN(id), MAX(id) FROM events", [], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })?;
                    Ok(SetSummary {
                        name,
                        events,
                        size_bytes: size_on_disk(&set.path),
                        oldest: oldest.map(time_of),
                        newest: newest.map(time_of),
                        retention: read_override(&reader)?.over(defaults),
                    })
                })
                .await?,
            );
        }
        Ok(summaries)
    }

    /// Sets a set's own retention (created when missing); none of a field
    /// goes back to `[event_sets]`. Returns what the set keeps now.
    pub async fn set_retention(
        &self,
        name: &str,
        retention: RetentionOverride,
    ) -> Result<Retention, EventSetError> {
        let set = self.set(name, true)?;
        let defaults = self.retention;
        run_blocking(move || {
            let mut writer = set.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = writer.transaction()?;
            for (key, value) in [
                ("max_age_days", retention.max_age_days),
                ("max_size_mb", retention.max_size_mb),
            ] {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        rusqlite::params![key, value],
                    )?,
                    None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
                };
            }
            tx.commit()?;
            Ok(retention.over(defaults))
        })
        .await
    }

    /// Removes what the retention settings no longer keep, from every set.
    pub async fn enforce_retention(&self) -> Result<(), EventSetError> {
        for summary in self.list().await? {
            let set = self.set(&summary.name, false)?;
            let retention = summary.retention;
            run_blocking(move || {
                let writer = set.writer.lock().unwrap_or_else(PoisonError::into_inner);
                if retention.max_age_days > 0 {
                    let cutoff = Utc::now().timestamp_millis()
                        - i64::try_from(retention.max_age_days).unwrap_or(i64::MAX / 86_400_000)
                            * 86_400_000;
                    delete_before(&writer, first_id_at(cutoff))?;
                }
                let limit = retention.max_size_mb.saturating_mul(1024 * 1024);
                while limit > 0 && size_on_disk(&set.path) > limit {
                    // Drop the oldest tenth, then give the pages back.
                    let cut: Option<i64> = writer
                        .query_row(
                            "SELECT id FROM events ORDER BY id LIMIT 1 OFFSET (SELECT COUNT(*) / 10 FROM events)",
                            [],
                            |row| row.get(0),
                        )
                        .optional()?;
                    let Some(cut) = cut.filter(|cut| *cut > 0) else {
                        break;
                    };
                    delete_before(&writer, cut + 1)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Deletes the events with ids below `id` and returns their pages to the
/// file system.
fn delete_before(connection: &Connection, id: i64) -> Result<(), EventSetError> {
    connection.execute("DELETE FROM events_fts WHERE rowid < ?1", [id])?;
    connection.execute("DELETE FROM events WHERE id < ?1", [id])?;
    connection.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// The bytes a set takes: its file and its write-ahead log.
fn size_on_disk(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    [path, wal.as_path()]
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|metadata| metadata.len())
        .sum()
}

async fn run_blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, EventSetError> + Send + 'static,
) -> Result<T, EventSetError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|err| EventSetError::Backend(format!("an event-set operation panicked: {err}")))?
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> (tempfile::TempDir, Arc<EventSets>) {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_age_days: 0,
            max_size_mb: 0,
        };
        let sets = EventSets::open(dir.path(), retention).unwrap();
        (dir, sets)
    }

    fn body(lines: &[Value]) -> Vec<u8> {
        lines
            .iter()
            .map(|line| format!("{line}\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn event(minute: u32, host: &str, message: &str) -> Value {
        serde_json::json!({"timestamp": format!("2026-11-23T10:{minute:02}:00Z"),
                           "host": host, "message": message})
    }

    async fn search(sets: &EventSets, q: &str, limit: usize, cursor: Option<&str>) -> Page {
        let query = query::parse(Some(q), None, None, Utc::now()).unwrap();
        sets.search("logs", query, limit, cursor).await.unwrap()
    }

    #[tokio::test]
    async fn events_are_found_by_term_and_field_newest_first_in_pages() {
        let (_dir, sets) = sets();
        let lines = [
            event(1, "worker1", "disk full on /var"),
            event(3, "worker2", "disk ok"),
            event(2, "worker1", "cpu hot"),
        ];
        assert_eq!(sets.ingest("logs", body(&lines)).await.unwrap(), 3);
        let page = search(&sets, "disk", 10, None).await;
        let messages: Vec<_> = page.events.iter().map(|e| e["message"].clone()).collect();
        assert_eq!(messages, ["disk ok", "disk full on /var"]);
        let page = search(&sets, "disk host:worker1", 10, None).await;
        assert_eq!(page.events, [lines[0].clone()]);
        let first = search(&sets, "", 2, None).await;
        assert_eq!(first.events, [lines[1].clone(), lines[2].clone()]);
        let second = search(&sets, "", 2, first.next_cursor.as_deref()).await;
        assert_eq!(second.events, [lines[0].clone()]);
        assert_eq!(second.next_cursor, None);
        let summary = &sets.list().await.unwrap()[0];
        assert_eq!((summary.name.as_str(), summary.events), ("logs", 3));
        assert_eq!(summary.oldest.as_deref(), Some("2026-11-23T10:01:00.000Z"));
    }

    #[tokio::test]
    async fn odd_characters_in_a_query_find_nothing_rather_than_fail() {
        let (_dir, sets) = sets();
        sets.ingest("logs", body(&[event(1, "a", "plain")]))
            .await
            .unwrap();
        for q in [
            "\u{10200}\u{e4526}\u{0}\u{ad}Ö",
            "\"",
            "zz*",
            "NEAR(",
            "x:\u{0}",
        ] {
            let page = search(&sets, q, 10, None).await;
            assert!(page.events.is_empty(), "{q:?}");
        }
    }

    #[tokio::test]
    async fn a_bad_line_is_named_and_nothing_of_its_request_is_kept() {
        let (_dir, sets) = sets();
        let mut text = body(&[event(1, "a", "kept?")]);
        text.extend_from_slice(b"{\"half\": \n");
        let err = sets.ingest("logs", text).await.unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert_eq!(sets.list().await.unwrap()[0].events, 0);
        let err = sets.ingest("logs", b"[1, 2]\n".to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
    }

    #[tokio::test]
    async fn an_ingest_without_events_is_refused() {
        let (_dir, sets) = sets();
        for text in ["", "\n", " \n\t\n"] {
            let err = sets.ingest("logs", text.into()).await.unwrap_err();
            assert!(matches!(err, EventSetError::NoEvents), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_cursor_is_up_to_19_digits() {
        assert_eq!(cursor_id("0").unwrap(), 0);
        assert_eq!(cursor_id("9223372036854775807").unwrap(), i64::MAX);
        assert_eq!(cursor_id("9999999999999999999").unwrap(), i64::MAX);
        for bad in ["", "-1", "+1", "1 ", "12345678901234567890", "x"] {
            assert!(
                matches!(cursor_id(bad), Err(EventSetError::BadCursor(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_sets_own_retention_wins_over_the_defaults() {
        let (_dir, sets) = sets();
        let old = serde_json::json!({"timestamp": "2020-01-01T00:00:00Z", "message": "old"});
        sets.ingest("logs", body(std::slice::from_ref(&old)))
            .await
            .unwrap();
        sets.ingest("other", body(&[old])).await.unwrap();
        let kept = sets
            .set_retention(
                "logs",
                RetentionOverride {
                    max_age_days: Some(30),
                    max_size_mb: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(kept.max_age_days, 30);
        sets.enforce_retention().await.unwrap();
        let counts: Vec<u64> = sets
            .list()
            .await
            .unwrap()
            .iter()
            .map(|s| s.events)
            .collect();
        assert_eq!(counts, [0, 1], "logs keeps 30 days, other keeps for ever");
    }

    #[tokio::test]
    async fn retention_removes_what_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_age_days: 1,
            max_size_mb: 0,
        };
        let sets = EventSets::open(dir.path(), retention).unwrap();
        let recent = serde_json::json!({"message": "recent"});
        let old = serde_json::json!({"timestamp": "2020-01-01T00:00:00Z", "message": "old"});
        sets.ingest("logs", body(&[old, recent])).await.unwrap();
        sets.enforce_retention().await.unwrap();
        let page = search(&sets, "", 10, None).await;
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0]["message"], "recent");
        assert!(
            page.events[0]["timestamp"].is_string(),
            "stamped on arrival"
        );
    }
}
