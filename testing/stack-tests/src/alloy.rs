//! A parser for the part of Alloy's configuration syntax grafana-alloy/
//! uses: blocks (`otelcol.processor.batch "default" { ... }`), attributes
//! (`key = value`), strings, numbers, lists, objects, references
//! (`otelcol.processor.batch.default.input`) and calls (`sys.env("X")`).
//!
//! It also enforces two rules of the syntax that Alloy only reports at
//! start-up: multi-line lists and objects need a trailing comma, and
//! `"${VAR}"` is a literal string (environment variables are read with
//! `sys.env`).
//!
//! Alloy runs the `.alloy` files of one directory as one configuration, so
//! what a place runs is a set of files: [`load`] reads one, and
//! [`compose_alloy`] finds the set compose mounts, from the compose files
//! themselves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value as Yaml};

pub mod schema;

/// The compose files of `docker compose up`.
pub const COMPOSE: &[&str] = &["docker-compose.yml"];

/// The compose files of the stack with tail sampling
/// (`docker compose -f docker-compose.yml -f docker-compose.sampling.yml`).
pub const COMPOSE_SAMPLING: &[&str] = &["docker-compose.yml", "docker-compose.sampling.yml"];

/// One file of a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Its path from the repository root: `grafana-alloy/config.alloy`.
    pub path: String,
    /// Its top-level blocks, in order.
    pub blocks: Vec<Block>,
}

/// Why a set of files cannot be read as a configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: String, source: ParseError },
    #[error("{path}: {source}")]
    Yaml {
        path: String,
        source: serde_yaml_ng::Error,
    },
    /// The compose files do not say what Alloy loads.
    #[error("{0}")]
    Compose(String),
}

fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> Result<String, LoadError> {
    std::fs::read_to_string(repo_path(path)).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads and parses `paths` (from the repository root): the configuration
/// Alloy runs when they are the `.alloy` files of its directory.
pub fn load(paths: &[&str]) -> Result<Vec<File>, LoadError> {
    paths
        .iter()
        .map(|path| {
            let blocks = parse(&read(path)?).map_err(|source| LoadError::Parse {
                path: (*path).to_owned(),
                source,
            })?;
            Ok(File {
                path: (*path).to_owned(),
                blocks,
            })
        })
        .collect()
}

/// The files Alloy loads when compose reads `compose_files`
/// ([`compose_alloy`], then [`load`]).
pub fn load_compose(compose_files: &[&str]) -> Result<Vec<File>, LoadError> {
    let mounted = compose_alloy(compose_files)?;
    let paths: Vec<&str> = mounted.files.iter().map(String::as_str).collect();
    load(&paths)
}

/// The top-level blocks of every file, in order.
pub fn blocks(files: &[File]) -> Vec<Block> {
    files.iter().flat_map(|file| file.blocks.clone()).collect()
}

/// What compose's `alloy` service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeAlloy {
    /// The directory its command hands `alloy run`, inside the container.
    pub directory: String,
    /// The repository files mounted into it, in mount order.
    pub files: Vec<String>,
    /// Every mount target inside `directory`, ours or not.
    pub targets: Vec<String>,
}

/// The `.alloy` files compose's `alloy` service loads when compose reads
/// `compose_files` (as `docker compose -f a -f b` does): the repository
/// files mounted into the directory its command gives `alloy run`.
pub fn compose_alloy(compose_files: &[&str]) -> Result<ComposeAlloy, LoadError> {
    let service = compose_service(compose_files, "alloy")?;
    let words: Vec<&str> = service
        .get("command")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    // `run [flags] <path>`: the one argument that is not a flag.
    let directory = words
        .iter()
        .skip_while(|word| **word != "run")
        .skip(1)
        .find(|word| !word.starts_with('-'))
        .ok_or_else(|| LoadError::Compose(format!("alloy's command {words:?} runs no path")))?
        .trim_end_matches('/')
        .to_owned();
    let mut alloy = ComposeAlloy {
        directory,
        files: Vec::new(),
        targets: Vec::new(),
    };
    for (source, target) in volumes(&service) {
        if Path::new(&target).parent() != Some(Path::new(&alloy.directory)) {
            continue;
        }
        if let Some(file) = source.strip_prefix("./")
            && target.ends_with(".alloy")
        {
            alloy.files.push(file.to_owned());
        }
        alloy.targets.push(target);
    }
    if alloy.files.is_empty() {
        return Err(LoadError::Compose(format!(
            "compose mounts no .alloy file into {}, the directory alloy runs",
            alloy.directory
        )));
    }
    Ok(alloy)
}

