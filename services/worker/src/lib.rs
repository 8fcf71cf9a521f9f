//! The `worker` service. So far it runs its health server with telemetry set
//! up; its pipeline work builds on this.
//!
//! # Layout
//! - [`Config`]: settings read from the environment.
//! - [`run`]: serve the health routes until shutdown.

use std::net::SocketAddr;

use service_runtime::CancellationToken;
use service_runtime::env::{Env, EnvError};

/// `service.name` and `service.version` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

/// Settings of the `worker` service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of the health server (`WORKER_LISTEN_ADDR`, default `0.0.0.0:8001`).
    pub listen_addr: SocketAddr,
}

impl Config {
    /// Every variable this service reads itself (telemetry's are in
    /// [`telemetry::config::ENV_VARS`]).
    pub const ENV_VARS: &[&str] = &["WORKER_LISTEN_ADDR"];

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, EnvError> {
        Ok(Self {
            listen_addr: env.listen_addr("WORKER_LISTEN_ADDR", 8001)?,
        })
    }
}

/// Serves the health routes on `listener` until `shutdown` is cancelled.
pub async fn run(
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!("worker started");
    service_runtime::serve(listener, service_runtime::health_routes(), shutdown).await
}
