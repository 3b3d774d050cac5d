//! Credentials: the admin and worker tokens (configured, or generated once
//! into `data_dir` and reused), and which role a presented bearer token has:
//! these, a worker's own credential, or an enrollment token made through
//! the manager's API (looked up through [`WorkerCredentials`] and
//! [`EnrollmentTokens`], which the manager provides).

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use datascale_core::durable;
use subtle::ConstantTimeEq;
use tracing::info;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Heartbeat, sync, collector download and event ingest; enrolling,
    /// with the built-in enrollment token.
    Worker,
    /// Enrolling a worker and nothing else: an enrollment token made
    /// through the API, limited to its groups.
    Enrollment,
}

/// Who made a request: the role and the name of the token presented (never
/// the secret), as the history and the audit log record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the token may do.
    pub role: Role,
    /// The token's name: `admin`, a named admin token's name, `worker` (the
    /// built-in enrollment token), `worker <id>` (a worker's own
    /// credential) or `enrollment token <id>`.
    pub name: String,
    /// The worker whose own credential this is.
    pub worker_id: Option<String>,
    /// The enrollment token (made through the API) this is.
    pub enrollment_token: Option<String>,
}

impl Caller {
    fn new(role: Role, name: String) -> Self {
        Self {
            role,
            name,
            worker_id: None,
            enrollment_token: None,
        }
    }
}

/// The credentials a manager issued to enrolled workers.
pub trait WorkerCredentials: Send + Sync + std::fmt::Debug {
    /// The id of the worker whose credential `presented` is.
    fn worker_of(&self, presented: &str) -> Option<String>;
}

/// The enrollment tokens admins made through a manager's API.
pub trait EnrollmentTokens: Send + Sync + std::fmt::Debug {
    /// The id of the enrollment token whose secret `presented` is, whether
    /// or not it may still enroll (expired and used-up ones are refused,
    /// with the reason, when they try).
    fn token_of(&self, presented: &str) -> Option<String>;
}

/// The tokens this node accepts.
#[derive(Debug)]
pub struct Tokens {
    /// Named admin tokens: name, secret.
    admins: Vec<(String, String)>,
    /// The worker (enrollment) token; it may be rotated while running.
    worker: RwLock<Option<String>>,
    /// Where a generated enrollment token is kept; none when it is
    /// configured (and so rotated by changing the configuration).
    generated_worker_path: Option<PathBuf>,
    workers: Option<Arc<dyn WorkerCredentials>>,
    enrollment: Option<Arc<dyn EnrollmentTokens>>,
}

/// A token that was generated on this start and must be shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedToken {
    /// `admin` or `worker`.
    pub kind: &'static str,
    /// Where it is stored.
    pub path: PathBuf,
    /// The token itself.
    pub token: String,
}

