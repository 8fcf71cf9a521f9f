//! The Kubernetes manifests as the cluster would see them, without a
//! cluster: [`render`] runs `kubectl kustomize` on an overlay, and
//! [`container_env`] works out a container's environment the way the kubelet
//! does when it starts the container.
//!
//! The environment rules follow the kubelet's sources (Kubernetes
//! `pkg/kubelet/kubelet_pods.go` `makeEnvironmentVariables`,
//! `third_party/forked/golang/expansion/expand.go`,
//! `pkg/kubelet/envvars/envvars.go`, `pkg/api/v1/resource/helpers.go`):
//!
//! 1. `envFrom`, in order: every key of the ConfigMap's `data` or the
//!    Secret's `data`, with `prefix` in front; a missing source is an error
//!    unless `optional: true`.
//! 2. `env`, in order; each entry replaces an earlier one of the same name:
//!    - a non-empty `value` has its `$(VAR)` references expanded against
//!      what is defined so far (step 1 and the `env` entries ABOVE it), then
//!      the service links; `$$` is a literal `$`, and a reference to
//!      something undefined stays in the value as written. The kubelet says
//!      nothing about that, so [`container_env`] reports it as a problem;
//!    - `valueFrom.configMapKeyRef` / `secretKeyRef` (a missing object or key
//!      skips the variable when `optional: true`, and is an error otherwise);
//!    - `valueFrom.fieldRef` from the pod ([`PodFacts`] for what only exists
//!      once it is scheduled);
//!    - `valueFrom.resourceFieldRef`: the limit or request divided by
//!      `divisor` (default 1), rounded up; a missing limit is the node's
//!      allocatable, a missing request the limit.
//! 3. The service links (`enableServiceLinks`, true unless set false):
//!    `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`, ... for every Service of
//!    the pod's namespace that has a cluster IP, and `KUBERNETES_SERVICE_*`
//!    always; a variable the container defines wins.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

/// One rendered object (`apiVersion`, `kind`, `metadata`, ...).
pub type Object = Value;

/// What can go wrong rendering manifests or resolving an environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// kubectl is not installed (or not where `KUBECTL` says).
    #[error(
        "cannot run {kubectl:?}: {source}. Install kubectl >= 1.27 (it embeds kustomize): \
         https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/, e.g. \
         `curl -LO https://dl.k8s.io/release/v1.32.4/bin/linux/amd64/kubectl && \
         install -m 0755 kubectl /usr/local/bin/kubectl`, or set KUBECTL to its path"
    )]
    KubectlMissing {
        kubectl: String,
        source: std::io::Error,
    },
    /// `kubectl kustomize` ran and failed.
    #[error("`kubectl kustomize {dir}` failed ({status}):\n{stderr}")]
    Kustomize {
        dir: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// The output is not the YAML of objects.
    #[error("`kubectl kustomize {dir}` printed YAML that does not parse: {source}")]
    Yaml {
        dir: String,
        source: serde_yaml_ng::Error,
    },
    /// No such object among the rendered ones.
    #[error("no {what} among the rendered objects")]
    NotFound { what: String },
    /// The environment of a container cannot be resolved as the kubelet
    /// would, or holds a `$(VAR)` the kubelet would leave unexpanded.
    #[error("environment of container {container:?} of {workload}:\n  {}", problems.join("\n  "))]
    Env {
        workload: String,
        container: String,
        problems: Vec<String>,
    },
}

/// What only exists once a pod runs on a node: the values of the `fieldRef`
/// and `resourceFieldRef` sources that the manifests cannot say.
#[derive(Debug, Clone)]
pub struct PodFacts {
    /// `metadata.name` (a Deployment's pods get `<name>-<hash>-<id>`).
    pub name: String,
    /// `metadata.namespace` when the workload has none (`kubectl apply`
    /// without `-n` puts it in `default`).
    pub namespace: String,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `status.podIP`.
    pub pod_ip: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// The node's allocatable CPU: a container's `limits.cpu` when it sets
    /// none.
    pub node_cpu: String,
    /// The node's allocatable memory: a container's `limits.memory` when it
    /// sets none.
    pub node_memory: String,
    /// Cluster IPs of Services by name; a Service missing here (and with no
    /// `spec.clusterIP`) gets one of 10.96.0.10, .11, ... in render order.
    pub cluster_ips: BTreeMap<String, String>,
}

