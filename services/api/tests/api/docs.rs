//! The docs list every variable the api reads.

fn repo_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn every_variable_the_api_reads_is_documented() {
    let runtime_config = repo_file("RUNTIME_CONFIG.md");
    let env_example = repo_file(".env.example");
    for var in api::Config::ENV_VARS
        .iter()
        .chain(telemetry::config::ENV_VARS)
    {
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
