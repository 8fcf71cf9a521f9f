//! Where the backends are and who to ask them as, from the variables Alloy
//! reads (`.env`) plus the two query endpoints Alloy has no use for: a clap
//! group, each option also set by its variable (`check-telemetry --help`).
//! Pyroscope takes pushes and queries at the same base URL, so the check
//! asks the one Alloy's `pyroscope.write` pushes to.

use clap::error::ErrorKind;
use clap::{ArgMatches, Args, FromArgMatches};
use secrecy::SecretString;
use url::Url;

/// The four backends, and the token they share.
#[derive(Debug, Clone)]
pub struct Config {
    /// Tempo's HTTP API (`GRAFANA_CLOUD_TEMPO_URL`, default
    /// `http://localhost:3200`); in Grafana Cloud it ends in `/tempo`.
    pub tempo: Backend,
    /// Prometheus' or Mimir's query API, derived from the remote-write URL
    /// Alloy pushes to (`GRAFANA_CLOUD_PROMETHEUS_URL`, default
    /// `http://localhost:9090/api/v1/write`).
    pub prometheus: Backend,
    /// Loki's HTTP API (`GRAFANA_CLOUD_LOKI_URL`, default
    /// `http://localhost:3100`).
    pub loki: Backend,
    /// Pyroscope's HTTP API, the URL Alloy's `pyroscope.write` pushes
    /// profiles to (`GRAFANA_CLOUD_PROFILES_URL`, default
    /// `http://localhost:4040`).
    pub pyroscope: Backend,
    /// The password of every backend that has an instance ID:
    /// `GRAFANA_CLOUD_READ_TOKEN`, else Alloy's `GRAFANA_CLOUD_API_TOKEN`.
    /// It needs the read scopes (`traces:read`, `metrics:read`,
    /// `logs:read`, `profiles:read`).
    pub token: Option<SecretString>,
    /// The share of traces Alloy keeps, in percent, when it tail-samples
    /// (`TRACE_SAMPLING_PERCENT`, as Alloy reads it in
    /// grafana-alloy/sampling.alloy); `None` when it keeps every trace.
    pub trace_sampling_percent: Option<f64>,
}

/// One backend's base URL, and the basic-auth user Grafana Cloud wants.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The base URL the API paths are appended to.
    pub url: Url,
    /// The instance ID (`GRAFANA_CLOUD_*_INSTANCE_ID`); none locally.
    pub instance_id: Option<String>,
    /// The variable that holds the instance ID, for the diagnosis.
    pub instance_id_var: &'static str,
}

impl Backend {
    /// Where this backend is, without any credentials a URL may carry.
    pub fn display_url(&self) -> String {
        redacted(&self.url)
    }
}

/// `url` without user or password, and without a trailing slash.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    // Only fails for URLs that cannot have credentials at all.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str().trim_end_matches('/').to_owned()
}

/// The variables, as declared; [`Config`] is what they mean.
#[derive(Debug, Clone, clap::Args)]
struct Vars {
    /// Tempo's HTTP API; in Grafana Cloud it ends in `/tempo`.
    #[arg(long, env, default_value = "http://localhost:3200", value_parser = http_url)]
    grafana_cloud_tempo_url: Url,
    /// Basic-auth user for Tempo (Grafana Cloud); none locally.
    #[arg(long, env)]
    grafana_cloud_tempo_instance_id: Option<String>,
    /// The remote-write URL Alloy pushes to; the query API is found beside
    /// it.
    #[arg(long, env, default_value = "http://localhost:9090/api/v1/write", value_parser = http_url)]
    grafana_cloud_prometheus_url: Url,
    /// Basic-auth user for Prometheus (Grafana Cloud); none locally.
    #[arg(long, env)]
    grafana_cloud_prometheus_instance_id: Option<String>,
    /// Loki's HTTP API.
    #[arg(long, env, default_value = "http://localhost:3100", value_parser = http_url)]
    grafana_cloud_loki_url: Url,
    /// Basic-auth user for Loki (Grafana Cloud); none locally.
    #[arg(long, env)]
    grafana_cloud_loki_instance_id: Option<String>,
    /// Pyroscope's HTTP API, where Alloy pushes profiles (Grafana Cloud:
    /// the Profiles tile's URL, the host alone).
    #[arg(long, env, default_value = "http://localhost:4040", value_parser = http_url)]
    grafana_cloud_profiles_url: Url,
    /// Basic-auth user for Pyroscope (Grafana Cloud Profiles); none
    /// locally.
    #[arg(long, env)]
    grafana_cloud_profiles_instance_id: Option<String>,
    /// Password of every backend that has an instance ID: an access-policy
    /// token with `traces:read`, `metrics:read`, `logs:read`,
    /// `profiles:read`.
    #[arg(long, env, hide_env_values = true, value_parser = secret)]
    grafana_cloud_read_token: Option<SecretString>,
    /// Alloy's token, sent when there is no read token (it then needs the
    /// read scopes).
    #[arg(long, env, hide_env_values = true, value_parser = secret)]
    grafana_cloud_api_token: Option<SecretString>,
    /// The share of traces Alloy keeps when it tail-samples
    /// (grafana-alloy/sampling.alloy), 0 to 100; unset when it keeps every
    /// trace. Below 100, a service whose metrics or logs arrive but none of
    /// whose traces was kept is not missing.
    #[arg(long, env, value_parser = percent)]
    trace_sampling_percent: Option<f64>,
}

