-- Claims become leases instead of open transactions. The outbox relay and
-- the scheduler stamp the rows they are about to publish with claimed_until,
-- publish them one by one, and mark each as soon as RabbitMQ confirms it. The
-- rows of a process that died are claimable again once the lease ends, and
-- claimed_until also holds back a row whose last attempt failed until its
-- retry is due.

ALTER TABLE outbox
    ADD COLUMN claimed_until timestamptz,
    -- A row that can never be published (RabbitMQ refused it max_attempts
    -- times) is set aside rather than retried forever; operators re-drive it.
    ADD COLUMN set_aside_at  timestamptz;

DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id)
    WHERE published_at IS NULL AND set_aside_at IS NULL;
CREATE INDEX outbox_set_aside ON outbox (id) WHERE set_aside_at IS NOT NULL;

ALTER TABLE notifications ADD COLUMN claimed_until timestamptz;

-- The dead-notifications gauge and re-drive look these up.
CREATE INDEX notifications_dead ON notifications (id) WHERE status = 'dead';
