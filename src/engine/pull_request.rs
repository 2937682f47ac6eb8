//! Delivery through a GitHub pull request: the update is computed on top of the current base,
//! committed on the head branch tagsmith owns (replaced with a lease, never over someone else's
//! commits), and the one pull request for head and base is opened or brought up to date.
//! Blocking like the rest of a target run; API calls run on the caller's tokio runtime.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use super::message;
use super::target::{Outcome, TargetReport, TargetRun, rewrite, to_deliver};
use super::{ChangeReport, SelectionSet};
use crate::config::{GitAuth, GitHubAuth, GitSource, PullRequestSettings, Secret, Username};
use crate::forge::{
    Desired, Existing, ForgeError, GitHub, Plan, PullRequestView, decide, render_body, rows,
};
use crate::git::{GitError, Workspace};
use crate::rewrite::ScanCache;

/// Pushes lost to a concurrent writer before giving up for this cycle.
const MAX_PUSH_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestAction {
    Created,
    /// New head commit, or new title or body.
    Updated,
    /// The open pull request already says and holds all of it: nothing pushed, nothing written.
    Unchanged,
    /// A person closed a pull request with these very changes: not reopened, none opened.
    LeftClosed,
}

impl PullRequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::LeftClosed => "left_closed",
        }
    }
}

#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(
        "branch {branch} holds commits tagsmith did not write ({foreign}); not overwriting them: merge or close the pull request, or delete the branch"
    )]
    ForeignCommits {
        branch: String,
        foreign: crate::git::ForeignCommit,
    },
    #[error("cannot start the async runtime: {message}")]
    Runtime { message: String },
    #[error("cannot hand the installation token to git through {path}: {message}", path = path.display())]
    TokenFile { path: PathBuf, message: String },
}

impl DeliveryError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Git(e) => e.is_transient(),
            Self::Forge(e) => e.is_transient(),
            Self::ForeignCommits { .. } | Self::Runtime { .. } | Self::TokenFile { .. } => false,
        }
    }
}

