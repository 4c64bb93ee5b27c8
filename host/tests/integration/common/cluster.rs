//! A private Redis Cluster on loopback: plain `redis-server --cluster-enabled yes` processes
//! joined by `redis-cli --cluster create`, masters with replicas, killable one by one.

use super::services::wait_port;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct PrivateCluster {
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
    _dir: tempfile::TempDir,
}

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = 20_000 + (rand_u16() % 10_000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() & 0xffff) as u16
}

impl PrivateCluster {
    /// `masters` masters with `replicas` replicas each; a node is considered failed after
    /// 1 s, so a killed master's replica takes over within a few seconds.
    pub fn start(masters: usize, replicas: usize) -> PrivateCluster {
        let dir = tempfile::tempdir().unwrap();
        let n = masters * (1 + replicas);
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for _ in 0..n {
            let port = cluster_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-replica-validity-factor",
                    "0",
                ])
                .args(["--cluster-config-file", "nodes.conf", "--dir"])
                .arg(&node_dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            wait_port(port, true);
            ports.push(port);
            children.push(Some(child));
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli on PATH");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = PrivateCluster { ports, children, _dir: dir };
        for &port in &cluster.ports {
            cluster.wait_ok(port);
        }
        cluster
    }

    /// Seed URLs, comma-separated (the gateway's cluster URL form).
    pub fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// Runs a command on one node.
    pub fn query<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        cmd.query(&mut client.get_connection_with_timeout(Duration::from_secs(2))?)
    }

    /// The port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let live = self.live_port();
        let slot: i64 = self.query(live, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).unwrap();
        let nodes: String = self.query(live, redis::cmd("CLUSTER").arg("NODES")).unwrap();
        for line in nodes.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let port: u16 = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            for range in &f[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<i64>(), hi.parse::<i64>())
                    && (lo..=hi).contains(&slot)
                {
                    return port;
                }
            }
        }
        panic!("no master serves slot {slot}:\n{nodes}")
    }

    /// Masters (by port) according to a live node.
    pub fn masters(&self) -> Vec<u16> {
        let nodes: String = self.query(self.live_port(), redis::cmd("CLUSTER").arg("NODES")).unwrap();
        nodes
            .lines()
            .filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("master") && !f.contains("fail")))
            .map(|l| l.split(' ').nth(1).unwrap().split(['@', ':']).nth(1).unwrap().parse().unwrap())
            .collect()
    }

    /// Kills one node (SIGKILL) and waits until its port is closed.
    pub fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|&p| p == port).expect("a node of this cluster");
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_port(port, false);
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_all_ok(&self) {
        for (i, &port) in self.ports.iter().enumerate() {
            if self.children[i].is_some() {
                self.wait_ok(port);
            }
        }
    }

    fn wait_ok(&self, port: u16) {
        let start = Instant::now();
        loop {
            let info: redis::RedisResult<String> = self.query(port, redis::cmd("CLUSTER").arg("INFO"));
            if info.is_ok_and(|i| i.contains("cluster_state:ok")) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "cluster node {port} never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn live_port(&self) -> u16 {
        let i = self.children.iter().position(Option::is_some).expect("a live node");
        self.ports[i]
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
