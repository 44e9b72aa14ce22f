//! Helpers shared by the integration tests: fresh databases ([`db`]) for both
//! backends, the real server on loopback ([`server`]), and the compiled example and
//! hostile functions ([`examples`]).

pub mod auth_proxy;
pub mod db;
pub mod examples;
pub mod gate;
pub mod logs;
pub mod mock_github;
pub mod search;
pub mod server;
pub mod tools;

pub use examples::component;
pub use server::{Backend, Options, Stopped, TOKEN, TestServer, keyring_json};

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
