//! `Config::validate`: every problem, each naming the key that is wrong.

use super::Config;
use super::routes::price_entry;
use crate::plugins::ApiFormat;
use std::collections::HashSet;

impl Config {
    /// All validation errors (empty when the config is usable).
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!("server.listen: `{}` is not an address like 127.0.0.1:8080", self.server.listen));
        }
        if let Some(admin) = &self.server.admin_listen
            && admin.parse::<std::net::SocketAddr>().is_err()
        {
            errors.push(format!("server.admin_listen: `{admin}` is not an address like 127.0.0.1:9090"));
        }
        let s = &self.server;
        for (key, v) in [
            ("body_limit_bytes", s.body_limit_bytes as u64),
            ("header_read_timeout_secs", s.header_read_timeout_secs),
            ("idle_timeout_secs", s.idle_timeout_secs),
            ("body_read_timeout_secs", s.body_read_timeout_secs),
            ("max_connections", s.max_connections as u64),
            ("http2_max_concurrent_streams", u64::from(s.http2_max_concurrent_streams)),
            ("http2_max_header_list_bytes", u64::from(s.http2_max_header_list_bytes)),
            ("accept_backoff_max_ms", s.accept_backoff_max_ms),
        ] {
            if v == 0 {
                errors.push(format!("server.{key}: must be greater than 0"));
            }
        }
        if s.max_header_bytes < 8192 {
            errors.push("server.max_header_bytes: must be at least 8192".into());
        }
        if self.plugins.call_timeout_ms == 0 || self.plugins.memory_mb == 0 || self.plugins.max_instances == 0 {
            errors.push(
                "plugins.call_timeout_ms, plugins.memory_mb and plugins.max_instances: must be greater than 0".into(),
            );
        }
        let a = &self.auth;
        for (key, v) in [
            ("max_cached_keys", a.max_cached_keys),
            ("outage_grace_secs", a.outage_grace_secs),
            ("max_negative_keys", a.max_negative_keys),
            ("unknown_key_lookups_per_sec", u64::from(a.unknown_key_lookups_per_sec)),
            ("lookup_timeout_ms", a.lookup_timeout_ms),
        ] {
            if v == 0 {
                errors.push(format!("auth.{key}: must be greater than 0"));
            }
        }
        if self.limits.max_concurrent_per_tenant == 0 {
            errors.push("limits.max_concurrent_per_tenant: must be greater than 0".into());
        }
        for (tenant, cap) in &self.limits.per_tenant {
            if tenant.parse::<uuid::Uuid>().is_err() {
                errors.push(format!("limits.per_tenant: `{tenant}` is not a tenant id (UUID)"));
            }
            if *cap == 0 {
                errors.push(format!("limits.per_tenant.{tenant}: must be greater than 0"));
            }
        }
        let b = &self.billing;
        if [b.hold_ttl_secs, b.sweep_interval_ms, b.rollup_interval_ms, b.spool_max_rows, b.spool_max_bytes]
            .contains(&0)
        {
            errors.push(
                "billing.hold_ttl_secs, billing.sweep_interval_ms, billing.rollup_interval_ms, billing.spool_max_rows, \
                 billing.spool_max_bytes: must be greater than 0"
                    .into(),
            );
        }
        if b.insert_linger_ms > 1_000 {
            errors.push("billing.insert_linger_ms: at most 1000 (rows reach Postgres that much later)".into());
        }
        if self.streaming.max_duration_secs == 0 || self.streaming.client_write_timeout_secs == 0 {
            errors.push(
                "streaming.max_duration_secs, streaming.client_write_timeout_secs: must be greater than 0".into(),
            );
        }
        if tracing_subscriber::EnvFilter::builder().parse(&self.log.filter).is_err() {
            errors.push(format!("log.filter: `{}` is not a tracing filter (like `info,hyper=warn`)", self.log.filter));
        }
        let otel_url_ok = self
            .otel
            .endpoint
            .parse::<hyper::Uri>()
            .ok()
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !otel_url_ok {
            errors.push(format!("otel.endpoint: `{}` is not an http(s) URL", self.otel.endpoint));
        }
        if !(0.0..=1.0).contains(&self.otel.sample_ratio) {
            errors.push(format!("otel.sample_ratio: {} is not between 0.0 and 1.0", self.otel.sample_ratio));
        }
        if self.otel.timeout_ms == 0 {
            errors.push("otel.timeout_ms: must be greater than 0".into());
        }
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty()
            || prefix.len() > 32
            || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errors.push(format!("redis.key_prefix: 1 to 32 of A-Z a-z 0-9 - _ . (got {prefix:?})"));
        }
        if self.redis.client_cert_file.is_some() != self.redis.client_key_file.is_some() {
            errors.push("redis.client_cert_file, redis.client_key_file: set both or neither".into());
        }
        for (name, p) in &self.providers {
            let key = format!("providers.{name}");
            let url_ok = p.base_url.parse::<hyper::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none()
            });
            if !url_ok {
                errors.push(format!("{key}.base_url: `{}` is not an http(s) URL without a query", p.base_url));
            }
            match p.api.parse::<ApiFormat>() {
                Ok(api) => errors.extend(p.forwarding(api).1.into_iter().map(|e| format!("{key}.{e}"))),
                Err(e) => errors.push(format!("{key}.api: {e}")),
            }
            if p.plugin.trim().is_empty() {
                errors.push(format!("{key}.plugin: must name a plugin file (without .wasm)"));
            }
            if p.credential_env.is_none() && p.auth != super::AuthStyle::None {
                errors.push(format!("{key}.credential_env: required unless auth = \"none\""));
            }
            if let Some(field) = &p.output_limit_field
                && !matches!(field.as_str(), "max_completion_tokens" | "max_tokens")
            {
                errors.push(format!("{key}.output_limit_field: `{field}` is not max_completion_tokens or max_tokens"));
            }
            for (field, v) in [
                ("connect_timeout_ms", p.connect_timeout_ms),
                ("first_byte_timeout_ms", p.first_byte_timeout_ms),
                ("between_chunks_timeout_ms", p.between_chunks_timeout_ms),
            ] {
                if v == 0 {
                    errors.push(format!("{key}.{field}: must be greater than 0"));
                }
            }
        }
        if let Some(sync) = &self.catalog.openrouter_sync {
            if !self.providers.contains_key(&sync.provider) {
                errors.push(format!("catalog.openrouter_sync.provider: no provider `{}`", sync.provider));
            }
            if sync.url.parse::<hyper::Uri>().ok().and_then(|u| u.host().map(|_| ())).is_none() {
                errors.push(format!("catalog.openrouter_sync.url: `{}` is not a URL", sync.url));
            }
            if sync.interval_secs == 0 {
                errors.push("catalog.openrouter_sync.interval_secs: must be greater than 0".into());
            }
        }
        let mut names = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let key = format!("models[{i}] ({})", m.name);
            if m.name.trim().is_empty() {
                errors.push(format!("models[{i}].name: must not be empty"));
            }
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                if !names.insert(n.clone()) {
                    errors.push(format!("{key}: name or alias `{n}` is used twice"));
                }
            }
            if !self.providers.contains_key(&m.provider) {
                errors.push(format!(
                    "{key}.provider: no provider `{}` (configured: {:?})",
                    m.provider,
                    self.providers.keys().collect::<Vec<_>>()
                ));
            }
            if m.upstream_model.trim().is_empty() {
                errors.push(format!("{key}.upstream_model: must not be empty"));
            }
            if m.default_max_output_tokens > m.max_output_tokens {
                errors.push(format!("{key}.default_max_output_tokens: larger than max_output_tokens"));
            }
            if let Some(e) = m.fallback_price.as_ref().and_then(|p| price_entry(p).err()) {
                errors.push(format!("{key}.fallback_price.{e}"));
            }
            if let Some(p) = &m.price {
                if let Err(e) = price_entry(p) {
                    errors.push(format!("{key}.price.{e}"));
                }
                if p.long_context.as_ref().is_some_and(|lc| lc.threshold_tokens == 0) {
                    errors.push(format!("{key}.price.long_context.threshold_tokens: must be greater than 0"));
                }
            }
        }
        errors
    }
}
