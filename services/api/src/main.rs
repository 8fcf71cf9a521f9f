//! `api`: serve the HTTP API (default), apply migrations and exit, or check
//! a running one's health. `api --help` lists every setting.

use std::process::ExitCode;

/// mimalloc rather than the system allocator: spans and log records are built
/// on the request threads and freed on the exporters' threads, a pattern
/// glibc's malloc handles slowly (measured in docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    api::main(std::env::args_os()).await
}
