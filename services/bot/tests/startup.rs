//! The `bot` binary refuses an incomplete configuration at start, naming
//! the variable, rather than running half-configured.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn a_missing_variable_stops_startup_with_a_line_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_bot"))
        .env_clear()
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("API_BASE_URL is not set"), "{stderr}");
}
