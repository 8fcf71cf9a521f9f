//! Claim, publish, mark: moving rows of a PostgreSQL table to RabbitMQ.
//!
//! The api's outbox relay and the worker's scheduler are both a [`Relay`]:
//! each names its table's SQL in a [`Table`] and says how a row becomes a
//! message by implementing [`Row`]. What the loop guarantees:
//!
//! - Claims are leases (`claimed_until`), taken in one short statement with
//!   `FOR UPDATE SKIP LOCKED`: replicas never claim the same row, and the rows
//!   of a process that died become claimable again when the lease ends.
//! - A pass publishes its batch in order on one channel (so RabbitMQ queues
//!   the messages in that order), then awaits the confirms together and
//!   marks each row by its own confirm: the rows RabbitMQ confirmed are
//!   marked published in one statement, whatever became of the others. A
//!   crash re-publishes at most the batch that was in flight (consumers
//!   dedupe).
//! - A broker that is away costs the rows nothing: the rows it did not
//!   confirm are released unchanged, the pass stops, and the caller retries
//!   soon after. Such a row then goes out after rows behind it that were
//!   confirmed.
//! - Only the message's own failures (no message can be made of the row, or
//!   RabbitMQ refuses it as unroutable) spend an attempt, of that row only;
//!   after `max_attempts` the row is set aside, counted, and never blocks
//!   the rows behind it.
//! - The claim, which every pass runs, is prepared once per connection:
//!   its cached plan reads the partial index of claimable rows in order,
//!   which stays right however the table grows. Every other statement is
//!   planned with its parameters each time it runs (unprepared). A mark
//!   names its rows by an array of ids whose length a cached plan cannot
//!   know, and PostgreSQL caches a sequential scan for it while the table
//!   is small, kept as the table grows until the next ANALYZE: the
//!   benchmark's pipeline measured 700 to 1,300 rows scanned per game that
//!   way on a fresh database. The others run rarely.
//!
//! # Layout
//! - [`Table`]: the SQL contract a table fulfils.
//! - [`Row`]: a claimed row and the message made of it.
//! - [`Relay`]: one pass ([`Relay::pass`]) and the loop around it ([`Relay::run`]).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use broker::Outgoing;
use broker::{Broker, BrokerError};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use sqlx::postgres::{PgHasArrayType, PgRow};
use sqlx::{PgPool, Postgres};
use telemetry::db::{DbClient, DbError as _};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The SQL of one table, each statement with the parameters named here.
///
/// Claimable rows are those not yet published, not set aside, and whose
/// `claimed_until` is null or past. Set-aside rows are kept for operators.
#[derive(Debug)]
pub struct Table {
    /// The table, for logs and the pass span (the statement spans read it
    /// from the SQL).
    pub name: &'static str,
    /// Claims up to `$1` claimable rows by setting `claimed_until` to now
    /// plus `$2` seconds, and returns them in publishing order.
    pub claim: &'static str,
    /// Marks the rows whose ids are in the array `$1` published and clears
    /// their claims.
    pub published: &'static str,
    /// Counts a failed attempt of row `$1` with the reason `$2`. Sets the row
    /// aside when its attempts reach `$3` (0: at once), otherwise makes it
    /// claimable again after a delay that grows with its attempts. Returns
    /// one boolean: whether the row was set aside.
    pub failed: &'static str,
    /// Clears the claims on the rows whose ids are in the array `$1`,
    /// changing nothing else.
    pub release: &'static str,
    /// Returns two counts: rows waiting to be published (due now), and rows
    /// set aside.
    pub counts: &'static str,
}

/// A claimed row.
pub trait Row: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {
    /// The primary key.
    type Id: for<'q> sqlx::Encode<'q, Postgres>
        + sqlx::Type<Postgres>
        + PgHasArrayType
        + Copy
        + Send
        + Sync
        + std::fmt::Display;

    /// This row's key.
    fn id(&self) -> Self::Id;

    /// The message for this row, or why there can never be one (the row is
    /// then set aside at once).
    fn message(&self) -> Result<Outgoing, String>;

    /// Attributes of this row's outcome on the relay's counter (e.g. the
    /// notification kind). Keep them low-cardinality.
    fn attributes(&self) -> Vec<KeyValue> {
        Vec::new()
    }
}

/// A [linger](Settings::linger) for a relay woken by every row written: at
/// most a hundred passes a second under load, for at most 10 ms more on the
/// way to RabbitMQ. At 200 rows a second it halves the claims and marks.
pub const LINGER: Duration = Duration::from_millis(10);

/// How a relay claims and retries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rows claimed per pass: published together, and at most this many
    /// re-published after a crash.
    pub batch: i64,
    /// How long a claim holds: longer than a pass takes, short enough that
    /// the rows of a dead process do not wait long.
    pub lease: Duration,
    /// Failed attempts (the message's own failures) before a row is set aside.
    pub max_attempts: u32,
    /// How often to look when not woken.
    pub interval: Duration,
    /// Least time from the start of one pass to the start of the next one
    /// a wake-up asks for: under load, the rows written meanwhile go out
    /// together, one claim and one mark for them all, for at most this much
    /// more latency; a row written after a quiet spell goes out at once. A
    /// backlog of full batches is passed through back to back.
    pub linger: Duration,
}

