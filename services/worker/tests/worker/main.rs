//! The worker against real PostgreSQL and RabbitMQ: one test binary.

#![allow(clippy::unwrap_used)]

mod apply;
mod redrive;
mod retention;
mod scheduler;
