//! The api against real PostgreSQL, Redis and RabbitMQ, each test on its own
//! database, key prefix and exchange; and the `api` binary as users run it.

// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod cache;
mod database;
mod docs;
mod docs_page;
mod faults;
mod games;
mod helpers;
mod migrations;
mod outbox;
mod process;
mod shutdown;
mod telemetry_export;
mod traces;
