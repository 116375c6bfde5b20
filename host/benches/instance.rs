//! What one fresh policy instance costs, part by part, and how the pooling allocator's knobs
//! change it: the sandbox (resource table, captured output; the WASI context is made only on a
//! policy's first WASI call, which `cost-router` never makes), the store (limiter and fuel),
//! instantiation, the `decide` call, and the drop, which gives the instance's memory and tables
//! back to the pool and resets what the policy dirtied. Each part is timed on its own, 20,000
//! times after 2,000 to warm up, and printed as p50 and p99 beside request parsing timed the
//! same way, so the figures read as ratios on a noisy machine.
//!
//! The knobs: the production pool (`policy::engine::pooling_config`), then one change at a
//! time. `live` instances are kept alive at once, in a ring, as concurrent requests keep them;
//! with more than one, every decision gets a pool slot another instance used last.
//!
//! Run with `cargo xtask plugins && cargo bench -p switchyard --bench instance`; `BENCH_WASM=DIR`
//! as in the decision benchmark.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use switchyard::api::{ClientRequest, Wire};
use switchyard::config::ModelKind;
use switchyard::policy::sandbox::{HostData, Sandbox, SandboxLimits};
use switchyard::policy::wit::{Operation, PolicyPre};
use switchyard::policy::{Model, PolicySettings, PoolSize, Request, engine, input};
use wasmtime::component::Component;
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// The pool of the benchmark's engines.
const POOL: PoolSize = PoolSize {
    instances: 16,
    memory_bytes: 32 << 20,
};

/// Timed runs of each setup, after `WARM_UP` untimed ones.
const RUNS: usize = 20_000;
const WARM_UP: usize = 2_000;

/// The parts of one fresh decision, in the order they run.
const PARTS: [&str; 5] = ["sandbox", "store", "instantiate", "call", "drop"];

/// One setup: a name, a change to the production pool, and how many instances live at once.
struct Setup {
    name: &'static str,
    knob: fn(&mut PoolingAllocationConfig, &mut wasmtime::Config),
    live: usize,
}

fn setups() -> Vec<Setup> {
    vec![
        Setup {
            name: "production pool",
            knob: |_, _| {},
            live: 1,
        },
        Setup {
            name: "  16 instances live",
            knob: |_, _| {},
            live: 16,
        },
        Setup {
            name: "  no PAGEMAP_SCAN",
            knob: |p, _| {
                p.pagemap_scan(Enabled::No);
            },
            live: 1,
        },
        Setup {
            name: "  nothing kept resident",
            knob: |p, _| {
                p.linear_memory_keep_resident(0).table_keep_resident(0);
            },
            live: 1,
        },
        Setup {
            name: "  memory kept resident: 64 KiB",
            knob: |p, _| {
                p.linear_memory_keep_resident(64 << 10);
            },
            live: 1,
        },
        Setup {
            name: "  no copy-on-write memory image",
            knob: |_, c| {
                c.memory_init_cow(false);
            },
            live: 1,
        },
        Setup {
            name: "  Wasmtime's 100 unused warm slots",
            knob: |p, _| {
                p.max_unused_warm_slots(100);
            },
            live: 16,
        },
    ]
}

/// A fresh decision's inputs.
struct Inputs {
    request: Arc<ClientRequest>,
    view: Request,
    catalog: Vec<Model>,
    limits: SandboxLimits,
}

