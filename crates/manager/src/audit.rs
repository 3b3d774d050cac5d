//! The audit log: one JSON line per request that may change something
//! (time, token name, method, path, resulting status, and what it was
//! about when the path does not say), appended to `<data_dir>/audit.log`
//! and synced before the response leaves.

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
use datascale_http::auth::Caller;
use serde::Serialize;
use tracing::error;

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

/// What a request was about when its path does not say, such as the
/// worker an enrollment names or the token a creation made; a handler puts
/// it in its response's extensions.
#[derive(Debug, Clone)]
pub struct AuditSubject(pub String);

/// One line of the audit log.
#[derive(Debug, Serialize)]
struct AuditEntry {
    time: String,
    /// The token's name; none when no valid token was presented.
    token: Option<String>,
    method: String,
    path: String,
    status: u16,
    /// What it was about, when its path does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
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
        subject: response
            .extensions()
            .get::<AuditSubject>()
            .map(|subject| subject.0.clone()),
    };
    audit.record(entry).await;
    response
}
