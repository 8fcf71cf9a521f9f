//! Games in PostgreSQL. Every change runs in one transaction that also writes
//! its domain event to the outbox, so an event exists if and only if its
//! change was committed.

use chrono::{DateTime, Utc};
use events::{Envelope, GameEvent};
use service_runtime::fault::Delay;
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::{DbClient, DbError as _};
use uuid::Uuid;

use crate::config::Faults;
use crate::domain::{Game, GameStatus, NewGame, PlayerName};
use crate::outbox;

/// Why a change to a game was refused.
#[derive(Debug, thiserror::Error)]
pub enum GameError {
    /// No game has that id.
    #[error("game not found")]
    GameNotFound,
    /// The game has no such participant.
    #[error("participant not found")]
    ParticipantNotFound,
    /// Every seat is taken.
    #[error("the game is full")]
    Full,
    /// The player already holds a seat.
    #[error("the player has already joined")]
    AlreadyJoined,
    /// The game was cancelled or played, so it no longer changes.
    #[error("the game is {}", .0.as_str())]
    NotScheduled(GameStatus),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A transaction on a pooled connection.
type Tx = Transaction<'static, Postgres>;

/// Keyset position of a game in the list order `(scheduled_at, id)`.
pub type Position = (DateTime<Utc>, Uuid);

/// The games table and its neighbours.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    db: DbClient,
    faults: Faults,
}

/// A game with its players as one row; each query appends its own filter.
macro_rules! select_games {
    () => {
        "SELECT g.id, g.title, g.host, g.scheduled_at, g.max_players, g.reminder_minutes, \
         g.status, g.created_at, g.updated_at, \
         COALESCE(array_agg(p.player ORDER BY p.joined_at, p.player) \
                  FILTER (WHERE p.player IS NOT NULL), '{}') AS players \
         FROM games g LEFT JOIN participants p ON p.game_id = g.id "
    };
}

const SELECT_GAME: &str = concat!(select_games!(), "WHERE g.id = $1 GROUP BY g.id");
const LIST_GAMES: &str = concat!(
    select_games!(),
    "WHERE ($1::text IS NULL OR g.status = $1) \
     AND ($2::timestamptz IS NULL OR (g.scheduled_at, g.id) > ($2, $3)) \
     GROUP BY g.id ORDER BY g.scheduled_at, g.id LIMIT $4"
);
/// Returns the new game as [`SELECT_GAME`] would, with no players yet:
/// one round trip fewer than reading it back.
const INSERT_GAME: &str = "INSERT INTO games (id, title, host, scheduled_at, max_players, reminder_minutes) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, title, host, scheduled_at, max_players, \
     reminder_minutes, status, created_at, updated_at, '{}'::text[] AS players";
const LOCK_GAME: &str = "SELECT status, max_players FROM games WHERE id = $1 FOR UPDATE";
const COUNT_PLAYERS: &str = "SELECT count(*) FROM participants WHERE game_id = $1";
const INSERT_PLAYER: &str =
    "INSERT INTO participants (game_id, player) VALUES ($1, $2) ON CONFLICT DO NOTHING";
const DELETE_PLAYER: &str = "DELETE FROM participants WHERE game_id = $1 AND player = $2";
const TOUCH_GAME: &str = "UPDATE games SET updated_at = now() WHERE id = $1";
const CANCEL_GAME: &str = "UPDATE games SET status = 'cancelled', updated_at = now() WHERE id = $1";

impl Store {
    /// A store over `pool`, tracing every call through `db`, with the
    /// fault switches of `faults`.
    pub fn new(pool: PgPool, db: DbClient, faults: Faults) -> Self {
        Self { pool, db, faults }
    }

