//! Applies a target's write-backs to a checked-out tree, beside the marker rewrite: reads
//! each named file, runs its pure editor, writes what changed and records it in the same
//! [`TreeReport`] the marker rewrite fills, so one commit carries both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Kind, WriteBack, WriteBackError, kustomization};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::walk::{ChangedFile, TreeReport};
use crate::rewrite::{Change, Part, Problem, ProblemKind};

/// Where a write-back's edits go: the file itself, or for a kustomization the file kustomize
/// reads in that folder.
fn resolve(root: &Path, wb: &WriteBack) -> PathBuf {
    match wb.kind {
        Kind::Kustomization { .. } => {
            let dir = root.join(&wb.file);
            let name = kustomization::file_name(|n| dir.join(n).is_file())
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

/// Applies every write-back under `root` (written to disk when `write`), adding changed
/// files, changes and problems to `tree`. A write-back that fails leaves its file as it was
/// and is a problem (an error) naming the Application.
pub fn apply(
    root: &Path,
    writebacks: &[WriteBack],
    selections: &BTreeMap<PolicyId, ImageRef>,
    write: bool,
    tree: &mut TreeReport,
) {
    let mut failed: Vec<(String, WriteBackError)> = Vec::new();
    for wb in writebacks {
        let rel = resolve(root, wb);
        let full = root.join(&rel);
        // Files written earlier in this run (two Applications, one file) are read back.
        let current = tree
            .changed
            .iter()
            .find(|c| c.path == rel)
            .map(|c| c.after.clone());
        let existing = current.or_else(|| std::fs::read(&full).ok());
        let edited = match plan(&rel, existing.as_deref(), wb, selections) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                failed.push((wb.application.clone(), e));
                continue;
            }
        };
        if write {
            let written = full
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&full, &edited.bytes));
            if let Err(e) = written {
                failed.push((
                    wb.application.clone(),
                    WriteBackError::Unsupported {
                        file: rel.clone(),
                        message: format!("cannot write: {e}"),
                    },
                ));
                continue;
            }
        }
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
                before: existing.unwrap_or_default(),
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
