//! The PostgreSQL schema of gamenight, as migrations built into the binary.
//!
//! One migration set for the whole database: sqlx keeps a single history
//! table per database, so services sharing the database share the set.

/// The migrations under `crates/schema/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
