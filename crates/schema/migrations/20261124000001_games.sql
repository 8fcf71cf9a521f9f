-- Game nights, their players, and the outbox of domain events.

CREATE TABLE games (
    id               uuid PRIMARY KEY,
    title            text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 100),
    host             text        NOT NULL CHECK (char_length(host) BETWEEN 1 AND 50),
    scheduled_at     timestamptz NOT NULL,
    max_players      integer     NOT NULL CHECK (max_players BETWEEN 2 AND 100),
    reminder_minutes integer     NOT NULL CHECK (reminder_minutes BETWEEN 0 AND 10080),
    status           text        NOT NULL DEFAULT 'scheduled'
                                 CHECK (status IN ('scheduled', 'cancelled', 'completed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- GET /games pages through games by start time, optionally by status.
CREATE INDEX games_by_schedule ON games (scheduled_at, id);
CREATE INDEX games_by_status_schedule ON games (status, scheduled_at, id);

CREATE TABLE participants (
    game_id   uuid        NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    player    text        NOT NULL CHECK (char_length(player) BETWEEN 1 AND 50),
    joined_at timestamptz NOT NULL DEFAULT now(),
    -- A player takes one seat per game.
    PRIMARY KEY (game_id, player)
);

-- Written in the same transaction as the change it describes; the relay
-- publishes rows with published_at NULL and stamps them once RabbitMQ has
-- confirmed them.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   uuid        NOT NULL UNIQUE,
    routing_key  text        NOT NULL,
    payload      jsonb       NOT NULL,
    -- W3C trace context of the request that caused the event, so the
    -- publish span continues that request's trace.
    traceparent  text,
    tracestate   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
