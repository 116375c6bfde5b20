//! A fleet of replicas sharing budgets and rate limits through a real Redis (Debian's
//! `redis-server`, started on a free loopback port): three proxies hold a team to one budget and
//! one rate limit together; with Redis paused or killed, each team's `on_state_error` decides and
//! nothing hangs, and what was served meanwhile is settled once Redis is back.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use switchyard_e2e::{ConfigBuilder, MockUpstream, Proxy, Redis, metric, poll};

/// A model whose answers (5 prompt and 5 completion tokens from the mock) cost $0.025: $1000
/// and $4000 per million tokens.
const PRICE: f64 = 1000.0;
const ANSWER_COST: f64 = (5.0 * PRICE + 5.0 * PRICE * 4.0) / 1e6;

/// The test team on the fleet's state at `redis`, with these lines of its table. Redis calls
/// may take `timeout_ms`: the tests of sharing give a busy machine time, so that no request
/// falls back to this replica's share.
fn config(mock: &MockUpstream, redis: &Redis, timeout_ms: u64, team: &[&str]) -> ConfigBuilder {
    let mut config = ConfigBuilder::new(&switchyard_e2e::policy_wasm("scripted_policy"))
        .provider("p", &mock.url, None)
        .model("m", "p", "m-up", PRICE, &[])
        .fallback(&["m"])
        .section(&format!(
            "[state]\nredis_url = {:?}\ntimeout_ms = {timeout_ms}\n",
            redis.url()
        ));
    for line in team {
        config = config.team_option(line);
    }
    config
}

