//! Commit messages from the changes a run made (pure).

use std::collections::BTreeMap;

use crate::config::Template;
use crate::rewrite::Change;

/// Above this many images the subject says how many instead of naming them.
const NAMED_IN_SUBJECT: usize = 3;

pub fn render(template: &Template, target: &str, changes: &[Change]) -> String {
    // Each policy's new value once, in policy order.
    let mut images: BTreeMap<String, &str> = BTreeMap::new();
    for change in changes {
        images
            .entry(change.policy.to_string())
            .or_insert(&change.new);
    }
    let image_list = if images.len() > NAMED_IN_SUBJECT {
        format!("{} images", images.len())
    } else {
        images.values().copied().collect::<Vec<_>>().join(", ")
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
        let text = render(&Template::default(), "prod", &changes);
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
        let text = render(&Template::default(), "prod", &changes);
        assert!(text.starts_with("Update 4 images in prod\n"), "{text}");
    }
}
