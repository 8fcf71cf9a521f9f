//! The compose files, the Dockerfile and the Alloy configuration
//! (grafana-alloy/, the files compose mounts) against each other, the
//! services' configuration and the docs.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;
use stack_tests::alloy::{self, Block};
use test_support::docs::{repo_file as read, repo_path};

/// A compose file with YAML merge keys (`<<: *anchor`) applied.
fn compose(name: &str) -> Value {
    let mut value: Value = serde_yaml_ng::from_str(&read(name)).unwrap();
    value.apply_merge().unwrap();
    // Merge keys nested in services (`environment: <<: [...]`) too.
    if let Some(services) = value.get_mut("services").and_then(Value::as_mapping_mut) {
        for (_, service) in services.iter_mut() {
            service.apply_merge().unwrap();
            if let Some(environment) = service.get_mut("environment") {
                environment.apply_merge().unwrap();
            }
        }
    }
    value
}

fn service<'v>(compose: &'v Value, name: &str) -> &'v Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// A service's environment as name → value (values as written, `${...}` and all).
fn environment(compose: &Value, name: &str) -> BTreeMap<String, String> {
    let Some(environment) = service(compose, name).get("environment") else {
        return BTreeMap::new();
    };
    environment
        .as_mapping()
        .unwrap_or_else(|| panic!("{name}: environment must be a mapping"))
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("{name}: unexpected value {other:?}"),
            };
            (key.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// What compose makes of `value` with the .env a user starts from: a copy of
/// .env.example.
fn default_of(value: &str) -> String {
    substitute(value, &env_example())
}

/// The variables .env.example sets (its uncommented lines).
fn env_example() -> BTreeMap<String, String> {
    read(".env.example")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// What compose makes of `value` with `dotenv` as the .env file:
/// `${VAR:-default}` and `${VAR}` → the .env value, else the default;
/// `${VAR:?message}` → the .env value, else compose refuses to start
/// (`Err` with the message).
fn try_substitute(value: &str, dotenv: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|i| start + i).unwrap();
        let inner = &rest[start + 2..end];
        let value = dotenv.get(inner.split([':', '-', '?']).next().unwrap());
        match (
            value.filter(|value| !value.is_empty()),
            inner.split_once(":?"),
        ) {
            (Some(value), _) => out.push_str(value),
            (None, Some((_, message))) => return Err(message.to_owned()),
            (None, None) => out.push_str(inner.split_once(":-").map_or("", |(_, d)| d)),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`try_substitute`] for a value compose must be able to start with.
fn substitute(value: &str, dotenv: &BTreeMap<String, String>) -> String {
    try_substitute(value, dotenv).unwrap_or_else(|message| panic!("{value}: {message}"))
}

fn port_of(host_port: &str) -> u16 {
    host_port.rsplit(':').next().unwrap().parse().unwrap()
}

/// The ways compose runs Alloy: by default, and with tail sampling.
const COMPOSE_SETS: [(&str, &[&str]); 2] = [
    ("docker compose up", alloy::COMPOSE),
    ("with docker-compose.sampling.yml", alloy::COMPOSE_SAMPLING),
];

/// The files Alloy loads when compose reads `compose_files`.
fn alloy_files(compose_files: &[&str]) -> Vec<alloy::File> {
    alloy::load_compose(compose_files).unwrap_or_else(|err| panic!("{err}"))
}

/// The blocks Alloy loads when compose reads `compose_files`.
fn alloy_blocks(compose_files: &[&str]) -> Vec<Block> {
    alloy::blocks(&alloy_files(compose_files))
}

/// Alloy's environment when compose reads `compose_files`, values as
/// written.
fn alloy_environment(compose_files: &[&str]) -> BTreeMap<String, String> {
    let service = alloy::compose_service(compose_files, "alloy").unwrap();
    service["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("alloy: unexpected value {other:?}"),
            };
            (key.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// The component a reference such as `otelcol.processor.batch.default.input`
/// points at, among `blocks`.
fn target<'b>(blocks: &'b [Block], reference: &str) -> Option<&'b Block> {
    blocks
        .iter()
        .filter(|block| block.label.is_some())
        .find(|block| reference.starts_with(&format!("{}.", block.id())))
}

/// Alloy refuses a configuration in which two files (or one) define the
/// same component: each place must mount exactly one file per hinge.
#[test]
fn every_component_is_defined_once_across_the_files_alloy_loads() {
    for (setup, compose_files) in COMPOSE_SETS {
        let mut defined: BTreeMap<String, String> = BTreeMap::new();
        for file in alloy_files(compose_files) {
            for block in &file.blocks {
                let at = format!("{} line {}", file.path, block.line);
                if let Some(first) = defined.insert(block.id(), at.clone()) {
                    panic!("{setup}: {} is defined in {first} and in {at}", block.id());
                }
            }
        }
    }
}

#[test]
fn every_component_the_alloy_files_reference_is_defined() {
    for (setup, compose_files) in COMPOSE_SETS {
        let files = alloy_files(compose_files);
        let blocks = alloy::blocks(&files);
        for file in &files {
            for block in &file.blocks {
                for reference in &block.references() {
                    assert!(
                        target(&blocks, reference).is_some(),
                        "{setup}: {} ({} line {}) refers to {reference}, which none of {:?} defines",
                        block.id(),
                        file.path,
                        block.line,
                        files.iter().map(|f| &f.path).collect::<Vec<_>>(),
                    );
                }
            }
        }
    }
}

/// Compose gives `alloy run` a directory of ours: the image's own
/// /etc/alloy holds an example config.alloy (grafana/alloy's Dockerfile
/// copies it there), which Alloy would load beside ours.
#[test]
fn compose_runs_alloy_on_a_directory_that_holds_only_the_alloy_files_of_the_repo() {
    for (setup, compose_files) in COMPOSE_SETS {
        let mounted = alloy::compose_alloy(compose_files).unwrap();
        assert_ne!(
            mounted.directory, "/etc/alloy",
            "{setup}: the image's example config.alloy is in /etc/alloy"
        );
        assert_eq!(
            mounted.targets.len(),
            mounted.files.len(),
            "{setup}: {} also holds {:?}",
            mounted.directory,
            mounted.targets
        );
        for file in &mounted.files {
            assert!(
                file.starts_with("grafana-alloy/")
                    && file.ends_with(".alloy")
                    && repo_path(file).is_file(),
                "{setup}: compose mounts {file}, which is not an .alloy file of grafana-alloy/"
            );
        }
    }
}

/// A file of grafana-alloy/ that no compose setup mounts is a configuration
/// nobody runs (or one compose forgot).
#[test]
fn compose_mounts_every_alloy_file_of_grafana_alloy() {
    let mounted: BTreeSet<String> = COMPOSE_SETS
        .iter()
        .flat_map(|(_, compose_files)| alloy::compose_alloy(compose_files).unwrap().files)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo_path("grafana-alloy"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".alloy"))
        .map(|name| format!("grafana-alloy/{name}"))
        .collect();
    assert_eq!(
        present.difference(&mounted).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "no compose setup mounts these"
    );
    assert!(present.len() >= 5, "{present:?}");
}

/// Alloy makes span metrics and the service graph from every span; Tempo's
/// metrics-generator in otel-lgtm would make a second copy of the same
/// series from what reaches it.
#[test]
fn the_local_tempo_generates_no_span_metrics_nor_service_graph() {
    let lgtm = alloy::compose_service(alloy::COMPOSE, "lgtm").unwrap();
    let mounts: Vec<&str> = lgtm["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|mount| mount.as_str().unwrap())
        .collect();
    assert!(
        mounts.contains(&"./grafana/tempo.yaml:/otel-lgtm/tempo-config.yaml:ro"),
        "lgtm runs the image's Tempo configuration: {mounts:?}"
    );
    let tempo: Value = serde_yaml_ng::from_str(&read("grafana/tempo.yaml")).unwrap();
    let processors = &tempo["overrides"]["defaults"]["metrics_generator"]["processors"];
    assert_eq!(
        processors.as_sequence().map(Vec::len),
        Some(0),
        "grafana/tempo.yaml: Tempo's generator runs {processors:?}"
    );
    let blocks = alloy_blocks(alloy::COMPOSE);
    for connector in [
        "otelcol.connector.spanmetrics",
        "otelcol.connector.servicegraph",
    ] {
        assert!(
            blocks.iter().any(|block| block.name == connector),
            "nobody makes what {connector} made"
        );
    }
}

#[test]
fn every_component_is_on_a_path_from_a_source_to_an_exporter() {
    for (setup, compose_files) in COMPOSE_SETS {
        on_a_path_from_a_source_to_an_exporter(setup, &alloy_blocks(compose_files));
    }
}

fn on_a_path_from_a_source_to_an_exporter(setup: &str, blocks: &[Block]) {
    let components: Vec<&Block> = blocks.iter().filter(|b| b.label.is_some()).collect();
    // Data flows from a block to what it forwards to (`.input`,
    // `.receiver`), and from an exporter to the scrape that reads its
    // `.targets`. `.handler` is an auth extension used by its exporter.
    let mut flows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut used_helpers = BTreeSet::new();
    for block in &components {
        for reference in &block.references() {
            let to = target(blocks, reference).unwrap().id();
            if reference.ends_with(".targets") {
                flows.entry(to).or_default().insert(block.id());
            } else if reference.ends_with(".handler") {
                used_helpers.insert(to);
            } else {
                flows.entry(block.id()).or_default().insert(to);
            }
        }
    }
    // Receivers take data in; exporters and scrapes pull it from outside.
    let is_source = |id: &str| {
        id.starts_with("otelcol.receiver.")
            || id.starts_with("prometheus.exporter.")
            || id.starts_with("prometheus.scrape.")
            || id.starts_with("pyroscope.receive_http.")
    };
    let is_sink = |id: &str| {
        id.starts_with("otelcol.exporter.")
            || id.starts_with("prometheus.remote_write.")
            || id.starts_with("pyroscope.write.")
    };
    let reach = |from: Vec<String>, edges: &BTreeMap<String, BTreeSet<String>>| {
        let mut seen: BTreeSet<String> = from.iter().cloned().collect();
        let mut stack = from;
        while let Some(id) = stack.pop() {
            for next in edges.get(&id).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut backwards: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &flows {
        for to in tos {
            backwards
                .entry(to.clone())
                .or_default()
                .insert(from.clone());
        }
    }
    let ids: Vec<String> = components.iter().map(|b| b.id()).collect();
    let from_sources = reach(
        ids.iter().filter(|id| is_source(id)).cloned().collect(),
        &flows,
    );
    let to_sinks = reach(
        ids.iter().filter(|id| is_sink(id)).cloned().collect(),
        &backwards,
    );
    for id in &ids {
        if used_helpers.contains(id) {
            continue;
        }
        assert!(
            from_sources.contains(id),
            "{setup}: {id} receives nothing: no source reaches it"
        );
        assert!(
            to_sinks.contains(id),
            "{setup}: {id} leads nowhere: it reaches no exporter"
        );
    }
    assert!(
        ids.iter().any(|id| is_sink(id)),
        "{setup}: Alloy exports nothing"
    );
}

#[test]
fn every_variable_the_alloy_files_read_is_passed_by_compose_and_documented() {
    let env_example = read(".env.example");
    let runtime_config = read("RUNTIME_CONFIG.md");
    for (setup, compose_files) in COMPOSE_SETS {
        let blocks = alloy_blocks(compose_files);
        let read_vars: BTreeSet<String> = blocks.iter().flat_map(Block::env_vars).collect();
        assert!(!read_vars.is_empty());
        let alloy_env = alloy_environment(compose_files);
        for var in &read_vars {
            assert!(
                alloy_env.contains_key(var),
                "{setup}: Alloy reads {var}, but compose does not pass it to alloy"
            );
            assert!(
                documented_in_env_example(&env_example, var),
                "{var} is missing from .env.example"
            );
            assert!(
                runtime_config.contains(&format!("`{var}`")),
                "{var} is missing from RUNTIME_CONFIG.md"
            );
        }
        // And compose passes nothing the files it mounts do not read.
        for var in alloy_env.keys() {
            assert!(
                read_vars.contains(var),
                "{setup}: compose passes {var} to alloy, which never reads it"
            );
        }
    }
}

#[test]
fn the_alloy_files_use_only_arguments_alloy_accepts() {
    let mut checked = BTreeSet::new();
    for (_, compose_files) in COMPOSE_SETS {
        for file in alloy_files(compose_files) {
            if checked.insert(file.path.clone()) {
                let problems = alloy::schema::check_names(&file.blocks);
                assert!(
                    problems.is_empty(),
                    "{}:\n{}",
                    file.path,
                    problems.join("\n")
                );
            }
        }
    }
}

/// The tail sampling that takes traces.alloy's place: every argument one
/// Alloy accepts, and every value it takes, with TRACE_SAMPLING_PERCENT
/// unset (the default share), a whole share, a fraction and everything.
#[test]
fn sampling_alloy_uses_only_arguments_and_values_alloy_accepts() {
    let blocks =
        alloy::parse(&read("grafana-alloy/sampling.alloy")).unwrap_or_else(|err| panic!("{err}"));
    let problems = alloy::schema::check_names(&blocks);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for percent in ["", "25", "0.5", "100"] {
        let env = |name: &str| {
            assert_eq!(
                name, "TRACE_SAMPLING_PERCENT",
                "sampling.alloy reads {name}"
            );
            percent.to_owned()
        };
        let problems = alloy::schema::check_values(&blocks, &env);
        assert!(
            problems.is_empty(),
            "TRACE_SAMPLING_PERCENT={percent:?}:\n{}",
            problems.join("\n")
        );
    }
}

/// Alloy refuses to start on values its components reject (empty
/// credentials, batch sizes out of order, no endpoint), and those values
/// come from the environment compose gives it: check both ways a user runs
/// the stack — no .env at all, and a .env filled in for Grafana Cloud as
/// SETUP_GRAFANA_CLOUD.md says (the example values of .env.example).
#[test]
fn the_alloy_files_pass_alloys_validation_locally_and_with_grafana_cloud() {
    for (setup, compose_files) in COMPOSE_SETS {
        passes_alloys_validation(setup, compose_files);
    }
}

fn passes_alloys_validation(compose_setup: &str, compose_files: &[&str]) {
    let files = alloy_files(compose_files);
    let alloy_env = alloy_environment(compose_files);
    let filled: BTreeMap<String, String> = read(".env.example")
        .lines()
        .filter_map(|line| line.trim_start_matches("# ").split_once('='))
        .filter(|(name, _)| name.starts_with("GRAFANA_CLOUD_") && alloy_env.contains_key(*name))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    assert_eq!(
        filled.len(),
        7,
        "the seven Grafana Cloud lines of .env.example Alloy reads"
    );
    let mut cloud = env_example();
    cloud.extend(filled);
    for (setup, dotenv) in [
        (".env.example as it is", env_example()),
        ("Grafana Cloud", cloud),
    ] {
        let env = |name: &str| {
            alloy_env
                .get(name)
                .map(|value| substitute(value, &dotenv))
                .unwrap_or_default()
        };
        for file in &files {
            let problems = alloy::schema::check_values(&file.blocks, &env);
            assert!(
                problems.is_empty(),
                "{compose_setup}, {setup}: {}:\n{}",
                file.path,
                problems.join("\n")
            );
        }
    }
}

fn documented_in_env_example(env_example: &str, var: &str) -> bool {
    env_example.lines().any(|line| {
        line.trim_start_matches("# ")
            .starts_with(&format!("{var}="))
    })
}

#[test]
fn every_variable_a_service_reads_is_set_for_it_in_compose() {
    let base = compose("docker-compose.base.yml");
    let services = [
        ("api", api::config::command()),
        ("worker", worker::config::command()),
        ("bot", bot::config::command()),
    ];
    for (name, command) in services {
        // The service's own variables and the telemetry group's.
        let vars = service_runtime::cli::variables(&command);
        let env = environment(&base, name);
        for var in &vars {
            assert!(
                env.contains_key(var),
                "{name} reads {var}, but compose does not set it"
            );
        }
        for var in env.keys() {
            let known = vars.contains(var) || var.starts_with("OTEL_");
            assert!(known, "compose sets {var} for {name}, which never reads it");
        }
    }
}

#[test]
fn ports_and_host_names_agree_across_services_alloy_and_compose() {
    let base = compose("docker-compose.base.yml");
    let local = compose("docker-compose.yml");
    let api = environment(&base, "api");
    let api_port = port_of(&api["API_LISTEN_ADDR"]);
    assert_eq!(
        default_of(&environment(&base, "bot")["API_BASE_URL"]),
        format!("http://api:{api_port}"),
        "the bot calls the api where it listens"
    );
    let published: Vec<String> = service(&local, "api")["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, [format!("127.0.0.1:{api_port}:{api_port}")]);

    // Services send OTLP/HTTP to Alloy's HTTP receiver.
    let blocks = alloy_blocks(alloy::COMPOSE);
    let receiver = blocks
        .iter()
        .find(|b| b.name == "otelcol.receiver.otlp")
        .unwrap();
    let endpoints: BTreeMap<&str, u16> = ["grpc", "http"]
        .into_iter()
        .map(|protocol| {
            let endpoint = receiver.block(protocol).unwrap().strings("endpoint");
            (protocol, port_of(&endpoint[0]))
        })
        .collect();
    assert_eq!(endpoints, BTreeMap::from([("grpc", 4317), ("http", 4318)]));
    for name in ["api", "worker", "bot", "migrate"] {
        let env = environment(&base, name);
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://alloy:4318",
            "{name}"
        );
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf",
            "{name}"
        );
    }

    // Alloy scrapes the servers where compose runs them.
    let alloy = environment(&base, "alloy");
    assert_eq!(default_of(&alloy["ALLOY_REDIS_ADDR"]), "redis:6379");
    assert!(default_of(&alloy["ALLOY_POSTGRES_DSN"]).contains("@postgres:5432/gamenight"));
    assert_eq!(
        default_of(&alloy["ALLOY_RABBITMQ_METRICS_ADDR"]),
        "rabbitmq:15692"
    );
    assert!(
        read("rabbitmq/enabled_plugins").contains("rabbitmq_prometheus"),
        "RabbitMQ serves metrics on 15692 only with the rabbitmq_prometheus plugin"
    );
    // And forwards to the local backend when nothing is configured.
    assert_eq!(
        default_of(&alloy["GRAFANA_CLOUD_OTLP_ENDPOINT"]),
        "http://lgtm:4318"
    );
    assert_eq!(
        default_of(&alloy["GRAFANA_CLOUD_PROMETHEUS_URL"]),
        "http://lgtm:9090/api/v1/write"
    );
    // The database the services use is the one postgres creates; the
    // migrations run as its owner, the services as the role roles.sql
    // creates for them, with the password postgres hands roles.sql.
    let postgres = environment(&base, "postgres");
    let roles_sql = read("postgres/roles.sql");
    let role = |variable: &str| {
        let set = format!("\\set {variable} ");
        roles_sql
            .lines()
            .find_map(|line| line.trim().strip_prefix(&set))
            .unwrap_or_else(|| panic!("roles.sql sets no default {variable}"))
            .to_owned()
    };
    let app_password = default_of(&postgres["POSTGRES_APP_PASSWORD"]);
    for (name, user, password) in [
        (
            "migrate",
            postgres["POSTGRES_USER"].clone(),
            default_of(&postgres["POSTGRES_PASSWORD"]),
        ),
        ("api", role("app_role"), app_password.clone()),
        ("worker", role("app_role"), app_password.clone()),
        ("bot", role("app_role"), app_password),
    ] {
        let url = default_of(&environment(&base, name)["DATABASE_URL"]);
        assert!(
            url.ends_with(&format!("@postgres:5432/{}", postgres["POSTGRES_DB"])),
            "{name}: {url}"
        );
        assert!(
            url.contains(&format!("://{user}:{password}@")),
            "{name}: {url}"
        );
    }
    let dsn = default_of(&environment(&base, "alloy")["ALLOY_POSTGRES_DSN"]);
    let monitor_password = default_of(&postgres["POSTGRES_MONITOR_PASSWORD"]);
    assert!(
        dsn.contains(&format!("://{}:{monitor_password}@", role("monitor_role"))),
        "alloy: {dsn}"
    );
    let mounts = service(&base, "postgres")["volumes"].as_sequence().unwrap();
    assert!(
        mounts.iter().any(|mount| mount
            .as_str()
            .unwrap()
            .starts_with("./postgres/roles.sql:/docker-entrypoint-initdb.d/")),
        "postgres does not run roles.sql"
    );
}

/// The services that push profiles: those compose gives a
/// `PYROSCOPE_SERVER_ADDRESS`.
fn profiled_services(base: &Value) -> Vec<String> {
    base["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|name| name.as_str().unwrap().to_owned())
        .filter(|name| environment(base, name).contains_key("PYROSCOPE_SERVER_ADDRESS"))
        .collect()
}

/// `(host, port)` of an `http://host:port` URL.
fn host_port(url: &str) -> (String, u16) {
    let url = url::Url::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"));
    (
        url.host_str().unwrap().to_owned(),
        url.port_or_known_default().unwrap(),
    )
}

/// api, worker and bot push their profiles to Alloy's
/// pyroscope.receive_http where it listens, on an address other containers
/// reach (compose needs no `expose`: containers of one network reach every
/// port a process binds beyond loopback); Alloy forwards them to the
/// Pyroscope of lgtm, on the port Grafana's Pyroscope data source asks.
#[test]
fn services_push_profiles_where_profiles_alloy_listens_and_alloy_forwards_to_lgtms_pyroscope() {
    let base = compose("docker-compose.base.yml");
    assert_eq!(
        profiled_services(&base),
        ["api", "worker", "bot"],
        "the three services push profiles, and only they"
    );
    for setup in [alloy::COMPOSE, alloy::COMPOSE_SAMPLING] {
        let files = alloy::compose_alloy(setup).unwrap().files;
        assert!(
            files.contains(&"grafana-alloy/profiles.alloy".to_owned()),
            "compose does not mount profiles.alloy into Alloy's directory: {files:?}"
        );
    }
    let blocks = alloy_blocks(alloy::COMPOSE);
    let receivers: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.name == "pyroscope.receive_http")
        .collect();
    assert_eq!(receivers.len(), 1, "one pyroscope.receive_http");
    let http = receivers[0]
        .block("http")
        .expect("pyroscope.receive_http sets no http block: it would listen on 8080");
    let address = http.strings("listen_address");
    assert_eq!(
        address,
        ["0.0.0.0"],
        "pyroscope.receive_http must listen beyond loopback for the services to reach it"
    );
    let port: u16 = match http.attribute("listen_port") {
        Some(alloy::Value::Number(port)) => port.parse().unwrap(),
        other => panic!("pyroscope.receive_http's listen_port is {other:?}"),
    };
    for name in profiled_services(&base) {
        let address = default_of(&environment(&base, &name)["PYROSCOPE_SERVER_ADDRESS"]);
        assert_eq!(
            host_port(&address),
            ("alloy".to_owned(), port),
            "{name} pushes profiles to {address}, but profiles.alloy listens on alloy:{port}"
        );
    }

    // Alloy forwards to lgtm's Pyroscope, where Grafana reads it.
    let alloy_env = environment(&base, "alloy");
    let (host, to) = host_port(&default_of(&alloy_env["GRAFANA_CLOUD_PROFILES_URL"]));
    assert_eq!(host, "lgtm", "profiles go to the local backend by default");
    let datasources: Value = serde_yaml_ng::from_str(&read("grafana/datasources.yaml")).unwrap();
    let pyroscope = datasources["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|ds| ds["type"] == "grafana-pyroscope-datasource")
        .expect("grafana/datasources.yaml defines no Pyroscope data source");
    let (_, read_port) = host_port(pyroscope["url"].as_str().unwrap());
    assert_eq!(
        to, read_port,
        "Alloy writes profiles to lgtm:{to}, Grafana reads Pyroscope on :{read_port}"
    );
}

#[test]
fn only_the_api_grafana_alloys_ui_and_the_query_apis_are_published_and_only_on_loopback() {
    let local = compose("docker-compose.yml");
    let base = compose("docker-compose.base.yml");
    let mut published = BTreeSet::new();
    for (file, value) in [
        ("docker-compose.yml", &local),
        ("docker-compose.base.yml", &base),
    ] {
        for (name, service) in value["services"].as_mapping().unwrap() {
            let Some(ports) = service.get("ports") else {
                continue;
            };
            assert_eq!(
                file, "docker-compose.yml",
                "the base publishes {name:?}'s ports"
            );
            for port in ports.as_sequence().unwrap() {
                let port = port.as_str().unwrap();
                assert!(
                    port.starts_with("127.0.0.1:"),
                    "{name:?} publishes {port} beyond loopback"
                );
                published.insert((name.as_str().unwrap().to_owned(), port_of(port)));
            }
        }
    }
    let expected: BTreeSet<(String, u16)> = [
        ("api", 8000),
        ("lgtm", 3000),
        ("alloy", 12345),
        // Tempo, Prometheus, Loki and Pyroscope, for check-telemetry run
        // natively.
        ("lgtm", 3200),
        ("lgtm", 9090),
        ("lgtm", 3100),
        ("lgtm", 4040),
    ]
    .into_iter()
    .map(|(name, port)| (name.to_owned(), port))
    .collect();
    assert_eq!(published, expected);
}

#[test]
fn the_local_stack_extends_every_base_service_and_keeps_its_dependencies() {
    let local = compose("docker-compose.yml");
    let base = compose("docker-compose.base.yml");
    for (name, base_service) in base["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let local_service = service(&local, name);
        assert_eq!(
            local_service["extends"]["service"].as_str(),
            Some(name),
            "{name} must extend its base definition"
        );
        assert_eq!(
            local_service["extends"]["file"].as_str(),
            Some("docker-compose.base.yml")
        );
        // extends never copies depends_on: it must be restated, identically.
        assert_eq!(
            local_service.get("depends_on"),
            base_service.get("depends_on"),
            "{name}: depends_on differs from the base"
        );
    }
}

#[test]
fn long_running_services_have_healthchecks_and_dependencies_wait_for_them() {
    let base = compose("docker-compose.base.yml");
    let services = base["services"].as_mapping().unwrap();
    let healthy: BTreeSet<&str> = services
        .iter()
        .filter(|(_, s)| {
            s.get("healthcheck")
                .is_some_and(|h| h.get("disable").is_none())
        })
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        // One-shots (migrate, check-telemetry) have nothing to probe.
        if service["restart"] != "no" {
            assert!(healthy.contains(name), "{name} has no healthcheck");
        }
        let Some(depends_on) = service.get("depends_on") else {
            continue;
        };
        for (dependency, condition) in depends_on.as_mapping().unwrap() {
            let dependency = dependency.as_str().unwrap();
            let condition = condition["condition"].as_str().unwrap();
            let expected = if dependency == "migrate" {
                "service_completed_successfully"
            } else {
                "service_healthy"
            };
            assert_eq!(condition, expected, "{name} → {dependency}");
        }
    }
}

/// What a deployment copied from these files must not lack: logs that
/// cannot fill the disk, a memory limit per container, no privilege gained
/// after start, and no capability at all where the image needs none (ours
/// run as an unprivileged user on ports above 1024).
#[test]
fn every_service_rotates_its_log_has_a_memory_limit_and_gains_no_privileges() {
    let mut checked = 0;
    for file in ["docker-compose.base.yml", "docker-compose.yml"] {
        let value = compose(file);
        for (name, service) in value["services"].as_mapping().unwrap() {
            // A service the local file extends is checked in the base.
            if service.get("extends").is_some() {
                continue;
            }
            let name = name.as_str().unwrap();
            let logging = &service["logging"];
            assert_eq!(logging["driver"], "json-file", "{file}: {name}: log driver");
            assert!(
                logging["options"].get("max-size").is_some()
                    && logging["options"].get("max-file").is_some(),
                "{file}: {name}: its log is not rotated"
            );
            assert!(
                service["deploy"]["resources"]["limits"]
                    .get("memory")
                    .is_some(),
                "{file}: {name}: no memory limit"
            );
            let security: Vec<&str> = service["security_opt"]
                .as_sequence()
                .map(|options| options.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert!(
                security.contains(&"no-new-privileges:true"),
                "{file}: {name}: may gain privileges"
            );
            let ours = service.get("build").is_some()
                || service["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("gamenight-") || i.starts_with("curlimages/"));
            if ours {
                assert_eq!(
                    service["cap_drop"].as_sequence().map(Vec::as_slice),
                    Some(&[Value::from("ALL")][..]),
                    "{file}: {name}: keeps capabilities it does not need"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} services checked");
}

/// A password written in a compose file ends up in production: the base
/// file has none, and compose refuses to start until .env sets them.
#[test]
fn the_base_file_defaults_no_password() {
    let base = read("docker-compose.base.yml");
    let (mut required, mut references) = (BTreeSet::new(), 0);
    for reference in base.split("${").skip(1) {
        let inner = reference.split('}').next().unwrap();
        let name = inner.split([':', '-', '?']).next().unwrap();
        // The credentials of a hosted backend are optional (the local one
        // takes none): empty unless .env sets them, never a written value.
        if name.starts_with("GRAFANA_CLOUD_") || name.starts_with("PYROSCOPE_BASIC_AUTH_") {
            assert!(
                !(name.contains("PASSWORD") || name.contains("TOKEN")) || inner.ends_with(":-"),
                "docker-compose.base.yml defaults ${{{inner}}}: leave it empty (:-)"
            );
            continue;
        }
        if name.contains("PASSWORD") || name.contains("TOKEN") {
            assert!(
                inner.contains(":?"),
                "docker-compose.base.yml defaults ${{{inner}}}: make it required (:?)"
            );
            let err = try_substitute(&format!("${{{inner}}}"), &BTreeMap::new()).unwrap_err();
            assert!(err.contains(".env"), "{name}: say where to set it: {err}");
            required.insert(name);
            references += 1;
        }
    }
    assert!(
        references >= 8,
        "only {references} password references found"
    );
    assert!(required.len() >= 4, "only {required:?} required");
    // The quick start copies .env.example: it must set every one.
    let example = env_example();
    for name in required {
        assert!(
            example.get(name).is_some_and(|v| !v.is_empty()),
            ".env.example must set {name}: the quick start copies it"
        );
    }
}

/// The SDKs cope with a missing collector (they retry, then drop), so the
/// services start without waiting for Alloy: an Alloy that fails to start
/// must not keep the application down.
#[test]
fn no_service_waits_for_alloy() {
    for file in ["docker-compose.base.yml", "docker-compose.yml"] {
        let value = compose(file);
        for service in ["api", "worker", "bot", "migrate"] {
            let depends_on = &value["services"][service]["depends_on"];
            assert!(
                depends_on.get("alloy").is_none(),
                "{file}: {service} waits for alloy"
            );
        }
    }
}

#[test]
fn images_are_pinned_to_a_version() {
    for file in ["docker-compose.yml", "docker-compose.base.yml"] {
        let value = compose(file);
        for (name, service) in value["services"].as_mapping().unwrap() {
            // Images built here are tagged locally; pulled ones are pinned.
            if service.get("build").is_some() {
                continue;
            }
            let Some(image) = service.get("image").and_then(Value::as_str) else {
                continue;
            };
            let tag = image.rsplit_once(':').map(|(_, tag)| tag);
            assert!(
                tag.is_some_and(|tag| tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
                "{file}: {name:?} uses {image}: pin a version"
            );
        }
    }
}

/// Grafana's port opens long before Tempo, Loki and Prometheus answer; the
/// image marks the moment they all do with /tmp/ready (run-all.sh), which a
/// restarted container must not inherit.
#[test]
fn lgtm_is_healthy_only_once_all_its_backends_are_ready() {
    let base = compose("docker-compose.base.yml");
    let lgtm = service(&base, "lgtm");
    let words = |value: &Value| -> Vec<String> {
        value
            .as_sequence()
            .unwrap()
            .iter()
            .map(|word| word.as_str().unwrap().to_owned())
            .collect()
    };
    let check = words(&lgtm["healthcheck"]["test"]).join(" ");
    assert!(check.contains("test -f /tmp/ready"), "{check}");
    let command = words(&lgtm["command"]).join(" ");
    assert!(
        command.contains("rm -f /tmp/ready && exec /otel-lgtm/run-all.sh"),
        "{command}"
    );
}

/// The table of Alloy's arguments was read from one release; a pin moved
/// without reading the new release's sources again would check the Alloy
/// files against the wrong one.
#[test]
fn compose_pins_the_alloy_release_stack_tests_read() {
    let base = compose("docker-compose.base.yml");
    let image = service(&base, "alloy")["image"].as_str().unwrap();
    assert_eq!(
        image,
        format!("grafana/alloy:{}", alloy::schema::ALLOY_VERSION),
        "moving the pin: read the components' Arguments at the new tag and update \
         testing/stack-tests/src/alloy/schema.rs (and its ALLOY_VERSION)"
    );
}

#[test]
fn the_dockerfile_builds_packages_and_binaries_that_exist_from_paths_that_exist() {
    let dockerfile = read("Dockerfile");
    let base = compose("docker-compose.base.yml");
    // Package → whether some service built from it is probed by the image's
    // HEALTHCHECK (the load generator serves nothing, and disables it).
    let mut built: BTreeMap<String, bool> = BTreeMap::new();
    for (name, service) in base["services"].as_mapping().unwrap() {
        let Some(build) = service.get("build") else {
            continue;
        };
        assert_eq!(build["dockerfile"].as_str(), Some("Dockerfile"), "{name:?}");
        let package = build["args"]["SERVICE"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} sets no SERVICE"));
        let probed = service["healthcheck"].get("disable").is_none();
        *built.entry(package.to_owned()).or_default() |= probed;
    }
    assert_eq!(
        built.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api", "bot", "check-telemetry", "loadgen", "worker"]
    );
    let main_of = |package: &str| {
        ["services", "tools"]
            .map(|dir| format!("{dir}/{package}"))
            .into_iter()
            .find(|dir| repo_path(&format!("{dir}/Cargo.toml")).exists())
            .unwrap_or_else(|| panic!("no package {package}"))
    };
    for package in built.keys() {
        let dir = main_of(package);
        let manifest = read(&format!("{dir}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{package}\"")),
            "{package}"
        );
        assert!(
            repo_path(&format!("{dir}/src/main.rs")).exists(),
            "{package} has no binary"
        );
    }
    assert!(dockerfile.contains("--package ${SERVICE} --bin ${SERVICE}"));
    // `cargo build --locked` needs every member of the workspace, or the
    // lock file no longer matches it: each folder of members is copied.
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|line| line.strip_prefix("members = ["))
        .expect("Cargo.toml lists its members on one line");
    let folders: Vec<&str> = members
        .trim_end_matches(']')
        .split(',')
        .map(|member| member.trim().trim_matches('"').trim_end_matches("/*"))
        .collect();
    for folder in folders {
        assert!(
            dockerfile.contains(&format!("COPY {folder} {folder}")),
            "the Dockerfile does not copy {folder}/, so `cargo build --locked` fails in it"
        );
    }
    // Every path copied from the build context exists.
    for line in dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("COPY "))
    {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            if *source != "." {
                assert!(
                    repo_path(source).exists(),
                    "the Dockerfile copies {source}, which does not exist"
                );
            }
        }
    }
    assert!(
        dockerfile.contains("USER nonroot"),
        "the image must not run as root"
    );
    assert!(
        dockerfile.contains("HEALTHCHECK"),
        "the image must carry a healthcheck"
    );
    // The healthcheck subcommand exists in every binary a service probes,
    // as its declared command line says.
    let commands = [
        ("api", api::config::command()),
        ("worker", worker::config::command()),
        ("bot", bot::config::command()),
    ];
    for package in built.iter().filter(|(_, probed)| **probed).map(|(p, _)| p) {
        let command = commands
            .iter()
            .find(|(name, _)| name == package)
            .map(|(_, command)| command)
            .unwrap_or_else(|| panic!("{package} is probed but is not a service"));
        assert!(
            command.find_subcommand("healthcheck").is_some(),
            "{package} has no healthcheck subcommand"
        );
    }
}

#[test]
fn every_variable_the_compose_files_read_is_documented() {
    let env_example = read(".env.example");
    let runtime_config = read("RUNTIME_CONFIG.md");
    for file in [
        "docker-compose.yml",
        "docker-compose.base.yml",
        "docker-compose.sampling.yml",
    ] {
        let text = read(file);
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            let inner = &rest[start + 2..];
            let end = inner.find(['}', ':', '-', '?']).unwrap();
            let var = &inner[..end];
            // `$${...}` is an escaped literal for the container's shell.
            if !rest[..start].ends_with('$') {
                assert!(
                    documented_in_env_example(&env_example, var),
                    "{file} reads {var}, missing from .env.example"
                );
                assert!(
                    runtime_config.contains(&format!("`{var}`")),
                    "{file} reads {var}, missing from RUNTIME_CONFIG.md"
                );
            }
            rest = &inner[end..];
        }
    }
}

/// `check-telemetry` asks the backends where compose puts them: as a
/// compose service, the lgtm container's ports (and the remote-write URL
/// Alloy is given); run natively, the ports docker-compose.yml publishes.
/// It reads what compose passes it, and nothing is left out.
#[test]
fn the_check_telemetry_asks_the_backends_where_compose_puts_them() {
    let base = compose("docker-compose.base.yml");
    let local = compose("docker-compose.yml");
    let env = environment(&base, "check-telemetry");
    assert_eq!(
        env.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        // What check-telemetry declares: its Config group.
        service_runtime::cli::variables(&<check_telemetry::Config as clap::Args>::augment_args(
            clap::Command::new("check-telemetry")
        ))
        .iter()
        .map(String::as_str)
        .collect(),
    );
    for (var, backend) in [
        ("GRAFANA_CLOUD_PROMETHEUS_URL", "Prometheus"),
        ("GRAFANA_CLOUD_PROFILES_URL", "Pyroscope"),
    ] {
        assert_eq!(
            default_of(&env[var]),
            default_of(&environment(&base, "alloy")[var]),
            "the check and Alloy must mean the same {backend}"
        );
    }
    let native = check_telemetry::Config::from_vars([]).unwrap();
    let lgtm_ports: BTreeSet<u16> = service(&local, "lgtm")["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| port_of(p.as_str().unwrap()))
        .collect();
    for (var, backend) in [
        ("GRAFANA_CLOUD_TEMPO_URL", &native.tempo),
        ("GRAFANA_CLOUD_PROMETHEUS_URL", &native.prometheus),
        ("GRAFANA_CLOUD_LOKI_URL", &native.loki),
        ("GRAFANA_CLOUD_PROFILES_URL", &native.pyroscope),
    ] {
        let in_compose: url::Url = default_of(&env[var]).parse().unwrap();
        assert_eq!(in_compose.host_str(), Some("lgtm"), "{var}");
        assert_eq!(backend.url.host_str(), Some("localhost"), "{var}");
        assert_eq!(
            backend.url.port(),
            in_compose.port(),
            "{var}: native and compose ports differ"
        );
        assert!(
            lgtm_ports.contains(&in_compose.port().unwrap()),
            "{var}: docker-compose.yml does not publish lgtm's port {:?}",
            in_compose.port()
        );
    }
    // A one-shot `up` leaves alone, in both files (extends may not copy
    // profiles on every Compose version).
    for file in [&base, &local] {
        assert_eq!(service(file, "check-telemetry")["profiles"][0], "check");
    }
    // Its own binary, so the services link no backend-query client.
    assert_eq!(
        service(&base, "check-telemetry")["build"]["args"]["SERVICE"],
        "check-telemetry"
    );
}
