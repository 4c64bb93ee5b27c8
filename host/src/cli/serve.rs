//! `xjp-gateway serve`: run the gateway until SIGTERM / SIGINT.

use crate::gateway::Gateway;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The config file.
    #[arg(long, env = "XJP_CONFIG", default_value = "config/gateway.toml")]
    pub config: PathBuf,
}

/// Starts everything; returns when shut down.
pub async fn run(args: &ServeArgs) -> Result<(), String> {
    let config = crate::config::load_file(&args.config).map_err(|e| e.to_string())?;
    let telemetry = crate::ops::telemetry::init(&config.log, &config.otel)?;
    crate::ops::install_metrics();
    let addr = config.server.listen.parse().map_err(|e| format!("server.listen: {e}"))?;
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let gw = Gateway::build(config, Some(args.config.clone()), crate::config::process_env())
        .await
        .map_err(|e| e.to_string())?;
    gw.start_background();
    let _plugin_watch = crate::plugins::watch::watch(gw.plugins.clone()).map_err(|e| format!("plugin watch: {e}"))?;
    let _config_watch = gw.watch_config().map_err(|e| format!("config watch: {e}"))?;
    let server =
        crate::server::start(gw.clone(), addr, grace).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    if let Some(admin) = server.admin_addr {
        // Before the public line: whoever waits for "listening on" knows both addresses then.
        tracing::info!(addr = %admin, "admin listener (metrics, internal, admin)");
        println!("xjp-gateway admin listening on http://{admin}");
    }
    tracing::info!(addr = %server.addr, "xjp-gateway listening");
    println!("xjp-gateway listening on http://{}", server.addr);
    let stop = server.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        let _ = stop.send(true);
    });
    server.wait().await;
    telemetry.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