impl Default for PodFacts {
    fn default() -> Self {
        Self {
            name: "pod-0".to_owned(),
            namespace: "default".to_owned(),
            node_name: "node-0".to_owned(),
            pod_ip: "10.244.0.10".to_owned(),
            host_ip: "172.18.0.2".to_owned(),
            node_cpu: "4".to_owned(),
            node_memory: "8Gi".to_owned(),
            cluster_ips: BTreeMap::new(),
        }
    }
}

/// The objects `kubectl kustomize <dir>` renders, in its order.
///
/// Runs `$KUBECTL` when set, `kubectl` otherwise. Returns `Err` when kubectl
/// is missing (saying how to install it), when kustomize fails (with its
/// message), or when its output does not parse.
pub fn render(dir: &Path) -> Result<Vec<Object>, Error> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    render_with(&kubectl, dir)
}

fn render_with(kubectl: &str, dir: &Path) -> Result<Vec<Object>, Error> {
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|source| Error::KubectlMissing {
            kubectl: kubectl.to_owned(),
            source,
        })?;
    let dir = dir.display().to_string();
    if !output.status.success() {
        return Err(Error::Kustomize {
            dir,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    parse(&String::from_utf8_lossy(&output.stdout)).map_err(|source| Error::Yaml { dir, source })
}

/// The objects of a multi-document YAML stream (empty documents skipped).
///
/// Returns `Err` when a document does not parse.
pub fn parse(yaml: &str) -> Result<Vec<Object>, serde_yaml_ng::Error> {
    use serde::Deserialize as _;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let object = Value::deserialize(document)?;
        if !object.is_null() {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// Every object of `kind`, in render order.
pub fn of_kind<'a>(objects: &'a [Object], kind: &'a str) -> impl Iterator<Item = &'a Object> {
    objects.iter().filter(move |object| object["kind"] == kind)
}

/// The object of `kind` named `name` (any namespace).
pub fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> Option<&'a Object> {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
}

/// As [`find`], or `Err` naming what is missing.
pub fn get<'a>(objects: &'a [Object], kind: &str, name: &str) -> Result<&'a Object, Error> {
    find(objects, kind, name).ok_or_else(|| Error::NotFound {
        what: format!("{kind}/{name}"),
    })
}

/// The pod template of a workload (`spec.template` of a Deployment,
/// StatefulSet, DaemonSet or Job; `spec.jobTemplate.spec.template` of a
/// CronJob), or the Pod itself.
pub fn pod_template(workload: &Object) -> Option<&Value> {
    match workload["kind"].as_str()? {
        "Pod" => Some(workload),
        "CronJob" => workload.pointer("/spec/jobTemplate/spec/template"),
        _ => workload.pointer("/spec/template"),
    }
}

/// The container (or init container) `name` of a pod template.
pub fn container<'a>(template: &'a Value, name: &str) -> Option<&'a Value> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|list| template["spec"][list].as_array())
        .flatten()
        .find(|container| container["name"] == name)
}

/// `"Deployment/api"` split and looked up, with its pod template and the
/// container `container`.
///
/// Returns `Err` when one of the three is missing.
pub fn workload_container<'a>(
    objects: &'a [Object],
    workload: &str,
    container_name: &str,
) -> Result<(&'a Object, &'a Value, &'a Value), Error> {
    let (kind, name) = workload.split_once('/').ok_or_else(|| Error::NotFound {
        what: format!("{workload:?} (write it Kind/name)"),
    })?;
    let object = get(objects, kind, name)?;
    let template = pod_template(object).ok_or_else(|| Error::NotFound {
        what: format!("pod template in {workload}"),
    })?;
    let found = container(template, container_name).ok_or_else(|| Error::NotFound {
        what: format!("container {container_name:?} in {workload}"),
    })?;
    Ok((object, template, found))
}

