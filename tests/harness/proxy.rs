//! The real `switchyard` binary, started on port 0 with a config written for one test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the proxy may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The admin token tests give the proxy (in `SWITCHYARD_ADMIN_TOKEN`) when the admin API is on.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Builds a test config: one policy (`test-policy`) bound to one team (`test-team`, which serves
/// requests without a key unless [`ConfigBuilder::keys_required`]), providers, models, and any
/// further raw sections.
pub struct ConfigBuilder {
    policy: PathBuf,
    deadline_ms: u64,
    policy_options: Vec<String>,
    team_options: Vec<String>,
    fallback: Vec<String>,
    anonymous: bool,
    admin: bool,
    top: Vec<String>,
    upstream: Vec<String>,
    sections: Vec<String>,
    providers: Vec<String>,
    models: Vec<String>,
}

impl ConfigBuilder {
    /// A config running the policy component at `policy`.
    pub fn new(policy: &Path) -> Self {
        Self {
            policy: policy.to_path_buf(),
            deadline_ms: 1000,
            policy_options: vec![TEST_HEADERS.into()],
            team_options: Vec::new(),
            fallback: Vec::new(),
            anonymous: true,
            admin: false,
            top: Vec::new(),
            // Retrying the same target depends on a budget that refills with time; tests that
            // count attempts must not depend on it, so retries are off unless a test turns them on.
            upstream: vec!["retries = 0".into()],
            sections: Vec::new(),
            providers: Vec::new(),
            models: Vec::new(),
        }
    }

    /// The preset most tests start from: the scripted policy, one `openai` provider `p` at
    /// `upstream` (a mock's URL), and one model `model` (`MODEL-up` upstream) that is also the
    /// test team's fallback route.
    pub fn scripted(upstream: &str, model: &str) -> Self {
        Self::new(&crate::policy_wasm("scripted_policy"))
            .provider("p", upstream, None)
            .model(model, "p", &format!("{model}-up"), 1.0, &[])
            .fallback(&[model])
    }

    /// The built-in `echo` provider, named `echo`.
    pub fn echo(self) -> Self {
        self.section("[[providers]]\nname = \"echo\"\nkind = \"echo\"\n")
    }

    /// A further policy `name` running the component at `wasm`, with raw lines of its table.
    pub fn policy(self, name: &str, wasm: &Path, lines: &[&str]) -> Self {
        let lines = lines.join("\n");
        self.section(&format!(
            "[[policies]]\nname = {name:?}\npath = {wasm:?}\n{lines}\n"
        ))
    }

    /// A further team `name` on policy `policy` whose key is `key`, with raw lines of its table
    /// (`fallback = [...]`, `on_failure = ...`).
    pub fn team(self, name: &str, policy: &str, key: &str, lines: &[&str]) -> Self {
        let lines = lines.join("\n");
        self.section(&format!(
            "[[teams]]\nname = {name:?}\npolicy = {policy:?}\nkeys = [{key:?}]\n{lines}\n"
        ))
    }

