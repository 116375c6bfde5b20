//! The official OpenAI Python SDK works against the proxy by changing only `base_url`.
//! (`cargo xtask test` installs the SDK into `target/sdk-venv` from PyPI.)

use std::process::Command;

use switchyard_e2e::{Proxy, sdk_python, workspace_root};

#[test]
fn the_openai_python_sdk_works_by_changing_only_base_url() {
    let proxy = Proxy::start_file(&workspace_root().join("config/switchyard.toml"));
    let out = Command::new(sdk_python())
        .arg(workspace_root().join("tests/sdk/openai_client.py"))
        .arg(&proxy.base)
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");

    assert_eq!(seen["model_header"], "gpt-4o-mini");
    assert!(
        seen["content"]
            .as_str()
            .unwrap()
            .starts_with("Echo from gpt-4o-mini:"),
        "{seen}"
    );
    assert!(seen["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        seen["stream_text"]
            .as_str()
            .unwrap()
            .starts_with("Echo from o3:"),
        "{seen}"
    );
    assert_eq!(
        seen["models"],
        serde_json::json!(["gpt-4o-mini", "claude-haiku-4-5", "o3", "claude-sonnet-4-5"])
    );
}
