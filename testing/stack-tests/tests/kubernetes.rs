//! deploy/kubernetes, checked without a cluster: every overlay rendered by
//! `kubectl kustomize` and validated by `kubernetes-validate --strict`, and
//! the rendered objects held to what the services, Alloy and Kubernetes
//! need — each container's environment as the kubelet would make it,
//! ports, probes, RBAC, the traces tier's Service, and the Alloy configuration
//! each Alloy workload mounts.
//!
//! Each check is a function returning the problems it finds, so that the
//! `*_is_reported` tests can break a rendered copy in memory and show the
//! check notices.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use stack_tests::alloy::{self, Block, schema};
use stack_tests::kubernetes::{self, Object, PodFacts};
use test_support::docs::{repo_file, repo_path};

const OVERLAYS: [&str; 3] = ["local", "grafana-cloud", "sampling"];
const NAMESPACE: &str = "gamenight";
/// The Kubernetes release the manifests are validated for: the newest
/// kubernetes-validate 1.37.0 knows (its default).
const KUBERNETES_VERSION: &str = "1.37.0";
/// Where scripts/test.sh installs kubernetes-validate.
const KUBERNETES_VALIDATE: &str = "target/tools/venv/bin/kubernetes-validate";

/// The three services: workload, listen-address variable, Service port.
const SERVICES: [(&str, &str); 3] = [
    ("api", "API_LISTEN_ADDR"),
    ("worker", "WORKER_LISTEN_ADDR"),
    ("bot", "BOT_LISTEN_ADDR"),
];

// ------------------------------------------------------------- rendering --

/// Each overlay rendered once, with the Secrets the README has the user
/// create added (the overlays without generated ones).
fn rendered(overlay: &str) -> Vec<Object> {
    static RENDERED: OnceLock<BTreeMap<&'static str, Vec<Object>>> = OnceLock::new();
    RENDERED
        .get_or_init(|| {
            OVERLAYS
                .iter()
                .map(|&name| {
                    let mut objects = kubernetes::render(&overlay_dir(name))
                        .unwrap_or_else(|err| panic!("{err}"));
                    if name != "local" {
                        objects.extend(documented_secrets());
                    }
                    (name, objects)
                })
                .collect()
        })
        .get(overlay)
        .unwrap()
        .clone()
}

fn overlay_dir(name: &str) -> PathBuf {
    repo_path(&format!("deploy/kubernetes/overlays/{name}"))
}

/// The `kubectl create secret` commands of deploy/kubernetes/README.md, run
/// with `--dry-run=client -o json` (no cluster needed): the Secrets a user
/// following it has.
fn documented_secrets() -> Vec<Object> {
    let commands = readme_commands();
    let creates: Vec<&String> = commands
        .iter()
        .filter(|command| command.contains("create secret generic"))
        .collect();
    assert!(
        creates.len() >= 2,
        "the README creates the Secrets gamenight-connections and grafana-cloud: {commands:#?}"
    );
    creates
        .into_iter()
        .map(|command| {
            let output = Command::new("sh")
                .arg("-c")
                .arg(format!("{command} --dry-run=client -o json"))
                .output()
                .unwrap();
            assert!(output.status.success(), "{command}: {output:?}");
            serde_json::from_slice(&output.stdout).unwrap()
        })
        .collect()
}

/// The `kubectl …` commands of the README's ```sh blocks, continuation
/// lines joined.
fn readme_commands() -> Vec<String> {
    let readme = repo_file("deploy/kubernetes/README.md");
    let mut commands = Vec::new();
    for block in test_support::docs::code_blocks(&readme, "sh") {
        let mut current = String::new();
        for line in block {
            if let Some(start) = line.strip_suffix('\\') {
                current.push_str(start);
                continue;
            }
            current.push_str(&line);
            let command = std::mem::take(&mut current);
            if command.starts_with("kubectl") {
                commands.push(command);
            }
        }
    }
    commands
}

fn pod() -> PodFacts {
    PodFacts {
        namespace: NAMESPACE.to_owned(),
        ..PodFacts::default()
    }
}

fn env_of(objects: &[Object], workload: &str, container: &str) -> BTreeMap<String, String> {
    kubernetes::container_env(objects, workload, container, &pod())
        .unwrap_or_else(|err| panic!("{err}"))
        .into_iter()
        .collect()
}

/// `Kind/name` of every workload with a pod template.
fn workloads(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .filter(|object| kubernetes::pod_template(object).is_some())
        .map(|object| {
            format!(
                "{}/{}",
                object["kind"].as_str().unwrap(),
                object["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn template_of<'a>(objects: &'a [Object], workload: &str) -> &'a Value {
    let (kind, name) = workload.split_once('/').unwrap();
    kubernetes::pod_template(kubernetes::get(objects, kind, name).unwrap()).unwrap()
}

/// Containers and init containers of a pod template.
fn containers(template: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|field| template["spec"][field].as_array().into_iter().flatten())
        .collect()
}

fn object_mut<'a>(objects: &'a mut [Object], kind: &str, name: &str) -> &'a mut Object {
    objects
        .iter_mut()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

fn main_container_mut<'a>(objects: &'a mut [Object], kind: &str, name: &str) -> &'a mut Value {
    &mut object_mut(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]
}

// ------------------------------------------------- kubernetes-validate --

/// `kubernetes-validate --strict` on `objects`: its complaints, or `Err`
/// when it is not installed.
fn validate(objects: &[Object]) -> Result<Vec<String>, String> {
    let tool = repo_path(KUBERNETES_VALIDATE);
    if !tool.exists() {
        return Err(format!(
            "{} is missing: scripts/test.sh installs it (pip install \
             kubernetes-validate==1.37.0 into target/tools/venv)",
            tool.display()
        ));
    }
    // JSON documents: YAML that reads the same in YAML 1.1 (Python's) and
    // 1.2, where an unquoted `no` would be a boolean in one only.
    let yaml: String = objects
        .iter()
        .map(|object| format!("---\n{object}\n"))
        .collect();
    let mut child = Command::new(&tool)
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("{}: {err}", tool.display()))?;
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut problems: Vec<String> = said
        .lines()
        .filter(|line| line.starts_with("ERROR") || line.starts_with("WARN"))
        .map(str::to_owned)
        .collect();
    if !output.status.success() && problems.is_empty() {
        problems.push(said);
    }
    Ok(problems)
}

