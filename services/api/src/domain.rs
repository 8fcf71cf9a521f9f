//! The game-night domain: validated values and the rules of joining.
//!
//! Every value that comes from a client is parsed into a type here, and a
//! failure names the field, so handlers never see unchecked input.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as named in the request (`title`, `scheduled_at`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Checks `value`'s length in characters (as sent), that it is more than
/// whitespace and holds no control characters, and trims it: the rules the
/// OpenAPI document states as `maxLength` and `pattern` (a test in
/// routes.rs holds the two to the same answers).
fn text(field: &str, value: Option<String>, max: usize) -> Result<String, FieldError> {
    let value = value.ok_or_else(|| FieldError::new(field, "is required"))?;
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.trim().to_owned())
}

/// Maximum length of a game title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Maximum length of a player (or host) name, in characters.
pub const MAX_NAME_CHARS: usize = 50;
/// Seats at a table: at least 2, at most 100.
pub const PLAYERS_RANGE: std::ops::RangeInclusive<i32> = 2..=100;
/// Reminder lead time in minutes: from none to a week.
pub const REMINDER_RANGE: std::ops::RangeInclusive<i32> = 0..=10_080;
/// How far ahead a game may be scheduled: ten years.
pub const MAX_DAYS_AHEAD: i64 = 3653;

/// A player's (or host's) name: 1 to 50 characters, no control characters,
/// surrounding whitespace removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerName(String);

impl PlayerName {
    /// Validates `value` as the field `field`.
    pub fn parse(field: &str, value: Option<String>) -> Result<Self, FieldError> {
        text(field, value, MAX_NAME_CHARS).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of `POST /games`, before validation. The fields are optional
/// in Rust so that a missing one is reported by name; the document says
/// what the validation requires.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGameRequest {
    /// Title shown to players: up to 100 characters, not only whitespace,
    /// no control characters; surrounding whitespace is removed.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$", example = "Catan night")]
    pub title: Option<String>,
    /// Who organises it: up to 50 characters, as `title`.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 50, pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$", example = "ada")]
    pub host: Option<String>,
    /// When it starts: RFC 3339, in the future, within ten years (422
    /// otherwise).
    #[schema(value_type = DateTime<Utc>, required = true, example = "2035-01-04T19:00:00Z")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Seats at the table, 2–100.
    #[schema(value_type = i32, required = true, minimum = 2, maximum = 100, example = 4)]
    #[serde(default, deserialize_with = "whole_number")]
    pub max_players: Option<i32>,
    /// Minutes before the start to remind players, 0–10080.
    #[schema(value_type = i32, required = true, minimum = 0, maximum = 10_080, example = 60)]
    #[serde(default, deserialize_with = "whole_number")]
    pub reminder_minutes: Option<i32>,
}

/// A JSON number with no fractional part, as JSON Schema's `integer` is:
/// `4.0` is 4, as the OpenAPI document promises; `4.5` is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i32>, D::Error> {
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= f64::from(i32::MAX))
                // Whole and within i32: the cast is exact.
                .map(|f| f as i64)
        })
        .and_then(|n| i32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "invalid value: {number}, expected a whole number within 32 bits"
            ))
        })
}

/// The body of `POST /games/{id}/participants`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The player's name: up to 50 characters, not only whitespace, no
    /// control characters; surrounding whitespace is removed.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 50, pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$", example = "grace")]
    pub player: Option<String>,
}

/// A game night that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGame {
    /// Validated title.
    pub title: String,
    /// Validated host.
    pub host: PlayerName,
    /// In the future, within [`MAX_DAYS_AHEAD`].
    pub scheduled_at: DateTime<Utc>,
    /// Within [`PLAYERS_RANGE`].
    pub max_players: i32,
    /// Within [`REMINDER_RANGE`].
    pub reminder_minutes: i32,
}

impl NewGame {
    /// Validates every field of `request`, reporting all problems at once.
    pub fn parse(request: CreateGameRequest, now: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let title = text("title", request.title, MAX_TITLE_CHARS);
        let host = PlayerName::parse("host", request.host);
        let scheduled_at = match request.scheduled_at {
            None => Err(FieldError::new("scheduled_at", "is required")),
            Some(at) if at <= now => Err(FieldError::new("scheduled_at", "must be in the future")),
            Some(at) if at > now + Duration::days(MAX_DAYS_AHEAD) => Err(FieldError::new(
                "scheduled_at",
                format!("must be within {MAX_DAYS_AHEAD} days"),
            )),
            Some(at) => Ok(at),
        };
        let in_range =
            |field: &str, value: Option<i32>, range: std::ops::RangeInclusive<i32>| match value {
                None => Err(FieldError::new(field, "is required")),
                Some(v) if !range.contains(&v) => Err(FieldError::new(
                    field,
                    format!("must be between {} and {}", range.start(), range.end()),
                )),
                Some(v) => Ok(v),
            };
        let max_players = in_range("max_players", request.max_players, PLAYERS_RANGE);
        let reminder_minutes =
            in_range("reminder_minutes", request.reminder_minutes, REMINDER_RANGE);

        match (title, host, scheduled_at, max_players, reminder_minutes) {
            (Ok(title), Ok(host), Ok(scheduled_at), Ok(max_players), Ok(reminder_minutes)) => {
                Ok(Self {
                    title,
                    host,
                    scheduled_at,
                    max_players,
                    reminder_minutes,
                })
            }
            (title, host, at, players, reminder) => Err([
                title.err(),
                host.err(),
                at.err(),
                players.err(),
                reminder.err(),
            ]
            .into_iter()
            .flatten()
            .collect()),
        }
    }
}

