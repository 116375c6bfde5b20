//! What a policy written in JavaScript or Python costs the host, next to the Rust cost-router,
//! measured in one run through the production path: the component's size; the time to compile it
//! (`Component::new`); the time to load it when the proxy starts again (`PolicyEngine::prepare`
//! finding it in the compile cache); the time of one decision on a fresh store (instantiation,
//! call and validation), as the median and 99th percentile of many, with the first decision on an
//! unused pool slot apart; and the smallest memory cap (`memory_mib`) under which its decisions
//! succeed. The request has 6 messages (the last user message about 500 characters) and the
//! catalog 8 models. It prints a Markdown table.
//!
//! Run with `cargo xtask plugins && cargo bench -p switchyard --bench polyglot`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use switchyard::api::{ClientRequest, Wire};
use switchyard::config::ModelKind;
use switchyard::policy::wit::Operation;
use switchyard::policy::{
    DecisionFailure, DecisionInput, Model, Policy, PolicyEngine, PolicySettings, PoolSize, Request,
    Verdict, engine, input,
};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The engine's pool, as the default config sizes each slot (`engine.max_memory_mib = 64`).
const POOL: PoolSize = PoolSize {
    instances: 16,
    memory_bytes: 64 << 20,
};
/// Timed decisions per policy.
const DECISIONS: usize = 2000;
/// The policies measured: a name and the component's file.
const POLICIES: [(&str, &str); 3] = [
    ("cost-router (Rust)", "cost_router.wasm"),
    ("js-tier-router (JavaScript)", "js_tier_router.wasm"),
    (
        "python-keyword-router (Python)",
        "python_keyword_router.wasm",
    ),
];

/// Everything one decision reads.
struct Inputs {
    request: Arc<ClientRequest>,
    id: Arc<str>,
    view: Request,
    catalog: Vec<Model>,
}

impl Inputs {
    async fn decide(&self, policy: &Policy) -> Result<Verdict, DecisionFailure> {
        policy
            .decide(DecisionInput {
                request: self.request.clone(),
                request_id: self.id.clone(),
                view: &self.view,
                catalog: &self.catalog,
                team: None,
                budget: None,
                live: None,
                operation: Operation::OpenaiChat,
            })
            .await
    }
}

/// One row of the table.
struct Row {
    name: &'static str,
    bytes: usize,
    compile: Duration,
    cached_load: Duration,
    first_decision: Duration,
    p50: Duration,
    p99: Duration,
    min_memory_mib: u32,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn measure(
    name: &'static str,
    bytes: &[u8],
    settings: &PolicySettings,
    inputs: &Inputs,
    runtime: &tokio::runtime::Runtime,
) -> Row {
    let engine = Engine::new(&engine::engine_config(POOL)).expect("engine");
    let started = Instant::now();
    Component::new(&engine, bytes).expect("compiles");
    let compile = started.elapsed();

    // A proxy start with an empty cache compiles and stores the component; the next start (a new
    // engine on the same folder) loads it.
    let cache = tempfile::tempdir().expect("cache folder");
    let prepare = |what: &str| {
        let engine = PolicyEngine::new(POOL, Some(cache.path())).expect("engine");
        let started = Instant::now();
        let policy = engine
            .prepare(
                name,
                bytes.to_vec().into(),
                settings.clone(),
                what.to_string(),
            )
            .expect("the policy loads");
        (engine, policy, started.elapsed())
    };
    drop(prepare("first start"));
    let (_engine, policy, cached_load) = prepare("second start");

    let started = Instant::now();
    let verdict = runtime.block_on(inputs.decide(&policy));
    let first_decision = started.elapsed();
    assert!(
        matches!(verdict, Ok(Verdict::Route { .. })),
        "{name}: {verdict:?}"
    );
    // The spent instance is dropped in a task of its own, off the request path: it runs after
    // the timing, not inside the next decision's.
    let mut times: Vec<Duration> = (0..DECISIONS)
        .map(|_| {
            runtime.block_on(async {
                let started = Instant::now();
                inputs.decide(&policy).await.expect("the policy decides");
                let elapsed = started.elapsed();
                tokio::task::yield_now().await;
                elapsed
            })
        })
        .collect();
    times.sort();
    let percentile = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];

    let min_memory_mib = (1..=(POOL.memory_bytes >> 20) as u32)
        .find(|&mib| {
            let mut limited = settings.clone();
            limited.limits.memory_bytes = (mib as usize) << 20;
            match runtime.block_on(inputs.decide(&policy.with_settings(limited))) {
                Ok(_) => true,
                Err(DecisionFailure::Memory) => false,
                Err(other) => panic!("{name} under {mib} MiB: {other}"),
            }
        })
        .expect("decides within the pool's memory");

    Row {
        name,
        bytes: bytes.len(),
        compile,
        cached_load,
        first_decision,
        p50: percentile(50),
        p99: percentile(99),
        min_memory_mib,
    }
}

fn main() {
    let built = common::policies();
    for (_, file) in POLICIES {
        assert!(
            built.join(file).exists(),
            "build the policies first: cargo xtask plugins"
        );
    }
    let config = common::config("name = \"p\"\npath = \"p.wasm\"\ndeadline_ms = 1000");
    // Every decision on a fresh store: no spare instantiated ahead of it.
    let settings = PolicySettings {
        spare_instances: 0,
        ..PolicySettings::from_config(&config.policies[0])
    };
    let request =
        Arc::new(ClientRequest::parse(Wire::Openai, common::body()).expect("request parses"));
    let inputs = Inputs {
        view: input::request_view(&request, "bench", &HeaderMap::new(), &[], Some("t")),
        request,
        id: Arc::from("bench"),
        catalog: input::catalog(&config, None, ModelKind::Chat),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "| policy | size | compile (`Component::new`) | load from the compile cache | first decision | decision p50 | decision p99 | smallest `memory_mib` |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, file) in POLICIES {
        let bytes = std::fs::read(built.join(file)).expect("policy file");
        let row = measure(name, &bytes, &settings, &inputs, &runtime);
        println!(
            "| {} | {:.1} MB | {} | {} | {} | {:.0} µs | {:.0} µs | {} |",
            row.name,
            row.bytes as f64 / 1e6,
            ms(row.compile),
            ms(row.cached_load),
            ms(row.first_decision),
            row.p50.as_secs_f64() * 1e6,
            row.p99.as_secs_f64() * 1e6,
            row.min_memory_mib,
        );
    }
}
