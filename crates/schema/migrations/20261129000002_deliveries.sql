-- The bot's side: each notification it has posted to Discord, so a
-- redelivered notification is acknowledged without being posted again.

CREATE TABLE deliveries (
    notification_id    uuid PRIMARY KEY,
    -- The id Discord gave the message (webhook called with ?wait=true);
    -- NULL in dry run, where nothing is posted.
    discord_message_id text,
    delivered_at       timestamptz NOT NULL DEFAULT now()
);
