//! API keys: `XJP_` + 40 random base62 characters, stored as SHA-256 digest + display prefix.

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "XJP_";
const RANDOM_LEN: usize = 40;
/// Characters of a key shown in listings (`XJP_` + 8).
pub const DISPLAY_LEN: usize = 12;

/// A new random key (shown to the operator once, never stored).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_LEN).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{KEY_PREFIX}{random}")
}

/// SHA-256 of a presented key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// An API key as listed (no secret material).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub prefix: String,
    pub name: Option<String>,
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What authentication needs about a key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyIdentity {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub key_status: String,
    pub tenant_status: String,
}

const COLUMNS: &str = "id, tenant_id, prefix, name, status, created_at, revoked_at";

/// Creates a key for a tenant; returns the row and the plaintext (shown once).
pub async fn create(db: &PgPool, tenant_id: Uuid, name: Option<&str>) -> Result<(ApiKey, String), sqlx::Error> {
    create_with_plaintext(db, tenant_id, name, &generate()).await
}

/// Creates a key with a given plaintext (the demo key; tests).
pub async fn create_with_plaintext(
    db: &PgPool,
    tenant_id: Uuid,
    name: Option<&str>,
    plaintext: &str,
) -> Result<(ApiKey, String), sqlx::Error> {
    let prefix: String = plaintext.chars().take(DISPLAY_LEN).collect();
    let row = sqlx::query_as::<_, ApiKey>(&format!(
        "INSERT INTO api_keys (id, tenant_id, digest, prefix, name) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(&digest(plaintext)[..])
    .bind(prefix)
    .bind(name)
    .fetch_one(db)
    .await?;
    Ok((row, plaintext.to_string()))
}

/// A tenant's keys, newest first.
pub async fn list(db: &PgPool, tenant_id: Uuid) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as::<_, ApiKey>(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant_id)
    .fetch_all(db)
    .await
}

/// Revokes a key; `None` when it does not exist.
pub async fn revoke(db: &PgPool, key_id: Uuid) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as::<_, ApiKey>(&format!(
        "UPDATE api_keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(key_id)
    .fetch_optional(db)
    .await
}

/// Looks a presented key up by digest.
pub async fn identify(db: &PgPool, digest: &[u8; 32]) -> Result<Option<KeyIdentity>, sqlx::Error> {
    super::retry_dropped(db, || {
        sqlx::query_as::<_, KeyIdentity>(
            "SELECT k.id AS key_id, k.tenant_id, k.status AS key_status, t.status AS tenant_status \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.digest = $1",
        )
        .bind(&digest[..])
        .fetch_optional(db)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_right() {
        let k = generate();
        assert!(k.starts_with("XJP_"));
        assert_eq!(k.len(), 4 + RANDOM_LEN);
        assert_ne!(generate(), k);
        assert_eq!(digest(&k), digest(&k.clone()));
    }
}
