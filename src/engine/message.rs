//! Commit messages from the changes a run made (pure).

use std::collections::BTreeMap;

use crate::config::Template;
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::Change;

/// Above this many images the subject says how many instead of naming them.
const NAMED_IN_SUBJECT: usize = 3;

/// `selections` name each image in full: a `:tag` marker's change alone says only the tag.
pub fn render(
    template: &Template,
    target: &str,
    changes: &[Change],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> String {
    // Each policy's new reference once, in policy order.
    let mut images: BTreeMap<&PolicyId, String> = BTreeMap::new();
    for change in changes {
        images.entry(&change.policy).or_insert_with(|| {
            selections
                .get(&change.policy)
                .map_or_else(|| change.new.clone(), ToString::to_string)
        });
    }
    let image_list = if images.len() > NAMED_IN_SUBJECT {
        format!("{} images", images.len())
    } else {
        images.values().cloned().collect::<Vec<_>>().join(", ")
    };
    let change_lines = changes
        .iter()
        .map(|c| {
            format!(
                "- {}: {} -> {} ({}:{})",
                c.policy,
                c.old,
                c.new,
                c.file.display(),
                c.line
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut text = template.render(|var| match var {
        "target" => target.to_string(),
        "count" => changes.len().to_string(),
        "images" => image_list.clone(),
        _ => change_lines.clone(),
    });
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
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
    fn many_images_are_counted_in_the_subject() {
        let changes: Vec<_> = (0..4)
            .map(|i| change(&format!("team-a:app{i}"), &format!("x:{i}"), "a.yaml"))
            .collect();
        let text = render(&Template::default(), "prod", &changes, &BTreeMap::new());
        assert!(text.starts_with("Update 4 images in prod\n"), "{text}");
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
}