fn main() {
    let built = common::policies();
    let bytes = std::fs::read(built.join("cost_router.wasm"))
        .expect("build the policies first: cargo xtask plugins");
    let config = common::config("name = \"cost-router\"\npath = \"cost_router.wasm\"");
    let request =
        Arc::new(ClientRequest::parse(Wire::Openai, common::body()).expect("request parses"));
    let inputs = Inputs {
        view: input::request_view(&request, "bench", &HeaderMap::new(), &[], Some("t")),
        catalog: input::catalog(&config, None, ModelKind::Chat),
        limits: PolicySettings::from_config(&config.policies[0]).limits,
        request,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let body = common::body();
    let parse = percentiles(|| {
        let started = Instant::now();
        std::hint::black_box(ClientRequest::parse(Wire::Openai, body.clone()).expect("parses"));
        started.elapsed()
    });
    println!(
        "parse request (baseline): p50 {:.2} µs, p99 {:.2} µs\n",
        micros(parse.0),
        micros(parse.1)
    );
    println!(
        "{:<32} {}  {:>9}   (p50, µs; p99 of the whole in brackets)",
        "",
        PARTS.map(|p| format!("{p:>12}")).join(""),
        "whole"
    );
    for setup in setups() {
        let pre = prepare(&bytes, setup.knob);
        let times = runtime.block_on(measure(&pre, &inputs, setup.live));
        let cells: String = times[..PARTS.len()]
            .iter()
            .map(|(p50, _)| format!("{:>12.2}", micros(*p50)))
            .collect();
        let (p50, p99) = times[PARTS.len()];
        println!(
            "{:<32} {cells}  {:>9.2}   ({:.2})",
            setup.name,
            micros(p50),
            micros(p99)
        );
    }
}

/// `cost-router` compiled and linked on an engine with the production pool changed by `knob`.
fn prepare(
    bytes: &[u8],
    knob: fn(&mut PoolingAllocationConfig, &mut wasmtime::Config),
) -> PolicyPre<Sandbox> {
    let mut config = engine::engine_config(POOL);
    let mut pooling = engine::pooling_config(POOL);
    knob(&mut pooling, &mut config);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    let engine = Engine::new(&config).expect("engine");
    let linker = engine::linker(&engine).expect("linker");
    let component = Component::new(&engine, bytes).expect("component");
    PolicyPre::new(linker.instantiate_pre(&component).expect("links")).expect("world")
}

/// p50 and p99 of each part and of the whole, with `live` instances alive at once.
async fn measure(
    pre: &PolicyPre<Sandbox>,
    inputs: &Inputs,
    live: usize,
) -> Vec<(Duration, Duration)> {
    let mut ring = VecDeque::new();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(RUNS); PARTS.len() + 1];
    for run in 0..WARM_UP + RUNS {
        let (parts, store) = decide_once(pre, inputs).await;
        ring.push_back(store);
        let drop_started = Instant::now();
        if ring.len() >= live {
            drop(ring.pop_front());
        }
        let parts = parts.into_iter().chain([drop_started.elapsed()]);
        if run >= WARM_UP {
            let mut whole = Duration::ZERO;
            for (part, time) in parts.enumerate() {
                samples[part].push(time);
                whole += time;
            }
            samples[PARTS.len()].push(whole);
        }
    }
    samples
        .into_iter()
        .map(|mut times| {
            times.sort();
            (times[times.len() / 2], times[times.len() * 99 / 100])
        })
        .collect()
}

/// One fresh decision as the proxy makes it, the time of each part up to the call, and the
/// store, still to be dropped.
async fn decide_once(pre: &PolicyPre<Sandbox>, inputs: &Inputs) -> ([Duration; 4], Store<Sandbox>) {
    let started = Instant::now();
    let host = HostData {
        request: inputs.request.clone(),
        request_id: Arc::from("bench"),
        team: None,
        budget: None,
        live: None,
        operation: Operation::OpenaiChat,
    };
    let sandbox = Sandbox::new(host, Arc::from("cost-router"), inputs.limits, true, false);
    let sandboxed = Instant::now();
    let mut store = engine::store(pre.engine(), sandbox);
    let stored = Instant::now();
    let policy = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiates");
    let instantiated = Instant::now();
    let decision = policy
        .call_decide(&mut store, &inputs.view, &inputs.catalog)
        .await
        .expect("no trap")
        .expect("decides");
    let called = Instant::now();
    std::hint::black_box(decision);
    let parts = [
        sandboxed - started,
        stored - sandboxed,
        instantiated - stored,
        called - instantiated,
    ];
    (parts, store)
}

/// p50 and p99 of `RUNS` runs of `once`.
fn percentiles(mut once: impl FnMut() -> Duration) -> (Duration, Duration) {
    for _ in 0..WARM_UP {
        once();
    }
    let mut times: Vec<Duration> = (0..RUNS).map(|_| once()).collect();
    times.sort();
    (times[RUNS / 2], times[RUNS * 99 / 100])
}

fn micros(time: Duration) -> f64 {
    time.as_secs_f64() * 1e6
}