    /// An `openai` provider at `url`, with its key in `key_env` if given.
    pub fn provider(mut self, name: &str, url: &str, key_env: Option<&str>) -> Self {
        let key = key_env
            .map(|k| format!("api_key_env = {k:?}\n"))
            .unwrap_or_default();
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\nkind = \"openai\"\nbase_url = {url:?}\n{key}"
        ));
        self
    }

    /// A provider of `kind` at `url`, with further raw lines of its table (`api_key_env = ...`).
    pub fn provider_of(mut self, name: &str, kind: &str, url: &str, lines: &[&str]) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\nkind = {kind:?}\nbase_url = {url:?}\n{}\n",
            lines.join("\n")
        ));
        self
    }

    /// A catalog model.
    pub fn model(
        mut self,
        id: &str,
        provider: &str,
        upstream: &str,
        cost: f64,
        tags: &[&str],
    ) -> Self {
        self.models.push(format!(
            "[[models]]\nid = {id:?}\nprovider = {provider:?}\nupstream_model = {upstream:?}\ninput_cost_per_mtok = {cost}\noutput_cost_per_mtok = {}\ncontext_window = 100000\ntags = {tags:?}\n",
            cost * 4.0
        ));
        self
    }

    /// A catalog model of kind `embeddings`, priced at `cost` per million input tokens.
    pub fn embedding_model(mut self, id: &str, provider: &str, upstream: &str, cost: f64) -> Self {
        self.models.push(format!(
            "[[models]]\nid = {id:?}\nprovider = {provider:?}\nupstream_model = {upstream:?}\nkind = \"embeddings\"\ninput_cost_per_mtok = {cost}\ncontext_window = 8191\n"
        ));
        self
    }

    /// The policy deadline. Tests default to a generous one, so that a busy machine never turns
    /// a decision into a timeout; tests of the deadline set a short one.
    pub fn deadline_ms(mut self, ms: u64) -> Self {
        self.deadline_ms = ms;
        self
    }

    /// The test team's static fallback route.
    pub fn fallback(mut self, models: &[&str]) -> Self {
        self.fallback = models.iter().map(|m| m.to_string()).collect();
        self
    }

    /// The request headers the test policy may see, instead of [`TEST_HEADERS`].
    pub fn policy_headers(mut self, headers: &[&str]) -> Self {
        self.policy_options[0] = format!("headers = {headers:?}");
        self
    }

    /// A raw `key = value` line in the test policy's table.
    pub fn policy_option(mut self, line: &str) -> Self {
        self.policy_options.push(line.to_string());
        self
    }

    /// A raw `key = value` line in the test team's table.
    pub fn team_option(mut self, line: &str) -> Self {
        self.team_options.push(line.to_string());
        self
    }

    /// Requests without a key get 401 (the test team is not anonymous).
    pub fn keys_required(mut self) -> Self {
        self.anonymous = false;
        self
    }

    /// Turn on the admin API on a free loopback port, with [`ADMIN_TOKEN`].
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// A raw `key = value` line in the `[upstream]` table, replacing one with the same key.
    pub fn upstream(mut self, line: &str) -> Self {
        let key = |l: &str| l.split('=').next().unwrap_or_default().trim().to_string();
        self.upstream.retain(|old| key(old) != key(line));
        self.upstream.push(line.to_string());
        self
    }

    /// A raw `key = value` line at the top level.
    pub fn top(mut self, line: &str) -> Self {
        self.top.push(line.to_string());
        self
    }

    /// Raw TOML tables (more `[[policies]]` or `[[teams]]`), placed after the test team.
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push(toml.to_string());
        self
    }

    pub fn toml(&self) -> String {
        let mut out = format!("listen = \"127.0.0.1:0\"\n{}\n", self.top.join("\n"));
        if self.anonymous {
            out.push_str("[auth]\nanonymous_team = \"test-team\"\n");
        }
        if self.admin {
            out.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
        }
        out.push_str(&format!("[upstream]\n{}\n", self.upstream.join("\n")));
        out.push_str(&format!(
            "[[policies]]\nname = \"test-policy\"\npath = {:?}\ndeadline_ms = {}\n{}\n\n\
             [[teams]]\nname = \"test-team\"\npolicy = \"test-policy\"\nfallback = {:?}\n{}\n\n{}\n{}\n{}",
            self.policy,
            self.deadline_ms,
            self.policy_options.join("\n"),
            self.fallback,
            self.team_options.join("\n"),
            self.sections.join("\n"),
            self.providers.join("\n"),
            self.models.join("\n")
        ));
        out
    }
}

/// The request headers the scripted test policy reads.
pub const TEST_HEADERS: &str = r#"headers = ["x-test-route", "x-test-reject", "x-test-error", "x-test-read", "x-test-dump", "x-test-spin", "x-test-panic", "x-test-timeout-ms", "x-test-budget", "x-test-first-token"]"#;

/// How far start-up has come, as the proxy's log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// It accepts connections; its policies may still be loading.
    Accepting,
    /// It is ready to serve.
    Ready,
}

/// A running proxy; killed when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The admin API's `http://127.0.0.1:PORT`, when it is on.
    pub admin: Option<String>,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

