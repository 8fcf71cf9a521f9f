//! Checks for the files `docker compose up` reads, runnable without Docker.
//!
//! # Layout
//! - [`alloy`]: a parser for the Alloy configuration syntax, and the set of
//!   grafana-alloy/ files compose mounts, read from the compose files.
//! - `tests/stack.rs`: the cross-checks between compose, Dockerfile, the
//!   Alloy files, the services' configuration and the docs.

pub mod alloy;
