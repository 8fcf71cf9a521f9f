-- Retention sweeps delete done rows by age; these indexes make a sweep with
-- nothing to delete a single index lookup.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX processed_messages_by_time ON processed_messages (processed_at);
CREATE INDEX notifications_sent ON notifications (sent_at) WHERE status = 'sent';
CREATE INDEX deliveries_by_time ON deliveries (delivered_at);
