//! postgres/roles.sql, the roles compose's services connect as: run with
//! psql as the postgres image runs it (as the role that then applies the
//! migrations), on a database and roles of this test's own.

#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

struct Names {
    owner: String,
    app: String,
    monitor: String,
    database: String,
}

impl Names {
    fn with_suffix(suffix: &str) -> Self {
        Self {
            owner: format!("gamenight_test_owner_{suffix}"),
            app: format!("gamenight_test_app_{suffix}"),
            monitor: format!("gamenight_test_monitor_{suffix}"),
            database: format!("gamenight_test_roles_{suffix}"),
        }
    }
}

fn server() -> PgConnectOptions {
    PgConnectOptions::from_str(&test_support::database_url()).unwrap()
}

/// roles.sql run by psql as `names.owner` on `names.database`, with the
/// passwords in the environment as compose sets them.
fn run_roles_sql(names: &Names, passwords: &[(&str, &str)]) -> Output {
    let server = server();
    let uri = format!(
        "postgres://{}@{}:{}/{}",
        names.owner,
        server.get_host(),
        server.get_port(),
        names.database
    );
    std::process::Command::new("psql")
        .args(["-X", "-q", &uri, "-f"])
        .arg(test_support::docs::repo_path("postgres/roles.sql"))
        .args(["-v", &format!("app_role={}", names.app)])
        .args(["-v", &format!("monitor_role={}", names.monitor)])
        .env_remove("POSTGRES_APP_PASSWORD")
        .env_remove("POSTGRES_MONITOR_PASSWORD")
        .envs(passwords.iter().copied())
        .output()
        .expect("psql runs roles.sql (install postgresql-client)")
}

async fn pool_as(names: &Names, role: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(server().username(role).database(&names.database))
        .await
        .unwrap()
}

async fn checks(names: &Names) {
    let missing = run_roles_sql(names, &[("POSTGRES_APP_PASSWORD", "app-secret")]);
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("POSTGRES_MONITOR_PASSWORD is not set")
    );

    let ran = run_roles_sql(
        names,
        &[
            ("POSTGRES_APP_PASSWORD", "app-secret"),
            ("POSTGRES_MONITOR_PASSWORD", "monitor-secret"),
        ],
    );
    assert!(ran.status.success(), "{ran:?}");
    let owner = pool_as(names, &names.owner).await;
    let app = pool_as(names, &names.app).await;
    // What `api migrate --wait` asks as the services' role: every migration
    // is pending before the first `api migrate`, none after.
    let known = schema::MIGRATOR.iter().count();
    assert!(known > 0);
    assert_eq!(schema::pending_migrations(&app).await.unwrap().len(), known);
    schema::MIGRATOR.run(&owner).await.unwrap();
    assert_eq!(
        schema::pending_migrations(&app).await.unwrap(),
        Vec::<i64>::new()
    );
    // A failed migration is still pending.
    owner
        .execute("UPDATE _sqlx_migrations SET success = false WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .await
        .unwrap();
    assert_eq!(schema::pending_migrations(&app).await.unwrap().len(), 1);
    owner
        .execute("UPDATE _sqlx_migrations SET success = true")
        .await
        .unwrap();

    // The services' role: rows, in every table the migrations made.
    sqlx::query(
        "INSERT INTO games (id, title, host, scheduled_at, max_players, reminder_minutes) \
         VALUES ($1, 'Catan night', 'ada', now() + interval '1 day', 4, 60)",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&app)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (message_id, routing_key, payload) VALUES ($1, 'game.created', '{}')",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&app)
    .await
    .expect("the outbox's identity sequence is usable");
    for statement in [
        "UPDATE games SET title = 'Carcassonne night'",
        "SELECT count(*) FROM notifications",
        "DELETE FROM outbox",
        "SELECT pg_advisory_xact_lock(1)",
    ] {
        app.execute(statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    // And nothing else.
    for statement in [
        "CREATE TABLE mischief (id int)",
        "ALTER TABLE games ADD COLUMN mischief int",
        "DROP TABLE deliveries",
        "TRUNCATE games CASCADE",
        "CREATE ROLE mischief",
    ] {
        let err = app.execute(statement).await.expect_err(statement);
        let message = err.to_string();
        assert!(
            message.contains("permission denied") || message.contains("must be owner"),
            "{statement}: {message}"
        );
    }

    // Alloy's exporter: statistics, no rows.
    let monitor = pool_as(names, &names.monitor).await;
    for statement in [
        "SELECT count(*) FROM pg_stat_activity",
        "SELECT sum(xact_commit) FROM pg_stat_database",
        "SELECT pg_database_size(current_database())",
    ] {
        monitor
            .execute(statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    let err = monitor.execute("SELECT * FROM games").await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    for pool in [owner, app, monitor] {
        pool.close().await;
    }
}

#[tokio::test]
async fn the_app_role_writes_rows_and_nothing_else_and_the_monitor_role_reads_statistics() {
    let suffix = test_support::unique_name("");
    let names = Names::with_suffix(&suffix);
    let mut admin = PgConnection::connect_with(&server()).await.unwrap();
    for statement in [
        format!("CREATE ROLE {} LOGIN CREATEROLE", names.owner),
        format!("CREATE DATABASE {} OWNER {}", names.database, names.owner),
    ] {
        run(&mut admin, statement).await;
    }

    // Run apart, so that a failed check still drops what the test made.
    let result = tokio::spawn(async move { checks(&names).await }).await;
    drop_all(&mut admin, &suffix).await;
    if let Err(err) = result {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Drops the database and the roles of [`Names::with_suffix`].
async fn drop_all(admin: &mut PgConnection, suffix: &str) {
    let names = Names::with_suffix(suffix);
    let database = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", names.database);
    run(admin, database).await;
    for role in [names.app, names.monitor, names.owner] {
        run(admin, format!("DROP ROLE IF EXISTS {role}")).await;
    }
}

/// One statement built here from this test's own names.
async fn run(admin: &mut PgConnection, statement: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(admin)
        .await
        .unwrap();
}
