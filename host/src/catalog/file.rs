//! Price files: `[prices."<provider>"."<model>"]` tables of USD-per-million decimal strings
//! (the shape of `PriceConfig`, plus an optional informational `source` key).

use super::PriceMap;
use crate::config::PriceConfig;
use crate::config::routes::price_entry;
use std::path::Path;

/// Why a price file is unusable (the previous catalog stays).
#[derive(Debug, thiserror::Error)]
pub enum PriceFileError {
    #[error("cannot read price file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("price file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Parses price-file text.
pub fn parse(text: &str, path: &str) -> Result<PriceMap, PriceFileError> {
    let invalid = |message: String| PriceFileError::Invalid { path: path.to_string(), message };
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
    let mut map = PriceMap::new();
    for (key, value) in &doc {
        if key != "prices" {
            return Err(invalid(format!("unknown top-level key `{key}` (expected [prices.\"provider\".\"model\"])")));
        }
        let providers = value.as_table().ok_or_else(|| invalid("`prices` must be a table".into()))?;
        for (provider, models) in providers {
            let models =
                models.as_table().ok_or_else(|| invalid(format!("prices.{provider} must be a table of models")))?;
            for (model, table) in models {
                let mut table = table
                    .as_table()
                    .cloned()
                    .ok_or_else(|| invalid(format!("prices.{provider}.\"{model}\" must be a table")))?;
                table.remove("source");
                let cfg: PriceConfig = toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| invalid(format!("prices.{provider}.\"{model}\": {e}")))?;
                let entry = price_entry(&cfg).map_err(|e| invalid(format!("prices.{provider}.\"{model}\".{e}")))?;
                map.insert((provider.clone(), model.clone()), entry);
            }
        }
    }
    Ok(map)
}

/// Reads and parses a price file.
pub fn load(path: &Path) -> Result<PriceMap, PriceFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PriceFileError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_keys() {
        let ok = r#"
[prices."anthropic"."claude-sonnet-4-5-20250929"]
input = "3"
output = "15"
cache_read = "0.30"
source = "litellm"
long_context = { threshold_tokens = 200000, input = "6", output = "22.50" }
"#;
        let map = parse(ok, "p.toml").unwrap();
        let p = &map[&("anthropic".to_string(), "claude-sonnet-4-5-20250929".to_string())];
        assert_eq!(p.rates.input, 3_000_000_000_000);
        assert_eq!(p.long_context.as_ref().unwrap().rates.output, 22_500_000_000_000);
        let e = parse("[prices.\"a\".\"m\"]\ninput = \"x\"\noutput = \"1\"\n", "p.toml").unwrap_err().to_string();
        assert!(e.contains("prices.a.\"m\".input"), "{e}");
        let e = parse("[prices.\"a\".\"m\"]\ninptu = \"1\"\n", "p.toml").unwrap_err().to_string();
        assert!(e.contains("inptu"), "{e}");
        assert!(parse("[other]\n", "p.toml").is_err());
    }
}
