//! Load driver for `scripts/bench-runs.sh`: creates an orchestration of N `echo`
//! compute steps on a running server and measures its runs.
//!
//! ```text
//! run_load latency    <url> <token> <steps> <runs>
//! run_load throughput <url> <token> <steps> <runs> <concurrency> <postgres url>
//! ```
//!
//! `latency` starts runs one after another and times each from `POST …/runs` until
//! `GET /v1/runs/{id}?waitMs=` reports it completed (the server answers as soon as
//! the run settles), then prints p50, p99 and the mean. It also prints the run
//! transactions and steps the server counted (`/metrics`) over the measured runs.
//!
//! `throughput` starts all runs with `concurrency` requests in flight, then watches
//! the database until every run completed, and prints runs/s and steps/s from the
//! first run's creation to the last one's completion, with the transactions
//! PostgreSQL committed meanwhile per step (`pg_stat_database.xact_commit`, reads
//! included).

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .with_context(|| "usage: see the header of host/examples/run_load.rs")
    };
    let api = Api {
        http: reqwest::Client::new(),
        url: arg(1)?.clone(),
        token: arg(2)?.clone(),
    };
    let steps: usize = arg(3)?.parse()?;
    let runs: usize = arg(4)?.parse()?;
    let orchestration = api.orchestration(steps).await?;
    match arg(0)?.as_str() {
        "latency" => latency(&api, &orchestration, steps, runs).await,
        "throughput" => {
            let concurrency: usize = arg(5)?.parse()?;
            throughput(api, &orchestration, steps, runs, concurrency, arg(6)?).await
        }
        other => bail!("unknown mode {other}"),
    }
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "{path}: {status} {body}");
        Ok(body)
    }

    async fn orchestration(&self, steps: usize) -> Result<String> {
        let steps: Vec<Value> = (0..steps)
            .map(|i| json!({ "id": format!("s{i}"), "type": "compute", "functionId": "echo" }))
            .collect();
        let created = self
            .call(
                reqwest::Method::POST,
                "/v1/orchestrations",
                Some(json!({ "name": "bench", "steps": steps })),
            )
            .await?;
        Ok(created["id"].as_str().context("an id")?.to_owned())
    }

    async fn start(&self, orchestration: &str) -> Result<String> {
        let started = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/orchestrations/{orchestration}/runs"),
                Some(json!({ "input": { "n": 1 } })),
            )
            .await?;
        Ok(started["id"].as_str().context("an id")?.to_owned())
    }

    async fn metric(&self, name: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .with_context(|| format!("{name} missing from /metrics"))
    }
}

async fn latency(api: &Api, orchestration: &str, steps: usize, runs: usize) -> Result<()> {
    // Warm up: compiled component, connections, caches.
    for _ in 0..20 {
        run_once(api, orchestration).await?;
    }
    let transactions = api.metric("trellis_run_transactions_total").await?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(run_once(api, orchestration).await?);
    }
    let transactions = api.metric("trellis_run_transactions_total").await? - transactions;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().sum::<Duration>() / runs as u32;
    println!(
        "{steps}-step runs, {runs} sequential: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms; \
         {:.2} run transactions per step",
        ms(times[runs / 2]),
        ms(times[(runs * 99 / 100).min(runs - 1)]),
        ms(mean),
        transactions / (runs * steps) as f64
    );
    Ok(())
}

async fn run_once(api: &Api, orchestration: &str) -> Result<Duration> {
    let started = Instant::now();
    let id = api.start(orchestration).await?;
    let run = api
        .call(reqwest::Method::GET, &format!("/v1/runs/{id}?waitMs=30000"), None)
        .await?;
    let elapsed = started.elapsed();
    ensure!(run["status"] == "completed", "run {id} ended {}", run["status"]);
    Ok(elapsed)
}

/// Transactions PostgreSQL has committed in this database.
const COMMITTED: &str = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()";

async fn throughput(
    api: Api,
    orchestration: &str,
    steps: usize,
    runs: usize,
    concurrency: usize,
    database_url: &str,
) -> Result<()> {
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
    let before: i64 = sqlx::query_scalar(COMMITTED).fetch_one(&mut db).await?;
    let api = Arc::new(api);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut started = tokio::task::JoinSet::new();
    for _ in 0..runs {
        let permit = slots.clone().acquire_owned().await?;
        let (api, orchestration) = (api.clone(), orchestration.to_owned());
        started.spawn(async move {
            let result = api.start(&orchestration).await;
            drop(permit);
            result
        });
    }
    while let Some(result) = started.join_next().await {
        result??;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (completed, other): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'completed'), \
                    count(*) FILTER (WHERE status NOT IN ('completed', 'pending', 'running')) \
             FROM runs WHERE orchestration_id = $1",
        )
        .bind(orchestration)
        .fetch_one(&mut db)
        .await?;
        ensure!(other == 0, "{other} runs did not complete");
        if completed as usize == runs {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {completed} of {runs} runs completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after: i64 = sqlx::query_scalar(COMMITTED).fetch_one(&mut db).await?;
    let seconds: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(updated_at) - min(created_at))::float8 FROM runs WHERE orchestration_id = $1",
    )
    .bind(orchestration)
    .fetch_one(&mut db)
    .await?;
    println!(
        "{runs} runs of {steps} steps, {concurrency} starts in flight: {:.0} runs/s, {:.0} steps/s over {seconds:.2} s; \
         PostgreSQL committed {:.2} transactions per step (reads and run starts included)",
        runs as f64 / seconds,
        (runs * steps) as f64 / seconds,
        (after - before) as f64 / (runs * steps) as f64
    );
    Ok(())
}
