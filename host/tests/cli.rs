//! The `trellis` binary as a user runs it: `serve --preload-examples` on the embedded
//! default, a generated token printed once and stored 0600, and every `functions`
//! subcommand against that server.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

// The examples, built on first use (one copy of that logic, in the tests package).
#[path = "../../tests/src/examples.rs"]
#[allow(dead_code, reason = "these tests upload by path, not by bytes")]
mod examples;

/// A `trellis serve` child process, killed on drop.
struct Serve {
    child: Child,
    url: String,
    /// What the server printed on stdout by the time it was listening.
    stdout: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, stdout_file: &Path) -> Serve {
    serve_with_env(data_dir, stdout_file, &[])
}

fn serve_with_env(data_dir: &Path, stdout_file: &Path, env: &[(&str, &str)]) -> Serve {
    let mut child = Command::new(TRELLIS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--preload-examples",
            "--data-dir",
        ])
        .arg(data_dir)
        .arg("--examples-dir")
        .arg(examples::dir())
        .env_remove("DATABASE_URL")
        .env_remove("TRELLIS_API_TOKEN")
        .env_remove("SECRET_KEYS")
        .env_remove("SECRET_KEYS_FILE")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(stdout_file).expect("stdout file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning trellis serve");
    // Read stderr on a thread, so a server that never reports its address fails the
    // test after a while instead of hanging it.
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (address, reported) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("ERROR") {
                let _ = address.send(Err(line));
                return;
            }
            if line.contains("trellis listening")
                && let Some(addr) = line.split("addr=").nth(1)
            {
                let addr = addr.split_whitespace().next().unwrap_or_default().to_owned();
                let _ = address.send(Ok(addr));
            }
        }
    });
    let url = match reported.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(Ok(addr)) => format!("http://{addr}"),
        Ok(Err(line)) => panic!("serve failed: {line}"),
        Err(_) => panic!("trellis serve never reported its address"),
    };
    let stdout = std::fs::read_to_string(stdout_file).expect("stdout");
    Serve { child, url, stdout }
}

