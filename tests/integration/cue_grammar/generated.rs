//! Random CUE programs in the syntax CUE v0.4 knows, built from a fixed seed so every run sees
//! the same files.

use super::cue_tool::{node_script, temp_dir};
use super::{parse, syntax_problems};

struct Gen {
    state: u64,
    out: String,
    indent: usize,
    lets: u32,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Gen {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            out: String::new(),
            indent: 0,
            lets: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: small, deterministic, good enough to pick grammar branches.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len() as u64) as usize]
    }

    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push('\t');
        }
    }

    /// A line break where CUE allows one without ending the declaration.
    fn maybe_break(&mut self) {
        if self.chance(15) {
            self.indent += 1;
            self.newline();
            self.indent -= 1;
        } else {
            self.push(" ");
        }
    }

    fn identifier(&mut self) {
        let name = self.pick(&["a", "b", "name", "image", "x9", "αβ", "$id", "tag_1"]);
        let prefix = self.pick(&["", "", "", "#", "_", "_#"]);
        let name = if prefix.contains('#') { "Def" } else { name };
        self.push(prefix);
        self.push(name);
    }

    fn string(&mut self, depth: u32) {
        let hashes = if self.chance(25) {
            "#".repeat(1 + self.below(2) as usize)
        } else {
            String::new()
        };
        let quote = if self.chance(20) { '\'' } else { '"' };
        let multiline = self.chance(20);
        let delimiter: String = if multiline {
            std::iter::repeat_n(quote, 3).collect()
        } else {
            quote.to_string()
        };
        self.push(&hashes);
        self.push(&delimiter);
        if multiline {
            self.indent += 1;
            self.newline();
        }
        for _ in 0..self.below(4) {
            match self.below(6) {
                0 => {
                    self.push("\\");
                    self.push(&hashes);
                    let escape = self.pick(&["n", "t", "\\", "u00e9", "/"]);
                    self.push(escape);
                }
                1 if depth < 2 => {
                    self.push("\\");
                    self.push(&hashes);
                    self.push("(");
                    self.expression(depth + 1);
                    self.push(")");
                }
                2 => {
                    // The other quote, and in raw strings an unpadded quote and backslash.
                    self.push(if quote == '"' { "'" } else { "\"" });
                    if !hashes.is_empty() {
                        self.out.push(quote);
                        self.push("\\(x)");
                    }
                }
                3 if multiline => self.newline(),
                _ => {
                    let text =
                        self.pick(&["ghcr.io/org/app:1.2.3", "// not a comment", "x", "é ü"]);
                    self.push(text);
                }
            }
        }
        if multiline {
            self.newline();
            self.indent -= 1;
        }
        self.push(&delimiter);
        self.push(&hashes);
    }

    fn operand(&mut self, depth: u32) {
        match self.below(if depth > 2 { 4 } else { 9 }) {
            0 => self.identifier(),
            1 => {
                let n = self.pick(&[
                    "0", "42", "1_000", "0x1F", "0o17", "0b101", "2Ki", "1.5G", "3.25", ".5",
                    "1e3", "6.02E+23",
                ]);
                self.push(n);
            }
            2 => self.string(depth),
            3 => {
                let lit = self.pick(&["true", "false", "null", "_", "_|_", "int", "string"]);
                self.push(lit);
            }
            4 => self.structure(depth + 1),
            5 => {
                self.push("[");
                let n = self.below(4);
                for i in 0..n {
                    if i > 0 {
                        self.push(",");
                        self.maybe_break();
                    }
                    if depth < 2 && self.chance(15) {
                        self.push("for k, v in ");
                        self.identifier();
                        self.push(" {v}");
                    } else {
                        self.expression(depth + 1);
                    }
                }
                if self.chance(20) {
                    self.push(if n > 0 { ", ..." } else { "..." });
                    if self.chance(50) {
                        self.push("int");
                    }
                }
                self.push("]");
            }
            6 => {
                self.push("(");
                self.expression(depth + 1);
                self.push(")");
            }
            7 => {
                self.identifier();
                self.push(".");
                self.identifier();
                if self.chance(50) {
                    self.push("[");
                    self.expression(depth + 1);
                    self.push("]");
                }
            }
            _ => {
                self.push("strings.Join(");
                self.expression(depth + 1);
                self.push(", ");
                self.expression(depth + 1);
                self.push(")");
            }
        }
    }

    fn expression(&mut self, depth: u32) {
        if self.chance(20) {
            let op = self.pick(&["-", "!", "*", ">=", "<", "!=", "=~"]);
            self.push(op);
        }
        self.operand(depth);
        if depth < 3 && self.chance(30) {
            let op = self.pick(&["|", "&", "||", "&&", "==", "<=", "+", "-", "*", "/", "=~"]);
            self.push(" ");
            self.push(op);
            self.maybe_break();
            self.expression(depth + 1);
        }
    }

    fn label(&mut self, depth: u32) {
        if self.chance(10) {
            // Label aliases must be unique in their scope too.
            self.lets += 1;
            let alias = format!("L{}=", self.lets);
            self.push(&alias);
        }
        match self.below(8) {
            0 => {
                self.push("\"quoted-");
                let name = self.pick(&["a", "b", "label"]);
                self.push(name);
                self.push("\"");
            }
            1 if depth < 3 => {
                self.push("(");
                self.expression(depth + 1);
                self.push(")");
            }
            2 => {
                // A pattern may not refer to the fields it would match, so no references.
                let pattern =
                    self.pick(&["[string]", "[=~\"^x\"]", "[N=string]", "[!=\"a\"]", "[_]"]);
                self.push(pattern);
                return;
            }
            _ => self.identifier(),
        }
        if self.chance(15) {
            self.push("?");
        }
    }

    fn declaration(&mut self, depth: u32, last: bool, line_end: bool) {
        match self.below(if depth > 2 { 2 } else { 7 }) {
            0 | 1 => {
                for _ in 0..=self.below(2) {
                    self.label(depth);
                    self.push(": ");
                }
                self.expression(depth);
                if self.chance(10) {
                    self.push(" @go(Name,type=[]int{})");
                }
                // A comment runs to the end of the line: only where a line break follows.
                if line_end && self.chance(20) {
                    self.push(" // {\"$imagepolicy\": \"ns:name\"}");
                }
            }
            2 => {
                self.push("for k, v in ");
                self.identifier();
                if self.chance(50) {
                    self.push(" if v != null");
                }
                if self.chance(30) {
                    self.push(" let w = v");
                }
                self.push(" ");
                self.structure(depth + 1);
            }
            3 => {
                self.push("if ");
                self.expression(depth + 1);
                self.push(" ");
                self.structure(depth + 1);
            }
            4 => {
                // Each let names a new alias: CUE rejects a second one of the same name.
                self.lets += 1;
                let name = format!("let tmp{} = ", self.lets);
                self.push(&name);
                self.expression(depth + 1);
            }
            // CUE wants `...` last in a struct.
            5 if last => self.push("..."),
            _ => self.expression(depth + 1),
        }
    }

    fn structure(&mut self, depth: u32) {
        self.push("{");
        let n = self.below(4);
        let broken = self.chance(60);
        self.indent += 1;
        for i in 0..n {
            if broken {
                self.newline();
            } else if i > 0 {
                self.push(", ");
            }
            self.declaration(depth, i + 1 == n, broken);
        }
        self.indent -= 1;
        if broken && n > 0 {
            self.newline();
        }
        self.push("}");
    }

    fn file(mut self) -> String {
        if self.chance(50) {
            self.push("package gen\n\n");
        }
        if self.chance(30) {
            self.push("import (\n\t\"strings\"\n\tm \"math\"\n)\n\n");
        }
        let n = 1 + self.below(6);
        for i in 0..n {
            if self.chance(15) {
                self.push("// a comment line\n");
            }
            self.declaration(0, i + 1 == n, true);
            self.push("\n");
        }
        self.out
    }
}

