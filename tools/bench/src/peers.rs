//! The peers of mode `peers`: the api's own handlers (`api::App`) served
//! under the usual ways to instrument an axum service instead of the
//! telemetry crate, each set up as its documentation shows:
//!
//! - `tower-http`: `tower_http::trace::TraceLayer` and the
//!   `tracing-opentelemetry` layer over an SDK tracer provider with the
//!   OTLP/HTTP span exporter, batched;
//! - `axum-otel`: `axum_tracing_opentelemetry::middleware::OtelAxumLayer`
//!   with `init_tracing_opentelemetry::TracingConfig::production()`.
//!
//! Both export spans only, to `OTEL_EXPORTER_OTLP_ENDPOINT`, and record no
//! metrics (their meter is the no-op global one). Run as `bench service
//! peer <tower-http|axum-otel>`, with the api's variables; ready once it
//! prints `{"message":"listening","addr":…}`, as the api logs.

use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// A peer set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Peer {
    TowerHttp,
    AxumOtel,
}

impl Peer {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::TowerHttp => "tower-http",
            Self::AxumOtel => "axum-otel",
        }
    }

    /// Installs the peer's tracing subscriber and tracer provider; what is
    /// returned flushes and shuts them down.
    fn init(self) -> anyhow::Result<Installed> {
        match self {
            Self::TowerHttp => {
                // tracing-opentelemetry's and opentelemetry-otlp's examples.
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()
                    .context("cannot build the span exporter")?;
                let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_resource(opentelemetry_sdk::Resource::builder().build())
                    .with_batch_exporter(exporter)
                    .build();
                opentelemetry::global::set_tracer_provider(provider.clone());
                tracing_subscriber::registry()
                    .with(tracing_subscriber::EnvFilter::new("info"))
                    .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("api")))
                    .try_init()?;
                Ok(Installed::Provider(provider))
            }
            Self::AxumOtel => Ok(Installed::Guard(
                init_tracing_opentelemetry::TracingConfig::production().init_subscriber()?,
            )),
        }
    }

    /// The game routes instrumented as the peer's documentation shows.
    fn instrument(self, games: axum::Router) -> axum::Router {
        match self {
            // The span's level raised from DEBUG, which the usual `info`
            // filter would drop with every span.
            Self::TowerHttp => games.layer(
                tower_http::trace::TraceLayer::new_for_http().make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
                ),
            ),
            Self::AxumOtel => {
                games.layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
            }
        }
    }
}

/// What a peer installed, kept until the end.
enum Installed {
    Provider(opentelemetry_sdk::trace::SdkTracerProvider),
    Guard(init_tracing_opentelemetry::Guard),
}

impl Installed {
    /// Exports what is left, as each peer's documentation does at exit.
    fn shutdown(self) {
        match self {
            Self::Provider(provider) => {
                if let Err(err) = provider.shutdown() {
                    eprintln!("peer: tracer provider shutdown: {err}");
                }
            }
            Self::Guard(guard) => drop(guard),
        }
    }
}

/// `bench service peer <name>`: `Some` with the exit code when asked.
pub(crate) async fn service_if_asked() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, peer, name] = args.as_slice() else {
        return None;
    };
    if command != "service" || peer != "peer" {
        return None;
    }
    let Ok(peer) = Peer::from_str(name, false) else {
        eprintln!("usage: bench service peer <tower-http|axum-otel>");
        return Some(ExitCode::from(2));
    };
    Some(match serve(peer).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("peer {}: {err:#}", peer.name());
            ExitCode::FAILURE
        }
    })
}

/// Serves the api's routes under `peer` until SIGTERM.
async fn serve(peer: Peer) -> anyhow::Result<()> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let config: api::Config =
        service_runtime::cli::from_vars(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let shutdown = service_runtime::shutdown::on_signal()?;
    let installed = peer.init()?;
    let meter = opentelemetry::global::meter("api");
    let app = api::App::new(&config, &meter)?;
    app.migrate().await?;
    let listener = service_runtime::bind(config.listen.addr).await?;
    let router = app.router_instrumented(|games| peer.instrument(games));
    // The line the bench waits for, as the api logs it.
    println!(
        "{}",
        serde_json::json!({ "message": "listening", "addr": listener.local_addr()?.to_string() })
    );
    let served = app.serve_router(listener, router, shutdown).await;
    installed.shutdown();
    Ok(served?)
}
