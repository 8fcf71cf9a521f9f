//! The Kubernetes manifests, run without a cluster: the `local` overlay
//! rendered by kustomize, each container's environment resolved from it as
//! the kubelet would (stack_tests::kubernetes), and the migrate Job, the
//! init containers and two replicas each of api, worker and bot started
//! natively with that environment and their `args`. A steady load through
//! both api replicas, with loadgen's mix beside it, must end with every game
//! announced exactly once.
//!
//! What differs from a cluster is only where the cluster's names lead
//! ([`Here::localize`]): in-cluster hosts and ports become the local test
//! servers, the in-process OTLP receiver and this test's api replicas; the
//! database, the PostgreSQL roles, the RabbitMQ user and vhost, the
//! exchanges, queues and Redis prefix become this test's own; listen
//! addresses take any free port; the bot posts to the fake Discord. Every
//! other variable is the manifests'.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use demo::load::{self, Delivery};
use demo::{Launch, Names, Printed, Service};
use otlp_testkit::pyroscope::PyroscopeReceiver;
use otlp_testkit::{AnyValueExt, Receiver};
use stack_tests::kubernetes::{self, Object, PodFacts};
use test_support::FakeDiscord;
use tokio_util::sync::CancellationToken;
use url::Url;

const OVERLAY: &str = "deploy/kubernetes/overlays/local";
/// Games a second through each api replica: 50 in all.
const RATE_PER_API: u32 = 25;
/// Long enough for every replica to take a share of each stage, short
/// enough for a plain `cargo test`.
const LOAD_FOR: Duration = Duration::from_secs(20);
/// loadgen's mix through each api replica, beside the counted games.
const MIX_RATE_PER_API: f64 = 10.0;
const DRAIN_WITHIN: Duration = Duration::from_secs(30);
/// Game titles `k8s <replica> <n>`: each load's games found again.
const TITLE_PREFIX: &str = "k8s ";

