//! `write-back-target: kustomization[:<dir>]`: the kustomization's `images:` edited as
//! `kustomize edit set image` would (AIU `pkg/argocd/git.go` `imagesFilter`/`imageFilter`:
//! a kyaml `ElementSetter` keyed by `name` replaces the entry with `name`, `newName`,
//! `newTag`, `digest` from `parseImageOverride`, or appends one; the `images` key is created
//! at the end when missing). Unlike AIU's kyaml round trip, only the lines of the entries
//! that change are touched: comments, other sections (`generators:`, `openapi:` ...),
//! quoting and blank lines stay byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

use super::scalar::{Identifier, encode};
use super::{Changed, Edited, WriteBackError, WriteImage};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::Style;
use crate::rewrite::yaml_literal;

/// Kustomize file names in the order kustomize looks for them (`konfig.RecognizedKustomizationFileNames`).
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// kustomize `types.Image`, from AIU's `parseImageOverride`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetImage {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
}

impl SetImage {
    pub fn from_override(s: &str) -> Self {
        let id = Identifier::parse(s);
        let full = id.full_name();
        let (name, new_name) = match id.alias {
            Some(alias) => (alias, Some(full)),
            None => (full, None),
        };
        Self {
            name,
            new_name,
            new_tag: id.tag,
            digest: id.digest,
        }
    }

