//! A parser for the part of Alloy's configuration syntax config.alloy uses:
//! blocks (`otelcol.processor.batch "default" { ... }`), attributes
//! (`key = value`), strings, numbers, lists, objects, references
//! (`otelcol.processor.batch.default.input`) and calls (`sys.env("X")`).
//!
//! It also enforces two rules of the syntax that Alloy only reports at
//! start-up: multi-line lists and objects need a trailing comma, and
//! `"${VAR}"` is a literal string (environment variables are read with
//! `sys.env`).

use std::collections::BTreeSet;

/// A component or configuration block, e.g. `prometheus.scrape "redis"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Dotted block name: `prometheus.scrape`.
    pub name: String,
    /// The label, when there is one: `redis`.
    pub label: Option<String>,
    /// Line of the block's name.
    pub line: usize,
    /// Dotted identifiers the block's attributes refer to (not calls), in
    /// this block and its nested blocks.
    pub references: BTreeSet<String>,
    /// Names passed to `sys.env(...)` / `env(...)` in this block.
    pub env_vars: BTreeSet<String>,
    /// Attributes `name = ...` directly in this block or nested ones, with
    /// their string value when it is a plain string.
    pub strings: Vec<(String, String)>,
}

impl Block {
    fn empty(name: String, label: Option<String>, line: usize) -> Self {
        Self {
            name,
            label,
            line,
            references: BTreeSet::new(),
            env_vars: BTreeSet::new(),
            strings: Vec::new(),
        }
    }

