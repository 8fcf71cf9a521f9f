//! The game events published by the api and consumed by the worker.
//!
//! A message's routing key is its [`GameEvent::routing_key`]; its body is an
//! [`Envelope`] as JSON:
//!
//! ```json
//! {"message_id":"…","occurred_at":"2026-11-24T20:00:00Z","game_id":"…",
//!  "type":"game.player_joined","payload":{"player":"ada"}}
//! ```
//!
//! `message_id` is unique per event: consumers use it to apply a redelivered
//! message only once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default name of the durable topic exchange the events are published to.
pub const DEFAULT_EXCHANGE: &str = "gamenight.events";
/// Default name of the topic exchange the worker publishes notifications to.
pub const DEFAULT_NOTIFICATIONS_EXCHANGE: &str = "gamenight.notifications";
/// Default name of the bot's queue of notifications. The worker declares it
/// too, so no notification is published before a queue exists to take it.
pub const DEFAULT_BOT_QUEUE: &str = "gamenight.bot.notifications";

/// Binding pattern of a queue that takes every game event.
pub const GAME_EVENT_PATTERN: &str = "game.*";
/// Binding pattern of a queue that takes every notification. The worker and
/// the bot both declare the bot's queue with it: RabbitMQ needs both
/// declarations to agree.
pub const NOTIFICATION_PATTERN: &str = "notification.*";

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A game was scheduled.
    Announcement,
    /// A player took a seat.
    PlayerJoined,
    /// The game starts soon.
    Reminder,
    /// The game was called off.
    Cancelled,
}

impl NotificationKind {
    /// The name stored in the database and used in routing keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Announcement => "announcement",
            Self::PlayerJoined => "player_joined",
            Self::Reminder => "reminder",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`NotificationKind::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        use serde::de::value::{Error, StrDeserializer};
        Self::deserialize(StrDeserializer::<Error>::new(value)).ok()
    }

    /// The routing key of its messages: `notification.<kind>`.
    pub fn routing_key(self) -> String {
        format!("notification.{}", self.as_str())
    }
}

/// A notification due for delivery, as the worker sends it to the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification; also the AMQP `message_id`.
    pub notification_id: Uuid,
    /// The game it is about; the bot fetches the rest from the api.
    pub game_id: Uuid,
    /// What it is about.
    pub kind: NotificationKind,
    /// The player who joined, for `player_joined`.
    pub player: Option<String>,
    /// When it was due: delivery lag is measured from here.
    pub due_at: DateTime<Utc>,
}

/// One event with its identity and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event; the AMQP `message_id` property carries it too.
    pub message_id: Uuid,
    /// When the change was committed.
    pub occurred_at: DateTime<Utc>,
    /// The game the event is about.
    pub game_id: Uuid,
    /// What happened.
    #[serde(flatten)]
    pub event: GameEvent,
}

impl Envelope {
    /// Wraps `event` about `game_id` with a fresh message id, dated now.
    pub fn new(game_id: Uuid, event: GameEvent) -> Self {
        Self {
            message_id: Uuid::new_v4(),
            occurred_at: Utc::now(),
            game_id,
            event,
        }
    }
}

/// What happened to a game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum GameEvent {
    /// A game night was scheduled.
    #[serde(rename = "game.created")]
    Created {
        /// Title shown to players.
        title: String,
        /// Who organises it.
        host: String,
        /// When it starts (UTC).
        scheduled_at: DateTime<Utc>,
        /// Seats at the table.
        max_players: i32,
        /// How long before the start the reminder goes out.
        reminder_minutes: i32,
    },
    /// A player took a seat.
    #[serde(rename = "game.player_joined")]
    PlayerJoined {
        /// The player's name.
        player: String,
    },
    /// A player gave their seat up.
    #[serde(rename = "game.player_left")]
    PlayerLeft {
        /// The player's name.
        player: String,
    },
    /// The game was called off.
    #[serde(rename = "game.cancelled")]
    Cancelled {},
}

impl GameEvent {
    /// The routing key the event is published with: its type.
    pub fn routing_key(&self) -> &'static str {
        match self {
            Self::Created { .. } => "game.created",
            Self::PlayerJoined { .. } => "game.player_joined",
            Self::PlayerLeft { .. } => "game.player_left",
            Self::Cancelled {} => "game.cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_flat_json_with_type_and_payload() {
        let game_id = Uuid::nil();
        let envelope = Envelope {
            message_id: Uuid::nil(),
            occurred_at: DateTime::parse_from_rfc3339("2026-11-24T20:00:00Z")
                .unwrap()
                .to_utc(),
            game_id,
            event: GameEvent::PlayerJoined {
                player: "ada".into(),
            },
        };
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "message_id": "00000000-0000-0000-0000-000000000000",
                "occurred_at": "2026-11-24T20:00:00Z",
                "game_id": "00000000-0000-0000-0000-000000000000",
                "type": "game.player_joined",
                "payload": {"player": "ada"}
            })
        );
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), envelope);
    }

    #[test]
    fn a_notification_kind_parses_from_its_name_as_on_the_wire() {
        for kind in [
            NotificationKind::Announcement,
            NotificationKind::PlayerJoined,
            NotificationKind::Reminder,
            NotificationKind::Cancelled,
        ] {
            assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(NotificationKind::parse("Reminder"), None);
        assert_eq!(NotificationKind::parse(""), None);
    }

    #[test]
    fn the_routing_key_is_the_type() {
        for event in [
            GameEvent::PlayerLeft { player: "b".into() },
            GameEvent::Cancelled {},
        ] {
            let json = serde_json::to_value(Envelope::new(Uuid::new_v4(), event.clone())).unwrap();
            assert_eq!(json["type"], event.routing_key());
        }
    }
}
