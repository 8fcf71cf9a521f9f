//! What every gamenight binary needs around its own work.
//!
//! # Layout
//! - [`config`]: the settings services share (PostgreSQL, RabbitMQ,
//!   retention, consumer settings), declared once as clap groups, secrets
//!   parsed with errors that name the variable and never echo the value.
//! - [`cli`]: a service's command line: its settings, the telemetry group,
//!   its subcommands; every option also set by its environment variable.
//!   [`cli::main`] is the body of a service's `main`.
//! - [`fault`]: fault switches, failures made on purpose to be seen.
//! - [`shutdown`]: one [`CancellationToken`] cancelled on SIGINT or SIGTERM.
//! - [`periodic`]: a background pass run on wake-up, on an interval, and
//!   with backoff while failing.
//! - [`serve`] and [`health_routes`]: an axum server that drains in-flight
//!   requests on shutdown, and the `/healthz` liveness probe.
//! - [`main`]: the body of every binary's `main`, so each states only its
//!   own work; [`healthcheck`]: the `healthcheck` subcommand for containers.

pub mod cli;
pub mod config;
pub mod fault;
mod healthcheck;
pub mod periodic;
pub mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
pub use healthcheck::healthcheck;
use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken;

/// `service.namespace` of every gamenight binary: Prometheus names their
/// jobs `gamenight/<service>`, and the dashboards and `check-telemetry`
/// select jobs by it.
pub const SERVICE_NAMESPACE: &str = "gamenight";

/// Runs a service: sets up telemetry as `config` says (the group its
/// command line parsed, see [`cli::main`]), runs `work` until it
/// returns (it should return once the token it is given is cancelled by
/// SIGINT/SIGTERM), then flushes telemetry.
///
/// A failure is logged, printed to stderr as one line with its causes, and
/// turned into exit code 1.
pub async fn main<F, Fut>(
    service: telemetry::Service,
    config: &telemetry::TelemetryConfig,
    work: F,
) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let telemetry = match telemetry::Telemetry::build(service, config)
        .and_then(telemetry::Telemetry::install)
    {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("{}: cannot set up telemetry: {err}", service.name);
            return ExitCode::FAILURE;
        }
    };
    let result = async {
        let shutdown = shutdown::on_signal().context("cannot install signal handlers")?;
        work(shutdown).await
    }
    .await;
    let code = match &result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{} stopped", service.name);
            eprintln!("{}: {err:#}", service.name);
            ExitCode::FAILURE
        }
    };
    // Last, so the error above and every span of the shutdown are exported.
    telemetry.shutdown().await;
    code
}

/// Binds a TCP listener, naming the address when that fails.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// `GET /healthz`: 200 while the process is alive and serving.
///
/// Merge these routes *after* adding tracing layers so probes, which arrive
/// every few seconds, neither create spans nor skew the request metrics.
pub fn health_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// How long one readiness check may take before its dependency counts as down.
const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs one readiness check; a check that takes longer than 2 s fails.
pub async fn check(check: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(READINESS_TIMEOUT, check)
        .await
        .unwrap_or(false)
}

/// The `/readyz` answer of a service that cannot serve without any of
/// `required` and serves, degraded, without any of `optional`:
///
/// ```json
/// {"status": "ready" | "degraded" | "unavailable",
///  "checks": {"<dependency>": "up" | "down", ...}}
/// ```
///
/// 503 only when a required dependency is down, so that an orchestrator
/// takes a replica out of rotation only when it cannot answer; 200 otherwise,
/// `degraded` telling that an optional one is down.
pub fn readiness(
    required: &[(&'static str, bool)],
    optional: &[(&'static str, bool)],
) -> (axum::http::StatusCode, axum::Json<Readiness>) {
    let up = |checks: &[(&'static str, bool)]| checks.iter().all(|(_, up)| *up);
    let (code, status) = if !up(required) {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if !up(optional) {
        (axum::http::StatusCode::OK, "degraded")
    } else {
        (axum::http::StatusCode::OK, "ready")
    };
    let checks = required
        .iter()
        .chain(optional)
        .map(|(name, up)| (*name, if *up { "up" } else { "down" }))
        .collect();
    (code, axum::Json(Readiness { status, checks }))
}

/// The body of a `/readyz` answer; see [`readiness`].
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    /// `ready`, `degraded` (an optional dependency is down) or `unavailable`
    /// (a required one is).
    pub status: &'static str,
    /// Each dependency, `up` or `down`.
    pub checks: std::collections::BTreeMap<&'static str, &'static str>,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting connections and waits for in-flight requests to finish.
///
/// Returns `Err` only when accepting connections fails.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_fails_only_for_a_required_dependency() {
        let (code, body) = readiness(&[("postgresql", true)], &[("redis", false)]);
        assert_eq!(code, 200);
        assert_eq!(body.status, "degraded");
        assert_eq!(body.checks["redis"], "down");
        assert_eq!(body.checks["postgresql"], "up");

        let (code, body) = readiness(&[("postgresql", false)], &[("redis", true)]);
        assert_eq!(code, 503);
        assert_eq!(body.status, "unavailable");

        let (code, body) = readiness(&[("rabbitmq", true)], &[]);
        assert_eq!(code, 200);
        assert_eq!(body.status, "ready");
    }

    #[tokio::test]
    async fn serve_answers_health_probes_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, health_routes(), shutdown.clone()));

        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");

        shutdown.cancel();
        server.await.unwrap().unwrap();
        assert!(
            reqwest::get(&url).await.is_err(),
            "still serving after shutdown"
        );
    }
}
