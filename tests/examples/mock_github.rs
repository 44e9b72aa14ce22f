//! A mock GitHub for trying the provision-repo orchestration without a GitHub App:
//! `cargo run -p trellis-tests --example mock_github` serves, on 127.0.0.1:8099 (or
//! the address given as the first argument), the two endpoints `create-github-repo`
//! calls, checking the app JWT against the test key pair in `tests/fixtures/`
//! (app id 123456, installation 987), until Ctrl-C.

#[tokio::main]
async fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8099".into());
    let github = trellis_tests::mock_github::MockGitHub::start_on(&address, "123456", "987").await;
    println!(
        "mock GitHub at {} (app id 123456, installation 987; key tests/fixtures/github-app-pkcs1.pem)",
        github.url
    );
    let _ = tokio::signal::ctrl_c().await;
    for call in github.calls() {
        println!("{call}");
    }
}
