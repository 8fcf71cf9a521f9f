//! A tower layer that gives every HTTP request a SERVER span and records the
//! `http.server.request.duration` histogram, both per the HTTP semantic
//! conventions.
//!
//! Add it with `Router::layer` so axum's [`MatchedPath`] is known: the span is
//! named `{method} {route}` and `http.route` is the route template
//! (`/games/{id}`), never the raw path, which would give every game its own
//! time series. Requests no route matched are named `{method}` alone.
//!
//! `url.path` is the path with each path parameter replaced by its name
//! (`/games/{id}/participants/{player}`): a parameter's value can be
//! personal data, a player's name here. Name the parameters whose values
//! are safe to export, ids say, with [`HttpServerLayer::exporting_params`]
//! (`/games/5f0c…/participants/{player}`). A request no route matched has no
//! `url.path`: its path is whatever the client sent.
//!
//! Health probes are best left out: merge their routes into the router
//! *after* this layer is added, and they are neither traced nor counted.
//!
//! Needs the crate's `axum` feature.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Method, Request, Response, Version};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundHistogram, Histogram, Meter};
use opentelemetry_semantic_conventions::{attribute as semconv, metric};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Bucket boundaries (seconds) the HTTP conventions advise for
/// `http.server.request.duration`.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Attribute sets bound at most, per layer. Routes, methods and statuses
/// are few; past this (a status code zoo?) requests are recorded unbound,
/// the same figures at the unbound cost.
const MAX_BOUND: usize = 1024;

/// Layer that traces and measures every request of the service it wraps.
#[derive(Debug, Clone)]
pub struct HttpServerLayer {
    duration: Durations,
    exported_params: &'static [&'static str],
}

/// `http.server.request.duration`, bound to each attribute set as it is
/// first seen: a bound histogram records without sorting, hashing and
/// looking up its attributes again, most of what a recording costs.
#[derive(Debug, Clone)]
struct Durations {
    histogram: Histogram<f64>,
    bound: Arc<RwLock<HashMap<Outcome, BoundHistogram<f64>>>>,
}

/// What a request's attributes are made of: method, route, protocol and
/// status code (`None` when the service failed without a response).
type Outcome = (
    &'static str,
    Option<String>,
    Option<&'static str>,
    Option<u16>,
);

impl Durations {
    fn record(&self, seconds: f64, outcome: Outcome) {
        let bound = self.bound.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(histogram) = bound.get(&outcome) {
            histogram.record(seconds);
            return;
        }
        drop(bound);
        let attributes = attributes(&outcome);
        let mut bound = self.bound.write().unwrap_or_else(PoisonError::into_inner);
        if bound.len() >= MAX_BOUND {
            drop(bound);
            self.histogram.record(seconds, &attributes);
            return;
        }
        bound
            .entry(outcome)
            .or_insert_with(|| self.histogram.bind(&attributes))
            .record(seconds);
    }
}

/// The semantic conventions' attributes of `outcome`.
fn attributes((method, route, protocol, status): &Outcome) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, *method),
        KeyValue::new(semconv::URL_SCHEME, "http"),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route.clone()));
    }
    if let Some(protocol) = protocol {
        attributes.push(KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, *protocol));
    }
    if let Some(status) = status {
        attributes.push(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(*status),
        ));
    }
    if let Some(error_type) = error_type(*status) {
        attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
    }
    attributes
}

/// `error.type` of a request answered `status` (`None`: no response).
/// Servers mark only 5xx as errors: a 4xx is the client's mistake, correctly
/// answered.
fn error_type(status: Option<u16>) -> Option<String> {
    match status {
        Some(status) => (status >= 500).then(|| status.to_string()),
        // The inner service failed without a response (axum routers never
        // do; other tower stacks can).
        None => Some("_OTHER".to_owned()),
    }
}

impl HttpServerLayer {
    /// Creates the layer, registering its histogram on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram(metric::HTTP_SERVER_REQUEST_DURATION)
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        Self {
            duration: Durations {
                histogram: duration,
                bound: Arc::default(),
            },
            exported_params: &[],
        }
    }

    /// Lets the values of the path parameters named in `params` into
    /// `url.path`; the others stay `{name}`. Name only parameters that can
    /// never hold personal data or secrets (generated ids).
    pub fn exporting_params(self, params: &'static [&'static str]) -> Self {
        Self {
            exported_params: params,
            ..self
        }
    }
}

