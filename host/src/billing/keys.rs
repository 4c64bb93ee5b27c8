//! The Redis key names: `<prefix>:{tenant}:...` for a tenant's keys (one hash slot per tenant,
//! so every script runs unchanged on Redis Cluster) and `<prefix>:hold-tenants` for the index
//! of tenants with open holds. The prefix keeps deployments that share a Redis apart.

use uuid::Uuid;

/// A tenant's account keys.
pub struct TenantKeys {
    pub account: String,
    pub holds: String,
    pub expiry: String,
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct KeySpace {
    prefix: String,
    hold_tenants: String,
}

impl KeySpace {
    /// Keys under `prefix` (validated by the config: short, no hash-tag braces).
    pub fn new(prefix: &str) -> Self {
        KeySpace { prefix: prefix.to_string(), hold_tenants: format!("{prefix}:hold-tenants") }
    }

    /// `<prefix>:{tenant}:`, what every key of the tenant starts with (the tenant id is
    /// formatted once per call, not once per key).
    fn tag(&self, tenant: Uuid) -> String {
        format!("{}:{{{tenant}}}:", self.prefix)
    }

    /// The tenant's account, holds and hold-expiry keys.
    pub fn tenant(&self, tenant: Uuid) -> TenantKeys {
        let tag = self.tag(tenant);
        TenantKeys { account: format!("{tag}account"), holds: format!("{tag}holds"), expiry: tag + "expiry" }
    }

    /// A request's state (its idempotency record).
    pub fn request(&self, tenant: Uuid, request_id: &str) -> String {
        self.tag(tenant) + "req:" + request_id
    }

    /// A commit's checked-once marker (`recount.lua`): a gateway and a transaction id.
    pub(super) fn recount(&self, tenant: Uuid, gateway: Uuid, xid: &str) -> String {
        self.tag(tenant) + "recount:" + &gateway.to_string() + ":" + xid
    }

    /// A credit's applied-once marker.
    pub(super) fn credit(&self, tenant: Uuid, credit_id: &str) -> String {
        self.tag(tenant) + "credit:" + credit_id
    }

    /// The sorted set of tenants with (possibly) open holds: the one key outside a tenant's
    /// hash slot.
    pub fn hold_tenants(&self) -> &str {
        &self.hold_tenants
    }

    /// The pattern matching every key of `tenant` (for tools and tests).
    pub fn tenant_pattern(&self, tenant: Uuid) -> String {
        self.tag(tenant) + "*"
    }
}

impl Default for KeySpace {
    fn default() -> Self {
        KeySpace::new("xjp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_keys_share_one_hash_tag_under_the_prefix() {
        let t = Uuid::nil();
        let k = KeySpace::new("staging");
        let tk = k.tenant(t);
        let tag = format!("{{{t}}}");
        for key in [&tk.account, &tk.holds, &tk.expiry, &k.request(t, "r"), &k.credit(t, "c"), &k.recount(t, t, "9")] {
            assert!(key.starts_with("staging:"), "{key}");
            assert!(key.contains(&tag), "{key}");
        }
        assert_eq!(k.hold_tenants(), "staging:hold-tenants");
        assert_ne!(KeySpace::new("a").request(t, "r"), KeySpace::new("b").request(t, "r"));
    }
}