/// Compose's `name` service as `compose_files` define it together:
/// `extends` resolved, `volumes` merged by target and `environment` by name,
/// as compose merges them; any other key of a later definition replaces the
/// earlier one.
pub fn compose_service(compose_files: &[&str], name: &str) -> Result<Mapping, LoadError> {
    let mut merged = Mapping::new();
    for file in compose_files {
        if let Some(definition) = service_definition(file, name)? {
            merged = merge(merged, definition);
        }
    }
    if merged.is_empty() {
        return Err(LoadError::Compose(format!(
            "no service {name} in {compose_files:?}"
        )));
    }
    Ok(merged)
}

fn service_definition(file: &str, name: &str) -> Result<Option<Mapping>, LoadError> {
    let yaml_error = |source| LoadError::Yaml {
        path: file.to_owned(),
        source,
    };
    let mut document: Yaml = serde_yaml_ng::from_str(&read(file)?).map_err(yaml_error)?;
    document.apply_merge().map_err(yaml_error)?;
    let Some(service) = document.get_mut("services").and_then(|s| s.get_mut(name)) else {
        return Ok(None);
    };
    // Merge keys nested in the service (`environment: <<: [...]`) too.
    service.apply_merge().map_err(yaml_error)?;
    if let Some(environment) = service.get_mut("environment") {
        environment.apply_merge().map_err(yaml_error)?;
    }
    let Some(mut service) = service.as_mapping().cloned() else {
        return Err(LoadError::Compose(format!(
            "{file}: {name} is not a mapping"
        )));
    };
    if let Some(extends) = service.remove("extends") {
        let base_file = extends.get("file").and_then(Yaml::as_str).unwrap_or(file);
        let base_name = extends
            .get("service")
            .and_then(Yaml::as_str)
            .unwrap_or(name);
        let base = service_definition(base_file, base_name)?.ok_or_else(|| {
            LoadError::Compose(format!(
                "{file}: {name} extends {base_name} of {base_file}, which does not exist"
            ))
        })?;
        service = merge(base, service);
    }
    Ok(Some(service))
}

fn merge(mut base: Mapping, over: Mapping) -> Mapping {
    for (key, value) in over {
        match (key.as_str(), base.get_mut(&key)) {
            (Some("environment"), Some(Yaml::Mapping(environment))) => {
                if let Yaml::Mapping(over) = value {
                    environment.extend(over);
                }
            }
            (Some("volumes"), Some(Yaml::Sequence(mounts))) => {
                for mount in value.as_sequence().into_iter().flatten() {
                    let target = mount_target(mount);
                    mounts.retain(|existing| mount_target(existing) != target);
                    mounts.push(mount.clone());
                }
            }
            _ => {
                base.insert(key, value);
            }
        }
    }
    base
}

/// `source:target[:mode]` (compose's short syntax) → target.
fn mount_target(mount: &Yaml) -> Option<&str> {
    mount.as_str()?.split(':').nth(1)
}