    fn fields(&self) -> [(&'static str, Option<&String>); 3] {
        [
            ("newName", self.new_name.as_ref()),
            ("newTag", self.new_tag.as_ref()),
            ("digest", self.digest.as_ref()),
        ]
    }
}

#[derive(Debug, Clone)]
struct Field {
    line: usize,
    key: String,
    /// Byte range of the value literal inside its line.
    value: std::ops::Range<usize>,
    text: String,
    style: Style,
}

#[derive(Debug, Clone)]
struct Item {
    /// One past the last line that belongs to the entry (comments after it excluded).
    end: usize,
    fields: Vec<Field>,
}

fn unsupported(file: &Path, message: impl Into<String>) -> WriteBackError {
    WriteBackError::Unsupported {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// `key: value # comment` starting at byte `at` of `line`.
fn field_at(line: &str, at: usize, index: usize) -> Option<Field> {
    let body = line[at..].trim_end_matches(['\n', '\r']);
    let colon = body.find(':')?;
    let key = body[..colon].trim().to_string();
    let mut start = at + colon + 1;
    while line.as_bytes().get(start) == Some(&b' ') {
        start += 1;
    }
    let rest = line[start..].trim_end_matches(['\n', '\r']);
    let (len, style) = match rest.chars().next() {
        Some('"') => (rest[1..].find('"')? + 2, Style::Double),
        Some('\'') => (rest[1..].find('\'')? + 2, Style::Single),
        Some('{' | '[' | '|' | '>' | '&' | '*' | '!') => return None,
        _ => {
            let end = rest.find(" #").unwrap_or(rest.len());
            (rest[..end].trim_end().len(), Style::Plain)
        }
    };
    let literal = &rest[..len];
    let text = match style {
        Style::Double => yaml_literal::decode_double(literal)?,
        Style::Single => yaml_literal::decode_single(literal)?,
        _ => literal.to_string(),
    };
    Some(Field {
        line: index,
        key,
        value: start..start + len,
        text,
        style,
    })
}

struct Images {
    /// The `images:` line.
    key_line: usize,
    /// Indent of the `-` of its entries.
    dash: usize,
    items: Vec<Item>,
}

fn find_images(file: &Path, lines: &[&str]) -> Result<Option<Images>, WriteBackError> {
    let Some(key_line) = lines
        .iter()
        .position(|l| l.trim_start_matches('\u{feff}').starts_with("images:"))
    else {
        return Ok(None);
    };
    let after = lines[key_line]["images:".len()..].trim();
    if !(after.is_empty() || after.starts_with('#')) {
        if after.starts_with("[]") {
            return Err(unsupported(
                file,
                "`images: []` is a flow sequence; write `images:` with no value to let tagsmith add entries",
            ));
        }
        return Err(unsupported(file, "`images:` is not a block sequence"));
    }
    let mut items: Vec<Item> = Vec::new();
    let mut dash = None;
    let mut i = key_line + 1;
    while i < lines.len() {
        let line = lines[i];
        if is_blank_or_comment(line) {
            i += 1;
            continue;
        }
        let ind = indent_of(line);
        let is_dash = line[ind..].starts_with("- ") || line[ind..].trim_end() == "-";
        match dash {
            None if is_dash => dash = Some(ind),
            None => break,
            Some(d) if is_dash && ind == d => {}
            Some(d) if ind > d => {
                let Some(item) = items.last_mut() else { break };
                let field = field_at(line, ind, i).ok_or_else(|| {
                    unsupported(
                        file,
                        format!("line {}: cannot read this images entry", i + 1),
                    )
                })?;
                item.fields.push(field);
                item.end = i + 1;
                i += 1;
                continue;
            }
            Some(_) => break,
        }
        let d = ind;
        let content = d + 2;
        if line.len() <= content || line[content..].trim().is_empty() {
            return Err(unsupported(
                file,
                format!("line {}: images entries must start on the `-` line", i + 1),
            ));
        }
        let field = field_at(line, content, i).ok_or_else(|| {
            unsupported(
                file,
                format!(
                    "line {}: cannot read this images entry (flow style?)",
                    i + 1
                ),
            )
        })?;
        items.push(Item {
            end: i + 1,
            fields: vec![field],
        });
        i += 1;
    }
    Ok(Some(Images {
        key_line,
        dash: dash.unwrap_or(0),
        items,
    }))
}

/// Whether the file indents sequences under their key (`key:\n  - x`); kustomize keeps the
/// file's style, so a new `images:` follows it.
fn indents_sequences(lines: &[&str]) -> bool {
    lines.windows(2).any(|w| {
        !w[0].starts_with([' ', '#', '-'])
            && w[0].trim_end().ends_with(':')
            && w[1].starts_with("  - ")
    })
}

fn entry_lines(image: &SetImage, dash: usize) -> String {
    let pad = " ".repeat(dash);
    let mut out = format!("{pad}- name: {}\n", encode(&image.name));
    for (key, value) in image.fields() {
        if let Some(v) = value {
            out.push_str(&format!("{pad}  {key}: {}\n", encode(v)));
        }
    }
    out
}

/// Sets `images` (in order) in the kustomization text. Returns the new text, or `None`
/// when it already says so.
pub fn set_images(
    file: &Path,
    text: &str,
    images: &[SetImage],
) -> Result<Option<String>, WriteBackError> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let had_final_newline = text.is_empty() || text.ends_with('\n');
    for image in images {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let found = find_images(file, &refs)?;
        let Some(found) = found else {
            let dash = if indents_sequences(&refs) { 2 } else { 0 };
            if let Some(last) = lines.last_mut()
                && !last.ends_with('\n')
            {
                last.push_str(newline);
            }
            lines.push(format!("images:{newline}"));
            lines.push(entry_lines(image, dash).replace('\n', newline));
            continue;
        };
        let item = found.items.iter().find(|it| {
            it.fields
                .iter()
                .any(|f| f.key == "name" && f.text == image.name)
        });
        let Some(item) = item else {
            let at = found.items.last().map_or(found.key_line + 1, |it| it.end);
            if at > 0 && !lines[at - 1].ends_with('\n') {
                lines[at - 1].push_str(newline);
            }
            lines.insert(at, entry_lines(image, found.dash).replace('\n', newline));
            continue;
        };
        let item = item.clone();
        let key_pad = " ".repeat(found.dash + 2);
        // Edits from the bottom up so earlier line numbers stay valid.
        let mut removals = Vec::new();
        let mut inserts = Vec::new();
        for (key, value) in image.fields() {
            let existing = item.fields.iter().find(|f| f.key == key);
            match (existing, value) {
                (Some(f), Some(v)) if &f.text != v => {
                    let (_, literal) = yaml_literal::encode(f.style, v);
                    let line = &mut lines[f.line];
                    line.replace_range(f.value.clone(), &literal);
                }
                (Some(_), Some(_)) => {}
                (Some(f), None) => removals.push(f.line),
                (None, Some(v)) => inserts.push(format!("{key_pad}{key}: {}{newline}", encode(v))),
                (None, None) => {}
            }
        }
        let at = item.end;
        if !inserts.is_empty() && !lines[at - 1].ends_with('\n') {
            lines[at - 1].push_str(newline);
        }
        for (n, line) in inserts.into_iter().enumerate() {
            lines.insert(at + n, line);
        }
        removals.sort_unstable();
        for line in removals.into_iter().rev() {
            lines.remove(line);
        }
    }
    let mut out: String = lines.concat();
    if !had_final_newline && out.ends_with('\n') {
        out.pop();
        if out.ends_with('\r') {
            out.pop();
        }
    }
    if out == text {
        return Ok(None);
    }
    verify(file, text, &out, images)?;
    Ok(Some(out))
}

/// The edit changed `images` as asked and nothing else.
fn verify(
    file: &Path,
    before: &str,
    after: &str,
    images: &[SetImage],
) -> Result<(), WriteBackError> {
    let fail = |message: String| WriteBackError::Verify {
        file: file.to_path_buf(),
        message,
    };
    let parse =
        |t: &str| serde_saphyr::from_str::<serde_json::Value>(t).map_err(|e| fail(e.to_string()));
    let mut old = parse(before)?;
    let mut new = parse(after)?;
    let new_images = new
        .as_object_mut()
        .and_then(|m| m.remove("images"))
        .unwrap_or(serde_json::Value::Null);
    if let Some(m) = old.as_object_mut() {
        m.remove("images");
    }
    if old != new && !(old.is_null() && new.as_object().is_some_and(|m| m.is_empty())) {
        return Err(fail("a section other than images changed".into()));
    }
    let list = new_images.as_array().cloned().unwrap_or_default();
    for image in images {
        let entry = list
            .iter()
            .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(&image.name))
            .ok_or_else(|| fail(format!("no images entry named {}", image.name)))?;
        for (key, value) in image.fields() {
            if entry.get(key).and_then(|v| v.as_str()) != value.map(String::as_str) {
                return Err(fail(format!("{key} of {} does not read back", image.name)));
            }
        }
    }
    Ok(())
}

/// Finds the kustomization in `dir` of `root`-relative files given as `(name, bytes)`.
pub fn file_name(exists: impl Fn(&str) -> bool) -> Option<&'static str> {
    FILE_NAMES.into_iter().find(|n| exists(n))
}

