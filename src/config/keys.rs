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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A line and column.
    type At = (u64, u64);

    /// Every mapping of `node` with at least one entry: where the mapping and its first key are.
    fn mappings(node: &Node, out: &mut Vec<(At, At)>) {
        match &node.kind {
            Kind::Map(entries) => {
                if let Some((key, _)) = entries.first() {
                    out.push(((node.line, node.column), (key.line, key.column)));
                }
                for (key, value) in entries {
                    mappings(key, out);
                    mappings(value, out);
                }
            }
            Kind::Seq(items) => items.iter().for_each(|i| mappings(i, out)),
            Kind::Scalar(_) | Kind::Other => {}
        }
    }

    fn offset(text: &str, line: u64, column: u64) -> usize {
        let start: usize = text
            .split_inclusive('\n')
            .take(line as usize - 1)
            .map(str::len)
            .sum();
        start
            + text[start..]
                .char_indices()
                .nth(column as usize - 1)
                .map_or(0, |(i, _)| i)
    }

    fn typed(text: &str) -> Result<crate::config::raw::RawConfig, serde_saphyr::Error> {
        let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
        serde_saphyr::from_str_with_options(text, options)
    }

    // `Config::parse` reads a file for unknown keys only when the typed pass refuses it. That
    // is right only if the typed pass refuses an unknown key in every mapping where this pass
    // reports one: each mapping of each example config gets one, and both passes must see it.
    #[test]
    fn the_typed_pass_refuses_every_unknown_key_this_pass_reports() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let schema = crate::config::schema::json_schema();
        let mut guarded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            typed(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut parser = Parser::new_from_str(&text);
            let mut found = Vec::new();
            while let Some((event, line, column)) = next(&mut parser, &path).unwrap() {
                if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                    mappings(
                        &node(&mut parser, &path, event, line, column).unwrap(),
                        &mut found,
                    );
                }
            }
            for ((line, column), (key_line, key_column)) in found {
                let at = offset(&text, line, column);
                let mutated = if text[at..].starts_with('{') {
                    format!("{}zzUnknownKey: 1, {}", &text[..=at], &text[at + 1..])
                } else {
                    let key = offset(&text, key_line, key_column);
                    let indent = " ".repeat(key_column as usize - 1);
                    format!("{}zzUnknownKey: 1\n{indent}{}", &text[..key], &text[key..])
                };
                let reported = unknown_keys(&mutated, &path, &schema).unwrap();
                if reported.iter().any(|p| p.message.contains("zzUnknownKey")) {
                    guarded += 1;
                    assert!(
                        typed(&mutated).is_err(),
                        "{}:{line}:{column}: the typed pass reads an unknown key:\n{mutated}",
                        path.display()
                    );
                }
            }
        }
        assert!(guarded > 50, "only {guarded} mappings checked");
    }
}