impl<S> tower::Layer<S> for HttpServerLayer {
    type Service = HttpServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`HttpServerLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct HttpServer<S> {
    inner: S,
    /// The histogram and the parameters to export.
    layer: HttpServerLayer,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for HttpServer<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let method = method_name(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| path.as_str().to_owned());
        let protocol = protocol_version(request.version());
        let path = route
            .as_deref()
            .map(|route| redacted_path(request.uri().path(), route, self.layer.exported_params));
        let span = server_span(&request, method, route.as_deref(), path, protocol);
        let future = span.in_scope(|| self.inner.call(request));
        let duration = self.layer.duration.clone();

        Box::pin(
            async move {
                let result = future.await;
                let span = Span::current();
                let status = result
                    .as_ref()
                    .ok()
                    .map(|response| response.status().as_u16());
                if let Some(status) = status {
                    span.record(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
                }
                if let Some(error_type) = error_type(status) {
                    crate::spans::record_failure(&span, &error_type, "");
                }
                duration.record(
                    start.elapsed().as_secs_f64(),
                    (method, route, protocol, status),
                );
                result
            }
            .instrument(span),
        )
    }
}

fn server_span<B>(
    request: &Request<B>,
    method: &'static str,
    route: Option<&str>,
    path: Option<String>,
    protocol: Option<&'static str>,
) -> Span {
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let span = tracing::info_span!(
        target: "telemetry::http",
        "http request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        { semconv::HTTP_REQUEST_METHOD } = method,
        { semconv::HTTP_ROUTE } = route,
        { semconv::URL_PATH } = path,
        { semconv::URL_SCHEME } = "http",
        { semconv::NETWORK_PROTOCOL_VERSION } = protocol,
        { semconv::USER_AGENT_ORIGINAL } = user_agent,
        { semconv::HTTP_RESPONSE_STATUS_CODE } = Empty,
        { semconv::ERROR_TYPE } = Empty,
    );
    // Continue the caller's trace when it sent a `traceparent`.
    let _ = span.set_parent(crate::propagation::extract_http(request.headers()));
    span
}

/// `path` as matched by `route`, with the value of every parameter not in
/// `exported` replaced by the parameter itself (`{player}`, `{*rest}`).
fn redacted_path(path: &str, route: &str, exported: &[&str]) -> String {
    let mut values = path.split('/');
    let mut redacted = Vec::new();
    for segment in route.split('/') {
        let param = segment
            .strip_prefix('{')
            .and_then(|param| param.strip_suffix('}'));
        match param {
            // A wildcard takes the rest of the path, and is last.
            Some(param) if param.starts_with('*') => {
                let rest = values.by_ref().collect::<Vec<_>>().join("/");
                let exported = exported.contains(&&param[1..]);
                redacted.push(if exported { rest } else { segment.to_owned() });
            }
            Some(param) if exported.contains(&param) => {
                redacted.push(values.next().unwrap_or_default().to_owned());
            }
            // A literal segment, a parameter to hide, or a segment mixing
            // both (`{file}.json`), which is hidden whole.
            _ => {
                values.next();
                redacted.push(segment.to_owned());
            }
        }
    }
    redacted.join("/")
}

/// The method as the conventions want it: one of the known methods, or
/// `_OTHER` so that made-up methods cannot explode metric cardinality.
fn method_name(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("_OTHER")
}

fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;

    #[test]
    fn known_methods_keep_their_name_and_unknown_ones_are_reported_as_other() {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ] {
            assert_eq!(method_name(&method), method.as_str());
        }
        assert_eq!(method_name(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
    }

    #[test]
    fn path_parameters_are_hidden_unless_exported() {
        let route = "/games/{id}/participants/{player}";
        let path = "/games/42/participants/ada";
        assert_eq!(redacted_path(path, route, &[]), route);
        assert_eq!(
            redacted_path(path, route, &["id"]),
            "/games/42/participants/{player}"
        );
        assert_eq!(redacted_path("/games", "/games", &["id"]), "/games");
        assert_eq!(
            redacted_path("/files/a/b.txt", "/files/{*rest}", &[]),
            "/files/{*rest}"
        );
        assert_eq!(
            redacted_path("/files/a/b.txt", "/files/{*rest}", &["rest"]),
            "/files/a/b.txt"
        );
        assert_eq!(
            redacted_path("/reports/ada.json", "/reports/{name}.json", &["name"]),
            "/reports/{name}.json"
        );
    }

    /// A service that is never ready (a concurrency limit that is full).
    struct Busy;

    impl tower::Service<Request<()>> for Busy {
        type Response = Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<()>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            unreachable!("never ready, never called")
        }
    }

    #[test]
    fn the_wrapped_service_says_when_it_is_ready() {
        use tower::{Layer as _, Service as _};
        let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("test");
        let mut server = HttpServerLayer::new(&meter).layer(Busy);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(server.poll_ready(&mut cx).is_pending());
    }

    #[test]
    fn protocol_versions_use_semconv_spelling() {
        assert_eq!(protocol_version(Version::HTTP_10), Some("1.0"));
        assert_eq!(protocol_version(Version::HTTP_11), Some("1.1"));
        assert_eq!(protocol_version(Version::HTTP_2), Some("2"));
        assert_eq!(protocol_version(Version::HTTP_3), Some("3"));
        assert_eq!(protocol_version(Version::HTTP_09), None);
    }
}
