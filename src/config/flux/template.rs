//! Flux `messageTemplate`s: the Go template and the data image-automation-controller gives it
//! (internal/source/source.go `TemplateData`, internal/update/result.go `Result`), built from
//! a run's changes (pure).

use std::collections::BTreeMap;

use super::gotemplate::{GoTemplate, Struct, TemplateError, Value};

/// One changed value as Flux reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxChange {
    /// Relative to the automation's `update.path`.
    pub file: String,
    pub object: ObjectId,
    pub old: String,
    pub new: String,
    /// The marker's reference: `ns:name`, `ns:name:tag`, ...
    pub setter: String,
}

/// The YAML document holding a change (kyaml `ResourceIdentifier`); empty fields where the
/// document has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// A messageTemplate ready to render: the template, its automation and its values.
#[derive(Debug, Clone)]
pub struct FluxMessage {
    pub source: String,
    template: GoTemplate,
    pub namespace: String,
    pub name: String,
    pub values: BTreeMap<String, String>,
}

impl PartialEq for FluxMessage {
    fn eq(&self, other: &Self) -> bool {
        (&self.source, &self.namespace, &self.name, &self.values)
            == (&other.source, &other.namespace, &other.name, &other.values)
    }
}

impl Eq for FluxMessage {}

impl FluxMessage {
    /// Parses `source` and refuses what Flux v1 refuses (`.Updated`, `.Changed.ImageResult`)
    /// and what tagsmith cannot evaluate, naming the construct. The template is also run once
    /// on a sample change so that a field Flux's data does not have fails here, not at commit.
    pub fn new(
        source: &str,
        namespace: &str,
        name: &str,
        values: BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let template = GoTemplate::parse(source).map_err(|e| e.to_string())?;
        for chain in template.field_chains() {
            for (field, flux_says) in [
                (
                    "Updated",
                    "template uses removed '.Updated' field. Please use '.Changed' instead",
                ),
                (
                    "ImageResult",
                    "template uses removed '.Changed.ImageResult' field. Please use '.Changed.FileChanges' or '.Changed.Objects' instead",
                ),
            ] {
                if chain.iter().any(|c| c == field) {
                    return Err(format!(
                        ".{}: {flux_says} (as Flux v1 refuses it)",
                        chain.join(".")
                    ));
                }
            }
        }
        let message = Self {
            source: source.to_string(),
            template,
            namespace: namespace.to_string(),
            name: name.to_string(),
            values,
        };
        let sample = FluxChange {
            file: "deploy.yaml".into(),
            object: ObjectId {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "app".into(),
                namespace: namespace.to_string(),
            },
            old: "app:1.0.0".into(),
            new: "app:1.0.1".into(),
            setter: format!("{namespace}:app"),
        };
        message.render(&[sample]).map_err(|e| e.to_string())?;
        Ok(message)
    }

    /// `.Values.key` names with no such key: Flux prints `<no value>` there, which is rarely
    /// what was meant.
    pub fn missing_values(&self) -> Vec<String> {
        self.template
            .field_chains()
            .into_iter()
            .filter_map(|c| match c.as_slice() {
                [v, key, ..] if v == "Values" && !self.values.contains_key(key) => {
                    Some(key.clone())
                }
                _ => None,
            })
            .collect()
    }

    pub fn render(&self, changes: &[FluxChange]) -> Result<String, TemplateError> {
        self.template
            .execute(&data(&self.namespace, &self.name, &self.values, changes))
    }
}

