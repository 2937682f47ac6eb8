//! `ImageUpdater` objects (AIU 1.x, `argocd-image-updater.argoproj.io/v1alpha1`) + the
//! Applications read next to them -> each selected Application's settings, as AIU's
//! `FilterApplicationsForUpdate` (`pkg/argocd/argocd.go`) does it: only Applications in the
//! ImageUpdater's namespace; `applicationRefs` sorted by `calculateSpecificity`, most specific
//! first (stable, so ties go to the ref listed first); the first ref whose `namePattern`
//! (`filepath.Match`) and `labelSelectors` both match wins; `useAnnotations: true` reads the
//! Application's annotations instead of the ref's settings (and when they give no image list,
//! AIU goes on to the next matching ref); otherwise settings cascade spec -> ref -> image
//! (`mergeCommonUpdateSettings`, `mergeWBCSettings`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::annotations;
use super::compile::{CONTROLLER_NAMESPACE, Located};
use super::glob;
use super::raw::{self, ApplicationRef, ImageUpdater, LabelSelector};
use super::settings::{AppSettings, Common, ImageSettings, Keys, Loc, Val, WriteBackSettings};
use crate::config::flux::selector;
use crate::config::flux::{Diagnostic, Severity};

#[derive(Debug)]
pub struct Updater {
    pub file: PathBuf,
    pub object: ImageUpdater,
}

impl Updater {
    /// A namespace left out is taken as AIU's controller namespace, as for Applications.
    pub fn namespace(&self) -> &str {
        self.object
            .metadata
            .namespace
            .as_ref()
            .map_or(CONTROLLER_NAMESPACE, |n| n.value.as_str())
    }

    fn name(&self) -> String {
        format!(
            "ImageUpdater {}/{}",
            self.namespace(),
            self.object.metadata.name.value
        )
    }

    fn loc<T>(&self, at: &Spanned<T>, field: impl Into<String>) -> Loc {
        Loc::of(&self.file, &self.name(), at, field)
    }
}

/// `calculateSpecificity`: an exact name first, then literal characters (character sets
/// and wildcards not counted), a label selector +10 000 and +100 per label or expression.
fn specificity(r: &ApplicationRef) -> usize {
    let pattern = &r.name_pattern.value;
    let mut score = 0;
    if !pattern.contains(['*', '?', '[', ']']) {
        score += 1_000_000;
    }
    // stripBracketsRegex `\[.*?]`: each `[` up to the next `]` goes.
    let mut literals = String::new();
    let mut rest = pattern.as_str();
    while let Some(open) = rest.find('[') {
        literals.push_str(&rest[..open]);
        match rest[open..].find(']') {
            Some(close) => rest = &rest[open + close + 1..],
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    literals.push_str(rest);
    score += literals.replace(['*', '?'], "").len();
    if let Some(s) = &r.label_selectors {
        score += 10_000 + 100 * (s.value.match_labels.len() + s.value.match_expressions.len());
    }
    score
}

/// One ref, checked: its pattern as a regex.
struct Ref<'a> {
    index: usize,
    raw: &'a Spanned<ApplicationRef>,
    pattern: regex::Regex,
    score: usize,
}

impl Ref<'_> {
    fn field(&self, rest: &str) -> String {
        format!("spec.applicationRefs[{}]{rest}", self.index)
    }

    fn matches(&self, app: &Located) -> bool {
        let labels = &app.app.metadata.labels;
        self.pattern.is_match(&app.app.metadata.name.value)
            && self
                .raw
                .value
                .label_selectors
                .as_ref()
                .is_none_or(|s| selector::matches(&s.value, labels))
    }
}

