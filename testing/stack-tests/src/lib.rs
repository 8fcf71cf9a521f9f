//! Checks for the files `docker compose up` reads, runnable without Docker.
//!
//! # Layout
//! - [`alloy`]: a parser for config.alloy's syntax.
//! - `tests/stack.rs`: the cross-checks between compose, Dockerfile,
//!   config.alloy, the services' configuration and the docs.

pub mod alloy;