fn strct(fields: Vec<(&'static str, bool, Value)>) -> Value {
    Value::Struct(Struct {
        display: None,
        fields,
        methods: Vec::new(),
    })
}

fn change_value(c: &FluxChange) -> Value {
    strct(vec![
        ("OldValue", false, Value::str(&c.old)),
        ("NewValue", false, Value::str(&c.new)),
        ("Setter", false, Value::str(&c.setter)),
    ])
}

/// `update.ObjectIdentifier{yaml.ResourceIdentifier{TypeMeta{APIVersion, Kind},
/// NameMeta{Name, Namespace}}}`: its field order is what fmt prints and how keys sort.
fn object_value(o: &ObjectId) -> Value {
    strct(vec![(
        "ResourceIdentifier",
        true,
        strct(vec![
            (
                "TypeMeta",
                true,
                strct(vec![
                    ("APIVersion", false, Value::str(&o.api_version)),
                    ("Kind", false, Value::str(&o.kind)),
                ]),
            ),
            (
                "NameMeta",
                true,
                strct(vec![
                    ("Name", false, Value::str(&o.name)),
                    ("Namespace", false, Value::str(&o.namespace)),
                ]),
            ),
        ]),
    )])
}

type Objects<'a> = Vec<(&'a ObjectId, Vec<&'a FluxChange>)>;

fn objects_value(objects: &Objects<'_>) -> Value {
    Value::map(
        objects
            .iter()
            .map(|(o, cs)| {
                (
                    object_value(o),
                    Value::List(cs.iter().map(|c| change_value(c)).collect()),
                )
            })
            .collect(),
        Value::List(Vec::new()),
    )
}

fn push_change<'a>(objects: &mut Objects<'a>, c: &'a FluxChange) {
    match objects.iter_mut().find(|(o, _)| **o == c.object) {
        Some((_, list)) => list.push(c),
        None => objects.push((&c.object, vec![c])),
    }
}

/// `TemplateData{AutomationObject, Changed, Values}`. Where Flux walks Go maps in random order
/// (`Result.Changes()`, `Result.Objects()`), files and objects are taken in sorted order here.
pub fn data(
    namespace: &str,
    name: &str,
    values: &BTreeMap<String, String>,
    changes: &[FluxChange],
) -> Value {
    let mut files: BTreeMap<&str, Objects<'_>> = BTreeMap::new();
    for c in changes {
        push_change(files.entry(&c.file).or_default(), c);
    }
    let mut sorted: Vec<&FluxChange> = Vec::new();
    let mut all_objects: Objects<'_> = Vec::new();
    for objects in files.values() {
        let mut by_key: Vec<_> = objects.iter().collect();
        by_key.sort_by(|a, b| {
            let k = |o: &ObjectId| {
                (
                    o.api_version.clone(),
                    o.kind.clone(),
                    o.name.clone(),
                    o.namespace.clone(),
                )
            };
            k(a.0).cmp(&k(b.0))
        });
        for (_, cs) in by_key {
            for c in cs {
                push_change(&mut all_objects, c);
                let same =
                    |s: &&FluxChange| (&s.old, &s.new, &s.setter) == (&c.old, &c.new, &c.setter);
                if !sorted.iter().any(same) {
                    sorted.push(c);
                }
            }
        }
    }
    let file_changes = Value::map(
        files
            .iter()
            .map(|(f, objects)| (Value::str(*f), objects_value(objects)))
            .collect(),
        Value::map(Vec::new(), Value::List(Vec::new())),
    );
    let result = Value::Struct(Struct {
        display: None,
        fields: vec![("FileChanges", false, file_changes)],
        methods: vec![
            (
                "Changes",
                Value::List(sorted.iter().map(|c| change_value(c)).collect()),
            ),
            ("Objects", objects_value(&all_objects)),
        ],
    });
    let automation = Value::Struct(Struct {
        // types.NamespacedName.String()
        display: Some(format!("{namespace}/{name}")),
        fields: vec![
            ("Namespace", false, Value::str(namespace)),
            ("Name", false, Value::str(name)),
        ],
        methods: Vec::new(),
    });
    let values = Value::map(
        values
            .iter()
            .map(|(k, v)| (Value::str(k), Value::str(v)))
            .collect(),
        Value::str(""),
    );
    strct(vec![
        ("AutomationObject", false, automation),
        ("Changed", false, result),
        ("Values", false, values),
    ])
}

