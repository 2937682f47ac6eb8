//! `GET /` on the admin address: the service's status as a page people can read. Rendered on
//! the server from the same view `/status` serialises, readable without JavaScript; a few
//! lines of script add live filtering and sortable columns.
//!
//! Everything shown comes from registries, repositories and files (tags, error messages, file
//! paths), so every value goes through [`escape`]; the view holds no secrets (credentials,
//! webhook URLs never enter it).

use std::fmt::Write as _;

use crate::status::{ImageStatus, StatusView, TargetStatus};

/// What the query string asks for: `?filter=team-a` (policy or target name prefix, also
/// matched against image names) and `?target=prod` (one target's row only: a deep link).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageQuery {
    pub filter: Option<String>,
    pub target: Option<String>,
}

/// Seconds between the page's own reloads.
const REFRESH_SECONDS: u32 = 10;

pub fn render(view: &StatusView, query: &PageQuery) -> String {
    let filter = query.filter.as_deref().unwrap_or("").trim();
    let images: Vec<&ImageStatus> = view
        .images
        .iter()
        .filter(|i| matches(filter, &[&i.policy, &i.image]))
        .collect();
    let targets: Vec<&TargetStatus> = view
        .targets
        .iter()
        .filter(|t| query.target.as_deref().is_none_or(|name| t.name == name))
        .filter(|t| matches(filter, &[&t.name]))
        .collect();
    let mut page = String::with_capacity(4096 + 512 * (images.len() + targets.len()));
    head(&mut page, view, filter);
    image_table(&mut page, &images, view.images.len());
    target_table(&mut page, &targets, view.targets.len());
    page.push_str(SCRIPT);
    page.push_str("</body>\n</html>\n");
    page
}

/// A prefix of the namespace or name, case-insensitive; empty matches everything.
fn matches(filter: &str, fields: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let filter = filter.to_lowercase();
    fields.iter().any(|f| {
        let f = f.to_lowercase();
        f.starts_with(&filter) || f.split([':', '/']).any(|part| part.starts_with(&filter))
    })
}

fn head(page: &mut String, view: &StatusView, filter: &str) {
    let failing = view.images.iter().filter(|i| i.error.is_some()).count()
        + view.targets.iter().filter(|t| t.error.is_some()).count();
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>tagsmith{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>tagsmith</h1><p>Running since {}: {} images, {} targets{}. \
         This page reloads every {REFRESH_SECONDS} s.</p></header>\n\
         <form class=\"filter\" method=\"get\" action=\"/\"><label>Filter by team, policy or \
         target <input id=\"filter\" name=\"filter\" value=\"{}\" placeholder=\"team-a\" \
         autocomplete=\"off\"></label> <button type=\"submit\">Filter</button></form>\n",
        if failing > 0 { " (failing)" } else { "" },
        time(Some(&view.started_at)),
        view.images.len(),
        view.targets.len(),
        if failing > 0 {
            format!(", <strong class=\"bad\">{failing} failing</strong>")
        } else {
            String::new()
        },
        escape(filter),
    );
}

fn image_table(page: &mut String, images: &[&ImageStatus], total: usize) {
    let _ = write!(
        page,
        "<h2>Images <small>({} of {total})</small></h2>\n<table id=\"images\" class=\"sortable\">\n\
         <thead><tr><th>Policy</th><th>Image</th><th>Selected</th><th>Digest</th>\
         <th>Changed</th><th>Tags</th><th>Last scan</th><th>Result</th><th>Next scan</th><th>Failures</th><th>Last error</th>\
         <th></th></tr></thead>\n<tbody>\n",
        images.len()
    );
    for image in images {
        let failing = image.error.is_some();
        let _ = writeln!(
            page,
            "<tr class=\"{}\" data-filter=\"{}\"><td>{}</td><td>{}</td><td>{}</td>\
             <td><code>{}</code></td><td class=\"changed\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td>\
             <td><form method=\"post\" action=\"/scan?image={}&amp;back=1\">\
             <button type=\"submit\">Scan now</button></form></td></tr>",
            if failing { "failing" } else { "ok" },
            escape(&format!("{} {}", image.policy, image.image)),
            escape(&image.policy),
            escape(&image.image),
            opt(image
                .selected
                .as_deref()
                .map(|s| s.split_once('@').map_or(s, |(tag, _)| tag))),
            short_digest(image.digest.as_deref()),
            time(image.changed_at.as_deref()),
            image.tags.map(|n| n.to_string()).unwrap_or_default(),
            time(image.last_scan.as_deref()),
            if failing {
                "<span class=\"bad\">failing</span>"
            } else if image.suspended {
                "suspended"
            } else if image.last_success.is_some() {
                "ok"
            } else {
                "not yet"
            },
            time(image.next_scan.as_deref()),
            image.failures,
            opt(image.error.as_deref()),
            query_escape(&image.image),
        );
    }
    page.push_str("</tbody>\n</table>\n");
}