/// A reply of the proxy, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Reply {
    /// The value of header `name`, or "" without one.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("a text header"))
            .unwrap_or_default()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How a proxy that failed to start ended.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Proxy {
    /// Start the proxy with `config` and exactly the environment variables in `env`.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Proxy {
        started(Self::try_start(config, env))
    }

    /// Start the proxy from a config file in the repository (with `--listen 127.0.0.1:0`).
    pub fn start_file(config: &Path) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        started(Self::spawn(command(config, &[]), dir))
    }

    /// Start the proxy, or say how it exited.
    pub fn try_start(config: &str, env: &[(&str, &str)]) -> Result<Proxy, Exit> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(command(&path, env), dir)
    }

    /// Start the proxy in `dir` (its working folder, which it keeps as [`Proxy::dir`]) with the
    /// config file `file_name` there, named on the command line by that bare name.
    pub fn start_in_dir(dir: tempfile::TempDir, file_name: &str) -> Proxy {
        let mut cmd = command(Path::new(file_name), &[]);
        cmd.current_dir(dir.path());
        started(Self::spawn(cmd, dir))
    }

    /// Start the proxy and return as soon as it accepts connections, before its policies are
    /// loaded (`base` is then known, `admin` is not).
    pub fn start_accepting(config: &str, env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("write config");
        started(Self::spawn_until(
            command(&path, env),
            dir,
            Stage::Accepting,
        ))
    }

    fn spawn(cmd: Command, dir: tempfile::TempDir) -> Result<Proxy, Exit> {
        Self::spawn_until(cmd, dir, Stage::Ready)
    }

    fn spawn_until(mut cmd: Command, dir: tempfile::TempDir, until: Stage) -> Result<Proxy, Exit> {
        let mut child = cmd.spawn().expect("spawn switchyard");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            let mut admin = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let url = |marker: &str| {
                    let at = line.find(marker)? + marker.len();
                    let url = line[at..].split_whitespace().next()?;
                    // Text lines go on after `;`; JSON lines close the message's string.
                    let url = url.split([';', '"']).next()?;
                    Some(url.to_string())
                };
                if let Some(url) = url("admin API listening on ") {
                    admin = Some(url);
                } else if let Some(url) = url("accepting connections on ") {
                    let _ = tx.send((Stage::Accepting, url, None));
                } else if let Some(url) = url("switchyard listening on ") {
                    let _ = tx.send((Stage::Ready, url, admin.clone()));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let reached = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((stage, base, admin)) if stage == until => break Some((base, admin)),
                Ok(_) => {}
                Err(_) => break None,
            }
        };
        match reached.ok_or(()) {
            Ok((base, admin)) => Ok(Proxy {
                base,
                admin,
                child,
                logs,
                dir,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                reader.join().expect("stderr reader");
                let stderr = logs.lock().unwrap().join("\n");
                Err(Exit {
                    code: status.code(),
                    stderr,
                })
            }
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST `body` to `/v1/chat/completions` through `client`, with `key` as a bearer token (none
    /// for the anonymous team) and `headers`, and read the reply.
    pub async fn chat(
        &self,
        client: &reqwest::Client,
        key: Option<&str>,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.post(client, "/v1/chat/completions", key, body, headers)
            .await
    }

    /// POST `body` to Anthropic's `/v1/messages`, as [`Proxy::chat`] does.
    pub async fn messages(
        &self,
        client: &reqwest::Client,
        key: Option<&str>,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.post(client, "/v1/messages", key, body, headers).await
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        key: Option<&str>,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let started = Instant::now();
        let mut request = client.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the proxy answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("the whole body");
        Reply {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        }
    }

    /// `admin` + `path`.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.as_ref().expect("the admin API is on");
        format!("{admin}{path}")
    }

    /// `GET path` on the admin API with [`ADMIN_TOKEN`], as JSON (whatever the status).
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the admin API answers")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// The admin API's `GET /metrics` with [`ADMIN_TOKEN`]: the Prometheus exposition.
    pub async fn admin_metrics(&self) -> String {
        reqwest::Client::new()
            .get(self.admin_url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the admin API answers")
            .text()
            .await
            .expect("a text answer")
    }

    /// The config file the proxy was started with (rewrite it, then [`Proxy::reload`]).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("switchyard.toml")
    }

    /// A folder that lives as long as the proxy, for policy files and the compile cache.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Send SIGHUP: the proxy re-reads its config.
    pub fn reload(&self) {
        self.signal("HUP");
    }

    /// Send SIGTERM: the proxy drains and exits.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    /// The proxy's exit code once it has exited, waiting up to `timeout`; `None` if it is still
    /// running then (or was killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The proxy's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_figure("status", "VmHWM:")
    }

    /// The bytes the proxy has read so far, from files and sockets alike (`rchar` of
    /// `/proc/PID/io`).
    pub fn bytes_read(&self) -> u64 {
        self.proc_figure("io", "rchar:")
    }

    /// The number after `key` in the proxy's `/proc/PID/FILE` (a unit after it is left off).
    fn proc_figure(&self, file: &str, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id()))
            .unwrap_or_else(|e| panic!("the proxy's /proc {file}: {e}"));
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc {file}"))
    }

    /// How many log lines contain every one of `needles`, now.
    pub fn count_log_lines(&self, needles: &[&str]) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Everything the proxy logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The first log line containing every one of `needles`, waiting up to 10 s for it.
    pub fn log_line(&self, needles: &[&str]) -> String {
        self.log_line_within(needles, Duration::from_secs(10))
    }

    /// The first log line containing every one of `needles`, waiting up to `within` for it.
    pub fn log_line_within(&self, needles: &[&str], within: Duration) -> String {
        let what = format!("a log line with {needles:?}");
        crate::poll::until_blocking(what, within, || {
            self.logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned()
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn started(result: Result<Proxy, Exit>) -> Proxy {
    result.unwrap_or_else(|exit| panic!("proxy did not start ({:?}):\n{}", exit.code, exit.stderr))
}

fn command(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(crate::proxy_binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}
