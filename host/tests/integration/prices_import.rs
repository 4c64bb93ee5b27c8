//! `xjp-gateway prices import`: LiteLLM's price table -> price file, golden and CLI tests.

use std::path::PathBuf;
use std::process::Command;
use xjp_gateway::config::PriceConfig;
use xjp_gateway::config::routes::price_entry;
use xjp_gateway::prices::litellm::{self, ProviderMap};

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/litellm_sample.json")
}

const GOLDEN: &str = r#"# Imported from LiteLLM model_prices_and_context_window.json by `xjp-gateway prices import`.

[prices."anthropic"."claude-sonnet-4-5-20250929"]
input = "3"
output = "15"
cache_read = "0.3"
cache_write_5m = "3.75"
cache_write_1h = "6"
long_context = { threshold_tokens = 200000, input = "6", output = "22.5", cache_read = "0.6", cache_write_5m = "7.5" }
fees = { web_search = "0.01" }
source = "litellm"

[prices."deepseek"."deepseek-chat"]
input = "0.27"
output = "1.1"
cache_read = "0.07"
source = "litellm"

[prices."gemini"."gemini-2.5-flash"]
input = "0.3"
output = "2.5"
cache_read = "0.03"
reasoning = "2.5"
fees = { google_search = "0.035" }
source = "litellm"

[prices."gemini"."gemini-2.5-pro"]
input = "1.25"
output = "10"
cache_read = "0.125"
long_context = { threshold_tokens = 200000, input = "2.5", output = "15", cache_read = "0.25" }
source = "litellm"

[prices."mistral"."mistral-large"]
input = "2"
output = "6"
fees = { request = "0.0001" }
source = "litellm"

[prices."openai"."gpt-4o-mini"]
input = "0.15"
output = "0.6"
cache_read = "0.075"
source = "litellm"

[prices."openai"."gpt-4o-search-preview"]
input = "2.5"
output = "10"
fees = { web_search = "0.05" }
source = "litellm"

[prices."openrouter"."anthropic/claude-3.5-haiku"]
input = "0.8"
output = "4"
source = "litellm"

[prices."perplexity"."sonar"]
input = "1"
output = "1"
fees = { search_context_high = "0.012", search_context_low = "0.005", search_context_medium = "0.008" }
source = "litellm"

[prices."perplexity"."sonar-deep-research"]
input = "2"
output = "8"
reasoning = "3"
fees = { citation_tokens = "0.000002", search_queries = "0.005" }
source = "litellm"

[prices."xai"."grok-4"]
input = "3"
output = "15"
cache_read = "0.75"
source = "litellm"
"#;

const SUMMARY: &str = "imported 11 models (anthropic: 1, deepseek: 1, gemini: 2, mistral: 1, openai: 2, openrouter: 1, \
                       perplexity: 2, xai: 1); skipped 3 (duplicate: 1, mode embedding: 1, no input/output price: 1); \
                       9 fees mapped; fee fields not imported: \
                       code_interpreter_cost_per_session (no plugin reports this quantity): 1, \
                       google_maps_grounding_cost_per_query (no plugin reports this quantity): 1, \
                       search_context_cost_per_query (no plugin fee known for provider mistral): 1, \
                       search_context_cost_per_query (the xai plugin bills no search per query): 1";

fn sample_import() -> litellm::Import {
    let json = std::fs::read_to_string(sample_path()).unwrap();
    litellm::import(&json, &ProviderMap::default(), "litellm_sample.json").unwrap()
}

#[test]
fn sample_converts_to_the_golden_price_file() {
    let import = sample_import();
    assert_eq!(import.to_toml(), GOLDEN);
    assert_eq!(import.summary(), SUMMARY);
}

#[test]
fn every_table_reads_back_as_a_price_config() {
    let doc: toml::Table = sample_import().to_toml().parse().unwrap();
    let mut n = 0;
    for (provider, models) in doc["prices"].as_table().unwrap() {
        for (model, table) in models.as_table().unwrap() {
            let mut table = table.as_table().unwrap().clone();
            table.remove("source");
            let cfg: PriceConfig =
                toml::Value::Table(table).try_into().unwrap_or_else(|e| panic!("{provider}/{model}: {e}"));
            let entry = price_entry(&cfg).unwrap_or_else(|e| panic!("{provider}/{model}: {e}"));
            if model == "claude-sonnet-4-5-20250929" {
                // 3e-06 USD per token = 3e12 atto-USD per token, exactly.
                assert_eq!(entry.rates.input, 3_000_000_000_000);
                assert_eq!(entry.rates.cache_write_1h, 6_000_000_000_000);
                let lc = entry.long_context.as_ref().unwrap();
                assert_eq!((lc.threshold_tokens, lc.rates.output), (200_000, 22_500_000_000_000));
            }
            if model == "gpt-4o-mini" {
                assert_eq!(entry.rates.cache_read, 75_000_000_000);
            }
            n += 1;
        }
    }
    assert_eq!(n, 11);
}

