//! The telemetry crate against a real OTLP receiver, over gRPC and over
//! HTTP/protobuf: what a service emits must arrive, correctly shaped.

// Every test runs over each transport compiled in; with none, there is
// nothing to export to.
#![cfg(any(feature = "grpc", feature = "http-proto"))]
// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod helpers;
#[cfg(feature = "reqwest")]
mod http_client;
#[cfg(feature = "axum")]
mod http_server;
mod logs;
mod resilience;
mod traces;