impl TryFrom<Vars> for Config {
    type Error = String;

    /// `Err` naming the variable when an instance ID has no token to go
    /// with it, or the remote-write URL has no query API beside it.
    fn try_from(vars: Vars) -> Result<Self, String> {
        let token = vars
            .grafana_cloud_read_token
            .or(vars.grafana_cloud_api_token);
        let backend = |url, instance_id: Option<String>, instance_id_var| {
            if instance_id.is_some() && token.is_none() {
                return Err(format!(
                    "{instance_id_var} is set but there is no token: set GRAFANA_CLOUD_READ_TOKEN (or GRAFANA_CLOUD_API_TOKEN) to an access-policy token with the read scopes"
                ));
            }
            Ok(Backend {
                url,
                instance_id,
                instance_id_var,
            })
        };
        let prometheus_url = query_url(&vars.grafana_cloud_prometheus_url).ok_or(
            "GRAFANA_CLOUD_PROMETHEUS_URL is invalid: expected a remote-write URL ending in /api/prom/push (Grafana Cloud) or /api/v1/write (Prometheus)",
        )?;
        Ok(Self {
            tempo: backend(
                vars.grafana_cloud_tempo_url,
                vars.grafana_cloud_tempo_instance_id,
                "GRAFANA_CLOUD_TEMPO_INSTANCE_ID",
            )?,
            prometheus: backend(
                prometheus_url,
                vars.grafana_cloud_prometheus_instance_id,
                "GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID",
            )?,
            loki: backend(
                vars.grafana_cloud_loki_url,
                vars.grafana_cloud_loki_instance_id,
                "GRAFANA_CLOUD_LOKI_INSTANCE_ID",
            )?,
            pyroscope: backend(
                vars.grafana_cloud_profiles_url,
                vars.grafana_cloud_profiles_instance_id,
                "GRAFANA_CLOUD_PROFILES_INSTANCE_ID",
            )?,
            token,
            trace_sampling_percent: vars
                .trace_sampling_percent
                .filter(|percent| *percent < 100.0),
        })
    }
}

impl Args for Config {
    fn group_id() -> Option<clap::Id> {
        Vars::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        Vars::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Vars::augment_args_for_update(cmd)
    }
}

impl FromArgMatches for Config {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::try_from(Vars::from_arg_matches(matches)?)
            .map_err(|message| clap::Error::raw(ErrorKind::ValueValidation, message))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Config {
    /// The settings as if the environment held exactly `vars`: for tests,
    /// which must not change the process environment.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, clap::Error> {
        telemetry::config::parse_vars(clap::Command::new("check-telemetry"), vars)
    }
}

/// A percentage from 0 to 100, as Alloy's probabilistic policy takes it.
fn percent(value: &str) -> Result<f64, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|percent| (0.0..=100.0).contains(percent))
        .ok_or_else(|| "expected a percentage from 0 to 100".to_owned())
}

/// A token: never parsed, so never echoed.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.trim()))
}

/// `value` as an http(s) URL with a host. Its error does not repeat the
/// value, but clap's message around it does: a backend's URL holds no
/// credentials (they are the instance ID and the token).
fn http_url(value: &str) -> Result<Url, String> {
    Url::parse(value.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| "expected an http(s) URL with a host".to_owned())
}

