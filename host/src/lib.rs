//! Trellis: a WebAssembly function host with durable orchestrations.
//!
//! Where a request goes: [`api`] (the HTTP edge; the [`mcp`] tools and the [`cli`]'s
//! resource commands are clients of it) → the service of the same name
//! ([`functions`], [`orchestrations`], [`runs`]) → [`store`] (SQLite or PostgreSQL),
//! and for functions [`runtime`] (wasmtime). The edge talks to services only.
//! [`engine`] executes what [`runs`] starts, calling [`functions`] for each compute
//! step. [`secrets`] holds everything that touches secret material: the crypto, the
//! sealing rules the orchestrations service applies, the step input the engine hands
//! a function, and key rotation (`trellis keys`). [`server`] wires the pieces
//! together.

pub mod api;
mod cache;
pub mod cli;
pub mod config;
pub mod engine;
pub mod functions;
pub mod json;
pub mod logging;
pub mod mcp;
pub mod orchestrations;
pub mod runs;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod store;
