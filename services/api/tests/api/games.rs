//! Every endpoint, its happy path and its refusals.

use api::{Game, GamePage};
use serde_json::{Value, json};

use crate::helpers::{TestApp, game_body};

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn creating_a_game_answers_201_with_its_location_and_the_game() {
    let app = TestApp::spawn().await;
    let response = app.post("/games", game_body(4)).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let game: Game = response.json().await.unwrap();
    assert_eq!(location, format!("/games/{}", game.id));
    assert_eq!(game.title, "Catan night");
    assert_eq!(game.max_players, 4);
    assert_eq!(game.status, api::domain::GameStatus::Scheduled);
    assert!(game.players.is_empty());

    let fetched: Game = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, game);
}

#[tokio::test]
async fn invalid_fields_are_422_and_each_is_named() {
    let app = TestApp::spawn().await;
    let body = json!({
        "title": "",
        "host": "x".repeat(51),
        "scheduled_at": "2001-01-01T00:00:00Z",
        "max_players": 1,
        "reminder_minutes": -5,
    });
    let problem = problem(app.post("/games", body).await, 422).await;
    assert_eq!(
        fields(&problem),
        [
            "title",
            "host",
            "scheduled_at",
            "max_players",
            "reminder_minutes"
        ]
    );

    let missing = problem_of(&app, json!({ "title": "Catan" })).await;
    assert_eq!(
        fields(&missing),
        ["host", "scheduled_at", "max_players", "reminder_minutes"]
    );
    let wrong_type = problem_of(&app, json!({ "max_players": "four" })).await;
    assert_eq!(fields(&wrong_type), ["max_players"]);
    let bad_time = problem_of(&app, json!({ "scheduled_at": "tomorrow evening" })).await;
    assert_eq!(fields(&bad_time), ["scheduled_at"]);
    let unknown = problem_of(&app, json!({ "colour": "red" })).await;
    assert_eq!(fields(&unknown), ["colour"]);
}

async fn problem_of(app: &TestApp, body: Value) -> Value {
    problem(app.post("/games", body).await, 422).await
}

#[tokio::test]
async fn malformed_bodies_are_4xx_never_500() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/games"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    problem(raw("{\"title\": ", "application/json").await.unwrap(), 400).await;
    problem(raw("[]", "application/json").await.unwrap(), 422).await;
    problem(
        raw("title=Catan", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
    )
    .await;
    let oversized = app
        .client
        .post(app.url("/games"))
        .header("content-type", "application/json")
        .body(format!("{{\"title\": \"{}\"}}", "x".repeat(20_000)))
        .send()
        .await
        .unwrap();
    problem(oversized, 413).await;
}

#[tokio::test]
async fn unknown_games_are_404_and_malformed_ids_400() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    problem(app.get(&format!("/games/{id}")).await, 404).await;
    problem(app.join(id, "grace").await, 404).await;
    problem(
        app.post(&format!("/games/{id}/cancel"), json!({})).await,
        404,
    )
    .await;
    let bad = problem(app.get("/games/42").await, 400).await;
    assert_eq!(fields(&bad), ["id"]);
    problem(app.get("/no/such/route").await, 404).await;
}

#[tokio::test]
async fn players_join_once_until_the_table_is_full() {
    let app = TestApp::spawn().await;
    let game = app.create_game(2).await;

    let joined = app.join(game.id, "grace").await;
    assert_eq!(joined.status(), 201);
    let joined: Game = joined.json().await.unwrap();
    assert_eq!(joined.players, ["grace"]);

    let twice = problem(app.join(game.id, "grace").await, 409).await;
    assert_eq!(twice["detail"], "the player has already joined");
    assert_eq!(app.join(game.id, "linus").await.status(), 201);
    let full = problem(app.join(game.id, "ken").await, 409).await;
    assert_eq!(full["detail"], "the game is full");

    let invalid = problem(app.join(game.id, "  ").await, 422).await;
    assert_eq!(fields(&invalid), ["player"]);
    let fetched: Game = app
        .get(&format!("/games/{}", game.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched.players, ["grace", "linus"]);
}

#[tokio::test]
async fn a_player_leaves_and_frees_the_seat() {
    let app = TestApp::spawn().await;
    let game = app.create_game(2).await;
    app.join(game.id, "grace").await;
    app.join(game.id, "linus").await;

    let left = app
        .client
        .delete(app.url(&format!("/games/{}/participants/grace", game.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 204);
    let again = app
        .client
        .delete(app.url(&format!("/games/{}/participants/grace", game.id)))
        .send()
        .await
        .unwrap();
    let again = problem(again, 404).await;
    assert_eq!(again["detail"], "participant not found");
    assert_eq!(app.join(game.id, "ken").await.status(), 201);
}

#[tokio::test]
async fn a_cancelled_game_takes_no_more_players_and_cannot_be_cancelled_twice() {
    let app = TestApp::spawn().await;
    let game = app.create_game(4).await;
    let path = format!("/games/{}/cancel", game.id);

    let cancelled = app.post(&path, json!({})).await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Game = cancelled.json().await.unwrap();
    assert_eq!(cancelled.status, api::domain::GameStatus::Cancelled);

    let twice = problem(app.post(&path, json!({})).await, 409).await;
    assert_eq!(twice["detail"], "the game is cancelled");
    problem(app.join(game.id, "grace").await, 409).await;
}

#[tokio::test]
async fn the_list_filters_by_status_and_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(app.create_game(4).await.id);
    }
    app.post(&format!("/games/{}/cancel", created[0]), json!({}))
        .await;

    let mut seen = Vec::new();
    let mut path = "/games?status=scheduled&limit=2".to_owned();
    loop {
        let page: GamePage = app.get(&path).await.json().await.unwrap();
        assert!(page.games.len() <= 2);
        seen.extend(page.games.iter().map(|g| g.id));
        match page.next_cursor {
            Some(cursor) => path = format!("/games?status=scheduled&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    // Each game starts a week after its creation, so start order is creation order.
    assert_eq!(seen, created[1..]);

    let cancelled: GamePage = app
        .get("/games?status=cancelled")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        cancelled.games.iter().map(|g| g.id).collect::<Vec<_>>(),
        [created[0]]
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=open", "status"),
        ("cursor=bogus", "cursor"),
    ] {
        let bad = problem(app.get(&format!("/games?{query}")).await, 400).await;
        assert_eq!(fields(&bad), [field], "{query}");
    }
}

#[tokio::test]
async fn probes_and_the_openapi_document_are_served() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.text().await.unwrap(), "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        ready,
        json!({
            "status": "ready",
            "checks": {"postgresql": "up", "redis": "up", "rabbitmq": "up"},
        })
    );

    let openapi: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/games",
        "/games/{id}",
        "/games/{id}/participants",
        "/games/{id}/participants/{player}",
        "/games/{id}/cancel",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}