#[test]
fn every_overlay_renders_and_passes_kubernetes_validate_strict() {
    for overlay in OVERLAYS {
        // The user's Secrets are made by kubectl itself: validated too.
        let problems = validate(&rendered(overlay)).unwrap_or_else(|err| panic!("{err}"));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_field_kubernetes_does_not_know_is_reported() {
    let mut objects = rendered("local");
    object_mut(&mut objects, "Service", "api")["spec"]["ports"][0]["targetPortt"] = json!(8000);
    let problems = validate(&objects).unwrap_or_else(|err| panic!("{err}"));
    assert!(
        problems
            .iter()
            .any(|problem| problem.contains("targetPortt")),
        "{problems:?}"
    );
}

// --------------------------------------------------------- environment --

/// Every container's environment as the kubelet would make it: sources
/// that exist, and no `$(VAR)` left literal (undefined, or defined only
/// after its use).
fn env_problems(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in workloads(objects) {
        for container in containers(template_of(objects, &workload)) {
            let name = container["name"].as_str().unwrap();
            if let Err(err) = kubernetes::container_env(objects, &workload, name, &pod()) {
                problems.push(err.to_string());
            }
        }
    }
    problems
}

#[test]
fn every_containers_environment_resolves_and_every_reference_is_defined_before_use() {
    for overlay in OVERLAYS {
        let problems = env_problems(&rendered(overlay));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_reference_to_a_variable_defined_after_it_is_reported() {
    let mut objects = rendered("local");
    let env = main_container_mut(&mut objects, "Deployment", "api")["env"]
        .as_array_mut()
        .unwrap();
    let at = env
        .iter()
        .position(|entry| entry["name"] == "OTEL_RESOURCE_ATTRIBUTES")
        .unwrap();
    let moved = env.remove(at);
    env.insert(0, moved);
    let problems = env_problems(&objects);
    assert!(
        problems
            .iter()
            .any(|problem| problem.contains("$(K8S_POD_NAME) is defined only after")),
        "{problems:?}"
    );
}

#[test]
fn the_resource_attributes_carry_the_pod_namespace_and_node() {
    for overlay in OVERLAYS {
        let objects = rendered(overlay);
        for (service, _) in SERVICES {
            let env = env_of(&objects, &format!("Deployment/{service}"), service);
            let attributes: BTreeMap<&str, &str> = env["OTEL_RESOURCE_ATTRIBUTES"]
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .collect();
            let pod = pod();
            assert_eq!(attributes.get("k8s.pod.name"), Some(&pod.name.as_str()));
            assert_eq!(attributes.get("k8s.namespace.name"), Some(&NAMESPACE));
            assert_eq!(
                attributes.get("k8s.node.name"),
                Some(&pod.node_name.as_str())
            );
            assert_eq!(env["OTEL_SERVICE_NAME"], service);
            assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://alloy:4318");
        }
    }
}

// ---------------------------------------------- what the services need --

/// Variables RUNTIME_CONFIG.md marks "(required)" for `service`.
fn documented_required(service: &str) -> Vec<String> {
    repo_file("RUNTIME_CONFIG.md")
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (var, read_by) = (cells.get(1)?, cells.get(2)?);
            let read_by = read_by.strip_suffix("(required)")?;
            read_by
                .split(',')
                .any(|name| name.trim() == service)
                .then(|| var.trim_matches('`').to_owned())
        })
        .collect()
}

/// What each service's own configuration parsing says of the environment
/// its container gets (the code's rules: required variables, values that
/// parse, exactly one of the bot's webhook and dry run), plus RUNTIME_CONFIG.md's
/// "(required)" ones; and the same for `api migrate` (the Job) and
/// `api migrate --wait` (the init containers).
fn service_config_problems(objects: &[Object]) -> Vec<String> {
    use service_runtime::cli::from_vars;
    let mut problems = Vec::new();
    for (service, _) in SERVICES {
        let workload = format!("Deployment/{service}");
        let env = match kubernetes::container_env(objects, &workload, service, &pod()) {
            Ok(env) => env,
            Err(err) => {
                problems.push(err.to_string());
                continue;
            }
        };
        let vars = env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()));
        let parsed = match service {
            "api" => from_vars::<api::config::Config>(vars).map(drop),
            "worker" => from_vars::<worker::config::Config>(vars).map(drop),
            _ => from_vars::<bot::config::Config>(vars).map(drop),
        };
        if let Err(err) = parsed {
            problems.push(format!("{workload}: {err}"));
        }
        for var in documented_required(service) {
            if !env
                .iter()
                .any(|(name, value)| *name == var && !value.is_empty())
            {
                problems.push(format!(
                    "{workload}: RUNTIME_CONFIG.md says {service} requires {var}, which is not set"
                ));
            }
        }
    }
    for workload in workloads(objects) {
        for container in containers(template_of(objects, &workload)) {
            let image = container["image"].as_str().unwrap_or_default();
            if !image.starts_with("gamenight-api") || container["name"] == "api" {
                continue;
            }
            let name = container["name"].as_str().unwrap();
            let args: Vec<&str> = container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let parsed = api::config::command().try_get_matches_from(
                ["api"]
                    .into_iter()
                    .chain(args.iter().copied())
                    .chain(["--database-url", "postgres://u@db/gamenight"]),
            );
            if let Err(err) = parsed.map(|matches| matches.subcommand_name() == Some("migrate")) {
                problems.push(format!(
                    "{workload} {name}: `api {}`: {err}",
                    args.join(" ")
                ));
            }
            match kubernetes::container_env(objects, &workload, name, &pod()) {
                Ok(env) => {
                    let vars = env.iter().map(|(n, v)| (n.as_str(), v.as_str()));
                    if let Err(err) = from_vars::<api::config::Migrate>(vars) {
                        problems.push(format!("{workload} {name}: {err}"));
                    }
                }
                Err(err) => problems.push(err.to_string()),
            }
        }
    }
    problems
}