/// Why the tokens could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A token file could not be read or written.
    #[error("cannot {action} the {kind} token file {path}: {source}")]
    TokenFile {
        /// `read` or `write`.
        action: &'static str,
        /// `admin` or `worker`.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// The tokens a manager is configured with; an empty one is generated on
/// the first start and kept in `data_dir`.
#[derive(Debug, Clone, Default)]
pub struct ManagerTokens {
    /// Where generated tokens are kept, below `secrets/`.
    pub data_dir: PathBuf,
    /// The main admin token.
    pub admin_token: String,
    /// The built-in enrollment token of workers.
    pub worker_token: String,
    /// More admin tokens, each with its name: (name, secret).
    pub named_admin_tokens: Vec<(String, String)>,
}

/// Where a generated token of the given kind is kept.
pub fn token_path(data_dir: &Path, kind: &str) -> PathBuf {
    data_dir.join("secrets").join(format!("{kind}.token"))
}

impl Tokens {
    /// The tokens of a manager: configured ones win; otherwise the ones stored
    /// in `data_dir`, generated on the first start. Returns the ones generated
    /// now, to be shown once.
    pub fn for_manager(
        configured: &ManagerTokens,
    ) -> Result<(Self, Vec<GeneratedToken>), AuthError> {
        let mut generated = Vec::new();
        let mut resolve = |kind: &'static str, given: &str, prefix: &str| {
            if !given.is_empty() {
                return Ok(given.to_owned());
            }
            let path = token_path(&configured.data_dir, kind);
            if let Some(token) = read_token(kind, &path)? {
                return Ok(token);
            }
            let token = new_token(prefix);
            store_token(kind, &path, &token)?;
            info!(kind, path = %path.display(), "Generated a token; it is stored with mode 0600.");
            generated.push(GeneratedToken {
                kind,
                path,
                token: token.clone(),
            });
            Ok::<_, AuthError>(token)
        };
        let admin = resolve("admin", &configured.admin_token, "dsa_")?;
        let worker = resolve("worker", &configured.worker_token, "dsw_")?;
        let mut admins = vec![("admin".to_owned(), admin)];
        admins.extend(configured.named_admin_tokens.iter().cloned());
        let generated_worker_path = configured
            .worker_token
            .is_empty()
            .then(|| token_path(&configured.data_dir, "worker"));
        Ok((
            Self {
                admins,
                worker: RwLock::new(Some(worker)),
                generated_worker_path,
                workers: None,
                enrollment: None,
            },
            generated,
        ))
    }

    /// The tokens a worker's local API accepts: its own worker token.
    pub fn for_worker(worker_token: &str) -> Self {
        Self {
            admins: Vec::new(),
            worker: RwLock::new(Some(worker_token.to_owned())),
            generated_worker_path: None,
            workers: None,
            enrollment: None,
        }
    }

    /// Replaces the generated enrollment token with a new one, kept in
    /// `data_dir`, and returns it. Enrolled workers keep their own
    /// credentials and are not touched. `None` when the token is configured
    /// (`service.manager.worker_token`), so that only the configuration
    /// changes it.
    pub fn rotate_enrollment_token(&self) -> Result<Option<String>, AuthError> {
        let Some(path) = &self.generated_worker_path else {
            return Ok(None);
        };
        let token = new_token("dsw_");
        store_token("worker", path, &token)?;
        *self.worker.write().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        info!(path = %path.display(), "Rotated the enrollment token.");
        Ok(Some(token))
    }

    /// These tokens, and the credentials of enrolled workers.
    pub fn with_worker_credentials(self, workers: Arc<dyn WorkerCredentials>) -> Self {
        Self {
            workers: Some(workers),
            ..self
        }
    }

    /// These tokens, and the enrollment tokens made through the API.
    pub fn with_enrollment_tokens(self, enrollment: Arc<dyn EnrollmentTokens>) -> Self {
        Self {
            enrollment: Some(enrollment),
            ..self
        }
    }

    /// Who presents this token. Every known token is compared, each in
    /// constant time, so the answer's timing says nothing about which matched.
    pub fn identify(&self, presented: &str) -> Option<Caller> {
        let matches = |token: &str| {
            !token.is_empty() && bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
        };
        let mut caller = None;
        for (name, secret) in &self.admins {
            if matches(secret) && caller.is_none() {
                caller = Some(Caller::new(Role::Admin, name.clone()));
            }
        }
        let worker = self.worker.read().unwrap_or_else(PoisonError::into_inner);
        if worker.as_deref().is_some_and(matches) && caller.is_none() {
            caller = Some(Caller::new(Role::Worker, "worker".to_owned()));
        }
        caller
            .or_else(|| {
                let id = self.workers.as_ref()?.worker_of(presented)?;
                Some(Caller {
                    worker_id: Some(id.clone()),
                    ..Caller::new(Role::Worker, format!("worker {id}"))
                })
            })
            .or_else(|| {
                let id = self.enrollment.as_ref()?.token_of(presented)?;
                Some(Caller {
                    enrollment_token: Some(id.clone()),
                    ..Caller::new(Role::Enrollment, format!("enrollment token {id}"))
                })
            })
    }
}

/// Reads a stored token; `None` when there is none yet.
pub fn read_token(kind: &'static str, path: &Path) -> Result<Option<String>, AuthError> {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::TokenFile {
            action: "read",
            kind,
            path: path.to_owned(),
            source,
        }),
    }
}