/// Why a pass stopped early. Neither spends an attempt of any row.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed. Displayed by its safe description (the error's
    /// own `Display` may name the server), as the loop logs it.
    #[error("database error {}: {}", .0.error_type(), .0.describe())]
    Database(#[from] sqlx::Error),
    /// RabbitMQ is away; the rows not yet published were released.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows published and marked.
    pub published: usize,
    /// Rows whose attempt failed, to be retried later.
    pub retried: usize,
    /// Rows set aside for good.
    pub set_aside: usize,
}

/// Moves the rows of one [`Table`] to one exchange.
#[derive(Debug)]
pub struct Relay<R> {
    table: &'static Table,
    pool: PgPool,
    db: DbClient,
    broker: Arc<Broker>,
    exchange: String,
    settings: Settings,
    wake: Arc<Notify>,
    pending: Arc<AtomicI64>,
    set_aside: Arc<AtomicI64>,
    last_count: Arc<Mutex<Option<Instant>>>,
    last_pass: Arc<Mutex<Option<Instant>>>,
    outcomes: Counter<u64>,
    _rows: PhantomData<fn() -> R>,
}

impl<R> Clone for Relay<R> {
    fn clone(&self) -> Self {
        Self {
            table: self.table,
            pool: self.pool.clone(),
            db: self.db.clone(),
            broker: self.broker.clone(),
            exchange: self.exchange.clone(),
            settings: self.settings.clone(),
            wake: self.wake.clone(),
            pending: self.pending.clone(),
            set_aside: self.set_aside.clone(),
            last_count: self.last_count.clone(),
            last_pass: self.last_pass.clone(),
            outcomes: self.outcomes.clone(),
            _rows: PhantomData,
        }
    }
}

impl<R: Row> Relay<R> {
    /// A relay of `table`'s rows to `exchange`, counting each row's outcome
    /// (`published`, `retry`, `set_aside`) on `outcomes`.
    pub fn new(
        table: &'static Table,
        pool: PgPool,
        db: DbClient,
        broker: Arc<Broker>,
        exchange: String,
        settings: Settings,
        outcomes: Counter<u64>,
    ) -> Self {
        Self {
            table,
            pool,
            db,
            broker,
            exchange,
            settings,
            wake: Arc::new(Notify::new()),
            pending: Arc::new(AtomicI64::new(0)),
            set_aside: Arc::new(AtomicI64::new(0)),
            last_count: Arc::new(Mutex::new(None)),
            last_pass: Arc::new(Mutex::new(None)),
            outcomes,
            _rows: PhantomData,
        }
    }

    /// Wakes the loop: rows may be waiting now.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Rows waiting as of the last count, for a gauge.
    pub fn pending(&self) -> Arc<AtomicI64> {
        self.pending.clone()
    }

    /// Rows set aside as of the last count, for a gauge.
    pub fn set_aside(&self) -> Arc<AtomicI64> {
        self.set_aside.clone()
    }

    /// Counts waiting and set-aside rows and updates the gauges; returns the
    /// waiting ones.
    ///
    /// Deliberately untraced: it runs on every poll, and a span per poll
    /// would bury the traces that matter under thousands of empty ones.
    pub async fn refresh_counts(&self) -> Result<i64, sqlx::Error> {
        let (pending, set_aside): (i64, i64) = sqlx::query_as(self.table.counts)
            .persistent(false)
            .fetch_one(&self.pool)
            .await?;
        self.pending.store(pending, Ordering::Relaxed);
        self.set_aside.store(set_aside, Ordering::Relaxed);
        Ok(pending)
    }