/// The environment the kubelet would give container `container` of
/// `workload` (`"Deployment/api"`), sorted by name (the kubelet's order is
/// a Go map's: none).
///
/// Returns `Err` listing every problem: a source that is missing and not
/// optional, a field or resource the downward API does not offer, and any
/// `$(VAR)` left unexpanded because VAR is undefined or defined only later
/// (the kubelet keeps those literally, which is never what was meant).
pub fn container_env(
    objects: &[Object],
    workload: &str,
    container_name: &str,
    pod: &PodFacts,
) -> Result<Vec<(String, String)>, Error> {
    let (object, template, spec) = workload_container(objects, workload, container_name)?;
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or(&pod.namespace);
    let sources = Sources { objects, namespace };
    let mut problems = Vec::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();

    for from in spec["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let (kind, reference) = if from["configMapRef"].is_object() {
            ("ConfigMap", &from["configMapRef"])
        } else {
            ("Secret", &from["secretRef"])
        };
        let name = reference["name"].as_str().unwrap_or_default();
        match sources.data(kind, name) {
            Ok(Some(data)) => {
                env.extend(
                    data.into_iter()
                        .map(|(key, value)| (format!("{prefix}{key}"), value)),
                );
            }
            Ok(None) if reference["optional"] == true => {}
            Ok(None) => problems.push(format!("envFrom: no {kind} {name:?} in {namespace}")),
            Err(problem) => problems.push(format!("envFrom: {problem}")),
        }
    }

    let services = service_links(objects, template, namespace, pod);
    let entries: Vec<&Value> = spec["env"].as_array().into_iter().flatten().collect();
    for (index, entry) in entries.iter().enumerate() {
        let name = entry["name"].as_str().unwrap_or_default().to_owned();
        let value = entry["value"].as_str().unwrap_or_default();
        let resolved = if !value.is_empty() || entry["valueFrom"].is_null() {
            let (expanded, undefined) = expand(value, |var| {
                env.get(var).or_else(|| services.get(var)).cloned()
            });
            for var in undefined {
                let later = entries[index..]
                    .iter()
                    .any(|other| other["name"] == var.as_str());
                problems.push(if later {
                    format!(
                        "{name}: $({var}) is defined only after {name}; the kubelet expands \
                         a reference with the variables defined BEFORE it, so it stays literal"
                    )
                } else {
                    format!("{name}: $({var}) is not defined; the kubelet leaves it literal")
                });
            }
            Some(expanded)
        } else {
            value_from(&entry["valueFrom"], &sources, template, spec, pod).unwrap_or_else(
                |problem| {
                    problems.push(format!("{name}: {problem}"));
                    None
                },
            )
        };
        if let Some(resolved) = resolved {
            env.insert(name, resolved);
        }
    }

    if !problems.is_empty() {
        return Err(Error::Env {
            workload: workload.to_owned(),
            container: container_name.to_owned(),
            problems,
        });
    }
    for (name, value) in services {
        env.entry(name).or_insert(value);
    }
    Ok(env.into_iter().collect())
}

/// Expands `$(VAR)` in `input` with `lookup` as Kubernetes'
/// `expansion.Expand` does; returns the result and the names `lookup` did
/// not know (kept literally in the result).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut output = String::with_capacity(input.len());
    let mut undefined = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        output.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            // `$$` is an escaped `$`.
            output.push('$');
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix('(')
            && let Some(close) = reference.find(')')
        {
            let var = &reference[..close];
            match lookup(var) {
                Some(value) => output.push_str(&value),
                None => {
                    output.push_str(&format!("$({var})"));
                    undefined.push(var.to_owned());
                }
            }
            rest = &reference[close + 1..];
        } else {
            // A `$` that starts no reference (`$x`, an unclosed `$(`, a
            // final `$`) is kept as it is.
            output.push('$');
            rest = after;
        }
    }
    output.push_str(rest);
    (output, undefined)
}

/// The ConfigMaps and Secrets a container's references are looked up in.
struct Sources<'a> {
    objects: &'a [Object],
    namespace: &'a str,
}

impl Sources<'_> {
    /// `data` of ConfigMap or Secret `name` in the namespace (a Secret's
    /// decoded, with `stringData` merged over it as the API server does);
    /// `None` when there is no such object.
    fn data(&self, kind: &str, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
        let Some(object) = of_kind(self.objects, kind).find(|object| {
            object["metadata"]["name"] == name
                && object["metadata"]["namespace"]
                    .as_str()
                    .is_none_or(|namespace| namespace == self.namespace)
        }) else {
            return Ok(None);
        };
        let strings = |field: &str| -> BTreeMap<String, String> {
            object[field]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect()
        };
        if kind == "ConfigMap" {
            return Ok(Some(strings("data")));
        }
        let mut data = BTreeMap::new();
        for (key, mut encoded) in strings("data") {
            // kustomize folds long values over lines, and Go's base64
            // decoder (the API server's, for `[]byte` fields) skips line
            // breaks.
            encoded.retain(|c| c != '\n' && c != '\r');
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&encoded)
                .map_err(|_| format!("Secret {name:?} key {key:?} is not base64"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("Secret {name:?} key {key:?} is not UTF-8"))?;
            data.insert(key, text);
        }
        data.extend(strings("stringData"));
        Ok(Some(data))
    }
}

