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
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for var in ["DATABASE_URL", "RABBITMQ_URL", "API_BASE_URL"] {
        assert!(stderr.contains(&format!("<{var}>")), "{var}: {stderr}");
    }
}
