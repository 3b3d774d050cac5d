//! Enrollment tokens made through the API, as Elastic Fleet has them: each
//! limited to a list of groups (or to none), with an optional expiry and
//! number of uses. The store keeps them with the SHA-256 of each secret;
//! this registry keeps those hashes in memory too, so that telling who
//! presents a token takes no store read, and it makes, lists and revokes
//! them. Whether a token may still enroll, and counting its uses, is the
//! store's, in the transaction that enrolls the worker.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use datascale_http::auth::{EnrollmentTokens, new_token};

use super::{credential_hash, owner_of};
use crate::store::{Change, EnrollmentToken, Store, StoreError};

/// What an admin asks of a new enrollment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Free text for people.
    pub description: String,
    /// The groups a worker enrolling with it may ask for; `None`: any.
    pub groups: Option<Vec<String>>,
    /// When it stops enrolling workers (RFC 3339, in UTC); `None`: never.
    pub expires_at: Option<String>,
    /// How many workers it may enroll; `None`: any number.
    pub max_uses: Option<u64>,
}

/// The enrollment tokens of this manager.
#[derive(Debug)]
pub struct EnrollmentTokenRegistry {
    store: Arc<dyn Store>,
    /// SHA-256 of each token's secret → the token's id.
    by_hash: RwLock<HashMap<String, String>>,
}

impl EnrollmentTokenRegistry {
    /// The registry of the enrollment tokens in `store`.
    pub async fn load(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let by_hash = store
            .enrollment_tokens()
            .await?
            .into_iter()
            .map(|token| (token.secret_sha256, token.id))
            .collect();
        Ok(Arc::new(Self {
            store,
            by_hash: RwLock::new(by_hash),
        }))
    }

    /// Makes a token as `request` asks; returns it with its secret, which
    /// is not kept and cannot be shown again.
    pub async fn create(
        &self,
        request: TokenRequest,
        change: &Change,
    ) -> Result<(EnrollmentToken, String), StoreError> {
        let secret = new_token("dse_");
        let mut id_bytes = [0u8; 8];
        getrandom::fill(&mut id_bytes).expect("the operating system provides random bytes");
        let token = self
            .store
            .create_enrollment_token(
                EnrollmentToken {
                    id: format!("et-{}", hex::encode(id_bytes)),
                    description: request.description,
                    groups: request.groups,
                    expires_at: request.expires_at,
                    max_uses: request.max_uses,
                    uses: 0,
                    created_at: String::new(),
                    created_by: String::new(),
                    secret_sha256: credential_hash(&secret),
                },
                change,
            )
            .await?;
        self.by_hash
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.secret_sha256.clone(), token.id.clone());
        Ok((token, secret))
    }

    /// Every token, by id.
    pub async fn list(&self) -> Result<Vec<EnrollmentToken>, StoreError> {
        self.store.enrollment_tokens().await
    }

    /// Revokes a token: no worker enrolls with it from now on.
    pub async fn revoke(&self, id: &str, change: &Change) -> Result<EnrollmentToken, StoreError> {
        let token = self.store.revoke_enrollment_token(id, change).await?;
        self.by_hash
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&token.secret_sha256);
        Ok(token)
    }
}

impl EnrollmentTokens for EnrollmentTokenRegistry {
    fn token_of(&self, presented: &str) -> Option<String> {
        owner_of(&self.by_hash, presented)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn request(groups: Option<&[&str]>) -> TokenRequest {
        TokenRequest {
            description: "edge hosts".to_owned(),
            groups: groups.map(|groups| groups.iter().map(|group| (*group).to_owned()).collect()),
            expires_at: None,
            max_uses: Some(3),
        }
    }

    #[tokio::test]
    async fn a_token_is_told_by_its_secret_until_revoked_and_across_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
        let registry = EnrollmentTokenRegistry::load(store.clone()).await.unwrap();
        let admin = Change::by("admin");
        let (edge, secret) = registry
            .create(request(Some(&["edge"])), &admin)
            .await
            .unwrap();
        let (other, _) = registry.create(request(None), &admin).await.unwrap();
        assert!(
            secret.starts_with("dse_") && secret.len() == 4 + 64,
            "{secret}"
        );
        assert!(
            edge.id.starts_with("et-") && edge.id.len() == 3 + 16,
            "{}",
            edge.id
        );
        assert_ne!(edge.id, other.id);
        assert_eq!(edge.secret_sha256, credential_hash(&secret));
        assert_eq!(
            registry.token_of(&secret).as_deref(),
            Some(edge.id.as_str())
        );
        assert_eq!(registry.token_of("dse_nothing"), None);
        let reloaded = EnrollmentTokenRegistry::load(store).await.unwrap();
        assert_eq!(
            reloaded.token_of(&secret).as_deref(),
            Some(edge.id.as_str())
        );
        assert_eq!(reloaded.list().await.unwrap().len(), 2);
        reloaded.revoke(&edge.id, &admin).await.unwrap();
        assert_eq!(reloaded.token_of(&secret), None);
        assert_eq!(reloaded.list().await.unwrap(), [other]);
    }
}
