//! What the traffic does: the operations and their shares, and the games
//! the generator has seen, so that joins, leaves and cancels go to games
//! that exist and some of them fail the way real clients' do (a full
//! table, a second join, a game already cancelled).

use std::collections::VecDeque;

use chrono::{Duration, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, RngExt};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// `POST /games` with a valid body.
    CreateGame,
    /// `GET /games?status=scheduled`.
    ListGames,
    /// `GET /games/{id}` of a known game: a cache hit when read recently.
    ReadGame,
    /// `POST /games/{id}/participants`: 201, or 409 when full or joined.
    JoinGame,
    /// `DELETE /games/{id}/participants/{player}`.
    LeaveGame,
    /// `POST /games/{id}/cancel`: 200, or 409 when already cancelled.
    CancelGame,
    /// `POST /games` with invalid fields: 422.
    CreateInvalidGame,
    /// `GET /games/{id}` of an id nobody created: 404.
    ReadUnknownGame,
}

impl Operation {
    /// How the summary and the spans name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateGame => "create game",
            Self::ListGames => "list games",
            Self::ReadGame => "read game",
            Self::JoinGame => "join game",
            Self::LeaveGame => "leave game",
            Self::CancelGame => "cancel game",
            Self::CreateInvalidGame => "create invalid game",
            Self::ReadUnknownGame => "read unknown game",
        }
    }
}

/// Shares of the mix, in percent: mostly reads and joins, as a game-night
/// app sees, and 7 % requests a client gets wrong.
pub const MIX: [(Operation, u32); 8] = [
    (Operation::CreateGame, 12),
    (Operation::ListGames, 10),
    (Operation::ReadGame, 30),
    (Operation::JoinGame, 30),
    (Operation::LeaveGame, 7),
    (Operation::CancelGame, 4),
    (Operation::CreateInvalidGame, 4),
    (Operation::ReadUnknownGame, 3),
];

/// How many recent games the generator keeps choosing from.
const KNOWN_GAMES: usize = 200;
/// Share of joins by a player already at the table (a 409).
const REJOIN_PERCENT: u32 = 10;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// What it is.
    pub operation: Operation,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// The route, for `url.template` and low-cardinality names.
    pub template: &'static str,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// The game it is about, if any.
    game: Option<Uuid>,
    /// The player who leaves, if it leaves.
    player: Option<String>,
}

impl Request {
    fn new(operation: Operation, method: Method, path: String, template: &'static str) -> Self {
        Self {
            operation,
            method,
            path,
            template,
            body: None,
            game: None,
            player: None,
        }
    }

