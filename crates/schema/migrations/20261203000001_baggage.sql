-- W3C baggage beside traceparent and tracestate, so the application entries a
-- request carried (tenant, feature flags, …) cross the database hops as they
-- cross HTTP and AMQP: the three columns are one telemetry::StoredContext.
ALTER TABLE outbox ADD COLUMN baggage text;
ALTER TABLE notifications ADD COLUMN baggage text;
