//! `notify:` sinks and a target's `push.status`: validated settings for the messages tagsmith
//! sends about what it did. Plain data; `crate::notify` sends them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::pull_request::DEFAULT_API_URL;
use super::{GitAuth, GitHubAuth, PullRequestSettings, Secret, Validator, raw, repository_from};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A commit reached the branch, or a pull request was opened or updated.
    Delivered,
    /// A run failed; the schedule retries it with backoff.
    Failed,
    /// A run failed in a way retrying will not fix (credentials, a person's commit on the
    /// branch): nothing happens until something changes.
    Stalled,
    /// A gate holds a change back from delivery.
    Held,
}

impl EventKind {
    pub const ALL: [Self; 4] = [Self::Delivered, Self::Failed, Self::Stalled, Self::Held];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Stalled => "stalled",
            Self::Held => "held",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event {s:?}: use delivered, failed, stalled or held"))
    }
}

/// The body a generic webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// The event as a JSON object.
    #[default]
    Json,
    /// A CloudEvents 1.0 event in structured mode (`application/cloudevents+json`).
    CloudEvents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams workflow (Power Automate) webhook.
    Teams,
    Webhook {
        format: WebhookFormat,
        /// The HMAC-SHA256 key for the `X-Tagsmith-Signature` header.
        signing_key: Option<Secret>,
    },
}

impl SinkKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Webhook { .. } => "webhook",
        }
    }
}

/// One `notify:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    /// Where the webhook URL is read from (it is a credential: never logged).
    pub url: Secret,
    pub events: BTreeSet<EventKind>,
    /// `None`: every target.
    pub targets: Option<BTreeSet<String>>,
}

impl Sink {
    pub fn wants(&self, kind: EventKind, target: &str) -> bool {
        self.events.contains(&kind) && self.targets.as_ref().is_none_or(|t| t.contains(target))
    }
}

/// `push.status: true`: where the GitHub commit status on a delivered commit is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    pub auth: GitHubAuth,
}

