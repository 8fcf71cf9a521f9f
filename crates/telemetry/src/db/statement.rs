//! The operation and table a SQL statement names, read from its text so a
//! call site gives the statement once and the span names follow from it.
//!
//! A reader, not a parser: it finds the first keyword and the table after
//! `INTO` (INSERT), `UPDATE`, `FROM` (DELETE, SELECT), looking only at the
//! outermost level of the statement (a subquery's FROM is not the table of
//! the statement around it) and skipping string literals. A `WITH` statement
//! is named by its first common table expression, the first operation in its
//! text. Anything it does not recognise gets no collection, never a wrong one.

/// What a statement does and to which table: `db.operation.name` and
/// `db.collection.name`, slices of the statement's own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// The first keyword as written (`SELECT`, `INSERT`, `COMMIT`, …); empty
    /// for a statement with no keyword.
    pub operation: &'static str,
    /// The table the statement is about, when it names exactly one place to
    /// look: `None` for `COMMIT`, `SELECT 1`, `SELECT pg_advisory_xact_lock(…)`
    /// or a `FROM (subquery)`.
    pub collection: Option<&'static str>,
}

/// Each operation that names a table, and the keyword the table follows.
const TABLE_AFTER: [(&str, &str); 4] = [
    ("INSERT", "INTO"),
    ("UPDATE", "UPDATE"),
    ("DELETE", "FROM"),
    ("SELECT", "FROM"),
];

/// Words that can follow FROM/INTO/UPDATE but are not a table.
const NOT_TABLES: [&str; 4] = ["LATERAL", "SELECT", "VALUES", "WHERE"];

impl Statement {
    /// Reads the operation and table of `sql`.
    pub fn parse(sql: &'static str) -> Self {
        let operation = pieces(sql).next().filter(|piece| is_word(piece));
        let operation = operation.unwrap_or_default();
        if is(operation, "WITH") {
            // `WITH [RECURSIVE] name [(columns)] AS [[NOT] MATERIALIZED] (body)`:
            // the first group after AS is the first CTE's body. It is read
            // from past its `(`; its `)` is one more piece, after the table.
            let mut after_with = pieces(sql).skip_while(|piece| !is(piece, "AS"));
            if let Some(body) = after_with.find(|piece| piece.starts_with('(')) {
                return Self::parse(&body[1..]);
            }
        }
        let collection = TABLE_AFTER
            .iter()
            .find(|(named, _)| is(operation, named))
            .and_then(|(_, keyword)| {
                let mut rest = pieces(sql).skip_while(|piece| !is(piece, keyword)).skip(1);
                // `UPDATE ONLY games`, `DELETE FROM ONLY games`.
                let table = rest.find(|piece| !is(piece, "ONLY"))?;
                let not_table = NOT_TABLES.iter().any(|keyword| is(table, keyword));
                (is_word(table) && !not_table).then_some(table)
            });
        Self {
            operation,
            collection,
        }
    }
}

fn is(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

/// Whether a piece is a keyword or a name (`games`, `public.games`,
/// `"Game Nights"`, `$1::text`).
fn is_word(piece: &str) -> bool {
    piece.starts_with(|c| is_word_char(c) || c == '"')
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | ':')
}

/// The outermost pieces of `sql`, slices of it: words, groups from a `(` to
/// its `)` (to the end if unclosed), string literals, and single characters
/// of anything else.
fn pieces(sql: &'static str) -> impl Iterator<Item = &'static str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        let text = rest.trim_start();
        let (piece, after) = text.split_at(piece_len(text));
        rest = after;
        (!piece.is_empty()).then_some(piece)
    })
}