    /// Claims one batch, publishes it in order, and marks each row by its
    /// own confirm.
    ///
    /// Returns `Err` when PostgreSQL or RabbitMQ failed; the rows RabbitMQ
    /// did not confirm are then left unchanged (released, or claimed until
    /// the lease ends if PostgreSQL is gone too).
    #[tracing::instrument(skip(self), fields(table = self.table.name, published = tracing::field::Empty))]
    pub async fn pass(&self) -> Result<Pass, RelayError> {
        *self
            .last_pass
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let table = self.table;
        let claimed: Vec<R> = self
            .db
            .run(
                table.claim,
                sqlx::query_as(table.claim)
                    .bind(self.settings.batch)
                    .bind(self.settings.lease.as_secs_f64())
                    .fetch_all(&self.pool),
            )
            .await?;
        let mut pass = Pass {
            claimed: claimed.len(),
            ..Pass::default()
        };
        let mut rows = Vec::with_capacity(claimed.len());
        let mut messages = Vec::with_capacity(claimed.len());
        for row in claimed {
            match row.message() {
                Ok(message) => {
                    rows.push(row);
                    messages.push(message);
                }
                Err(reason) => self.failed(&row, &reason, 0, &mut pass).await?,
            }
        }
        let results = self.broker.publish_batch(&self.exchange, messages).await;

        let mut confirmed = Vec::new();
        let mut refused = Vec::new();
        let mut unconfirmed = Vec::new();
        let mut broker_away = None;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => confirmed.push(row),
                Err(err) if err.is_message_fault() => refused.push((row, err)),
                Err(err) => {
                    unconfirmed.push(row.id());
                    broker_away.get_or_insert(err);
                }
            }
        }
        // Marked first: these messages are in RabbitMQ whatever comes next.
        if !confirmed.is_empty() {
            let ids = confirmed.iter().map(|row| row.id()).collect();
            self.mark(table.published, ids).await?;
            for row in &confirmed {
                self.count(row, "published");
            }
            pass.published = confirmed.len();
        }
        let max_attempts = i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX);
        for (row, err) in refused {
            self.failed(row, &err.to_string(), max_attempts, &mut pass)
                .await?;
        }
        tracing::Span::current().record("published", pass.published);
        if let Some(err) = broker_away {
            // The broker is away, not the messages at fault: hand the rows
            // it did not confirm back as they were.
            self.mark(table.release, unconfirmed).await?;
            return Err(err.into());
        }
        Ok(pass)
    }

    /// Runs `sql` (published or release) on the rows `ids`.
    async fn mark(&self, sql: &'static str, ids: Vec<R::Id>) -> Result<(), sqlx::Error> {
        let query = sqlx::query(sql).persistent(false).bind(ids);
        self.db.run(sql, query.execute(&self.pool)).await?;
        Ok(())
    }

    /// Counts a failed attempt of `row`; `max_attempts` 0 sets it aside now.
    async fn failed(
        &self,
        row: &R,
        reason: &str,
        max_attempts: i32,
        pass: &mut Pass,
    ) -> Result<(), sqlx::Error> {
        let table = self.table;
        let (set_aside,): (bool,) = self
            .db
            .run(
                table.failed,
                sqlx::query_as(table.failed)
                    .persistent(false)
                    .bind(row.id())
                    .bind(reason)
                    .bind(max_attempts)
                    .fetch_one(&self.pool),
            )
            .await?;
        if set_aside {
            tracing::error!(table = table.name, id = %row.id(), reason, "set aside: it will not be published without an operator");
            self.count(row, "set_aside");
            pass.set_aside += 1;
        } else {
            tracing::warn!(table = table.name, id = %row.id(), reason, "publish failed; retrying later");
            self.count(row, "retry");
            pass.retried += 1;
        }
        Ok(())
    }

    fn count(&self, row: &R, outcome: &'static str) {
        let mut attributes = row.attributes();
        attributes.push(KeyValue::new("outcome", outcome));
        self.outcomes.add(1, &attributes);
    }

    /// Publishes until `shutdown` is cancelled: whenever woken, every
    /// `interval` otherwise, and soon again while PostgreSQL or RabbitMQ are
    /// away. On shutdown it makes one last pass, so rows of the final
    /// requests go out before the process exits.
    pub async fn run(self, shutdown: CancellationToken) {
        let what = format!("{} relay (rows stay pending)", self.table.name);
        service_runtime::periodic::run(
            &what,
            &self.wake,
            self.settings.interval,
            &shutdown,
            || self.drain(&shutdown),
        )
        .await;
        if let Err(err) = self.pass().await {
            tracing::warn!(error = %err, table = self.table.name, "final pass failed; pending rows go out on next start");
        }
    }

    /// Passes until nothing claimable is left, or until `shutdown` (a
    /// backlog must not hold the process past its grace period: the rows
    /// stay pending for the next start or another replica). The first pass
    /// waits out the [linger](Settings::linger) since the last one began.
    ///
    /// The waiting rows are counted (for the gauges) at most once an
    /// interval, and a count of none ends the call there: an idle poll is
    /// that count alone, untraced. Between counts it passes at once, as a
    /// wake-up means rows were written; a batch that comes back short took
    /// everything claimable, and rows written since have woken it again.
    pub async fn drain(&self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        if self.count_due() && self.refresh_counts().await? == 0 {
            return Ok(());
        }
        let last_pass = *self
            .last_pass
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = last_pass {
            tokio::select! {
                () = tokio::time::sleep_until((last + self.settings.linger).into()) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
        let batch = usize::try_from(self.settings.batch).unwrap_or(usize::MAX);
        while !shutdown.is_cancelled() {
            if self.pass().await?.claimed < batch {
                break;
            }
        }
        Ok(())
    }

    /// Whether an interval has passed since the last count; if so, the
    /// count about to be made is noted as the last.
    fn count_due(&self) -> bool {
        let mut last = self
            .last_count
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= self.settings.interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}