/// Checks one ImageUpdater's refs as AIU's API validation and `FilterApplicationsForUpdate`
/// do; `None` when AIU would not use the object at all.
fn refs<'a>(u: &'a Updater, out: &mut Vec<Diagnostic>) -> Option<Vec<Ref<'a>>> {
    let spec = &u.object.spec;
    if spec.value.application_refs.is_empty() {
        out.push(u.loc(spec, "spec.applicationRefs").diagnostic(
            Severity::Error,
            "at least one applicationRef is needed (AIU's API refuses the object without)",
        ));
        return None;
    }
    let mut ok = true;
    let mut patterns = BTreeSet::new();
    let mut list = Vec::new();
    for (index, r) in spec.value.application_refs.iter().enumerate() {
        let field = format!("spec.applicationRefs[{index}]");
        let np = &r.value.name_pattern;
        if !patterns.insert(np.value.clone()) {
            out.push(u.loc(np, format!("{field}.namePattern")).diagnostic(
                Severity::Error,
                format!(
                    "namePattern {:?} is listed twice (AIU's API keys the refs by it)",
                    np.value
                ),
            ));
            ok = false;
        }
        let Some(pattern) = glob::to_regex(&np.value).and_then(|re| regex::Regex::new(&re).ok())
        else {
            out.push(u.loc(np, format!("{field}.namePattern")).diagnostic(
                Severity::Error,
                format!(
                    "invalid application name pattern {:?}: AIU refuses the whole ImageUpdater",
                    np.value
                ),
            ));
            ok = false;
            continue;
        };
        if let Some(s) = &r.value.label_selectors {
            ok &= check_selector(u, s, &format!("{field}.labelSelectors"), out);
        }
        let use_annotations = r.value.use_annotations.as_ref().is_some_and(|b| b.value);
        if use_annotations {
            // "When this field is set to true, only namePattern and labelSelectors are used".
            let ignored: [(&str, Option<Loc>); 3] = [
                (
                    "commonUpdateSettings",
                    r.value
                        .common_update_settings
                        .as_ref()
                        .map(|s| u.loc(s, format!("{field}.commonUpdateSettings"))),
                ),
                (
                    "writeBackConfig",
                    r.value
                        .write_back_config
                        .as_ref()
                        .map(|s| u.loc(s, format!("{field}.writeBackConfig"))),
                ),
                (
                    "images",
                    r.value
                        .images
                        .first()
                        .map(|s| u.loc(s, format!("{field}.images"))),
                ),
            ];
            for (what, at) in ignored {
                if let Some(at) = at {
                    out.push(at.diagnostic(
                        Severity::Warning,
                        format!("ignored with useAnnotations: true, as AIU ignores {what} then: the Application's annotations say it"),
                    ));
                }
            }
        } else if r.value.images.is_empty() {
            out.push(u.loc(np, format!("{field}.images")).diagnostic(
                Severity::Error,
                "either useAnnotations must be true, or images must list at least one image (AIU's API refuses the object)",
            ));
            ok = false;
        }
        let mut aliases = BTreeSet::new();
        for (j, image) in r.value.images.iter().enumerate() {
            let alias = &image.value.alias;
            let at = u.loc(alias, format!("{field}.images[{j}].alias"));
            if !valid_alias(&alias.value) {
                out.push(at.diagnostic(
                    Severity::Error,
                    format!(
                        "{:?} is not a valid alias: ^[a-zA-Z0-9][a-zA-Z0-9-._]*$",
                        alias.value
                    ),
                ));
                ok = false;
            } else if !aliases.insert(alias.value.clone()) {
                out.push(at.diagnostic(
                    Severity::Error,
                    format!(
                        "alias {:?} is listed twice (AIU's API keys the images by it)",
                        alias.value
                    ),
                ));
                ok = false;
            }
        }
        list.push(Ref {
            index,
            raw: r,
            pattern,
            score: specificity(&r.value),
        });
    }
    if !ok {
        return None;
    }
    // Stable, as `slices.SortStableFunc`: equal scores keep their listed order.
    list.sort_by_key(|r| std::cmp::Reverse(r.score));
    Some(list)
}