/// The value of a `valueFrom`; `None` when an optional source is missing.
fn value_from(
    from: &Value,
    sources: &Sources<'_>,
    template: &Value,
    container: &Value,
    pod: &PodFacts,
) -> Result<Option<String>, String> {
    for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
        let reference = &from[field];
        if !reference.is_object() {
            continue;
        }
        let name = reference["name"].as_str().unwrap_or_default();
        let key = reference["key"].as_str().unwrap_or_default();
        let optional = reference["optional"] == true;
        return match sources.data(kind, name)? {
            None if optional => Ok(None),
            None => Err(format!("no {kind} {name:?} in {}", sources.namespace)),
            Some(data) => match data.get(key) {
                Some(value) => Ok(Some(value.clone())),
                None if optional => Ok(None),
                None => Err(format!("no key {key:?} in {kind} {name:?}")),
            },
        };
    }
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return field_ref(path, template, sources.namespace, pod).map(Some);
    }
    if from["resourceFieldRef"].is_object() {
        return resource_field_ref(&from["resourceFieldRef"], template, container, pod).map(Some);
    }
    Err(format!(
        "valueFrom {from} has no source this resolver knows"
    ))
}

/// A downward-API `fieldRef` (`podFieldSelectorRuntimeValue`).
fn field_ref(
    path: &str,
    template: &Value,
    namespace: &str,
    pod: &PodFacts,
) -> Result<String, String> {
    let meta = |field: &str, key: &str| {
        template["metadata"][field][key]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
    };
    Ok(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => namespace.to_owned(),
        "spec.nodeName" => pod.node_name.clone(),
        "spec.serviceAccountName" => template["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_owned(),
        "status.podIP" | "status.podIPs" => pod.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => pod.host_ip.clone(),
        _ => {
            if let Some(key) = quoted("metadata.labels['") {
                meta("labels", key)
            } else if let Some(key) = quoted("metadata.annotations['") {
                meta("annotations", key)
            } else {
                return Err(format!(
                    "fieldRef {path:?} is not offered by the downward API"
                ));
            }
        }
    })
}

/// A downward-API `resourceFieldRef` (`ExtractContainerResourceValue`):
/// the quantity divided by the divisor, rounded up; CPU in millicores
/// before dividing, memory and storage in bytes.
fn resource_field_ref(
    reference: &Value,
    template: &Value,
    own: &Value,
    pod: &PodFacts,
) -> Result<String, String> {
    let container = match reference["containerName"].as_str() {
        Some(name) if !name.is_empty() => {
            container(template, name).ok_or_else(|| format!("no container {name:?}"))?
        }
        _ => own,
    };
    let resource = reference["resource"].as_str().unwrap_or_default();
    let (bound, what) = resource
        .split_once('.')
        .ok_or_else(|| format!("resource {resource:?} is not limits.X or requests.X"))?;
    let quantity_of = |bound: &str| {
        container["resources"][bound][what]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                container["resources"][bound][what]
                    .as_number()
                    .map(ToString::to_string)
            })
    };
    let limit = quantity_of("limits")
        .filter(|limit| Quantity::parse(limit).is_ok_and(|quantity| !quantity.is_zero()))
        .or_else(|| match what {
            // The kubelet fills a missing limit in with the node's allocatable.
            "cpu" => Some(pod.node_cpu.clone()),
            "memory" => Some(pod.node_memory.clone()),
            _ => None,
        });
    let text = match bound {
        "limits" => limit,
        // The API server defaults a missing request to the limit the
        // manifest gives (not the node's).
        "requests" => quantity_of("requests").or_else(|| quantity_of("limits")),
        _ => {
            return Err(format!(
                "resource {resource:?} is not limits.X or requests.X"
            ));
        }
    }
    .unwrap_or_else(|| "0".to_owned());
    let quantity = Quantity::parse(&text)?;
    let divisor = match &reference["divisor"] {
        Value::Null => Quantity::parse("1")?,
        Value::String(text) => Quantity::parse(text)?,
        other => Quantity::parse(&other.to_string())?,
    };
    let divisor = if divisor.is_zero() {
        Quantity::parse("1")?
    } else {
        divisor
    };
    let (value, per) = match what {
        "cpu" => (quantity.ceil_scaled(1000), divisor.ceil_scaled(1000)),
        "memory" | "ephemeral-storage" => (quantity.ceil_scaled(1), divisor.ceil_scaled(1)),
        _ => {
            return Err(format!(
                "resource {resource:?} is not offered by the downward API"
            ));
        }
    };
    // Rounded up, as the kubelet's math.Ceil.
    let per = per.max(1);
    Ok((value.div_euclid(per) + i128::from(value.rem_euclid(per) != 0)).to_string())
}

