//! The two OTLP transports: gRPC (tonic, with the services generated in
//! `opentelemetry-proto`) and HTTP/protobuf (axum).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;

use crate::model::{LogRecord, Metric, Span};
use crate::{Recorded, Shared};

/// Largest export accepted, as a collector's default limits go.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The running servers; dropping this stops them.
#[derive(Debug)]
pub(crate) struct Servers {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Servers {
    pub(crate) async fn start(
        shared: Arc<Shared>,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
    ) -> std::io::Result<(Self, SocketAddr, SocketAddr)> {
        let grpc_listener = TcpListener::bind(grpc_addr).await?;
        let http_listener = TcpListener::bind(http_addr).await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let collector = Collector(shared.clone());
        let grpc = tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(collector.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                MetricsServiceServer::new(collector.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                LogsServiceServer::new(collector)
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(MAX_BODY_BYTES),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                grpc_listener,
            ));

        let http = axum::Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .route("/v1/logs", post(http_logs))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(shared);

        let tasks = vec![
            tokio::spawn(async move {
                if let Err(err) = grpc.await {
                    tracing::error!(error = %err, "OTLP/gRPC test receiver stopped");
                }
            }),
            tokio::spawn(async move {
                if let Err(err) = axum::serve(http_listener, http).await {
                    tracing::error!(error = %err, "OTLP/HTTP test receiver stopped");
                }
            }),
        ];
        Ok((Self { tasks }, grpc_addr, http_addr))
    }
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Grpc,
    Http,
}

/// Counts an export request and decides whether to refuse it (see
/// [`crate::Receiver::fail_next`]). Returns true when it may be recorded.
fn admit(recorded: &mut Recorded, transport: Transport, headers: HeaderMap) -> bool {
    if recorded.keep {
        recorded.request_headers.push(headers);
    }
    match transport {
        Transport::Grpc => recorded.grpc_requests += 1,
        Transport::Http => recorded.http_requests += 1,
    }
    if recorded.fail_next > 0 {
        recorded.fail_next -= 1;
        return false;
    }
    true
}

fn record_traces(recorded: &mut Recorded, request: ExportTraceServiceRequest) {
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            recorded.counts.spans += scope_spans.spans.len();
            if !recorded.keep {
                continue;
            }
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            recorded
                .spans
                .extend(scope_spans.spans.into_iter().map(|span| Span {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    span,
                }));
        }
    }
}

fn record_metrics(recorded: &mut Recorded, request: ExportMetricsServiceRequest) {
    for resource_metrics in request.resource_metrics {
        let resource = resource_metrics
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope_metrics in resource_metrics.scope_metrics {
            recorded.counts.metrics += scope_metrics.metrics.len();
            if !recorded.keep {
                continue;
            }
            recorded
                .metrics
                .extend(scope_metrics.metrics.into_iter().map(|metric| Metric {
                    resource: resource.clone(),
                    metric,
                }));
        }
    }
}

fn record_logs(recorded: &mut Recorded, request: ExportLogsServiceRequest) {
    for resource_logs in request.resource_logs {
        let resource = resource_logs
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope_logs in resource_logs.scope_logs {
            recorded.counts.logs += scope_logs.log_records.len();
            if !recorded.keep {
                continue;
            }
            let scope = scope_logs.scope.map(|s| s.name).unwrap_or_default();
            recorded
                .logs
                .extend(scope_logs.log_records.into_iter().map(|record| LogRecord {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    record,
                }));
        }
    }
}

/// Records `request` unless the receiver was told to refuse it.
/// Returns false when refused.
fn receive<R>(
    shared: &Shared,
    transport: Transport,
    headers: HeaderMap,
    request: R,
    record: fn(&mut Recorded, R),
) -> bool {
    let admitted = {
        let mut recorded = shared.recorded();
        let admitted = admit(&mut recorded, transport, headers);
        if admitted {
            record(&mut recorded, request);
        }
        admitted
    };
    shared.changed();
    admitted
}

#[derive(Debug, Clone)]
struct Collector(Arc<Shared>);

impl Collector {
    fn export<R, T: Default>(
        &self,
        request: tonic::Request<R>,
        record: fn(&mut Recorded, R),
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        if receive(
            &self.0,
            Transport::Grpc,
            headers,
            request.into_inner(),
            record,
        ) {
            Ok(tonic::Response::new(T::default()))
        } else {
            Err(tonic::Status::unavailable(
                "test receiver told to refuse this export",
            ))
        }
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Collector::export(self, request, record_traces)
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Collector::export(self, request, record_metrics)
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        Collector::export(self, request, record_logs)
    }
}

/// Answers one OTLP/HTTP export the way the specification asks: 415 for
/// anything but protobuf, 400 for a body that does not decode (or an
/// encoding other than gzip), 503 when refusing, otherwise 200 with an empty
/// protobuf response.
fn http_export<R: Message + Default, T: Message + Default>(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    record: fn(&mut Recorded, R),
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/x-protobuf" {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only application/x-protobuf is accepted",
        )
            .into_response();
    }
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.as_bytes())
    {
        None | Some(b"identity") => body.to_vec(),
        Some(b"gzip") => {
            let mut plain = Vec::new();
            if let Err(err) = flate2::read::GzDecoder::new(body.as_ref()).read_to_end(&mut plain) {
                return (StatusCode::BAD_REQUEST, format!("invalid gzip body: {err}"))
                    .into_response();
            }
            plain
        }
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "only gzip content encoding is accepted",
            )
                .into_response();
        }
    };
    let request = match R::decode(body.as_slice()) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    if !receive(shared, Transport::Http, headers.clone(), request, record) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "0")],
            "test receiver told to refuse this export",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        T::default().encode_to_vec(),
    )
        .into_response()
}

async fn http_traces(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
        &shared,
        &headers,
        &body,
        record_traces,
    )
}

async fn http_metrics(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_export::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
        &shared,
        &headers,
        &body,
        record_metrics,
    )
}

async fn http_logs(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    http_export::<ExportLogsServiceRequest, ExportLogsServiceResponse>(
        &shared,
        &headers,
        &body,
        record_logs,
    )
}
