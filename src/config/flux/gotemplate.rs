//! Go text/template, the part Flux `messageTemplate`s use (pure): text, `{{- -}}` trimming,
//! comments, pipelines over fields, variables and parenthesised pipelines, `if`/`else if`/
//! `else`, `range` (maps in sorted key order, as text/template does), `with`, and the functions
//! Flux's documentation and controller tests call. Anything else is refused when the template
//! is parsed, naming the construct, so a template never renders differently from Flux.

use std::cmp::Ordering;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("line {line}: {construct}: {problem}")]
    Parse {
        line: usize,
        construct: String,
        problem: String,
    },
    #[error("line {line}: {construct}: {problem}")]
    Exec {
        line: usize,
        construct: String,
        problem: String,
    },
}

/// A value as the template sees it: the Go types Flux's data is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    /// Entries sorted by key in Go's order; `zero` is what `index` gives for a missing key.
    Map {
        entries: Vec<(Value, Value)>,
        zero: Box<Value>,
    },
    Struct(Struct),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// `String()` when the Go type has one (fmt prints that).
    pub display: Option<String>,
    /// In declaration order: what fmt prints and how Go orders map keys. `true` = embedded
    /// (its fields are promoted).
    pub fields: Vec<(&'static str, bool, Value)>,
    /// Value-receiver methods without arguments, evaluated in advance.
    pub methods: Vec<(&'static str, Value)>,
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    /// A map sorted as text/template ranges over it (internal/fmtsort).
    pub fn map(mut entries: Vec<(Value, Value)>, zero: Value) -> Self {
        entries.sort_by(|a, b| go_cmp(&a.0, &b.0));
        Self::Map {
            entries,
            zero: Box::new(zero),
        }
    }

    fn truth(&self) -> bool {
        match self {
            Self::Nil => false,
            Self::Bool(b) => *b,
            Self::Int(i) => *i != 0,
            Self::Str(s) => !s.is_empty(),
            Self::List(l) => !l.is_empty(),
            Self::Map { entries, .. } => !entries.is_empty(),
            Self::Struct(_) => true,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Nil => "nil",
            Self::Bool(_) => "bool",
            Self::Int(_) => "int",
            Self::Str(_) => "string",
            Self::List(_) => "slice",
            Self::Map { .. } => "map",
            Self::Struct(_) => "struct",
        }
    }

    fn field(&self, name: &str) -> Result<Value, String> {
        match self {
            Self::Struct(s) => s
                .lookup(name)
                .ok_or_else(|| format!("can't evaluate field {name}")),
            Self::Map { entries, .. } => {
                if entries.iter().any(|(k, _)| !matches!(k, Value::Str(_))) {
                    return Err(format!(
                        "can't evaluate field {name} of a map with non-string keys"
                    ));
                }
                // A missing key is an invalid value, which prints as "<no value>".
                Ok(entries
                    .iter()
                    .find(|(k, _)| matches!(k, Value::Str(s) if s == name))
                    .map_or(Value::Nil, |(_, v)| v.clone()))
            }
            Self::Nil => Err(format!("nil pointer evaluating .{name}")),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }
}

impl Struct {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some((_, _, v)) = self.fields.iter().find(|(n, _, _)| *n == name) {
            return Some(v.clone());
        }
        if let Some((_, v)) = self.methods.iter().find(|(n, _)| *n == name) {
            return Some(v.clone());
        }
        self.fields.iter().find_map(|(_, embedded, v)| match v {
            Value::Struct(s) if *embedded => s.lookup(name),
            _ => None,
        })
    }
}

/// Go's map key order (internal/fmtsort): numbers and strings by value, structs field by field.
fn go_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Struct(x), Value::Struct(y)) => x
            .fields
            .iter()
            .zip(&y.fields)
            .map(|((_, _, p), (_, _, q))| go_cmp(p, q))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    }
}