/// The Deployments, in the order they are started here: a bot needs its
/// api's address, which is known once the api listens (the cluster's
/// Service `api` is there before any pod).
const DEPLOYMENTS: [(&str, &str); 3] = [
    // (name, the log message that says it is ready)
    ("worker", "consuming"),
    ("api", "listening"),
    ("bot", "consuming"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "six processes at 50 games/s: scripts/test.sh runs it alone, after the suite"]
async fn two_replicas_of_each_service_run_from_the_rendered_manifests_lose_and_double_nothing() {
    let objects = kubernetes::render(&test_support::docs::repo_path(OVERLAY)).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_demo"));
    let receiver = Receiver::start().await.unwrap();
    let pyroscope = PyroscopeReceiver::start().await.unwrap();
    let discord = FakeDiscord::start().await;
    let names = Names::unique("k8s").await;
    // Declared before the names' guard, so dropped after it: a role goes
    // once the database whose privileges it holds is gone.
    let roles = Roles::unique(&names.database_url);
    let _removed = names.removed_on_drop();
    roles.create(&objects, &names.database_url);

    let mut here = Here::new(&objects, &names, &roles, (&receiver, &pyroscope), &discord);
    println!("{}", here.describe());

    // The migrate Job, as the owner of the schema.
    let job = Pod::of(&objects, "Job/migrate", 0);
    for container in job.containers("containers") {
        container.run_to_completion(binary, &here).await;
    }

    let printed = Printed::default();
    let mut running: Vec<Service> = Vec::new();
    let mut api_urls: Vec<String> = Vec::new();
    for (deployment, ready) in DEPLOYMENTS {
        let workload = format!("Deployment/{deployment}");
        assert_eq!(
            replicas(&objects, deployment),
            2,
            "{workload}: the manifests' replica count"
        );
        let pods: Vec<Pod<'_>> = (0..2).map(|i| Pod::of(&objects, &workload, i)).collect();
        let mut starts = Vec::new();
        for pod in &pods {
            // The bot of replica i calls api replica i: the cluster's Service
            // spreads calls over both, and so does this.
            if let Some(api) = api_urls.get(pod.replica) {
                here.set_api(api);
            }
            // Init containers one after another, then the container, as the
            // kubelet does; the replicas side by side.
            for init in pod.containers("initContainers") {
                init.run_to_completion(binary, &here).await;
            }
            let main = pod.containers("containers").remove(0);
            starts.push(main.launch(binary, ready, &here));
        }
        for started in
            futures_util::future::join_all(starts.iter().map(|l| l.start(&printed))).await
        {
            let (service, line) = started.unwrap();
            if deployment == "api" {
                api_urls.push(format!("http://{}", line["addr"].as_str().unwrap()));
            }
            running.push(service);
        }
    }

    // The load, half through each api replica: the games counted below,
    // and loadgen's mix of reads, joins, leaves, cancels and bad requests
    // beside them, as users would send.
    let live = Arc::new(load::Live::default());
    let stop = CancellationToken::new();
    let mixes: Vec<_> = api_urls
        .iter()
        .map(|api| {
            let options = loadgen::Options {
                target: Url::parse(api).unwrap(),
                rate: MIX_RATE_PER_API,
                duration: Some(LOAD_FOR),
                concurrency: 64,
                timeout: Duration::from_secs(10),
            };
            let stop = stop.clone();
            tokio::spawn(async move { loadgen::run(&options, stop).await })
        })
        .collect();
    let loads: Vec<_> = api_urls
        .iter()
        .enumerate()
        .map(|(replica, api)| {
            tokio::spawn(load::drive(
                api.clone(),
                RATE_PER_API,
                format!("{TITLE_PREFIX}{replica} "),
                live.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(LOAD_FOR).await;
    stop.cancel();
    let mut requests = Vec::new();
    for handle in loads {
        requests.extend(handle.await.unwrap().unwrap());
    }
    let mut mix_requests = 0;
    let mut mix_failures = Vec::new();
    for handle in mixes {
        let run = handle.await.unwrap().unwrap();
        mix_requests += run.stats.done();
        if run.stats.failures() > 0 {
            mix_failures.push(run.stats.table());
        }
    }
    let drain_started = Instant::now();
    load::drain(&discord, &requests, DRAIN_WITHIN).await;
    let drained_in = drain_started.elapsed();

    // Bots first, the worker last, as Stack::stop does: nothing is taken
    // half-way.
    for service in running.into_iter().rev() {
        let status = service.terminate().await.unwrap();
        assert!(status.success(), "a service exited with {status}");
    }

    // What went wrong in the services, counted, so a failure below says why.
    let mut complaints: BTreeMap<String, usize> = BTreeMap::new();
    for line in printed.lines() {
        let Some((service, json)) = line.split_once(": ") else {
            continue;
        };
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(json)
            && matches!(json["level"].as_str(), Some("WARN" | "ERROR"))
        {
            let what = format!("{service} {} {}", json["level"], json["message"]);
            *complaints.entry(what).or_default() += 1;
        }
    }
    for (what, count) in &complaints {
        println!("  {count:>6} × {what}");
    }

    // The games counted are the load's; loadgen's own are posted too.
    let posts: Vec<load::Post> = load::posts(&discord)
        .into_iter()
        .filter(|post| {
            post.title
                .as_ref()
                .is_some_and(|t| t.starts_with(TITLE_PREFIX))
        })
        .collect();
    let delivery = Delivery::new(&requests, &posts);
    println!(
        "simulated cluster, 2 x api, worker, bot, {} games/s for {} s: sent {}, created {}, \
         announced {}, lost {}, duplicates {}, unexpected {}, 5xx {}, no answer {}; \
         create→post {:?}; drained in {:.1} s; beside them loadgen's mix, {} requests",
        RATE_PER_API * 2,
        LOAD_FOR.as_secs(),
        delivery.sent,
        delivery.created,
        delivery.announced,
        delivery.lost,
        delivery.duplicates,
        delivery.unexpected,
        delivery.status_5xx,
        delivery.no_answer,
        delivery.latency,
        drained_in.as_secs_f64(),
        mix_requests,
    );
    assert!(
        mix_failures.is_empty(),
        "loadgen's mix met server errors or no answer:\n{}",
        mix_failures.join("\n")
    );
    assert!(
        delivery.sent >= (RATE_PER_API * 2) as usize * LOAD_FOR.as_secs() as usize * 9 / 10,
        "the load fell behind its rate: {delivery:?}"
    );
    assert_eq!(delivery.created, delivery.sent, "{delivery:?}");
    assert_eq!(
        (delivery.lost, delivery.duplicates, delivery.unexpected),
        (0, 0, 0),
        "{delivery:?}"
    );

    // Each replica worked, under the pod name the downward API gave it.
    let spans = receiver.spans();
    for (deployment, _) in DEPLOYMENTS {
        for replica in 0..2 {
            let pod = pod_facts(deployment, replica).name;
            let count = spans
                .iter()
                .filter(|span| {
                    span.resource_attr("k8s.pod.name")
                        .and_then(|value| value.as_str())
                        == Some(pod.as_str())
                })
                .count();
            println!("  {pod}: {count} spans");
            assert!(count > 0, "no span from {pod}");
        }
    }
    // And pushed CPU profiles where the manifests point them.
    let samples = pyroscope.samples();
    for (deployment, _) in DEPLOYMENTS {
        let count = samples
            .iter()
            .filter(|sample| {
                sample.series.get("service_name").map(String::as_str) == Some(deployment)
            })
            .count();
        println!("  {deployment}: {count} CPU samples");
        assert!(count > 0, "no profile from {deployment}");
    }
}

/// What replica `replica` of `workload` would know once scheduled: a pod
/// name of a Deployment's shape, a node of its own.
fn pod_facts(workload: &str, replica: usize) -> PodFacts {
    PodFacts {
        name: format!("{workload}-7c9d8f6b5-{replica}"),
        node_name: format!("node-{replica}"),
        pod_ip: format!("10.244.{replica}.10"),
        host_ip: format!("172.18.0.{}", replica + 2),
        ..PodFacts::default()
    }
}

/// The replicas the manifests give `deployment`: its `replicas`, or its
/// HorizontalPodAutoscaler's minimum.
fn replicas(objects: &[Object], deployment: &str) -> u64 {
    let spec = &kubernetes::get(objects, "Deployment", deployment).unwrap()["spec"];
    spec["replicas"].as_u64().unwrap_or_else(|| {
        kubernetes::of_kind(objects, "HorizontalPodAutoscaler")
            .find(|hpa| hpa["spec"]["scaleTargetRef"]["name"] == deployment)
            .and_then(|hpa| hpa["spec"]["minReplicas"].as_u64())
            // Neither: Kubernetes' default.
            .unwrap_or(1)
    })
}

/// One replica of a workload.
struct Pod<'a> {
    objects: &'a [Object],
    workload: String,
    replica: usize,
    template: &'a serde_json::Value,
}

impl<'a> Pod<'a> {
    fn of(objects: &'a [Object], workload: &str, replica: usize) -> Self {
        let (kind, name) = workload.split_once('/').unwrap();
        let object = kubernetes::get(objects, kind, name).unwrap();
        Self {
            objects,
            workload: workload.to_owned(),
            replica,
            template: kubernetes::pod_template(object).unwrap(),
        }
    }

    /// The containers of `list` (`containers` or `initContainers`).
    fn containers(&self, list: &str) -> Vec<Container<'_>> {
        self.template["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|spec| Container { pod: self, spec })
            .collect()
    }
}

struct Container<'a> {
    pod: &'a Pod<'a>,
    spec: &'a serde_json::Value,
}

impl Container<'_> {
    fn name(&self) -> &str {
        self.spec["name"].as_str().unwrap()
    }

    /// The service the image runs: the repository's Dockerfile builds
    /// `gamenight-<service>` with that service as its entrypoint, which
    /// `demo service <service>` is.
    fn service(&self) -> &'static str {
        let image = self.spec["image"].as_str().unwrap();
        let repository = image.split([':', '@']).next().unwrap();
        assert!(
            self.spec["command"].is_null(),
            "{}: a `command` replaces the image's entrypoint, which this \
             simulation does not run",
            self.name()
        );
        match repository.rsplit('/').next().unwrap() {
            "gamenight-api" => "api",
            "gamenight-worker" => "worker",
            "gamenight-bot" => "bot",
            other => panic!("{}: image {other} is not one of gamenight's", self.name()),
        }
    }

    fn args(&self) -> Vec<String> {
        self.spec["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|arg| arg.as_str().unwrap().to_owned())
            .collect()
    }

    /// Its environment as the kubelet gives it, then [localized](Here::localize);
    /// what changed is printed for the first replica.
    fn env(&self, here: &Here) -> Vec<(String, String)> {
        let deployment = self.pod.workload.split_once('/').unwrap().1;
        let facts = pod_facts(deployment, self.pod.replica);
        let env =
            kubernetes::container_env(self.pod.objects, &self.pod.workload, self.name(), &facts)
                .unwrap_or_else(|err| panic!("{err}"));
        let local = here
            .localize(&env)
            .unwrap_or_else(|err| panic!("{} {}: {err}", self.pod.workload, self.name()));
        if self.pod.replica == 0 {
            eprintln!("{} {}:", self.pod.workload, self.name());
            let find = |list: &[(String, String)], name: &str| {
                list.iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| redacted(value))
            };
            let mut names: Vec<&String> = env.iter().chain(&local).map(|(name, _)| name).collect();
            names.sort();
            names.dedup();
            for name in names {
                let (cluster, here) = (find(&env, name), find(&local, name));
                if cluster != here {
                    eprintln!("  {name}: {cluster:?} → {here:?}");
                }
            }
        }
        local
    }

    /// Runs it to its end, which must be a success (a Job's container, an
    /// init container).
    async fn run_to_completion(&self, binary: &Path, here: &Here) {
        let output = tokio::process::Command::new(binary)
            .args(["service", self.service()])
            .args(self.args())
            .env_clear()
            .envs(self.env(here))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .unwrap_or_else(|_| panic!("{} did not finish within 60 s", self.name()))
            .unwrap();
        assert!(
            output.status.success(),
            "{} of {} ({} {:?}) failed with {}:\n{}{}",
            self.name(),
            self.pod.workload,
            self.service(),
            self.args(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    fn launch(&self, binary: &Path, ready: &str, here: &Here) -> Launch {
        Launch::new(binary, self.service(), ready, self.env(here)).with_args(self.args())
    }
}

/// The PostgreSQL roles postgres/roles.sql makes, under names of this
/// test's own, dropped with this value.
struct Roles {
    server: Url,
    app: String,
    monitor: String,
}

impl Roles {
    fn unique(database_url: &str) -> Self {
        let stamp = test_support::sweep::stamp(database_url).unwrap().to_owned();
        Self {
            server: Url::parse(database_url).unwrap(),
            app: format!("gamenight_app_{stamp}"),
            monitor: format!("gamenight_monitor_{stamp}"),
        }
    }

    /// Runs postgres/roles.sql as the local overlay's PostgreSQL does on
    /// first start (its initdb ConfigMap, with that container's
    /// environment), as the database's owner.
    fn create(&self, objects: &[Object], database_url: &str) {
        let passwords = ["POSTGRES_APP_PASSWORD", "POSTGRES_MONITOR_PASSWORD"]
            .map(|name| (name, postgres_env(objects, name)));
        let ran = std::process::Command::new("psql")
            .args(["-X", "-q", database_url, "-f"])
            .arg(test_support::docs::repo_path("postgres/roles.sql"))
            .args(["-v", &format!("app_role={}", self.app)])
            .args(["-v", &format!("monitor_role={}", self.monitor)])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(passwords)
            .output()
            .expect("psql runs roles.sql (install postgresql-client)");
        assert!(ran.status.success(), "roles.sql: {ran:?}");
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        let mut admin = self.server.clone();
        admin.set_path("/postgres");
        let statement = format!("DROP ROLE IF EXISTS \"{}\", \"{}\"", self.app, self.monitor);
        let dropped = std::process::Command::new("psql")
            .args(["-X", "-q", admin.as_str(), "-c", &statement])
            .output();
        if !dropped.is_ok_and(|output| output.status.success()) {
            eprintln!("cannot drop the roles {} and {}", self.app, self.monitor);
        }
    }
}

/// Variable `name` of the local overlay's PostgreSQL container.
fn postgres_env(objects: &[Object], name: &str) -> String {
    let env = kubernetes::container_env(
        objects,
        "StatefulSet/postgres",
        "postgres",
        &PodFacts::default(),
    )
    .unwrap();
    env.into_iter()
        .find(|(key, _)| key == name)
        .unwrap_or_else(|| panic!("the local overlay's PostgreSQL sets no {name}"))
        .1
}

/// Where the cluster's names lead on this machine.
struct Here {
    /// In-cluster `host:port` → `host:port` here.
    hosts: BTreeMap<String, String>,
    /// Database name in the cluster's URLs → this test's database.
    database: String,
    /// PostgreSQL users in the cluster's URLs → roles here, with the
    /// password here when it is not the manifests'.
    postgres_users: BTreeMap<String, (String, Option<String>)>,
    /// The RabbitMQ URL here: its user, password and vhost replace the
    /// cluster's (users and vhosts are server-wide: none is made here).
    rabbitmq: Url,
    /// Names that are this test's own on the shared servers, set whether
    /// or not the manifests set them (they leave the defaults).
    isolation: Vec<(&'static str, String)>,
    webhook: String,
}

impl Here {
    fn new(
        objects: &[Object],
        names: &Names,
        roles: &Roles,
        (receiver, pyroscope): (&Receiver, &PyroscopeReceiver),
        discord: &FakeDiscord,
    ) -> Self {
        let address = |url: &str| {
            let url = Url::parse(url).unwrap();
            format!(
                "{}:{}",
                url.host_str().unwrap(),
                url.port_or_known_default().unwrap_or(5432)
            )
        };
        let database = Url::parse(&names.database_url).unwrap();
        let hosts = [
            ("postgres:5432", address(&names.database_url)),
            ("redis:6379", address(&names.redis_url)),
            ("rabbitmq:5672", address(&names.rabbitmq_url)),
            // OTLP/HTTP and OTLP/gRPC of Alloy's receiver tier (and of lgtm).
            ("alloy:4318", address(&receiver.http_endpoint())),
            ("alloy:4317", address(&receiver.grpc_endpoint())),
            ("lgtm:4318", address(&receiver.http_endpoint())),
            ("lgtm:4317", address(&receiver.grpc_endpoint())),
            // Profiles: Alloy's pyroscope.receive_http (and lgtm's Pyroscope).
            ("alloy:4040", address(&pyroscope.url())),
            ("lgtm:4040", address(&pyroscope.url())),
        ];
        Self {
            hosts: hosts
                .into_iter()
                .map(|(cluster, here)| (cluster.to_owned(), here))
                .collect(),
            database: database.path().trim_start_matches('/').to_owned(),
            postgres_users: BTreeMap::from([
                // The schema's owner (POSTGRES_USER of the overlay's
                // PostgreSQL) is the local server's user, who owns the
                // test database and ran roles.sql.
                (
                    postgres_env(objects, "POSTGRES_USER"),
                    (
                        database.username().to_owned(),
                        database.password().map(str::to_owned),
                    ),
                ),
                // The roles roles.sql makes, with the passwords the
                // manifests give both them and the services.
                ("gamenight_app".to_owned(), (roles.app.clone(), None)),
                (
                    "gamenight_monitor".to_owned(),
                    (roles.monitor.clone(), None),
                ),
            ]),
            rabbitmq: Url::parse(&names.rabbitmq_url).unwrap(),
            isolation: vec![
                ("REDIS_KEY_PREFIX", names.redis_prefix.clone()),
                ("EVENTS_EXCHANGE", names.events_exchange.clone()),
                (
                    "NOTIFICATIONS_EXCHANGE",
                    names.notifications_exchange.clone(),
                ),
                ("WORKER_QUEUE", names.worker_queue.clone()),
                ("BOT_QUEUE", names.bot_queue.clone()),
            ],
            webhook: discord.webhook_url(),
        }
    }

    /// The Service `api` leads to `url` from now on.
    fn set_api(&mut self, url: &str) {
        let url = Url::parse(url).unwrap();
        self.hosts.insert(
            "api:8000".to_owned(),
            format!("{}:{}", url.host_str().unwrap(), url.port().unwrap()),
        );
    }

    fn describe(&self) -> String {
        let mut text = String::from("in-cluster names mapped to this machine:\n");
        for (cluster, here) in &self.hosts {
            text.push_str(&format!("  {cluster} → {here}\n"));
        }
        text.push_str(&format!(
            "  database → {}; PostgreSQL users {:?}; RabbitMQ user and vhost → the local server's\n  \
             set for isolation: {:?}\n  *_LISTEN_ADDR → 127.0.0.1:0; DISCORD_WEBHOOK_URL → the \
             fake Discord (BOT_DRY_RUN dropped)",
            self.database,
            self.postgres_users
                .iter()
                .map(|(cluster, (here, _))| format!("{cluster} → {here}"))
                .collect::<Vec<_>>(),
            self.isolation.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        ));
        text
    }

    /// `env` with the cluster's names replaced by this machine's.
    ///
    /// Returns `Err` for a URL to an in-cluster host or a PostgreSQL user
    /// this mapping does not know: the mapping is kept explicit, so a new
    /// dependency in the manifests shows up here.
    fn localize(&self, env: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
        let mut local = Vec::new();
        for (name, value) in env {
            let value = if name.ends_with("_LISTEN_ADDR") {
                // Two replicas on one host: any free port (the api's is
                // read from its log).
                "127.0.0.1:0".to_owned()
            } else if name == "DISCORD_WEBHOOK_URL" {
                self.webhook.clone()
            } else if name == "BOT_DRY_RUN" {
                // The local overlay's bot logs instead of posting; here it
                // posts to the fake Discord, where the posts are counted.
                continue;
            } else {
                self.url(name, value)?.unwrap_or_else(|| value.clone())
            };
            local.push((name.clone(), value));
        }
        for (name, value) in &self.isolation {
            local.retain(|(other, _)| other != name);
            local.push(((*name).to_owned(), value.clone()));
        }
        if local.iter().any(|(name, _)| name == "BOT_LISTEN_ADDR")
            && !local.iter().any(|(name, _)| name == "DISCORD_WEBHOOK_URL")
        {
            local.push(("DISCORD_WEBHOOK_URL".to_owned(), self.webhook.clone()));
        }
        Ok(local)
    }

    /// `value` localized, if it is a URL to an in-cluster host.
    fn url(&self, name: &str, value: &str) -> Result<Option<String>, String> {
        let Ok(mut url) = Url::parse(value) else {
            return Ok(None);
        };
        let Some(host) = url.host_str().and_then(in_cluster) else {
            return Ok(None);
        };
        let cluster = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        let here = self
            .hosts
            .get(&cluster)
            .ok_or_else(|| format!("{name} leads to {cluster}, which has no stand-in here"))?;
        let (host, port) = here.rsplit_once(':').unwrap();
        url.set_host(Some(host)).unwrap();
        url.set_port(Some(port.parse().unwrap())).unwrap();
        match url.scheme() {
            "postgres" | "postgresql" => {
                let (user, password) = self
                    .postgres_users
                    .get(url.username())
                    .ok_or_else(|| format!("{name}: no role here for {:?}", url.username()))?;
                url.set_username(user).unwrap();
                if password.is_some() {
                    url.set_password(password.as_deref()).unwrap();
                }
                url.set_path(&format!("/{}", self.database));
            }
            "amqp" | "amqps" => {
                url.set_username(self.rabbitmq.username()).unwrap();
                url.set_password(self.rabbitmq.password()).unwrap();
                url.set_path(self.rabbitmq.path());
            }
            _ => {}
        }
        let mut local = url.to_string();
        // `http://alloy:4318` stays without the `/` the parser adds.
        if url.path() == "/" && !value.ends_with('/') {
            local.pop();
        }
        Ok(Some(local))
    }
}

/// `value` with the password of a URL in it hidden.
fn redacted(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => value.to_owned(),
    }
}

/// The Service name `host` stands for, if it is one of the namespace's
/// (`api`, `api.gamenight`, `api.gamenight.svc`,
/// `api.gamenight.svc.cluster.local`).
fn in_cluster(host: &str) -> Option<&str> {
    let (service, rest) = host.split_once('.').unwrap_or((host, ""));
    let namespaced = [
        "",
        "gamenight",
        "gamenight.svc",
        "gamenight.svc.cluster.local",
    ];
    (namespaced.contains(&rest) && host.parse::<std::net::IpAddr>().is_err()).then_some(service)
}
