//! Flux `messageTemplate`s (Go text/template) -> a tagsmith commit message. What a template can
//! say without the run's changes (`.AutomationObject`, `.Values`) is evaluated here; anything
//! that needs them is refused, naming the construct, rather than rendered differently.

use std::collections::BTreeMap;

/// The message, or why the template cannot be used.
pub fn translate(
    template: &str,
    namespace: &str,
    name: &str,
    values: Option<&BTreeMap<String, String>>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action at {:?}", &rest[open..]))?;
        let raw = &rest[open..open + close + 4];
        let mut action = &after[..close];
        // `{{- ` and ` -}}` trim the white space next to the action (text/template).
        if let Some(a) = action.strip_prefix("- ") {
            text = text.trim_end();
            action = a;
        }
        let mut trim_after = false;
        if let Some(a) = action.strip_suffix(" -") {
            trim_after = true;
            action = a;
        }
        out.push_str(text);
        out.push_str(&evaluate(action.trim(), raw, namespace, name, values)?);
        rest = &after[close + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    out.push_str(rest);
    if out.contains("{{") || out.contains("}}") {
        return Err(
            "the message would contain '{{' or '}}', which tagsmith templates reserve".into(),
        );
    }
    Ok(out)
}

fn evaluate(
    action: &str,
    raw: &str,
    namespace: &str,
    name: &str,
    values: Option<&BTreeMap<String, String>>,
) -> Result<String, String> {
    match action {
        // types.NamespacedName prints as namespace/name.
        ".AutomationObject" => return Ok(format!("{namespace}/{name}")),
        ".AutomationObject.Namespace" => return Ok(namespace.to_string()),
        ".AutomationObject.Name" => return Ok(name.to_string()),
        _ => {}
    }
    if action.starts_with("/*") && action.ends_with("*/") {
        return Ok(String::new());
    }
    // `index .Values "key"` says the same as `.Values.key`.
    let quoted = action
        .strip_prefix("index .Values ")
        .map(str::trim)
        .and_then(|k| k.strip_prefix('"'))
        .and_then(|k| k.strip_suffix('"'))
        .filter(|k| !k.contains(['"', '\\']));
    if let Some(key) = action.strip_prefix(".Values.").or(quoted) {
        return match values.and_then(|v| v.get(key)) {
            Some(v) => Ok(v.clone()),
            None => Err(format!("{raw}: no messageTemplateValues key {key:?}")),
        };
    }
    let what = if action.contains(".Updated") {
        "the removed .Updated data"
    } else if action.contains(".Changed") {
        "the run's changes (.Changed)"
    } else if action.starts_with("range")
        || action.starts_with("if")
        || action.starts_with("with")
        || action == "end"
        || action == "else"
    {
        "control structures"
    } else {
        "this construct"
    };
    Err(format!(
        "{raw} is not supported: tagsmith evaluates .AutomationObject and .Values, not {what}; write the message with tagsmith's placeholders ({{{{images}}}}, {{{{changes}}}}) in tagsmith.yaml"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_parts_are_evaluated() {
        let values = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        assert_eq!(
            translate(
                "Automated image update by {{ .AutomationObject }}\n\n{{- /* note */ -}}\nenv: {{ .Values.env }}",
                "flux-system",
                "podinfo",
                Some(&values)
            )
            .unwrap(),
            "Automated image update by flux-system/podinfoenv: prod"
        );
        assert_eq!(translate("plain", "a", "b", None).unwrap(), "plain");
    }

    #[test]
    fn values_by_index_as_in_the_controller_tests() {
        // image-automation-controller internal/source/source_test.go,
        // testCommitTemplateWithValues and its wantCommitMsg.
        let template = "Commit summary\n\nAutomation: {{ .AutomationObject }}\n\nCluster: {{ index .Values \"cluster\" }}\nTesting: {{ .Values.testing }}\n";
        let values = BTreeMap::from([
            ("cluster".to_string(), "prod".to_string()),
            ("testing".to_string(), "value".to_string()),
        ]);
        assert_eq!(
            translate(template, "test-ns", "test-update", Some(&values)).unwrap(),
            "Commit summary\n\nAutomation: test-ns/test-update\n\nCluster: prod\nTesting: value\n"
        );
    }

    #[test]
    fn dynamic_parts_are_refused_by_name() {
        let e = translate("{{ range .Changed.Changes }}x{{ end }}", "a", "b", None).unwrap_err();
        assert!(
            e.contains("{{ range .Changed.Changes }} is not supported"),
            "{e}"
        );
        let e = translate("{{ range .Updated.Images }}", "a", "b", None).unwrap_err();
        assert!(e.contains(".Updated"), "{e}");
        assert!(
            translate("{{ .Values.x }}", "a", "b", None)
                .unwrap_err()
                .contains("no messageTemplateValues key")
        );
    }
}
