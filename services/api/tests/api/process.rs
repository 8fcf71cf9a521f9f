//! Starting and stopping the `api` binary.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::Servers;

/// A running `api` process and the address it listens on.
pub(crate) struct Api {
    child: Child,
    pub(crate) base_url: String,
    /// Kept as long as the process: dropping the last clone drops the
    /// database and the exchange.
    _servers: Servers,
}

impl Api {
    /// Starts the binary on `servers` with `env` on top (plus a port-0
    /// listen address and JSON logs) and waits for its "listening" line.
    pub(crate) async fn start(servers: &Servers, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
            .env_clear()
            .envs(servers.env())
            .env("API_LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap();
                if json["message"] == "listening" {
                    return json["addr"].as_str().unwrap().to_owned();
                }
            }
            panic!("api exited before listening");
        })
        .await
        .expect("api listens within 30 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base_url: format!("http://{addr}"),
            _servers: servers.clone(),
        }
    }

    /// The process id of the running binary.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Creates a valid game through the API.
    pub(crate) async fn create_game(&self) -> api::Game {
        let response = reqwest::Client::new()
            .post(format!("{}/games", self.base_url))
            .json(&crate::helpers::game_body(4))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(kill.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("api exits within 30 s of SIGTERM")
            .unwrap()
    }
}

/// Runs the binary with `env` to completion and returns its exit status and
/// standard error.
pub(crate) async fn run_to_exit(env: &[(&str, &str)]) -> (ExitStatus, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_api"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (output.status, String::from_utf8(output.stderr).unwrap())
}
