//! `sqlx::Error` as a [`DbError`]: which failures mean "the database is
//! away" rather than "bug", and how to name a failure without repeating what
//! it may hold.
//!
//! While PostgreSQL restarts, pooled connections die under the calls using
//! them (`57P01 terminating connection due to administrator command`) and new
//! ones are refused for a moment. That is a transient fault: the api answers
//! 503 with `Retry-After`, a consumer waits it out without spending an
//! attempt of the message. Never 500, never a dead letter.
//!
//! The `Display` of some variants names the server (`Tls`, `Configuration`,
//! and an `Io` error's text may carry an address): descriptions are built
//! from the variant, the SQLSTATE and the server's own message instead.

use std::borrow::Cow;

use super::DbError;

/// SQLSTATEs of a server going away: `admin_shutdown`, `crash_shutdown`,
/// `cannot_connect_now` (class 57, operator intervention).
const SHUTTING_DOWN: [&str; 3] = ["57P01", "57P02", "57P03"];

impl DbError for ::sqlx::Error {
    fn error_type(&self) -> Cow<'static, str> {
        use ::sqlx::Error;
        match self {
            Error::Database(db) => db.code().map_or(Cow::Borrowed("database"), |code| {
                Cow::Owned(code.into_owned())
            }),
            Error::Io(_) => Cow::Borrowed("io"),
            Error::Tls(_) => Cow::Borrowed("tls"),
            Error::Protocol(_) => Cow::Borrowed("protocol"),
            Error::PoolTimedOut => Cow::Borrowed("pool_timed_out"),
            Error::PoolClosed => Cow::Borrowed("pool_closed"),
            Error::WorkerCrashed => Cow::Borrowed("worker_crashed"),
            Error::Configuration(_) => Cow::Borrowed("configuration"),
            Error::RowNotFound => Cow::Borrowed("row_not_found"),
            Error::ColumnNotFound(_) | Error::ColumnIndexOutOfBounds { .. } => {
                Cow::Borrowed("column")
            }
            Error::ColumnDecode { .. } | Error::Decode(_) => Cow::Borrowed("decode"),
            Error::Encode(_) => Cow::Borrowed("encode"),
            Error::Migrate(_) => Cow::Borrowed("migrate"),
            _ => Cow::Borrowed("other"),
        }
    }

    fn describe(&self) -> Cow<'_, str> {
        use ::sqlx::Error;
        match self {
            // The server's own words about a statement: no address, no
            // password (it may quote a value the statement was given).
            Error::Database(db) => Cow::Borrowed(db.message()),
            // The OS error's kind ("connection reset"), never its text,
            // which may name the address.
            Error::Io(io) => Cow::Owned(io.kind().to_string()),
            Error::Tls(_) => Cow::Borrowed("TLS with the database failed"),
            Error::Protocol(_) => Cow::Borrowed("unexpected message from the database"),
            Error::Configuration(_) => Cow::Borrowed("invalid database configuration"),
            Error::PoolTimedOut => Cow::Borrowed("no database connection came free in time"),
            Error::PoolClosed => Cow::Borrowed("the database pool is closed"),
            Error::WorkerCrashed => Cow::Borrowed("the database connection's worker crashed"),
            Error::RowNotFound => Cow::Borrowed("no row returned"),
            // Names of our own columns and types: nothing of the server.
            Error::ColumnNotFound(_)
            | Error::ColumnIndexOutOfBounds { .. }
            | Error::ColumnDecode { .. }
            | Error::Decode(_)
            | Error::Encode(_)
            | Error::TypeNotFound { .. } => Cow::Owned(self.to_string()),
            _ => Cow::Borrowed("database call failed"),
        }
    }

    fn is_dropped_connection(&self) -> bool {
        match self {
            // Reset, refused, closed mid-message: the socket is gone.
            ::sqlx::Error::Io(_) => true,
            ::sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // Class 08: connection exception.
                code.starts_with("08") || SHUTTING_DOWN.contains(&code.as_ref())
            }),
            _ => false,
        }
    }

    fn is_transient(&self) -> bool {
        self.is_dropped_connection()
            || matches!(
                self,
                ::sqlx::Error::PoolTimedOut | ::sqlx::Error::PoolClosed
            )
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use ::sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A server error with a SQLSTATE, as PostgreSQL would return it.
    #[derive(Debug)]
    struct ServerError {
        code: &'static str,
        message: &'static str,
    }

    impl fmt::Display for ServerError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)
        }
    }

    impl StdError for ServerError {}

    impl DatabaseError for ServerError {
        fn message(&self) -> &str {
            self.message
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn server(code: &'static str, message: &'static str) -> ::sqlx::Error {
        ::sqlx::Error::Database(Box::new(ServerError { code, message }))
    }

    #[test]
    fn a_server_going_away_is_a_dropped_connection() {
        for code in ["57P01", "57P02", "57P03", "08000", "08006", "08P01"] {
            let err = server(code, "terminating connection due to administrator command");
            assert!(err.is_dropped_connection(), "{code}");
            assert!(err.is_transient(), "{code}");
            assert_eq!(err.error_type(), code);
        }
    }

    #[test]
    fn a_statement_the_server_refused_is_neither_dropped_nor_transient() {
        // unique_violation, undefined_table, query_canceled, and a class-57
        // code that is not a shutdown.
        for code in ["23505", "42P01", "57014", "57P04"] {
            let err = server(code, "duplicate key value violates unique constraint");
            assert!(!err.is_dropped_connection(), "{code}");
            assert!(!err.is_transient(), "{code}");
            assert_eq!(err.error_type(), code);
        }
        assert_eq!(
            server("23505", "duplicate key value violates unique constraint").describe(),
            "duplicate key value violates unique constraint"
        );
    }

    #[test]
    fn a_reset_socket_is_dropped_and_described_by_its_kind_only() {
        let reset = ::sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by db.internal.example:5432",
        ));
        assert!(reset.is_dropped_connection());
        assert!(reset.is_transient());
        assert_eq!(reset.error_type(), "io");
        assert_eq!(reset.describe(), "connection reset");
    }

    #[test]
    fn an_exhausted_or_closed_pool_is_transient_but_not_a_dropped_connection() {
        for err in [::sqlx::Error::PoolTimedOut, ::sqlx::Error::PoolClosed] {
            assert!(!err.is_dropped_connection());
            assert!(err.is_transient());
        }
        assert_eq!(::sqlx::Error::PoolTimedOut.error_type(), "pool_timed_out");
        assert_eq!(::sqlx::Error::PoolClosed.error_type(), "pool_closed");
    }

    #[test]
    fn a_bug_on_our_side_is_not_transient() {
        for err in [
            ::sqlx::Error::RowNotFound,
            ::sqlx::Error::ColumnNotFound("player".into()),
            ::sqlx::Error::Protocol("unexpected".into()),
        ] {
            assert!(!err.is_transient(), "{err}");
        }
        assert_eq!(::sqlx::Error::RowNotFound.error_type(), "row_not_found");
    }

    #[test]
    fn tls_and_configuration_errors_never_echo_their_text() {
        let secrets = ["db.internal.example", "hunter2"];
        for err in [
            ::sqlx::Error::Tls("certificate not valid for db.internal.example".into()),
            ::sqlx::Error::Configuration("postgres://u:hunter2@db.internal.example".into()),
            ::sqlx::Error::Protocol("db.internal.example sent hunter2".into()),
        ] {
            let description = err.describe();
            let error_type = err.error_type();
            for secret in secrets {
                assert!(!description.contains(secret), "{description}");
                assert!(!error_type.contains(secret), "{error_type}");
            }
            assert!(!err.is_transient());
        }
        assert_eq!(
            ::sqlx::Error::Tls("x".into()).describe(),
            "TLS with the database failed"
        );
        assert_eq!(
            ::sqlx::Error::Configuration("x".into()).error_type(),
            "configuration"
        );
    }
}