/// The fees a plugin reports, at the atto-USD per unit the imported file gives them.
fn imported_fees(provider: &str, model: &str) -> Vec<(String, u64)> {
    let doc: toml::Table = sample_import().to_toml().parse().unwrap();
    let mut table = doc["prices"][provider][model].as_table().unwrap().clone();
    table.remove("source");
    let cfg: PriceConfig = toml::Value::Table(table).try_into().unwrap();
    price_entry(&cfg).unwrap().fees.into_iter().map(|f| (f.name, f.atto_usd_per_unit)).collect()
}

#[test]
fn litellm_fee_fields_become_the_fees_the_plugins_report() {
    const CENT: u64 = 10_000_000_000_000_000; // $0.01 in atto-USD
    // Anthropic web search: one price per search, as the anthropic plugin's `web_search`.
    assert_eq!(imported_fees("anthropic", "claude-sonnet-4-5-20250929"), [("web_search".to_string(), CENT)]);
    // Gemini grounding: `google_search`; Maps grounding has no fee in the plugin (reported skipped).
    assert_eq!(imported_fees("gemini", "gemini-2.5-flash"), [("google_search".to_string(), CENT * 7 / 2)]);
    // OpenAI search models: the highest size, which only sizes the hold.
    assert_eq!(imported_fees("openai", "gpt-4o-search-preview"), [("web_search".to_string(), CENT * 5)]);
    // Perplexity: a request fee per search context size; Deep Research's citations and searches.
    assert_eq!(
        imported_fees("perplexity", "sonar"),
        [
            ("search_context_high".to_string(), CENT * 6 / 5),
            ("search_context_low".to_string(), CENT / 2),
            ("search_context_medium".to_string(), CENT * 4 / 5),
        ]
    );
    assert_eq!(
        imported_fees("perplexity", "sonar-deep-research"),
        [("citation_tokens".to_string(), 2_000_000_000_000), ("search_queries".to_string(), CENT / 2)]
    );
    // A per-request price is the `request` fee, whatever the provider.
    assert_eq!(imported_fees("mistral", "mistral-large"), [("request".to_string(), 100_000_000_000_000)]);
    let import = sample_import();
    let skipped: Vec<(&str, &str)> =
        import.fees_skipped.iter().map(|(key, field, _)| (key.as_str(), field.as_str())).collect();
    assert_eq!(
        skipped,
        [
            ("gemini/gemini-2.5-flash", "google_maps_grounding_cost_per_query"),
            ("gpt-4o-mini", "code_interpreter_cost_per_session"),
            ("mistral/mistral-large", "search_context_cost_per_query"),
            ("xai/grok-4", "search_context_cost_per_query"),
        ]
    );
}

#[test]
fn cli_writes_stdout_or_a_file_and_summarises_on_stderr() {
    let bin = env!("CARGO_BIN_EXE_xjp-gateway");
    let out = Command::new(bin).args(["prices", "import", "--litellm"]).arg(sample_path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), GOLDEN);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end(), format!("prices import: {SUMMARY}"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.toml");
    std::fs::write(&file, "old").unwrap();
    let out = Command::new(bin)
        .args(["prices", "import", "--litellm"])
        .arg(sample_path())
        .arg("--out")
        .arg(&file)
        .args(["--provider-map", "deepseek=ds,mistral=mistral"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written, GOLDEN.replace("[prices.\"deepseek\"", "[prices.\"ds\""));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["prices.toml"]);

    let out = Command::new(bin).args(["prices", "import", "--litellm", "/nonexistent/prices.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/prices.json"));
    let out = Command::new(bin)
        .args(["prices", "import", "--provider-map", "oops", "--litellm"])
        .arg(sample_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad --provider-map `oops`"));
}