/// A Kubernetes resource quantity (`500m`, `128Mi`, `1.5`, `1e3`) as the
/// exact fraction `numerator / denominator`.
#[derive(Debug, Clone, Copy)]
struct Quantity {
    numerator: i128,
    denominator: i128,
}

impl Quantity {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a Kubernetes quantity");
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (mut numerator, mut denominator) = (0i128, 1i128);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let negative = whole.starts_with('-');
        let whole = whole.trim_start_matches(['+', '-']);
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad());
        }
        for digit in whole.chars().chain(fraction.chars()) {
            numerator = numerator * 10 + i128::from(digit.to_digit(10).ok_or_else(bad)?);
        }
        for _ in fraction.chars() {
            denominator *= 10;
        }
        let (multiply, divide): (i128, i128) = match suffix {
            "" => (1, 1),
            "n" => (1, 1_000_000_000),
            "u" => (1, 1_000_000),
            "m" => (1, 1_000),
            "k" => (1_000, 1),
            "M" => (1_000_000, 1),
            "G" => (1_000_000_000, 1),
            "T" => (1_000_000_000_000, 1),
            "P" => (1_000_000_000_000_000, 1),
            "E" => (1_000_000_000_000_000_000, 1),
            "Ki" => (1 << 10, 1),
            "Mi" => (1 << 20, 1),
            "Gi" => (1 << 30, 1),
            "Ti" => (1 << 40, 1),
            "Pi" => (1 << 50, 1),
            "Ei" => (1 << 60, 1),
            exponent => {
                let power: i32 = exponent
                    .strip_prefix(['e', 'E'])
                    .and_then(|power| power.parse().ok())
                    .filter(|power: &i32| power.abs() <= 18)
                    .ok_or_else(bad)?;
                let scale = 10i128.pow(power.unsigned_abs());
                if power >= 0 { (scale, 1) } else { (1, scale) }
            }
        };
        numerator *= multiply;
        denominator *= divide;
        if negative {
            numerator = -numerator;
        }
        Ok(Self {
            numerator,
            denominator,
        })
    }

    fn is_zero(self) -> bool {
        self.numerator == 0
    }

    /// The quantity times `scale`, rounded up (`Quantity.MilliValue()` for
    /// 1000, `Quantity.Value()` for 1).
    fn ceil_scaled(self, scale: i128) -> i128 {
        (self.numerator * scale).div_euclid(self.denominator)
            + i128::from((self.numerator * scale).rem_euclid(self.denominator) != 0)
    }
}

/// The service-link variables of the pod (`getServiceEnvVarMap` and
/// `envvars.FromServices`).
fn service_links(
    objects: &[Object],
    template: &Value,
    namespace: &str,
    pod: &PodFacts,
) -> BTreeMap<String, String> {
    let mut links = BTreeMap::new();
    // The API server's own Service is always linked.
    let kubernetes = serde_json::json!({
        "metadata": {"name": "kubernetes"},
        "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
    });
    add_links(&mut links, &kubernetes, "10.96.0.1");
    if template["spec"]["enableServiceLinks"] == false {
        return links;
    }
    for (index, service) in of_kind(objects, "Service").enumerate() {
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        if service["metadata"]["namespace"]
            .as_str()
            .is_some_and(|theirs| theirs != namespace)
        {
            continue;
        }
        let ip = match service["spec"]["clusterIP"].as_str() {
            // Headless: no links.
            Some("None") => continue,
            Some(ip) if !ip.is_empty() => ip.to_owned(),
            _ => pod
                .cluster_ips
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("10.96.0.{}", 10 + index)),
        };
        add_links(&mut links, service, &ip);
    }
    links
}

