//! The three services as users run them, end to end: child processes against
//! real PostgreSQL, Redis and RabbitMQ, a stand-in for Discord, and an OTLP
//! receiver that sees everything they export.

// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod faults;
mod helpers;
mod kubernetes;
mod leaks;
mod metrics;
mod pipeline;
mod sampling;
mod trace;