impl Validator<'_> {
    pub(super) fn sink(
        &mut self,
        raw: raw::RawSink,
        names: &mut BTreeSet<String>,
        targets: &BTreeSet<String>,
    ) -> Option<Sink> {
        let before = self.problems.len();
        let name = self.unique_name("notify sink", &raw.name, names);
        let url = match (raw.url_env, raw.url_file) {
            (Some(env), None) => Some(Secret::Env(env)),
            (None, Some(file)) => Some(Secret::File(self.resolve(&file))),
            (Some(_), Some(_)) => {
                self.problem(
                    &raw.name,
                    format!("notify sink {name}: give urlEnv or urlFile, not both"),
                );
                None
            }
            (None, None) => {
                self.problem(
                    &raw.name,
                    format!("notify sink {name}: needs urlEnv or urlFile (a webhook URL is a credential, so it is not written in the config)"),
                );
                None
            }
        };
        let signing_key = match (raw.secret_env, raw.secret_file) {
            (Some(env), None) => Some(Secret::Env(env)),
            (None, Some(file)) => Some(Secret::File(self.resolve(&file))),
            (Some(_), Some(_)) => {
                self.problem(
                    &raw.name,
                    format!("notify sink {name}: give secretEnv or secretFile, not both"),
                );
                None
            }
            (None, None) => None,
        };
        let format = match raw.format.as_ref().map(|f| f.value.as_str()) {
            None | Some("json") => WebhookFormat::Json,
            Some("cloudevents") => WebhookFormat::CloudEvents,
            Some(other) => {
                if let Some(at) = &raw.format {
                    self.problem(
                        at,
                        format!("notify sink {name}: format {other:?}: use json or cloudevents"),
                    );
                }
                WebhookFormat::Json
            }
        };
        let kind = match raw.kind.value.as_str() {
            "slack" | "teams" => {
                let webhook_only = [
                    ("secretEnv/secretFile", signing_key.is_some()),
                    ("format", raw.format.is_some()),
                ];
                for (key, given) in webhook_only {
                    if given {
                        self.problem(
                            &raw.kind,
                            format!("notify sink {name}: {key} is only for type webhook"),
                        );
                    }
                }
                if raw.kind.value == "slack" {
                    Some(SinkKind::Slack)
                } else {
                    Some(SinkKind::Teams)
                }
            }
            "webhook" => Some(SinkKind::Webhook {
                format,
                signing_key,
            }),
            other => {
                self.problem(
                    &raw.kind,
                    format!("notify sink {name}: type {other:?}: use slack, teams or webhook"),
                );
                None
            }
        };
        let events = match &raw.events {
            None => EventKind::ALL.into_iter().collect(),
            Some(list) => {
                let events: BTreeSet<EventKind> = list
                    .iter()
                    .filter_map(|e| {
                        e.value
                            .parse()
                            .map_err(|m: String| {
                                self.problem(e, format!("notify sink {name}: {m}"))
                            })
                            .ok()
                    })
                    .collect();
                if list.is_empty() {
                    self.problem(
                        &raw.name,
                        format!(
                            "notify sink {name}: events is empty; leave it out for every event"
                        ),
                    );
                }
                events
            }
        };
        let wanted = raw.targets.as_ref().map(|list| {
            list.iter()
                .filter(|t| {
                    let known = targets.contains(&t.value);
                    if !known {
                        self.problem(
                            *t,
                            format!("notify sink {name}: no target named {:?}", t.value),
                        );
                    }
                    known
                })
                .map(|t| t.value.clone())
                .collect()
        });
        if self.problems.len() > before {
            return None;
        }
        Some(Sink {
            name,
            kind: kind?,
            url: url?,
            events,
            targets: wanted,
        })
    }

    /// `push.status: true`: through the pull request's GitHub settings, or for a direct push to
    /// github.com through the target's Git token (a token is a GitHub credential there).
    pub(super) fn commit_status(
        &mut self,
        target: &str,
        git_url: &str,
        git_auth: &GitAuth,
        pull_request: Option<&PullRequestSettings>,
    ) -> Option<CommitStatus> {
        if let Some(pr) = pull_request {
            if pr.forge != super::ForgeKind::GitHub {
                self.problem_here(format!(
                    "target {target}: push.status sets a GitHub commit status; {} pull requests have none here",
                    pr.forge
                ));
                return None;
            }
            return Some(CommitStatus {
                api_url: pr.api_url.clone(),
                owner: pr.owner.clone(),
                repo: pr.repo.clone(),
                auth: pr.auth.clone(),
            });
        }
        let on_github = git_url.starts_with("https://github.com/");
        match (on_github, repository_from(git_url), &git_auth.password) {
            (true, Some((owner, repo)), Some(token)) => Some(CommitStatus {
                api_url: DEFAULT_API_URL.to_string(),
                owner,
                repo,
                auth: GitHubAuth::Token(token.clone()),
            }),
            _ => {
                self.problem_here(format!(
                    "target {target}: push.status needs push.pullRequest (its GitHub settings), or an https://github.com/ git.url with auth.tokenEnv or auth.tokenFile"
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(notify: &str, push: &str) -> String {
        let text = format!(
            "targets:\n  - name: prod\n    git: {{ url: 'file:///m.git' }}\n{push}notify:\n{notify}"
        );
        match crate::config::Config::parse(&text, std::path::Path::new("t.yaml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_sinks_are_reported_with_their_place() {
        let cases = [
            (
                "  - { name: a, type: email, urlEnv: U }\n",
                "t.yaml:5:",
                "type \"email\": use slack, teams or webhook",
            ),
            (
                "  - { name: a, type: slack }\n",
                "t.yaml:5:",
                "needs urlEnv or urlFile",
            ),
            (
                "  - { name: a, type: slack, urlEnv: U, urlFile: f }\n",
                "t.yaml:5:",
                "not both",
            ),
            (
                "  - { name: a, type: teams, urlEnv: U, secretEnv: K }\n",
                "t.yaml:5:",
                "secretEnv/secretFile is only for type webhook",
            ),
            (
                "  - { name: a, type: webhook, urlEnv: U, format: xml }\n",
                "t.yaml:5:",
                "format \"xml\"",
            ),
            (
                "  - { name: a, type: webhook, urlEnv: U, events: [pushed] }\n",
                "t.yaml:5:",
                "unknown event \"pushed\"",
            ),
            (
                "  - { name: a, type: webhook, urlEnv: U, targets: [nope] }\n",
                "t.yaml:5:",
                "no target named \"nope\"",
            ),
            (
                "  - { name: a, type: slack, urlEnv: U }\n  - { name: a, type: slack, urlEnv: U }\n",
                "t.yaml:6:",
                "defined twice",
            ),
        ];
        for (notify, place, message) in cases {
            let text = problems(notify, "");
            assert!(
                text.contains(place) && text.contains(message),
                "{notify}: {text}"
            );
        }
        assert_eq!(
            problems(
                "  - { name: a, type: webhook, urlEnv: U, secretFile: k, format: cloudevents, events: [failed], targets: [prod] }\n",
                ""
            ),
            ""
        );
    }

    #[test]
    fn a_commit_status_needs_github_settings() {
        let text = problems("  []\n", "    push: { status: true }\n");
        assert!(
            text.contains("push.status needs push.pullRequest"),
            "{text}"
        );
    }

    #[test]
    fn event_names_round_trip_and_unknown_ones_are_named() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        let err = "pushed".parse::<EventKind>().unwrap_err();
        assert!(
            err.contains("\"pushed\"") && err.contains("delivered"),
            "{err}"
        );
    }
}
