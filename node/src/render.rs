//! What a node's effective config becomes on disk: `config.json` (the whole
//! merged tree) and the files the config declares under `files`, a map of
//! relative path → template rendered with the config's values (minijinja,
//! strict about undefined names, with a fuel limit so a template cannot run
//! forever).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// A release's contents: relative path → bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

pub const CONFIG_FILE: &str = "config.json";
/// Declared files live under this folder of a release.
pub const FILES_DIR: &str = "files";
const FUEL: u64 = 100_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("files.{path}: {why}")]
    BadPath { path: String, why: String },
    #[error("files.{path}: the template must be text")]
    NotText { path: String },
    #[error("files.{path}: template error: {detail}")]
    Template { path: String, detail: String },
}

pub use fleetdeck_store::config::revision;

fn check_path(p: &str) -> Result<PathBuf, RenderError> {
    fleetdeck_store::schema::file_path(p).map_err(|why| RenderError::BadPath {
        path: p.to_string(),
        why,
    })?;
    Ok(PathBuf::from(FILES_DIR).join(p))
}

pub fn render(tree: &Value) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    let config = serde_json::to_vec_pretty(tree).unwrap_or_default();
    out.files.insert(PathBuf::from(CONFIG_FILE), config);
    let Some(Value::Object(files)) = tree.get("files") else {
        return Ok(out);
    };
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // A config file ends as its template does (newline included).
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_fuel(Some(FUEL));
    // Rendering templates does not itself refer to `files`.
    for (path, template) in files {
        let rel = check_path(path)?;
        let Value::String(src) = template else {
            return Err(RenderError::NotText { path: path.clone() });
        };
        let text = env
            .render_str(src, minijinja::value::Serde(tree))
            .map_err(|e| RenderError::Template {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        out.files.insert(rel, text.into_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn templates_render_with_the_config_values() {
        let tree = json!({
            "frigate": {"version": "0.14", "cameras": ["front", "back"]},
            "files": {"frigate/config.yml": "version: {{ frigate.version }}\n{% for c in frigate.cameras %}- {{ c }}\n{% endfor %}"}
        });
        let r = render(&tree).unwrap();
        assert_eq!(
            String::from_utf8(r.files[Path::new("files/frigate/config.yml")].clone()).unwrap(),
            "version: 0.14\n- front\n- back\n"
        );
        assert!(r.files.contains_key(Path::new("config.json")));
    }

    #[test]
    fn bad_paths_templates_and_undefined_names_are_named() {
        let e = render(&json!({"files": {"../etc/passwd": "x"}})).unwrap_err();
        assert!(matches!(e, RenderError::BadPath { .. }), "{e}");
        let e = render(&json!({"files": {"/etc/x": "x"}})).unwrap_err();
        assert!(matches!(e, RenderError::BadPath { .. }));
        let e = render(&json!({"files": {"a": "{{ nope.missing }}"}})).unwrap_err();
        assert!(e.to_string().starts_with("files.a: template error"), "{e}");
        let e = render(&json!({"files": {"a": 5}})).unwrap_err();
        assert_eq!(e, RenderError::NotText { path: "a".into() });
        let e = render(&json!({"files": {"a": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"}})).unwrap_err();
        assert!(
            e.to_string().contains("template error"),
            "runaway templates stop: {e}"
        );
    }

    #[test]
    fn the_revision_depends_only_on_the_config() {
        let a = json!({"a": 1, "b": [1, 2]});
        let b = json!({"b": [1, 2], "a": 1});
        assert_eq!(revision(&a), revision(&b));
        assert_ne!(revision(&a), revision(&json!({"a": 2, "b": [1, 2]})));
        assert_eq!(revision(&a).len(), 16);
    }
}
