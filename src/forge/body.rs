//! Pure: the pull request's body and the decision between creating, updating and leaving it.

use std::collections::BTreeMap;

/// One line of the body's table: an image moved from one value to another in some files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRow {
    pub image: String,
    pub policy: String,
    pub old: String,
    pub new: String,
    pub files: Vec<String>,
}

/// Groups changes `(image, policy, old, new, file)` into rows, one per image and move, files
/// sorted, so that the same changes always give the same body.
pub fn rows<'a>(
    changes: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a str, &'a str)>,
) -> Vec<BodyRow> {
    let mut grouped: BTreeMap<(String, String, String, String), Vec<String>> = BTreeMap::new();
    for (image, policy, old, new, file) in changes {
        let files = grouped
            .entry((image.into(), policy.into(), old.into(), new.into()))
            .or_default();
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }
    grouped
        .into_iter()
        .map(|((image, policy, old, new), mut files)| {
            files.sort();
            BodyRow {
                image,
                policy,
                old,
                new,
                files,
            }
        })
        .collect()
}

/// Markdown table cells: a `|` would end the cell and a backtick the code span.
fn cell(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
}

/// A marker tagsmith leaves as a person rolled it back (from what tagsmith wrote to theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    pub policy: String,
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
}

pub fn render_body(target: &str, rows: &[BodyRow]) -> String {
    render_body_with_holds(target, rows, &[])
}

/// [`render_body`], saying also which markers are held and how to release them.
pub fn render_body_with_holds(target: &str, rows: &[BodyRow], held: &[HeldRow]) -> String {
    let mut out = format!(
        "tagsmith updates {} image reference(s) for target `{target}`.\n\n",
        rows.len()
    );
    out.push_str("| Image | Old -> New | Files | Policy |\n|---|---|---|---|\n");
    for row in rows {
        let files: Vec<String> = row.files.iter().map(|f| cell(f)).collect();
        out.push_str(&format!(
            "| {} | {} -> {} | {} | {} |\n",
            cell(&row.image),
            cell(&row.old),
            cell(&row.new),
            files.join("<br>"),
            cell(&row.policy)
        ));
    }
    if !held.is_empty() {
        out.push_str(&format!(
            "\nHeld: {} marker(s) a person rolled back are left as they are until the policy selects a newer tag than the one rolled back from, or until `tagsmith release POLICY` lifts the hold.\n\n| Policy | Rolled back | File |\n|---|---|---|\n",
            held.len()
        ));
        for h in held {
            out.push_str(&format!(
                "| {} | {} -> {} | {} |\n",
                cell(&h.policy),
                cell(&h.from),
                cell(&h.to),
                cell(&format!("{}:{}", h.file, h.line))
            ));
        }
    }
    out.push_str(&format!(
        "\nThis branch is owned by tagsmith and replaced on every update; commits pushed to it by others stop tagsmith from updating it.\n<!-- tagsmith:target={target} -->\n"
    ));
    out
}

/// What the pull request should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub title: String,
    pub body: String,
}

/// A pull request found for the head and base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub merged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Create,
    /// The open pull request; `None` fields need no write.
    Keep {
        number: u64,
        title: Option<String>,
        body: Option<String>,
    },
    /// A person closed a pull request with exactly these changes: do not open it again.
    LeaveClosed {
        number: u64,
    },
}

/// `open`: the open pull request for head and base; `closed`: the most recently closed one.
pub fn decide(open: Option<&Existing>, closed: Option<&Existing>, desired: &Desired) -> Plan {
    if let Some(pr) = open {
        return Plan::Keep {
            number: pr.number,
            title: (pr.title != desired.title).then(|| desired.title.clone()),
            body: (pr.body.trim_end() != desired.body.trim_end()).then(|| desired.body.clone()),
        };
    }
    match closed {
        // The body lists every change, so an equal body means nothing new since it was closed.
        Some(pr) if !pr.merged && pr.body.trim_end() == desired.body.trim_end() => {
            Plan::LeaveClosed { number: pr.number }
        }
        _ => Plan::Create,
    }
}