/// Where a game is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum GameStatus {
    /// Open for players.
    Scheduled,
    /// Called off; no more joins.
    Cancelled,
    /// Played.
    Completed,
}

impl GameStatus {
    /// The status as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }

    /// Parses the `status` query parameter.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        [Self::Scheduled, Self::Cancelled, Self::Completed]
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| {
                FieldError::new("status", "must be one of scheduled, cancelled, completed")
            })
    }
}

/// A game night as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Game {
    /// Identifier, used in every URL about the game.
    pub id: Uuid,
    /// Title shown to players.
    pub title: String,
    /// Who organises it.
    pub host: String,
    /// When it starts (UTC).
    pub scheduled_at: DateTime<Utc>,
    /// Seats at the table.
    pub max_players: i32,
    /// Minutes before the start the reminder goes out.
    pub reminder_minutes: i32,
    /// Where the game is in its life.
    pub status: GameStatus,
    /// Players holding a seat, in the order they joined.
    pub players: Vec<String>,
    /// When the game was created.
    pub created_at: DateTime<Utc>,
    /// When the game last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> CreateGameRequest {
        CreateGameRequest {
            title: Some("  Catan night ".into()),
            host: Some("ada".into()),
            scheduled_at: Some(Utc::now() + Duration::days(3)),
            max_players: Some(4),
            reminder_minutes: Some(60),
        }
    }

    #[test]
    fn a_valid_request_is_trimmed_and_accepted() {
        let game = NewGame::parse(valid(), Utc::now()).unwrap();
        assert_eq!(game.title, "Catan night");
        assert_eq!(game.host.as_str(), "ada");
    }

    #[test]
    fn every_invalid_field_is_named() {
        let request = CreateGameRequest {
            title: Some("   ".into()),
            host: None,
            scheduled_at: Some(Utc::now() - Duration::minutes(1)),
            max_players: Some(1),
            reminder_minutes: Some(20_000),
        };
        let errors = NewGame::parse(request, Utc::now()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "host",
                "scheduled_at",
                "max_players",
                "reminder_minutes"
            ]
        );
        assert_eq!(errors[0].message, "must not be empty");
        assert_eq!(errors[1].message, "is required");
        assert_eq!(errors[2].message, "must be in the future");
        assert_eq!(errors[3].message, "must be between 2 and 100");
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(PlayerName::parse("player", Some("x".repeat(50))).is_ok());
        let long = PlayerName::parse("player", Some("x".repeat(51))).unwrap_err();
        assert_eq!(long.message, "must be at most 50 characters");
        let control = PlayerName::parse("player", Some("a\u{7}b".into())).unwrap_err();
        assert_eq!(control.field, "player");
    }

    #[test]
    fn games_too_far_ahead_are_refused() {
        let mut request = valid();
        request.scheduled_at = Some(Utc::now() + Duration::days(4000));
        let errors = NewGame::parse(request, Utc::now()).unwrap_err();
        assert_eq!(errors[0].field, "scheduled_at");
    }

    #[test]
    fn lengths_count_the_characters_as_sent_and_whitespace_alone_is_empty() {
        // The document's maxLength applies to the string sent, before the
        // trim: 49 letters and two spaces are 51 characters.
        let padded = format!(" {} ", "x".repeat(49));
        assert_eq!(
            PlayerName::parse("player", Some(padded))
                .unwrap_err()
                .message,
            "must be at most 50 characters"
        );
        for blank in ["", " ", "\u{3000}\u{a0}"] {
            let err = PlayerName::parse("player", Some(blank.into())).unwrap_err();
            assert_eq!(err.message, "must not be empty", "{blank:?}");
        }
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_fraction_of_zero() {
        let parse = |body: &str| serde_json::from_str::<CreateGameRequest>(body);
        let request = parse(r#"{"max_players": 4.0, "reminder_minutes": 60}"#).unwrap();
        assert_eq!(
            (request.max_players, request.reminder_minutes),
            (Some(4), Some(60))
        );
        assert_eq!(parse(r#"{"max_players": null}"#).unwrap().max_players, None);
        for refused in [
            r#"{"max_players": 4.5}"#,
            r#"{"max_players": 1e10}"#,
            r#"{"max_players": 4294967296}"#,
            r#"{"max_players": "4"}"#,
        ] {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn statuses_parse_from_their_lowercase_names() {
        assert_eq!(GameStatus::parse("cancelled"), Ok(GameStatus::Cancelled));
        assert_eq!(GameStatus::parse("open").unwrap_err().field, "status");
    }
}
