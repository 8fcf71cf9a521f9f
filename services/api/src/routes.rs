//! The HTTP handlers and the OpenAPI document generated from them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::domain::{
    CreateGameRequest, FieldError, Game, GameStatus, JoinRequest, NewGame, PlayerName,
};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, uuid_param};
use crate::store::{GameError, Position};

/// Largest page `GET /games` returns.
pub(crate) const MAX_PAGE: i64 = 100;
/// Page size when `limit` is not given.
pub(crate) const DEFAULT_PAGE: i64 = 20;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gamenight api",
        description = "Schedule game nights, take a seat, cancel. Every change is published as an event to RabbitMQ."
    ),
    tags((name = "games", description = "Game nights and their players"))
)]
struct ApiDoc;

/// The game routes and their OpenAPI document.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_game, list_games))
        .routes(routes!(get_game))
        .routes(routes!(join_game))
        .routes(routes!(leave_game))
        .routes(routes!(cancel_game))
}

impl From<GameError> for ApiError {
    fn from(err: GameError) -> Self {
        match err {
            GameError::GameNotFound | GameError::ParticipantNotFound => {
                Self::NotFound(err.to_string())
            }
            GameError::Database(err) => err.into(),
            _ => Self::Conflict(err.to_string()),
        }
    }
}

/// Schedule a game night.
#[utoipa::path(
    post,
    path = "/games",
    tag = "games",
    request_body = CreateGameRequest,
    responses(
        (status = 201, description = "Created", body = Game,
         headers(("location" = String, description = "URL of the new game"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named in `errors`; also a `scheduled_at` in the past or more than ten years ahead", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is briefly unavailable (restarting, unreachable); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
         headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    )
)]
async fn create_game(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateGameRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewGame::parse(request, Utc::now()).map_err(ApiError::Validation)?;
    let game = state.store.create(&new).await?;
    state.relay.notify();
    state.metrics.games_created.add(1, &[]);
    tracing::info!(game.id = %game.id, "game created");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/games/{}", game.id))],
        Json(game),
    ))
}

/// Query of `GET /games`. Strings in Rust, so that a bad value is answered
/// 400 naming the parameter; the document gives their real types.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only games with this status.
    #[param(value_type = Option<GameStatus>)]
    status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page: microseconds since the epoch, a
    /// dot, a UUID (as `encode_cursor` makes it).
    #[param(
        pattern = r"^-?[0-9]{1,16}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

/// One page of games.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GamePage {
    /// Games by start time, then id.
    pub games: Vec<Game>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// List game nights by start time, a page at a time.
#[utoipa::path(
    get,
    path = "/games",
    tag = "games",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of games", body = GamePage),
        (status = 400, description = "Bad parameter (named in `errors`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is briefly unavailable (restarting, unreachable); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
         headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    )
)]
async fn list_games(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GamePage>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let status = query
        .status
        .as_deref()
        .map(GameStatus::parse)
        .transpose()
        .map_err(|err| ApiError::bad_field("status", err.message))?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(limit) => limit
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_field("limit", format!("must be a number from 1 to {MAX_PAGE}"))
            })?,
    };
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One extra row tells whether there is a next page.
    let mut games = state.store.list(status, after, limit + 1).await?;
    // A fault switch (FAULT_CPU_BURN_PERCENT): CPU spent here, in the
    // request's span but in none of its children.
    if let Some(burn) = &state.cpu_burn {
        burn.on_request();
    }
    let next_cursor = if games.len() > limit as usize {
        games.truncate(limit as usize);
        games
            .last()
            .map(|game| encode_cursor((game.scheduled_at, game.id)))
    } else {
        None
    };
    Ok(Json(GamePage { games, next_cursor }))
}

/// `<microseconds since the epoch>.<uuid>`: opaque to clients, URL-safe.
fn encode_cursor((at, id): Position) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

fn decode_cursor(cursor: &str) -> Result<Position, ApiError> {
    let invalid = || ApiError::bad_field("cursor", "is not a cursor this API returned");
    let (micros, id) = cursor.split_once('.').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((at, id))
}

/// One game night, with its players.
#[utoipa::path(
    get,
    path = "/games/{id}",
    tag = "games",
    params(("id" = Uuid, Path, description = "Game id")),
    responses(
        (status = 200, description = "The game", body = Game),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such game", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is briefly unavailable (restarting, unreachable); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
         headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    )
)]
async fn get_game(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Game>, ApiError> {
    let id = uuid_param("id", &id)?;
    if let Some(game) = state.cache.get(id).await {
        return Ok(Json(game));
    }
    let game = state.store.find(id).await?.ok_or(GameError::GameNotFound)?;
    state.cache.put(&game).await;
    Ok(Json(game))
}

/// Take a seat at a game night. Refused when the player has a seat already,
/// when every seat is taken (there is no waitlist) or the game is not
/// scheduled.
#[utoipa::path(
    post,
    path = "/games/{id}/participants",
    tag = "games",
    params(("id" = Uuid, Path, description = "Game id")),
    request_body = JoinRequest,
    responses(
        (status = 201, description = "Joined; the updated game", body = Game),
        (status = 400, description = "Malformed id, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such game", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already joined, full, or not scheduled", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid player", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is briefly unavailable (restarting, unreachable); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
         headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    )
)]
async fn join_game(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<JoinRequest>,
) -> Result<(StatusCode, Json<Game>), ApiError> {
    let id = uuid_param("id", &id)?;
    let player = PlayerName::parse("player", request.player)
        .map_err(|err| ApiError::Validation(vec![err]))?;
    let game = state.store.join(id, &player).await?;
    state.changed(id).await;
    state.metrics.participants_joined.add(1, &[]);
    Ok((StatusCode::CREATED, Json(game)))
}

