//! Checking out a fixed point instead of a branch head, as Flux's `GitRepositoryRef` allows:
//! a tag, the highest tag in a semver range, a commit, or a full reference name. Two steps
//! around the one fetch a sync makes: the refspecs to add to it, then the commit they name.

use git2::{Oid, Repository};

use super::{GitError, Workspace, message};
use crate::config::CheckoutRef;
use crate::policy::semver::{Range, Version};

/// Where a fetched tag or reference is kept; tagsmith's own namespace, never pushed.
const CHECKOUT_REF: &str = "refs/tagsmith/checkout";
const TAGS: &str = "refs/tagsmith/tags/";

/// What the sync's fetch must also bring for `checkout`; `branch` is the target's
/// `git.branch`, where a commit is looked for when it names one.
pub(super) fn refspecs(checkout: &CheckoutRef, branch: &str) -> Vec<String> {
    match checkout {
        CheckoutRef::Tag(tag) => vec![format!("+refs/tags/{tag}:{CHECKOUT_REF}")],
        CheckoutRef::Name(name) => vec![format!("+{name}:{CHECKOUT_REF}")],
        // source-controller fetches every tag to choose among them (AllTags).
        CheckoutRef::Semver(_) => vec![format!("+refs/tags/*:{TAGS}*")],
        CheckoutRef::Commit {
            on_branch: true, ..
        } => {
            vec![format!("+refs/heads/{branch}:refs/remotes/origin/{branch}")]
        }
        // As fluxcd/pkg gogit cloneCommit without a branch: every branch, then the commit.
        CheckoutRef::Commit { .. } => vec!["+refs/heads/*:refs/remotes/origin/*".to_string()],
    }
}

impl Workspace {
    /// The commit `checkout` names, after a fetch with [`refspecs`].
    pub(super) fn checkout_commit(&self, checkout: &CheckoutRef) -> Result<Oid, GitError> {
        let fail = |m: String| GitError::Checkout {
            url: self.url.clone(),
            reference: checkout.to_string(),
            message: m,
        };
        match checkout {
            CheckoutRef::Tag(_) | CheckoutRef::Name(_) => {
                let reference = self
                    .repo
                    .find_reference(CHECKOUT_REF)
                    .map_err(|_| fail("the remote has no such reference".into()))?;
                reference
                    .peel_to_commit()
                    .map(|c| c.id())
                    .map_err(|e| fail(message(&e)))
            }
            CheckoutRef::Commit { id, .. } => {
                let oid = Oid::from_str(id).map_err(|e| fail(message(&e)))?;
                self.repo
                    .find_commit(oid)
                    .map(|c| c.id())
                    .map_err(|_| fail("no such commit on the fetched branches".into()))
            }
            CheckoutRef::Semver(range) => {
                let tags = fetched_tags(&self.repo).map_err(|e| fail(message(&e)))?;
                highest(range, &tags)
                    .map(|t| t.commit)
                    // fluxcd/pkg gogit cloneSemVer's wording.
                    .ok_or_else(|| fail(format!("no match found for semver: {}", range.as_str())))
            }
        }
    }
}

/// A fetched tag: its name, the commit it names and that commit's committer time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tagged {
    pub name: String,
    pub commit: Oid,
    pub time: i64,
}

fn fetched_tags(repo: &Repository) -> Result<Vec<Tagged>, git2::Error> {
    let mut tags = Vec::new();
    for reference in repo.references_glob(&format!("{TAGS}*"))? {
        let reference = reference?;
        let Some(name) = reference.name().ok().and_then(|n| n.strip_prefix(TAGS)) else {
            continue;
        };
        // A tag of a tree or blob names no commit to check out.
        let Ok(commit) = reference.peel_to_commit() else {
            continue;
        };
        tags.push(Tagged {
            name: name.to_string(),
            commit: commit.id(),
            time: commit.committer().when().seconds(),
        });
    }
    Ok(tags)
}

/// source-controller's choice (fluxcd/pkg git/gogit/clone.go cloneSemVer): tags that parse
/// as versions (fluxcd/pkg version.ParseVersion) and match the range; the highest version,
/// equal versions (differing in build metadata) by the later commit. Flux leaves a tie on
/// both to map order; the larger tag name decides here, so the choice is stable.
pub(super) fn highest<'a>(range: &Range, tags: &'a [Tagged]) -> Option<&'a Tagged> {
    tags.iter()
        .filter_map(|t| {
            Version::parse_tag(&t.name)
                .ok()
                .filter(|v| range.matches(v))
                .map(|v| (v, t))
        })
        .max_by(|(a, ta), (b, tb)| {
            a.precedence(b)
                .then(ta.time.cmp(&tb.time))
                .then(ta.name.cmp(&tb.name))
        })
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tag(name: &str, time: i64) -> Tagged {
        Tagged {
            name: name.into(),
            commit: Oid::ZERO_SHA1,
            time,
        }
    }

    #[test]
    fn the_highest_matching_version_wins_and_equal_versions_go_by_commit_time() {
        let tags = [
            tag("v1.0.0", 10),
            tag("v1.2.0", 5),
            tag("v2.0.0", 30),
            tag("v1.2.0+build.2", 20),
            tag("v1.3.0-rc.1", 40),
            tag("latest", 50),
            tag("1.1", 60),
        ];
        let pick = |r: &str| highest(&Range::parse(r).unwrap(), &tags).map(|t| t.name.clone());
        // Build metadata does not count for precedence: the later commit of the two 1.2.0s.
        assert_eq!(pick("^1").as_deref(), Some("v1.2.0+build.2"));
        assert_eq!(pick(">=1.0.0").as_deref(), Some("v2.0.0"));
        // A prerelease only matches a range that names one (Masterminds).
        assert_eq!(pick(">=1.3.0-0 <2").as_deref(), Some("v1.3.0-rc.1"));
        assert_eq!(pick("~1.0").as_deref(), Some("v1.0.0"));
        assert_eq!(pick(">=3"), None);
    }
}