fn cli(data_dir: &Path, url: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(TRELLIS)
        .args(args)
        .args(["--url", url, "--data-dir"])
        .arg(data_dir)
        .env_remove("TRELLIS_API_TOKEN")
        .output()
        .expect("running the CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The CLI with `-o json`: exactly the API's JSON on stdout.
fn cli_json(data_dir: &Path, url: &str, args: &[&str]) -> (bool, String, String) {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    cli(data_dir, url, &args)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

#[test]
fn serve_with_examples_and_drive_it_from_the_cli() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &logs.path().join("first.out"));

    let token_file = data.path().join("api-token");
    let token = std::fs::read_to_string(&token_file).expect("a generated token");
    assert!(
        server.stdout.contains(token.trim()),
        "the token is printed at generation"
    );
    let mode = std::fs::metadata(&token_file)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "only the owner may read the token");

    let (ok, out, err) = cli_json(data.path(), &server.url, &["functions", "list"]);
    assert!(ok, "{err}");
    let ids: Vec<_> = json(&out)["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids, ["digest", "echo", "evaluate-request"]);

    let request = r#"{"org":"acme","name":"payments-api"}"#;
    let (ok, out, err) = cli_json(
        data.path(),
        &server.url,
        &["functions", "invoke", "evaluate-request", request],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["output"]["decision"], "approve");

    let echo = examples::dir().join("echo.wasm");
    let echo = echo.to_str().expect("a UTF-8 path");
    let (ok, out, err) = cli_json(
        data.path(),
        &server.url,
        &["functions", "upload", "my-echo", echo],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["version"], 1);

    let (ok, out, err) = cli_json(
        data.path(),
        &server.url,
        &["functions", "settings", "my-echo", "--timeout-ms", "1500"],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["settings"]["timeoutMs"], 1500);

    let (ok, out, err) = cli_json(data.path(), &server.url, &["functions", "get", "my-echo"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["settings"]["timeoutMs"], 1500);

    let (ok, _, err) = cli(data.path(), &server.url, &["functions", "delete", "my-echo"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(data.path(), &server.url, &["functions", "get", "my-echo"]);
    assert!(!ok);
    assert!(err.contains("function_not_found"), "{err}");

    let (ok, _, err) = cli(
        data.path(),
        &server.url,
        &["functions", "invoke", "echo", "{not json"],
    );
    assert!(!ok);
    assert!(err.contains("params: not JSON"), "{err}");

    // A restart reuses the stored token and does not print it again.
    drop(server);
    let again = serve(data.path(), &logs.path().join("second.out"));
    assert!(
        !again.stdout.contains(token.trim()),
        "the token is printed only once"
    );
    let (ok, _, err) = cli(data.path(), &again.url, &["functions", "get", "echo"]);
    assert!(ok, "{err}");
}

/// Runs `trellis serve` with `SECRET_KEYS` set and returns what it printed on stderr
/// when it refused to start.
fn refused_start(variable: &str, value: &str) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let output = Command::new(TRELLIS)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("SECRET_KEYS")
        .env_remove("SECRET_KEYS_FILE")
        .env_remove("DATABASE_URL")
        .env(variable, value)
        .output()
        .expect("running trellis serve");
    assert!(!output.status.success(), "serve must refuse {variable}={value}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn thread_counts_outside_one_to_1024_are_refused_before_start() {
    for value in ["0", "1025", "two"] {
        let stderr = refused_start("TRELLIS_THREADS", value);
        assert!(
            stderr.contains("--threads") && stderr.contains(&format!("'{value}'")),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn malformed_keyrings_stop_start_up_with_their_own_error() {
    // A recognisable 32-byte key, and one a byte short.
    let key = "S0VZLU1BVEVSSUFMLU5FVkVSLUVDSE9FRC0wMTIzNDU=";
    let short = "S0VZLU1BVEVSSUFMLU5FVkVSLUVDSE9FRC0wMTIzNA==";
    let cases = [
        (
            format!(r#"{{"currentKeyVersion": 1, "keys": {{"1": "{key}""#),
            "not valid JSON",
        ),
        (
            r#"{"currentKeyVersion": 1, "keys": {"1": "not base64!"}}"#.to_owned(),
            "key 1 is not valid standard base64",
        ),
        (
            format!(r#"{{"currentKeyVersion": 1, "keys": {{"1": "{short}"}}}}"#),
            "key 1 is 31 bytes",
        ),
        (
            format!(r#"{{"currentKeyVersion": 2, "keys": {{"1": "{key}"}}}}"#),
            "currentKeyVersion 2 is not in",
        ),
        (
            r#"{"currentKeyVersion": 1, "keys": {}}"#.to_owned(),
            "\"keys\" is empty",
        ),
    ];
    for (keyring, expected) in cases {
        let stderr = refused_start("SECRET_KEYS", &keyring);
        assert!(
            stderr.contains("SECRET_KEYS") && stderr.contains(expected),
            "{expected}: {stderr}"
        );
        assert!(
            !stderr.contains(key) && !stderr.contains(short),
            "key material in: {stderr}"
        );
    }
}

#[test]
fn keyring_files_and_postgres_without_a_keyring_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keys.json");
    std::fs::write(&file, r#"{"currentKeyVersion": 1}"#).expect("write");
    let stderr = refused_start("SECRET_KEYS_FILE", file.to_str().expect("utf-8"));
    assert!(
        stderr.contains("SECRET_KEYS_FILE") && stderr.contains("no \"keys\" field"),
        "{stderr}"
    );

    // PostgreSQL needs a keyring every node shares; nothing is generated for it.
    let stderr = refused_start("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    assert!(
        stderr.contains("no keyring") && stderr.contains("SECRET_KEYS"),
        "{stderr}"
    );
}

#[test]
fn keys_generate_status_and_rewrap_from_the_cli() {
    let (ok, out, err) = {
        let output = Command::new(TRELLIS)
            .args(["keys", "generate"])
            .output()
            .expect("keys generate");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            output.stderr,
        )
    };
    assert!(ok, "{}", String::from_utf8_lossy(&err));
    let generated = out.trim().to_owned();
    assert_eq!(generated.len(), 44, "base64 of 32 bytes: {generated}");

    // A server on the embedded default stores two secrets under its generated key 1.
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &logs.path().join("serve.out"));
    let token = std::fs::read_to_string(data.path().join("api-token")).expect("token");
    let definition = serde_json::json!({ "name": "rotate me", "steps": [
        { "id": "call", "type": "compute", "functionId": "digest", "encryptedParams": {
            "A": { "value": "first-secret", "encrypt": true }, "B": { "value": "second-secret", "encrypt": true } } }
    ]});
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/orchestrations", server.url))
            .bearer_auth(token.trim())
            .json(&definition)
            .send()
            .await
            .expect("create")
            .status()
    });
    assert_eq!(status.as_u16(), 201);
    drop(server);

    let keys = |args: &[&str], secret_keys: Option<&str>| {
        let mut command = Command::new(TRELLIS);
        command
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("DATABASE_URL");
        match secret_keys {
            Some(json) => command.env("SECRET_KEYS", json),
            None => command.env_remove("SECRET_KEYS"),
        };
        let output = command.output().expect("trellis keys");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let status = keys(&["keys", "status"], None);
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["1", "2", "current"])),
        "{status}"
    );

    // Rotate: key 2 (the generated one) becomes current, key 1 stays until rewrapped.
    let generated_keyring: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("secret-keys.json")).expect("keyring"),
    )
    .expect("JSON");
    let rotated = serde_json::json!({ "currentKeyVersion": 2,
        "keys": { "1": generated_keyring["keys"]["1"], "2": generated } })
    .to_string();
    let rewrap = keys(&["keys", "rewrap"], Some(&rotated));
    assert!(
        rewrap.contains("rewrapped 2 params in 1 definition versions to key version 2"),
        "{rewrap}"
    );
    assert!(
        rewrap
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["1", "0", "unused:"])),
        "{rewrap}"
    );
    assert!(!rewrap.contains("first-secret") && !rewrap.contains(&generated));
}

