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