#[test]
fn every_service_gets_every_variable_it_requires() {
    for overlay in OVERLAYS {
        let problems = service_config_problems(&rendered(overlay));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_missing_variable_is_reported() {
    let mut objects = rendered("grafana-cloud");
    main_container_mut(&mut objects, "Deployment", "worker")["env"]
        .as_array_mut()
        .unwrap()
        .retain(|entry| entry["name"] != "RABBITMQ_URL");
    let problems = service_config_problems(&objects);
    assert!(
        problems.iter().any(
            |problem| problem.contains("Deployment/worker") && problem.contains("RABBITMQ_URL")
        ),
        "{problems:?}"
    );
}

#[test]
fn the_bot_without_its_webhook_is_reported() {
    // The user's Secret without DISCORD_WEBHOOK_URL: the bot would refuse
    // to start, and the check says so.
    let mut objects = rendered("grafana-cloud");
    object_mut(&mut objects, "Secret", "gamenight-connections")["data"]
        .as_object_mut()
        .unwrap()
        .remove("DISCORD_WEBHOOK_URL");
    let problems = service_config_problems(&objects);
    assert!(
        problems
            .iter()
            .any(|problem| problem.contains("Deployment/bot")
                && problem.contains("DISCORD_WEBHOOK_URL")),
        "{problems:?}"
    );
}

#[test]
fn the_services_wait_for_the_migrate_job_and_never_migrate_themselves() {
    for overlay in OVERLAYS {
        let objects = rendered(overlay);
        let job = template_of(&objects, "Job/migrate");
        assert_eq!(job["spec"]["containers"][0]["args"], json!(["migrate"]));
        for (service, _) in SERVICES {
            let template = template_of(&objects, &format!("Deployment/{service}"));
            let init = &template["spec"]["initContainers"][0];
            assert_eq!(init["args"], json!(["migrate", "--wait"]), "{service}");
            assert!(init["image"].as_str().unwrap().starts_with("gamenight-api"));
        }
        let api = env_of(&objects, "Deployment/api", "api");
        assert_eq!(api["API_MIGRATE_ON_START"], "false", "{overlay}");
    }
}

// ------------------------------------------------- ports and probes --

/// The paths a service's HTTP server routes, read from its sources: the
/// shared `/healthz` (service-runtime's health_routes) and its own.
fn served_paths(service: &str) -> BTreeSet<String> {
    let route = regex::Regex::new(r#"route\(\s*"(/[^"]*)""#).unwrap();
    let shared = repo_file("crates/service-runtime/src/lib.rs");
    let own = repo_file(&format!("services/{service}/src/lib.rs"));
    assert!(
        own.contains("health_routes()"),
        "{service} serves health_routes"
    );
    [shared, own]
        .iter()
        .flat_map(|source| route.captures_iter(source))
        .map(|captures| captures[1].to_owned())
        .collect()
}

/// The default of the option read from `var` in `command`.
fn default_of(command: &clap::Command, var: &str) -> String {
    command
        .get_arguments()
        .find(|arg| arg.get_env().is_some_and(|env| env == var))
        .and_then(|arg| arg.get_default_values().first())
        .unwrap_or_else(|| panic!("{var} has a default"))
        .to_string_lossy()
        .into_owned()
}

fn port_of(address: &str) -> u64 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

/// The container port a Service's or probe's `port` means in `container`.
fn container_port(container: &Value, port: &Value) -> Option<u64> {
    match port {
        Value::String(name) => container["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64()),
        other => other.as_u64(),
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|selector| {
        !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
    })
}

/// Listen address, container port, Service port, probes and routes agree
/// for each service, and with the defaults its configuration declares.
fn port_problems(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for (service, listen_var) in SERVICES {
        let command = match service {
            "api" => api::config::command(),
            "worker" => worker::config::command(),
            _ => bot::config::command(),
        };
        let default_port = port_of(&default_of(&command, listen_var));
        let workload = format!("Deployment/{service}");
        let template = template_of(objects, &workload);
        let container = kubernetes::container(template, service).unwrap();
        let env = env_of(objects, &workload, service);
        let listen = env
            .get(listen_var)
            .map_or(default_port, |addr| port_of(addr));
        if listen != default_port {
            problems.push(format!(
                "{workload}: {listen_var} port {listen}, the service's default is {default_port}"
            ));
        }
        if container_port(container, &json!("http")) != Some(listen) {
            problems.push(format!("{workload}: container port http is not {listen}"));
        }
        match kubernetes::find(objects, "Service", service) {
            None => problems.push(format!("no Service {service}")),
            Some(svc) => {
                if !labels_match(&svc["spec"]["selector"], &template["metadata"]["labels"]) {
                    problems.push(format!("Service {service} does not select {workload}"));
                }
                let ports = svc["spec"]["ports"].as_array().unwrap();
                let ok = ports.iter().any(|p| {
                    p["port"].as_u64() == Some(default_port)
                        && container_port(container, &p["targetPort"]) == Some(listen)
                });
                if !ok {
                    problems.push(format!(
                        "Service {service} has no port {default_port} to the container's {listen}"
                    ));
                }
            }
        }
        let served = served_paths(service);
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = &container[probe]["httpGet"];
            let actual = get["path"].as_str().unwrap_or_default();
            if actual != path || !served.contains(actual) {
                problems.push(format!(
                    "{workload} {probe}: path {actual:?}, but {service} serves {served:?} \
                     ({path} for this probe)"
                ));
            }
            if container_port(container, &get["port"]) != Some(listen) {
                problems.push(format!(
                    "{workload} {probe}: port {} is not the listen port {listen}",
                    get["port"]
                ));
            }
        }
    }
    // The bot asks the api through its Service.
    let bot = env_of(objects, "Deployment/bot", "bot");
    let api_port = port_of(&default_of(&api::config::command(), "API_LISTEN_ADDR"));
    if bot.get("API_BASE_URL").map(String::as_str) != Some(&format!("http://api:{api_port}")) {
        problems.push(format!(
            "bot API_BASE_URL {:?} is not the api Service",
            bot.get("API_BASE_URL")
        ));
    }
    problems
}

#[test]
fn ports_services_and_probes_match_the_services() {
    for overlay in OVERLAYS {
        let problems = port_problems(&rendered(overlay));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_wrong_probe_path_or_port_is_reported() {
    let mut objects = rendered("local");
    main_container_mut(&mut objects, "Deployment", "worker")["readinessProbe"]["httpGet"]["path"] =
        json!("/ready");
    main_container_mut(&mut objects, "Deployment", "bot")["livenessProbe"]["httpGet"]["port"] =
        json!(8080);
    let problems = port_problems(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Deployment/worker readinessProbe: path \"/ready\"")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Deployment/bot livenessProbe: port 8080")),
        "{problems:?}"
    );
}

// --------------------------------------------------------------- Alloy --

/// The Alloy workloads: `(workload, container)`.
fn alloy_workloads(objects: &[Object]) -> Vec<String> {
    workloads(objects)
        .into_iter()
        .filter(|workload| {
            containers(template_of(objects, workload))
                .iter()
                .any(|container| {
                    container["image"]
                        .as_str()
                        .is_some_and(|image| image.starts_with("grafana/alloy:"))
                })
        })
        .collect()
}

/// What `container` mounts at `path`, and the volume of pod `template` it
/// mounts.
fn mounted_volume<'a>(
    template: &'a Value,
    container: &'a Value,
    path: &str,
) -> Option<(&'a Value, &'a Value)> {
    let mount = container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|mount| mount["mountPath"] == path)?;
    let volume = template["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|volume| volume["name"] == mount["name"])?;
    Some((mount, volume))
}

/// The files Alloy loads as its configuration in `workload`: the directory
/// `alloy run` is given, as its volume fills it (ConfigMap keys, or the
/// items chosen), top-level `*.alloy` files only, as Alloy reads them.
fn alloy_files(objects: &[Object], workload: &str) -> Vec<(String, String)> {
    let template = template_of(objects, workload);
    let container = kubernetes::container(template, "alloy").unwrap();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let dir = args.last().unwrap().trim_end_matches('/');
    let (_, volume) = mounted_volume(template, container, dir)
        .unwrap_or_else(|| panic!("{workload}: nothing mounted at {dir}"));
    let sources: Vec<&Value> = if volume["projected"].is_object() {
        volume["projected"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|source| &source["configMap"])
            .collect()
    } else {
        vec![&volume["configMap"]]
    };
    let mut files = Vec::new();
    for source in sources {
        let name = source["name"].as_str().unwrap();
        let data = &kubernetes::get(objects, "ConfigMap", name).unwrap()["data"];
        match source["items"].as_array() {
            Some(items) => {
                for item in items {
                    let key = item["key"].as_str().unwrap();
                    let text = data[key]
                        .as_str()
                        .unwrap_or_else(|| panic!("{workload}: ConfigMap {name} has no {key}"));
                    files.push((item["path"].as_str().unwrap().to_owned(), text.to_owned()));
                }
            }
            None => files.extend(
                data.as_object()
                    .unwrap()
                    .iter()
                    .map(|(key, text)| (key.clone(), text.as_str().unwrap().to_owned())),
            ),
        }
    }
    files.retain(|(path, _)| path.ends_with(".alloy") && !path.contains('/'));
    files.sort();
    files
}

/// The blocks of every file `workload`'s Alloy loads, or the parse errors.
fn alloy_config(objects: &[Object], workload: &str) -> Result<Vec<Block>, Vec<String>> {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for (path, text) in alloy_files(objects, workload) {
        match alloy::parse(&text) {
            Ok(parsed) => blocks.extend(parsed),
            Err(err) => errors.push(format!("{workload} {path}: {err}")),
        }
    }
    if errors.is_empty() {
        Ok(blocks)
    } else {
        Err(errors)
    }
}

/// The existing Alloy checks on what each Alloy workload loads: it parses,
/// every component and argument exists at the pinned tag, every reference
/// is defined, no id is defined twice, and the values Alloy validates hold
/// with the environment the container gets.
fn alloy_problems(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in alloy_workloads(objects) {
        let blocks = match alloy_config(objects, &workload) {
            Ok(blocks) => blocks,
            Err(errors) => {
                problems.extend(errors);
                continue;
            }
        };
        let mut ids = BTreeSet::new();
        for block in blocks.iter().filter(|block| block.label.is_some()) {
            if !ids.insert(block.id()) {
                problems.push(format!("{workload}: {} is defined twice", block.id()));
            }
        }
        for block in &blocks {
            for reference in block.references() {
                let defined = blocks
                    .iter()
                    .filter(|b| b.label.is_some())
                    .any(|b| reference.starts_with(&format!("{}.", b.id())));
                if !defined {
                    problems.push(format!(
                        "{workload}: {} refers to {reference}, which is not defined",
                        block.id()
                    ));
                }
            }
        }
        problems.extend(
            schema::check_names(&blocks)
                .into_iter()
                .map(|problem| format!("{workload}: {problem}")),
        );
        let env = env_of(objects, &workload, "alloy");
        let lookup = |name: &str| env.get(name).cloned().unwrap_or_default();
        problems.extend(
            schema::check_values(&blocks, &lookup)
                .into_iter()
                .map(|problem| format!("{workload}: {problem}")),
        );
        // Every variable read is set, but the Grafana Cloud credentials
        // where nothing needs them (the local backend takes none).
        let optional = [
            "GRAFANA_CLOUD_OTLP_INSTANCE_ID",
            "GRAFANA_CLOUD_PROMETHEUS_INSTANCE_ID",
            "GRAFANA_CLOUD_PROFILES_INSTANCE_ID",
            "GRAFANA_CLOUD_API_TOKEN",
        ];
        let remote = env
            .get("GRAFANA_CLOUD_OTLP_ENDPOINT")
            .is_some_and(|endpoint| endpoint.starts_with("https://"));
        for var in blocks
            .iter()
            .flat_map(Block::env_vars)
            .collect::<BTreeSet<_>>()
        {
            let may_be_empty = !remote && optional.contains(&var.as_str());
            if env.get(&var).is_none_or(String::is_empty) && !may_be_empty {
                problems.push(format!(
                    "{workload}: its Alloy reads {var}, which is not set"
                ));
            }
        }
    }
    problems
}

#[test]
fn the_alloy_configuration_each_alloy_loads_passes_the_alloy_checks() {
    for overlay in OVERLAYS {
        let objects = rendered(overlay);
        assert!(
            !alloy_workloads(&objects).is_empty(),
            "{overlay} runs Alloy"
        );
        let problems = alloy_problems(&objects);
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn each_tier_loads_the_files_of_the_contract() {
    let files = |overlay: &str, workload: &str| -> Vec<String> {
        alloy_files(&rendered(overlay), workload)
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    };
    let receivers = [
        "config.alloy",
        "export.alloy",
        "kubernetes.alloy",
        "loadbalancing.alloy",
        "profiles.alloy",
    ];
    for overlay in OVERLAYS {
        assert_eq!(files(overlay, "Deployment/alloy"), receivers, "{overlay}");
    }
    for overlay in ["local", "grafana-cloud"] {
        assert_eq!(
            files(overlay, "StatefulSet/alloy-traces"),
            [
                "export.alloy",
                "span-metrics.alloy",
                "traces-tier.alloy",
                "traces.alloy"
            ],
            "{overlay}"
        );
    }
    assert_eq!(
        files("sampling", "StatefulSet/alloy-traces"),
        [
            "export.alloy",
            "sampling.alloy",
            "span-metrics.alloy",
            "traces-tier.alloy"
        ]
    );
    // The shared files are compose's very files, not copies.
    let objects = rendered("sampling");
    for (path, text) in alloy_files(&objects, "Deployment/alloy")
        .into_iter()
        .chain(alloy_files(&objects, "StatefulSet/alloy-traces"))
    {
        let shared = repo_path(&format!("grafana-alloy/{path}"));
        if shared.exists() {
            assert_eq!(text, std::fs::read_to_string(shared).unwrap(), "{path}");
        }
    }
}

#[test]
fn a_hinge_defined_twice_or_not_at_all_is_reported() {
    // traces.alloy left in beside loadbalancing.alloy: batch "traces" twice.
    let mut objects = rendered("local");
    let volume = &mut object_mut(&mut objects, "Deployment", "alloy")["spec"]["template"]["spec"]["volumes"]
        [0]["projected"]["sources"];
    volume[0]["configMap"]["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "traces.alloy", "path": "traces.alloy"}));
    let problems = alloy_problems(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("otelcol.processor.batch.traces is defined twice")),
        "{problems:?}"
    );

    // kubernetes.alloy left out: resourcedetection "default" missing.
    let mut objects = rendered("local");
    object_mut(&mut objects, "Deployment", "alloy")["spec"]["template"]["spec"]["volumes"][0]
        ["projected"]["sources"]
        .as_array_mut()
        .unwrap()
        .retain(|source| {
            !source["configMap"]["name"]
                .as_str()
                .unwrap()
                .starts_with("alloy-kubernetes")
        });
    let problems = alloy_problems(&objects);
    assert!(
        problems.iter().any(|p| p
            .contains("otelcol.processor.resourcedetection.default.input, which is not defined")),
        "{problems:?}"
    );
}

// ------------------------------------------------------------ Profiles --

/// api, worker and bot push profiles (PYROSCOPE_SERVER_ADDRESS) to a
/// Service that selects the receivers' pods on a port that reaches the
/// container port pyroscope.receive_http listens on, in the files the
/// receivers load; the traces tier runs no receiver of its own.
fn profile_problems(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    let receivers = "Deployment/alloy";
    let blocks = match alloy_config(objects, receivers) {
        Ok(blocks) => blocks,
        Err(errors) => return errors,
    };
    let listen = blocks
        .iter()
        .find(|block| block.name == "pyroscope.receive_http")
        .and_then(|block| block.block("http"))
        .and_then(|http| match http.attribute("listen_port") {
            Some(alloy::Value::Number(port)) => port.parse::<u64>().ok(),
            _ => None,
        });
    let Some(listen) = listen else {
        return vec![format!(
            "{receivers}: its Alloy runs no pyroscope.receive_http with a listen_port"
        )];
    };
    let template = template_of(objects, receivers);
    let container = kubernetes::container(template, "alloy").unwrap();
    for workload in alloy_workloads(objects) {
        if workload != receivers
            && alloy_config(objects, &workload)
                .unwrap_or_default()
                .iter()
                .any(|block| block.name.starts_with("pyroscope."))
        {
            problems.push(format!(
                "{workload} loads profiles.alloy: only the receivers get profiles"
            ));
        }
    }
    for (service, _) in SERVICES {
        let workload = format!("Deployment/{service}");
        let env = env_of(objects, &workload, service);
        let Some(address) = env.get("PYROSCOPE_SERVER_ADDRESS") else {
            problems.push(format!("{workload}: no PYROSCOPE_SERVER_ADDRESS"));
            continue;
        };
        let Ok(url) = url::Url::parse(address) else {
            problems.push(format!(
                "{workload}: PYROSCOPE_SERVER_ADDRESS {address:?} is no URL"
            ));
            continue;
        };
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().map(u64::from);
        let Some(svc) = kubernetes::find(objects, "Service", host) else {
            problems.push(format!(
                "{workload}: PYROSCOPE_SERVER_ADDRESS {address} names no Service"
            ));
            continue;
        };
        if !labels_match(&svc["spec"]["selector"], &template["metadata"]["labels"]) {
            problems.push(format!(
                "{workload}: PYROSCOPE_SERVER_ADDRESS {address}: Service {host} does not select {receivers}"
            ));
        }
        let reaches = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| {
                p["port"].as_u64() == port
                    && container_port(container, &p["targetPort"]) == Some(listen)
            });
        if !reaches {
            problems.push(format!(
                "{workload}: PYROSCOPE_SERVER_ADDRESS {address}: Service {host} has no port {} to \
                 the receivers' pyroscope.receive_http on {listen}",
                port.unwrap_or_default()
            ));
        }
    }
    problems
}

#[test]
fn the_services_push_profiles_to_the_receivers_pyroscope_receive_http() {
    for overlay in OVERLAYS {
        let problems = profile_problems(&rendered(overlay));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_profile_address_the_receivers_do_not_serve_is_reported() {
    // The Service alloy without its profiles port.
    let mut objects = rendered("local");
    object_mut(&mut objects, "Service", "alloy")["spec"]["ports"]
        .as_array_mut()
        .unwrap()
        .retain(|port| port["port"] != 4040);
    let problems = profile_problems(&objects);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].contains("Deployment/api: PYROSCOPE_SERVER_ADDRESS http://alloy:4040: Service alloy has no port 4040"),
        "{problems:?}"
    );

    // The worker pointed at the traces tier.
    let mut objects = rendered("local");
    let worker = main_container_mut(&mut objects, "Deployment", "worker");
    for var in worker["env"].as_array_mut().unwrap() {
        if var["name"] == "PYROSCOPE_SERVER_ADDRESS" {
            var["value"] = json!("http://alloy-traces:4040");
        }
    }
    let problems = profile_problems(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Service alloy-traces does not select Deployment/alloy")),
        "{problems:?}"
    );

    // profiles.alloy loaded by the traces tier too.
    let mut objects = rendered("local");
    object_mut(&mut objects, "StatefulSet", "alloy-traces")["spec"]["template"]["spec"]["volumes"]
        [0]["projected"]["sources"][0]["configMap"]["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "profiles.alloy", "path": "profiles.alloy"}));
    assert_eq!(
        profile_problems(&objects),
        ["StatefulSet/alloy-traces loads profiles.alloy: only the receivers get profiles"]
    );

    // profiles.alloy left out of the receivers' directory.
    let mut objects = rendered("local");
    object_mut(&mut objects, "Deployment", "alloy")["spec"]["template"]["spec"]["volumes"][0]
        ["projected"]["sources"][0]["configMap"]["items"]
        .as_array_mut()
        .unwrap()
        .retain(|item| item["key"] != "profiles.alloy");
    assert_eq!(
        profile_problems(&objects),
        ["Deployment/alloy: its Alloy runs no pyroscope.receive_http with a listen_port"]
    );
}

/// The local lgtm gets the data sources compose gives it (Tempo linking
/// to Pyroscope), where compose mounts them, and serves Pyroscope, where
/// the local overlay's receivers write profiles.
#[test]
fn the_local_lgtm_provisions_the_data_sources_and_serves_pyroscope() {
    let objects = rendered("local");
    let template = template_of(&objects, "Deployment/lgtm");
    let container = kubernetes::container(template, "lgtm").unwrap();
    let path = "/otel-lgtm/grafana/conf/provisioning/datasources/grafana-datasources.yaml";
    let (mount, volume) = mounted_volume(template, container, path)
        .unwrap_or_else(|| panic!("lgtm mounts nothing at {path}"));
    let config_map = kubernetes::get(
        &objects,
        "ConfigMap",
        volume["configMap"]["name"].as_str().unwrap(),
    )
    .unwrap();
    let key = mount["subPath"].as_str().unwrap();
    assert_eq!(
        config_map["data"][key].as_str(),
        Some(repo_file("grafana/datasources.yaml").as_str()),
        "lgtm's data sources are not grafana/datasources.yaml"
    );
    let url = &env_of(&objects, "Deployment/alloy", "alloy")["GRAFANA_CLOUD_PROFILES_URL"];
    let url = url::Url::parse(url).unwrap();
    let service = kubernetes::get(&objects, "Service", url.host_str().unwrap()).unwrap();
    let port = url.port_or_known_default().map(u64::from);
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"].as_u64() == port
                && container_port(container, &p["targetPort"]) == port),
        "the receivers write profiles to {url}, which lgtm's Service does not serve"
    );
}

// ---------------------------------------------------------------- RBAC --

/// `(api group, resource, verbs)` an Alloy configuration reads from the
/// Kubernetes API, and whether it may read across namespaces.
fn alloy_reads(blocks: &[Block]) -> (Vec<(&'static str, &'static str)>, bool) {
    let mut reads = Vec::new();
    let mut cluster_wide = false;
    for block in blocks {
        match block.name.as_str() {
            // collector-contrib v0.153.0 k8sattributesprocessor
            // (internal/kube/client.go, New): pods always, in the filter's
            // namespace; replicasets for the deployment's name or uid;
            // namespaces for namespace labels/annotations or the cluster
            // uid; nodes for node labels/annotations or uid.
            "otelcol.processor.k8sattributes" => {
                reads.push(("", "pods"));
                let metadata: Vec<String> = block
                    .block("extract")
                    .and_then(|extract| extract.attribute("metadata"))
                    .map(|value| match value {
                        alloy::Value::List(items) => items
                            .iter()
                            .filter_map(|item| match item {
                                alloy::Value::String(s) => Some(s.clone()),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    })
                    .unwrap_or_default();
                let from = block.strings("from");
                if metadata.is_empty() || metadata.iter().any(|m| m.starts_with("k8s.deployment."))
                {
                    reads.push(("apps", "replicasets"));
                }
                if metadata.iter().any(|m| m == "k8s.cluster.uid")
                    || from.iter().any(|f| f == "namespace")
                {
                    reads.push(("", "namespaces"));
                    cluster_wide = true;
                }
                if metadata.iter().any(|m| m == "k8s.node.uid") || from.iter().any(|f| f == "node")
                {
                    reads.push(("", "nodes"));
                    cluster_wide = true;
                }
                let namespaced = block
                    .block("filter")
                    .is_some_and(|filter| filter.attribute("namespace").is_some());
                cluster_wide |= !namespaced;
            }
            // The kubernetes resolver watches the Service's endpoints
            // (Endpoints in the collector-contrib sources read here and in
            // Alloy v1.18.1's docs; EndpointSlices in newer ones: both).
            "otelcol.exporter.loadbalancing" => {
                let kubernetes = block
                    .block("resolver")
                    .is_some_and(|resolver| resolver.block("kubernetes").is_some());
                if kubernetes {
                    reads.push(("", "endpoints"));
                    reads.push(("discovery.k8s.io", "endpointslices"));
                }
            }
            _ => {}
        }
    }
    (reads, cluster_wide)
}

/// The rules bound to a ServiceAccount: `(api groups, resources, verbs,
/// cluster-wide)`.
fn rules_for(objects: &[Object], account: &str) -> Vec<(Value, Value, Value, bool)> {
    let mut rules = Vec::new();
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        for binding in kubernetes::of_kind(objects, kind) {
            let binds = binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == account
                        && (s["namespace"].is_null() || s["namespace"] == NAMESPACE)
                });
            if !binds {
                continue;
            }
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap();
            let role_name = binding["roleRef"]["name"].as_str().unwrap();
            let Some(role) = kubernetes::find(objects, role_kind, role_name) else {
                continue;
            };
            let cluster_wide = kind == "ClusterRoleBinding";
            for rule in role["rules"].as_array().into_iter().flatten() {
                rules.push((
                    rule["apiGroups"].clone(),
                    rule["resources"].clone(),
                    rule["verbs"].clone(),
                    cluster_wide,
                ));
            }
        }
    }
    rules
}

fn has(list: &Value, item: &str) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().any(|i| i == item || i == "*"))
}