fn valid_alias(alias: &str) -> bool {
    let mut chars = alias.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn check_selector(
    u: &Updater,
    s: &Spanned<LabelSelector>,
    field: &str,
    out: &mut Vec<Diagnostic>,
) -> bool {
    let problems = selector::check(&s.value);
    for (i, message) in &problems {
        let at = &s.value.match_expressions[*i];
        out.push(
            u.loc(at, format!("{field}.matchExpressions[{i}]"))
                .diagnostic(Severity::Error, message.clone()),
        );
    }
    problems.is_empty()
}

/// Who selected an Application, to name the first when a second ImageUpdater selects it too.
struct Selected {
    by: String,
    at: Loc,
}

/// Each Application some ImageUpdater selects (by index into `apps`), with its settings.
/// Applications no ImageUpdater selects are not updated, as by AIU; one that carries AIU's
/// annotations gets a warning saying so.
pub fn settings(
    updaters: &[Updater],
    apps: &[Located],
    out: &mut Vec<Diagnostic>,
) -> Vec<(usize, AppSettings)> {
    let mut selected: BTreeMap<usize, Selected> = BTreeMap::new();
    let mut result = Vec::new();
    let mut names = BTreeSet::new();
    for u in updaters {
        if !names.insert(u.name()) {
            out.push(
                u.loc(&u.object.metadata.name, "metadata.name")
                    .diagnostic(Severity::Error, "defined more than once"),
            );
            continue;
        }
        if u.object.metadata.namespace.is_none() {
            // The namespace decides which Applications are selected: say what is assumed.
            out.push(
                u.loc(&u.object.metadata.name, "metadata.namespace")
                    .diagnostic(
                        Severity::Warning,
                        format!("not set; taken as {CONTROLLER_NAMESPACE:?}: only Applications there are selected"),
                    ),
            );
        }
        let Some(refs) = refs(u, out) else {
            continue;
        };
        let mut used = vec![false; refs.len()];
        for (ai, app) in apps.iter().enumerate() {
            let namespace = app
                .app
                .metadata
                .namespace
                .as_ref()
                .map_or(CONTROLLER_NAMESPACE, |n| n.value.as_str());
            if namespace != u.namespace() {
                continue;
            }
            let mut chosen: Option<(usize, usize)> = None;
            for (k, r) in refs.iter().enumerate() {
                if !r.matches(app) {
                    continue;
                }
                used[k] = true;
                if let Some((first, score)) = chosen {
                    if score == r.score {
                        out.push(
                            u.loc(&r.raw.value.name_pattern, r.field(".namePattern"))
                                .diagnostic(
                                    Severity::Warning,
                                    format!(
                                        "{} also matches applicationRefs[{first}], which is as specific: AIU takes the one listed first",
                                        annotations::object(app)
                                    ),
                                ),
                        );
                    }
                    continue;
                }
                let at = u.loc(&r.raw.value.name_pattern, r.field(".namePattern"));
                let choice = ref_settings(u, r, app, out);
                if let Choice::NextRef = choice {
                    continue;
                }
                chosen = Some((r.index, r.score));
                if let Some(first) = selected.get(&ai) {
                    out.push(at.diagnostic(
                        Severity::Error,
                        format!(
                            "{} is also selected by {} ({}:{}): AIU's ImageUpdaters would overwrite each other's updates; select it from one",
                            annotations::object(app),
                            first.by,
                            first.at.file.display(),
                            first.at.line
                        ),
                    ));
                    continue;
                }
                let from_ref = !r
                    .raw
                    .value
                    .use_annotations
                    .as_ref()
                    .is_some_and(|b| b.value);
                if from_ref && annotations::has_any(app) {
                    let name = &app.app.metadata.name;
                    out.push(
                        Loc::of(&app.file, &annotations::object(app), name, "metadata.annotations")
                            .diagnostic(
                                Severity::Warning,
                                format!(
                                    "not read: {} applicationRefs[{}] configures this Application, without useAnnotations, as in AIU",
                                    u.name(),
                                    r.index
                                ),
                            ),
                    );
                }
                selected.insert(ai, Selected { by: u.name(), at });
                if let Choice::Settings(s) = choice {
                    result.push((ai, *s));
                }
            }
        }
        for (k, r) in refs.iter().enumerate() {
            if !used[k] {
                out.push(
                    u.loc(&r.raw.value.name_pattern, r.field(".namePattern"))
                        .diagnostic(
                            Severity::Warning,
                            format!(
                                "selects no Application in namespace {} among those read",
                                u.namespace()
                            ),
                        ),
                );
            }
        }
    }
    for (ai, app) in apps.iter().enumerate() {
        if !selected.contains_key(&ai) && annotations::has_any(app) {
            let name = &app.app.metadata.name;
            out.push(Loc::of(&app.file, &annotations::object(app), name, "metadata.name").diagnostic(
                Severity::Warning,
                "no ImageUpdater selects this Application: AIU 1.x does not read its annotations then, nor does tagsmith (add an applicationRef with useAnnotations: true)",
            ));
        }
    }
    result.sort_by_key(|(ai, _)| *ai);
    result
}

/// The settings one ref gives an Application.
fn ref_settings(u: &Updater, r: &Ref<'_>, app: &Located, out: &mut Vec<Diagnostic>) -> Choice {
    let raw = &r.raw.value;
    if raw.use_annotations.as_ref().is_some_and(|b| b.value) {
        let Some(settings) = annotations::settings(app, out) else {
            return Choice::NextRef;
        };
        // Only the ref's own imagesVerification counts then.
        if !verification(
            u,
            &[(&raw.images_verification, r.field(".imagesVerification"))],
            out,
        ) {
            return Choice::Skipped;
        }
        return Choice::Settings(Box::new(settings));
    }
    let spec = &u.object.spec.value;
    let global = common(
        u,
        spec.common_update_settings.as_ref(),
        "spec.commonUpdateSettings",
    );
    let own = common(
        u,
        raw.common_update_settings.as_ref(),
        &r.field(".commonUpdateSettings"),
    );
    let app_common = global.under(&own);
    let mut images = Vec::new();
    for (j, image) in raw.images.iter().enumerate() {
        let field = r.field(&format!(".images[{j}]"));
        let i = &image.value;
        if !verification(
            u,
            &[
                (&spec.images_verification, "spec.imagesVerification".into()),
                (&raw.images_verification, r.field(".imagesVerification")),
                (
                    &i.images_verification,
                    format!("{field}.imagesVerification"),
                ),
            ],
            out,
        ) {
            continue;
        }
        let own = common(
            u,
            i.common_update_settings.as_ref(),
            &format!("{field}.commonUpdateSettings"),
        );
        let mut setting = ImageSettings {
            alias: Some(i.alias.value.clone()),
            image: i.image_name.value.trim().to_string(),
            at: u.loc(&i.image_name, format!("{field}.imageName")),
            common: app_common.under(&own),
            kustomize_name: None,
            helm_spec: None,
            helm_name: None,
            helm_tag: None,
        };
        if let Some(t) = &i.manifest_targets {
            let field = format!("{field}.manifestTargets");
            if let Some(p) = &t.value.plugin {
                out.push(u.loc(p, format!("{field}.plugin")).diagnostic(
                    Severity::Error,
                    "Config Management Plugin targets are not written by tagsmith; use helm or kustomize",
                ));
                continue;
            }
            let string = |v: &Option<Spanned<String>>, f: &str| {
                v.as_ref()
                    .filter(|v| !v.value.trim().is_empty())
                    .map(|v| Val {
                        value: v.value.clone(),
                        at: u.loc(v, format!("{field}.{f}")),
                    })
            };
            if let Some(h) = &t.value.helm {
                setting.helm_spec = string(&h.value.spec, "helm.spec");
                // newImageFromManifestTargetSettings: spec set, name and tag are not read.
                if setting.helm_spec.is_none() {
                    setting.helm_name = string(&h.value.name, "helm.name");
                    setting.helm_tag = string(&h.value.tag, "helm.tag");
                }
            }
            if let Some(k) = &t.value.kustomize {
                setting.kustomize_name = string(&Some(k.value.name.clone()), "kustomize.name");
            }
            if t.value.helm.is_some() && t.value.kustomize.is_some() {
                setting.at = u.loc(t, field);
            }
        }
        images.push(setting);
    }
    let wbc = |w: Option<&Spanned<raw::WriteBackConfig>>, field: &str| -> Wbc {
        let Some(w) = w else {
            return Wbc::default();
        };
        let s = |v: &Option<Spanned<String>>, f: &str| {
            v.as_ref().map(|v| Val {
                value: v.value.clone(),
                at: u.loc(v, format!("{field}.{f}")),
            })
        };
        let git = w.value.git_config.as_ref().map(|g| &g.value);
        Wbc {
            method: s(&w.value.method, "method"),
            repository: git.and_then(|g| s(&g.repository, "gitConfig.repository")),
            branch: git.and_then(|g| s(&g.branch, "gitConfig.branch")),
            target: git.and_then(|g| s(&g.write_back_target, "gitConfig.writeBackTarget")),
            pull_request: git.and_then(|g| {
                g.pull_request
                    .as_ref()
                    .map(|p| u.loc(p, format!("{field}.gitConfig.pullRequest")))
            }),
        }
    };
    let merged = wbc(spec.write_back_config.as_ref(), "spec.writeBackConfig").under(wbc(
        raw.write_back_config.as_ref(),
        &r.field(".writeBackConfig"),
    ));
    if let Some(at) = merged.pull_request {
        out.push(at.diagnostic(
            Severity::Error,
            "pull requests are opened by a tagsmith.yaml target (push.pullRequest), not from here: tagsmith would push to the branch instead; convert with `tagsmith convert argocd` and add it there",
        ));
        return Choice::Skipped;
    }
    Choice::Settings(Box::new(AppSettings {
        images,
        writeback: WriteBackSettings {
            method: merged.method,
            method_unset: u.loc(&raw.name_pattern, r.field(".writeBackConfig.method")),
            keys: Keys::Crd,
            target: merged.target,
            branch: merged.branch,
            repository: merged.repository,
        },
    }))
}

/// What one matching ref does with an Application.
enum Choice {
    Settings(Box<AppSettings>),
    /// AIU's `continue`: the next matching ref applies.
    NextRef,
    /// The ref applies, but tagsmith cannot update the Application from it (reported).
    Skipped,
}

/// A `WriteBackConfig` level.
#[derive(Default)]
struct Wbc {
    method: Option<Val>,
    repository: Option<Val>,
    branch: Option<Val>,
    target: Option<Val>,
    pull_request: Option<Loc>,
}

impl Wbc {
    /// `mergeWBCSettings(self, more)`.
    fn under(self, more: Wbc) -> Wbc {
        Wbc {
            method: more.method.or(self.method),
            repository: more.repository.or(self.repository),
            branch: more.branch.or(self.branch),
            target: more.target.or(self.target),
            pull_request: more.pull_request.or(self.pull_request),
        }
    }
}

fn common(u: &Updater, s: Option<&Spanned<raw::CommonUpdateSettings>>, field: &str) -> Common {
    let Some(s) = s else {
        return Common::default();
    };
    let s = &s.value;
    let string = |v: &Option<Spanned<String>>, f: &str| {
        v.as_ref().map(|v| Val {
            value: v.value.clone(),
            at: u.loc(v, format!("{field}.{f}")),
        })
    };
    let list = |v: &Option<Spanned<Vec<String>>>, f: &str| {
        v.as_ref().map(|v| Val {
            value: v.value.clone(),
            at: u.loc(v, format!("{field}.{f}")),
        })
    };
    Common {
        update_strategy: string(&s.update_strategy, "updateStrategy"),
        force_update: s.force_update.as_ref().map(|v| Val {
            value: v.value.to_string(),
            at: u.loc(v, format!("{field}.forceUpdate")),
        }),
        allow_tags: string(&s.allow_tags, "allowTags"),
        ignore_tags: list(&s.ignore_tags, "ignoreTags"),
        pull_secret: string(&s.pull_secret, "pullSecret"),
        platforms: list(&s.platforms, "platforms"),
    }
}

/// `mergeImagesVerification` over the levels given, outermost first: a block present turns
/// verification on unless the innermost `enabled` says false. tagsmith does not verify
/// signatures, so an image AIU would verify is refused rather than updated unverified.
/// `true` when the image may be updated.
fn verification(
    u: &Updater,
    levels: &[(&Option<Spanned<serde_json::Value>>, String)],
    out: &mut Vec<Diagnostic>,
) -> bool {
    let mut enabled = None;
    let mut at = None;
    for (block, field) in levels {
        let Some(block) = block else {
            continue;
        };
        at = Some(u.loc(block, field.clone()));
        if let Some(e) = block
            .value
            .get("enabled")
            .and_then(serde_json::Value::as_bool)
        {
            enabled = Some(e);
        }
    }
    match (at, enabled) {
        (Some(at), None | Some(true)) => {
            out.push(at.diagnostic(
                Severity::Error,
                "signature verification is not done by tagsmith: it would update to unverified images; remove the block or set enabled: false",
            ));
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(yaml: &str) -> usize {
        specificity(&serde_saphyr::from_str::<ApplicationRef>(yaml).unwrap())
    }

    // AIU pkg/argocd/argocd_test.go Test_calculateSpecificity.
    #[test]
    fn specificity_is_aius() {
        assert_eq!(score("namePattern: app-one\nimages: []"), 1_000_007);
        assert_eq!(score("namePattern: app-*"), 4);
        assert_eq!(score("namePattern: app-prod-*"), 9);
        assert_eq!(score("namePattern: app-v?"), 5);
        assert_eq!(score("namePattern: app-[abc]"), 4);
        assert_eq!(score("namePattern: '*'"), 0);
        assert_eq!(score("namePattern: app-one\nlabelSelectors: {}"), 1_010_007);
        assert_eq!(
            score("namePattern: app-one\nlabelSelectors: { matchLabels: { env: prod } }"),
            1_010_107
        );
        assert_eq!(
            score(
                "namePattern: app-*\nlabelSelectors:\n  matchExpressions: [{ key: env, operator: In, values: [prod] }]"
            ),
            10_104
        );
    }

    #[test]
    fn aliases_follow_the_crd_pattern() {
        assert!(valid_alias("nginx"));
        assert!(valid_alias("a1-b.c_d"));
        assert!(!valid_alias("-a"));
        assert!(!valid_alias(""));
        assert!(!valid_alias("a/b"));
    }
}