fn target_table(page: &mut String, targets: &[&TargetStatus], total: usize) {
    let _ = write!(
        page,
        "<h2>Targets <small>({} of {total})</small></h2>\n<table id=\"targets\" class=\"sortable\">\n\
         <thead><tr><th>Target</th><th>Last run</th><th>Outcome</th><th>Commit or PR</th>\
         <th>Pending</th><th>Pending changes</th><th>Next run</th><th>Schedule</th><th>Failures</th><th>Problems</th>\
         </tr></thead>\n<tbody>\n",
        targets.len()
    );
    for target in targets {
        let failing = target.error.is_some() || target.stalled;
        let pending = match (target.pending, target.reason.as_deref()) {
            (true, Some(reason)) => format!("yes ({})", escape(reason)),
            (true, None) => "yes".to_owned(),
            (false, _) if target.running => "running".to_owned(),
            (false, _) => String::new(),
        };
        let mut problems = String::new();
        if let Some(error) = &target.error {
            let _ = write!(
                problems,
                "<p class=\"error\">{}{}</p>",
                if target.stalled { "stalled: " } else { "" },
                escape(error)
            );
        }
        if !target.problems.is_empty() {
            problems.push_str("<ul class=\"problems\">");
            for problem in &target.problems {
                let _ = write!(problems, "<li>{}</li>", escape(problem));
            }
            problems.push_str("</ul>");
        }
        if !target.holds.is_empty() {
            problems.push_str("<ul class=\"holds\">");
            for h in &target.holds {
                let _ = write!(
                    problems,
                    "<li>held: <span class=\"policy\">{}</span> left at <code>{}</code> \
                     (rolled back from <code>{}</code>) <span class=\"file\">{}:{}</span></li>",
                    escape(&h.policy),
                    escape(&h.to),
                    escape(&h.from),
                    escape(&h.file),
                    h.line
                );
            }
            problems.push_str("</ul>");
        }
        let _ = writeln!(
            page,
            "<tr id=\"target-{}\" class=\"{}\" data-filter=\"{}\"><td><a href=\"/?target={}\">{}</a>\
             <br><small class=\"repo\">{} <code>{}</code></small></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{pending}</td><td class=\"changes\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{problems}</td></tr>",
            escape(&target.name),
            if failing { "failing" } else { "ok" },
            escape(&target.name),
            query_escape(&target.name),
            escape(&target.name),
            escape(&target.repository),
            escape(&target.branch),
            time(target.last_run.as_deref()),
            opt(target.outcome.as_deref()),
            delivery_link(target),
            pending_changes(target),
            time(target.next_run.as_deref()),
            opt(target.schedule.as_deref()),
            target.failures,
        );
    }
    page.push_str("</tbody>\n</table>\n");
}

fn opt(value: Option<&str>) -> String {
    value.map(escape).unwrap_or_default()
}

/// The pull request as a link when the target delivers by one, otherwise the commit id.
fn delivery_link(target: &TargetStatus) -> String {
    match target.pull_request.as_deref() {
        // Only web links: a `javascript:` URL from a forge's answer must not become one.
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            let label = url.rsplit_once('/').map_or(url, |(_, n)| n);
            format!(
                "<a class=\"pr\" href=\"{}\" rel=\"noreferrer\">PR #{}</a>",
                escape(url),
                escape(label)
            )
        }
        Some(url) => escape(url),
        None => format!("<code>{}</code>", short_commit(target.commit.as_deref())),
    }
}

/// One line per marker that would move: `policy: old -> new` and where.
fn pending_changes(target: &TargetStatus) -> String {
    if target.pending_changes.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"changes\">");
    for c in &target.pending_changes {
        let _ = write!(
            out,
            "<li><span class=\"policy\">{}</span>: <code>{}</code> -&gt; <code>{}</code> \
             <span class=\"file\">{}:{}</span></li>",
            escape(&c.policy),
            escape(&c.old),
            escape(&c.new),
            escape(&c.file),
            c.line
        );
    }
    out.push_str("</ul>");
    out
}

