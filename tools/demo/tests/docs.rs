//! The docs list every variable the services read, as the code declares them.

use test_support::docs::repo_file;

#[test]
fn every_variable_a_service_reads_is_documented() {
    let runtime_config = repo_file("RUNTIME_CONFIG.md");
    let env_example = repo_file(".env.example");
    let all = [
        api::Config::ENV_VARS,
        worker::Config::ENV_VARS,
        bot::Config::ENV_VARS,
        telemetry::config::ENV_VARS,
    ];
    for var in all.into_iter().flatten() {
        assert!(
            runtime_config.contains(&format!("`{var}`")),
            "{var} is missing from RUNTIME_CONFIG.md"
        );
        assert!(
            env_example.lines().any(|line| line
                .trim_start_matches("# ")
                .starts_with(&format!("{var}="))),
            "{var} is missing from .env.example"
        );
    }
}
