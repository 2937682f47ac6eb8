//! Commit messages from the changes a run made (pure).

use std::collections::{BTreeMap, HashMap};

use std::path::{Path, PathBuf};

use crate::config::Template;
use crate::config::flux::gotemplate::TemplateError;
use crate::config::flux::template::{FluxChange, FluxMessage, object_at};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::walk::ChangedFile;
use crate::rewrite::{Change, Lang};

/// Above this many images the subject says how many instead of naming them.
const NAMED_IN_SUBJECT: usize = 3;

/// The longest subject line written: what `git log --oneline`, forges and mail clients show
/// without cutting. A longer one names the image count instead, and is cut as a last resort.
pub const MAX_SUBJECT: usize = 72;

/// `selections` name each image in full: a `:tag` marker's change alone says only the tag.
pub fn render(
    template: &Template,
    target: &str,
    changes: &[Change],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> String {
    // Each policy's new reference once, in policy order, from its own changes only: a
    // search of every change for every policy grows with their product.
    let mut by_policy: BTreeMap<&PolicyId, Vec<&Change>> = BTreeMap::new();
    for change in changes {
        by_policy.entry(&change.policy).or_default().push(change);
    }
    let images: BTreeMap<&PolicyId, String> = by_policy
        .iter()
        .map(|(policy, own)| (*policy, subject_name(own, selections)))
        .collect();
    let counted = match images.len() {
        1 => "1 image".to_owned(),
        n => format!("{n} images"),
    };
    let named = images.values().cloned().collect::<Vec<_>>().join(", ");
    let change_lines = change_lines(changes);
    // The change lines (megabytes at 15,000 changes) are put in once the template is
    // rendered around a stand-in for them, not copied into it: a stand-in that no other
    // text of the message holds, outside the subject (the first line, measured and cut
    // before they are put in). Anything else renders them in at once, as it always did.
    let render = |image_list: &str, lines: &str| {
        template.render(|var| match var {
            "target" => target.to_string(),
            "count" => changes.len().to_string(),
            "images" => image_list.to_owned(),
            _ => lines.to_owned(),
        })
    };
    let render = |image_list: &str| {
        let text = render(image_list, CHANGES_STAND_IN);
        let subject = text.split('\n').next().unwrap_or("");
        if subject.contains(CHANGES_STAND_IN) || render(image_list, "").contains(CHANGES_STAND_IN) {
            (render(image_list, &change_lines), None)
        } else {
            (text, Some(CHANGES_STAND_IN))
        }
    };
    let (mut text, stand_in) = if images.len() <= NAMED_IN_SUBJECT {
        Some(render(&named)).filter(|(t, _)| subject_len(t) <= MAX_SUBJECT)
    } else {
        None
    }
    .unwrap_or_else(|| render(&counted));
    if subject_len(&text) > MAX_SUBJECT {
        text = cut_subject(&text);
    }
    if let Some(stand_in) = stand_in {
        text = put_in(&text, stand_in, &change_lines);
    }
    drop(change_lines);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Stands in for the change lines while the template is rendered (see [`render`]).
const CHANGES_STAND_IN: &str = "\0tagsmith-changes\0";

/// `text` with each `stand_in` replaced by `lines`, in a buffer of the exact size (and one
/// more byte, for the newline [`render`] may add).
fn put_in(text: &str, stand_in: &str, lines: &str) -> String {
    let count = text.matches(stand_in).count();
    let size = text.len() - count * stand_in.len() + count * lines.len() + 1;
    let mut out = String::with_capacity(size);
    for (i, piece) in text.split(stand_in).enumerate() {
        if i > 0 {
            out.push_str(lines);
        }
        out.push_str(piece);
    }
    out
}

/// One line per change, `- policy: old -> new (file:line)`, joined by newlines, in a buffer
/// of their exact size: 15,000 changes make megabytes of lines, and a buffer that doubles as
/// it grows holds up to twice that.
fn change_lines(changes: &[Change]) -> String {
    /// Counts what would be written.
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    fn write_all(out: &mut impl std::fmt::Write, changes: &[Change]) {
        for (i, c) in changes.iter().enumerate() {
            // Neither a String nor a count can fail.
            let _ = write!(
                out,
                "{}- {}: {} -> {} ({}:{})",
                if i > 0 { "\n" } else { "" },
                c.policy,
                c.old,
                c.new,
                c.file.display(),
                c.line
            );
        }
    }
    let mut count = Count(0);
    write_all(&mut count, changes);
    let mut lines = String::with_capacity(count.0);
    write_all(&mut lines, changes);
    lines
}

/// A Flux messageTemplate over the run's changes, exactly as image-automation-controller
/// renders it (no subject cut, no newline added). Files are named relative to the target's one
/// path (Flux's `update.path`); each change's object is the YAML document holding it.
pub fn render_flux(
    message: &FluxMessage,
    paths: &[PathBuf],
    changes: &[Change],
    files: &[ChangedFile],
) -> Result<String, TemplateError> {
    let base = match paths {
        [one] => one.as_path(),
        _ => Path::new(""),
    };
    // Each file's text once (the first file of a path, as a search would find it): a search
    // of every file for every change grows with their product.
    let mut texts: HashMap<&Path, String> = HashMap::new();
    for f in files {
        // Flux reads YAML only: a CUE file has no document to name.
        if Lang::from_path(&f.path) == Some(Lang::Yaml) {
            texts
                .entry(f.path.as_path())
                .or_insert_with(|| String::from_utf8_lossy(&f.after).into_owned());
        }
    }
    let flux: Vec<FluxChange> = changes
        .iter()
        .map(|c| {
            let text = texts.get(c.file.as_path()).map_or("", String::as_str);
            FluxChange {
                file: c
                    .file
                    .strip_prefix(base)
                    .unwrap_or(&c.file)
                    .to_string_lossy()
                    .into_owned(),
                object: object_at(text, c.line),
                old: c.old.clone(),
                new: c.new.clone(),
                setter: format!("{}{}", c.policy, c.part.suffix()),
            }
        })
        .collect();
    message.render(&flux)
}

/// How the subject names a policy's image, from that policy's changes (`own`, in order, never
/// empty): its selection (a `:tag` change alone says only the tag), with the digest only when
/// a file received it, so the subject never names a digest that no file holds.
fn subject_name(own: &[&Change], selections: &BTreeMap<PolicyId, ImageRef>) -> String {
    let Some(first) = own.first() else {
        return String::new();
    };
    let Some(selection) = selections.get(&first.policy) else {
        return first.new.clone();
    };
    let mut reference = selection.clone();
    let written = |digest: &str| own.iter().any(|c| c.new.contains(digest));
    if reference
        .digest
        .as_ref()
        .is_some_and(|d| !written(d.as_str()))
    {
        reference.digest = None;
    }
    reference.to_string()
}

fn subject_len(text: &str) -> usize {
    text.lines().next().unwrap_or("").chars().count()
}

/// The subject cut to `MAX_SUBJECT` characters with an ellipsis; the body as it was.
fn cut_subject(text: &str) -> String {
    let (subject, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut cut: String = subject.chars().take(MAX_SUBJECT - 1).collect();
    cut.push('…');
    if text.contains('\n') {
        format!("{cut}\n{rest}")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn change(policy: &str, new: &str, file: &str) -> Change {
        Change {
            file: PathBuf::from(file),
            line: 7,
            policy: policy.parse().unwrap(),
            part: crate::rewrite::Part::Full,
            old: "ghcr.io/org/app:1.0.0".into(),
            new: new.into(),
        }
    }

    #[test]
    fn default_message_names_images_and_lists_changes() {
        let changes = [
            change("team-a:app", "ghcr.io/org/app:1.1.0", "apps/a.yaml"),
            change("team-a:app", "ghcr.io/org/app:1.1.0", "apps/b.yaml"),
        ];
        let text = render(&Template::default(), "prod", &changes, &BTreeMap::new());
        assert_eq!(
            text,
            "Update ghcr.io/org/app:1.1.0 in prod\n\n\
             - team-a:app: ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.1.0 (apps/a.yaml:7)\n\
             - team-a:app: ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.1.0 (apps/b.yaml:7)\n"
        );
    }

    #[test]
    fn change_lines_anywhere_in_a_template_render_as_they_read() {
        let changes = [
            change("team-a:app", "ghcr.io/org/app:1.1.0", "apps/a.yaml"),
            change("team-a:web", "ghcr.io/org/web:2.0.0", "apps/b.yaml"),
        ];
        let lines = "- team-a:app: ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.1.0 (apps/a.yaml:7)\n\
                     - team-a:web: ghcr.io/org/app:1.0.0 -> ghcr.io/org/web:2.0.0 (apps/b.yaml:7)";
        let render = |template: &str| {
            let template = Template::parse(template).unwrap();
            render(&template, "prod", &changes, &BTreeMap::new())
        };
        // Twice in the body, and at its very end (the newline is added after them).
        assert_eq!(
            render("{{count}} in {{target}}\n\n{{changes}}\n--\n{{changes}}"),
            format!("2 in prod\n\n{lines}\n--\n{lines}\n")
        );
        assert_eq!(
            change_lines(&changes).capacity(),
            lines.len(),
            "made at its size"
        );
        // In the subject, they are measured and cut with it, as they always were.
        let cut = render("{{changes}}\n\nbody");
        let (subject, body) = cut.split_once('\n').unwrap();
        assert_eq!(subject.chars().count(), MAX_SUBJECT);
        assert!(
            subject.starts_with("- team-a:app: ghcr.io/org/app:1.0.0") && subject.ends_with('…')
        );
        assert_eq!(
            body,
            format!("{}\n\nbody\n", &lines[lines.find('\n').unwrap() + 1..])
        );
        // A stand-in in the template's own text is left as it is written.
        let odd = format!("x\n{CHANGES_STAND_IN}\n{{{{changes}}}}");
        assert_eq!(render(&odd), format!("x\n{CHANGES_STAND_IN}\n{lines}\n"));
    }

    #[test]
    fn many_images_are_counted_in_the_subject() {
        let changes: Vec<_> = (0..4)
            .map(|i| change(&format!("team-a:app{i}"), &format!("x:{i}"), "a.yaml"))
            .collect();
        let text = render(&Template::default(), "prod", &changes, &BTreeMap::new());
        assert!(text.starts_with("Update 4 images in prod\n"), "{text}");
    }

    #[test]
    fn a_long_subject_counts_its_images_and_never_names_an_unwritten_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let long = |n: &str| format!("registry.example.com/platform/team/{n}:1.2.3@{digest}");
        // :tag markers only: the digest of the selection reached no file.
        let changes: Vec<Change> = ["alpha", "beta"]
            .iter()
            .map(|n| {
                let mut c = change(&format!("team-a:{n}"), "1.2.3", "values.yaml");
                c.old = "1.2.2".into();
                c
            })
            .collect();
        let selections: BTreeMap<_, _> = changes
            .iter()
            .map(|c| {
                (
                    c.policy.clone(),
                    long(c.policy.name()).parse::<ImageRef>().unwrap(),
                )
            })
            .collect();
        let text = render(&Template::default(), "production-eu", &changes, &selections);
        let subject = text.lines().next().unwrap();
        assert_eq!(subject, "Update 2 images in production-eu");
        assert!(!text.contains("sha256:"), "{text}");

        let one = render(&Template::default(), "prod", &changes[..1], &selections);
        assert_eq!(
            one.lines().next().unwrap(),
            "Update registry.example.com/platform/team/alpha:1.2.3 in prod"
        );
    }

    #[test]
    fn a_digest_a_file_received_is_named_and_the_subject_is_cut_at_72() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let full = format!("ghcr.io/org/app:1.1.0@{digest}");
        let c = change("team-a:app", &full, "apps/a.yaml");
        let selections = BTreeMap::from([(c.policy.clone(), full.parse::<ImageRef>().unwrap())]);
        let template =
            Template::parse("Deploy {{images}} to {{target}} now\n\n{{changes}}").unwrap();
        let text = render(&template, "prod", std::slice::from_ref(&c), &selections);
        // Named, it would exceed 72; counted, it fits.
        assert_eq!(text.lines().next().unwrap(), "Deploy 1 image to prod now");
        assert!(
            text.contains(&digest),
            "the body keeps the full change: {text}"
        );
        let long_target = "t".repeat(100);
        let text = render(
            &template,
            &long_target,
            std::slice::from_ref(&c),
            &selections,
        );
        let subject = text.lines().next().unwrap();
        assert_eq!(subject.chars().count(), MAX_SUBJECT);
        assert!(subject.ends_with('…'));
        assert!(text.contains("- team-a:app:"), "the body stays: {text}");
    }

    #[test]
    fn tag_only_changes_are_named_by_their_full_selection() {
        let mut tag_change = change("team-a:worker", "2.1.3", "values.yaml");
        tag_change.old = "2.1.0".into();
        let selections = BTreeMap::from([(
            tag_change.policy.clone(),
            "ghcr.io/org/worker:2.1.3".parse::<ImageRef>().unwrap(),
        )]);
        let text = render(&Template::default(), "prod", &[tag_change], &selections);
        assert!(
            text.starts_with("Update ghcr.io/org/worker:2.1.3 in prod\n"),
            "{text}"
        );
        assert!(
            text.contains("- team-a:worker: 2.1.0 -> 2.1.3 (values.yaml:7)"),
            "{text}"
        );
    }

    #[test]
    fn flux_templates_see_files_under_update_path_objects_and_setters() {
        let after = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\nspec:\n  image: 1.1.0 # {\"$imagepolicy\": \"prod:web:tag\"}\n";
        let file = ChangedFile {
            path: PathBuf::from("clusters/prod/web.yaml"),
            before: crate::rewrite::walk::Before::Bytes(Vec::new()),
            after: after.as_bytes().to_vec(),
        };
        let mut c = change("prod:web", "1.1.0", "clusters/prod/web.yaml");
        c.old = "1.0.0".into();
        c.part = crate::rewrite::Part::Tag;
        let message = FluxMessage::new(
            "{{ range $f, $objs := .Changed.FileChanges }}{{ $f }}{{ range $o, $cs := $objs }} {{ $o.Kind }}/{{ $o.Namespace }}/{{ $o.Name }}{{ range $cs }} {{ .Setter }}: {{ .OldValue }} -> {{ .NewValue }}{{ end }}{{ end }}{{ end }}",
            "flux-system",
            "apps",
            BTreeMap::new(),
        )
        .unwrap();
        let text = render_flux(
            &message,
            &[PathBuf::from("clusters/prod")],
            std::slice::from_ref(&c),
            std::slice::from_ref(&file),
        )
        .unwrap();
        // The setter names the marker as written (image-automation-controller
        // internal/update/update_test.go: "automation-ns:policy:tag"); no newline is added.
        assert_eq!(
            text,
            "web.yaml Deployment/prod/web prod:web:tag: 1.0.0 -> 1.1.0"
        );
    }
}
