//! Crash safety on PostgreSQL, with real processes: an API node without workers,
//! three `trellis worker` processes, 200 runs of three compute steps, and workers
//! killed with SIGKILL at random moments and restarted while the runs go through.
//!
//! Every run must complete; no step execution may be lost; and no completed step may
//! run again. The function's own record of what ran is its log line per call
//! (`invoked key=… attempt=…`), which workers write to their log as each call
//! returns, before its result is committed: so a call whose result a kill lost still
//! shows, and a step that ran again after completing would show as an extra call.

use serde_json::{Value, json};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const TOKEN: &str = "crash-test-token-0123456789";
const RUNS: usize = 200;
const STEPS: [&str; 3] = ["one", "two", "three"];
const MAX_KILLS: usize = 8;
const MIN_WORKER_LIFE: Duration = Duration::from_secs(1);
/// Version 1 is 32 bytes of 0x01, base64.
const KEYRING: &str =
    r#"{"currentKeyVersion":1,"keys":{"1":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}}"#;

struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Database {
        let admin_url = std::env::var("TRELLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL must be reachable for the crash test (it is never skipped)");
        let name = format!("trellis_crash_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut admin)
            .await
            .expect("creating the database");
        let base = admin_url.rsplit_once('/').expect("a database in the URL").0;
        let url = format!("{base}/{name}");
        Database { admin_url, name, url }
    }

    async fn drop_it(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(database: &str, data_dir: &Path) -> (Process, String) {
    let mut child = Command::new(TRELLIS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "0",
            "--database-url",
            database,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SECRET_KEYS", KEYRING)
        .env("TRELLIS_API_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("SECRET_KEYS_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning trellis serve");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (address, reported) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(addr) = line
                .split("addr=")
                .nth(1)
                .filter(|_| line.contains("trellis listening"))
            {
                let _ = address.send(addr.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = reported
        .recv_timeout(Duration::from_secs(120))
        .expect("trellis serve never reported its address");
    (Process(child), format!("http://{addr}"))
}

/// Worker `index`, generation `generation`, logging to its own file.
fn worker(database: &str, data_dir: &Path, logs: &Path, index: usize, generation: usize) -> Process {
    let log = std::fs::File::create(logs.join(format!("worker-{index}-{generation}.log"))).expect("log file");
    let child = Command::new(TRELLIS)
        .args([
            "worker",
            "--database-url",
            database,
            // Short, so killed workers' runs are taken over quickly, but not so short
            // that a live worker on a loaded two-core machine misses its renewals and
            // loses runs it is still driving.
            "--lease-ms",
            "2000",
            "--worker-concurrency",
            "16",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SECRET_KEYS", KEYRING)
        .env("RUST_LOG", "info,trellis::function=debug")
        .env_remove("SECRET_KEYS_FILE")
        .env_remove("TRELLIS_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning trellis worker");
    Process(child)
}

// The examples, built on first use (one copy of that logic, in the tests package).
#[path = "../../tests/src/examples.rs"]
mod examples;

/// The lines of every worker's log that name `run_id`.
fn worker_lines_about(logs: &Path, run_id: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(logs).expect("logs").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let name = entry.file_name().to_string_lossy().into_owned();
        lines.extend(
            text.lines()
                .filter(|line| line.contains(run_id))
                .map(|line| format!("{name}: {line}")),
        );
    }
    lines
}

/// A random number below `n`, from the OS's randomness (via a v4 UUID).
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    /// Creates an orchestration of `steps`; its id.
    async fn create_orchestration(&self, name: &str, steps: &Value) -> String {
        let body = json!({ "name": name, "steps": steps });
        let created = self
            .send(reqwest::Method::POST, "/v1/orchestrations", None, Some(&body))
            .await;
        created["id"].as_str().expect("an id").to_owned()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        json: Option<&Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.body(body);
        }
        if let Some(json) = json {
            request = request.json(json);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_no_step_and_repeat_no_completed_step() {
    let database = Database::create().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let dir = |name: &str| -> PathBuf {
        let path = dirs.path().join(name);
        std::fs::create_dir_all(&path).expect("a directory");
        path
    };
    let logs = dir("logs");
    let (_server, url) = serve(&database.url, &dir("serve"));
    let api = Api {
        http: reqwest::Client::new(),
        url,
    };
    api.send(
        reqwest::Method::PUT,
        "/v1/functions/flaky",
        Some(examples::component("flaky")),
        None,
    )
    .await;
    let steps: Vec<Value> = STEPS
        .iter()
        .map(|id| json!({ "id": id, "type": "compute", "functionId": "flaky", "params": { "sleepMs": 50 } }))
        .collect();
    let orchestration = api.create_orchestration("crash", &json!(steps)).await;

    let worker_dirs: Vec<PathBuf> = (0..3).map(|i| dir(&format!("worker-{i}"))).collect();
    let mut generations = [0usize; 3];
    let mut workers: Vec<Process> = (0..3)
        .map(|i| worker(&database.url, &worker_dirs[i], &logs, i, 0))
        .collect();

    // Start the runs over about five seconds while killing a random worker every
    // 200–600 ms and starting it again at once. A worker lives at least
    // `MIN_WORKER_LIFE` and there are at most `MAX_KILLS`: a step loses an attempt to
    // every worker killed while calling it, and past the retry budget plus five lost
    // attempts the engine fails the step (`attempts_lost`) as it should; workers
    // killed faster than a loaded machine starts them would make that happen here.
    let mut next_kill = Instant::now() + Duration::from_millis(200 + random_below(400));
    let mut started = [Instant::now(); 3];
    let mut kills = 0;
    let runs_path = format!("/v1/orchestrations/{orchestration}/runs");
    for _ in 0..RUNS {
        api.send(
            reqwest::Method::POST,
            &runs_path,
            None,
            Some(&json!({ "input": {} })),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(25)).await;
        let victim = random_below(3) as usize;
        if kills < MAX_KILLS && Instant::now() >= next_kill && started[victim].elapsed() >= MIN_WORKER_LIFE {
            workers[victim].0.kill().expect("SIGKILL");
            let _ = workers[victim].0.wait();
            generations[victim] += 1;
            workers[victim] = worker(
                &database.url,
                &worker_dirs[victim],
                &logs,
                victim,
                generations[victim],
            );
            started[victim] = Instant::now();
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(200 + random_below(400));
        }
    }
    assert!(kills >= 5, "only {kills} kills happened");

    // Every run completes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let listed = api
            .send(
                reqwest::Method::GET,
                &format!("{runs_path}?limit=1000"),
                None,
                None,
            )
            .await;
        let runs = listed["data"].as_array().expect("a list").clone();
        assert_eq!(runs.len(), RUNS);
        let unfinished: Vec<&Value> = runs.iter().filter(|run| run["status"] != "completed").collect();
        if unfinished.is_empty() {
            break runs;
        }
        if Instant::now() >= deadline {
            // What the runs hold and what the workers said about them, to tell a
            // stuck run from one that failed.
            let mut shown = Vec::new();
            for run in unfinished.iter().take(3) {
                let id = run["id"].as_str().expect("an id");
                shown.push(
                    api.send(reqwest::Method::GET, &format!("/v1/runs/{id}"), None, None)
                        .await,
                );
                shown.push(json!(worker_lines_about(&logs, id)));
            }
            panic!(
                "{} runs never completed, among them: {shown:#?}",
                unfinished.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(workers);

    // What each function call logged: key → the attempts that ran.
    let mut calls: HashMap<String, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir(&logs).expect("logs").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("a log");
        for line in text.lines() {
            let Some(rest) = line.split("invoked key=").nth(1) else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(key), Some(attempt)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(attempt) = attempt.strip_prefix("attempt=").and_then(|a| a.parse().ok()) else {
                continue; // a line cut short by SIGKILL
            };
            calls.entry(key.to_owned()).or_default().push(attempt);
        }
    }

    let mut resumed = 0;
    let mut recorded: BTreeMap<String, i64> = BTreeMap::new();
    for run in &runs {
        let id = run["id"].as_str().expect("an id");
        let run = api
            .send(reqwest::Method::GET, &format!("/v1/runs/{id}"), None, None)
            .await;
        for (execution, step_id) in STEPS.iter().enumerate() {
            let step = run["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .find(|s| s["id"] == *step_id)
                .expect("the step");
            assert_eq!(step["status"], "succeeded", "{run}");
            let key = format!("{id}/{step_id}/{}", execution + 1);
            assert_eq!(
                step["output"]["idempotencyKey"],
                key.as_str(),
                "the key is stable"
            );
            let attempts = step["attempts"].as_i64().expect("attempts");
            assert_eq!(
                step["output"]["attempt"], attempts,
                "the output is the last attempt's"
            );
            recorded.insert(key, attempts);
            if attempts > 1 {
                resumed += 1;
            }
        }
    }
    for (key, attempts) in &recorded {
        let mut ran = calls.remove(key).unwrap_or_default();
        assert!(
            !ran.is_empty(),
            "step execution {key} completed but the function never saw it"
        );
        ran.sort_unstable();
        let before = ran.len();
        ran.dedup();
        assert_eq!(ran.len(), before, "an attempt of {key} ran twice: {ran:?}");
        assert!(
            ran.iter().all(|attempt| i64::from(*attempt) <= *attempts),
            "{key} ran after it completed: calls {ran:?}, {attempts} attempts recorded"
        );
    }
    assert!(
        calls.is_empty(),
        "calls for step executions no run has: {:?}",
        calls.keys()
    );
    assert!(resumed > 0, "no kill interrupted a step; the test proved nothing");
    eprintln!("{kills} kills; {resumed} step executions were resumed by another worker");
    database.drop_it().await;
}

/// Worker processes currently registered for wake-ups in `database`: the advisory
/// locks each holds on its listener connection.
async fn registered_workers(database: &str) -> i64 {
    let mut db = PgConnection::connect(database).await.expect("connecting");
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND classid = x'74726c73'::int::oid AND objsubid = 2 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut db)
    .await
    .expect("reading pg_locks")
}

async fn until_registered(database: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while registered_workers(database).await != want {
        assert!(Instant::now() < deadline, "never saw {want} registered workers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// New runs are announced to one registered worker process at a time rather than
/// to all, taking the registered ones in turn, and a process that is gone (its
/// connection closed, as when it is killed) hears of no more work.
///
/// The second registration is this test's own connection holding a worker slot, as
/// a worker process's listener does, with a separate listener on that slot's
/// channel, so what reaches the slot can be counted and heard after the slot is
/// given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_go_to_registered_workers_in_turn() {
    let database = Database::create().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let (_server, url) = serve(&database.url, dirs.path());
    let api = Api {
        http: reqwest::Client::new(),
        url,
    };
    assert_eq!(
        registered_workers(&database.url).await,
        0,
        "an API node is no worker"
    );
    let logs = dirs.path().join("logs");
    std::fs::create_dir_all(&logs).expect("a directory");
    let real = worker(&database.url, &dirs.path().join("w0"), &logs, 0, 0);
    until_registered(&database.url, 1).await;
    let mut registration = PgConnection::connect(&database.url).await.expect("connecting");
    // The highest free slot (the real worker took one at random).
    let mut slot = 4095;
    while !sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(x'74726c73'::int, $1)")
        .bind(slot)
        .fetch_one(&mut registration)
        .await
        .expect("taking a worker slot")
    {
        slot -= 1;
    }
    let mut heard = PgListener::connect(&database.url).await.expect("connecting");
    heard
        .listen(&format!("trellis_work_{slot}"))
        .await
        .expect("LISTEN");
    until_registered(&database.url, 2).await;

    api.send(
        reqwest::Method::PUT,
        "/v1/functions/flaky",
        Some(examples::component("flaky")),
        None,
    )
    .await;
    let steps = json!([{ "id": "one", "type": "compute", "functionId": "flaky" }]);
    let orchestration = api.create_orchestration("wake", &steps).await;
    let start_and_finish = |count: usize| {
        let api = &api;
        let orchestration = &orchestration;
        async move {
            for _ in 0..count {
                let run = api
                    .send(
                        reqwest::Method::POST,
                        &format!("/v1/orchestrations/{orchestration}/runs"),
                        None,
                        Some(&json!({ "input": {} })),
                    )
                    .await;
                let id = run["id"].as_str().expect("a run id");
                // The real worker claims runs whose wake-up went to the slot with its
                // idle poll.
                let run = api
                    .send(
                        reqwest::Method::GET,
                        &format!("/v1/runs/{id}?waitMs=30000"),
                        None,
                        None,
                    )
                    .await;
                assert_eq!(run["status"], "completed", "{run}");
            }
        }
    };
    start_and_finish(10).await;
    assert_eq!(
        notifications(&mut heard, 5).await,
        5,
        "two registered workers take ten wake-ups in turn"
    );

    registration.close().await.expect("closing the registration");
    until_registered(&database.url, 1).await;
    // The API node reads the registry at most once a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    start_and_finish(10).await;
    assert_eq!(
        notifications(&mut heard, 0).await,
        0,
        "a slot given up hears of no more work"
    );
    drop(real);
    database.drop_it().await;
}

/// Notifications `listener` receives: it waits (up to a minute) for `expected`, then
/// counts any more that arrive within a quiet second.
async fn notifications(listener: &mut PgListener, expected: usize) -> usize {
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < expected && Instant::now() < deadline {
        if let Ok(received) = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await {
            received.expect("a notification");
            count += 1;
        }
    }
    while let Ok(received) = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await {
        received.expect("a notification");
        count += 1;
    }
    count
}
