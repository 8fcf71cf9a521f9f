-- The worker's side: notifications to deliver, and the events it has applied.

CREATE TABLE notifications (
    id           uuid PRIMARY KEY,
    game_id      uuid        NOT NULL,
    kind         text        NOT NULL
                             CHECK (kind IN ('announcement', 'player_joined', 'reminder', 'cancelled')),
    -- The player who joined, for player_joined.
    player       text,
    due_at       timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    -- W3C trace context of the event that caused the notification: an
    -- immediate one continues that trace, a reminder links to it.
    traceparent  text,
    tracestate   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);

-- The scheduler's query: what is due and still pending.
CREATE INDEX notifications_due ON notifications (due_at) WHERE status = 'pending';
CREATE INDEX notifications_by_game ON notifications (game_id);

-- One row per event applied, written in the same transaction as its effects:
-- a redelivered message finds its id here and changes nothing.
CREATE TABLE processed_messages (
    message_id   uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