/// `sha256:` and the first 12 hex digits, with the full digest on hover.
fn short_digest(digest: Option<&str>) -> String {
    digest
        .map(|d| {
            let short: String = d.chars().take(19).collect();
            format!("<span title=\"{}\">{}</span>", escape(d), escape(&short))
        })
        .unwrap_or_default()
}

/// The first 12 hex digits, with the full id on hover.
fn short_commit(commit: Option<&str>) -> String {
    commit
        .map(|c| {
            let short: String = c.chars().take(12).collect();
            format!("<span title=\"{}\">{}</span>", escape(c), escape(&short))
        })
        .unwrap_or_default()
}

/// An RFC 3339 time as `2026-01-01 10:53:50`, with the exact value as a machine-readable
/// attribute (UTC throughout, as `/status` has it).
fn time(value: Option<&str>) -> String {
    let Some(value) = value else {
        return String::new();
    };
    let short: String = value.replacen('T', " ", 1).chars().take(19).collect();
    format!(
        "<time datetime=\"{}\" title=\"{} UTC\">{}</time>",
        escape(value),
        escape(value),
        escape(&short)
    )
}

/// HTML text and attribute values: the five characters that can end either.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value inside an HTML attribute: percent-encoded, so it can hold neither `&`
/// nor a quote.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24}\
table{border-collapse:collapse;width:100%;margin-bottom:2rem;font-size:.8rem}\
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa;cursor:pointer;user-select:none}time{white-space:nowrap}\
tr.failing td:first-child{border-left:4px solid #cf222e}\
tr.ok td:first-child{border-left:4px solid #2da44e}\
td:first-child,td:nth-child(2){white-space:nowrap}td.error{min-width:12rem;max-width:26rem;overflow-wrap:anywhere}\
.bad,.error{color:#cf222e}.problems,.changes{margin:0;padding-left:1rem}\
td.changes{overflow-wrap:anywhere;min-width:16rem;max-width:30rem}.file{color:#57606a}\
.filter{margin:1rem 0}small{color:#57606a;font-weight:normal}";

/// Live filtering as one types and sorting by a column header; the page works without it.
const SCRIPT: &str = "<script>\n\
(function(){\n\
var box=document.getElementById('filter');\n\
function apply(){var f=box.value.trim().toLowerCase();\
document.querySelectorAll('tr[data-filter]').forEach(function(r){\
var words=r.getAttribute('data-filter').toLowerCase().split(/[\\s:\\/]+/);\
r.hidden=f!==''&&!words.some(function(w){return w.indexOf(f)===0;})&&\
r.getAttribute('data-filter').toLowerCase().indexOf(f)!==0;});}\n\
box.addEventListener('input',apply);\n\
document.querySelectorAll('table.sortable th').forEach(function(th,i){\
th.addEventListener('click',function(){var body=th.closest('table').tBodies[0];\
var asc=th.getAttribute('data-asc')!=='1';th.setAttribute('data-asc',asc?'1':'0');\
Array.from(body.rows).sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent;\
var n=parseFloat(x)-parseFloat(y);var c=isNaN(n)?x.localeCompare(y):n;return asc?c:-c;})\
.forEach(function(r){body.appendChild(r);});});});\n\
})();\n\
</script>\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> StatusView {
        StatusView {
            started_at: "2026-01-01T00:00:00.000Z".into(),
            images: vec![
                ImageStatus {
                    policy: "team-a:app".into(),
                    image: "127.0.0.1:5000/team-a/app".into(),
                    selected: Some("1.2.0".into()),
                    last_success: Some("2026-01-01T00:00:01.000Z".into()),
                    ..ImageStatus::default()
                },
                ImageStatus {
                    policy: "team-b:api".into(),
                    image: "127.0.0.1:5000/team-b/api".into(),
                    error: Some("registry said <script>alert(1)</script>".into()),
                    failures: 3,
                    ..ImageStatus::default()
                },
            ],
            targets: vec![
                TargetStatus {
                    name: "prod".into(),
                    repository: "https://git.example.com/<org>/fleet.git".into(),
                    branch: "main".into(),
                    pending: true,
                    reason: Some("selection changed".into()),
                    problems: vec!["apps/<script>alert(1)</script>.yaml:3: unknown policy".into()],
                    pending_changes: vec![crate::status::PendingChange {
                        policy: "team-a:app".into(),
                        file: "apps/<b>.yaml".into(),
                        line: 4,
                        old: "1.0.0".into(),
                        new: "1.2.0".into(),
                    }],
                    ..TargetStatus::default()
                },
                TargetStatus {
                    name: "pr".into(),
                    commit: Some("0123456789abcdef".into()),
                    pull_request: Some("https://forge.example/o/r/pull/12?a=\"x\"".into()),
                    ..TargetStatus::default()
                },
                TargetStatus {
                    name: "odd".into(),
                    pull_request: Some("javascript:alert(1)".into()),
                    ..TargetStatus::default()
                },
            ],
            ..StatusView::default()
        }
    }

    #[test]
    fn untrusted_values_are_escaped() {
        let page = render(&view(), &PageQuery::default());
        assert!(!page.contains("<script>alert(1)"), "{page}");
        assert!(page.contains("registry said &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("apps/&lt;script&gt;alert(1)&lt;/script&gt;.yaml:3"));
        assert!(page.contains("https://git.example.com/&lt;org&gt;/fleet.git <code>main</code>"));
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn filter_keeps_matching_rows_and_target_links_deep() {
        let q = PageQuery {
            filter: Some("team-b".into()),
            target: None,
        };
        let page = render(&view(), &q);
        assert!(page.contains("team-b:api"));
        assert!(!page.contains("team-a:app"));
        assert!(page.contains("value=\"team-b\""));
        let q = PageQuery {
            filter: None,
            target: Some("staging".into()),
        };
        let page = render(&view(), &q);
        assert!(!page.contains("id=\"target-prod\""));
        assert!(page.contains("Targets <small>(0 of 3)</small>"));
    }

    #[test]
    fn pending_changes_links_digests_and_change_times_are_shown() {
        let mut v = view();
        v.images[0].selected = Some(format!(
            "127.0.0.1:5000/team-a/app:1.2.0@sha256:{}",
            "ab".repeat(32)
        ));
        v.images[0].digest = Some(format!("sha256:{}", "ab".repeat(32)));
        v.images[0].changed_at = Some("2026-01-01T00:00:05.000Z".into());
        let page = render(&v, &PageQuery::default());
        assert!(
            page.contains("<code>1.0.0</code> -&gt; <code>1.2.0</code> <span class=\"file\">apps/&lt;b&gt;.yaml:4</span>"),
            "{page}"
        );
        assert!(
            page.contains("<td>127.0.0.1:5000/team-a/app:1.2.0</td>"),
            "the tag apart from its digest"
        );
        assert!(page.contains(">sha256:abababababab</span>"));
        assert!(page.contains("<td class=\"changed\"><time datetime=\"2026-01-01T00:00:05.000Z\""));
        assert!(page.contains(
            "<a class=\"pr\" href=\"https://forge.example/o/r/pull/12?a=&quot;x&quot;\" rel=\"noreferrer\">"
        ));
        assert!(!page.contains("href=\"javascript:"), "only web links");
        assert!(page.contains("javascript:alert(1)"), "shown as text");
    }

    #[test]
    fn holds_and_suspended_images_are_shown() {
        let mut v = view();
        v.images[0].suspended = true;
        v.images[0].last_success = None;
        v.targets[0].holds = vec![crate::status::HoldStatus {
            policy: "team-a:app".into(),
            marker: "team-a:app:tag".into(),
            file: "apps/<i>.yaml".into(),
            line: 9,
            from: "1.3.0".into(),
            to: "1.2.0".into(),
            since: None,
        }];
        let page = render(&v, &PageQuery::default());
        assert!(
            page.contains("held: <span class=\"policy\">team-a:app</span> left at <code>1.2.0</code> (rolled back from <code>1.3.0</code>) <span class=\"file\">apps/&lt;i&gt;.yaml:9</span>"),
            "{page}"
        );
        assert!(page.contains("<td>suspended</td>"), "{page}");
    }

    #[test]
    fn escape_and_query_escape_cover_what_ends_a_value() {
        assert_eq!(
            escape(r#"<a href="x" b='y'>&"#),
            "&lt;a href=&quot;x&quot; b=&#39;y&#39;&gt;&amp;"
        );
        assert_eq!(query_escape("a b&c\"d"), "a%20b%26c%22d");
        assert_eq!(query_escape("ghcr.io/org/app"), "ghcr.io/org/app");
    }
}
