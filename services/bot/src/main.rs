//! `bot`: run the service (default), or check a running one's health.
//! `bot --help` lists every setting.

use std::process::ExitCode;

/// mimalloc rather than the system allocator: spans and log records are built
/// on the request threads and freed on the exporters' threads, a pattern
/// glibc's malloc handles slowly (measured in docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    bot::main(std::env::args_os()).await
}