#[test]
fn orchestrations_and_runs_from_the_cli() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &logs.path().join("runs.out"));
    let table = |args: &[&str]| cli(data.path(), &server.url, args);
    let api = |args: &[&str]| cli_json(data.path(), &server.url, args);

    // A definition in a file, with a secret and a step left for the server to name.
    let secret = "sk_live_cli_never_shown_0123";
    let definition = data.path().join("definition.json");
    std::fs::write(
        &definition,
        format!(
            r#"{{ "name": "provision", "steps": [
            {{ "id": "evaluate", "type": "compute", "functionId": "evaluate-request" }},
            {{ "id": "gate", "type": "approval", "message": "Create it?" }},
            {{ "type": "compute", "functionId": "digest",
               "encryptedParams": {{ "API_KEY": {{ "value": "{secret}", "encrypt": true }} }} }} ] }}"#
        ),
    )
    .expect("writing the definition");
    let file = definition.to_str().expect("a UTF-8 path");
    let (ok, out, err) = table(&["orchestrations", "create", "-f", file]);
    assert!(ok, "{err}");
    assert!(out.contains("STEP") && out.contains("SECRETS"), "{out}");
    let digest_row = out
        .lines()
        .find(|line| line.starts_with("digest"))
        .expect("the named step");
    assert!(
        digest_row.contains("calls digest") && digest_row.contains("API_KEY"),
        "{out}"
    );
    assert!(!out.contains(secret), "{out}");
    let orchestration = out
        .lines()
        .find_map(|line| line.strip_prefix("id:"))
        .expect("the id line")
        .trim()
        .to_owned();

    let (ok, out, err) = api(&["orchestrations", "get", &orchestration]);
    assert!(ok, "{err}");
    let read = json(&out);
    assert_eq!(
        read["steps"][2]["encryptedParams"]["API_KEY"],
        serde_json::json!({ "value": "********", "encrypted": true })
    );
    // Sent back as read (from stdin), the secret is kept and the version moves on.
    let mut back = read.clone();
    for field in ["id", "version", "createdAt", "updatedAt"] {
        back.as_object_mut().expect("an object").remove(field);
    }
    let mut update = Command::new(TRELLIS)
        .args([
            "-o",
            "json",
            "orchestrations",
            "update",
            &orchestration,
            "-f",
            "-",
        ])
        .args(["--url", &server.url, "--data-dir"])
        .arg(data.path())
        .env_remove("TRELLIS_API_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning update");
    std::io::Write::write_all(
        &mut update.stdin.take().expect("stdin"),
        back.to_string().as_bytes(),
    )
    .expect("writing stdin");
    let output = update.wait_with_output().expect("update");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(json(&String::from_utf8_lossy(&output.stdout))["version"], 2);

    let (ok, out, err) = table(&["orchestrations", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("ID") && out.contains(&orchestration) && out.contains("provision"),
        "{out}"
    );
    let (ok, out, err) = api(&["orchestrations", "list"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["data"][0]["id"], orchestration.as_str());

    // A run: start and wait shows the timeline, waiting at the gate.
    let input = r#"{"org":"acme","name":"payments-api"}"#;
    let (ok, out, err) = table(&["runs", "start", &orchestration, input, "--wait"]);
    assert!(ok, "{err}");
    assert!(out.contains("status:") && out.contains("waiting"), "{out}");
    let timeline: Vec<&str> = out.lines().skip_while(|line| !line.starts_with("STEP")).collect();
    assert!(
        timeline[0].contains("ATTEMPTS") && timeline[0].contains("ERROR"),
        "{out}"
    );
    assert!(
        timeline[1].starts_with("evaluate") && timeline[1].contains("succeeded"),
        "{out}"
    );
    assert!(
        timeline[2].starts_with("gate") && timeline[2].contains("waiting"),
        "{out}"
    );
    let run_id = out
        .lines()
        .find_map(|line| line.strip_prefix("run:"))
        .expect("the run line")
        .trim()
        .to_owned();

    let (ok, out, err) = table(&["runs", "list", &orchestration, "--status", "waiting"]);
    assert!(ok, "{err}");
    assert!(out.contains(&run_id) && out.contains("gate"), "{out}");
    let (ok, out, err) = api(&["runs", "list", &orchestration, "--status", "completed"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["data"], serde_json::json!([]));

    let (ok, _, err) = table(&["runs", "approve", &run_id, "gate", "--comment", "ship it"]);
    assert!(ok, "{err}");
    let (ok, out, err) = table(&["runs", "watch", &run_id]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|line| line.contains(" digest ") && line.contains("succeeded")),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("run {run_id} completed after")),
        "{out}"
    );
    let (ok, out, err) = api(&["runs", "get", &run_id]);
    assert!(ok, "{err}");
    let run = json(&out);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"][1]["output"]["comment"], "ship it");
    assert!(!out.contains(secret), "{out}");

    // A rejected run: watch says so and exits non-zero.
    let (ok, out, err) = api(&["runs", "start", &orchestration, input, "--wait"]);
    assert!(ok, "{err}");
    let rejected = json(&out)["id"].as_str().expect("an id").to_owned();
    let (ok, _, err) = table(&["runs", "reject", &rejected, "gate"]);
    assert!(ok, "{err}");
    let (ok, _, err) = table(&["runs", "watch", &rejected]);
    assert!(!ok, "watch fails for a failed run");
    assert!(err.contains("failed"), "{err}");

    // A cancelled one, with JSON from start.
    let (ok, out, err) = api(&["runs", "start", &orchestration, input]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["status"], "pending");
    let cancelled = json(&out)["id"].as_str().expect("an id").to_owned();
    let (ok, out, err) = api(&["runs", "cancel", &cancelled]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["status"], "cancelled");

    let (ok, _, err) = table(&["runs", "approve", &run_id, "gate"]);
    assert!(!ok, "a decided step cannot be decided again");
    assert!(err.contains("run_state_conflict"), "{err}");

    let (ok, _, err) = table(&["orchestrations", "delete", &orchestration]);
    assert!(ok, "{err}");
    let (ok, _, err) = table(&["orchestrations", "get", &orchestration]);
    assert!(!ok && err.contains("orchestration_not_found"), "{err}");
    assert!(
        !std::fs::read_to_string(logs.path().join("runs.out"))
            .unwrap_or_default()
            .contains(secret)
    );
}

