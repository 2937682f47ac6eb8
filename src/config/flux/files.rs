//! Which files hold Flux objects: the paths given, folders walked recursively (`*.yaml`,
//! `*.yml`), and the local `resources:` of Kustomize files, followed but not rendered.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Diagnostic, FluxError, Severity};

const KUSTOMIZE_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn discover(paths: &[PathBuf]) -> Result<Found, FluxError> {
    let mut found = Found::default();
    let mut seen = BTreeSet::new();
    for path in paths {
        visit(path, true, &mut seen, &mut found)?;
    }
    Ok(found)
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| KUSTOMIZE_FILES.contains(&n))
}

fn is_yaml(path: &Path) -> bool {
    is_kustomization(path)
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
}

fn visit(
    path: &Path,
    given: bool,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut Found,
) -> Result<(), FluxError> {
    let read_error = |source| FluxError::Read {
        path: path.to_path_buf(),
        source,
    };
    let canonical = std::fs::canonicalize(path).map_err(read_error)?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(path).map_err(read_error)?;
    // Links inside a walked tree are not followed: they could leave it or loop.
    if meta.file_type().is_symlink() && !given {
        return Ok(());
    }
    if std::fs::metadata(path).map_err(read_error)?.is_dir() {
        let mut entries = std::fs::read_dir(path)
            .map_err(read_error)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error)?;
        entries.sort();
        for entry in entries {
            let hidden = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            let is_dir = std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir());
            if is_dir || is_yaml(&entry) {
                visit(&entry, false, seen, found)?;
            }
        }
        return Ok(());
    }
    found.files.push(path.to_path_buf());
    if is_kustomization(path) {
        follow_resources(path, seen, found)?;
    }
    Ok(())
}

fn follow_resources(
    path: &Path,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut Found,
) -> Result<(), FluxError> {
    let text = std::fs::read_to_string(path).map_err(|source| FluxError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(kustomization) = serde_saphyr::from_str::<super::raw::Kustomization>(&text) else {
        found.diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            object: String::new(),
            field: "resources".into(),
            message: "cannot read this Kustomize file's resources; they are not followed".into(),
        });
        return Ok(());
    };
    let base = path.parent().unwrap_or(Path::new("."));
    for resource in kustomization.resources {
        let entry = resource.value.trim();
        let remote = entry.contains("://") || entry.starts_with("github.com/");
        let local = base.join(entry);
        if remote || !local.exists() {
            found.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                file: path.to_path_buf(),
                line: resource.referenced.line(),
                column: resource.referenced.column(),
                object: String::new(),
                field: "resources".into(),
                message: if remote {
                    format!("remote resource {entry:?} is not read; objects in it are not seen")
                } else {
                    format!("resource {entry:?} does not exist")
                },
            });
            continue;
        }
        visit(&local, true, seen, found)?;
    }
    Ok(())
}
