//! What several of these test files read the same way.

use test_support::docs::repo_file as read;

/// The `volumes` of lgtm in docker-compose.base.yml: `(host path without
/// ./, container path)`.
fn lgtm_mounts() -> Vec<(String, String)> {
    let base: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.base.yml")).unwrap();
    base["services"]["lgtm"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|mount| {
            let parts: Vec<&str> = mount.as_str().unwrap().split(':').collect();
            (
                parts[0].trim_start_matches("./").to_owned(),
                parts[1].to_owned(),
            )
        })
        .collect()
}

/// Where compose mounts `host` (a path in the repository) into lgtm.
pub(crate) fn mounted_in_lgtm(host: &str) -> String {
    lgtm_mounts()
        .into_iter()
        .find(|(from, _)| from == host)
        .map(|(_, to)| to)
        .unwrap_or_else(|| panic!("compose does not mount {host} into lgtm"))
}
