//! `write-back-target: helmvalues[:<file>]`: the named keys of a Helm values file set in
//! place. Keys resolve as AIU resolves them (`pkg/argocd/update.go`
//! `resolveHelmScalarNode`: a dotted path `a.b.c` with `key[i]` list indexes, one level of
//! alias unpacked, else the literal key `a.b.c`). Only the value literals change, in their
//! quote style, so comments, anchors and every other byte stay; AIU does the same when it
//! can and re-marshals the file otherwise. A key that does not exist is created where AIU
//! creates it, as an insertion that leaves every other byte alone (`create`).

use std::collections::BTreeMap;
use std::path::Path;

use tree_sitter::{Node, Parser};

use super::scalar::Identifier;
use super::{Changed, Edited, HelmKeys, WriteBackError, WriteImage, selected};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::Style;
use crate::rewrite::yaml_literal;

fn scalar_of(node: Node<'_>) -> Option<Node<'_>> {
    match node.kind() {
        "plain_scalar" | "double_quote_scalar" | "single_quote_scalar" => Some(node),
        "flow_node" | "block_node" => {
            let mut c = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut c).collect();
            children
                .into_iter()
                .filter(|n| !matches!(n.kind(), "anchor" | "tag" | "comment"))
                .find_map(scalar_of)
        }
        _ => None,
    }
}

fn text<'a>(node: Node<'_>, src: &'a [u8]) -> &'a str {
    std::str::from_utf8(&src[node.byte_range()]).unwrap_or("")
}

fn scalar_value(node: Node<'_>, src: &[u8]) -> Option<(String, Style)> {
    let s = scalar_of(node)?;
    let raw = text(s, src);
    match s.kind() {
        "double_quote_scalar" => Some((yaml_literal::decode_double(raw)?, Style::Double)),
        "single_quote_scalar" => Some((yaml_literal::decode_single(raw)?, Style::Single)),
        _ => Some((raw.to_string(), Style::Plain)),
    }
}

/// The node an alias (`*name`) points at: the node carrying `&name`.
fn resolve_alias<'a>(node: Node<'a>, src: &[u8], root: Node<'a>) -> Node<'a> {
    let mut c = node.walk();
    let alias = node
        .named_children(&mut c)
        .find(|n| n.kind() == "alias")
        .map(|n| text(n, src)[1..].to_string());
    let Some(name) = alias else { return node };
    let mut found = None;
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.kind() == "anchor" && text(n, src).get(1..) == Some(name.as_str()) {
            found = n.parent();
        }
        let mut c = n.walk();
        stack.extend(n.named_children(&mut c));
    }
    found.unwrap_or(node)
}

/// The mapping or sequence inside a block/flow node.
fn collection(node: Node<'_>) -> Option<Node<'_>> {
    match node.kind() {
        "block_mapping" | "block_sequence" | "flow_mapping" | "flow_sequence" => Some(node),
        "block_node" | "flow_node" | "document" | "stream" => {
            let mut c = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut c).collect();
            children.into_iter().find_map(collection)
        }
        _ => None,
    }
}

fn lookup<'a>(mapping: Node<'a>, key: &str, src: &[u8]) -> Option<Node<'a>> {
    let mut c = mapping.walk();
    let pairs: Vec<Node<'a>> = mapping.named_children(&mut c).collect();
    pairs.into_iter().find_map(|pair| {
        if !matches!(pair.kind(), "block_mapping_pair" | "flow_pair") {
            return None;
        }
        let k = pair.child_by_field_name("key")?;
        (scalar_value(k, src)?.0 == key).then(|| pair.child_by_field_name("value"))?
    })
}