/// The grammar and CUE's own parser accept the same generated programs: all of them, since
/// the generator only writes valid syntax.
#[test]
fn grammar_and_cue_agree_on_generated_programs() {
    const FILES: u64 = 200;
    let dir = temp_dir("cue-generated");
    let mut sources = Vec::new();
    let mut files = Vec::new();
    for seed in 0..FILES {
        let source = Gen::new(seed + 1).file();
        // Every fourth file with CRLF line endings, which both parsers must take as well.
        let source = if seed % 4 == 3 {
            source.replace('\n', "\r\n")
        } else {
            source
        };
        let file = dir.join(format!("gen{seed:03}.cue"));
        std::fs::write(&file, &source).expect("write generated file");
        sources.push(source);
        files.push(file);
    }
    let output = node_script("cue-fmt-each.js", &files);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "cue fmt did not run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert_eq!(results.len(), sources.len());
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (source, result) in sources.iter().zip(&results) {
        let tree = parse(source.as_bytes());
        let mut stack = vec![tree.root_node()];
        while let Some(node) = stack.pop() {
            let text = node.utf8_text(source.as_bytes()).unwrap_or_default();
            if node.kind() == "string_start" {
                kinds.insert(format!("string {}", text.trim_start_matches('#')));
                if text.starts_with('#') {
                    kinds.insert("raw string".to_owned());
                }
            } else {
                kinds.insert(node.kind().to_owned());
            }
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
        let mut problems = Vec::new();
        syntax_problems(tree.root_node(), &mut problems);
        let cue_accepts = result["code"].as_i64() == Some(0);
        if !cue_accepts || !problems.is_empty() {
            failures.push(format!(
                "--- CUE: {} grammar: {}\n{source}",
                result["stderr"].as_str().unwrap_or_default().trim(),
                problems.join(", ")
            ));
        }
    }
    // The programs must exercise what the grammar is hard about, or agreeing means little.
    for kind in [
        "raw string",
        "string \"\"\"",
        "string '''",
        "string '",
        "interpolation",
        "escape_sequence",
        "comprehension",
        "let_clause",
        "attribute",
        "comment",
        "pattern_label",
        "dynamic_label",
        "optional",
        "alias",
        "ellipsis",
        "default",
        "disjunction",
        "call_expression",
        "index_expression",
        "float",
    ] {
        assert!(kinds.contains(kind), "no generated program has a {kind}");
    }
    assert!(
        failures.is_empty(),
        "{} of {FILES} generated programs were not accepted by both:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