/// Keeps a secret in `path` (mode 0600, its directory 0700), atomically.
pub fn store_token(kind: &'static str, path: &Path, token: &str) -> Result<(), AuthError> {
    let error = |source| AuthError::TokenFile {
        action: "write",
        kind,
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().expect("a token path has a directory");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(error)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(error)?;
    durable::write_atomic(path, format!("{token}\n").as_bytes(), 0o600).map_err(error)
}

/// A new random token: a prefix that says what it is, then 256 random bits in hex.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_in(dir: &Path) -> ManagerTokens {
        ManagerTokens {
            data_dir: dir.to_owned(),
            ..ManagerTokens::default()
        }
    }

    #[test]
    fn tokens_are_generated_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let service = service_in(dir.path());
        let (first, generated) = Tokens::for_manager(&service).unwrap();
        assert_eq!(generated.len(), 2);
        for token in &generated {
            let mode = fs::metadata(&token.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", token.path.display());
            assert_eq!(token.token.len(), 4 + 64);
        }
        let (second, generated_again) = Tokens::for_manager(&service).unwrap();
        assert!(generated_again.is_empty());
        assert_eq!(first.admins, second.admins);
        let worker = |tokens: &Tokens| tokens.worker.read().unwrap().clone();
        assert_eq!(worker(&first), worker(&second));
        assert_ne!(Some(&first.admins[0].1), worker(&first).as_ref());
        let rotated = first.rotate_enrollment_token().unwrap().unwrap();
        assert_ne!(Some(&rotated), worker(&second).as_ref());
        assert_eq!(first.identify(&rotated).unwrap().role, Role::Worker);
        let (reloaded, _) = Tokens::for_manager(&service).unwrap();
        assert_eq!(worker(&reloaded), Some(rotated), "the new token is kept");
    }

    #[test]
    fn configured_tokens_win_and_roles_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut service = service_in(dir.path());
        service.admin_token = "admin-secret".into();
        service.worker_token = "worker-secret".into();
        let (tokens, generated) = Tokens::for_manager(&service).unwrap();
        assert!(generated.is_empty());
        let role = |token: &str| tokens.identify(token).map(|caller| caller.role);
        assert_eq!(role("admin-secret"), Some(Role::Admin));
        assert_eq!(role("worker-secret"), Some(Role::Worker));
        assert_eq!(role("admin-secre"), None);
        assert_eq!(role(""), None);
        assert!(!token_path(dir.path(), "admin").exists());
        assert_eq!(tokens.rotate_enrollment_token().unwrap(), None);
    }

    #[test]
    fn an_empty_worker_token_accepts_nothing() {
        let tokens = Tokens::for_worker("");
        assert_eq!(tokens.identify(""), None);
    }

    /// One enrollment token made through the API, `et-1`.
    #[derive(Debug)]
    struct OneEnrollmentToken;

    impl EnrollmentTokens for OneEnrollmentToken {
        fn token_of(&self, presented: &str) -> Option<String> {
            (presented == "dse_secret").then(|| "et-1".to_owned())
        }
    }

    #[test]
    fn an_enrollment_token_of_the_api_has_a_role_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut service = service_in(dir.path());
        service.admin_token = "admin-secret".into();
        service.worker_token = "worker-secret".into();
        let (tokens, _) = Tokens::for_manager(&service).unwrap();
        let tokens = tokens.with_enrollment_tokens(Arc::new(OneEnrollmentToken));
        let caller = tokens.identify("dse_secret").unwrap();
        assert_eq!(
            (caller.role, caller.name.as_str(), caller.worker_id),
            (Role::Enrollment, "enrollment token et-1", None)
        );
        assert_eq!(caller.enrollment_token.as_deref(), Some("et-1"));
        let built_in = tokens.identify("worker-secret").unwrap();
        assert_eq!(
            (built_in.role, built_in.enrollment_token),
            (Role::Worker, None)
        );
        assert_eq!(tokens.identify("dse_other"), None);
    }

    #[test]
    fn named_admin_tokens_are_told_apart_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut service = service_in(dir.path());
        service.admin_token = "admin-secret".into();
        service.named_admin_tokens = vec![("alice".into(), "alice-secret-0123456789".into())];
        let (tokens, _) = Tokens::for_manager(&service).unwrap();
        let alice = tokens.identify("alice-secret-0123456789").unwrap();
        assert_eq!((alice.role, alice.name.as_str()), (Role::Admin, "alice"));
        assert_eq!(tokens.identify("admin-secret").unwrap().name, "admin");
        assert_eq!(tokens.identify("alice"), None);
    }
}