/// The top-level object of the YAML document holding `line` (1-based): its `apiVersion`,
/// `kind`, `metadata.name` and `metadata.namespace` written in block style, as kyaml reads
/// them. What this scan cannot see stays empty.
pub fn object_at(text: &str, line: usize) -> ObjectId {
    let lines: Vec<&str> = text.lines().collect();
    let is_marker = |l: &str| l.starts_with("---") || l.starts_with("...");
    let mut start = line.saturating_sub(1).min(lines.len());
    while start > 0 && !is_marker(lines[start - 1]) {
        start -= 1;
    }
    let mut end = line.min(lines.len());
    while end < lines.len() && !is_marker(lines[end]) {
        end += 1;
    }
    let mut id = ObjectId::default();
    let mut in_metadata = false;
    let scalar = |v: &str| {
        let v = v.split(" #").next().unwrap_or("").trim();
        v.trim_matches(|c| c == '"' || c == '\'').to_string()
    };
    for l in &lines[start..end] {
        if !l.starts_with([' ', '\t']) && !l.is_empty() && !l.starts_with('#') {
            in_metadata = false;
            if let Some(v) = l.strip_prefix("apiVersion:") {
                id.api_version = scalar(v);
            } else if let Some(v) = l.strip_prefix("kind:") {
                id.kind = scalar(v);
            } else if l.trim_end() == "metadata:" {
                in_metadata = true;
            } else if let Some(flow) = l
                .strip_prefix("metadata:")
                .map(str::trim)
                .and_then(|f| f.strip_prefix('{'))
                .and_then(|f| f.split('}').next())
            {
                for pair in flow.split(',') {
                    match pair.split_once(':').map(|(k, v)| (k.trim(), v)) {
                        Some(("name", v)) => id.name = scalar(v),
                        Some(("namespace", v)) => id.namespace = scalar(v),
                        _ => {}
                    }
                }
            }
        } else if in_metadata {
            let t = l.trim_start();
            let indent = l.len() - t.len();
            // Only metadata's direct keys (the first indentation seen).
            if let Some(v) = t.strip_prefix("name:") {
                if indent == metadata_indent(&lines[start..end]) {
                    id.name = scalar(v);
                }
            } else if let Some(v) = t.strip_prefix("namespace:")
                && indent == metadata_indent(&lines[start..end])
            {
                id.namespace = scalar(v);
            }
        }
    }
    id
}