fn item(sequence: Node<'_>, index: usize) -> Option<Node<'_>> {
    let mut c = sequence.walk();
    let items: Vec<Node<'_>> = sequence
        .named_children(&mut c)
        .filter(|n| n.kind() != "comment")
        .collect();
    let it = *items.get(index)?;
    if it.kind() == "block_sequence_item" {
        let mut c = it.walk();
        let inner: Vec<Node<'_>> = it.named_children(&mut c).collect();
        inner.into_iter().find(|n| n.kind() != "comment")
    } else {
        Some(it)
    }
}

fn split_index(part: &str) -> (&str, Option<usize>) {
    if let Some(open) = part.find('[')
        && part.ends_with(']')
        && let Ok(i) = part[open + 1..part.len() - 1].parse()
    {
        return (&part[..open], Some(i));
    }
    (part, None)
}

/// The scalar node a Helm parameter name points at.
fn resolve<'a>(root: Node<'a>, key: &str, src: &[u8]) -> Option<Node<'a>> {
    let top = collection(root)?;
    let nested = (|| {
        let mut node = top;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (name, index) = split_index(part);
            let mut value = resolve_alias(
                lookup(collection(node).unwrap_or(node), name, src)?,
                src,
                root,
            );
            if let Some(index) = index {
                value = resolve_alias(item(collection(value)?, index)?, src, root);
            }
            if i == parts.len() - 1 {
                return scalar_of(value);
            }
            node = collection(value)?;
        }
        None
    })();
    nested.or_else(|| scalar_of(resolve_alias(lookup(top, key, src)?, src, root)))
}

fn has_registry(name: &str) -> bool {
    Identifier::parse(name).registry.is_some()
}

