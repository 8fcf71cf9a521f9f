//! Which database failures mean "PostgreSQL is away" rather than "bug", and
//! how to name a failure in a log without repeating what it may hold.
//!
//! While PostgreSQL restarts, pooled connections die under the requests
//! using them (`57P01 terminating connection due to administrator command`)
//! and new ones are refused for a moment. That is a transient fault: the
//! request is retried or answered 503 with `Retry-After`, never 500.

use std::borrow::Cow;

/// SQLSTATEs of a server going away: `admin_shutdown`, `crash_shutdown`,
/// `cannot_connect_now` (class 57, operator intervention).
const SHUTTING_DOWN: [&str; 3] = ["57P01", "57P02", "57P03"];

/// The connection died, or could not be opened, before the work on it was
/// committed: the server rolled the transaction back, so running it again
/// on another connection applies it exactly once.
///
/// Only true of failures *before* COMMIT: when COMMIT itself fails the
/// change may have been applied, and it must not be retried.
pub(crate) fn is_dropped_connection(err: &sqlx::Error) -> bool {
    match err {
        // Reset, refused, closed mid-message: the socket is gone.
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception.
            code.starts_with("08") || SHUTTING_DOWN.contains(&code.as_ref())
        }),
        _ => false,
    }
}

/// PostgreSQL is away (restarting, unreachable, or no pooled connection
/// came free in time): the client should come back shortly.
pub(crate) fn is_transient(err: &sqlx::Error) -> bool {
    is_dropped_connection(err) || matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
}

/// A low-cardinality name for `err`, for `error.type` and log fields: a
/// SQLSTATE when the server answered one, else the kind of failure.
pub(crate) fn kind(err: &sqlx::Error) -> Cow<'static, str> {
    match err {
        sqlx::Error::Database(db) => db.code().map_or(Cow::Borrowed("database"), |code| {
            Cow::Owned(code.into_owned())
        }),
        sqlx::Error::Io(_) => Cow::Borrowed("io"),
        sqlx::Error::Tls(_) => Cow::Borrowed("tls"),
        sqlx::Error::PoolTimedOut => Cow::Borrowed("pool_timed_out"),
        sqlx::Error::PoolClosed => Cow::Borrowed("pool_closed"),
        sqlx::Error::Configuration(_) => Cow::Borrowed("configuration"),
        _ => Cow::Borrowed("other"),
    }
}

/// What went wrong, for a log line: the server's message for errors it
/// returned, else the kind of failure. Never the `Display` of errors that
/// can name the server or its URL (TLS, configuration).
pub(crate) fn describe(err: &sqlx::Error) -> Cow<'_, str> {
    match err {
        // The server's own words about a statement: no address, no password.
        sqlx::Error::Database(db) => Cow::Borrowed(db.message()),
        // The OS error ("Connection reset by peer"), never an address.
        sqlx::Error::Io(io) => Cow::Owned(io.kind().to_string()),
        sqlx::Error::Tls(_) => Cow::Borrowed("TLS with the database failed"),
        sqlx::Error::Configuration(_) => Cow::Borrowed("invalid database configuration"),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Cow::Owned(err.to_string()),
        _ => Cow::Borrowed("database call failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_connection_is_dropped_and_a_pool_timeout_only_transient() {
        let reset = sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert!(is_dropped_connection(&reset));
        assert!(is_transient(&reset));
        assert!(!is_dropped_connection(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn descriptions_never_repeat_a_tls_or_configuration_error() {
        let tls = sqlx::Error::Tls("certificate not valid for db.internal.example".into());
        assert!(!describe(&tls).contains("db.internal.example"));
        let config = sqlx::Error::Configuration("postgres://u:hunter2@db".into());
        assert!(!describe(&config).contains("hunter2"));
        assert_eq!(kind(&config), "configuration");
    }
}
