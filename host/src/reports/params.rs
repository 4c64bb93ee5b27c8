//! Query-string parsing for the billing endpoints: typed, with errors that name the parameter.

use crate::api::ApiError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// Parsed `key=value` pairs (percent-decoded); a repeated key keeps the last value.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

/// An optional `[start, end)` range.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Why a query is refused (400 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        ApiError::BadRequest(e.0)
    }
}

impl Params {
    /// Parses a query string.
    pub fn parse(query: Option<&str>) -> Params {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
            if let Some(v) = crate::proxy::authenticate::query_param(pair, k) {
                map.insert(k.to_string(), v);
            }
        }
        Params(map)
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A text parameter compared with a Postgres text column, which cannot hold a NUL
    /// character (Postgres refuses such a value instead of matching nothing).
    pub fn text(&self, key: &str) -> Result<Option<&str>, ParamError> {
        match self.get(key) {
            Some(v) if v.contains('\0') => Err(ParamError(format!("`{key}` must not contain NUL (%00) characters"))),
            other => Ok(other),
        }
    }

    /// A UUID parameter.
    pub fn uuid(&self, key: &str) -> Result<Option<Uuid>, ParamError> {
        self.get(key)
            .map(|v| v.parse().map_err(|_| ParamError(format!("`{key}` must be a UUID, got `{v}`"))))
            .transpose()
    }

    /// An RFC 3339 timestamp parameter.
    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParamError> {
        self.get(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                    ParamError(format!("`{key}` must be an RFC 3339 time like 2026-11-01T00:00:00Z, got `{v}`"))
                })
            })
            .transpose()
    }

    /// A `[start, end)` range; both optional, `end` after `start`.
    pub fn range(&self) -> Result<TimeRange, ParamError> {
        let (start, end) = (self.time("start")?, self.time("end")?);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(ParamError("`end` must be after `start`".into()));
        }
        Ok((start, end))
    }

    /// An integer parameter within `[min, max]`, or `default`.
    pub fn int(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ParamError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ParamError(format!("`{key}` must be an integer from {min} to {max}, got `{v}`"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_parameter() {
        let p = Params::parse(Some("tenant_id=nope&start=2026-11-02T00:00:00Z&end=2026-11-01T00:00:00Z&limit=5000"));
        assert!(p.uuid("tenant_id").unwrap_err().0.contains("tenant_id"));
        assert!(p.range().unwrap_err().0.contains("after"));
        assert!(p.int("limit", 100, 1, 1000).unwrap_err().0.contains("limit"));
        assert!(Params::parse(Some("model=gpt%00")).text("model").unwrap_err().0.contains("model"));
        let p = Params::parse(Some("start=2026-11-01T00%3A00%3A00%2B01%3A00"));
        assert_eq!(p.time("start").unwrap().unwrap().to_rfc3339(), "2026-10-31T23:00:00+00:00");
    }
}