#[test]
fn global_options_go_anywhere_and_errors_say_what_to_do() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &logs.path().join("global.out"));
    let token = std::fs::read_to_string(data.path().join("api-token")).expect("token");
    let token = token.trim();
    let run = |args: &[&str]| {
        let output = Command::new(TRELLIS)
            .args(args)
            .env_remove("TRELLIS_API_TOKEN")
            .env_remove("TRELLIS_URL")
            .env("TRELLIS_DATA_DIR", "/nonexistent")
            .output()
            .expect("running the CLI");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for args in [
        vec![
            "--url",
            &server.url,
            "--token",
            token,
            "-o",
            "json",
            "functions",
            "list",
        ],
        vec![
            "functions",
            "--url",
            &server.url,
            "list",
            "--token",
            token,
            "-o",
            "json",
        ],
        vec![
            "functions",
            "list",
            "-o",
            "json",
            "--token",
            token,
            "--url",
            &server.url,
        ],
    ] {
        let (ok, out, err) = run(&args);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(json(&out)["data"].as_array().map(Vec::len), Some(3), "{args:?}");
    }

    // Nothing listening: one sentence saying what to check, no repeated error chain.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let (ok, _, err) = run(&[
        "functions",
        "list",
        "--url",
        &format!("http://{closed}"),
        "--token",
        token,
    ]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "cannot reach Trellis at http://{closed}: is `trellis serve` running there?"
        )),
        "{err}"
    );
    assert_eq!(err.matches(&closed.to_string()).count(), 1, "{err}");

    // A wrong token: the API's code, and where a token comes from.
    let (ok, _, err) = run(&[
        "functions",
        "list",
        "--url",
        &server.url,
        "--token",
        "wrong-token-0123456789",
    ]);
    assert!(!ok);
    assert!(err.contains("unauthorized") && err.contains("hint:"), "{err}");

    // No token at all: how to give one.
    let (ok, _, err) = run(&["functions", "list", "--url", &server.url]);
    assert!(!ok);
    assert!(err.contains("pass --token or set TRELLIS_API_TOKEN"), "{err}");

    let (ok, out, err) = run(&["completions", "bash"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("_trellis") && out.contains("orchestrations"),
        "a bash completion script"
    );
    let (ok, out, err) = run(&["completions", "zsh"]);
    assert!(ok && out.contains("#compdef trellis"), "{err}");

    let (ok, out, err) = run(&["openapi"]);
    assert!(ok, "{err}");
    let document = json(&out);
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/v1/orchestrations"]["post"].is_object());
}