/// fmt's `%v`.
fn format_v(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Str(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_v(item, out);
            }
            out.push(']');
        }
        Value::Map { entries, .. } => {
            out.push_str("map[");
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_v(k, out);
                out.push(':');
                format_v(item, out);
            }
            out.push(']');
        }
        Value::Struct(s) => match &s.display {
            Some(d) => out.push_str(d),
            None => {
                out.push('{');
                for (i, (_, _, f)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    format_v(f, out);
                }
                out.push('}');
            }
        },
    }
}

fn to_v(v: &Value) -> String {
    let mut s = String::new();
    format_v(v, &mut s);
    s
}

/// How `{{ pipeline }}` prints its value (text/template printValue).
fn print_value(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        other => to_v(other),
    }
}

// ---- parse ----

#[derive(Debug, Clone)]
enum Arg {
    Func(String),
    /// `.A.B`; empty is `.`.
    Dot(Vec<String>),
    /// `$name.A.B`; the name is "" for `$`.
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Bool(bool),
    Nil,
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Action),
    If(Action, Vec<Node>, Vec<Node>),
    Range(Action, Vec<Node>, Vec<Node>),
    With(Action, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Action {
    line: usize,
    raw: String,
    pipe: Pipe,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct GoTemplate {
    nodes: Vec<Node>,
}

/// The functions tagsmith evaluates as Go and Sprig do; any other is refused.
const FUNCS: [&str; 26] = [
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "lower",
    "upper",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "toString",
    "sha256sum",
    "trunc",
];

enum Item {
    Text(String),
    Action {
        line: usize,
        raw: String,
        inner: String,
    },
}

fn parse_error(line: usize, raw: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        line,
        construct: raw.to_string(),
        problem: problem.into(),
    }
}

/// Splits the source into text and actions, applying `{{-` / `-}}` and dropping comments.
fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut consumed = 0usize;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let line = 1 + src[..consumed + open].matches('\n').count();
        let body = &rest[open + 2..];
        let close = find_close(body).ok_or_else(|| {
            parse_error(
                line,
                &rest[open..].chars().take(40).collect::<String>(),
                "unclosed action",
            )
        })?;
        let raw = format!("{{{{{}}}}}", &body[..close]);
        let mut inner = &body[..close];
        if inner.starts_with('-') && inner[1..].starts_with([' ', '\t', '\r', '\n']) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            inner = &inner[1..];
        }
        trim_next = false;
        if inner.ends_with('-') && inner[..inner.len() - 1].ends_with([' ', '\t', '\r', '\n']) {
            trim_next = true;
            inner = &inner[..inner.len() - 1];
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let inner = inner.trim();
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err(parse_error(line, &raw, "unclosed comment"));
            }
        } else {
            items.push(Item::Action {
                line,
                raw,
                inner: inner.to_string(),
            });
        }
        let advance = open + 2 + close + 2;
        consumed += advance;
        rest = &rest[advance..];
    }
    let text = if trim_next {
        rest.trim_start_matches([' ', '\t', '\r', '\n'])
    } else {
        rest
    };
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
    Ok(items)
}

/// The `}}` closing an action, skipping quoted strings and comments.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let trimmed = body.trim_start_matches('-').trim_start();
    if trimmed.starts_with("/*") {
        let start = body.len() - trimmed.len();
        let end = start + trimmed.find("*/")? + 2;
        return body[end..].find("}}").map(|c| end + c);
    }
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Ident(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    /// A `.Field` chain right after `)`.
    Chain(Vec<String>),
    LParen,
    RParen,
    Bar,
    Declare,
    Assign,
    Comma,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let chain = |i: &mut usize| {
        let mut names = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            let start = *i + 1;
            let mut j = start;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            if j == start {
                break;
            }
            names.push(chars[start..j].iter().collect::<String>());
            *i = j;
        }
        names
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
                let names = chain(&mut i);
                if !names.is_empty() {
                    out.push(Tok::Chain(names));
                }
            }
            '|' => {
                out.push(Tok::Bar);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unterminated string".into());
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().ok_or("unterminated string")?;
                            i += 1;
                            text.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                other => {
                                    return Err(format!(
                                        "the string escape \\{other} is not supported"
                                    ));
                                }
                            });
                        }
                        c => text.push(c),
                    }
                }
                out.push(Tok::Str(text));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or("unterminated raw string")?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            '.' => {
                let names = chain(&mut i);
                if names.is_empty() {
                    i += 1;
                }
                out.push(Tok::Field(names));
            }
            '$' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                i = j;
                let names = chain(&mut i);
                out.push(Tok::Var(name, names));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<i64>()
                    .map_err(|_| format!("the number {text} is not supported (integers only)"))?;
                out.push(Tok::Int(n));
            }
            c if is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(out)
}