/// The length of the piece `text` starts with. Quotes are tracked inside
/// groups and words too, so a `(` or space in a literal or quoted name
/// neither opens a group nor ends a word; a doubled quote closes the
/// literal and opens the next at once.
fn piece_len(text: &str) -> usize {
    let word = is_word(text);
    let (mut depth, mut quote) = (0_usize, None);
    for (at, c) in text.char_indices() {
        let continues_word = word && (is_word_char(c) || c == '"');
        if at > 0 && depth == 0 && quote.is_none() && !continues_word {
            return at;
        }
        match c {
            _ if quote == Some(c) => quote = None,
            _ if quote.is_some() => {}
            '\'' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &'static str) -> (&'static str, Option<&'static str>) {
        let statement = Statement::parse(sql);
        (statement.operation, statement.collection)
    }

    #[test]
    fn the_table_follows_into_update_and_from() {
        assert_eq!(
            names("INSERT INTO games (id, title) VALUES ($1, $2)"),
            ("INSERT", Some("games"))
        );
        assert_eq!(
            names("UPDATE games SET updated_at = now() WHERE id = $1"),
            ("UPDATE", Some("games"))
        );
        assert_eq!(
            names("DELETE FROM participants WHERE game_id = $1"),
            ("DELETE", Some("participants"))
        );
        assert_eq!(
            names("SELECT count(*) FROM participants WHERE game_id = $1"),
            ("SELECT", Some("participants"))
        );
    }

    #[test]
    fn statements_without_a_table_have_no_collection() {
        assert_eq!(names("COMMIT"), ("COMMIT", None));
        assert_eq!(names("SELECT 1"), ("SELECT", None));
        assert_eq!(
            names("SELECT pg_advisory_xact_lock(hashtext('gamenight.game'), hashtext($1::text))"),
            ("SELECT", None)
        );
        assert_eq!(names(""), ("", None));
        assert_eq!(names("  -- nothing"), ("", None));
    }

    #[test]
    fn a_subquery_or_a_literal_never_names_the_table() {
        // The inner FROM is not the statement's: the first outermost one is.
        assert_eq!(
            names("SELECT (SELECT count(*) FROM outbox), x FROM notifications"),
            ("SELECT", Some("notifications"))
        );
        assert_eq!(
            names("SELECT (SELECT count(*) FROM outbox), (SELECT 1)"),
            ("SELECT", None)
        );
        assert_eq!(names("SELECT * FROM (SELECT 1) AS one"), ("SELECT", None));
        assert_eq!(
            names("SELECT 'a ( FROM fake' FROM real_table"),
            ("SELECT", Some("real_table"))
        );
        assert_eq!(
            names("SELECT 'it''s (' AS x FROM t WHERE y = ')'"),
            ("SELECT", Some("t"))
        );
    }

    #[test]
    fn a_with_statement_is_named_by_its_first_expression() {
        assert_eq!(
            names(
                "WITH claimed AS (UPDATE outbox SET claimed_until = now() WHERE id IN \
                 (SELECT id FROM outbox LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id) \
                 SELECT * FROM claimed ORDER BY id"
            ),
            ("UPDATE", Some("outbox"))
        );
        assert_eq!(
            names("WITH RECURSIVE t(n) AS (SELECT 1 FROM seeds) SELECT n FROM t"),
            ("SELECT", Some("seeds"))
        );
        assert_eq!(
            names("with x as materialized (delete from old_rows returning *) select * from x"),
            ("delete", Some("old_rows"))
        );
        assert_eq!(names("WITH broken"), ("WITH", None));
    }

    #[test]
    fn names_keep_their_spelling_schema_and_quotes() {
        assert_eq!(
            names("select * from public.games"),
            ("select", Some("public.games"))
        );
        assert_eq!(
            names("INSERT INTO \"Game Nights\"(id) VALUES ($1)"),
            ("INSERT", Some("\"Game Nights\""))
        );
        assert_eq!(
            names("UPDATE ONLY games SET x = 1"),
            ("UPDATE", Some("games"))
        );
        assert_eq!(
            names("\n  SELECT x\n  FROM\n  games;"),
            ("SELECT", Some("games"))
        );
    }

    #[test]
    fn unbalanced_text_is_read_without_panicking() {
        assert_eq!(names("SELECT (1 FROM games"), ("SELECT", None));
        assert_eq!(names("SELECT 1) FROM games"), ("SELECT", Some("games")));
        assert_eq!(names("SELECT 'open FROM games"), ("SELECT", None));
        assert_eq!(names("SELECT \"é\" FROM jeux"), ("SELECT", Some("jeux")));
    }
}
