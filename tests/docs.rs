//! `docs/writing-policies.md` is run as written: its `sh` blocks, in order, as one bash script in
//! an empty folder with the freshly built `switchyard` on `PATH`, and every line of its `text`
//! blocks must appear in what the script printed. The walkthrough's port is swapped for a free
//! one; nothing else is changed.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use switchyard_e2e::{proxy_binary, workspace_root};

/// The fenced blocks of `markdown` with the info string `lang`, in order.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{lang}") => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => found.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_policy_walkthrough_runs_as_written() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/writing-policies.md")).unwrap();
    let script = blocks(&doc, "sh").join("\n");
    let expected = blocks(&doc, "text");
    assert!(script.contains("switchyard policy new"), "{script}");
    assert!(expected.len() >= 4);
    let script = script.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port()));

    let dir = tempfile::tempdir().unwrap();
    let bin_dir = proxy_binary().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Its own process group, so the proxy it starts in the background is stopped with it.
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let group = child.id() as i32;
    let output = child.wait_with_output().unwrap();
    // SAFETY: signalling a process group this test created.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walkthrough failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let mut from = 0;
    for block in &expected {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            match stdout[from..].find(line) {
                Some(at) => from += at,
                None => panic!(
                    "the walkthrough did not print {line:?} (in order):\n--- stdout\n{stdout}"
                ),
            }
        }
    }
}