/// Every Alloy workload's ServiceAccount may get, list and watch what its
/// configuration reads, in the scope it reads it.
fn rbac_problems(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in alloy_workloads(objects) {
        let Ok(blocks) = alloy_config(objects, &workload) else {
            continue;
        };
        let (reads, cluster_wide) = alloy_reads(&blocks);
        if reads.is_empty() {
            continue;
        }
        let spec = &template_of(objects, &workload)["spec"];
        let account = spec["serviceAccountName"].as_str().unwrap_or("default");
        if spec["automountServiceAccountToken"] == false {
            problems.push(format!("{workload}: reads the API but mounts no token"));
        }
        let rules = rules_for(objects, account);
        for (group, resource) in reads {
            for verb in ["get", "list", "watch"] {
                let granted = rules.iter().any(|(groups, resources, verbs, wide)| {
                    has(groups, group)
                        && has(resources, resource)
                        && has(verbs, verb)
                        && (*wide || !cluster_wide)
                });
                if !granted {
                    let scope = if cluster_wide {
                        "cluster-wide"
                    } else {
                        "in its namespace"
                    };
                    problems.push(format!(
                        "{workload} (ServiceAccount {account}) may not {verb} {resource} \
                         (apiGroup {group:?}) {scope}"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn rbac_covers_what_k8sattributes_and_the_load_balancing_resolver_read() {
    for overlay in OVERLAYS {
        let problems = rbac_problems(&rendered(overlay));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_missing_rbac_verb_or_resource_is_reported() {
    let mut objects = rendered("sampling");
    object_mut(&mut objects, "Role", "alloy")["rules"][0]["verbs"] = json!(["get", "list"]);
    let problems = rbac_problems(&objects);
    assert!(
        problems.iter().any(|p| p.contains("may not watch pods")),
        "{problems:?}"
    );

    // The kubernetes resolver in place of the DNS one: endpoints to read.
    let mut objects = rendered("sampling");
    let config = objects
        .iter_mut()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("alloy-kubernetes")
        })
        .unwrap();
    let text = config["data"]["loadbalancing.alloy"].as_str().unwrap();
    let dns = regex::Regex::new(r#"(?s)dns \{.*?\n    \}"#).unwrap();
    assert!(dns.is_match(text));
    config["data"]["loadbalancing.alloy"] = json!(
        dns.replace(
            text,
            "kubernetes {\n      service = \"alloy-traces\"\n    }"
        )
        .into_owned()
    );
    let problems = rbac_problems(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("may not list endpoints")),
        "{problems:?}"
    );
}

// --------------------------------------------------------- traces tier --

/// The traces tier's headless Service matches its StatefulSet, and the
/// receivers' load-balancing exporter resolves it, by trace id, at the port
/// the tier receives on.
fn traces_tier_problems(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(set) = kubernetes::find(objects, "StatefulSet", "alloy-traces") else {
        return vec!["no StatefulSet alloy-traces".to_owned()];
    };
    let Some(service) = kubernetes::find(objects, "Service", "alloy-traces") else {
        return vec!["no Service alloy-traces".to_owned()];
    };
    if service["spec"]["clusterIP"] != "None" {
        problems.push("Service alloy-traces is not headless (clusterIP: None)".to_owned());
    }
    if set["spec"]["serviceName"] != "alloy-traces" {
        problems.push(format!(
            "StatefulSet alloy-traces's serviceName is {}",
            set["spec"]["serviceName"]
        ));
    }
    let template = &set["spec"]["template"];
    if !labels_match(
        &service["spec"]["selector"],
        &template["metadata"]["labels"],
    ) {
        problems.push("Service alloy-traces does not select the traces tier's pods".to_owned());
    }
    if !labels_match(
        &set["spec"]["selector"]["matchLabels"],
        &template["metadata"]["labels"],
    ) {
        problems.push("StatefulSet alloy-traces's selector misses its pods".to_owned());
    }
    let container = kubernetes::container(template, "alloy").unwrap();
    // What traces-tier.alloy listens on.
    let Ok(tier) = alloy_config(objects, "StatefulSet/alloy-traces") else {
        return vec!["the traces tier's Alloy configuration does not parse".to_owned()];
    };
    let listen: Vec<u64> = tier
        .iter()
        .filter(|b| b.name == "otelcol.receiver.otlp")
        .flat_map(|b| b.strings("endpoint"))
        .map(|endpoint| port_of(&endpoint))
        .collect();
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for port in &ports {
        let target = container_port(container, &port["targetPort"]);
        if target.is_none_or(|target| !listen.contains(&target)) {
            problems.push(format!(
                "Service alloy-traces port {} goes to {target:?}, where no receiver of the traces tier listens ({listen:?})",
                port["port"]
            ));
        }
    }
    // What the receivers route to.
    let Ok(receiver) = alloy_config(objects, "Deployment/alloy") else {
        return problems;
    };
    let env = env_of(objects, "Deployment/alloy", "alloy");
    let exporters: Vec<_> = receiver
        .iter()
        .filter(|b| b.name == "otelcol.exporter.loadbalancing")
        .collect();
    if exporters.is_empty() {
        problems.push("the receivers send no trace to the traces tier".to_owned());
    }
    for exporter in exporters {
        let Some(dns) = exporter.block("resolver").and_then(|r| r.block("dns")) else {
            continue;
        };
        let value = |name: &str| {
            dns.attribute(name)
                .and_then(|value| value.evaluate(&|var| env.get(var).cloned().unwrap_or_default()))
                .unwrap_or_default()
        };
        let (host, port) = (value("hostname"), value("port"));
        if host != "alloy-traces" && !host.starts_with("alloy-traces.") {
            problems.push(format!(
                "the receivers resolve {host:?}, not the Service alloy-traces"
            ));
        }
        if !ports
            .iter()
            .any(|p| p["port"].as_u64().map(|p| p.to_string()) == Some(port.clone()))
        {
            problems.push(format!(
                "the receivers send to port {port:?}, which Service alloy-traces lacks"
            ));
        }
        if exporter
            .attribute("routing_key")
            .is_some_and(|key| key != &alloy::Value::String("traceID".to_owned()))
        {
            problems.push("the receivers do not route by trace id".to_owned());
        }
    }
    problems
}

#[test]
fn the_traces_tier_service_is_headless_and_matches_its_statefulset() {
    for overlay in OVERLAYS {
        let problems = traces_tier_problems(&rendered(overlay));
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

#[test]
fn a_traces_tier_service_with_a_cluster_ip_or_another_name_is_reported() {
    let mut objects = rendered("sampling");
    object_mut(&mut objects, "Service", "alloy-traces")["spec"]
        .as_object_mut()
        .unwrap()
        .remove("clusterIP");
    object_mut(&mut objects, "StatefulSet", "alloy-traces")["spec"]["serviceName"] =
        json!("traces");
    object_mut(&mut objects, "Service", "alloy-traces")["spec"]["ports"][0]["targetPort"] =
        json!(4318);
    let problems = traces_tier_problems(&objects);
    for expected in [
        "not headless",
        "serviceName is \"traces\"",
        "where no receiver of the traces tier listens",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:?}"
        );
    }
}

// ------------------------------------------------------ pod hardening --

/// gamenight's own workloads (not the local try-out servers): non-root,
/// read-only root, no capabilities, RuntimeDefault seccomp, no privilege
/// escalation, requests and a memory limit; a PodDisruptionBudget for each
/// long-running one, an HPA for the api.
#[test]
fn gamenight_workloads_are_hardened_bounded_and_kept_available() {
    let ours = [
        "Deployment/api",
        "Deployment/worker",
        "Deployment/bot",
        "Job/migrate",
        "Deployment/alloy",
        "StatefulSet/alloy-traces",
    ];
    for overlay in OVERLAYS {
        let objects = rendered(overlay);
        for workload in ours {
            let template = template_of(&objects, workload);
            let pod = &template["spec"]["securityContext"];
            assert_eq!(pod["runAsNonRoot"], true, "{overlay} {workload}");
            assert_eq!(
                pod["seccompProfile"]["type"], "RuntimeDefault",
                "{overlay} {workload}"
            );
            for container in containers(template) {
                let at = format!("{overlay} {workload} {}", container["name"]);
                let security = &container["securityContext"];
                assert_eq!(security["allowPrivilegeEscalation"], false, "{at}");
                assert_eq!(security["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{at}");
                assert!(
                    container["resources"]["requests"]["cpu"].is_string(),
                    "{at}"
                );
                assert!(
                    container["resources"]["limits"]["memory"].is_string(),
                    "{at}"
                );
            }
            if workload.starts_with("Job/") {
                continue;
            }
            let labels = &template["metadata"]["labels"];
            assert!(
                kubernetes::of_kind(&objects, "PodDisruptionBudget")
                    .any(|pdb| labels_match(&pdb["spec"]["selector"]["matchLabels"], labels)),
                "{overlay} {workload} has a PodDisruptionBudget"
            );
        }
        let hpa = kubernetes::get(&objects, "HorizontalPodAutoscaler", "api").unwrap();
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "api");
        // A replica count on the Deployment would reset the HPA's on apply.
        let api = kubernetes::get(&objects, "Deployment", "api").unwrap();
        assert!(api["spec"]["replicas"].is_null(), "{overlay}");
    }
}

// ---------------------------------------------------------------- docs --

/// kustomize has no globs: grafana/kustomization.yaml lists the dashboards
/// and alert files one by one, and must list them all.
#[test]
fn the_local_lgtm_gets_every_dashboard_and_alert_file() {
    let kustomization = repo_file("grafana/kustomization.yaml");
    for dir in ["dashboards", "alerts"] {
        for entry in std::fs::read_dir(repo_path(&format!("grafana/{dir}"))).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                kustomization.contains(&format!("- {dir}/{name}")),
                "grafana/kustomization.yaml does not list {dir}/{name}"
            );
        }
    }
}

/// Every overlay or directory a README command renders or applies exists
/// and renders (the commands themselves need a cluster: README says which).
#[test]
fn the_readme_applies_only_what_renders() {
    let mut seen = 0;
    for command in readme_commands() {
        let words: Vec<&str> = command.split_whitespace().collect();
        for pair in words.windows(2) {
            if pair[0] == "-k" || pair[0] == "kustomize" {
                let dir = repo_path(pair[1]);
                kubernetes::render(&dir).unwrap_or_else(|err| panic!("{command}: {err}"));
                seen += 1;
            }
        }
    }
    assert!(seen >= 3, "the README applies the three overlays");
}