/// The query API's base beside a remote-write URL: Grafana Cloud's
/// `…/api/prom/push` answers queries under `…/api/prom`, Prometheus'
/// `…/api/v1/write` under `…/`.
fn query_url(push: &Url) -> Option<Url> {
    let path = push.path().trim_end_matches('/');
    let base = path
        .strip_suffix("/api/v1/write")
        .or_else(|| path.strip_suffix("/push"))?;
    let mut url = push.clone();
    url.set_path(base);
    url.set_query(None);
    Some(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, clap::Error> {
        Config::from_vars(pairs.iter().copied())
    }

    #[test]
    fn unset_means_the_local_stack_on_its_published_ports() {
        let config = config(&[]).unwrap();
        assert_eq!(config.tempo.display_url(), "http://localhost:3200");
        assert_eq!(config.prometheus.display_url(), "http://localhost:9090");
        assert_eq!(config.loki.display_url(), "http://localhost:3100");
        assert_eq!(config.pyroscope.display_url(), "http://localhost:4040");
        assert!(config.tempo.instance_id.is_none());
        assert!(config.pyroscope.instance_id.is_none());
        assert!(config.token.is_none());
    }

    #[test]
    fn the_query_api_is_found_beside_the_remote_write_url() {
        let config = config(&[
            (
                "GRAFANA_CLOUD_PROMETHEUS_URL",
                "https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom/push",
            ),
            ("GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID", "1234567"),
            ("GRAFANA_CLOUD_API_TOKEN", "glc_secret"),
        ])
        .unwrap();
        assert_eq!(
            config.prometheus.display_url(),
            "https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom"
        );
        assert_eq!(config.prometheus.instance_id.as_deref(), Some("1234567"));
        let local = self::config(&[(
            "GRAFANA_CLOUD_PROMETHEUS_URL",
            "http://lgtm:9090/api/v1/write",
        )])
        .unwrap();
        assert_eq!(local.prometheus.display_url(), "http://lgtm:9090");
    }

    #[test]
    fn a_url_the_check_cannot_use_is_named() {
        let err = config(&[(
            "GRAFANA_CLOUD_PROMETHEUS_URL",
            "https://user:hunter2@example.com/metrics",
        )])
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("error: GRAFANA_CLOUD_PROMETHEUS_URL is invalid"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        let err = config(&[("GRAFANA_CLOUD_TEMPO_URL", "tempo:3200")]).unwrap_err();
        assert!(
            err.to_string().contains("<GRAFANA_CLOUD_TEMPO_URL>"),
            "{err}"
        );
    }

    #[test]
    fn an_instance_id_without_a_token_is_refused() {
        let err = config(&[("GRAFANA_CLOUD_LOKI_INSTANCE_ID", "987654")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("error: GRAFANA_CLOUD_LOKI_INSTANCE_ID is set but there is no token"),
            "{err}"
        );
    }

    #[test]
    fn profiles_are_asked_where_alloy_pushes_them_as_their_own_instance() {
        let config = config(&[
            (
                "GRAFANA_CLOUD_PROFILES_URL",
                "https://profiles-prod-001.grafana.net/",
            ),
            ("GRAFANA_CLOUD_PROFILES_INSTANCE_ID", "1234570"),
            ("GRAFANA_CLOUD_READ_TOKEN", "glc_read"),
        ])
        .unwrap();
        assert_eq!(
            config.pyroscope.display_url(),
            "https://profiles-prod-001.grafana.net"
        );
        assert_eq!(config.pyroscope.instance_id.as_deref(), Some("1234570"));
        let err = self::config(&[("GRAFANA_CLOUD_PROFILES_INSTANCE_ID", "1234570")]).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "error: GRAFANA_CLOUD_PROFILES_INSTANCE_ID is set but there is no token"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_read_token_is_preferred_to_alloys() {
        use secrecy::ExposeSecret;
        let config = config(&[
            ("GRAFANA_CLOUD_API_TOKEN", "glc_write"),
            ("GRAFANA_CLOUD_READ_TOKEN", "glc_read"),
        ])
        .unwrap();
        assert_eq!(config.token.unwrap().expose_secret(), "glc_read");
    }

    #[test]
    fn credentials_in_a_url_are_never_displayed() {
        let config =
            config(&[("GRAFANA_CLOUD_LOKI_URL", "https://1234:glc_x@logs.example/")]).unwrap();
        assert_eq!(config.loki.display_url(), "https://logs.example");
    }
}
