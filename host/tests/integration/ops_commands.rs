//! `xjp-gateway config check FILE` (exit code, messages naming the key) and
//! `xjp-gateway migrate` (`--dry-run` changes nothing; apply; a changed migration is
//! refused), run as the operator runs them: the real binary.

use crate::common;

use common::harness::{Options, TestDb, config_toml_with};
use std::path::Path;
use std::process::{Command, Output};

fn gateway(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("TEST_DATABASE_URL")
        .env_remove("TEST_REDIS_URL")
        .env_remove("MOCK_PROVIDER_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("the xjp-gateway binary runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The test gateway's config (plugins in target/plugins), with `extra` appended.
fn write_config(dir: &Path, extra: &str) -> String {
    let plugins = common::root().join("target/plugins").display().to_string();
    let cache = dir.join("cache").display().to_string();
    let options = Options { extra_toml: extra.to_string(), ..Options::default() };
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config_toml_with("http://127.0.0.1:9", &plugins, &cache, &options)).unwrap();
    path.display().to_string()
}

#[test]
fn config_check_accepts_a_good_file_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "");
    let env = [("TEST_DATABASE_URL", "postgres://x"), ("TEST_REDIS_URL", "redis://x"), ("MOCK_PROVIDER_KEY", "k")];
    let o = gateway(&["config", "check", &good], &env);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains(": ok (") && out.contains("providers"), "{out}");
    assert!(!err.contains("warning"), "{err}");

    // Unset variables are warnings, errors with --strict; nothing was started either way.
    let o = gateway(&["config", "check", &good], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(err.contains("warning: environment variable TEST_DATABASE_URL is not set"), "{err}");
    assert!(err.contains("providers.openai.credential_env: MOCK_PROVIDER_KEY is not set"), "{err}");
    let o = gateway(&["config", "check", "--strict", &good], &[]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));

    // Each kind of mistake exits 1 and says where.
    let cases = [
        ("[log]\nlevel = \"debug\"\n", "unknown field `level`"),
        ("[log]\nformat = \"yaml\"\n", "unknown variant `yaml`"),
        ("[otel]\nenabled = true\nsample_ratio = 3.0\n", "otel.sample_ratio"),
        ("[catalog]\nfiles = [\"no-such-prices.toml\"]\n", "catalog: "),
    ];
    for (extra, expected) in cases {
        let sub = tempfile::tempdir().unwrap();
        let bad = write_config(sub.path(), extra);
        let o = gateway(&["config", "check", &bad], &env);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{extra}: {out}{err}");
        assert!(err.contains(expected) && out.contains("invalid"), "{extra}: {out}{err}");
    }
    let with_ca = std::fs::read_to_string(&good)
        .unwrap()
        .replace("url_env = \"TEST_REDIS_URL\"", "url_env = \"TEST_REDIS_URL\"\nca_file = \"missing-ca.pem\"");
    std::fs::write(&good, with_ca).unwrap();
    let o = gateway(&["config", "check", &good], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("redis.ca_file: cannot read"), "{:?}", text(&o));
    let o = gateway(&["config", "check", "/no/such/gateway.toml"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("cannot read config"), "{:?}", text(&o));
}

#[tokio::test]
async fn migrate_dry_run_changes_nothing_then_applies_and_refuses_a_changed_migration() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let env = [("TEST_DATABASE_URL", db.url.as_str())];
    let migrations: Vec<_> = std::fs::read_dir(common::root().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();

    let o = gateway(&["migrate", "--config", &config, "--dry-run"], &env);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("pending ")).count(), migrations.len(), "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tables, 0, "a dry run created tables");

    let o = gateway(&["migrate", "--config", &config], &env);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("applying ")).count(), migrations.len(), "{out}");
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&pool).await.unwrap();
    assert_eq!(applied as usize, migrations.len());

    let o = gateway(&["migrate", "--config", &config, "--dry-run"], &env);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.starts_with("up to date"), "{:?}", text(&o));

    // A migration file edited after it ran: refused before anything is applied.
    sqlx::query(
        "UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = (SELECT min(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let o = gateway(&["migrate", "--config", &config], &env);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("different checksum"), "{err}");
    pool.close().await;

    let o = gateway(&["migrate", "--config", &config], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("TEST_DATABASE_URL is not set"), "{:?}", text(&o));
}
