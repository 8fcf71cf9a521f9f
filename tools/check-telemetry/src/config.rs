//! Where the backends are and who to ask them as, read from the variables
//! Alloy reads (`.env`), plus the two query endpoints Alloy has no use for.

use secrecy::SecretString;
use service_runtime::env::{Env, EnvError};
use url::Url;

/// Every variable the check reads.
pub const ENV_VARS: &[&str] = &[
    "GRAFANA_CLOUD_TEMPO_URL",
    "GRAFANA_CLOUD_TEMPO_INSTANCE_ID",
    "GRAFANA_CLOUD_PROMETHEUS_URL",
    "GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID",
    "GRAFANA_CLOUD_LOKI_URL",
    "GRAFANA_CLOUD_LOKI_INSTANCE_ID",
    "GRAFANA_CLOUD_READ_TOKEN",
    "GRAFANA_CLOUD_API_TOKEN",
];

/// The three backends, and the token they share.
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
    /// The password of every backend that has an instance ID:
    /// `GRAFANA_CLOUD_READ_TOKEN`, else Alloy's `GRAFANA_CLOUD_API_TOKEN`.
    /// It needs the read scopes (`traces:read`, `metrics:read`,
    /// `logs:read`).
    pub token: Option<SecretString>,
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

/// The settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable is missing or malformed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// An instance ID is set, so the backend wants credentials, but there is
    /// no token to send.
    #[error(
        "{var} is set but there is no token: set GRAFANA_CLOUD_READ_TOKEN (or GRAFANA_CLOUD_API_TOKEN) to an access-policy token with the read scopes"
    )]
    NoToken {
        /// The instance ID variable.
        var: &'static str,
    },
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the settings from `env`.
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let token = env
            .optional("GRAFANA_CLOUD_READ_TOKEN")
            .or_else(|| env.optional("GRAFANA_CLOUD_API_TOKEN"))
            .map(SecretString::from);
        let backend = |url_var, default: &str, id_var, example| -> Result<Backend, ConfigError> {
            let value = env.optional(url_var).unwrap_or_else(|| default.to_owned());
            let url = http_url(&value).ok_or(EnvError::Invalid {
                var: url_var,
                expected: example,
            })?;
            let instance_id = env.optional(id_var);
            if instance_id.is_some() && token.is_none() {
                return Err(ConfigError::NoToken { var: id_var });
            }
            Ok(Backend {
                url,
                instance_id,
                instance_id_var: id_var,
            })
        };
        let mut prometheus = backend(
            "GRAFANA_CLOUD_PROMETHEUS_URL",
            "http://localhost:9090/api/v1/write",
            "GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID",
            "a remote-write URL ending in /api/prom/push (Grafana Cloud) or /api/v1/write (Prometheus)",
        )?;
        prometheus.url = query_url(&prometheus.url).ok_or(EnvError::Invalid {
            var: "GRAFANA_CLOUD_PROMETHEUS_URL",
            expected: "a remote-write URL ending in /api/prom/push (Grafana Cloud) or /api/v1/write (Prometheus)",
        })?;
        Ok(Self {
            tempo: backend(
                "GRAFANA_CLOUD_TEMPO_URL",
                "http://localhost:3200",
                "GRAFANA_CLOUD_TEMPO_INSTANCE_ID",
                "an http(s) URL, e.g. https://tempo-prod-10-prod-eu-west-2.grafana.net/tempo",
            )?,
            prometheus,
            loki: backend(
                "GRAFANA_CLOUD_LOKI_URL",
                "http://localhost:3100",
                "GRAFANA_CLOUD_LOKI_INSTANCE_ID",
                "an http(s) URL, e.g. https://logs-prod-012.grafana.net",
            )?,
            token,
        })
    }
}

/// `value` as an http(s) URL with a host.
fn http_url(value: &str) -> Option<Url> {
    let url = Url::parse(value.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.has_host()).then_some(url)
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

    fn config(pairs: &'static [(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        Config::from(&Env::from_pairs(pairs))
    }

    #[test]
    fn unset_means_the_local_stack_on_its_published_ports() {
        let config = config(&[]).unwrap();
        assert_eq!(config.tempo.display_url(), "http://localhost:3200");
        assert_eq!(config.prometheus.display_url(), "http://localhost:9090");
        assert_eq!(config.loki.display_url(), "http://localhost:3100");
        assert!(config.tempo.instance_id.is_none());
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
    fn a_url_the_check_cannot_use_is_named_without_its_value() {
        let err = config(&[(
            "GRAFANA_CLOUD_PROMETHEUS_URL",
            "https://user:hunter2@example.com/metrics",
        )])
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("GRAFANA_CLOUD_PROMETHEUS_URL is invalid"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        let err = config(&[("GRAFANA_CLOUD_TEMPO_URL", "tempo:3200")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("GRAFANA_CLOUD_TEMPO_URL is invalid")
        );
    }

    #[test]
    fn an_instance_id_without_a_token_is_refused() {
        let err = config(&[("GRAFANA_CLOUD_LOKI_INSTANCE_ID", "987654")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::NoToken {
                var: "GRAFANA_CLOUD_LOKI_INSTANCE_ID"
            }
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