    /// `name.label`, the prefix other components use to refer to this one.
    pub fn id(&self) -> String {
        match &self.label {
            Some(label) => format!("{}.{label}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Why the configuration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config.alloy line {line}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number,
    Punct(char),
    Newline,
}

fn error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn tokenize(source: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = source.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                tokens.push((Token::Newline, line));
                line += 1;
            }
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        tokens.push((Token::Newline, line));
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut previous = '\0';
                loop {
                    match chars.next() {
                        None => return Err(error(start, "unterminated /* comment")),
                        Some('/') if previous == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            previous = c;
                        }
                    }
                }
            }
            '"' => {
                let start = line;
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err(error(start, "unterminated string")),
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(other) => value.push(other),
                            None => return Err(error(start, "unterminated string")),
                        },
                        Some('"') => break,
                        Some(other) => value.push(other),
                    }
                }
                if value.contains("${") {
                    return Err(error(
                        start,
                        format!(
                            "{value:?} is a literal in Alloy; read variables with sys.env(\"NAME\")"
                        ),
                    ));
                }
                tokens.push((Token::Str(value), start));
            }
            c if c.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                {
                    chars.next();
                }
                tokens.push((Token::Number, line));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut ident = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_alphanumeric() || next == '_' || next == '.' {
                        ident.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push((Token::Ident(ident), line));
            }
            '{' | '}' | '[' | ']' | '(' | ')' | '=' | ',' | ':' | '-' | '+' | '!' | '<' | '>'
            | '|' | '&' => {
                tokens.push((Token::Punct(c), line));
            }
            other => return Err(error(line, format!("unexpected character {other:?}"))),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(token, _)| token)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.position)
            .or_else(|| self.tokens.last())
            .map_or(1, |(_, line)| *line)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self
            .tokens
            .get(self.position)
            .map(|(token, _)| token.clone());
        self.position += 1;
        token
    }

    fn skip_newlines(&mut self) {
        while self.peek() == Some(&Token::Newline) {
            self.position += 1;
        }
    }

    /// A block body up to (and including) `}`, or the whole file.
    fn body(
        &mut self,
        into: &mut Block,
        top: Option<&mut Vec<Block>>,
        nested: bool,
    ) -> Result<(), ParseError> {
        let mut top = top;
        loop {
            self.skip_newlines();
            let line = self.line();
            match self.next() {
                None if !nested => return Ok(()),
                None => return Err(error(line, "missing } at the end of the file")),
                Some(Token::Punct('}')) if nested => return Ok(()),
                Some(Token::Ident(name)) => match self.peek().cloned() {
                    Some(Token::Punct('=')) => {
                        self.next();
                        let value = self.expression(into)?;
                        match self.peek() {
                            None | Some(Token::Newline) | Some(Token::Punct('}')) => {}
                            Some(other) => {
                                return Err(error(
                                    self.line(),
                                    format!("unexpected {other:?} after the value of {name}"),
                                ));
                            }
                        }
                        if let Some(value) = value {
                            into.strings.push((name, value));
                        }
                    }
                    Some(Token::Str(label)) => {
                        self.next();
                        self.expect('{')?;
                        let mut block = Block::empty(name, Some(label), line);
                        self.body(&mut block, None, true)?;
                        match top.as_deref_mut() {
                            Some(blocks) => blocks.push(block),
                            None => {
                                return Err(error(
                                    line,
                                    "a labelled block can only be at the top level",
                                ));
                            }
                        }
                    }
                    Some(Token::Punct('{')) => {
                        self.next();
                        let mut block = Block::empty(name, None, line);
                        self.body(&mut block, None, true)?;
                        match top.as_deref_mut() {
                            Some(blocks) => blocks.push(block),
                            // A nested block (client { ... }) belongs to its
                            // component.
                            None => {
                                into.references.extend(block.references);
                                into.env_vars.extend(block.env_vars);
                                into.strings.extend(block.strings);
                            }
                        }
                    }
                    other => {
                        return Err(error(
                            line,
                            format!("expected = or a block after {name}, found {other:?}"),
                        ));
                    }
                },
                Some(other) => return Err(error(line, format!("unexpected {other:?}"))),
            }
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        let line = self.line();
        match self.next() {
            Some(Token::Punct(found)) if found == c => Ok(()),
            other => Err(error(line, format!("expected {c:?}, found {other:?}"))),
        }
    }

    /// One value; returns it when it is a plain string.
    fn expression(&mut self, into: &mut Block) -> Result<Option<String>, ParseError> {
        let line = self.line();
        let value = match self.next() {
            Some(Token::Str(value)) => Some(value),
            Some(Token::Number) => None,
            Some(Token::Punct('-' | '!')) => {
                self.expression(into)?;
                None
            }
            Some(Token::Ident(ident)) if self.peek() == Some(&Token::Punct('(')) => {
                self.next();
                let args = self.sequence(into, ')')?;
                if matches!(ident.as_str(), "sys.env" | "env") {
                    match args.as_slice() {
                        [Some(var)] => {
                            into.env_vars.insert(var.clone());
                        }
                        _ => return Err(error(line, format!("{ident}() takes one string"))),
                    }
                }
                None
            }
            Some(Token::Ident(ident)) => {
                if !matches!(ident.as_str(), "true" | "false" | "null") {
                    into.references.insert(ident);
                }
                None
            }
            Some(Token::Punct('[')) => {
                self.sequence(into, ']')?;
                None
            }
            Some(Token::Punct('{')) => {
                self.object(into)?;
                None
            }
            other => return Err(error(line, format!("expected a value, found {other:?}"))),
        };
        // Binary operators (`a + b`, `x || y`): the rest of the expression.
        if let Some(Token::Punct('+' | '-' | '|' | '&' | '<' | '>')) = self.peek() {
            while let Some(Token::Punct('+' | '-' | '|' | '&' | '<' | '>' | '=')) = self.peek() {
                self.next();
            }
            self.expression(into)?;
            return Ok(None);
        }
        Ok(value)
    }

    /// Comma-separated values up to `close`; a multi-line one must end with
    /// a comma.
    fn sequence(
        &mut self,
        into: &mut Block,
        close: char,
    ) -> Result<Vec<Option<String>>, ParseError> {
        let mut values = Vec::new();
        let mut multiline = false;
        loop {
            if self.peek() == Some(&Token::Newline) {
                multiline = true;
                self.skip_newlines();
            }
            if self.peek() == Some(&Token::Punct(close)) {
                self.next();
                return Ok(values);
            }
            values.push(self.expression(into)?);
            let line = self.line();
            match self.next() {
                Some(Token::Punct(',')) => {}
                Some(Token::Punct(c)) if c == close => return Ok(values),
                Some(Token::Newline) if multiline || close != ')' => {
                    return Err(error(
                        line,
                        "a multi-line list needs a comma after its last element",
                    ));
                }
                other => {
                    return Err(error(
                        line,
                        format!("expected , or {close:?}, found {other:?}"),
                    ));
                }
            }
        }
    }

    /// `{ key = value, "key" = value, }` (the opening brace consumed).
    fn object(&mut self, into: &mut Block) -> Result<(), ParseError> {
        loop {
            self.skip_newlines();
            let line = self.line();
            match self.next() {
                Some(Token::Punct('}')) => return Ok(()),
                Some(Token::Ident(_) | Token::Str(_)) => {}
                other => {
                    return Err(error(
                        line,
                        format!("expected an object key, found {other:?}"),
                    ));
                }
            }
            match self.next() {
                Some(Token::Punct('=' | ':')) => {}
                other => {
                    return Err(error(
                        line,
                        format!("expected = in an object, found {other:?}"),
                    ));
                }
            }
            self.expression(into)?;
            let line = self.line();
            match self.next() {
                Some(Token::Punct(',')) => {}
                Some(Token::Punct('}')) => return Ok(()),
                Some(Token::Newline) => {
                    return Err(error(
                        line,
                        "a multi-line object needs a comma after its last field",
                    ));
                }
                other => return Err(error(line, format!("expected , or }}, found {other:?}"))),
            }
        }
    }
}

