//! Helpers shared by the integration tests: fresh databases ([`db`]) for both
//! backends, the real server on loopback ([`server`]), and the compiled example and
//! hostile functions ([`component`]).

pub mod auth_proxy;
pub mod db;
pub mod logs;
pub mod mock_github;
pub mod search;
pub mod server;
pub mod tools;

pub use server::{Backend, Options, Stopped, TOKEN, TestServer, keyring_json};

/// Where `build.rs` put the components built from `functions/`.
pub const FUNCTIONS_DIR: &str = env!("TRELLIS_FUNCTIONS_DIR");

/// The bytes of the component built from `functions/<name>`.
pub fn component(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(FUNCTIONS_DIR).join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// Runs an `async fn(Backend)` test once per backend: `mod sqlite { … }` and
/// `mod postgres { … }`, one `#[tokio::test]` each.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Backend::Postgres).await
                }
            )*
        }
    };
}
