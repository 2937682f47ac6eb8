//! The first pass over `tagsmith.yaml`: read it as plain YAML and check every mapping's keys
//! against the JSON Schema of the config types, so that all unknown keys are reported at once
//! (the typed pass stops at the first) and each gets the nearest known key as a suggestion.

use std::path::Path;

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Options, Parser};

use super::Problem;
use super::suggest::did_you_mean;

/// A YAML node with where it starts (1-based line and column).
struct Node {
    line: u64,
    column: u64,
    kind: Kind,
}

enum Kind {
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Scalar(String),
    /// An alias or anything else whose keys the typed pass checks.
    Other,
}

/// Every unknown key in `text` (empty when there is none), or the YAML syntax error that stops
/// reading it (a parser cannot resynchronise inside a document).
pub(super) fn unknown_keys(
    text: &str,
    path: &Path,
    schema: &Value,
) -> Result<Vec<Problem>, Problem> {
    let mut options = Options::default();
    options.set_emit_comments(false);
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut documents = Vec::new();
    loop {
        match next(&mut parser, path)? {
            None | Some((Event::StreamEnd, _, _)) => break,
            Some((Event::StreamStart | Event::DocumentStart(..) | Event::DocumentEnd, _, _)) => {}
            Some((event, line, column)) => {
                documents.push(node(&mut parser, path, event, line, column)?)
            }
        }
    }
    let mut problems = Vec::new();
    let walker = Walker { path, root: schema };
    for document in &documents {
        walker.check(document, schema, "", &mut problems);
    }
    Ok(problems)
}

type Located<'a> = (Event<'a>, u64, u64);

fn next<'a>(
    parser: &mut Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    path: &Path,
) -> Result<Option<Located<'a>>, Problem> {
    match parser.next() {
        None => Ok(None),
        Some(Ok((event, span))) => Ok(Some((
            event,
            span.start.line() as u64,
            span.start.col() as u64 + 1,
        ))),
        Some(Err(e)) => Err(Problem {
            path: path.to_path_buf(),
            line: e.marker().line() as u64,
            column: e.marker().col() as u64 + 1,
            message: format!("YAML syntax error: {}", e.info()),
        }),
    }
}

fn node<'a>(
    parser: &mut Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    path: &Path,
    event: Event<'a>,
    line: u64,
    column: u64,
) -> Result<Node, Problem> {
    let kind = match event {
        Event::Scalar(text, ..) => Kind::Scalar(text.into_owned()),
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                match next(parser, path)? {
                    None | Some((Event::SequenceEnd, _, _)) => break,
                    Some((e, l, c)) => items.push(node(parser, path, e, l, c)?),
                }
            }
            Kind::Seq(items)
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let key = match next(parser, path)? {
                    None | Some((Event::MappingEnd, _, _)) => break,
                    Some((e, l, c)) => node(parser, path, e, l, c)?,
                };
                let value = match next(parser, path)? {
                    None => break,
                    Some((e, l, c)) => node(parser, path, e, l, c)?,
                };
                entries.push((key, value));
            }
            Kind::Map(entries)
        }
        _ => Kind::Other,
    };
    Ok(Node { line, column, kind })
}

struct Walker<'a> {
    path: &'a Path,
    root: &'a Value,
}

impl Walker<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        // `$ref`s are local (`#/$defs/Name`); a bound keeps a malformed schema from looping.
        for _ in 0..16 {
            match schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
            {
                Some(pointer) => match self.root.pointer(pointer) {
                    Some(target) => schema = target,
                    None => break,
                },
                None => break,
            }
        }
        schema
    }

    /// The object schemas a mapping may be checked against: the schema itself or the object
    /// branches of its `anyOf`/`oneOf` (options and enums with data).
    fn object_branches<'s>(&'s self, schema: &'s Value) -> Vec<&'s Value> {
        let schema = self.resolve(schema);
        let branches: Vec<&Value> = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| schema.get(*k).and_then(Value::as_array))
            .flatten()
            .flat_map(|b| self.object_branches(b))
            .collect();
        if is_object(schema) {
            vec![schema]
        } else {
            branches
        }
    }

    fn check(&self, node: &Node, schema: &Value, at: &str, problems: &mut Vec<Problem>) {
        let schema = self.resolve(schema);
        match &node.kind {
            Kind::Map(entries) => self.check_map(entries, schema, at, problems),
            Kind::Seq(items) => {
                let items_schema = std::iter::once(schema)
                    .chain(
                        ["anyOf", "oneOf"]
                            .iter()
                            .filter_map(|k| schema.get(*k).and_then(Value::as_array))
                            .flatten(),
                    )
                    .map(|s| self.resolve(s))
                    .find_map(|s| s.get("items"));
                if let Some(items_schema) = items_schema {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, items_schema, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            Kind::Scalar(_) | Kind::Other => {}
        }
    }

    fn check_map(
        &self,
        entries: &[(Node, Node)],
        schema: &Value,
        at: &str,
        problems: &mut Vec<Problem>,
    ) {
        let branches = self.object_branches(schema);
        if branches.is_empty() {
            return;
        }
        let keys: Vec<&str> = entries
            .iter()
            .filter_map(|(k, _)| match &k.kind {
                Kind::Scalar(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        // The branch that knows the most of the keys (an enum's variant, usually the only one).
        let branch = branches
            .iter()
            .max_by_key(|b| keys.iter().filter(|k| property(b, k).is_some()).count())
            .copied()
            .unwrap_or(schema);
        let known: Vec<&str> = branches
            .iter()
            .filter_map(|b| b.get("properties").and_then(Value::as_object))
            .flat_map(|p| p.keys().map(String::as_str))
            .collect();
        for (key, value) in entries {
            let Kind::Scalar(name) = &key.kind else {
                continue;
            };
            // A merge key's entries are checked by the typed pass.
            if name == "<<" {
                continue;
            }
            let here = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            if let Some(sub) = property(branch, name) {
                self.check(value, sub, &here, problems);
                continue;
            }
            match branch.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let place = if at.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in {at}")
                    };
                    let hint = match did_you_mean(name, known.iter().copied()) {
                        hint if !hint.is_empty() => hint,
                        _ => format!(" (known keys: {})", known.join(", ")),
                    };
                    problems.push(Problem {
                        path: self.path.to_path_buf(),
                        line: key.line,
                        column: key.column,
                        message: format!("unknown key `{name}` {place}{hint}"),
                    });
                }
                Some(sub @ Value::Object(_)) => self.check(value, sub, &here, problems),
                _ => {}
            }
        }
    }
}

fn is_object(schema: &Value) -> bool {
    schema.get("properties").is_some()
        || match schema.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        }
}

fn property<'s>(schema: &'s Value, key: &str) -> Option<&'s Value> {
    schema.get("properties").and_then(|p| p.get(key))
}
