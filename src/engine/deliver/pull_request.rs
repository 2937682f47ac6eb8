//! Delivery through a pull request: the update is computed on top of the current base,
//! committed on the head branch tagsmith owns (replaced with a lease, never over someone else's
//! commits), and the one pull request for head and base is opened or brought up to date on the
//! forge. API calls run on the caller's tokio runtime when there is one.

use std::io::Write as _;
use std::path::Path;

use git2::Oid;
use octocrab::secrecy::{ExposeSecret as _, SecretString};

use super::{Delivered, Delivery, Pending};
use crate::config::{
    GitAuth, GitHubAuth, GitSource, PullRequestSettings, Secret, Target, Username,
};
use crate::engine::report::{ChangeReport, Outcome, PullRequestAction, RunError};
use crate::engine::select::SelectionSet;
use crate::forge::{
    Desired, Existing, Forge, HeldRow, NewPullRequest, Plan, PrState, PullRequestView, decide,
    render_body_with_holds, rows,
};
use crate::git::{GitError, Workspace};
use crate::status::HoldStatus;

/// The caller's runtime when there is one (target runs sit on `spawn_blocking`), else our own.
enum Runtime {
    Handle(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl Runtime {
    fn get() -> Result<Self, RunError> {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return Ok(Self::Handle(handle));
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(Self::Own)
            .map_err(RunError::Runtime)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Self::Handle(h) => h.block_on(f),
            Self::Own(rt) => rt.block_on(f),
        }
    }
}

/// What the last sync found, and the plan made from the forge's pull requests.
#[derive(Debug, Default)]
struct Found {
    base: Option<Oid>,
    push_head: Option<Oid>,
    plan: Option<Plan>,
    open: Option<PullRequestView>,
    desired: Option<Desired>,
}

pub struct PullRequest<'a> {
    settings: &'a PullRequestSettings,
    runtime: Option<Runtime>,
    forge: Option<Box<dyn Forge>>,
    found: Found,
}

impl std::fmt::Debug for PullRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequest")
            .field("branch", &self.settings.branch)
            .finish_non_exhaustive()
    }
}

impl<'a> PullRequest<'a> {
    pub fn new(settings: &'a PullRequestSettings) -> Self {
        Self {
            settings,
            runtime: None,
            forge: None,
            found: Found::default(),
        }
    }

    /// The forge client, connected on first use: a run with nothing to deliver needs none.
    fn forge(&mut self) -> Result<(&Runtime, &dyn Forge), RunError> {
        if self.runtime.is_none() {
            self.runtime = Some(Runtime::get()?);
        }
        let rt = self.runtime.as_ref().ok_or(RunError::Panicked)?;
        if self.forge.is_none() {
            self.forge = Some(rt.block_on(crate::forge::connect(self.settings))?);
        }
        let forge = self.forge.as_deref().ok_or(RunError::Panicked)?;
        Ok((rt, forge))
    }

    /// Looks up the open (else the last closed) pull request and decides what to do.
    fn plan(&mut self, pending: &Pending<'_>) -> Result<Option<Outcome>, RunError> {
        let s = self.settings;
        let desired = Desired {
            title: s.title.clone(),
            body: body_with_holds(
                &pending.target.name,
                pending.changes,
                pending.selections,
                pending.holds,
            ),
        };
        let (rt, forge) = self.forge()?;
        let first = |state| -> Result<Option<PullRequestView>, RunError> {
            Ok(rt
                .block_on(forge.find(&s.branch, &s.base, state))?
                .into_iter()
                .next())
        };
        let open = first(PrState::Open)?;
        let closed = match open {
            Some(_) => None,
            None => first(PrState::Closed)?,
        };
        let existing = |pr: &PullRequestView| Existing {
            number: pr.number,
            title: pr.title.clone(),
            body: pr.body.clone(),
            merged: pr.merged,
        };
        let plan = decide(
            open.as_ref().map(existing).as_ref(),
            closed.as_ref().map(existing).as_ref(),
            &desired,
        );
        if let (Plan::LeaveClosed { number }, Some(pr)) = (&plan, &closed) {
            tracing::info!(
                number,
                "pull request was closed with these changes; not opening it again"
            );
            return Ok(Some(Outcome::PullRequest {
                number: *number,
                url: pr.url.clone(),
                action: PullRequestAction::LeftClosed,
                branch: s.branch.clone(),
                commit: self
                    .found
                    .push_head
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
            }));
        }
        self.found.plan = Some(plan);
        self.found.open = open;
        self.found.desired = Some(desired);
        Ok(None)
    }

    /// Brings the pull request up to date with the pushed head; returns it and what was done.
    fn write_pull_request(
        &mut self,
        pushed: bool,
    ) -> Result<(PullRequestView, PullRequestAction), RunError> {
        let s = self.settings;
        let plan = self.found.plan.take();
        let open = self.found.open.take();
        let desired = self.found.desired.take().unwrap_or_else(|| Desired {
            title: s.title.clone(),
            body: String::new(),
        });
        let (rt, forge) = self.forge()?;
        if let (
            Some(Plan::Keep {
                number,
                title,
                body,
            }),
            Some(current),
        ) = (plan, open)
        {
            if title.is_some() || body.is_some() {
                let pr = rt.block_on(forge.update(number, title.as_deref(), body.as_deref()))?;
                return Ok((pr, PullRequestAction::Updated));
            }
            let action = if pushed {
                PullRequestAction::Updated
            } else {
                PullRequestAction::Unchanged
            };
            return Ok((current, action));
        }
        // decide() keeps only an open pull request, so this is Create.
        let pr = rt.block_on(forge.create(NewPullRequest {
            head: &s.branch,
            base: &s.base,
            title: &desired.title,
            body: &desired.body,
            draft: s.draft,
        }))?;
        // Labels and reviewers are set once: people may change them afterwards.
        rt.block_on(forge.add_labels(pr.number, &s.labels))?;
        rt.block_on(forge.request_reviewers(pr.number, &s.reviewers))?;
        Ok((pr, PullRequestAction::Created))
    }
}