pub fn edit(
    file: &Path,
    existing: Option<&[u8]>,
    images: &[WriteImage],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Result<Option<Edited>, WriteBackError> {
    let Some(src) = existing else {
        return Err(WriteBackError::Missing {
            file: file.to_path_buf(),
        });
    };
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_yaml::LANGUAGE.into())
        .map_err(|e| WriteBackError::Parse {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
    let tree = parser
        .parse(src, None)
        .ok_or_else(|| WriteBackError::Parse {
            file: file.to_path_buf(),
            message: "cannot parse".into(),
        })?;
    let root = tree.root_node();
    if root.has_error() {
        return Err(WriteBackError::Parse {
            file: file.to_path_buf(),
            message: "syntax error".into(),
        });
    }
    // (policy, key, value) in AIU's order: the tag, then the name (`marshalParamsOverride`).
    let mut writes: Vec<(PolicyId, String, String)> = Vec::new();
    for (image, sel) in selected(images, selections) {
        match &image.helm {
            HelmKeys::Spec(spec) => {
                writes.push((image.policy.clone(), spec.clone(), sel.full(&image.name)))
            }
            HelmKeys::NameTag { name, tag } => {
                let value = sel.tag_with_digest();
                if !value.is_empty() {
                    writes.push((image.policy.clone(), tag.clone(), value));
                }
                writes.push((image.policy.clone(), name.clone(), image.name.clone()));
            }
        }
    }
    // One write at a time, each on the bytes the one before left: a key created by the tag
    // write is where the name write finds its mapping, as in AIU's `setHelmValue` loop.
    let mut out = src.to_vec();
    let mut changes = Vec::new();
    for (policy, key, value) in writes {
        let tree = parser
            .parse(&out, None)
            .filter(|t| !t.root_node().has_error())
            .ok_or_else(|| WriteBackError::Verify {
                file: file.to_path_buf(),
                message: "the edited file does not parse".into(),
            })?;
        let root = tree.root_node();
        let Some(node) = resolve(root, &key, &out) else {
            let (at, text, line) =
                create(root, &key, &value, &out).ok_or_else(|| WriteBackError::MissingKey {
                    file: file.to_path_buf(),
                    key: key.clone(),
                })?;
            changes.push(Changed {
                policy,
                line,
                old: String::new(),
                new: value,
            });
            out.splice(at..at, text.bytes());
            continue;
        };
        let (old, style) = scalar_value(node, &out).unwrap_or((String::new(), Style::Plain));
        // A short image name (`org/app`) is kept short when the file has it so
        // (`marshalParamsOverride` with `image.ExtractShortForm`).
        let value =
            if !has_registry(&old) && has_registry(&value) && Identifier::parse(&value).name == old
            {
                old.clone()
            } else {
                value
            };
        if old == value {
            continue;
        }
        let (_, literal) = yaml_literal::encode(style, &value);
        changes.push(Changed {
            policy,
            line: node.start_position().row + 1,
            old,
            new: value,
        });
        out.splice(node.byte_range(), literal.bytes());
    }
    if changes.is_empty() {
        return Ok(None);
    }
    let reparsed = parser.parse(&out, None);
    if reparsed.as_ref().is_none_or(|t| t.root_node().has_error()) {
        return Err(WriteBackError::Verify {
            file: file.to_path_buf(),
            message: "the edited file does not parse".into(),
        });
    }
    Ok(Some(Edited {
        bytes: out,
        changes,
    }))
}

/// A key that does not exist, created as AIU's `setHelmValue` (pkg/argocd/update.go) creates
/// it: the dotted path is followed as far as it exists, and the rest is added at the end of
/// the mapping reached, one nested mapping per remaining part, the last holding the value.
/// Here that is an insertion after the mapping's last line, in its column, nested parts one
/// indentation step deeper each (the file's own step, else 2): every other byte stays, where
/// AIU re-marshals the file. `None` where AIU fails too (the path runs into a scalar or a
/// list without an index) or where an insertion cannot keep the file's shape (a flow
/// mapping, a list index to create): the key is then reported missing.
/// Returns (byte offset, text, line of the new value).
fn create(root: Node<'_>, key: &str, value: &str, src: &[u8]) -> Option<(usize, String, usize)> {
    let top = collection(root)?;
    let parts: Vec<&str> = key.split('.').collect();
    let mut mapping = top;
    let mut at = 0;
    while at < parts.len() {
        let (name, index) = split_index(parts[at]);
        let Some(found) = lookup(mapping, name, src) else {
            if index.is_some() {
                return None;
            }
            break;
        };
        let mut value = resolve_alias(found, src, root);
        if let Some(index) = index {
            value = resolve_alias(item(collection(value)?, index)?, src, root);
        }
        if at == parts.len() - 1 {
            // It exists but is no scalar: AIU fails on it as well.
            return None;
        }
        mapping = collection(value)?;
        at += 1;
    }
    if mapping.kind() != "block_mapping" || parts[at..].iter().any(|p| split_index(p).1.is_some()) {
        return None;
    }
    let column = mapping.start_position().column;
    let step = indent_step(root).unwrap_or(2);
    // After the mapping's last line (its trailing comment included).
    // (A mapping may end after its last line's newline: count that newline as its end.)
    let end = mapping.end_byte();
    let end = if src[..end].ends_with(b"\n") {
        end - 1
    } else {
        end
    };
    let (offset, newline) = match src[end..].iter().position(|b| *b == b'\n') {
        Some(n) => (end + n + 1, ""),
        None => (src.len(), "\n"),
    };
    let eol = if src[..offset].ends_with(b"\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut text = newline.replace('\n', eol);
    let rest = &parts[at..];
    for (depth, part) in rest.iter().enumerate() {
        let pad = " ".repeat(column + step * depth);
        let (_, k) = yaml_literal::encode(Style::Plain, part);
        if depth == rest.len() - 1 {
            let (_, v) = yaml_literal::encode(Style::Plain, value);
            text.push_str(&format!("{pad}{k}: {v}{eol}"));
        } else {
            text.push_str(&format!("{pad}{k}:{eol}"));
        }
    }
    let line = src[..offset].iter().filter(|b| **b == b'\n').count()
        + usize::from(!newline.is_empty())
        + rest.len();
    Some((offset, text, line))
}

/// How far the file indents a nested mapping: the first one found, against its key.
fn indent_step(root: Node<'_>) -> Option<usize> {
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.kind() == "block_mapping_pair"
            && let Some(value) = n.child_by_field_name("value")
            && let Some(inner) = collection(value)
            && inner.kind() == "block_mapping"
            && inner.start_position().row > n.start_position().row
        {
            let step = inner
                .start_position()
                .column
                .checked_sub(n.start_position().column)?;
            return (step > 0).then_some(step);
        }
        let mut c = n.walk();
        let children: Vec<Node<'_>> = n.named_children(&mut c).collect();
        stack.extend(children.into_iter().rev());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(spec: Option<&str>) -> WriteImage {
        WriteImage {
            policy: "argocd:app-web".parse().unwrap(),
            name: "127.0.0.1:5000/web".into(),
            kustomize_name: None,
            helm: match spec {
                Some(s) => HelmKeys::Spec(s.into()),
                None => HelmKeys::NameTag {
                    name: "image.repository".into(),
                    tag: "image.tag".into(),
                },
            },
        }
    }

    fn sel(r: &str) -> BTreeMap<PolicyId, ImageRef> {
        BTreeMap::from([("argocd:app-web".parse().unwrap(), r.parse().unwrap())])
    }

    #[test]
    fn keys_change_in_place_with_comments_and_anchors_kept() {
        let text = "# values\ndefaults: &img\n  repository: 127.0.0.1:5000/web  # registry\n  tag: \"1.0.0\" # pinned\n\nimage: *img\nother:\n  - a\n";
        let out = edit(
            Path::new("v"),
            Some(text.as_bytes()),
            &[img(None)],
            &sel("127.0.0.1:5000/web:1.1.0"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            text.replace("\"1.0.0\"", "\"1.1.0\"")
        );
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].line, 4);
    }

    #[test]
    fn literal_dotted_keys_and_list_indexes_resolve() {
        let text = "containers:\n  - name: x\n    image: old:1\nimage.spec: old:1\n";
        let out = edit(
            Path::new("v"),
            Some(text.as_bytes()),
            &[img(Some("containers[0].image"))],
            &sel("127.0.0.1:5000/web:2"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            "containers:\n  - name: x\n    image: 127.0.0.1:5000/web:2\nimage.spec: old:1\n"
        );
        let out = edit(
            Path::new("v"),
            Some(text.as_bytes()),
            &[img(Some("image.spec"))],
            &sel("127.0.0.1:5000/web:2"),
        )
        .unwrap()
        .unwrap();
        assert!(
            String::from_utf8(out.bytes)
                .unwrap()
                .ends_with("image.spec: 127.0.0.1:5000/web:2\n")
        );
    }

    fn edited(text: &str, image: WriteImage) -> Result<String, WriteBackError> {
        edit(
            Path::new("v"),
            Some(text.as_bytes()),
            &[image],
            &sel("127.0.0.1:5000/web:2"),
        )
        .map(|e| String::from_utf8(e.unwrap().bytes).unwrap())
    }

    /// AIU pkg/argocd/update.go `setHelmValue`: a missing last part is appended to the mapping
    /// the path reaches (update_test.go "Unknown parameter"); missing parents become nested
    /// mappings ("Key not found"/nested cases); the tag is written before the name.
    #[test]
    fn a_missing_key_is_added_at_the_end_of_its_mapping_and_nothing_else_moves() {
        assert_eq!(
            edited("image:\n  tag: 1 # keep\n\nreplicas: 2\n", img(None)).unwrap(),
            "image:\n  tag: \"2\" # keep\n  repository: 127.0.0.1:5000/web\n\nreplicas: 2\n"
        );
        // Nothing of the path exists, and the file does not end in a newline.
        assert_eq!(
            edited("# values\nreplicas: 2", img(None)).unwrap(),
            "# values\nreplicas: 2\nimage:\n  tag: \"2\"\n  repository: 127.0.0.1:5000/web\n"
        );
        // The file's own indentation, CRLF kept, and a parent behind an alias is the anchor's.
        assert_eq!(
            edited(
                "base: &b\r\n    name: x\r\nimage: *b\r\n",
                img(Some("image.spec"))
            )
            .unwrap(),
            "base: &b\r\n    name: x\r\n    spec: 127.0.0.1:5000/web:2\r\nimage: *b\r\n"
        );
        assert_eq!(
            edited("app:\n    x: 1\n", img(Some("app.image.full"))).unwrap(),
            "app:\n    x: 1\n    image:\n        full: 127.0.0.1:5000/web:2\n"
        );
    }

    #[test]
    fn a_key_that_cannot_be_added_in_place_is_reported() {
        for text in ["image: {tag: 1}\n", "image: web\n", "image:\n  - a\n"] {
            let err = edited(text, img(None)).unwrap_err();
            assert!(
                matches!(err, WriteBackError::MissingKey { .. }),
                "{text}: {err}"
            );
        }
        let err = edited("a: 1\n", img(Some("list[0].image"))).unwrap_err();
        assert!(matches!(err, WriteBackError::MissingKey { key, .. } if key == "list[0].image"));
    }
}
