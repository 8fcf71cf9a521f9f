//! Shared set-up: a receiver and a `Telemetry` pointed at it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use otlp_testkit::Receiver;
use telemetry::{Protocol, Service, Telemetry, TelemetryConfig};

/// Runs an async test body once per OTLP transport compiled in.
macro_rules! over_both_protocols {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "grpc")]
        mod grpc {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(telemetry::Protocol::Grpc).await;
                }
            )*
        }
        #[cfg(feature = "http-proto")]
        mod http_protobuf {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(telemetry::Protocol::HttpProtobuf).await;
                }
            )*
        }
    };
}
pub(crate) use over_both_protocols;

/// A receiver and a service exporting to it over `protocol`.
pub(crate) async fn start(protocol: Protocol, service: &'static str) -> (Receiver, Telemetry) {
    let receiver = Receiver::start().await.expect("start the OTLP receiver");
    let telemetry = telemetry_for(&receiver, protocol, service);
    (receiver, telemetry)
}

/// A service (in the `gamenight` namespace) exporting to `receiver` over
/// `protocol`, console log discarded.
pub(crate) fn telemetry_for(
    receiver: &Receiver,
    protocol: Protocol,
    service: &'static str,
) -> Telemetry {
    Telemetry::build_with_writer(
        Service::new(service, "1.2.3").with_namespace("gamenight"),
        &config(receiver, protocol),
        std::io::sink,
    )
    .expect("build telemetry")
}

/// A transport this build has, for tests that are about something else.
pub(crate) fn any_protocol() -> Protocol {
    if cfg!(feature = "http-proto") {
        Protocol::HttpProtobuf
    } else {
        Protocol::Grpc
    }
}

/// Every signal to `receiver` over `protocol`.
pub(crate) fn config(receiver: &Receiver, protocol: Protocol) -> TelemetryConfig {
    let endpoint = match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        Protocol::HttpProtobuf => receiver.http_endpoint(),
    };
    TelemetryConfig::otlp(protocol, endpoint)
}

/// A console log captured in memory.
#[derive(Clone, Default)]
pub(crate) struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Console {
    type Writer = Console;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
