//! The `trellis` binary as a user runs it: `serve --preload-examples` on the embedded
//! default, a generated token printed once and stored 0600, and every `functions`
//! subcommand against that server.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

fn examples_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/target/wasm32-wasip2/release");
    assert!(
        dir.join("echo.wasm").exists(),
        "build the examples first: cargo build --release --target wasm32-wasip2 --manifest-path functions/Cargo.toml"
    );
    dir
}

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
        .arg(examples_dir())
        .env_remove("DATABASE_URL")
        .env_remove("TRELLIS_API_TOKEN")
        .env_remove("SECRET_KEYS")
        .env_remove("SECRET_KEYS_FILE")
        .env("RUST_LOG", "info")
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

    let (ok, out, err) = cli(data.path(), &server.url, &["functions", "list"]);
    assert!(ok, "{err}");
    let ids: Vec<_> = json(&out)
        .as_array()
        .expect("a list")
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids, ["digest", "echo", "evaluate-request"]);

    let request = r#"{"org":"acme","name":"payments-api"}"#;
    let (ok, out, err) = cli(
        data.path(),
        &server.url,
        &["functions", "invoke", "evaluate-request", request],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["output"]["decision"], "approve");

    let echo = examples_dir().join("echo.wasm");
    let echo = echo.to_str().expect("a UTF-8 path");
    let (ok, out, err) = cli(
        data.path(),
        &server.url,
        &["functions", "upload", "my-echo", echo],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["version"], 1);

    let (ok, out, err) = cli(
        data.path(),
        &server.url,
        &["functions", "settings", "my-echo", "--timeout-ms", "1500"],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out)["settings"]["timeoutMs"], 1500);

    let (ok, out, err) = cli(data.path(), &server.url, &["functions", "get", "my-echo"]);
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
    assert!(err.contains("params are not JSON"), "{err}");

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
    let run_cli = |args: &[&str]| cli(data.path(), &server.url, args);

    let definition = data.path().join("definition.json");
    std::fs::write(
        &definition,
        r#"{ "name": "provision", "steps": [
            { "id": "evaluate", "type": "compute", "functionId": "evaluate-request" },
            { "id": "gate", "type": "approval", "message": "Create it?" },
            { "id": "provision", "type": "compute", "functionId": "digest" } ] }"#,
    )
    .expect("writing the definition");
    let (ok, out, err) = run_cli(&["orchestrations", "create", &format!("@{}", definition.display())]);
    assert!(ok, "{err}");
    let orchestration = json(&out)["id"].as_str().expect("an id").to_owned();

    let input = r#"{"org":"acme","name":"payments-api"}"#;
    let (ok, out, err) = run_cli(&["runs", "start", &orchestration, input, "--wait"]);
    assert!(ok, "{err}");
    let run = json(&out);
    assert_eq!(run["status"], "waiting", "{run}");
    let run_id = run["id"].as_str().expect("an id").to_owned();
    assert_eq!(run["steps"][0]["output"]["decision"], "approve");

    let (ok, _, err) = run_cli(&["runs", "approve", &run_id, "gate", "--comment", "ship it"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run_cli(&["runs", "watch", &run_id]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["status"], "completed");
    assert!(err.contains("completed"), "watch reports the status: {err}");

    // A rejected run: watch says so and exits non-zero.
    let (ok, out, err) = run_cli(&["runs", "start", &orchestration, input, "--wait"]);
    assert!(ok, "{err}");
    let rejected = json(&out)["id"].as_str().expect("an id").to_owned();
    let (ok, _, err) = run_cli(&["runs", "reject", &rejected, "gate"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run_cli(&["runs", "watch", &rejected]);
    assert!(!ok, "watch fails for a failed run");
    assert!(err.contains("failed"), "{err}");

    let (ok, out, err) = run_cli(&["runs", "list", &orchestration]);
    assert!(ok, "{err}");
    assert_eq!(json(&out).as_array().expect("a list").len(), 2);
    let (ok, _, err) = run_cli(&["runs", "approve", &run_id, "gate"]);
    assert!(!ok, "a decided step cannot be decided again");
    assert!(err.contains("run_state_conflict"), "{err}");
}