/// The caller's runtime when there is one (target runs sit on `spawn_blocking`), else our own.
enum Runtime {
    Handle(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl Runtime {
    fn get() -> Result<Self, DeliveryError> {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return Ok(Self::Handle(handle));
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(Self::Own)
            .map_err(|e| DeliveryError::Runtime {
                message: e.to_string(),
            })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Self::Handle(h) => h.block_on(f),
            Self::Own(rt) => rt.block_on(f),
        }
    }
}

fn existing(pr: &PullRequestView) -> Existing {
    Existing {
        number: pr.number,
        title: pr.title.clone(),
        body: pr.body.clone(),
        merged: pr.merged,
    }
}

/// The body's table from the changes and the images their policies watch.
pub fn body(target: &str, changes: &[ChangeReport], selections: &SelectionSet) -> String {
    let image = |policy: &str| {
        selections
            .reports
            .iter()
            .find(|r| r.policy == policy)
            .map(|r| r.image.as_str())
            .unwrap_or("?")
    };
    let table = rows(changes.iter().map(|c| {
        (
            image(&c.policy),
            c.policy.as_str(),
            c.old.as_str(),
            c.new.as_str(),
            c.file.as_str(),
        )
    }));
    render_body(target, &table)
}

/// A GitHub App has no long-lived Git credential: without `git.auth`, Git uses the app's
/// installation token (user `x-access-token`, as GitHub documents). The workspace reads its
/// credentials once when opened, so the token sits on disk (owner-only) just for that moment.
fn open_with_installation_token(
    run: &TargetRun<'_>,
    gh: &GitHub,
    rt: &Runtime,
) -> Result<Workspace, DeliveryError> {
    let token = rt.block_on(gh.token())?;
    let name = format!(
        ".{}.git-token",
        run.workspace
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    let path = run.workspace.parent().unwrap_or(Path::new(".")).join(name);
    let file_err = |e: std::io::Error| DeliveryError::TokenFile {
        path: path.clone(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_err)?;
    }
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(file_err)?;
        file.write_all(octocrab::secrecy::ExposeSecret::expose_secret(&token).as_bytes())
            .map_err(file_err)?;
    }
    let source = GitSource {
        auth: GitAuth {
            username: Some(Username::Literal("x-access-token".into())),
            password: Some(Secret::File(path.clone())),
            ssh: None,
        },
        ..run.target.git.clone()
    };
    let opened = Workspace::open(&run.workspace, &source);
    let removed = std::fs::remove_file(&path);
    let ws = opened?;
    removed.map_err(file_err)?;
    Ok(ws)
}

pub(super) fn attempt(
    run: &TargetRun<'_>,
    settings: &PullRequestSettings,
    report: &mut TargetReport,
    cache: &ScanCache,
) -> Result<(), DeliveryError> {
    let target = run.target;
    let mut github: Option<GitHub> = None;
    let mut runtime: Option<Runtime> = None;
    let app_token_for_git =
        matches!(settings.auth, GitHubAuth::App { .. }) && target.git.auth.password.is_none();
    let mut ws = if app_token_for_git {
        let rt = runtime.insert(Runtime::get()?);
        let gh = github.insert(rt.block_on(GitHub::connect(settings))?);
        open_with_installation_token(run, gh, rt)?
    } else {
        Workspace::open(&run.workspace, &target.git)?
    };
    ws.sign_commits_with(target.signing_key.clone());
    loop {
        let synced = ws.sync_onto_base(&settings.base, &settings.branch)?;
        let tree = rewrite(run, &ws, cache)?;
        // Unchanged is also the case once the pull request is merged: nothing to push, nothing
        // to close.
        if !to_deliver(run, &tree, report) {
            if run.dry_run {
                ws.sync_onto_base(&settings.base, &settings.branch)?;
            }
            return Ok(());
        }
        if let Some(head) = synced.push_head
            && let Some(foreign) =
                ws.foreign_commit(&settings.branch, head, synced.base, &target.author)?
        {
            return Err(DeliveryError::ForeignCommits {
                branch: settings.branch.clone(),
                foreign,
            });
        }
        let rt = match &runtime {
            Some(rt) => rt,
            None => runtime.insert(Runtime::get()?),
        };
        let gh = match &github {
            Some(gh) => gh,
            None => github.insert(rt.block_on(GitHub::connect(settings))?),
        };
        let desired = Desired {
            title: settings.title.clone(),
            body: body(&target.name, &report.changes, run.selections),
        };
        let open = rt
            .block_on(gh.find(&settings.branch, &settings.base, "open"))?
            .into_iter()
            .next();
        let closed = match open {
            Some(_) => None,
            None => rt
                .block_on(gh.find(&settings.branch, &settings.base, "closed"))?
                .into_iter()
                .next(),
        };
        let plan = decide(
            open.as_ref().map(existing).as_ref(),
            closed.as_ref().map(existing).as_ref(),
            &desired,
        );
        if let (Plan::LeaveClosed { number }, Some(pr)) = (&plan, &closed) {
            tracing::info!(target = %target.name, number, "pull request was closed with these changes; not opening it again");
            report.outcome = Outcome::PullRequest {
                number: *number,
                url: pr.url.clone(),
                action: PullRequestAction::LeftClosed,
                branch: settings.branch.clone(),
                commit: synced.push_head.map(|h| h.to_string()).unwrap_or_default(),
            };
            return Ok(());
        }

        let paths: Vec<&Path> = tree.changed.iter().map(|f| f.path.as_path()).collect();
        let text = message::render(
            &target.message,
            &target.name,
            &tree.changes,
            &run.selections.selections,
        );
        let commit = ws.commit(&paths, &target.author, &text)?;
        let up_to_date = match synced.push_head {
            Some(head) => ws.same_tree(head, commit.id)?,
            None => false,
        };
        let head_commit = match synced.push_head {
            Some(head) if up_to_date => head,
            _ => {
                report.push_attempts += 1;
                match ws.push_with_lease(commit.id, &settings.branch, synced.push_head) {
                    Ok(pushed) => {
                        tracing::info!(target = %target.name, branch = %pushed.branch, commit = %pushed.commit, "pushed the pull request branch");
                        pushed.commit
                    }
                    Err(GitError::NonFastForward { .. })
                        if report.push_attempts < MAX_PUSH_ATTEMPTS =>
                    {
                        tracing::info!(target = %target.name, "pull request branch moved; fetching and checking again");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let pushed = !up_to_date;
        let (pr, action) = match (plan, open) {
            (
                Plan::Keep {
                    number,
                    title,
                    body,
                },
                Some(current),
            ) => {
                if title.is_some() || body.is_some() {
                    let pr = rt.block_on(gh.update(number, title.as_deref(), body.as_deref()))?;
                    (pr, PullRequestAction::Updated)
                } else if pushed {
                    (current, PullRequestAction::Updated)
                } else {
                    (current, PullRequestAction::Unchanged)
                }
            }
            // decide() keeps only an open pull request, so this is Create.
            _ => {
                let pr = rt.block_on(gh.create(
                    &settings.branch,
                    &settings.base,
                    &desired.title,
                    &desired.body,
                    settings.draft,
                ))?;
                // Labels and reviewers are set once: people may change them afterwards.
                rt.block_on(gh.add_labels(pr.number, &settings.labels))?;
                rt.block_on(gh.request_reviewers(pr.number, &settings.reviewers))?;
                (pr, PullRequestAction::Created)
            }
        };
        // Only alongside another write: a run with nothing new writes nothing, even if a person
        // turned auto-merge off.
        if let Some(method) = settings.auto_merge.graphql_method()
            && action != PullRequestAction::Unchanged
            && !pr.auto_merge
            && let Some(node) = &pr.node_id
        {
            rt.block_on(gh.enable_auto_merge(node, method))?;
        }
        tracing::info!(target = %target.name, number = pr.number, action = action.as_str(), api_writes = gh.writes(), "pull request");
        report.outcome = Outcome::PullRequest {
            number: pr.number,
            url: pr.url,
            action,
            branch: settings.branch.clone(),
            commit: head_commit.to_string(),
        };
        return Ok(());
    }
}
