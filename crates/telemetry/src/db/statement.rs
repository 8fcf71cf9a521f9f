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

impl Statement {
    /// Reads the operation and table of `sql`.
    pub fn parse(sql: &'static str) -> Self {
        let mut tokens = Tokens { rest: sql };
        let Some(Token::Word(operation)) = tokens.next() else {
            return Self {
                operation: "",
                collection: None,
            };
        };
        let keyword = |word: &str, expected: &str| word.eq_ignore_ascii_case(expected);
        if keyword(operation, "WITH") {
            // `WITH [RECURSIVE] name [(columns)] AS [[NOT] MATERIALIZED] (body)`:
            // the first group after AS is the first CTE's body.
            let mut after_as = false;
            for token in tokens {
                match token {
                    Token::Word(word) if keyword(word, "AS") => after_as = true,
                    Token::Group(body) if after_as => return Self::parse(body),
                    _ => {}
                }
            }
            return Self {
                operation,
                collection: None,
            };
        }
        let collection = if keyword(operation, "INSERT") {
            table_after(tokens, "INTO")
        } else if keyword(operation, "UPDATE") {
            table(tokens)
        } else if keyword(operation, "DELETE") || keyword(operation, "SELECT") {
            table_after(tokens, "FROM")
        } else {
            None
        };
        Self {
            operation,
            collection,
        }
    }
}

/// The table after the first outermost `keyword`.
fn table_after(mut tokens: Tokens, keyword: &str) -> Option<&'static str> {
    tokens
        .find(|token| matches!(token, Token::Word(word) if word.eq_ignore_ascii_case(keyword)))?;
    table(tokens)
}

/// The table named next (past `ONLY`), if the next thing is a name.
fn table(mut tokens: Tokens) -> Option<&'static str> {
    match tokens.next()? {
        Token::Word(word) if word.eq_ignore_ascii_case("ONLY") => table(tokens),
        Token::Word(word) if !is_keyword(word) => Some(word),
        _ => None,
    }
}

/// Words that can follow FROM/INTO/UPDATE but are not a table.
fn is_keyword(word: &str) -> bool {
    ["LATERAL", "SELECT", "VALUES", "WHERE"]
        .iter()
        .any(|keyword| word.eq_ignore_ascii_case(keyword))
}

/// One outermost piece of a statement.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A keyword, name, parameter, or number (`games`, `public.games`, `$1::text`).
    Word(&'static str),
    /// What is between a pair of parentheses, nested ones included.
    Group(&'static str),
    /// Anything else: operators, commas, string literals.
    Other,
}

/// The outermost tokens of a statement.
#[derive(Debug, Clone)]
struct Tokens {
    rest: &'static str,
}

impl Iterator for Tokens {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let text = self.rest.trim_start();
        let first = text.chars().next()?;
        let (token, len) = if first == '(' {
            let close = matching_paren(text);
            (Token::Group(&text[1..close]), (close + 1).min(text.len()))
        } else if first == '\'' {
            (Token::Other, literal_end(text, '\''))
        } else if is_word_char(first) {
            let len = text
                .find(|c: char| !is_word_char(c) && c != '"')
                .unwrap_or(text.len());
            (Token::Word(&text[..len]), len)
        } else if first == '"' {
            let len = literal_end(text, '"');
            (Token::Word(&text[..len]), len)
        } else {
            (Token::Other, first.len_utf8())
        };
        self.rest = &text[len..];
        Some(token)
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | ':')
}

/// The length of the literal quoted by `quote` that `text` starts with (a
/// doubled quote inside it is part of it); the whole text if unterminated.
fn literal_end(text: &str, quote: char) -> usize {
    let mut inside = false;
    for (at, c) in text.char_indices() {
        if c == quote {
            inside = !inside;
            // A doubled quote reopens at once, so only a closing quote that
            // is not followed by another ends the literal.
            if !inside && !text[at + 1..].starts_with(quote) {
                return at + 1;
            }
        }
    }
    text.len()
}

/// The index of the `)` closing the `(` that `text` starts with, skipping
/// literals; the end of the text if it is never closed.
fn matching_paren(text: &str) -> usize {
    let mut depth = 0_usize;
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return at;
                }
            }
            '\'' | '"' => {
                at += literal_end(&text[at..], c);
                continue;
            }
            _ => {}
        }
        at += c.len_utf8();
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
