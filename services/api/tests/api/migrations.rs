//! `api migrate`, as several replicas would run it at once.

use tokio::process::Command;

use crate::helpers::Servers;

#[tokio::test]
async fn replicas_migrating_at_once_all_succeed_and_apply_each_migration_once() {
    let servers = Servers::fresh().await;
    let runs = (0..3).map(|_| {
        Command::new(env!("CARGO_BIN_EXE_api"))
            .arg("migrate")
            // The database is all it needs.
            .env_clear()
            .env("DATABASE_URL", &servers.database_url)
            .env("OTEL_SDK_DISABLED", "true")
            .output()
    });
    for output in futures_util::future::join_all(runs).await {
        let output = output.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pool = sqlx::PgPool::connect(&servers.database_url).await.unwrap();
    let (applied,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, api::MIGRATOR.iter().count() as i64);
}

/// `api migrate --wait`, the services' init container on Kubernetes: it
/// applies nothing and returns only once another `api migrate` has.
#[tokio::test]
async fn migrate_wait_returns_only_once_every_migration_is_applied() {
    let servers = Servers::fresh().await;
    let api = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
        command
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &servers.database_url)
            .env("OTEL_SDK_DISABLED", "true")
            .kill_on_drop(true);
        command
    };
    let mut waiting = api(&["migrate", "--wait"]).spawn().unwrap();
    // Longer than one poll (2 s): it asked at least twice and is still waiting.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "--wait returned before any migration was applied"
    );
    let pool = sqlx::PgPool::connect(&servers.database_url).await.unwrap();
    let history: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(history, None, "--wait applied something");

    let migrated = api(&["migrate"]).output().await.unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), waiting.wait())
        .await
        .expect("--wait returns within a few polls of the migrations")
        .unwrap();
    assert!(waited.success(), "{waited:?}");
}
