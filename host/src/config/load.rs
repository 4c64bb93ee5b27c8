//! Reading and checking a config file.

use super::Config;
use std::path::{Path, PathBuf};

/// Why a config could not be used (start-up stops; a reload keeps the old config).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is not valid TOML for the gateway: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path} is invalid:\n  - {}", .errors.join("\n  - "))]
    Invalid { path: PathBuf, errors: Vec<String> },
}

/// Parses and validates config text; relative paths resolve against `base_dir`.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config: Config =
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(ConfigError::Invalid { path: path.to_path_buf(), errors });
    }
    let base_dir = path.parent().unwrap_or(Path::new("."));
    if config.plugins.dir.is_relative() {
        config.plugins.dir = base_dir.join(&config.plugins.dir);
    }
    for f in config.catalog.files.iter_mut().chain(config.catalog.imported.iter_mut()) {
        if f.is_relative() {
            *f = base_dir.join(&*f);
        }
    }
    for f in [&mut config.redis.ca_file, &mut config.redis.client_cert_file, &mut config.redis.client_key_file] {
        if let Some(f) = f.as_mut().filter(|f| f.is_relative()) {
            *f = base_dir.join(&*f);
        }
    }
    // State: the spool and the plugin cache, under one writable directory.
    let state_set = config.server.state_dir.is_some();
    let state_dir = match config.server.state_dir.take() {
        Some(d) if d.is_relative() => base_dir.join(d),
        Some(d) => d,
        None => base_dir.to_path_buf(),
    };
    if config.billing.spool_dir.is_relative() {
        config.billing.spool_dir = state_dir.join(&config.billing.spool_dir);
    }
    config.plugins.cache_dir = Some(match config.plugins.cache_dir.take() {
        Some(c) if c.is_relative() => state_dir.join(c),
        Some(c) => c,
        None if state_set => state_dir.join("plugin-cache"),
        None => config.plugins.dir.join(".cache"),
    });
    config.server.state_dir = Some(state_dir);
    Ok(config)
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        parse(text, Path::new("/etc/xjp/gateway.toml")).unwrap_err().to_string()
    }

    #[test]
    fn names_the_bad_key() {
        assert!(errors("[server]\nlisten = \"nope\"\n").contains("server.listen"));
        assert!(errors("[server]\nlistn = \"x\"\n").contains("unknown field `listn`"));
        let bad_provider = "[providers.p]\nbase_url = \"ftp://x\"\napi = \"soap\"\nauth = \"bearer\"\nplugin = \"\"\n";
        let e = errors(bad_provider);
        assert!(e.contains("providers.p.base_url"), "{e}");
        assert!(e.contains("providers.p.api"), "{e}");
        assert!(e.contains("providers.p.plugin"), "{e}");
        assert!(e.contains("providers.p.credential_env"), "{e}");
        let bad_model = "[providers.p]\nbase_url = \"http://x\"\napi = \"openai-chat\"\nauth = \"none\"\nplugin = \"openai\"\n\
            [[models]]\nname = \"m\"\nprovider = \"q\"\nupstream_model = \"u\"\n[models.price]\ninput = \"abc\"\noutput = \"1\"\n";
        let e = errors(bad_model);
        assert!(e.contains("models[0] (m).provider"), "{e}");
        assert!(e.contains("models[0] (m).price.input: `abc`"), "{e}");
    }

    /// The field names a config table declares (serde hands them to `deserialize_struct`).
    fn fields_of<T: for<'de> serde::Deserialize<'de>>() -> &'static [&'static str] {
        use serde::de::{Error, Visitor, value};
        struct Probe(std::cell::Cell<&'static [&'static str]>);
        impl<'de> serde::Deserializer<'de> for &Probe {
            type Error = value::Error;
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, value::Error> {
                self.0.set(fields);
                Err(value::Error::custom("fields read"))
            }
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
                Err(value::Error::custom("not a table"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
                unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let probe = Probe(std::cell::Cell::new(&[]));
        let _ = T::deserialize(&probe);
        probe.0.get()
    }

    #[test]
    fn the_example_config_shows_every_limit_at_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Every key is written out (a deleted one would still parse, to its default); the
        // ones without a default value are shown commented out.
        let raw: toml::Table = text.parse().unwrap();
        let tables = [
            ("server", fields_of::<crate::config::ServerConfig>(), &["admin_listen", "state_dir"][..]),
            ("limits", fields_of::<crate::config::LimitsConfig>(), &["per_tenant"]),
            ("auth", fields_of::<crate::config::AuthConfig>(), &[]),
            ("streaming", fields_of::<crate::config::StreamingConfig>(), &[]),
            ("plugins", fields_of::<crate::config::PluginsConfig>(), &["cache_dir"]),
        ];
        for (table, fields, commented) in tables {
            assert!(fields.len() >= 2, "[{table}]: {fields:?}");
            let written = raw.get(table).and_then(|t| t.as_table()).unwrap_or_else(|| panic!("[{table}] is a table"));
            for key in fields.iter().filter(|k| !commented.contains(*k)) {
                assert!(written.contains_key(*key), "config/gateway.toml: [{table}] {key} is missing");
            }
            for key in commented {
                assert!(fields.contains(key), "[{table}] has no key {key}");
                let shown = [format!("# {key} = "), format!("# [{table}.{key}]")];
                assert!(
                    shown.iter().any(|s| text.contains(s.as_str())),
                    "config/gateway.toml: [{table}] {key} not shown"
                );
            }
        }
        let c = load_file(&path).unwrap();
        // `state_dir` defaults to the config file's directory, resolved at load.
        let server = crate::config::ServerConfig { state_dir: None, ..c.server.clone() };
        assert_eq!(format!("{server:?}"), format!("{:?}", crate::config::ServerConfig::default()));
        assert_eq!(format!("{:?}", c.auth), format!("{:?}", crate::config::AuthConfig::default()));
        assert_eq!(format!("{:?}", c.limits), format!("{:?}", crate::config::LimitsConfig::default()));
        assert_eq!(format!("{:?}", c.streaming), format!("{:?}", crate::config::StreamingConfig::default()));
        let (p, d) = (&c.plugins, crate::config::PluginsConfig::default());
        assert_eq!(
            (p.call_timeout_ms, p.memory_mb, p.max_instances, p.offload_threshold_bytes),
            (d.call_timeout_ms, d.memory_mb, d.max_instances, d.offload_threshold_bytes)
        );
    }

    #[test]
    fn limits_are_validated() {
        let e = errors("[server]\nmax_connections = 0\nmax_header_bytes = 100\nadmin_listen = \"x\"\n");
        assert!(e.contains("server.max_connections") && e.contains("server.max_header_bytes"), "{e}");
        assert!(e.contains("server.admin_listen"), "{e}");
        let e = errors("[limits.per_tenant]\nacme = 3\n");
        assert!(e.contains("limits.per_tenant: `acme`"), "{e}");
        let e = errors("[auth]\nunknown_key_lookups_per_sec = 0\n");
        assert!(e.contains("auth.unknown_key_lookups_per_sec"), "{e}");
    }

    #[test]
    fn relative_plugin_dir_follows_the_file() {
        let c = parse("[plugins]\ndir = \"p\"\n", Path::new("/etc/xjp/gateway.toml")).unwrap();
        assert_eq!(c.plugins.dir, PathBuf::from("/etc/xjp/p"));
        // Without a state directory, state stays where it always was.
        assert_eq!(c.billing.spool_dir, PathBuf::from("/etc/xjp/spool"));
        assert_eq!(c.plugins.cache_dir, Some(PathBuf::from("/etc/xjp/p/.cache")));
        assert_eq!(c.server.state_dir, Some(PathBuf::from("/etc/xjp")));
    }

    #[test]
    fn state_lives_under_the_state_dir() {
        let text = "[server]\nstate_dir = \"/var/lib/xjp\"\n[plugins]\ndir = \"/usr/lib/xjp/plugins\"\n";
        let c = parse(text, Path::new("/etc/xjp/gateway.toml")).unwrap();
        assert_eq!(c.billing.spool_dir, PathBuf::from("/var/lib/xjp/spool"));
        assert_eq!(c.plugins.cache_dir, Some(PathBuf::from("/var/lib/xjp/plugin-cache")));
        let text = "[server]\nstate_dir = \"state\"\n[billing]\nspool_dir = \"s\"\n[plugins]\ncache_dir = \"/c\"\n";
        let c = parse(text, Path::new("/etc/xjp/gateway.toml")).unwrap();
        assert_eq!(c.billing.spool_dir, PathBuf::from("/etc/xjp/state/s"));
        assert_eq!(c.plugins.cache_dir, Some(PathBuf::from("/c")));
    }

    #[test]
    fn log_and_otel_keys_are_checked() {
        let e = errors("[log]\nformat = \"xml\"\n");
        assert!(e.contains("unknown variant `xml`"), "{e}");
        let e = errors("[log]\nfilter = \"info,=[\"\n");
        assert!(e.contains("log.filter"), "{e}");
        let e = errors("[otel]\nenabled = true\nendpoint = \"ftp://x\"\nsample_ratio = 2.0\n");
        assert!(e.contains("otel.endpoint") && e.contains("otel.sample_ratio"), "{e}");
        let e = errors("[redis]\nclient_cert_file = \"c.pem\"\n");
        assert!(e.contains("redis.client_key_file"), "{e}");
    }

    #[test]
    fn the_insert_linger_is_bounded() {
        let e = errors("[billing]\ninsert_linger_ms = 5000\n");
        assert!(e.contains("billing.insert_linger_ms"), "{e}");
        let e = errors("[billing]\ninsert_linger_ms = \"25\"\n");
        assert!(e.contains("insert_linger_ms"), "a string is refused: {e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../config/gateway.toml");
        let config = parse(text, Path::new("/etc/xjp/gateway.toml")).expect("config/gateway.toml parses");
        assert_eq!(config.validate(), Vec::<String>::new());
    }
}
