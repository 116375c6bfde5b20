//! One policy decision on a fresh store (instantiate + call + validate), the production path,
//! for a request of 6 messages and a catalog of 8 models; with request parsing measured in the
//! same run as a baseline, so results can be read as ratios on a noisy machine. A minimal policy
//! (the scripted test policy, which routes to the first model) shows what the sandbox itself
//! costs, apart from the bundled policy's own work; the same decision with every limit off (no
//! fuel metering in the compiled code, no deadline, no memory limiter, no concurrency
//! bound) shows what the limits cost, and the same decision on a reused instance what the opt-in
//! `reuse_instances` saves, and on a reused instance with a 4 KiB question what reading the
//! prompt for cues costs `cost-router`. On a spare instance made ahead of it (`spare_instances`, the
//! default; the fresh-store cases turn spares off), the decision is measured with the next
//! spare's instantiation (all it costs) and alone (what the request waits for). One more
//! measures the request path without the network: parsing, the policy's view, the decision and
//! the upstream body (the client's bytes with the model rewritten).
//!
//! Criterion reports means and medians; the target is a p99, so the run ends by timing
//! 20,000 single decisions one by one (fresh, reused, spare) and printing their percentiles
//! beside those of request parsing, timed the same way. What a decision leaves to a task of its
//! own (dropping the spent instance, making the next spare) runs after each timing.
//!
//! Run with `cargo xtask plugins && cargo bench -p switchyard --bench decision`. `BENCH_WASM=DIR`
//! takes the policies from another folder than `target/wasm32-wasip2/wasm`, to compare the same
//! policies built another way.

mod common;

use std::sync::Arc;

use axum::http::HeaderMap;
use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::api::{ClientRequest, Wire};
use switchyard::config::ModelKind;
use switchyard::policy::sandbox::{HostData, Sandbox, SandboxLimits};
use switchyard::policy::wit::Operation;
use switchyard::policy::wit::PolicyPre;
use switchyard::policy::{
    DecisionInput, Model, PolicyEngine, PolicySettings, PoolSize, Request, Verdict, decision,
    engine, input,
};
use wasmtime::component::Component;
use wasmtime::{Engine, Store};

/// The pool every engine of the benchmark uses.
const POOL: PoolSize = PoolSize {
    instances: 16,
    memory_bytes: 32 << 20,
};

/// A policy run with every limit off.
struct Unlimited {
    pre: PolicyPre<Sandbox>,
    limits: SandboxLimits,
}

impl Unlimited {
    fn new(bytes: &[u8], limits: SandboxLimits) -> Self {
        let mut config = engine::engine_config(POOL);
        config.consume_fuel(false);
        let engine = Engine::new(&config).expect("engine");
        let linker = engine::linker(&engine).expect("linker");
        let component = Component::new(&engine, bytes).expect("component");
        let pre =
            PolicyPre::new(linker.instantiate_pre(&component).expect("links")).expect("world");
        Self { pre, limits }
    }

    async fn decide(
        &self,
        request: Arc<ClientRequest>,
        id: Arc<str>,
        view: &Request,
        catalog: &[Model],
    ) -> Verdict {
        let host = HostData {
            request,
            request_id: id,
            team: None,
            budget: None,
            live: None,
            operation: Operation::OpenaiChat,
        };
        let sandbox = Sandbox::new(host, Arc::from("unlimited"), self.limits, true, false);
        let mut store = Store::new(self.pre.engine(), sandbox);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiates");
        let decision = instance
            .call_decide(&mut store, view, catalog)
            .await
            .expect("no trap")
            .expect("decides");
        decision::validate(decision, catalog).expect("valid")
    }
}

