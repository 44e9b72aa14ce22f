//! Trellis: a WebAssembly function host with durable orchestrations.
//!
//! Where a request goes: [`api`] (HTTP edge) → [`functions`] (the capability) →
//! [`runtime`] (wasmtime) and [`store`] (SQLite or PostgreSQL); [`orchestrations`]
//! holds definitions and their secrets ([`secrets`]), [`engine`] the pieces that run
//! them. [`cli`] is the command line; [`server`] wires the pieces together.

pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod functions;
pub mod json;
pub mod logging;
pub mod mcp;
pub mod orchestrations;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod store;
