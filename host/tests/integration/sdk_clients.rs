//! The official OpenAI and Anthropic Python SDKs work unchanged against the gateway
//! (installed into target/pyenv by `cargo xtask test`).

use crate::common;

use common::harness::TestGateway;
use common::scenarios::mock;

#[tokio::test]
async fn official_python_sdks_work_unchanged() {
    let python = common::root().join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} missing: `cargo xtask test` creates it (python3 -m venv + pip install openai anthropic)",
        python.display()
    );
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let script = common::root().join("host/tests/sdk/check_sdks.py");
    let (url, key) = (gw.url.clone(), gw.key.clone());
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new(python).arg(script).arg(url).arg(key).output())
            .await
            .unwrap()
            .unwrap();
    assert!(out.status.success(), "SDK script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["openai"]["prompt_tokens"], 412, "{v}");
    assert!(v["openai"]["text"].as_str().unwrap().len() > 5);
    assert_eq!(v["openai_stream"]["completion_tokens"], 41, "{v}");
    assert!(v["openai_stream"]["text"].as_str().unwrap().len() > 20);
    assert_eq!(v["openai_error"]["status"], 404);
    assert_eq!(v["anthropic"]["output_tokens"], 103);
    assert_eq!(v["anthropic_stream"]["input_tokens"], 472, "{v}");
    assert!(v["anthropic_stream"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["anthropic_error"]["status"], 401);
    assert_eq!(v["anthropic_error"]["type"], "authentication_error");
}
