//! The docs page (`/docs`) as a reader meets it: everything it serves stays on
//! the api's origin, under a Content-Security-Policy that allows nothing
//! else; and in a real browser (headless Chromium, driven over WebDriver by
//! chromedriver, with every address beyond loopback unreachable) it shows
//! every operation of the OpenAPI document, and "Try it out" reaches the api.
//!
//! `scripts/test.sh` installs Debian's `chromium` and `chromium-driver`;
//! `CHROMIUM` and `CHROMEDRIVER` name other binaries.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use regex::Regex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use test_support::docs::repo_file;
use test_support::unique_name;

use crate::helpers::{TestApp, game_body};

/// How long the browser may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// The sources a docs route's Content-Security-Policy may name: this origin,
/// and what Swagger UI needs beside it (inline styles, `data:` icons).
const ALLOWED_SOURCES: [&str; 4] = ["'self'", "'none'", "'unsafe-inline'", "data:"];

#[tokio::test]
async fn the_docs_page_and_its_assets_stay_on_the_apis_origin() {
    let app = TestApp::spawn().await;
    let page = app.get("/docs").await;
    assert_eq!(page.url().path(), "/docs/", "/docs leads to the page");
    assert_docs_policy(&page);

    // The two pages Swagger UI serves, every file they load, and every
    // address those files' markup, stylesheets and configuration (the
    // initializer script) name.
    let attribute = Regex::new(r#"(?:src|href|action)\s*=\s*["']([^"']*)["']"#).unwrap();
    let css_url = Regex::new(r#"url\(\s*["']?([^"')]*)"#).unwrap();
    let config_url = Regex::new(r#""\w*[uU]rls?"\s*:\s*"([^"]*)""#).unwrap();
    let mut to_check = vec!["index.html".to_owned(), "oauth2-redirect.html".to_owned()];
    let mut checked = BTreeSet::new();
    while let Some(file) = to_check.pop() {
        if !checked.insert(file.clone()) {
            continue;
        }
        let url = app.url(&format!("/docs/{file}"));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_docs_policy(&response);
        let body = response.text().await.unwrap_or_default();
        let named = if file.ends_with(".html") {
            captures(&attribute, &body)
        } else if file.ends_with(".css") {
            captures(&css_url, &body)
        } else if file == "swagger-initializer.js" {
            // Unset, Swagger UI sends the document to validator.swagger.io
            // for a badge (on any host but loopback, so only this shows it).
            assert!(
                body.contains(r#""validatorUrl": "none""#),
                "Swagger UI's online validator is not turned off: {body}"
            );
            captures(&config_url, &body)
        } else {
            Vec::new()
        };
        for address in named.iter().filter(|address| address.as_str() != "none") {
            assert_same_origin(&file, address);
            if file.ends_with(".html") {
                to_check.push(address.trim_start_matches("./").to_owned());
            }
        }
    }
    assert!(
        checked.contains("swagger-ui-bundle.js") && checked.contains("swagger-initializer.js"),
        "the page's scripts were not found: {checked:?}"
    );

    // The other routes keep their JSON-only headers.
    for path in ["/openapi.json", "/games", "/healthz"] {
        let response = app.get(path).await;
        assert!(
            !response
                .headers()
                .contains_key(reqwest::header::CONTENT_SECURITY_POLICY),
            "{path} has the docs page's Content-Security-Policy"
        );
    }
    assert!(
        repo_file("docs/API.md").contains(api::docs::CONTENT_SECURITY_POLICY),
        "docs/API.md does not quote the docs page's Content-Security-Policy"
    );
}

#[tokio::test]
async fn the_docs_page_works_in_a_browser_with_nothing_beyond_loopback() {
    let app = TestApp::spawn().await;
    let openapi: Value = app.get("/openapi.json").await.json().await.unwrap();
    let summaries = operation_summaries(&openapi);
    assert_eq!(summaries.len(), 6, "operations: {summaries:?}");

    let browser = Browser::start().await;
    let page = &browser.client;
    page.goto(&app.url("/docs")).await.unwrap();
    let shown = browser
        .eventually("every operation shown by its summary", async || {
            let shown: BTreeSet<String> = texts(page, ".opblock-summary-description").await;
            (shown == summaries).then_some(shown)
        })
        .await;
    browser.screenshot("docs-page.png").await;

    // Nothing was refused (by the policy, or by the closed network) and
    // nothing was loaded from another origin.
    assert_eq!(
        browser.errors().await,
        Vec::<String>::new(),
        "browser errors"
    );
    let loaded = page
        .execute(
            "return performance.getEntriesByType('resource').map(entry => entry.name)",
            vec![],
        )
        .await
        .unwrap();
    let origin = format!("{}/", app.base_url);
    for resource in loaded.as_array().unwrap() {
        let resource = resource.as_str().unwrap();
        assert!(
            resource.starts_with(&origin),
            "{resource} loaded from outside {origin}"
        );
    }

    // "Try it out": a game created from the page, then a refusal shown as
    // the api's problem+json.
    let create = "#operations-games-create_game";
    browser.click(&format!("{create} .opblock-summary")).await;
    browser.click(&format!("{create} .try-out__btn")).await;
    let created = browser.try_it_out(create, &game_body(4), "201").await;
    let id = Regex::new(r#""id":\s*"([0-9a-f-]{36})""#)
        .unwrap()
        .captures(&created)
        .unwrap_or_else(|| panic!("no game id in the response shown: {created}"))[1]
        .to_owned();
    assert_eq!(app.get(&format!("/games/{id}")).await.status(), 200);

    let refused = browser.try_it_out(create, &game_body(0), "422").await;
    assert!(
        refused.contains("application/problem+json") && refused.contains("max_players"),
        "the refusal is not shown as problem+json naming the field: {refused}"
    );
    eprintln!(
        "docs page: {} operations shown, a game created and a refusal shown",
        shown.len()
    );
}

/// The first group of every match of `pattern` in `text`.
fn captures(pattern: &Regex, text: &str) -> Vec<String> {
    pattern
        .captures_iter(text)
        .map(|capture| capture[1].to_owned())
        .collect()
}

/// `address`, named by `by`, is on the page's origin: relative, or `data:`.
fn assert_same_origin(by: &str, address: &str) {
    let on_origin =
        address.starts_with("data:") || !(address.contains("://") || address.starts_with("//"));
    assert!(on_origin, "{by} refers to another origin: {address}");
}

/// The response carries the docs routes' Content-Security-Policy: nothing by
/// default, and no source beyond [`ALLOWED_SOURCES`].
fn assert_docs_policy(response: &reqwest::Response) {
    let policy = response
        .headers()
        .get(reqwest::header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{}: no Content-Security-Policy", response.url()))
        .to_str()
        .unwrap();
    let directives: Vec<Vec<&str>> = policy
        .split(';')
        .map(|directive| directive.split_whitespace().collect())
        .collect();
    assert!(
        directives.contains(&vec!["default-src", "'none'"]),
        "{policy}"
    );
    for directive in ["script-src", "connect-src"] {
        assert!(
            directives.contains(&vec![directive, "'self'"]),
            "{directive} is not 'self' alone: {policy}"
        );
    }
    for directive in &directives {
        for source in &directive[1..] {
            assert!(
                ALLOWED_SOURCES.contains(source),
                "{policy}: {} allows {source}",
                directive[0]
            );
        }
    }
}

/// The summary of each operation in `openapi`, whitespace collapsed as a
/// browser renders it.
fn operation_summaries(openapi: &Value) -> BTreeSet<String> {
    openapi["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|operations| operations.as_object().unwrap().values())
        .filter_map(|operation| operation["summary"].as_str())
        .map(|summary| summary.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The text of every element `selector` matches.
async fn texts(page: &Client, selector: &str) -> BTreeSet<String> {
    let mut texts = BTreeSet::new();
    for element in page.find_all(Locator::Css(selector)).await.unwrap() {
        texts.insert(element.text().await.unwrap_or_default());
    }
    texts
}

/// Headless Chromium under chromedriver, able to reach loopback only.
struct Browser {
    client: Client,
    /// Declared after `client`, so dropped after it.
    _processes: Processes,
}

/// chromedriver, the browser it starts (both in chromedriver's process
/// group) and the browser's profile and temporary files: all ended and
/// removed when dropped, from the moment they exist, so a session that
/// fails to open leaves nothing running or behind either.
struct Processes {
    profile: PathBuf,
    driver: Option<Child>,
}

impl Drop for Processes {
    /// Kills the whole process group (killing chromedriver alone would
    /// leave the browser running), then removes the browser's files.
    fn drop(&mut self) {
        if let Some(group) = self.driver.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn start() -> Self {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        // The browser's profile and temporary files, all in one directory.
        let mut processes = Processes {
            profile: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("chromium-")),
            driver: None,
        };
        std::fs::create_dir_all(&processes.profile).unwrap();
        let driver = processes.driver.insert(
            Command::new(&chromedriver)
                .arg("--port=0")
                .env("TMPDIR", &processes.profile)
                .process_group(0)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|err| {
                    panic!(
                        "cannot start {chromedriver} ({err}): install Debian's chromium and \
                         chromium-driver (scripts/test.sh does), or set CHROMEDRIVER and CHROMIUM"
                    )
                }),
        );
        // "ChromeDriver was started successfully on port 40123."
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(port) = line.strip_suffix('.').and_then(|l| l.rsplit_once("port ")) {
                    return port.1.to_owned();
                }
            }
            panic!("{chromedriver} stopped before saying its port")
        })
        .await
        .unwrap_or_else(|_| panic!("{chromedriver} did not start within {PATIENCE:?}"));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    format!("--user-data-dir={}", processes.profile.display()),
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1000",
                    // Loopback is always reached directly; everything else
                    // goes to a proxy that is not there, and fails.
                    "--proxy-server=http://127.0.0.1:9",
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|err| panic!("cannot start {chromium} under {chromedriver}: {err}"));
        Self {
            client,
            _processes: processes,
        }
    }

    /// Polls `check` until it gives a value, failing after [`PATIENCE`].
    async fn eventually<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                self.screenshot("docs-page-failed.png").await;
                panic!("the docs page: not {what} within {PATIENCE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, selector: &str) {
        self.eventually(&format!("{selector} clicked"), async || {
            let element = self.client.find(Locator::Css(selector)).await.ok()?;
            element.click().await.ok()
        })
        .await;
    }

    /// Replaces the text of the field `selector` with `text`, as typed.
    async fn type_into(&self, selector: &str, text: &str) {
        self.eventually(&format!("{selector} typed into"), async || {
            let field = self.client.find(Locator::Css(selector)).await.ok()?;
            // Control-A, then the text over the selection: the page sees it
            // typed (a WebDriver clear would bypass its input handlers).
            field.send_keys("\u{E009}a\u{E000}").await.ok()?;
            field.send_keys(text).await.ok()
        })
        .await;
    }

    /// Sends `body` from the "Try it out" form of `operation`, waits for
    /// the answer `status`, and returns what the page shows of the answer.
    async fn try_it_out(&self, operation: &str, body: &Value, status: &str) -> String {
        let field = format!("{operation} textarea.body-param__text");
        self.type_into(&field, &body.to_string()).await;
        self.click(&format!("{operation} .btn.execute")).await;
        let answer = format!("{operation} .live-responses-table tbody");
        self.wait_for_text(&format!("{answer} .response-col_status"), status)
            .await;
        self.text(&format!("{answer} .response-col_description"))
            .await
    }

    /// The text of the first element `selector` matches, once there is one.
    async fn text(&self, selector: &str) -> String {
        self.eventually(&format!("{selector} shown"), async || {
            self.shown(selector).await
        })
        .await
    }

    async fn wait_for_text(&self, selector: &str, expected: &str) {
        self.eventually(&format!("{selector} showing {expected}"), async || {
            (self.shown(selector).await?.trim() == expected).then_some(())
        })
        .await;
    }

    /// The text of the first element `selector` matches, if any now.
    async fn shown(&self, selector: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(selector)).await.ok()?;
        element.text().await.ok()
    }

    /// The browser's console errors: a refused load (the policy, the
    /// network) or a script error.
    async fn errors(&self) -> Vec<String> {
        let log = self.client.issue_cmd(BrowserLog).await.unwrap();
        log.as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Saves what the browser shows under the test's target directory.
    async fn screenshot(&self, name: &str) {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(&path, png).unwrap();
            eprintln!("screenshot: {}", path.display());
        }
    }
}

/// chromedriver's log of the browser's console (`goog:loggingPrefs`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}
