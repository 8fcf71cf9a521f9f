//! The `api` service: game nights over PostgreSQL, Redis and RabbitMQ.
//!
//! # Layout
//! - [`config`]: the command line: settings, each also set by its
//!   environment variable, and subcommands.
//! - [`domain`]: validated values and the game and participant types.
//! - [`store`]: games in PostgreSQL; every change writes its event to the
//!   [`outbox`] in the same transaction.
//! - [`outbox`]: the outbox and the relay that publishes it to RabbitMQ.
//! - [`cache`]: cache-aside for single games in Redis.
//! - [`faults`]: the CPU-burn fault switch (the others act in [`store`]
//!   and [`outbox`]).
//! - `routes`, `error`, `extract`: the HTTP surface and its problem+json errors.
//! - [`docs`]: the docs page, Swagger UI built into the binary.
//! - [`App`]: everything wired together; [`App::router`] is what tests drive.

pub mod cache;
pub mod config;
pub mod docs;
pub mod domain;
mod error;
mod extract;
pub mod faults;
pub mod outbox;
mod routes;
pub mod store;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use broker::Broker;
use opentelemetry::metrics::{Counter, Meter, ObservableGauge};
use secrecy::ExposeSecret;
use service_runtime::CancellationToken;
use telemetry::http_server::HttpServerLayer;
use tower_http::timeout::TimeoutLayer;

pub use config::Config;
pub use domain::Game;
pub use routes::GamePage;

/// `service.name`, `service.version` and `service.namespace` of this binary.
pub const SERVICE: telemetry::Service =
    telemetry::Service::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .with_namespace(service_runtime::SERVICE_NAMESPACE);

pub use schema::MIGRATOR;

/// Where the OpenAPI document is served.
const OPENAPI_PATH: &str = "/openapi.json";