/// Send `count` requests at once, spread over `proxies`; the status and cost of each answer.
async fn burst(proxies: &[Proxy], count: usize) -> Vec<(u16, f64)> {
    let client = reqwest::Client::new();
    let sends = (0..count).map(|i| {
        let request = client
            .post(proxies[i % proxies.len()].url("/v1/chat/completions"))
            .json(&json!({"model": "m", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hello"}]}))
            .send();
        async move {
            let reply = request.await.expect("an answer");
            let cost = reply
                .headers()
                .get("x-switchyard-cost-usd")
                .map_or(0.0, |v| v.to_str().unwrap().parse().unwrap());
            (reply.status().as_u16(), cost)
        }
    });
    futures_util::future::join_all(sends).await
}

/// `team`'s settled spending in micro-dollars, as Redis holds it.
async fn spent_micros(redis: &Redis, team: &str) -> u64 {
    let mut c = redis.connection().await;
    let keys: Vec<String> = c
        .keys(format!("switchyard:{{{team}}}:spent:*"))
        .await
        .unwrap();
    let mut total = 0;
    for key in keys {
        total += c.get::<_, Option<u64>>(&key).await.unwrap().unwrap_or(0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hold_a_team_to_one_budget() {
    let redis = Redis::start();
    let mock = MockUpstream::start("m").await;
    let toml = config(&mock, &redis, 5000, &["budget = { usd = 1.0 }"]).toml();
    let proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start(&toml, &[])).collect();
    let answers = burst(&proxies, 300).await;
    let mut served: Vec<f64> = answers.iter().filter(|a| a.0 == 200).map(|a| a.1).collect();
    let refused = answers.iter().filter(|a| a.0 == 429).count();
    assert_eq!(served.len() + refused, 300, "{answers:?}");
    assert!(refused > 0, "the budget refused some");
    let settled = async |served: &[f64]| {
        let expected = served.len() as u64 * 25_000;
        poll::until(
            "every request settled",
            Duration::from_secs(10),
            async || (spent_micros(&redis, "test-team").await == expected).then_some(()),
        )
        .await;
    };
    settled(&served).await;
    // Reservations (each request's largest cost) refuse conservatively while requests are in
    // flight; one request at a time, the team is served until the budget is spent.
    for i in 0.. {
        let answer = burst(&proxies[i % 3..=i % 3], 1).await[0];
        if answer.0 == 429 {
            break;
        }
        served.push(answer.1);
        settled(&served).await;
    }
    let spend: f64 = served.iter().sum();
    // The largest cost of one request: its prompt estimate and its cap at the model's prices.
    let largest = (6.0 * PRICE + 10.0 * PRICE * 4.0) / 1e6;
    println!(
        "budget $1.00, 300 requests at once over 3 replicas, then one at a time: {} served, spend ${spend:.4}, overspend ${:.4} (bound: one request's largest cost, ${largest:.4})",
        served.len(),
        spend - 1.0
    );
    assert!(spend <= 1.0 + largest, "spent ${spend}");
    assert!(
        spend >= 1.0 - 1e-9,
        "served until the budget was spent: ${spend}"
    );
    assert!(served.iter().all(|c| (c - ANSWER_COST).abs() < 1e-9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hold_a_team_to_one_rate_limit() {
    let redis = Redis::start();
    let mock = MockUpstream::start("m").await;
    let toml = config(
        &mock,
        &redis,
        5000,
        &["rate_limit = { requests_per_minute = 60 }"],
    )
    .toml();
    let proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start(&toml, &[])).collect();
    let answers = burst(&proxies, 180).await;
    let admitted = answers.iter().filter(|a| a.0 == 200).count();
    println!("60 requests a minute, 180 at once over 3 replicas: {admitted} admitted");
    assert!((60..=63).contains(&admitted), "{admitted} admitted");
    assert!(answers.iter().all(|a| a.0 == 200 || a.0 == 429));
}

/// POST one chat request as `key`'s team.
async fn ask(proxy: &Proxy, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_away_each_team_gets_its_mode_and_its_usage_is_settled_later() {
    let mut redis = Redis::start();
    let mock = MockUpstream::start("m").await;
    let mut config = config(&mock, &redis, 300, &[])
        .keys_required()
        .section("[server]\nmetrics = true");
    for mode in ["closed", "open", "local"] {
        config = config.team(
            mode,
            "test-policy",
            &format!("sk-fleet-{mode}-000001"),
            &[
                "fallback = [\"m\"]",
                &format!("on_state_error = {mode:?}"),
                "budget = { usd = 100.0 }",
                "rate_limit = { requests_per_minute = 600 }",
            ],
        );
    }
    let proxy = Proxy::start(&config.toml(), &[]);
    for mode in ["closed", "open", "local"] {
        let reply = ask(&proxy, &format!("sk-fleet-{mode}-000001")).await;
        assert_eq!(reply.status(), 200, "{mode} with redis up");
    }

    redis.pause();
    for round in 0..5 {
        for mode in ["closed", "open", "local"] {
            let started = Instant::now();
            let reply = ask(&proxy, &format!("sk-fleet-{mode}-000001")).await;
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{mode} answered in time"
            );
            let status = reply.status().as_u16();
            match mode {
                "closed" => {
                    assert_eq!(status, 503, "round {round}");
                    assert_eq!(reply.headers()["retry-after"], "1");
                    let body: serde_json::Value = reply.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "state_unavailable");
                }
                _ => assert_eq!(status, 200, "{mode}, round {round}"),
            }
        }
    }
    let line = proxy.log_line(&["the fleet's limits could not be checked", "team=closed"]);
    assert!(line.contains("mode=Closed"), "{line}");
    let exposition = reqwest::get(proxy.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for mode in ["closed", "open", "local"] {
        let errors = metric(
            &exposition,
            "switchyard_fleet_state_errors_total",
            &[("team", mode), ("mode", mode)],
        );
        assert_eq!(errors, 5.0, "{mode}");
    }

    // Back: what the open and local teams were served meanwhile is settled (the mark of each
    // request makes a retried settlement count once).
    redis.resume();
    for team in ["open", "local"] {
        poll::until(
            format!("{team}'s usage settled"),
            Duration::from_secs(15),
            async || (spent_micros(&redis, team).await == 6 * 25_000).then_some(()),
        )
        .await;
    }
    assert_eq!(
        spent_micros(&redis, "closed").await,
        25_000,
        "only what it was served"
    );

    // Killed and started again, Redis keeps what was settled (append-only file), and usage
    // served while it was down is settled once it is back.
    redis.kill();
    let reply = ask(&proxy, "sk-fleet-open-000001").await;
    assert_eq!(reply.status(), 200);
    redis.restart();
    poll::until(
        "settled after the restart",
        Duration::from_secs(15),
        async || (spent_micros(&redis, "open").await == 7 * 25_000).then_some(()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_follow_up_may_reach_any_replica() {
    let redis = Redis::start();
    let chat = MockUpstream::start("chat").await;
    let native = MockUpstream::start("native").await;
    for mock in [&chat, &native] {
        mock.set(switchyard_e2e::Behaviour::Assistant);
    }
    let toml = ConfigBuilder::new(&switchyard_e2e::policy_wasm("scripted_policy"))
        .provider("vllm", &chat.url, None)
        .provider_of("openai", "openai", &native.url, &["responses = true"])
        .model("chat", "vllm", "chat-up", 1.0, &[])
        .model("native", "openai", "native-up", 1.0, &[])
        .fallback(&["chat"])
        .section(&format!("[state]\nredis_url = {:?}\n", redis.url()))
        .toml();
    let (a, b) = (Proxy::start(&toml, &[]), Proxy::start(&toml, &[]));
    let client = reqwest::Client::new();
    let create = |proxy: &Proxy, route: &str, body: serde_json::Value| {
        client
            .post(proxy.url("/v1/responses"))
            .header("x-test-route", route)
            .json(&body)
            .send()
    };
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    for route in ["chat", "native"] {
        let first: serde_json::Value = create(
            &a,
            route,
            json!({"model": "auto", "input": "Weather?", "tools": tools}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let call = &first["output"][0];
        assert_eq!(call["type"], "function_call", "{route}: {first}");
        // The follow-up goes to the other replica, and the policy's route says `chat`.
        let follow = json!({"model": "auto", "previous_response_id": first["id"], "tools": tools,
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]});
        let reply = create(&b, "chat", follow).await.unwrap();
        assert_eq!(reply.status(), 200, "{route}");
        assert_eq!(
            reply.headers()["x-switchyard-model"],
            route,
            "pinned where it was made"
        );
        let second: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(
            second["output"][0]["content"][0]["text"], "It is sunny in Paris.",
            "{route}"
        );
        let id = first["id"].as_str().unwrap();
        let read = client
            .get(b.url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.status(),
            200,
            "{route}: read back on the other replica"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_made_twice_counts_once() {
    use switchyard::config::StateConfig;
    use switchyard::fleet::{Fleet, Settlement};
    let redis = Redis::start();
    let state: StateConfig = toml::from_str(&format!("redis_url = {:?}", redis.url())).unwrap();
    let fleet = Fleet::new(&state).unwrap();
    fleet.connect().await;
    let window = (7, Duration::from_secs(86_400));
    let settlement = |id: &str| Settlement {
        team: "test-team".into(),
        request_id: id.into(),
        window,
        cost_micros: 25_000,
        token_delta: 0,
        tokens_per_minute: None,
    };
    for id in ["a", "a", "b", "a"] {
        fleet.settle(settlement(id)).await;
    }
    assert_eq!(spent_micros(&redis, "test-team").await, 50_000);
    assert_eq!(fleet.pending(), 0);
}