/// A service's bind mounts as (source, target).
fn volumes(service: &Mapping) -> Vec<(String, String)> {
    service
        .get("volumes")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .filter_map(|mount| {
            let mut parts = mount.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// A component or configuration block, e.g. `prometheus.scrape "redis"`, or
/// a block nested in one (`client { ... }`).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Dotted block name: `prometheus.scrape`.
    pub name: String,
    /// The label, when there is one: `redis`.
    pub label: Option<String>,
    /// Line of the block's name.
    pub line: usize,
    /// `name = value` directly in this block, in order.
    pub attributes: Vec<Attribute>,
    /// Blocks nested directly in this one, in order.
    pub blocks: Vec<Block>,
}

/// `name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Value,
    pub line: usize,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    /// A number, as written.
    Number(String),
    Bool(bool),
    Null,
    /// A dotted identifier: `prometheus.remote_write.default.receiver`.
    Reference(String),
    /// `function(args...)`: `sys.env("X")`, `coalesce(a, b)`.
    Call {
        function: String,
        args: Vec<Value>,
    },
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
    /// An operator expression (`a + b`, `!x`); its operands are kept so
    /// their references and variables are still seen.
    Operation(Vec<Value>),
}

impl Value {
    /// The string this value has when Alloy reads environment variables
    /// through `env`: plain strings, `sys.env("X")` and `coalesce(...)`
    /// (the first non-empty argument, else the last). `None` for anything
    /// else.
    pub fn evaluate(&self, env: &dyn Fn(&str) -> String) -> Option<String> {
        match self {
            Value::String(value) => Some(value.clone()),
            Value::Call { function, args } => match (function.as_str(), args.as_slice()) {
                ("sys.env" | "env", [Value::String(name)]) => Some(env(name)),
                ("coalesce", [.., last]) => {
                    let values: Vec<Option<String>> =
                        args.iter().map(|arg| arg.evaluate(env)).collect();
                    values
                        .iter()
                        .flatten()
                        .find(|value| !value.is_empty())
                        .cloned()
                        .or_else(|| last.evaluate(env))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The number this value has when Alloy reads environment variables
    /// through `env`: a number as written, or `encoding.from_json(...)` of a
    /// string (Alloy has no string-to-number function, so a number from the
    /// environment is read as JSON) that holds one. `None` for anything
    /// else, as for a value Alloy would refuse to load.
    pub fn number(&self, env: &dyn Fn(&str) -> String) -> Option<f64> {
        match self {
            Value::Number(number) => number.replace('_', "").parse().ok(),
            Value::Call { function, args } if function == "encoding.from_json" => {
                match args.as_slice() {
                    [arg] => arg.evaluate(env)?.trim().parse().ok(),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn walk<'v>(&'v self, visit: &mut dyn FnMut(&'v Value)) {
        visit(self);
        match self {
            Value::Call { args: values, .. } | Value::List(values) | Value::Operation(values) => {
                values.iter().for_each(|value| value.walk(visit));
            }
            Value::Object(fields) => fields.iter().for_each(|(_, value)| value.walk(visit)),
            _ => {}
        }
    }
}

impl Block {
    fn empty(name: String, label: Option<String>, line: usize) -> Self {
        Self {
            name,
            label,
            line,
            attributes: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// `name.label`, the prefix other components use to refer to this one.
    pub fn id(&self) -> String {
        match &self.label {
            Some(label) => format!("{}.{label}", self.name),
            None => self.name.clone(),
        }
    }

    /// The value of attribute `name` directly in this block.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
            .map(|attribute| &attribute.value)
    }

    /// The first block nested directly in this one called `name`.
    pub fn block(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|block| block.name == name)
    }

    /// Every value in this block and the blocks nested in it, operands and
    /// list elements included.
    fn values(&self) -> Vec<&Value> {
        let mut values = Vec::new();
        self.visit_values(&mut |value| values.push(value));
        values
    }

    fn visit_values<'b>(&'b self, visit: &mut dyn FnMut(&'b Value)) {
        for attribute in &self.attributes {
            attribute.value.walk(visit);
        }
        for block in &self.blocks {
            block.visit_values(visit);
        }
    }

    /// Dotted identifiers this block refers to (not calls), nested blocks
    /// included; the standard library's constants (`constants.hostname`)
    /// are values, not components, and are left out.
    pub fn references(&self) -> BTreeSet<String> {
        self.values()
            .into_iter()
            .filter_map(|value| match value {
                Value::Reference(reference) if !reference.starts_with("constants.") => {
                    Some(reference.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Names passed to `sys.env(...)` / `env(...)`, nested blocks included.
    pub fn env_vars(&self) -> BTreeSet<String> {
        self.values()
            .into_iter()
            .filter_map(|value| match value {
                Value::Call { function, args }
                    if matches!(function.as_str(), "sys.env" | "env") =>
                {
                    match args.as_slice() {
                        [Value::String(name)] => Some(name.clone()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    /// Every plain-string attribute `name`, in this block and nested ones.
    pub fn strings(&self, name: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .attributes
            .iter()
            .filter(|attribute| attribute.name == name)
            .filter_map(|attribute| match &attribute.value {
                Value::String(value) => Some(value.clone()),
                _ => None,
            })
            .collect();
        for block in &self.blocks {
            found.extend(block.strings(name));
        }
        found
    }
}

/// Why the configuration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
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
    Number(String),
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
                let mut number = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '.' || next == '_' {
                        number.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push((Token::Number(number), line));
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
    /// Labelled blocks are only allowed at the top level.
    fn body(&mut self, into: &mut Block, top_level: bool) -> Result<(), ParseError> {
        loop {
            self.skip_newlines();
            let line = self.line();
            match self.next() {
                None if top_level => return Ok(()),
                None => return Err(error(line, "missing } at the end of the file")),
                Some(Token::Punct('}')) if !top_level => return Ok(()),
                Some(Token::Ident(name)) => match self.peek().cloned() {
                    Some(Token::Punct('=')) => {
                        self.next();
                        let value = self.expression()?;
                        match self.peek() {
                            None | Some(Token::Newline) | Some(Token::Punct('}')) => {}
                            Some(other) => {
                                return Err(error(
                                    self.line(),
                                    format!("unexpected {other:?} after the value of {name}"),
                                ));
                            }
                        }
                        into.attributes.push(Attribute { name, value, line });
                    }
                    Some(Token::Str(label)) if !top_level => {
                        return Err(error(
                            line,
                            format!(
                                "{name} {label:?}: a labelled block can only be at the top level"
                            ),
                        ));
                    }
                    Some(Token::Str(_) | Token::Punct('{')) => {
                        let label = match self.next() {
                            Some(Token::Str(label)) => {
                                self.expect('{')?;
                                Some(label)
                            }
                            _ => None,
                        };
                        let mut block = Block::empty(name, label, line);
                        self.body(&mut block, false)?;
                        into.blocks.push(block);
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

    /// One value, operators included.
    fn expression(&mut self) -> Result<Value, ParseError> {
        let line = self.line();
        let value = match self.next() {
            Some(Token::Str(value)) => Value::String(value),
            Some(Token::Number(number)) => Value::Number(number),
            Some(Token::Punct('-' | '!')) => Value::Operation(vec![self.expression()?]),
            Some(Token::Ident(function)) if self.peek() == Some(&Token::Punct('(')) => {
                self.next();
                let args = self.sequence(')')?;
                if matches!(function.as_str(), "sys.env" | "env")
                    && !matches!(args.as_slice(), [Value::String(_)])
                {
                    return Err(error(line, format!("{function}() takes one string")));
                }
                Value::Call { function, args }
            }
            Some(Token::Ident(ident)) => match ident.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::Reference(ident),
            },
            Some(Token::Punct('[')) => Value::List(self.sequence(']')?),
            Some(Token::Punct('{')) => Value::Object(self.object()?),
            other => return Err(error(line, format!("expected a value, found {other:?}"))),
        };
        // Binary operators (`a + b`, `x || y`): the rest of the expression.
        if let Some(Token::Punct('+' | '-' | '|' | '&' | '<' | '>')) = self.peek() {
            while let Some(Token::Punct('+' | '-' | '|' | '&' | '<' | '>' | '=')) = self.peek() {
                self.next();
            }
            return Ok(Value::Operation(vec![value, self.expression()?]));
        }
        Ok(value)
    }

    /// Comma-separated values up to `close`; a multi-line one must end with
    /// a comma.
    fn sequence(&mut self, close: char) -> Result<Vec<Value>, ParseError> {
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
            values.push(self.expression()?);
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
    fn object(&mut self) -> Result<Vec<(String, Value)>, ParseError> {
        let mut fields = Vec::new();
        loop {
            self.skip_newlines();
            let line = self.line();
            let key = match self.next() {
                Some(Token::Punct('}')) => return Ok(fields),
                Some(Token::Ident(key) | Token::Str(key)) => key,
                other => {
                    return Err(error(
                        line,
                        format!("expected an object key, found {other:?}"),
                    ));
                }
            };
            match self.next() {
                Some(Token::Punct('=' | ':')) => {}
                other => {
                    return Err(error(
                        line,
                        format!("expected = in an object, found {other:?}"),
                    ));
                }
            }
            fields.push((key, self.expression()?));
            let line = self.line();
            match self.next() {
                Some(Token::Punct(',')) => {}
                Some(Token::Punct('}')) => return Ok(fields),
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
    parser.body(&mut root, true)?;
    if let Some(attribute) = root.attributes.first() {
        return Err(error(
            attribute.line,
            format!("{} = ... outside any block", attribute.name),
        ));
    }
    Ok(root.blocks)
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
                headers  = {"x-host" = constants.hostname}
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
        assert!(blocks[0].env_vars().contains("ENDPOINT"));
        assert!(
            blocks[0]
                .references()
                .contains("otelcol.auth.basic.cloud.handler")
        );
        // A constant of the standard library is a value, not a component.
        assert_eq!(blocks[0].references().len(), 1);
        let client = blocks[0].block("client").unwrap();
        assert_eq!(client.attributes.len(), 3);
        assert_eq!(client.line, 4);
        assert!(
            blocks[1]
                .references()
                .contains("prometheus.remote_write.default.receiver")
        );
        assert!(blocks[1].env_vars().is_empty());
        assert_eq!(
            blocks[1].attribute("targets"),
            Some(&Value::List(vec![Value::Object(vec![
                ("__address__".into(), Value::String("redis:6379".into())),
                ("job".into(), Value::String("redis".into())),
            ])]))
        );
    }

    #[test]
    fn values_are_evaluated_as_alloy_reads_the_environment() {
        let blocks = parse(
            r#"
            otelcol.auth.basic "cloud" {
              username = coalesce(sys.env("SET"), "fallback")
              password = coalesce(sys.env("EMPTY"), "fallback")
              other    = coalesce(sys.env("EMPTY"), sys.env("EMPTY"))
              plain    = "text"
              number   = 80
            }
            "#,
        )
        .unwrap();
        let env = |name: &str| {
            if name == "SET" {
                "value".into()
            } else {
                String::new()
            }
        };
        let value = |name| blocks[0].attribute(name).unwrap().evaluate(&env);
        assert_eq!(value("username").as_deref(), Some("value"));
        assert_eq!(value("password").as_deref(), Some("fallback"));
        assert_eq!(value("other").as_deref(), Some(""));
        assert_eq!(value("plain").as_deref(), Some("text"));
        assert_eq!(value("number"), None);
        assert_eq!(
            blocks[0].env_vars(),
            BTreeSet::from(["SET".into(), "EMPTY".into()])
        );
    }

    #[test]
    fn a_labelled_block_inside_a_component_is_refused() {
        let err = parse("a \"b\" {\n  c \"d\" {\n  }\n}\n").unwrap_err();
        assert_eq!(err.line, 2);
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