/// Largest request body accepted; game requests are a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest a request may take before it is answered 408, so that draining on
/// shutdown cannot hang on a stuck request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `REDIS_URL` could not be used.
    #[error(transparent)]
    InvalidRedisUrl(#[from] cache::InvalidRedisUrl),
    /// `RABBITMQ_URL` could not be used.
    #[error(transparent)]
    InvalidRabbitMqUrl(#[from] broker::BrokerError),
    /// Applying migrations failed.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The server failed.
    #[error("server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// The business metrics of the api.
#[derive(Debug, Clone)]
struct Metrics {
    games_created: Counter<u64>,
    participants_joined: Counter<u64>,
    /// Kept so the gauge stays registered for the life of the app.
    _outbox_backlog: ObservableGauge<i64>,
    _outbox_set_aside: ObservableGauge<i64>,
}

/// What every handler can reach.
#[derive(Debug, Clone)]
struct AppState {
    store: store::Store,
    cache: cache::Cache,
    relay: outbox::Relay,
    broker: Arc<Broker>,
    metrics: Metrics,
    /// `FAULT_CPU_BURN_PERCENT`, when set.
    cpu_burn: Option<faults::CpuBurn>,
}

impl AppState {
    /// After a committed change to game `id`: drop its cached copy and wake
    /// the relay for the event just written.
    async fn changed(&self, id: uuid::Uuid) {
        self.cache.invalidate(id).await;
        self.relay.notify();
    }
}

/// The api, wired but not yet serving.
#[derive(Debug)]
pub struct App {
    state: AppState,
    retention: schema::retention::Retention,
}

impl App {
    /// Wires the app from `config`, registering metrics on `meter`.
    /// Connects lazily: no server needs to be up yet.
    pub fn new(config: &Config, meter: &Meter) -> Result<Self, StartError> {
        let (pool, db) = schema::connect_lazy(
            config.database.database_url.expose_secret(),
            config.database.database_pool_size,
            meter,
        );
        let store = store::Store::new(pool.clone(), db.clone(), config.faults.clone());
        let cache = cache::Cache::new(
            &config.redis_url.to_secret_string(),
            config.redis_key_prefix.clone(),
            config.cache_ttl,
            meter,
        )?;
        let broker = Arc::new(Broker::new(
            config.rabbitmq.rabbitmq_url.to_secret_string(),
            broker::Topology {
                exchanges: vec![config.events_exchange.clone()],
                queues: Vec::new(),
            },
            meter,
        )?);
        let retention = schema::retention::Retention::new(
            pool.clone(),
            db.clone(),
            &[schema::retention::OUTBOX],
            config.retention.retention,
        );
        let relay = outbox::relay(
            pool,
            db,
            broker.clone(),
            config.events_exchange.clone(),
            config.outbox_poll_interval,
            meter,
        );
        let (backlog, set_aside) = (relay.pending(), relay.set_aside());
        let metrics = Metrics {
            games_created: meter
                .u64_counter("gamenight.games.created")
                .with_unit("{game}")
                .with_description("Game nights scheduled.")
                .build(),
            participants_joined: meter
                .u64_counter("gamenight.participants.joined")
                .with_unit("{player}")
                .with_description("Seats taken at game nights.")
                .build(),
            _outbox_backlog: meter
                .i64_observable_gauge("gamenight.outbox.backlog")
                .with_unit("{event}")
                .with_description("Domain events written but not yet confirmed by RabbitMQ.")
                .with_callback(move |gauge| gauge.observe(backlog.load(Ordering::Relaxed), &[]))
                .build(),
            _outbox_set_aside: meter
                .i64_observable_gauge("gamenight.outbox.set_aside")
                .with_unit("{event}")
                .with_description(
                    "Domain events RabbitMQ kept refusing, set aside for an operator.",
                )
                .with_callback(move |gauge| gauge.observe(set_aside.load(Ordering::Relaxed), &[]))
                .build(),
        };
        Ok(Self {
            state: AppState {
                store,
                cache,
                relay,
                broker,
                metrics,
                cpu_burn: faults::CpuBurn::new(&config.faults),
            },
            retention,
        })
    }

    /// Applies pending migrations. Safe with several replicas starting at
    /// once: sqlx holds a PostgreSQL advisory lock while migrating.
    pub async fn migrate(&self) -> Result<(), StartError> {
        MIGRATOR.run(self.state.store.pool()).await?;
        Ok(())
    }

    /// The outbox relay, for tests that drive it by hand.
    pub fn relay(&self) -> &outbox::Relay {
        &self.state.relay
    }

    /// The router: the game routes traced and measured, then the untraced
    /// probes, the OpenAPI document and its docs page.
    pub fn router(&self, meter: &Meter) -> Router {
        // Game ids are generated UUIDs; a player's name stays `{player}`.
        let http = HttpServerLayer::new(meter).exporting_params(&["id"]);
        self.router_instrumented(|games| games.layer(http))
    }

    /// [`App::router`] with the game routes instrumented by `instrument`
    /// instead of this crate's [`HttpServerLayer`]: the benchmark serves
    /// the same handlers under other set-ups to compare their cost.
    pub fn router_instrumented(&self, instrument: impl FnOnce(Router) -> Router) -> Router {
        let (games, openapi) = routes::router().split_for_parts();
        let games = games
            .fallback(error::not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.state.clone());
        instrument(games)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ))
            .merge(service_runtime::health_routes())
            .route("/readyz", get(readyz).with_state(self.state.clone()))
            .route(OPENAPI_PATH, get(move || async move { Json(openapi) }))
            .merge(docs::router(OPENAPI_PATH))
    }

    /// Serves on `listener` until `shutdown` is cancelled, with the outbox
    /// relay and the retention sweep of published events running beside it;
    /// then drains in-flight requests and lets the
    /// relay publish what they wrote.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        meter: &Meter,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let router = self.router(meter);
        self.serve_router(listener, router, shutdown).await
    }

    /// [`App::serve`] with `router`, one of [`App::router_instrumented`].
    pub async fn serve_router(
        self,
        listener: tokio::net::TcpListener,
        router: Router,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(self.state.relay.clone().run(relay_stop.clone()));
        let retention = tokio::spawn(self.retention.clone().run(shutdown.clone()));
        let served = service_runtime::serve(listener, router, shutdown).await;
        if let Err(err) = retention.await {
            tracing::error!(error = %err, "retention task failed");
        }
        relay_stop.cancel();
        if let Err(err) = relay.await {
            tracing::error!(error = %err, "outbox relay task failed");
        }
        Ok(served?)
    }
}