struct PipeParser<'a> {
    toks: &'a [Tok],
    at: usize,
    scope: &'a mut Vec<String>,
}

impl PipeParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn pipe(&mut self, allow_decl: bool, range: bool) -> Result<Pipe, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=`, `$x =`, or (range) `$k, $v :=`.
        let mut look = self.at;
        let mut names = Vec::new();
        while let Some(Tok::Var(n, chain)) = self.toks.get(look)
            && chain.is_empty()
        {
            names.push(n.clone());
            look += 1;
            if range && names.len() == 1 && self.toks.get(look) == Some(&Tok::Comma) {
                look += 1;
                continue;
            }
            break;
        }
        match self.toks.get(look) {
            Some(Tok::Declare) if !names.is_empty() => {
                if !allow_decl {
                    return Err("a declaration is not allowed here".into());
                }
                decl = names;
                self.at = look + 1;
            }
            Some(Tok::Assign) if names.len() == 1 => {
                if !self.scope.contains(&names[0]) {
                    return Err(format!("undefined variable ${}", names[0]));
                }
                decl = names;
                assign = true;
                self.at = look + 1;
            }
            _ => {}
        }
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.cmd()?);
            match self.peek() {
                Some(Tok::Bar) => self.at += 1,
                _ => break,
            }
        }
        if !assign {
            for d in &decl {
                self.scope.push(d.clone());
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn cmd(&mut self) -> Result<Cmd, String> {
        let mut args = Vec::new();
        while let Some(t) = self.peek().cloned() {
            let arg = match t {
                Tok::Bar | Tok::RParen => break,
                Tok::Str(s) => Arg::Str(s),
                Tok::Int(n) => Arg::Int(n),
                Tok::Field(f) => Arg::Dot(f),
                Tok::Var(n, f) => {
                    if !n.is_empty() && !self.scope.contains(&n) {
                        return Err(format!("undefined variable ${n}"));
                    }
                    Arg::Var(n, f)
                }
                Tok::Ident(i) => match i.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    f if FUNCS.contains(&f) => Arg::Func(i),
                    other => {
                        return Err(format!(
                            "the function {other:?} is not supported (tagsmith evaluates {})",
                            FUNCS.join(", ")
                        ));
                    }
                },
                Tok::LParen => {
                    self.at += 1;
                    let inner = self.pipe(false, false)?;
                    if self.peek() != Some(&Tok::RParen) {
                        return Err("unclosed '('".into());
                    }
                    let chain = match self.toks.get(self.at + 1) {
                        Some(Tok::Chain(c)) => {
                            self.at += 1;
                            c.clone()
                        }
                        _ => Vec::new(),
                    };
                    Arg::Sub(Box::new(inner), chain)
                }
                other => return Err(format!("unexpected {other:?}")),
            };
            self.at += 1;
            args.push(arg);
        }
        if args.is_empty() {
            return Err("missing value for command".into());
        }
        if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
            return Err("can't give argument to non-function".into());
        }
        Ok(Cmd { args })
    }
}

struct Parser {
    items: std::vec::IntoIter<Item>,
    scope: Vec<String>,
}

enum Stop {
    Eof,
    Close,
    Else(usize, String, String),
}

impl Parser {
    fn action(
        &mut self,
        line: usize,
        raw: &str,
        text: &str,
        range: bool,
    ) -> Result<Action, TemplateError> {
        let toks = tokens(text).map_err(|e| parse_error(line, raw, e))?;
        if toks.is_empty() {
            return Err(parse_error(line, raw, "missing value"));
        }
        let mut p = PipeParser {
            toks: &toks,
            at: 0,
            scope: &mut self.scope,
        };
        let pipe = p.pipe(true, range).map_err(|e| parse_error(line, raw, e))?;
        if p.at != toks.len() {
            return Err(parse_error(
                line,
                raw,
                format!("unexpected {:?}", toks[p.at]),
            ));
        }
        check_printf(&pipe).map_err(|e| parse_error(line, raw, e))?;
        Ok(Action {
            line,
            raw: raw.to_string(),
            pipe,
        })
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (line, raw, inner) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { line, raw, inner } => (line, raw, inner),
            };
            let (word, rest) = inner
                .split_once(|c: char| c.is_whitespace())
                .map_or((inner.as_str(), ""), |(w, r)| (w, r.trim()));
            match word {
                "end" if rest.is_empty() => return Ok((nodes, Stop::Close)),
                "else" => return Ok((nodes, Stop::Else(line, raw, rest.to_string()))),
                "if" | "with" | "range" => {
                    let mark = self.scope.len();
                    let action = self.action(line, &raw, rest, word == "range")?;
                    let (body, els) = self.block(word, line, &raw)?;
                    self.scope.truncate(mark);
                    nodes.push(match word {
                        "if" => Node::If(action, body, els),
                        "with" => Node::With(action, body, els),
                        _ => Node::Range(action, body, els),
                    });
                }
                "template" | "define" | "block" | "break" | "continue" | "end" => {
                    return Err(parse_error(
                        line,
                        &raw,
                        format!(
                            "{word:?} is not supported: tagsmith evaluates if, else, range, with, variables and pipelines"
                        ),
                    ));
                }
                _ => nodes.push(Node::Action(self.action(line, &raw, &inner, false)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// The body after `if`/`with`/`range` and its `else` part, through `end`.
    fn block(
        &mut self,
        word: &str,
        line: usize,
        raw: &str,
    ) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
        let (body, end) = self.list()?;
        match end {
            Stop::Close => Ok((body, Vec::new())),
            Stop::Eof => Err(parse_error(line, raw, "no matching {{end}}")),
            Stop::Else(l, r, rest) if rest.is_empty() => {
                let (els, end) = self.list()?;
                match end {
                    Stop::Close => Ok((body, els)),
                    Stop::Eof => Err(parse_error(line, raw, "no matching {{end}}")),
                    Stop::Else(l2, r2, _) => Err(parse_error(
                        l2,
                        &r2,
                        format!("{{{{else}}}} after {r} at line {l}"),
                    )),
                }
            }
            Stop::Else(l, r, rest) if word == "if" && rest.starts_with("if ") => {
                // `{{else if x}}...{{end}}` is `{{else}}{{if x}}...{{end}}{{end}}`.
                let mark = self.scope.len();
                let cond = self.action(l, &r, rest["if ".len()..].trim(), false)?;
                let (inner_body, inner_else) = self.block("if", l, &r)?;
                self.scope.truncate(mark);
                Ok((body, vec![Node::If(cond, inner_body, inner_else)]))
            }
            Stop::Else(l, r, _) => Err(parse_error(
                l,
                &r,
                format!("only {{{{else}}}} and {{{{else if ...}}}} are supported after {word}"),
            )),
        }
    }
}

/// `printf` with a literal format using only %s %v %d %q %%, and as many operands as verbs.
fn check_printf(pipe: &Pipe) -> Result<(), String> {
    for (i, cmd) in pipe.cmds.iter().enumerate() {
        for arg in &cmd.args {
            if let Arg::Sub(p, _) = arg {
                check_printf(p)?;
            }
        }
        let [Arg::Func(f), rest @ ..] = cmd.args.as_slice() else {
            continue;
        };
        if f != "printf" {
            continue;
        }
        let Some(Arg::Str(format)) = rest.first() else {
            return Err("printf needs a literal format string".into());
        };
        let verbs = verbs(format)?;
        let operands = rest.len() - 1 + usize::from(i > 0);
        if verbs != operands {
            return Err(format!(
                "printf {format:?} has {verbs} verbs for {operands} operands"
            ));
        }
    }
    Ok(())
}

fn verbs(format: &str) -> Result<usize, String> {
    let mut n = 0;
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some('%') => {}
            Some('s' | 'v' | 'd' | 'q') => n += 1,
            other => {
                return Err(format!(
                    "the printf verb %{} is not supported (%s, %v, %d, %q, %%)",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(n)
}

impl GoTemplate {
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let mut parser = Parser {
            items: lex(src)?.into_iter(),
            scope: Vec::new(),
        };
        let (nodes, end) = parser.list()?;
        match end {
            Stop::Eof => Ok(Self { nodes }),
            Stop::Close => Err(parse_error(0, "{{end}}", "unexpected {{end}}")),
            Stop::Else(l, r, _) => Err(parse_error(l, &r, "unexpected {{else}}")),
        }
    }

    /// Every field chain the template names from the data (`.A.B`, `$.A.B`), for callers that
    /// refuse some before running it.
    pub fn field_chains(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        walk_nodes(&self.nodes, &mut out);
        out
    }

    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut state = State {
            vars: vec![(String::new(), data.clone())],
            out: String::new(),
        };
        state.walk(&self.nodes, data)?;
        Ok(state.out)
    }
}

fn walk_nodes(nodes: &[Node], out: &mut Vec<Vec<String>>) {
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Action(a) => walk_pipe(&a.pipe, out),
            Node::If(a, b, e) | Node::Range(a, b, e) | Node::With(a, b, e) => {
                walk_pipe(&a.pipe, out);
                walk_nodes(b, out);
                walk_nodes(e, out);
            }
        }
    }
}

fn walk_pipe(pipe: &Pipe, out: &mut Vec<Vec<String>>) {
    for cmd in &pipe.cmds {
        for arg in &cmd.args {
            match arg {
                Arg::Dot(f) | Arg::Var(_, f) if !f.is_empty() => out.push(f.clone()),
                Arg::Sub(p, _) => walk_pipe(p, out),
                _ => {}
            }
        }
    }
}

// ---- execute ----

struct State {
    vars: Vec<(String, Value)>,
    out: String,
}

fn exec_error(a: &Action, problem: impl Into<String>) -> TemplateError {
    TemplateError::Exec {
        line: a.line,
        construct: a.raw.clone(),
        problem: problem.into(),
    }
}

impl State {
    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(a) => {
                    let v = self.pipe(&a.pipe, dot).map_err(|e| exec_error(a, e))?;
                    if a.pipe.decl.is_empty() {
                        self.out.push_str(&print_value(&v));
                    }
                }
                Node::If(a, body, els) | Node::With(a, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(&a.pipe, dot).map_err(|e| exec_error(a, e))?;
                    if v.truth() {
                        let dot = if matches!(node, Node::With(..)) {
                            &v
                        } else {
                            dot
                        };
                        self.walk(body, dot)?;
                    } else {
                        self.walk(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(a, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(&a.pipe, dot).map_err(|e| exec_error(a, e))?;
                    let pairs: Vec<(Value, Value)> = match v {
                        Value::List(items) => items
                            .into_iter()
                            .enumerate()
                            .map(|(i, e)| (Value::Int(i64::try_from(i).unwrap_or(i64::MAX)), e))
                            .collect(),
                        Value::Map { entries, .. } => entries,
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(exec_error(
                                a,
                                format!("range can't iterate over {}", to_v(&other)),
                            ));
                        }
                    };
                    if pairs.is_empty() {
                        self.walk(els, dot)?;
                    }
                    let decl = &a.pipe.decl;
                    for (key, elem) in pairs {
                        let inner = self.vars.len();
                        match decl.as_slice() {
                            [] => {}
                            [v] => self.set_top(v, elem.clone(), a.pipe.assign),
                            [k, v, ..] => {
                                self.set_top(k, key, false);
                                self.set_top(v, elem.clone(), false);
                            }
                        }
                        let body_mark = self.vars.len();
                        self.walk(body, &elem)?;
                        self.vars.truncate(body_mark.max(inner));
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    /// The range variables: declared by the pipeline, set again for each element.
    fn set_top(&mut self, name: &str, value: Value, assign: bool) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = value;
        } else if !assign {
            self.vars.push((name.to_string(), value));
        }
    }

    fn var(&self, name: &str) -> Result<Value, String> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable ${name}"))
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, String> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.cmd(cmd, dot, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, String> {
        let chain = |mut v: Value, names: &[String]| {
            for n in names {
                v = v.field(n)?;
            }
            Ok::<_, String>(v)
        };
        match arg {
            Arg::Dot(names) => chain(dot.clone(), names),
            Arg::Var(name, names) => chain(self.var(name)?, names),
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(n) => Ok(Value::Int(*n)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Err("nil is not a command".into()),
            Arg::Sub(p, names) => {
                let v = self.pipe(p, dot)?;
                chain(v, names)
            }
            Arg::Func(f) => call(f, Vec::new()),
        }
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        let [first, rest @ ..] = cmd.args.as_slice() else {
            return Err("empty command".into());
        };
        let Arg::Func(f) = first else {
            if piped.is_some() {
                return Err("can't give argument to non-function".into());
            }
            return self.arg(first, dot);
        };
        // `and` and `or` stop at the first operand that decides.
        if f == "and" || f == "or" {
            let mut last = Value::Nil;
            let count = rest.len() + usize::from(piped.is_some());
            if count == 0 {
                return Err(format!("wrong number of args for {f}"));
            }
            for a in rest {
                last = self.arg(a, dot)?;
                if last.truth() == (f == "or") {
                    return Ok(last);
                }
            }
            if let Some(p) = piped {
                last = p;
            }
            return Ok(last);
        }
        let mut args = Vec::with_capacity(rest.len() + 1);
        for a in rest {
            args.push(self.arg(a, dot)?);
        }
        args.extend(piped);
        call(f, args)
    }
}

fn string_arg(f: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "{f}: wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn compare(f: &str, a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.as_bytes().cmp(y.as_bytes())),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if f == "eq" || f == "ne" => Ok(x.cmp(y)),
        _ => Err(format!(
            "{f}: incompatible types for comparison ({} and {})",
            a.type_name(),
            b.type_name()
        )),
    }
}

/// fmt.Sprint: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        format_v(a, &mut out);
    }
    out
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn sprintf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next().unwrap_or('%');
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        match (verb, a) {
            ('s' | 'v', a) => format_v(a, &mut out),
            ('d', Value::Int(i)) => {
                let _ = write!(out, "{i}");
            }
            ('q', Value::Str(s)) => out.push_str(&quote(s)),
            (v, other) => return Err(format!("printf %{v} cannot print a {}", other.type_name())),
        }
    }
    Ok(out)
}

fn call(f: &str, args: Vec<Value>) -> Result<Value, String> {
    let n = args.len();
    let want = |k: usize| {
        if n == k {
            Ok(())
        } else {
            Err(format!("wrong number of args for {f}: want {k} got {n}"))
        }
    };
    match f {
        "not" => {
            want(1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            want(1)?;
            match &args[0] {
                Value::Str(s) => Ok(Value::Int(i64::try_from(s.len()).unwrap_or(i64::MAX))),
                Value::List(l) => Ok(Value::Int(i64::try_from(l.len()).unwrap_or(i64::MAX))),
                Value::Map { entries, .. } => {
                    Ok(Value::Int(i64::try_from(entries.len()).unwrap_or(i64::MAX)))
                }
                other => Err(format!("len of type {}", other.type_name())),
            }
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err("wrong number of args for index".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Map { entries, zero }, k) => entries
                        .iter()
                        .find(|(ek, _)| go_cmp(ek, k).is_eq() && ek.type_name() == k.type_name())
                        .map_or_else(|| (**zero).clone(), |(_, e)| e.clone()),
                    (Value::List(items), Value::Int(i)) => usize::try_from(*i)
                        .ok()
                        .and_then(|i| items.get(i))
                        .cloned()
                        .ok_or_else(|| format!("index out of range: {i}"))?,
                    (other, _) => {
                        return Err(format!("can't index item of type {}", other.type_name()));
                    }
                };
            }
            Ok(v)
        }
        "print" => Ok(Value::Str(sprint(&args))),
        "println" => {
            let mut s = args.iter().map(to_v).collect::<Vec<_>>().join(" ");
            s.push('\n');
            Ok(Value::Str(s))
        }
        "printf" => {
            let Some((Value::Str(format), rest)) = args.split_first() else {
                return Err("printf needs a format string".into());
            };
            sprintf(format, rest).map(Value::Str)
        }
        "eq" => {
            let Some((first, others)) = args.split_first().filter(|(_, o)| !o.is_empty()) else {
                return Err("missing argument for comparison".into());
            };
            for o in others {
                if compare(f, first, o)?.is_eq() {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = compare(f, &args[0], &args[1])?;
            Ok(Value::Bool(match f {
                "ne" => o.is_ne(),
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        "lower" | "upper" | "trim" | "sha256sum" => {
            want(1)?;
            let s = string_arg(f, &args[0])?;
            Ok(Value::Str(match f {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                "trim" => s.trim().to_string(),
                _ => Sha256::digest(s.as_bytes())
                    .iter()
                    .fold(String::new(), |mut h, b| {
                        let _ = write!(h, "{b:02x}");
                        h
                    }),
            }))
        }
        "toString" => {
            want(1)?;
            Ok(Value::Str(to_v(&args[0])))
        }
        // Sprig's argument order: the string operated on comes last.
        "contains" | "hasPrefix" | "hasSuffix" | "trimPrefix" | "trimSuffix" => {
            want(2)?;
            let (a, s) = (string_arg(f, &args[0])?, string_arg(f, &args[1])?);
            Ok(match f {
                "contains" => Value::Bool(s.contains(&a)),
                "hasPrefix" => Value::Bool(s.starts_with(&a)),
                "hasSuffix" => Value::Bool(s.ends_with(&a)),
                "trimPrefix" => Value::Str(s.strip_prefix(&a).unwrap_or(&s).to_string()),
                _ => Value::Str(s.strip_suffix(&a).unwrap_or(&s).to_string()),
            })
        }
        "replace" => {
            want(3)?;
            let (old, new, s) = (
                string_arg(f, &args[0])?,
                string_arg(f, &args[1])?,
                string_arg(f, &args[2])?,
            );
            Ok(Value::Str(s.replace(&old, &new)))
        }
        "trunc" => {
            want(2)?;
            let Value::Int(c) = args[0] else {
                return Err("trunc: the length must be an integer".into());
            };
            let s = string_arg(f, &args[1])?;
            let len = i64::try_from(s.len()).unwrap_or(i64::MAX);
            // Sprig cuts bytes; a cut inside a UTF-8 sequence cannot be a Rust string.
            let cut = |at: i64| {
                let at = usize::try_from(at).unwrap_or(0);
                if s.is_char_boundary(at) {
                    Ok(at)
                } else {
                    Err("trunc would cut a multi-byte character".to_string())
                }
            };
            Ok(Value::Str(if c < 0 && len + c > 0 {
                s[cut(len + c)?..].to_string()
            } else if c >= 0 && len > c {
                s[..cut(c)?].to_string()
            } else {
                s
            }))
        }
        other => Err(format!("the function {other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, data: &Value) -> String {
        GoTemplate::parse(src).unwrap().execute(data).unwrap()
    }

    fn strs(entries: &[(&str, &str)]) -> Value {
        Value::map(
            entries
                .iter()
                .map(|(k, v)| (Value::str(*k), Value::str(*v)))
                .collect(),
            Value::str(""),
        )
    }

    #[test]
    fn text_trimming_comments_and_fields() {
        let data = Value::Struct(Struct {
            display: None,
            fields: vec![("Values", false, strs(&[("b", "2"), ("a", "1")]))],
            methods: vec![],
        });
        assert_eq!(run("x {{- /* c */ -}} \n y", &data), "xy");
        assert_eq!(
            run("{{ .Values.a }}-{{ index .Values \"b\" }}", &data),
            "1-2"
        );
        assert_eq!(
            run("{{ .Values.zz }}|{{ index .Values \"zz\" }}|", &data),
            "<no value>||"
        );
        // Sorted key order, as text/template ranges over maps.
        assert_eq!(
            run(
                "{{ range $k, $v := .Values }}{{ $k }}={{ $v }};{{ end }}",
                &data
            ),
            "a=1;b=2;"
        );
        assert_eq!(
            run("{{ range .Values }}{{ . }}{{ else }}none{{ end }}", &data),
            "12"
        );
        assert_eq!(run("{{ print 1 2 \"a\" 3 }}", &data), "1 2a3");
        assert_eq!(run("{{ println \"a\" 1 }}", &data), "a 1\n");
        assert_eq!(
            run("{{ printf \"%s=%d %q\" \"n\" 3 \"x\" }}", &data),
            "n=3 \"x\""
        );
    }

    #[test]
    fn control_structures_and_variables() {
        let data = strs(&[("k", "v")]);
        assert_eq!(
            run("{{ if eq .k \"v\" }}yes{{ else }}no{{ end }}", &data),
            "yes"
        );
        assert_eq!(
            run(
                "{{ if eq .k \"x\" }}1{{ else if eq .k \"v\" \"y\" }}2{{ else }}3{{ end }}",
                &data
            ),
            "2"
        );
        assert_eq!(
            run(
                "{{ with .k }}<{{ . }}>{{ end }}{{ with .zz }}no{{ else }}none{{ end }}",
                &data
            ),
            "<v>none"
        );
        assert_eq!(
            run(
                "{{ $a := .k }}{{ $a = printf \"%s%s\" $a $a }}{{ $a }}",
                &data
            ),
            "vv"
        );
        assert_eq!(
            run("{{ and 1 0 }} {{ or 0 \"x\" }} {{ not 0 }}", &data),
            "0 x true"
        );
        assert_eq!(run("{{ len .k }} {{ .k | upper | lower }}", &data), "1 v");
        assert_eq!(
            run(
                "{{ \"abcdef\" | trunc 3 }} {{ trunc -2 \"abcdef\" }}",
                &data
            ),
            "abc ef"
        );
        assert_eq!(
            run("{{ sha256sum \"abc\" | trunc 8 }}", &data),
            // sha256("abc") = ba7816bf... (FIPS 180-2 test vector).
            "ba7816bf"
        );
        assert_eq!(
            run("{{ (printf \"%s\" .k) | contains \"v\" }}", &data),
            "true"
        );
    }

    #[test]
    fn unsupported_constructs_are_refused_by_name() {
        for (src, want) in [
            ("{{ template \"x\" }}", "\"template\" is not supported"),
            (
                "{{ .A | quote }}",
                "the function \"quote\" is not supported",
            ),
            (
                "{{ printf \"%5s\" .A }}",
                "the printf verb %5 is not supported",
            ),
            ("{{ printf \"%s %s\" .A }}", "2 verbs for 1 operands"),
            ("{{ $x }}", "undefined variable $x"),
            ("{{ if .A }}x", "no matching {{end}}"),
            ("a\n{{ range .A }}{{ else with .B }}{{ end }}", "line 2"),
        ] {
            let e = GoTemplate::parse(src).unwrap_err().to_string();
            assert!(e.contains(want), "{src}: {e}");
        }
    }
}