pub fn edit(
    file: &Path,
    existing: Option<&[u8]>,
    spec_images: &[String],
    images: &[WriteImage],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Result<Option<Edited>, WriteBackError> {
    let Some(bytes) = existing else {
        return Err(WriteBackError::Missing {
            file: file.to_path_buf(),
        });
    };
    let text = std::str::from_utf8(bytes).map_err(|e| WriteBackError::Parse {
        file: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let (list, params) = super::source::kustomize_images(spec_images, images, selections);
    if params.is_empty() {
        return Ok(None);
    }
    let set: Vec<SetImage> = list.iter().map(|s| SetImage::from_override(s)).collect();
    let before: Vec<(String, Option<String>)> = {
        let refs: Vec<&str> = text.split_inclusive('\n').collect();
        find_images(file, &refs)?
            .map(|f| {
                f.items
                    .iter()
                    .map(|it| {
                        let get = |k: &str| {
                            it.fields
                                .iter()
                                .find(|f| f.key == k)
                                .map(|f| f.text.clone())
                        };
                        (get("name").unwrap_or_default(), get("newTag"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let Some(out) = set_images(file, text, &set)? else {
        return Ok(None);
    };
    let changes = params
        .into_iter()
        .filter_map(|(policy, param)| {
            let s = SetImage::from_override(&param);
            let old = before
                .iter()
                .find(|(n, _)| n == &s.name)
                .and_then(|(_, t)| t.clone())
                .unwrap_or_default();
            let new = s.new_tag.clone().unwrap_or_default();
            let needle = format!("name: {}", encode(&s.name));
            let line = out
                .lines()
                .position(|l| l.trim_end().ends_with(&needle))
                .map_or(0, |l| l + 1);
            (old != new).then_some(Changed {
                policy,
                line,
                old,
                new,
            })
        })
        .collect();
    Ok(Some(Edited {
        bytes: out.into_bytes(),
        changes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, new_name: Option<&str>, tag: &str) -> SetImage {
        SetImage {
            name: name.into(),
            new_name: new_name.map(Into::into),
            new_tag: Some(tag.into()),
            digest: None,
        }
    }

    #[test]
    fn existing_entry_changes_in_place_and_other_sections_stay() {
        let text = "# base\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nresources:\n  - deploy.yaml\n\nimages:\n  - name: nginx # the web server\n    newTag: \"1.0\"   # pinned\n\ngenerators:\n  - gen.yaml\nopenapi:\n  path: schema.json\n";
        let out = set_images(Path::new("k"), text, &[set("nginx", None, "1.1")])
            .unwrap()
            .unwrap();
        assert_eq!(out, text.replace("\"1.0\"", "\"1.1\""));
    }

    #[test]
    fn missing_entry_is_appended_after_the_last_one_never_duplicated() {
        let text = "images:\n- name: a\n  newTag: 1.0.0\n# trailing\nresources:\n- x.yaml\n";
        let img = set("b", Some("reg.io/b"), "2.0.0");
        let out = set_images(Path::new("k"), text, std::slice::from_ref(&img))
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "images:\n- name: a\n  newTag: 1.0.0\n- name: b\n  newName: reg.io/b\n  newTag: 2.0.0\n# trailing\nresources:\n- x.yaml\n"
        );
        assert_eq!(set_images(Path::new("k"), &out, &[img]).unwrap(), None);
    }

    #[test]
    fn new_name_is_added_and_a_stale_digest_dropped_as_element_setter_does() {
        let text = "images:\n- name: web\n  newTag: 1.0.0\n  digest: sha256:aa\n";
        let out = set_images(
            Path::new("k"),
            text,
            &[set("web", Some("reg.io/web"), "1.1.0")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "images:\n- name: web\n  newTag: 1.1.0\n  newName: reg.io/web\n"
        );
    }

    #[test]
    fn images_key_is_created_at_the_end_in_the_files_sequence_style() {
        let text = "resources:\n  - a.yaml\n";
        let out = set_images(Path::new("k"), text, &[set("nginx", None, "1.2.3")])
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "resources:\n  - a.yaml\nimages:\n  - name: nginx\n    newTag: 1.2.3\n"
        );
    }
}