/// 200 while PostgreSQL answers, `degraded` when Redis or RabbitMQ does not:
/// reads then skip the cache and events wait in the outbox. 503 naming
/// PostgreSQL when it is down, as nothing can be served without it.
async fn readyz(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    use service_runtime::check;
    let (postgresql, redis, rabbitmq) = tokio::join!(
        check(schema::is_ready(state.store.pool())),
        check(state.cache.is_ready()),
        check(state.broker.is_ready()),
    );
    let optional = [("redis", redis), ("rabbitmq", rabbitmq)];
    // A cache turned off on purpose is not a degradation.
    let optional = if state.cache.is_enabled() {
        &optional[..]
    } else {
        &optional[1..]
    };
    service_runtime::readiness(&[("postgresql", postgresql)], optional)
}

/// `api [migrate | healthcheck]`, as `args` (the binary's name first) and
/// the environment say: the body of the binary's `main`, and of `demo
/// service api`. Exits 2, naming the variable, on bad configuration.
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    use service_runtime::cli::Task;
    service_runtime::cli::main(SERVICE, config::ABOUT, args, run, |command| match command {
        config::Command::Migrate(migrate) if migrate.wait => {
            Task::Work(Box::pin(wait_for_migrations(migrate.database)))
        }
        config::Command::Migrate(migrate) => Task::Work(Box::pin(self::migrate(migrate.database))),
        config::Command::Healthcheck(listen) => Task::Healthcheck(listen.addr),
    })
    .await
}

/// Serves the api as `config` says until `shutdown`, applying pending
/// migrations first unless `API_MIGRATE_ON_START=false`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let meter = opentelemetry::global::meter(SERVICE.name);
    let app = App::new(&config, &meter)?;
    if config.migrate_on_start {
        app.migrate().await?;
    }
    let listener = service_runtime::bind(config.listen.addr).await?;
    Ok(app.serve(listener, &meter, shutdown).await?)
}

/// How often `api migrate --wait` asks again.
const MIGRATIONS_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns once `DATABASE_URL` has every migration this binary knows
/// applied; applies nothing. While PostgreSQL is unreachable or migrations
/// are pending it says so and asks again every 2 s, without end: the
/// caller (an init container) decides how long is too long.
pub async fn wait_for_migrations(
    database: service_runtime::config::DatabaseConfig,
) -> anyhow::Result<()> {
    let meter = opentelemetry::global::meter(SERVICE.name);
    let (pool, _) = schema::connect_lazy(database.database_url.expose_secret(), 1, &meter);
    loop {
        match schema::pending_migrations(&pool).await {
            Ok(pending) if pending.is_empty() => break,
            Ok(pending) => tracing::info!(?pending, "waiting for migrations to be applied"),
            Err(err) => tracing::warn!(error = %err, "cannot read the migrations applied"),
        }
        tokio::time::sleep(MIGRATIONS_POLL).await;
    }
    tracing::info!("every migration is applied");
    Ok(())
}

/// Applies pending migrations to `DATABASE_URL`, and returns.
pub async fn migrate(database: service_runtime::config::DatabaseConfig) -> anyhow::Result<()> {
    let meter = opentelemetry::global::meter(SERVICE.name);
    // Migrations run on one connection.
    let (pool, _) = schema::connect_lazy(database.database_url.expose_secret(), 1, &meter);
    MIGRATOR.run(&pool).await?;
    tracing::info!("migrations applied");
    Ok(())
}