/// GitHub's GraphQL endpoint for a REST API base, as (origin, path): `/graphql` beside
/// `api.github.com`'s root, `/api/graphql` for GitHub Enterprise's `/api/v3`.
pub fn graphql_endpoint(api_url: &str) -> (String, String) {
    let base = api_url.trim_end_matches('/');
    let (origin, path) = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((host, path)) => (format!("{scheme}://{host}"), format!("/{path}")),
            None => (base.to_string(), String::new()),
        },
        None => (base.to_string(), String::new()),
    };
    let path = match path.strip_suffix("/api/v3") {
        Some(prefix) => format!("{prefix}/api/graphql"),
        None => format!("{path}/graphql"),
    };
    (origin, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_markers_are_listed_with_how_to_release_them() {
        let held = [HeldRow {
            policy: "team-a:app".into(),
            file: "apps/app.yaml".into(),
            line: 7,
            from: "1.3.0".into(),
            to: "1.2.0".into(),
        }];
        let body = render_body_with_holds("prod", &[], &held);
        assert!(
            body.contains("| `team-a:app` | `1.3.0` -> `1.2.0` | `apps/app.yaml:7` |"),
            "{body}"
        );
        assert!(body.contains("tagsmith release"), "{body}");
        assert!(!render_body("prod", &[]).contains("Held"));
    }

    fn sample() -> Vec<BodyRow> {
        rows([
            ("ghcr.io/org/app", "team-a:app", "1.0.0", "1.1.0", "b.yaml"),
            ("ghcr.io/org/app", "team-a:app", "1.0.0", "1.1.0", "a.yaml"),
            ("ghcr.io/org/app", "team-a:app", "1.0.0", "1.1.0", "a.yaml"),
            ("ghcr.io/org/db", "team-b:db", "v|1", "v2", "db.cue"),
        ])
    }

    #[test]
    fn rows_group_changes_per_image_and_sort_files() {
        let rows = sample();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].files, ["a.yaml", "b.yaml"]);
        assert_eq!(rows[1].policy, "team-b:db");
    }

    #[test]
    fn body_is_a_table_with_old_new_files_and_policy() {
        let body = render_body("prod", &sample());
        assert!(
            body.contains("| Image | Old -> New | Files | Policy |"),
            "{body}"
        );
        assert!(
            body.contains(
                "| `ghcr.io/org/app` | `1.0.0` -> `1.1.0` | `a.yaml`<br>`b.yaml` | `team-a:app` |"
            ),
            "{body}"
        );
        assert!(body.contains("`v\\|1` -> `v2`"), "{body}");
        assert_eq!(body, render_body("prod", &sample()));
    }

    fn desired() -> Desired {
        Desired {
            title: "t".into(),
            body: "b\n".into(),
        }
    }

    fn existing(number: u64, title: &str, body: &str, merged: bool) -> Existing {
        Existing {
            number,
            title: title.into(),
            body: body.into(),
            merged,
        }
    }

    #[test]
    fn decisions() {
        let d = desired();
        assert_eq!(decide(None, None, &d), Plan::Create);
        assert_eq!(
            decide(Some(&existing(4, "t", "b", false)), None, &d),
            Plan::Keep {
                number: 4,
                title: None,
                body: None
            }
        );
        assert_eq!(
            decide(Some(&existing(4, "old", "x", false)), None, &d),
            Plan::Keep {
                number: 4,
                title: Some("t".into()),
                body: Some("b\n".into())
            }
        );
        assert_eq!(
            decide(None, Some(&existing(3, "t", "b\n", false)), &d),
            Plan::LeaveClosed { number: 3 }
        );
        assert_eq!(
            decide(None, Some(&existing(3, "t", "other", false)), &d),
            Plan::Create
        );
        assert_eq!(
            decide(None, Some(&existing(3, "t", "b\n", true)), &d),
            Plan::Create
        );
    }

    #[test]
    fn graphql_endpoints() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            graphql_endpoint("https://api.github.com"),
            pair("https://api.github.com", "/graphql")
        );
        assert_eq!(
            graphql_endpoint("https://ghe.example.com/api/v3/"),
            pair("https://ghe.example.com", "/api/graphql")
        );
        assert_eq!(
            graphql_endpoint("http://127.0.0.1:8080"),
            pair("http://127.0.0.1:8080", "/graphql")
        );
    }
}
