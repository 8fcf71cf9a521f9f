//! The `api` binary as users run it: a child process configured only through
//! the environment, exporting to a real OTLP receiver.

// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod process;
mod telemetry_export;