    /// The pool, for readiness checks and the outbox relay.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates a game and its `game.created` event.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, new: &NewGame) -> Result<Game, GameError> {
        let id = Uuid::new_v4();
        self.transaction(|mut tx| async move {
            let game: Game = self
                .db
                .run(
                    INSERT_GAME,
                    sqlx::query_as(INSERT_GAME)
                        .bind(id)
                        .bind(&new.title)
                        .bind(new.host.as_str())
                        .bind(new.scheduled_at)
                        .bind(new.max_players)
                        .bind(new.reminder_minutes)
                        .fetch_one(&mut *tx),
                )
                .await?;
            let event = GameEvent::Created {
                title: new.title.clone(),
                host: new.host.as_str().to_owned(),
                scheduled_at: new.scheduled_at,
                max_players: new.max_players,
                reminder_minutes: new.reminder_minutes,
            };
            self.enqueue(&mut tx, &Envelope::new(id, event)).await?;
            Ok((game, tx))
        })
        .await
    }

    /// Writes `envelope` to the outbox in `tx`, through the poison switch.
    async fn enqueue(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), sqlx::Error> {
        outbox::enqueue(&self.db, tx, envelope, self.faults.poison.as_ref()).await
    }

    /// The game with `id`, if any.
    #[tracing::instrument(skip(self))]
    pub async fn find(&self, id: Uuid) -> Result<Option<Game>, sqlx::Error> {
        self.select(&self.pool, id, self.faults.db_delay).await
    }

    /// The game with `id`, read inside `tx` after a change to it.
    async fn fetch(&self, tx: &mut Tx, id: Uuid) -> Result<Game, GameError> {
        let game = self.select(&mut **tx, id, None).await?;
        game.ok_or(GameError::GameNotFound)
    }

    /// `SELECT_GAME` in its database span; `delay` (a fault switch) is
    /// spent inside the span, so the trace shows a slow query.
    async fn select<'e, E>(
        &self,
        executor: E,
        id: Uuid,
        delay: Option<Delay>,
    ) -> Result<Option<Game>, sqlx::Error>
    where
        E: sqlx::PgExecutor<'e>,
    {
        let query = async {
            if let Some(delay) = delay {
                delay.wait().await;
            }
            sqlx::query_as(SELECT_GAME)
                .bind(id)
                .fetch_optional(executor)
                .await
        };
        self.db.run(SELECT_GAME, query).await
    }

    /// Up to `limit` games after `after` in start-time order, optionally only
    /// those with `status`.
    #[tracing::instrument(skip(self))]
    pub async fn list(
        &self,
        status: Option<GameStatus>,
        after: Option<Position>,
        limit: i64,
    ) -> Result<Vec<Game>, sqlx::Error> {
        self.db
            .run(
                LIST_GAMES,
                sqlx::query_as(LIST_GAMES)
                    .bind(status.map(GameStatus::as_str))
                    .bind(after.map(|(at, _)| at))
                    .bind(after.map(|(_, id)| id))
                    .bind(limit)
                    .fetch_all(&self.pool),
            )
            .await
    }

    /// Seats `player` at game `id`, writing `game.player_joined`.
    ///
    /// Joins beyond `max_players` are refused ([`GameError::Full`]): a game
    /// night has a table of fixed size, and there is no waitlist.
    #[tracing::instrument(skip(self, player))]
    pub async fn join(&self, id: Uuid, player: &PlayerName) -> Result<Game, GameError> {
        self.transaction(|mut tx| async move {
            let max_players = self.lock_scheduled(&mut tx, id).await?;
            let (seated,): (i64,) = self
                .db
                .run(
                    COUNT_PLAYERS,
                    sqlx::query_as(COUNT_PLAYERS).bind(id).fetch_one(&mut *tx),
                )
                .await?;
            if seated >= i64::from(max_players) {
                return Err(GameError::Full);
            }
            let event = GameEvent::PlayerJoined {
                player: player.as_str().to_owned(),
            };
            let taken = GameError::AlreadyJoined;
            self.change_seat(&mut tx, INSERT_PLAYER, id, player, taken, event)
                .await?;
            Ok((self.fetch(&mut tx, id).await?, tx))
        })
        .await
    }

    /// Frees `player`'s seat at game `id`, writing `game.player_left`.
    #[tracing::instrument(skip(self, player))]
    pub async fn leave(&self, id: Uuid, player: &PlayerName) -> Result<(), GameError> {
        self.transaction(|mut tx| async move {
            self.lock_scheduled(&mut tx, id).await?;
            let event = GameEvent::PlayerLeft {
                player: player.as_str().to_owned(),
            };
            let missing = GameError::ParticipantNotFound;
            self.change_seat(&mut tx, DELETE_PLAYER, id, player, missing, event)
                .await?;
            Ok(((), tx))
        })
        .await
    }

    /// Cancels game `id`, writing `game.cancelled`.
    #[tracing::instrument(skip(self))]
    pub async fn cancel(&self, id: Uuid) -> Result<Game, GameError> {
        self.transaction(|mut tx| async move {
            self.lock_scheduled(&mut tx, id).await?;
            self.db
                .run(
                    CANCEL_GAME,
                    sqlx::query(CANCEL_GAME).bind(id).execute(&mut *tx),
                )
                .await?;
            self.enqueue(&mut tx, &Envelope::new(id, GameEvent::Cancelled {}))
                .await?;
            Ok((self.fetch(&mut tx, id).await?, tx))
        })
        .await
    }

    /// Locks game `id` for the rest of `tx` and returns its `max_players`,
    /// provided it exists and is still scheduled.
    async fn lock_scheduled(&self, tx: &mut Tx, id: Uuid) -> Result<i32, GameError> {
        let row: Option<(GameStatus, i32)> = self
            .db
            .run(
                LOCK_GAME,
                sqlx::query_as(LOCK_GAME).bind(id).fetch_optional(&mut **tx),
            )
            .await?;
        match row {
            None => Err(GameError::GameNotFound),
            Some((GameStatus::Scheduled, max_players)) => Ok(max_players),
            Some((status, _)) => Err(GameError::NotScheduled(status)),
        }
    }

    /// Inserts or deletes (`sql`) `player`'s seat at game `id`; when a row
    /// changed, touches the game and writes `event`, otherwise fails with
    /// `unchanged`.
    async fn change_seat(
        &self,
        tx: &mut Tx,
        sql: &'static str,
        id: Uuid,
        player: &PlayerName,
        unchanged: GameError,
        event: GameEvent,
    ) -> Result<(), GameError> {
        let query = sqlx::query(sql).bind(id).bind(player.as_str());
        let changed = self.db.run(sql, query.execute(&mut **tx)).await?;
        if changed.rows_affected() == 0 {
            return Err(unchanged);
        }
        let touch = sqlx::query(TOUCH_GAME).bind(id).execute(&mut **tx);
        self.db.run(TOUCH_GAME, touch).await?;
        Ok(self.enqueue(tx, &Envelope::new(id, event)).await?)
    }

    /// Runs `work` in a transaction and commits the transaction it hands back.
    ///
    /// When the connection drops before COMMIT (PostgreSQL restarting under
    /// the request), `work` runs once more on another connection: the server
    /// rolled the first attempt back, so the change is applied once. A
    /// failure at COMMIT itself is not retried, since the change may have
    /// been committed; nor is a second drop, which is answered 503.
    async fn transaction<T, F, Fut>(&self, work: F) -> Result<T, GameError>
    where
        F: Fn(Tx) -> Fut,
        Fut: Future<Output = Result<(T, Tx), GameError>>,
    {
        let attempt = async || work(self.pool.begin().await?).await;
        let first = attempt().await;
        let (value, tx) = match first {
            Err(GameError::Database(err)) if err.is_dropped_connection() => {
                tracing::warn!(
                    error.type = %err.error_type(),
                    "database connection dropped mid-transaction; retrying once"
                );
                attempt().await?
            }
            result => result?,
        };
        self.db.run("COMMIT", tx.commit()).await?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::db::Statement;

    /// The span names these statements get, read from their text.
    #[test]
    fn every_statement_is_named_by_its_operation_and_table() {
        for (sql, operation, collection) in [
            (SELECT_GAME, "SELECT", Some("games")),
            (LIST_GAMES, "SELECT", Some("games")),
            (INSERT_GAME, "INSERT", Some("games")),
            (LOCK_GAME, "SELECT", Some("games")),
            (COUNT_PLAYERS, "SELECT", Some("participants")),
            (INSERT_PLAYER, "INSERT", Some("participants")),
            (DELETE_PLAYER, "DELETE", Some("participants")),
            (TOUCH_GAME, "UPDATE", Some("games")),
            (CANCEL_GAME, "UPDATE", Some("games")),
        ] {
            assert_eq!(
                Statement::parse(sql),
                Statement {
                    operation,
                    collection
                },
                "{sql}"
            );
        }
    }
}
