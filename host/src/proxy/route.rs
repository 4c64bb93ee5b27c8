//! Phase 3, route: public model name -> provider route, its plugin and its price.
//! An unknown, unpriced or unservable model is refused here, before any money moves.

use crate::api::GatewayError;
use crate::billing::Routed;
use crate::catalog::Catalog;
use crate::config::AuthStyle;
use crate::config::RouteTable;
use crate::plugins::{ApiFormat, PluginSet};

/// Resolves `model` for a client speaking `format`.
pub fn resolve(
    routes: &RouteTable,
    catalog: &Catalog,
    plugins: &PluginSet,
    format: ApiFormat,
    model: &str,
) -> Result<Routed, GatewayError> {
    let route = routes.route(model).ok_or_else(|| GatewayError::UnknownModel(model.to_string()))?;
    let provider = &route.provider;
    if provider.api != format {
        return Err(GatewayError::WrongEndpoint { model: model.to_string(), format: provider.api });
    }
    let price = catalog
        .resolve(&provider.name, &route.upstream_model, route.price.as_ref(), route.fallback_price.as_ref())
        .ok_or_else(|| GatewayError::Unpriced(model.to_string()))?;
    let plugin = plugins.get(&provider.plugin).ok_or_else(|| GatewayError::PluginMissing(provider.plugin.clone()))?;
    if !plugin.supports(format) {
        return Err(GatewayError::PluginMissing(format!("{} (does not read {format})", provider.plugin)));
    }
    if provider.auth != AuthStyle::None && provider.credential.is_none() {
        let var = provider.credential_env.as_deref().unwrap_or("?");
        return Err(GatewayError::Unavailable(format!("provider `{}` has no credential (set {var})", provider.name)));
    }
    Ok(Routed {
        route: route.clone(),
        plugin: plugin.clone(),
        price: price.entry,
        price_version: price.version,
        price_source: price.source,
    })
}