/// One HTTP/1.1 POST over a plain socket, so no client library's proxy rules are in
/// play; returns the whole response.
fn post(url: &str, path: &str, token: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let authority = url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(authority).expect("connecting");
    write!(
        socket,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("writing the request");
    let mut response = String::new();
    socket
        .read_to_string(&mut response)
        .expect("reading the response");
    response
}

#[test]
fn mcp_calls_its_own_api_directly_never_through_a_proxy() {
    // A "proxy" that would see the token and the secret if anything were sent to it.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    proxy.set_nonblocking(true).expect("nonblocking");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let env: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .map(|name| (*name, proxy_url.as_str()))
    .collect();
    let server = serve_with_env(data.path(), &logs.path().join("proxy.out"), &env);
    let token = std::fs::read_to_string(data.path().join("api-token")).expect("token");
    let secret = "sk_live_must_not_reach_a_proxy";
    let call = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "create_orchestration", "arguments": { "name": "p", "steps": [{ "type": "compute",
        "functionId": "digest", "encryptedParams": { "KEY": { "value": secret, "encrypt": true } } }] } } });
    let response = post(&server.url, "/mcp", token.trim(), &call.to_string());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"isError\":false") && response.contains("********"),
        "{response}"
    );
    assert!(!response.contains(secret), "{response}");
    match proxy.accept() {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the proxy was contacted: {other:?}"),
    }
}

/// Every `sh` block under the README's `## Quickstart`, in order, as one script.
fn quickstart(readme: &str) -> String {
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with("Quickstart\n"))
        .expect("the README has a `## Quickstart` section");
    let mut script = String::new();
    let mut in_block = false;
    for line in section.lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, line) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!in_block, "a Quickstart block is never closed");
    script
}