impl Delivery for PullRequest<'_> {
    fn open(&mut self, target: &Target, dir: &Path) -> Result<Workspace, RunError> {
        let app_token_for_git = matches!(self.settings.auth, GitHubAuth::App { .. })
            && target.git.auth.password.is_none();
        if !app_token_for_git {
            return Ok(Workspace::open_objects(dir, &target.git)?);
        }
        let (rt, forge) = self.forge()?;
        match rt.block_on(forge.git_password())? {
            Some(token) => open_with_token(target, dir, &token),
            None => Ok(Workspace::open_objects(dir, &target.git)?),
        }
    }

    fn sync(&mut self, ws: &Workspace, _target: &Target) -> Result<(), RunError> {
        let synced = ws.sync_onto_base(&self.settings.base, &self.settings.branch)?;
        self.found = Found {
            base: Some(synced.base),
            push_head: synced.push_head,
            ..Found::default()
        };
        Ok(())
    }

    fn before_commit(
        &mut self,
        ws: &Workspace,
        pending: &Pending<'_>,
    ) -> Result<Option<Outcome>, RunError> {
        if let (Some(head), Some(base)) = (self.found.push_head, self.found.base)
            && let Some(foreign) =
                ws.foreign_commit(&self.settings.branch, head, base, &pending.target.author)?
        {
            return Err(RunError::ForeignCommits {
                branch: self.settings.branch.clone(),
                foreign,
            });
        }
        self.plan(pending)
    }

    fn deliver(
        &mut self,
        ws: &Workspace,
        commit: Oid,
        _pending: &Pending<'_>,
    ) -> Result<Delivered, RunError> {
        let s = self.settings;
        let push_head = self.found.push_head;
        let up_to_date = match push_head {
            Some(head) => ws.same_tree(head, commit)?,
            None => false,
        };
        let head_commit = match push_head {
            Some(head) if up_to_date => head,
            _ => match ws.push_with_lease(commit, &s.branch, push_head) {
                Ok(pushed) => pushed.commit,
                Err(e @ GitError::NonFastForward { .. }) => return Ok(Delivered::Moved(e.into())),
                Err(e) => return Err(e.into()),
            },
        };
        let (pr, action) = self.write_pull_request(!up_to_date)?;
        // Only alongside another write: a run with nothing new writes nothing, even if a person
        // turned auto-merge off.
        let (rt, forge) = self.forge()?;
        if action != PullRequestAction::Unchanged && !pr.auto_merge {
            rt.block_on(forge.enable_auto_merge(&pr, s.auto_merge))?;
        }
        tracing::info!(
            number = pr.number,
            action = action.as_str(),
            api_writes = forge.writes(),
            "pull request"
        );
        Ok(Delivered::Done {
            outcome: Outcome::PullRequest {
                number: pr.number,
                url: pr.url,
                action,
                branch: s.branch.clone(),
                commit: head_commit.to_string(),
            },
            pushed: !up_to_date,
        })
    }
}

/// The body's table from the changes and the images their policies watch.
pub fn body(target: &str, changes: &[ChangeReport], selections: &SelectionSet) -> String {
    body_with_holds(target, changes, selections, &[])
}

/// [`body`], listing the markers held for a person's rollback too.
pub fn body_with_holds(
    target: &str,
    changes: &[ChangeReport],
    selections: &SelectionSet,
    holds: &[HoldStatus],
) -> String {
    let image = |policy: &str| {
        selections
            .reports
            .iter()
            .find(|r| r.policy == policy)
            .map_or("?", |r| r.image.as_str())
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
    let held: Vec<HeldRow> = holds
        .iter()
        .map(|h| HeldRow {
            policy: h.policy.clone(),
            file: h.file.clone(),
            line: h.line,
            from: h.from.clone(),
            to: h.to.clone(),
        })
        .collect();
    render_body_with_holds(target, &table, &held)
}

/// A GitHub App has no long-lived Git credential: Git uses the app's installation token (user
/// `x-access-token`, as GitHub documents). The workspace reads its credentials once when
/// opened, so the token sits on disk (owner-only) just for that moment.
fn open_with_token(
    target: &Target,
    dir: &Path,
    token: &SecretString,
) -> Result<Workspace, RunError> {
    let name = format!(
        ".{}.git-token",
        dir.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    let path = dir.parent().unwrap_or(Path::new(".")).join(name);
    let file_err = |source: std::io::Error| RunError::TokenFile {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(file_err)?;
    }
    write_owner_only(&path, token.expose_secret().as_bytes()).map_err(file_err)?;
    let source = GitSource {
        auth: GitAuth {
            username: Some(Username::Literal("x-access-token".into())),
            password: Some(Secret::File(path.clone())),
            ssh: None,
        },
        ..target.git.clone()
    };
    let opened = Workspace::open_objects(dir, &source);
    let removed = std::fs::remove_file(&path);
    let ws = opened?;
    removed.map_err(file_err)?;
    Ok(ws)
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}