fn decision(c: &mut Criterion) {
    let built = common::policies();
    assert!(
        built.join("cost_router.wasm").exists(),
        "build the policies first: cargo xtask plugins"
    );
    let config = common::config("name = \"cost-router\"\npath = \"cost_router.wasm\"");
    let engine = PolicyEngine::new(POOL, None).expect("engine");
    let settings = PolicySettings {
        spare_instances: 0,
        ..PolicySettings::from_config(&config.policies[0])
    };
    let load = |name: &str, file: &str, settings: PolicySettings| {
        let bytes = std::fs::read(built.join(file)).expect("policy file");
        engine
            .prepare(name, bytes.into(), settings, file.to_string())
            .expect("policy loads")
    };
    let cost_router = load("cost-router", "cost_router.wasm", settings.clone());
    let reused = load(
        "cost-router",
        "cost_router.wasm",
        PolicySettings {
            reuse_instances: 1_000_000,
            ..settings.clone()
        },
    );
    let spare = load(
        "cost-router",
        "cost_router.wasm",
        PolicySettings {
            spare_instances: 1,
            ..settings.clone()
        },
    );
    let unlimited = Unlimited::new(
        &std::fs::read(built.join("cost_router.wasm")).expect("policy file"),
        settings.limits,
    );
    let minimal = load("scripted", "scripted_policy.wasm", settings.clone());
    let catalog = input::catalog(&config, None, ModelKind::Chat);
    let body = common::body();
    let request =
        Arc::new(ClientRequest::parse(Wire::Openai, body.clone()).expect("request parses"));
    let view = input::request_view(&request, "bench", &HeaderMap::new(), &[], Some("t"));
    let id: Arc<str> = Arc::from("bench");
    let long =
        Arc::new(ClientRequest::parse(Wire::Openai, long_question()).expect("request parses"));
    let long_view = input::request_view(&long, "bench", &HeaderMap::new(), &[], Some("t"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let decide = |policy: &'static str| {
        let policy = match policy {
            "cost-router" => &cost_router,
            "reused" => &reused,
            "spare" => &spare,
            _ => &minimal,
        };
        policy.decide(chat(request.clone(), &id, &view, &catalog))
    };
    for name in ["cost-router", "reused", "spare", "minimal"] {
        let verdict = runtime.block_on(decide(name)).expect("the policy decides");
        assert!(
            matches!(verdict, Verdict::Route { .. }),
            "{name}: {verdict:?}"
        );
    }

    let mut group = c.benchmark_group("policy");
    group.bench_function("baseline: parse request (6 messages)", |b| {
        b.iter(|| {
            ClientRequest::parse(Wire::Openai, std::hint::black_box(body.clone())).expect("parses")
        })
    });
    group.bench_function("decide on a fresh store (6 messages, 8 models)", |b| {
        b.to_async(&runtime)
            .iter(|| async { decide("cost-router").await.expect("decides") })
    });
    group.bench_function(
        "decide with every limit off (same policy and request)",
        |b| {
            b.to_async(&runtime).iter(|| async {
                unlimited
                    .decide(request.clone(), id.clone(), &view, &catalog)
                    .await
            })
        },
    );
    group.bench_function(
        "request path without the network: parse, view, decide, upstream body",
        |b| {
            b.to_async(&runtime).iter(|| async {
                let request = Arc::new(
                    ClientRequest::parse(Wire::Openai, body.clone()).expect("request parses"),
                );
                let view =
                    input::request_view(&request, "bench", &HeaderMap::new(), &[], Some("t"));
                let verdict = cost_router
                    .decide(chat(request.clone(), &id, &view, &catalog))
                    .await
                    .expect("decides");
                let Verdict::Route { targets, .. } = verdict else {
                    panic!("a route")
                };
                request
                    .body_for(Wire::Openai, &targets[0].model, None)
                    .expect("forwarded body")
            })
        },
    );
    group.bench_function("decide on a reused instance (reuse_instances)", |b| {
        b.to_async(&runtime)
            .iter(|| async { decide("reused").await.expect("decides") })
    });
    group.bench_function(
        "decide on a reused instance, a 4 KiB question (the cue scan)",
        |b| {
            b.to_async(&runtime).iter(|| async {
                reused
                    .decide(chat(long.clone(), &id, &long_view, &catalog))
                    .await
                    .expect("decides")
            })
        },
    );
    group.bench_function(
        "decide with a spare instance ready, then make the next (spare_instances)",
        |b| {
            b.to_async(&runtime).iter(|| async {
                let verdict = decide("spare").await.expect("decides");
                tokio::task::yield_now().await;
                verdict
            })
        },
    );
    group.bench_function("decide, minimal policy (sandbox cost alone)", |b| {
        b.to_async(&runtime)
            .iter(|| async { decide("minimal").await.expect("decides") })
    });
    group.finish();

    let parse = percentiles(|| {
        let started = std::time::Instant::now();
        std::hint::black_box(ClientRequest::parse(Wire::Openai, body.clone()).expect("parses"));
        started.elapsed()
    });
    // The decision alone: what it leaves to tasks of their own (dropping a spent instance,
    // making the next spare) runs after the timing, as it runs off the request path.
    let timed = |name: &'static str| {
        percentiles(|| {
            runtime.block_on(async {
                let started = std::time::Instant::now();
                decide(name).await.expect("decides");
                let elapsed = started.elapsed();
                tokio::task::yield_now().await;
                elapsed
            })
        })
    };
    let (fresh, reused, spare) = (timed("cost-router"), timed("reused"), timed("spare"));
    for (what, [p50, p99, p999]) in [
        ("parse request", parse),
        ("decide, fresh store", fresh),
        ("decide, reused", reused),
        ("decide, spare ready", spare),
    ] {
        println!(
            "{what:>20}: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs (20,000 one by one)",
            p50 * 1e6,
            p99 * 1e6,
            p999 * 1e6
        );
    }
}

/// A chat-completions body of one user message of 4 KiB of prose without cues: all of it is
/// scanned by `cost-router`, which reads up to 4,096 characters of the last user message.
fn long_question() -> bytes::Bytes {
    let note = "The parcel left the warehouse on Monday, reached the depot on Wednesday and was \
                marked as delivered on Friday, but nobody at the address received it. ";
    let question = format!("Could you say what went wrong? {}", note.repeat(28));
    let body =
        serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": question}]});
    bytes::Bytes::from(body.to_string())
}

/// What a decision on `view` of the chat request `request` is given: no team, budget or live
/// figures.
fn chat<'a>(
    request: Arc<ClientRequest>,
    id: &Arc<str>,
    view: &'a Request,
    catalog: &'a [Model],
) -> DecisionInput<'a> {
    DecisionInput {
        request,
        request_id: id.clone(),
        view,
        catalog,
        team: None,
        budget: None,
        live: None,
        operation: Operation::OpenaiChat,
    }
}

/// The 50th, 99th and 99.9th percentiles, in seconds, of 20,000 runs of `once` (after 2,000 to
/// warm up).
fn percentiles(mut once: impl FnMut() -> std::time::Duration) -> [f64; 3] {
    for _ in 0..2_000 {
        once();
    }
    let mut times: Vec<f64> = (0..20_000).map(|_| once().as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    [at(0.5), at(0.99), at(0.999)]
}

criterion_group!(benches, decision);
criterion_main!(benches);