/// The README's Quickstart, command for command, in a directory laid out like the
/// repository root after its first command: the examples built, `trellis` in
/// `target/release/` (here the binary under test), the server running with its data in
/// `trellis-data/`. The only change is the server's address, which is this test's.
/// The secret the Quickstart reads from a file never shows in what it prints, and it
/// leaves nothing behind in the directory.
#[test]
fn the_readme_quickstart_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let script = quickstart(&readme);
    assert!(
        script.contains("127.0.0.1:8080"),
        "the Quickstart talks to the first command's server"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let link = |from: &Path, to: &str| {
        let to = dir.path().join(to);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("a directory");
        std::os::unix::fs::symlink(from, to).expect("a symlink");
    };
    examples::dir();
    link(&root.join("functions"), "functions");
    link(&root.join("examples"), "examples");
    link(&root.join("tests/fixtures"), "tests/fixtures");
    link(Path::new(TRELLIS), "target/release/trellis");
    let server = serve(&dir.path().join("trellis-data"), &logs.path().join("serve.out"));
    let before = entries(dir.path());

    let address = server.url.trim_start_matches("http://");
    let output = Command::new("timeout")
        .args(["600", "bash", "-euo", "pipefail", "-c"])
        .arg(script.replace("127.0.0.1:8080", address))
        .current_dir(dir.path())
        // The CLI's default address is the Quickstart's; here it is this server's.
        .env("TRELLIS_URL", &server.url)
        .env_remove("TRELLIS_API_TOKEN")
        .env_remove("TRELLIS_DATA_DIR")
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Quickstart failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("********"),
        "the secret reads back masked:\n{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert!(lines.contains(&"completed"), "the run completed:\n{stdout}");
    // The step that got the key printed its digest, and `sha256sum` of the key file
    // agrees.
    let checked = lines
        .iter()
        .find_map(|line| line.strip_suffix("tests/fixtures/github-app-pkcs1.pem"))
        .map(str::trim)
        .expect("the Quickstart checks the key's digest with sha256sum");
    assert!(
        checked.len() == 64 && lines.contains(&checked),
        "the step received the key from the file:\n{stdout}"
    );

    // Whatever the Quickstart reads from tests/fixtures is secret: none of its lines
    // may show.
    let fixtures: Vec<&str> = script
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .filter(|word| word.starts_with("tests/fixtures/"))
        .collect();
    assert!(
        !fixtures.is_empty(),
        "the Quickstart reads its secret from a file"
    );
    for fixture in fixtures {
        let secret = std::fs::read_to_string(root.join(fixture)).expect("the fixture");
        for line in secret
            .lines()
            .filter(|line| line.len() >= 16 && !line.starts_with("-----"))
        {
            assert!(
                !stdout.contains(line) && !stderr.contains(line),
                "a line of {fixture} was printed"
            );
        }
    }
    assert_eq!(
        entries(dir.path()),
        before,
        "the Quickstart leaves no files behind"
    );
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("a directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

// The loopback endpoint that holds a step's call for as long as a test needs.
#[path = "../../tests/src/gate.rs"]
mod gate;

/// On the server at `url`: the `fetch` example allowed to call `gate`, and a run of
/// one step that calls it; the run's id.
fn run_calling_the_gate(data_dir: &Path, url: &str, gate: &gate::Gate) -> String {
    let fetch = examples::dir().join("fetch.wasm");
    let steps = |args: &[&str]| {
        let (ok, out, err) = cli_json(data_dir, url, args);
        assert!(ok, "{args:?}: {err}");
        json(&out)
    };
    steps(&[
        "functions",
        "upload",
        "fetch",
        fetch.to_str().expect("a UTF-8 path"),
    ]);
    // A deadline far past the gate's patience: only the server can end a held call.
    steps(&[
        "functions",
        "settings",
        "fetch",
        "--allowed-host",
        &gate.origin,
        "--timeout-ms",
        "300000",
    ]);
    let definition = serde_json::json!({ "name": "held", "steps": [
        { "id": "call", "type": "compute", "functionId": "fetch", "params": { "url": gate.url } } ] });
    let orchestration = steps(&["orchestrations", "create", &definition.to_string()]);
    let run = steps(&["runs", "start", orchestration["id"].as_str().expect("an id")]);
    run["id"].as_str().expect("a run id").to_owned()
}

/// The run once `trellis runs watch` saw it complete.
fn finished_run(data_dir: &Path, url: &str, run: &str) -> Value {
    let (ok, out, err) = cli(data_dir, url, &["runs", "watch", run]);
    assert!(ok, "the run did not complete:\n{out}{err}");
    let (ok, out, err) = cli_json(data_dir, url, &["runs", "get", run]);
    assert!(ok, "{err}");
    json(&out)
}

/// How `child` exited, failing the test if it has not within `patience`.
fn exit_status(child: &mut Child, patience: std::time::Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the process") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process did not exit within {patience:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A server with leases of `lease_ms` whose one run is inside a call held at a gate.
struct HeldCall {
    runtime: tokio::runtime::Runtime,
    gate: gate::Gate,
    data: tempfile::TempDir,
    logs: tempfile::TempDir,
    lease: [(&'static str, &'static str); 1],
    server: Serve,
    run: String,
}

impl HeldCall {
    fn start(lease_ms: &'static str) -> HeldCall {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let mut gate = runtime.block_on(gate::Gate::start());
        let data = tempfile::tempdir().expect("tempdir");
        let logs = tempfile::tempdir().expect("tempdir");
        let lease = [("TRELLIS_LEASE_MS", lease_ms)];
        let server = serve_with_env(data.path(), &logs.path().join("first.out"), &lease);
        let run = run_calling_the_gate(data.path(), &server.url, &gate);
        assert_eq!(runtime.block_on(gate.next()), gate::Event::Arrived);
        HeldCall {
            runtime,
            gate,
            data,
            logs,
            lease,
            server,
            run,
        }
    }

    fn next(&mut self) -> gate::Event {
        self.runtime.block_on(self.gate.next())
    }

    /// Starts the server again on the same data, once the first one has exited.
    fn restart(&self) -> Serve {
        serve_with_env(
            self.data.path(),
            &self.logs.path().join("second.out"),
            &self.lease,
        )
    }

    /// Releases the call and waits for the run to complete.
    fn finish(&self, server: &Serve) -> Value {
        self.gate.release();
        let finished = finished_run(self.data.path(), &server.url, &self.run);
        assert_eq!(finished["status"], "completed", "{finished}");
        finished
    }
}

/// SIGTERM while a step is in its call: `trellis serve` gives the call its grace
/// period, stops it, hands the run back and exits cleanly. Its leases are ten minutes
/// long, so only a run that was handed back is taken up again at once by the next
/// start, which then finishes it.
#[test]
fn sigterm_hands_runs_in_progress_back() {
    let mut held = HeldCall::start("600000");
    let terminated = Command::new("kill")
        .args(["-TERM", &held.server.child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(terminated.success());
    assert_eq!(
        held.next(),
        gate::Event::HungUp,
        "the call is stopped after the grace period"
    );
    let exited = exit_status(&mut held.server.child, std::time::Duration::from_secs(60));
    assert!(exited.success(), "serve exits cleanly on SIGTERM: {exited}");

    let server = held.restart();
    assert_eq!(
        held.next(),
        gate::Event::Arrived,
        "the run handed back is taken up again at once"
    );
    let finished = held.finish(&server);
    assert_eq!(
        finished["steps"][0]["attempts"], 2,
        "the stopped call, then the finished one"
    );
}

/// A crash on SQLite: `trellis serve` killed with SIGKILL during a call leaves its run
/// leased to a process that is gone. Started again, the server takes the run over once
/// the lease expires and calls the step again, as its second attempt.
#[test]
fn after_a_crash_on_sqlite_the_next_start_takes_the_run_over() {
    let mut held = HeldCall::start("2000");
    held.server.child.kill().expect("SIGKILL");
    held.server.child.wait().expect("waiting for serve");
    assert_eq!(held.next(), gate::Event::HungUp);

    let server = held.restart();
    assert_eq!(held.next(), gate::Event::Arrived, "taken over");
    let finished = held.finish(&server);
    assert_eq!(
        finished["steps"][0]["attempts"], 2,
        "the lost call, then the finished one"
    );
    assert_eq!(finished["steps"][0]["output"]["body"], "released");
}
