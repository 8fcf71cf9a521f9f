//! Rendering a notification as a Discord webhook message.

use chrono::{DateTime, Utc};
use events::{Notification, NotificationKind};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where a game is in its life, as the api reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GameStatus {
    /// Open for players.
    Scheduled,
    /// Called off: only the cancellation is still worth posting.
    Cancelled,
    /// Played.
    Completed,
}

/// The part of the api's game the bot shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GameView {
    /// Title shown to players.
    pub title: String,
    /// Who organises it.
    pub host: String,
    /// When it starts.
    pub scheduled_at: DateTime<Utc>,
    /// Seats at the table.
    pub max_players: i32,
    /// Players holding a seat.
    pub players: Vec<String>,
    /// Whether it still takes place.
    pub status: GameStatus,
}

/// The webhook body: a line of content and an embed with title, time and
/// players. Mentions are disabled, so a title such as `@everyone` pings
/// nobody.
pub fn discord_message(notification: &Notification, game: &GameView) -> Value {
    let starts = format!("<t:{}:F>", game.scheduled_at.timestamp());
    let title = &game.title;
    let content = match notification.kind {
        NotificationKind::Announcement => {
            format!("🎲 New game night: **{title}**, hosted by {}", game.host)
        }
        NotificationKind::PlayerJoined => format!(
            "🙋 {} joined **{title}** ({}/{})",
            notification.player.as_deref().unwrap_or("Someone"),
            game.players.len(),
            game.max_players
        ),
        NotificationKind::Reminder => format!(
            "⏰ **{title}** starts <t:{}:R>",
            game.scheduled_at.timestamp()
        ),
        NotificationKind::Cancelled => format!("❌ **{title}** was cancelled"),
    };
    let players = if game.players.is_empty() {
        "nobody yet".to_owned()
    } else {
        game.players.join(", ")
    };
    json!({
        "content": content,
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": title,
            "timestamp": game.scheduled_at.to_rfc3339(),
            "fields": [
                { "name": "When", "value": starts, "inline": true },
                { "name": "Host", "value": game.host, "inline": true },
                {
                    "name": format!("Players ({}/{})", game.players.len(), game.max_players),
                    "value": players,
                    "inline": false
                },
            ],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn game() -> GameView {
        GameView {
            title: "Catan @everyone".into(),
            host: "ada".into(),
            scheduled_at: DateTime::parse_from_rfc3339("2026-12-24T19:00:00Z")
                .unwrap()
                .to_utc(),
            max_players: 4,
            players: vec!["grace".into(), "linus".into()],
            status: GameStatus::Scheduled,
        }
    }

    fn notification(kind: NotificationKind, player: Option<&str>) -> Notification {
        Notification {
            notification_id: Uuid::nil(),
            game_id: Uuid::nil(),
            kind,
            player: player.map(str::to_owned),
            due_at: Utc::now(),
        }
    }

    #[test]
    fn a_join_names_the_player_and_the_seats() {
        let message = discord_message(
            &notification(NotificationKind::PlayerJoined, Some("linus")),
            &game(),
        );
        assert_eq!(
            message["content"],
            "🙋 linus joined **Catan @everyone** (2/4)"
        );
        assert_eq!(message["embeds"][0]["fields"][2]["name"], "Players (2/4)");
        assert_eq!(message["embeds"][0]["fields"][2]["value"], "grace, linus");
        assert_eq!(
            message["embeds"][0]["timestamp"],
            "2026-12-24T19:00:00+00:00"
        );
    }

    #[test]
    fn mentions_are_never_parsed() {
        let message = discord_message(&notification(NotificationKind::Announcement, None), &game());
        assert_eq!(message["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn reminders_use_discord_relative_time() {
        let message = discord_message(&notification(NotificationKind::Reminder, None), &game());
        let at = game().scheduled_at.timestamp();
        assert_eq!(
            message["content"],
            format!("⏰ **Catan @everyone** starts <t:{at}:R>")
        );
    }
}
