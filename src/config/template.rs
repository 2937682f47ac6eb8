//! Commit message templates: text with `{{name}}` placeholders, or a Flux messageTemplate (Go
//! text/template), checked when the config loads.

use std::sync::Arc;

use super::flux::template::FluxMessage;

/// The placeholders a commit message may use.
pub const VARIABLES: [&str; 4] = ["target", "changes", "count", "images"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// Set for a Flux messageTemplate: rendered over the run's changes as Flux renders it.
    flux: Option<Arc<FluxMessage>>,
}

pub const DEFAULT_MESSAGE: &str = "Update {{images}} in {{target}}\n\n{{changes}}\n";

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!(
                    "unclosed '{{{{' in commit message template at {:?}",
                    &rest[open..]
                )
            })?;
            let name = after[..close].trim();
            if !VARIABLES.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{{{name}}}}} in commit message template (known: {})",
                    VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", ")
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts, flux: None })
    }

    pub fn flux(message: FluxMessage) -> Self {
        Self {
            parts: Vec::new(),
            flux: Some(Arc::new(message)),
        }
    }

    pub fn as_flux(&self) -> Option<&FluxMessage> {
        self.flux.as_deref()
    }

    pub fn render(&self, value: impl Fn(&str) -> String) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Var(v) => value(v),
            })
            .collect()
    }
}

impl Default for Template {
    fn default() -> Self {
        // The default is a constant checked by the tests below.
        Self::parse(DEFAULT_MESSAGE).unwrap_or(Self {
            parts: Vec::new(),
            flux: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_placeholders() {
        let t = Template::parse("Update {{ target }}: {{count}} changes\n\n{{changes}}").unwrap();
        let out = t.render(|v| match v {
            "target" => "prod".into(),
            "count" => "2".into(),
            _ => "- a\n- b".into(),
        });
        assert_eq!(out, "Update prod: 2 changes\n\n- a\n- b");
        assert_eq!(
            Template::default(),
            Template::parse(DEFAULT_MESSAGE).unwrap()
        );
        assert!(!Template::default().parts.is_empty());
    }

    #[test]
    fn unknown_or_unclosed_placeholders_fail() {
        assert!(
            Template::parse("{{tagz}}")
                .unwrap_err()
                .contains("unknown placeholder {{tagz}}")
        );
        assert!(
            Template::parse("x {{target")
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