/// Parses a configuration into its top-level blocks.
pub fn parse(source: &str) -> Result<Vec<Block>, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        position: 0,
    };
    let mut root = Block::empty(String::new(), None, 0);
    let mut blocks = Vec::new();
    parser.body(&mut root, Some(&mut blocks), false)?;
    if let Some(reference) = root.references.iter().next() {
        return Err(error(
            1,
            format!("top-level attribute referring to {reference}"),
        ));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_references_and_env_calls_are_found() {
        let blocks = parse(
            r#"
            // a comment
            otelcol.exporter.otlphttp "default" {
              client {
                endpoint = sys.env("ENDPOINT") /* inline */
                auth     = otelcol.auth.basic.cloud.handler
              }
            }
            prometheus.scrape "redis" {
              targets    = [{"__address__" = "redis:6379", "job" = "redis"}]
              forward_to = [
                prometheus.remote_write.default.receiver,
              ]
            }
            "#,
        )
        .unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].id(), "otelcol.exporter.otlphttp.default");
        assert!(blocks[0].env_vars.contains("ENDPOINT"));
        assert!(
            blocks[0]
                .references
                .contains("otelcol.auth.basic.cloud.handler")
        );
        assert!(
            blocks[1]
                .references
                .contains("prometheus.remote_write.default.receiver")
        );
        assert!(blocks[1].env_vars.is_empty());
    }

    #[test]
    fn a_multi_line_list_without_a_trailing_comma_is_refused() {
        let err = parse("a \"b\" {\n  forward_to = [\n    x.y.z.receiver\n  ]\n}\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("comma"), "{err}");
    }

    #[test]
    fn a_multi_line_object_without_a_trailing_comma_is_refused() {
        let err = parse("a \"b\" {\n  labels = {\n    x = \"1\"\n  }\n}\n").unwrap_err();
        assert!(err.message.contains("comma"), "{err}");
    }

    #[test]
    fn shell_style_variables_are_refused() {
        let err = parse("a \"b\" {\n  url = \"${URL}\"\n}\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("sys.env"), "{err}");
    }

    #[test]
    fn unbalanced_braces_are_refused() {
        assert!(parse("a \"b\" {\n  c {\n}\n").is_err());
        assert!(parse("a \"b\" {\n}\n}\n").is_err());
    }
}
