//! compose.yaml checks (part of `cargo xtask check-dockerfile`): the services it builds name
//! real Dockerfile stages, dependencies name real services (and wait on health checks that
//! exist), the gateway services get their config file from the image, run with a read-only
//! root file system and a volume at the state directory, and are given the environment
//! variables their config names.

use crate::dockerfile::{Dockerfile, host_path, shown};
use crate::root;
use serde_json::Value;
use std::collections::BTreeSet;

/// The gateway's state directory in the image (the config's `server.state_dir`).
const STATE: &str = crate::dist::IMAGE_STATE;

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(String::from).collect(),
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

fn env_names(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => {
            a.iter().filter_map(|x| x.as_str()).map(|s| s.split('=').next().unwrap_or(s).to_string()).collect()
        }
        _ => BTreeSet::new(),
    }
}

/// Problems found in compose.yaml; `built`: the build steps ran, so image paths can be read.
pub fn check(file: &Dockerfile, workdir: &str, built: bool) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join("compose.yaml"))?;
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("compose.yaml: {e}"))?;
    let services = doc["services"].as_object().ok_or_else(|| anyhow::anyhow!("compose.yaml: no services"))?;
    let volumes: BTreeSet<&str> =
        doc["volumes"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    let stages: BTreeSet<&str> = file.stages.iter().filter_map(|s| s.name.as_deref()).collect();
    let last_stage = file.stages.last().and_then(|s| s.name.as_deref());
    let mut problems = Vec::new();
    for (name, svc) in services {
        let at = |what: &str| format!("compose.yaml: services.{name}.{what}");
        let mut stage = None;
        if let Some(build) = svc.get("build") {
            if build["context"].as_str().unwrap_or(build.as_str().unwrap_or("")) != "." {
                problems.push(at("build.context: must be `.` (the workspace, beside the Dockerfile)"));
            }
            stage = build["target"].as_str().or(last_stage);
            if let Some(t) = build["target"].as_str().filter(|t| !stages.contains(t)) {
                problems.push(at(&format!("build.target: no Dockerfile stage `{t}`")));
            }
        } else if svc.get("image").is_none() {
            problems.push(at("image: a service needs an image or a build"));
        }
        let deps: Vec<(String, String)> = match &svc["depends_on"] {
            Value::Array(a) => {
                a.iter().filter_map(|d| d.as_str()).map(|d| (d.into(), "service_started".into())).collect()
            }
            Value::Object(m) => m
                .iter()
                .map(|(d, c)| (d.clone(), c["condition"].as_str().unwrap_or("service_started").into()))
                .collect(),
            _ => Vec::new(),
        };
        for (dep, condition) in deps {
            match services.get(&dep) {
                None => problems.push(at(&format!("depends_on: no service `{dep}`"))),
                Some(d) if condition == "service_healthy" && d.get("healthcheck").is_none() => {
                    problems.push(at(&format!("depends_on.{dep}: waits for health, but `{dep}` has no healthcheck")))
                }
                Some(_) => {}
            }
        }
        for v in svc["volumes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let source = v.split(':').next().unwrap_or("");
            if !source.starts_with(['.', '/']) && !volumes.contains(source) {
                problems.push(at(&format!("volumes: `{source}` is not declared under top-level volumes")));
            }
        }
        // The gateway image: its config comes from the image and names the variables it needs.
        let command = strings(&svc["command"]);
        let is_gateway = stage.is_some() && stage == last_stage;
        if !is_gateway || command.is_empty() {
            continue;
        }
        let config = command
            .windows(2)
            .find(|w| w[0] == "--config")
            .map(|w| w[1].clone())
            .unwrap_or_else(|| "/etc/xjp/gateway.toml".into());
        if command[0] == "serve" {
            if svc["read_only"].as_bool() != Some(true) {
                problems.push(at("read_only: the gateway must run with a read-only root file system"));
            }
            let state_volume = svc["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|v| v.split(':').nth(1) == Some(STATE));
            if !state_volume {
                problems.push(at(&format!("volumes: nothing is mounted at {STATE} (server.state_dir)")));
            }
        }
        let Some(host) = host_path(file, workdir, &config) else {
            problems.push(at(&format!("command: {config} is not a file the image copies from the build stage")));
            continue;
        };
        if !built {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&host) else {
            problems.push(at(&format!("command: {config} ({}) was not built", shown(&host))));
            continue;
        };
        let toml: toml::Table = text.parse()?;
        let env = env_names(&svc["environment"]);
        for section in ["database", "redis"] {
            let default = if section == "database" { "DATABASE_URL" } else { "REDIS_URL" };
            let var = toml.get(section).and_then(|s| s.get("url_env")).and_then(|v| v.as_str()).unwrap_or(default);
            if !env.contains(var) {
                problems.push(at(&format!("environment: {config} reads {section} from {var}, which is not set")));
            }
        }
    }
    Ok(problems)
}
