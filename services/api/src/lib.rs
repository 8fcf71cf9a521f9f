//! The `api` service: the HTTP API of gamenight.
//!
//! So far it serves `GET /` (which service and version answer) and
//! `GET /healthz`, with every request but the probe traced and measured; the
//! game endpoints build on this.
//!
//! # Layout
//! - [`Config`]: settings read from the environment.
//! - [`app`]: the router, which tests drive directly.
//! - [`run`]: serve until shutdown.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use service_runtime::CancellationToken;
use service_runtime::env::{Env, EnvError};
use telemetry::http_server::HttpServerLayer;

/// `service.name` and `service.version` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

/// Settings of the `api` service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP server binds (`API_LISTEN_ADDR`, default `0.0.0.0:8000`).
    pub listen_addr: SocketAddr,
}

impl Config {
    /// Every variable this service reads itself (telemetry's are in
    /// [`telemetry::config::ENV_VARS`]).
    pub const ENV_VARS: &[&str] = &["API_LISTEN_ADDR"];

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, EnvError> {
        Ok(Self {
            listen_addr: env.listen_addr("API_LISTEN_ADDR", 8000)?,
        })
    }
}

/// What `GET /` answers.
#[derive(Debug, Serialize)]
struct Index {
    service: &'static str,
    version: &'static str,
}

async fn index() -> Json<Index> {
    tracing::info!("index requested");
    Json(Index {
        service: SERVICE.name,
        version: SERVICE.version,
    })
}

/// The router: traced routes first, then the untraced health probe.
pub fn app() -> Router {
    let meter = opentelemetry::global::meter(SERVICE.name);
    Router::new()
        .route("/", get(index))
        .layer(HttpServerLayer::new(&meter))
        .merge(service_runtime::health_routes())
}

/// Serves [`app`] on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    service_runtime::serve(listener, app(), shutdown).await
}