/// Give a seat up.
#[utoipa::path(
    delete,
    path = "/games/{id}/participants/{player}",
    tag = "games",
    params(
        ("id" = Uuid, Path, description = "Game id"),
        ("player" = String, Path, description = "Player name, as it joined", max_length = 50, pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"),
    ),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "Malformed id or player name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such game or participant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The game is not scheduled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is briefly unavailable (restarting, unreachable); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
         headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    )
)]
async fn leave_game(
    State(state): State<AppState>,
    Path((id, player)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = uuid_param("id", &id)?;
    let player = PlayerName::parse("player", Some(player))
        .map_err(|FieldError { field, message }| ApiError::bad_field(&field, message))?;
    state.store.leave(id, &player).await?;
    state.changed(id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Call a game night off. Its pending reminder is dropped downstream.
#[utoipa::path(
    post,
    path = "/games/{id}/cancel",
    tag = "games",
    params(("id" = Uuid, Path, description = "Game id")),
    responses(
        (status = 200, description = "Cancelled; the updated game", body = Game),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such game", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled or completed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL is briefly unavailable (restarting, unreachable); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
         headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
    )
)]
async fn cancel_game(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Game>, ApiError> {
    let id = uuid_param("id", &id)?;
    let game = state.store.cancel(id).await?;
    state.changed(id).await;
    Ok(Json(game))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `pattern` and `maxLength` the document gives a title or a
    /// name, with the field's limit.
    fn text_rules() -> Vec<(String, String, usize)> {
        let doc = serde_json::to_value(router().split_for_parts().1).unwrap();
        let mut rules = Vec::new();
        let schemas = &doc["components"]["schemas"];
        for (schema, field, max) in [
            ("CreateGameRequest", "title", crate::domain::MAX_TITLE_CHARS),
            ("CreateGameRequest", "host", crate::domain::MAX_NAME_CHARS),
            ("JoinRequest", "player", crate::domain::MAX_NAME_CHARS),
        ] {
            let property = &schemas[schema]["properties"][field];
            assert_eq!(property["maxLength"], max, "{schema}.{field}");
            rules.push((
                format!("{schema}.{field}"),
                property["pattern"].as_str().unwrap().to_owned(),
                max,
            ));
        }
        let leave = &doc["paths"]["/games/{id}/participants/{player}"]["delete"]["parameters"];
        let player = leave
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "player")
            .unwrap();
        assert_eq!(player["schema"]["maxLength"], crate::domain::MAX_NAME_CHARS);
        rules.push((
            "DELETE player".into(),
            player["schema"]["pattern"].as_str().unwrap().to_owned(),
            crate::domain::MAX_NAME_CHARS,
        ));
        rules
    }

    /// The document's rule for a name and the server's are the same rule:
    /// what one admits the other accepts (schemathesis checks it against a
    /// running api; this names the case that differs).
    #[test]
    fn the_documents_text_pattern_accepts_exactly_what_validation_accepts() {
        let samples = [
            "ada",
            " ada ",
            "Łódź game night",
            "🎲",
            "a b",
            "",
            " ",
            "\t",
            "\u{a0}",
            "\u{3000}x",
            "a\u{7}b",
            "\u{0}",
            "x\u{7f}",
            "x\u{85}",
            "\u{9f}",
            "a\nb",
            "\u{200b}",
            "\u{feff}",
            "x\u{2028}",
            "\u{1680}",
        ];
        for (name, pattern, max) in text_rules() {
            // ECMA-262 and the regex crate agree on these classes: \s is
            // Unicode White_Space, as char::is_whitespace.
            let pattern = regex::Regex::new(&pattern).unwrap();
            for sample in samples
                .iter()
                .map(|s| (*s).to_owned())
                .chain(["x".repeat(max), "x".repeat(max + 1)])
            {
                let documented = pattern.is_match(&sample) && sample.chars().count() <= max;
                let accepted = if name == "CreateGameRequest.title" {
                    NewGame::parse(
                        CreateGameRequest {
                            title: Some(sample.clone()),
                            host: Some("ada".into()),
                            scheduled_at: Some(Utc::now() + chrono::Duration::days(1)),
                            max_players: Some(4),
                            reminder_minutes: Some(0),
                        },
                        Utc::now(),
                    )
                    .is_ok()
                } else {
                    PlayerName::parse("player", Some(sample.clone())).is_ok()
                };
                assert_eq!(documented, accepted, "{name}: {sample:?}");
            }
        }
    }

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-12-24T19:00:00.123456Z")
            .unwrap()
            .to_utc();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor((at, id))).unwrap(), (at, id));
    }

    #[test]
    fn foreign_cursors_are_refused_naming_the_parameter() {
        for cursor in [
            "",
            "abc",
            "12.not-a-uuid",
            "x.7f1c0f55-3d6d-4b8e-a5b3-0d1c6b2a9e10",
        ] {
            match decode_cursor(cursor) {
                Err(ApiError::BadRequest { field, .. }) => {
                    assert_eq!(field.as_deref(), Some("cursor"))
                }
                other => panic!("{cursor:?}: {other:?}"),
            }
        }
    }
}
