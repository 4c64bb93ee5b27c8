//! Tenants.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A tenant row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Creates a tenant.
pub async fn create(db: &PgPool, name: &str) -> Result<Tenant, sqlx::Error> {
    sqlx::query_as::<_, Tenant>("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, status, created_at")
        .bind(Uuid::now_v7())
        .bind(name)
        .fetch_one(db)
        .await
}

/// A tenant by id.
pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as::<_, Tenant>("SELECT id, name, status, created_at FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}
