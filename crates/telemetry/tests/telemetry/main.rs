//! The telemetry crate against a real OTLP receiver, over gRPC and over
//! HTTP/protobuf: what a service emits must arrive, correctly shaped.

// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod helpers;
mod http_client;
mod http_server;
mod logs;
mod propagation;
mod resilience;
mod traces;
