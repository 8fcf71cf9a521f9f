//! Checks for the files `docker compose up` and `kubectl apply` read,
//! runnable without Docker or a cluster.
//!
//! # Layout
//! - [`alloy`]: a parser for the Alloy configuration syntax, and the set of
//!   grafana-alloy/ files compose mounts, read from the compose files.
//! - [`kubernetes`]: the kustomize overlays rendered, and a container's
//!   environment resolved from them as the kubelet would.
//! - `tests/stack.rs`: the cross-checks between compose, Dockerfile, the
//!   Alloy files, the services' configuration and the docs.

pub mod alloy;
pub mod kubernetes;