fn metadata_indent(doc: &[&str]) -> usize {
    doc.iter()
        .skip_while(|l| l.trim_end() != "metadata:")
        .nth(1)
        .map_or(0, |l| l.len() - l.trim_start().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(file: &str, object: &ObjectId, old: &str, new: &str, setter: &str) -> FluxChange {
        FluxChange {
            file: file.into(),
            object: object.clone(),
            old: old.into(),
            new: new.into(),
            setter: setter.into(),
        }
    }

    fn deployment(name: &str, namespace: &str) -> ObjectId {
        ObjectId {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    fn render(template: &str, changes: &[FluxChange]) -> String {
        let values = BTreeMap::from([
            ("cluster".to_string(), "prod".to_string()),
            ("testing".to_string(), "value".to_string()),
        ]);
        FluxMessage::new(template, "test-ns", "test-update", values)
            .unwrap()
            .render(changes)
            .unwrap()
    }

    /// image-automation-controller internal/source/source_test.go: the data of the
    /// "commit with update ResultV2 template" case (deploy.yaml, Deployment "test" without a
    /// namespace, helloworld:1.0.0 -> helloworld:1.0.1).
    fn source_test_change() -> Vec<FluxChange> {
        vec![change(
            "deploy.yaml",
            &deployment("test", ""),
            "helloworld:1.0.0",
            "helloworld:1.0.1",
            "test-ns:policy",
        )]
    }

    #[test]
    fn result_v2_template_as_in_the_controller_test() {
        // internal/source/source_test.go testCommitTemplateResultV2 and its wantCommitMsg.
        let template = "Commit summary with ResultV2\n\nAutomation: {{ .AutomationObject }}\n\n{{ range $filename, $objchange := .Changed.FileChanges -}}\n- File: {{ $filename }}\n{{- range $obj, $changes := $objchange }}\n  - Object: {{ $obj.Kind }}/{{ $obj.Namespace }}/{{ $obj.Name }}\n    Changes:\n{{- range $_ , $change := $changes }}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n{{ end -}}\n{{ end -}}\n{{ end -}}\n";
        assert_eq!(
            render(template, &source_test_change()),
            "Commit summary with ResultV2\n\nAutomation: test-ns/test-update\n\n- File: deploy.yaml\n  - Object: Deployment//test\n    Changes:\n    - helloworld:1.0.0 -> helloworld:1.0.1\n"
        );
    }

    #[test]
    fn values_template_as_in_the_controller_test() {
        // internal/source/source_test.go testCommitTemplateWithValues and its wantCommitMsg.
        let template = "Commit summary\n\nAutomation: {{ .AutomationObject }}\n\nCluster: {{ index .Values \"cluster\" }}\nTesting: {{ .Values.testing }}\n";
        assert_eq!(
            render(template, &source_test_change()),
            "Commit summary\n\nAutomation: test-ns/test-update\n\nCluster: prod\nTesting: value\n"
        );
    }

    #[test]
    fn objects_aggregate_across_files_as_in_the_controller_test() {
        // internal/source/source_test.go TestTemplateMsgAggregatesObjectChangesAcrossFiles:
        // the same object in two files; the ResultV2 template lists both changes.
        let podinfo = deployment("podinfo", "default");
        let changes = [
            change(
                "base/deployment.yaml",
                &podinfo,
                "podinfo:v1.0.0",
                "podinfo:v1.0.1",
                "flux-system:podinfo",
            ),
            change(
                "overlays/prod/deployment.yaml",
                &podinfo,
                "1",
                "2",
                "flux-system:replicas",
            ),
        ];
        let msg = render(
            "{{ range $o, $cs := .Changed.Objects }}{{ $o.Name }}:{{ range $cs }} {{ .OldValue }} -> {{ .NewValue }};{{ end }}{{ end }}",
            &changes,
        );
        assert_eq!(msg, "podinfo: podinfo:v1.0.0 -> podinfo:v1.0.1; 1 -> 2;");
    }

    #[test]
    fn documentation_examples() {
        // docs/spec/v1/imageupdateautomations.md, "Message Template": the methods example.
        let methods = "Automated image update\n\nAutomation name: {{ .AutomationObject }}\n\nFiles:\n{{ range $filename, $_ := .Changed.FileChanges -}}\n- {{ $filename }}\n{{ end -}}\n\nObjects:\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}\n  Changes:\n{{- range $_, $change := $changes }}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n{{ end -}}\n{{ end -}}\n";
        let changes = [
            change(
                "apps/b.yaml",
                &deployment("web", "prod"),
                "web:5.0.2",
                "web:5.0.3",
                "prod:web",
            ),
            change(
                "apps/a.yaml",
                &deployment("api", "prod"),
                "api:1.0",
                "api:1.1",
                "prod:api",
            ),
        ];
        assert_eq!(
            render(methods, &changes),
            "Automated image update\n\nAutomation name: test-ns/test-update\n\nFiles:\n- apps/a.yaml\n- apps/b.yaml\nObjects:\n- Deployment api\n  Changes:\n    - api:1.0 -> api:1.1\n- Deployment web\n  Changes:\n    - web:5.0.2 -> web:5.0.3\n"
        );
        // The same page, with template functions (lower, contains, if/else).
        let functions = "Objects:\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind | lower }} {{ $resource.Name | lower }}\n  Changes:\n{{- range $_, $change := $changes }}\n  {{ if contains \"5.0.3\" $change.NewValue -}}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n  {{ else -}}\n    [skip ci] wrong image\n  {{ end -}}\n{{ end -}}\n{{ end -}}\n";
        assert_eq!(
            render(functions, &changes),
            "Objects:\n- deployment api\n  Changes:\n  [skip ci] wrong image\n  - deployment web\n  Changes:\n  - web:5.0.2 -> web:5.0.3\n  "
        );
        // The Gitea example: print and println over .Changed.Changes.
        assert_eq!(
            render(
                "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
                &changes
            ),
            "api:1.0 -> api:1.1\nweb:5.0.2 -> web:5.0.3\n"
        );
        // The Gerrit example: a Change-Id from the data printed with toString.
        let gerrit = "Perform automatic image update\n\nAutomation name: {{ .AutomationObject }}\n\n{{- $ChangeId := .AutomationObject -}}\n{{- $ChangeId = printf \"%s%s\" $ChangeId ( .Changed.FileChanges | toString ) -}}\n{{- $ChangeId = printf \"%s%s\" $ChangeId ( .Changed.Objects | toString ) -}}\n{{- $ChangeId = printf \"%s%s\" $ChangeId ( .Changed.Changes | toString ) }}\nChange-Id: {{ printf \"I%s\" ( sha256sum $ChangeId | trunc 40 ) }}\n";
        let one = source_test_change();
        let text = render(gerrit, &one);
        // What Go's fmt prints for this data (%v of map[string]ObjectChanges, ObjectChanges
        // and []Change), hashed as the template does.
        let id = "test-ns/test-update\
                  map[deploy.yaml:map[{{{apps/v1 Deployment} {test }}}:[{helloworld:1.0.0 helloworld:1.0.1 test-ns:policy}]]]\
                  map[{{{apps/v1 Deployment} {test }}}:[{helloworld:1.0.0 helloworld:1.0.1 test-ns:policy}]]\
                  [{helloworld:1.0.0 helloworld:1.0.1 test-ns:policy}]";
        let hash: String = sha2::Sha256::digest(id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        use sha2::Digest as _;
        assert_eq!(
            text,
            format!(
                "Perform automatic image update\n\nAutomation name: test-ns/test-update\nChange-Id: I{}\n",
                &hash[..40]
            )
        );
    }

    #[test]
    fn removed_and_unknown_fields_are_refused_by_name() {
        // internal/source/source_test.go testCommitTemplateRemoved / testCommitTemplateImageResult.
        let removed =
            "Files:\n{{ range $filename, $_ := .Updated.Files -}}\n- {{ $filename }}\n{{ end -}}\n";
        let e = FluxMessage::new(removed, "a", "b", BTreeMap::new()).unwrap_err();
        assert!(
            e.contains(".Updated.Files: template uses removed '.Updated' field"),
            "{e}"
        );
        let e = FluxMessage::new(
            "{{ range .Changed.ImageResult.Images -}}\n{{ end }}",
            "a",
            "b",
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.contains("removed '.Changed.ImageResult' field"), "{e}");
        let m = FluxMessage::new(
            "{{ .Values.cluster }} {{ $.Values.zone }}",
            "a",
            "b",
            BTreeMap::from([("cluster".into(), "prod".into())]),
        )
        .unwrap();
        assert_eq!(m.missing_values(), ["zone"]);
        assert_eq!(m.render(&[]).unwrap(), "prod <no value>");
        let e = FluxMessage::new("{{ .Changed.Nope }}", "a", "b", BTreeMap::new()).unwrap_err();
        assert!(
            e.contains("{{ .Changed.Nope }}: can't evaluate field Nope"),
            "{e}"
        );
    }

    #[test]
    fn the_object_is_the_document_holding_the_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    name: x\n  name: web\n  namespace: \"prod\"\nspec:\n  image: a:1 # {\"$imagepolicy\": \"prod:web\"}\n";
        assert_eq!(object_at(text, 14), deployment("web", "prod"));
        assert_eq!(object_at(text, 2).kind, "ConfigMap");
        let flow = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: 'prod'}\nspec: {}\n";
        assert_eq!(object_at(flow, 4), deployment("web", "prod"));
    }
}
