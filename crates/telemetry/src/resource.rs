//! The `Resource` shared by the tracer, meter and logger providers: who is
//! sending this telemetry.

use opentelemetry::KeyValue;
use opentelemetry_resource_detectors::{
    ContainerResourceDetector, HostResourceDetector, OsResourceDetector,
    ServiceInstanceIdResourceDetector,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::{Service, TelemetryConfig};

/// Builds the resource. Later sources win:
/// 1. our defaults (service name and version from Cargo, the namespace if any,
///    `deployment.environment.name`) and what the detectors find (host, OS,
///    container, process id, a fresh `service.instance.id`);
/// 2. `OTEL_RESOURCE_ATTRIBUTES`;
/// 3. `OTEL_SERVICE_NAME`, which the specification puts above all else.
///
/// The process's command line is deliberately not recorded: it can carry
/// credentials.
pub(crate) fn build(service: Service, config: &TelemetryConfig) -> Resource {
    let detectors: [Box<dyn ResourceDetector>; 4] = [
        Box::new(HostResourceDetector::default()),
        Box::new(OsResourceDetector),
        Box::new(ContainerResourceDetector),
        Box::new(ServiceInstanceIdResourceDetector),
    ];
    let mut builder = Resource::builder_empty()
        .with_attributes([
            KeyValue::new(semconv::SERVICE_NAME, service.name),
            KeyValue::new(semconv::SERVICE_VERSION, service.version),
            KeyValue::new(
                semconv::DEPLOYMENT_ENVIRONMENT_NAME,
                config.environment.clone(),
            ),
            KeyValue::new(semconv::PROCESS_PID, i64::from(std::process::id())),
            KeyValue::new(semconv::PROCESS_RUNTIME_NAME, "rust"),
        ])
        .with_attributes(
            service
                .namespace
                .map(|namespace| KeyValue::new(semconv::SERVICE_NAMESPACE, namespace)),
        )
        .with_detectors(&detectors)
        .with_detector(Box::new(EnvResourceDetector::new()));
    if let Some(name) = &config.service_name {
        builder = builder.with_service_name(name.clone());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;
    use opentelemetry::{Key, Value};

    fn get(resource: &Resource, key: &'static str) -> Option<Value> {
        resource.get(&Key::from_static_str(key))
    }

    #[test]
    fn the_resource_names_service_version_namespace_and_environment() {
        let mut config = TelemetryConfig::otlp(Protocol::Grpc, "http://127.0.0.1:1");
        config.environment = "staging".into();
        let resource = build(
            Service::new("api", "1.2.3").with_namespace("gamenight"),
            &config,
        );
        assert_eq!(get(&resource, "service.name"), Some("api".into()));
        assert_eq!(get(&resource, "service.version"), Some("1.2.3".into()));
        assert_eq!(
            get(&resource, "service.namespace"),
            Some("gamenight".into())
        );
        assert_eq!(
            get(&resource, "deployment.environment.name"),
            Some("staging".into())
        );
        assert!(get(&resource, "service.instance.id").is_some());
        assert!(get(&resource, "host.name").is_some());
        assert!(get(&resource, "process.pid").is_some());
        assert_eq!(get(&resource, "process.command_args"), None);
    }

    #[test]
    fn a_service_without_a_namespace_has_no_service_namespace() {
        let config = TelemetryConfig::otlp(Protocol::Grpc, "http://127.0.0.1:1");
        let resource = build(Service::new("api", "1.2.3"), &config);
        assert_eq!(get(&resource, "service.namespace"), None);
    }

    #[test]
    fn otel_service_name_overrides_the_crate_name() {
        let mut config = TelemetryConfig::otlp(Protocol::Grpc, "http://127.0.0.1:1");
        config.service_name = Some("api-canary".into());
        let resource = build(Service::new("api", "1.2.3"), &config);
        assert_eq!(get(&resource, "service.name"), Some("api-canary".into()));
    }
}
