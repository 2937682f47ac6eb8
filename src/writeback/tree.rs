//! Applies a target's write-backs beside the marker rewrite: reads each named file (a blob
//! of the synced commit), runs its pure editor and records the new bytes in the same
//! [`TreeReport`] the marker rewrite fills, so one commit carries both. Nothing is written
//! here: the commit writes the changed files' blobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Kind, WriteBack, WriteBackError, kustomization};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::walk::{Before, ChangedFile, TreeReport};
use crate::rewrite::{Change, Part, Problem, ProblemKind};

/// The files write-backs read: paths relative to the repository root.
pub trait Files {
    /// The bytes of the file at `path`, `None` when there is no such file.
    fn read(&self, path: &Path) -> Option<Vec<u8>>;
    fn is_file(&self, path: &Path) -> bool;
}

/// Where a write-back's edits go: the file itself, or for a kustomization the file kustomize
/// reads in that folder.
fn resolve(files: &dyn Files, wb: &WriteBack) -> PathBuf {
    match wb.kind {
        Kind::Kustomization { .. } => {
            let dir = &wb.file;
            let name = kustomization::file_name(|n| files.is_file(&dir.join(n)))
                .unwrap_or(kustomization::FILE_NAMES[0]);
            wb.file.join(name)
        }
        _ => wb.file.clone(),
    }
}

/// The new bytes of one write-back's file, or `None` when it already says so.
pub fn plan(
    path: &Path,
    existing: Option<&[u8]>,
    wb: &WriteBack,
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Result<Option<super::Edited>, WriteBackError> {
    match &wb.kind {
        Kind::SourceKustomize { spec_images } => {
            super::edit_source_kustomize(path, existing, spec_images, &wb.images, selections)
        }
        Kind::SourceHelm => super::edit_source_helm(path, existing, &wb.images, selections),
        Kind::Kustomization { spec_images } => {
            super::edit_kustomization(path, existing, spec_images, &wb.images, selections)
        }
        Kind::HelmValues => super::edit_values(path, existing, &wb.images, selections),
    }
}

/// Applies every write-back to `files`, adding changed files, changes and problems to
/// `tree`. A write-back that fails leaves its file as it was and is a problem (an error)
/// naming the Application.
pub fn apply(
    files: &dyn Files,
    writebacks: &[WriteBack],
    selections: &BTreeMap<PolicyId, ImageRef>,
    tree: &mut TreeReport,
) {
    let mut failed: Vec<(String, WriteBackError)> = Vec::new();
    for wb in writebacks {
        let rel = resolve(files, wb);
        // Files edited earlier in this run (two Applications, one file, or a file with
        // markers too) are read as edited.
        let current = tree
            .changed
            .iter()
            .find(|c| c.path == rel)
            .map(|c| c.after.clone());
        let existing = current.or_else(|| files.read(&rel));
        let edited = match plan(&rel, existing.as_deref(), wb, selections) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                failed.push((wb.application.clone(), e));
                continue;
            }
        };
        for c in &edited.changes {
            tree.policies.insert(c.policy.clone());
            tree.changes.push(Change {
                file: rel.clone(),
                line: c.line,
                policy: c.policy.clone(),
                part: Part::Full,
                old: c.old.clone(),
                new: c.new.clone(),
            });
        }
        match tree.changed.iter_mut().find(|c| c.path == rel) {
            Some(changed) => changed.after = edited.bytes,
            None => tree.changed.push(ChangedFile {
                path: rel,
                before: Before::Bytes(existing.unwrap_or_default()),
                after: edited.bytes,
            }),
        }
    }
    for (application, error) in failed {
        tree.problems.push(Problem {
            path: error.file().to_path_buf(),
            line: 0,
            kind: ProblemKind::Verify {
                reason: format!("Application {application}: {error}"),
            },
        });
    }
}