fn add_links(links: &mut BTreeMap<String, String>, service: &Value, ip: &str) {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let mut prefix = name.replace(['.', '-'], "_").to_uppercase();
    if prefix.starts_with(|c: char| c.is_ascii_digit()) {
        prefix.insert(0, '_');
    }
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(first) = ports.first() else {
        return;
    };
    links.insert(format!("{prefix}_SERVICE_HOST"), ip.to_owned());
    links.insert(format!("{prefix}_SERVICE_PORT"), first["port"].to_string());
    for (index, port) in ports.iter().enumerate() {
        let number = port["port"].to_string();
        if let Some(port_name) = port["name"].as_str().filter(|name| !name.is_empty()) {
            let port_name = port_name.replace(['.', '-'], "_").to_uppercase();
            links.insert(format!("{prefix}_SERVICE_PORT_{port_name}"), number.clone());
        }
        let protocol = port["protocol"].as_str().unwrap_or("TCP");
        let url = format!("{}://{ip}:{number}", protocol.to_lowercase());
        if index == 0 {
            links.insert(format!("{prefix}_PORT"), url.clone());
        }
        let port_prefix = format!("{prefix}_PORT_{number}_{}", protocol.to_uppercase());
        links.insert(format!("{port_prefix}_PROTO"), protocol.to_lowercase());
        links.insert(format!("{port_prefix}_PORT"), number.clone());
        links.insert(format!("{port_prefix}_ADDR"), ip.to_owned());
        links.insert(port_prefix, url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(yaml: &str) -> Result<BTreeMap<String, String>, Error> {
        let objects = parse(yaml).unwrap();
        container_env(&objects, "Deployment/app", "app", &PodFacts::default())
            .map(|env| env.into_iter().collect())
    }

    fn problems_of(yaml: &str) -> Vec<String> {
        match env_of(yaml) {
            Err(Error::Env { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    /// A Deployment `app` whose container `app` has `container` (indented
    /// for the container's mapping), after `extra` documents; service links
    /// off, so only what the container declares is seen.
    fn deployment(container: &str, extra: &str) -> String {
        format!(
            "{extra}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  \
             namespace: gamenight\nspec:\n  template:\n    metadata:\n      labels:\n        \
             app: gamenight-app\n    spec:\n      enableServiceLinks: false\n      containers:\n        \
             - name: app\n{container}"
        )
    }

    #[test]
    fn parses_every_document_and_skips_empty_ones() {
        let objects = parse("---\nkind: A\nmetadata: {name: a}\n---\n---\nkind: B\n").unwrap();
        assert_eq!(objects.len(), 2);
        assert!(find(&objects, "A", "a").is_some());
        assert!(get(&objects, "A", "b").is_err());
    }

    #[test]
    fn expansion_follows_the_kubelets_rules() {
        let lookup = |var: &str| (var == "A").then(|| "x".to_owned());
        let cases = [
            ("$(A)", "x", 0),
            ("a$(A)b$(A)", "axbx", 0),
            ("$$(A)", "$(A)", 0),
            ("$$$(A)", "$x", 0),
            ("$(B)", "$(B)", 1),
            ("$(A", "$(A", 0),
            ("$A", "$A", 0),
            ("cost $", "cost $", 0),
            ("$()", "$()", 1),
            ("é$(A)é", "éxé", 0),
        ];
        for (input, want, undefined) in cases {
            let (got, missing) = expand(input, lookup);
            assert_eq!((got.as_str(), missing.len()), (want, undefined), "{input}");
        }
    }

    #[test]
    fn a_value_sees_variables_defined_earlier_in_the_container() {
        let env = env_of(&deployment(
            "          env:\n            - {name: HOST, value: db}\n            \
             - {name: URL, value: 'postgres://$(HOST)/x'}\n",
            "",
        ))
        .unwrap();
        assert_eq!(env["URL"], "postgres://db/x");
    }

    #[test]
    fn a_reference_to_a_later_variable_is_reported() {
        let problems = problems_of(&deployment(
            "          env:\n            - {name: URL, value: 'postgres://$(HOST)/x'}\n            \
             - {name: HOST, value: db}\n",
            "",
        ));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("defined only after URL"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_undefined_reference_is_reported() {
        let problems = problems_of(&deployment(
            "          env:\n            - {name: URL, value: 'x$(NOPE)'}\n",
            "",
        ));
        assert!(
            problems[0].contains("$(NOPE) is not defined"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_escaped_reference_is_not_a_problem() {
        let env = env_of(&deployment(
            "          env:\n            - {name: TEXT, value: 'a$$(NOPE)'}\n",
            "",
        ))
        .unwrap();
        assert_eq!(env["TEXT"], "a$(NOPE)");
    }

    #[test]
    fn env_from_comes_first_with_its_prefix_and_env_overrides_it() {
        let extra = "kind: ConfigMap\nmetadata: {name: settings, namespace: gamenight}\n\
                     data: {A: one, B: two}\n---\nkind: Secret\nmetadata: {name: creds}\n\
                     data: {PASSWORD: aHVudGVyMg==}\nstringData: {USER: alice}\n";
        let env = env_of(&deployment(
            "          envFrom:\n            - configMapRef: {name: settings}\n            \
             - secretRef: {name: creds}\n              prefix: DB_\n            \
             - configMapRef: {name: absent, optional: true}\n          env:\n            \
             - {name: B, value: 'overridden $(A) $(DB_USER)'}\n",
            extra,
        ))
        .unwrap();
        assert_eq!(env["A"], "one");
        assert_eq!(env["B"], "overridden one alice");
        assert_eq!(env["DB_PASSWORD"], "hunter2");
        assert!(!env.contains_key("PASSWORD"));
    }

    #[test]
    fn a_missing_source_is_a_problem_unless_optional() {
        let problems = problems_of(&deployment(
            "          envFrom:\n            - secretRef: {name: absent}\n          env:\n            \
             - name: A\n              valueFrom: {configMapKeyRef: {name: absent, key: k}}\n            \
             - name: B\n              valueFrom: {secretKeyRef: {name: absent, key: k, optional: true}}\n",
            "",
        ));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("no Secret \"absent\""));
        assert!(problems[1].starts_with("A: no ConfigMap"));
    }

    #[test]
    fn key_refs_read_config_maps_and_decoded_secrets() {
        // The password folded over two lines, as kustomize writes long ones.
        let extra = "kind: ConfigMap\nmetadata: {name: settings}\ndata: {host: db}\n---\n\
                     kind: Secret\nmetadata: {name: creds}\ndata:\n  password: |\n    aHVu\n    dGVyMg==\n";
        let env = env_of(&deployment(
            "          env:\n            \
             - name: HOST\n              valueFrom: {configMapKeyRef: {name: settings, key: host}}\n            \
             - name: PASSWORD\n              valueFrom: {secretKeyRef: {name: creds, key: password}}\n            \
             - name: GONE\n              valueFrom: {secretKeyRef: {name: creds, key: nope, optional: true}}\n            \
             - {name: URL, value: 'postgres://app:$(PASSWORD)@$(HOST)/x'}\n",
            extra,
        ))
        .unwrap();
        assert_eq!(env["URL"], "postgres://app:hunter2@db/x");
        assert!(!env.contains_key("GONE"));
        let problems = problems_of(&deployment(
            "          env:\n            \
             - name: HOST\n              valueFrom: {configMapKeyRef: {name: settings, key: port}}\n",
            extra,
        ));
        assert!(problems[0].contains("no key \"port\""), "{problems:?}");
    }

    #[test]
    fn field_refs_come_from_the_pod() {
        let env = env_of(&deployment(
            "          env:\n            \
             - name: POD\n              valueFrom: {fieldRef: {fieldPath: metadata.name}}\n            \
             - name: NS\n              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}\n            \
             - name: NODE\n              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}\n            \
             - name: IP\n              valueFrom: {fieldRef: {fieldPath: status.podIP}}\n            \
             - name: HOST_IP\n              valueFrom: {fieldRef: {fieldPath: status.hostIP}}\n            \
             - name: APP\n              valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n            \
             - {name: OTEL_RESOURCE_ATTRIBUTES, value: 'k8s.pod.name=$(POD),k8s.namespace.name=$(NS),k8s.node.name=$(NODE)'}\n",
            "",
        ))
        .unwrap();
        let pod = PodFacts::default();
        assert_eq!(env["IP"], pod.pod_ip);
        assert_eq!(env["HOST_IP"], pod.host_ip);
        assert_eq!(env["APP"], "gamenight-app");
        assert_eq!(
            env["OTEL_RESOURCE_ATTRIBUTES"],
            format!(
                "k8s.pod.name={},k8s.namespace.name=gamenight,k8s.node.name={}",
                pod.name, pod.node_name
            )
        );
    }

    #[test]
    fn resource_field_refs_divide_and_round_up() {
        let env = env_of(&deployment(
            "          resources:\n            limits: {cpu: 1500m, memory: 100Mi}\n            \
             requests: {cpu: 250m}\n          env:\n            \
             - name: CPUS\n              valueFrom: {resourceFieldRef: {resource: limits.cpu}}\n            \
             - name: MILLIS\n              valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}\n            \
             - name: MEBIBYTES\n              valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}\n            \
             - name: REQUESTED_MEMORY\n              valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1M}}\n",
            "",
        ))
        .unwrap();
        assert_eq!(env["CPUS"], "2");
        assert_eq!(env["MILLIS"], "250");
        assert_eq!(env["MEBIBYTES"], "100");
        // No request: the API server defaults it to the limit.
        assert_eq!(env["REQUESTED_MEMORY"], "105");
    }

    #[test]
    fn a_missing_limit_is_the_nodes_allocatable() {
        let env = env_of(&deployment(
            "          env:\n            \
             - name: CPUS\n              valueFrom: {resourceFieldRef: {resource: limits.cpu}}\n",
            "",
        ))
        .unwrap();
        assert_eq!(env["CPUS"], PodFacts::default().node_cpu);
    }

    #[test]
    fn service_links_are_added_unless_turned_off_and_lose_to_declared_variables() {
        let yaml = deployment(
            "          env:\n            - {name: REDIS_PORT, value: '6379'}\n            \
             - {name: ADDR, value: '$(API_SERVICE_HOST):$(API_SERVICE_PORT)'}\n",
            "kind: Service\nmetadata: {name: api, namespace: gamenight}\n\
             spec: {ports: [{name: http, port: 8000}]}\n---\n\
             kind: Service\nmetadata: {name: redis}\nspec: {ports: [{port: 6379}]}\n---\n\
             kind: Service\nmetadata: {name: headless}\nspec: {clusterIP: None, ports: [{port: 1}]}\n",
        );
        let problems = problems_of(&yaml);
        assert!(
            problems[0].contains("$(API_SERVICE_HOST) is not defined"),
            "{problems:?}"
        );

        let linked = yaml.replace("enableServiceLinks: false", "enableServiceLinks: true");
        let env = env_of(&linked).unwrap();
        assert_eq!(env["ADDR"], "10.96.0.10:8000");
        assert_eq!(env["API_PORT"], "tcp://10.96.0.10:8000");
        assert_eq!(env["API_SERVICE_PORT_HTTP"], "8000");
        assert_eq!(env["API_PORT_8000_TCP_ADDR"], "10.96.0.10");
        assert_eq!(env["REDIS_PORT"], "6379");
        assert_eq!(env["REDIS_PORT_6379_TCP"], "tcp://10.96.0.11:6379");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert!(!env.keys().any(|key| key.starts_with("HEADLESS")));
    }

    #[test]
    fn renders_a_kustomization_and_resolves_its_generated_names() {
        let dir = std::env::temp_dir().join(format!("kubernetes-rs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("kustomization.yaml"),
            "namespace: gamenight\nresources: [app.yaml]\n\
             configMapGenerator:\n  - name: settings\n    literals: [HOST=db]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app.yaml"),
            deployment(
                "          envFrom: [{configMapRef: {name: settings}}]\n          \
                 env: [{name: URL, value: 'postgres://$(HOST)'}]\n",
                "",
            ),
        )
        .unwrap();
        let objects = render(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let objects = objects.unwrap();
        // kustomize appends a hash to the generated name and rewrites the
        // reference to it.
        let generated = of_kind(&objects, "ConfigMap").next().unwrap();
        assert_ne!(generated["metadata"]["name"], "settings");
        let env = container_env(&objects, "Deployment/app", "app", &PodFacts::default()).unwrap();
        assert!(
            env.contains(&("URL".to_owned(), "postgres://db".to_owned())),
            "{env:?}"
        );
    }

    #[test]
    fn a_missing_kubectl_says_how_to_install_it() {
        let err = render_with("/nonexistent/kubectl", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("Install kubectl"), "{err}");
    }

    #[test]
    fn a_failing_kustomization_shows_kustomizes_message() {
        let err = render_with("kubectl", Path::new("/nonexistent/overlay")).unwrap_err();
        assert!(matches!(err, Error::Kustomize { .. }), "{err}");
    }
}