    fn about(mut self, game: Uuid) -> Self {
        self.game = Some(game);
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

#[derive(Debug, Clone)]
struct KnownGame {
    id: Uuid,
    players: Vec<String>,
    scheduled: bool,
}

/// The games created so far (the newest [`KNOWN_GAMES`]), kept up to date
/// from the API's answers.
#[derive(Debug, Default)]
pub struct Games {
    games: VecDeque<KnownGame>,
    created: u64,
    players: u64,
}

impl Games {
    /// Draws an operation from [`MIX`].
    pub fn draw(rng: &mut impl Rng) -> Operation {
        let mut roll = rng.random_range(0..MIX.iter().map(|(_, share)| share).sum::<u32>());
        for (operation, share) in MIX {
            if roll < share {
                return operation;
            }
            roll -= share;
        }
        Operation::ReadGame
    }

    /// The request for `operation`; one that needs a game the generator
    /// does not know of yet creates one instead.
    pub fn plan(&mut self, operation: Operation, rng: &mut impl Rng) -> Request {
        let scheduled: Vec<&KnownGame> = self.games.iter().filter(|g| g.scheduled).collect();
        let planned = match operation {
            Operation::ReadGame => self
                .games
                .iter()
                .collect::<Vec<_>>()
                .choose(rng)
                .map(|game| {
                    Request::new(
                        operation,
                        Method::GET,
                        format!("/games/{}", game.id),
                        "/games/{id}",
                    )
                    .about(game.id)
                }),
            Operation::JoinGame => scheduled.choose(rng).map(|game| {
                let player = match game.players.choose(rng) {
                    Some(seated) if rng.random_ratio(REJOIN_PERCENT, 100) => seated.clone(),
                    _ => {
                        self.players += 1;
                        format!("player-{}", self.players)
                    }
                };
                let path = format!("/games/{}/participants", game.id);
                Request::new(operation, Method::POST, path, "/games/{id}/participants")
                    .about(game.id)
                    .body(json!({ "player": player }))
            }),
            Operation::LeaveGame => {
                let seated: Vec<&&KnownGame> =
                    scheduled.iter().filter(|g| !g.players.is_empty()).collect();
                seated.choose(rng).map(|game| {
                    let player = game.players.choose(rng).cloned().unwrap_or_default();
                    let path = format!("/games/{}/participants/{player}", game.id);
                    let mut request = Request::new(
                        operation,
                        Method::DELETE,
                        path,
                        "/games/{id}/participants/{player}",
                    )
                    .about(game.id);
                    request.player = Some(player);
                    request
                })
            }
            Operation::CancelGame => scheduled.choose(rng).map(|game| {
                let path = format!("/games/{}/cancel", game.id);
                Request::new(operation, Method::POST, path, "/games/{id}/cancel").about(game.id)
            }),
            Operation::ListGames => Some(Request::new(
                operation,
                Method::GET,
                "/games?status=scheduled&limit=20".to_owned(),
                "/games",
            )),
            Operation::CreateInvalidGame => Some(
                Request::new(operation, Method::POST, "/games".to_owned(), "/games").body(json!({
                    "title": "",
                    "host": "loadgen",
                    "scheduled_at": Utc::now() + Duration::days(1),
                    "max_players": 1,
                    "reminder_minutes": 60,
                })),
            ),
            Operation::ReadUnknownGame => Some(Request::new(
                operation,
                Method::GET,
                format!("/games/{}", Uuid::new_v4()),
                "/games/{id}",
            )),
            Operation::CreateGame => None,
        };
        planned.unwrap_or_else(|| {
            self.created += 1;
            Request::new(
                Operation::CreateGame,
                Method::POST,
                "/games".to_owned(),
                "/games",
            )
            .body(json!({
                "title": format!("Game night {}", self.created),
                "host": format!("host-{}", self.created % 50),
                "scheduled_at": Utc::now() + Duration::minutes(rng.random_range(90..=30 * 24 * 60)),
                "max_players": rng.random_range(2..=8),
                "reminder_minutes": *[0, 30, 60, 1440].choose(rng).unwrap_or(&60),
            }))
        })
    }

    /// Learns from the API's answer to `request`: a created game, the
    /// players of a game it returned, a player gone, a game cancelled.
    pub fn learn(&mut self, request: &Request, status: u16, body: Option<&Value>) {
        if let Some(game) = body.and_then(known_game) {
            match self.games.iter_mut().find(|g| g.id == game.id) {
                Some(known) => *known = game,
                None => {
                    self.games.push_back(game);
                    if self.games.len() > KNOWN_GAMES {
                        self.games.pop_front();
                    }
                }
            }
            return;
        }
        let Some(known) = request
            .game
            .and_then(|id| self.games.iter_mut().find(|g| g.id == id))
        else {
            return;
        };
        match (request.operation, status) {
            (Operation::LeaveGame, 204) => {
                known.players.retain(|p| Some(p) != request.player.as_ref())
            }
            // Gone (deleted by retention), or no longer scheduled.
            (_, 404) => {
                let id = known.id;
                self.games.retain(|g| g.id != id);
            }
            // "the game is cancelled" (or completed): no more joins, leaves
            // or cancels. A full game or a second join changes nothing.
            (_, 409) => {
                let detail = body.and_then(|b| b.get("detail")).and_then(Value::as_str);
                if detail.is_some_and(|d| d.starts_with("the game is ") && d != "the game is full")
                {
                    known.scheduled = false;
                }
            }
            _ => {}
        }
    }

    /// How many games the generator can choose from.
    pub fn known(&self) -> usize {
        self.games.len()
    }
}

/// A game as the API returns it.
fn known_game(body: &Value) -> Option<KnownGame> {
    Some(KnownGame {
        id: body.get("id")?.as_str()?.parse().ok()?,
        players: body
            .get("players")?
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
        scheduled: body.get("status")?.as_str()? == "scheduled",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_mix_adds_up_to_a_hundred_and_draws_every_operation() {
        assert_eq!(MIX.iter().map(|(_, share)| share).sum::<u32>(), 100);
        let mut rng = rand::rng();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10_000 {
            seen.insert(Games::draw(&mut rng));
        }
        assert_eq!(seen.len(), MIX.len());
    }

    #[test]
    fn without_a_game_to_act_on_a_game_is_created() {
        let mut games = Games::default();
        let mut rng = rand::rng();
        for operation in [
            Operation::ReadGame,
            Operation::JoinGame,
            Operation::LeaveGame,
            Operation::CancelGame,
        ] {
            let request = games.plan(operation, &mut rng);
            assert_eq!(request.operation, Operation::CreateGame, "{operation:?}");
        }
    }

    #[test]
    fn answers_keep_the_known_games_current() {
        let mut games = Games::default();
        let mut rng = rand::rng();
        let id = Uuid::new_v4();
        let game = |players: &[&str], status: &str| json!({"id": id, "max_players": 2, "players": players, "status": status});
        let create = games.plan(Operation::CreateGame, &mut rng);
        games.learn(&create, 201, Some(&game(&[], "scheduled")));
        let join = games.plan(Operation::JoinGame, &mut rng);
        assert_eq!(join.path, format!("/games/{id}/participants"));
        games.learn(&join, 201, Some(&game(&["ada"], "scheduled")));
        let leave = games.plan(Operation::LeaveGame, &mut rng);
        assert_eq!(leave.path, format!("/games/{id}/participants/ada"));
        games.learn(&leave, 204, None);
        assert_eq!(
            games.plan(Operation::LeaveGame, &mut rng).operation,
            Operation::CreateGame
        );
        let cancel = games.plan(Operation::CancelGame, &mut rng);
        games.learn(&cancel, 200, Some(&game(&[], "cancelled")));
        // A cancelled game takes no joins: the generator creates one.
        assert_eq!(
            games.plan(Operation::JoinGame, &mut rng).operation,
            Operation::CreateGame
        );
        assert_eq!(games.known(), 1);
    }
}
