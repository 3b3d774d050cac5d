//! The audit log: one JSON line per request that may change something
//! (time, token name, method, path, resulting status), appended to
//! `<data_dir>/audit.log` and synced before the response leaves.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tracing::error;

use crate::auth::Caller;

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

/// One line of the audit log.
#[derive(Debug, Serialize)]
struct AuditEntry {
    time: String,
    /// The token's name; none when no valid token was presented.
    token: Option<String>,
    method: String,
    path: String,
    status: u16,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log at `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    async fn record(&self, entry: AuditEntry) {
        let mut line = serde_json::to_vec(&entry).expect("an audit entry serializes");
        line.push(b'\n');
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .unwrap_or_else(|err| Err(io::Error::other(err)));
        if let Err(err) = written {
            error!(path = %self.path.display(), error = %err, "Cannot write the audit log.");
        }
    }
}

/// Middleware: records every request whose method may change something.
pub async fn record_changes(
    State(audit): State<Arc<AuditLog>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), ToString::to_string);
    let response = next.run(request).await;
    let entry = AuditEntry {
        time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        token: response
            .extensions()
            .get::<Caller>()
            .map(|caller| caller.name.clone()),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    };
    audit.record(entry).await;
    response
}
