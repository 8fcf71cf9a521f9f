//! Checks for the files `docker compose up` reads, runnable without Docker.
//!
//! # Layout
//! - [`alloy`]: a parser for config.alloy's syntax.
//! - `tests/stack.rs`: the cross-checks between compose, Dockerfile,
//!   config.alloy, the services' configuration and the docs.

pub mod alloy;

use std::path::PathBuf;

/// A file at the repository root.
pub fn repo_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

/// The text of a file at the repository root.
///
/// # Panics
/// When it cannot be read: the test cannot check what is not there.
pub fn read(name: &str) -> String {
    let path = repo_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
