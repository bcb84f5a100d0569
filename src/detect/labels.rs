//! Class names: from a labels file, from the model's `names` metadata, or "class N".

use std::collections::BTreeMap;
use std::path::Path;

use super::DetectError;

/// Reads a labels file: one name per line, blank lines and surrounding spaces ignored.
pub fn read_labels_file(path: &Path) -> Result<Vec<String>, DetectError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DetectError::new(format!("cannot read labels {}: {e}", path.display())))?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if labels.is_empty() {
        return Err(DetectError::new(format!(
            "labels file {} is empty",
            path.display()
        )));
    }
    Ok(labels)
}

/// Parses a model's `names` metadata: the ultralytics form `{0: 'person', 1: 'car'}`
/// (a Python dict literal) or JSON (`["person", "car"]` or `{"0": "person"}`).
pub fn parse_names(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(text) {
        return Some(list);
    }
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut names = BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':')?;
        let key: usize = key.trim().trim_matches(['\'', '"']).parse().ok()?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let end = after[1..].find(quote)? + 1;
        names.insert(key, after[1..end].to_string());
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    // Indices must be exactly 0..n.
    names
        .keys()
        .enumerate()
        .all(|(i, k)| i == *k)
        .then(|| names.into_values().collect())
}

/// The name of class `id`: from `labels`, else "class N".
pub fn label_of(labels: &[String], id: usize) -> String {
    labels
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("class {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_ultralytics_and_json_forms() {
        let want = vec!["person".to_string(), "car".into(), "traffic light".into()];
        assert_eq!(
            parse_names("{0: 'person', 1: 'car', 2: 'traffic light'}"),
            Some(want.clone())
        );
        assert_eq!(
            parse_names(r#"["person", "car", "traffic light"]"#),
            Some(want.clone())
        );
        assert_eq!(
            parse_names(r#"{"0": "person", "1": "car", "2": "traffic light"}"#),
            Some(want)
        );
        assert_eq!(parse_names("{0: 'a', 2: 'b'}"), None, "gap in indices");
        assert_eq!(parse_names("person, car"), None);
        assert_eq!(parse_names("{0: 'a"), None);
    }

    #[test]
    fn labels_file_and_fallback_names() {
        let dir = std::env::temp_dir().join(format!("tzsq-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.txt");
        std::fs::write(&path, "person\n\n car \nbicycle\n").unwrap();
        let labels = read_labels_file(&path).unwrap();
        assert_eq!(labels, ["person", "car", "bicycle"]);
        assert_eq!(label_of(&labels, 5), "class 5");
        std::fs::write(&path, "\n").unwrap();
        assert!(
            read_labels_file(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(read_labels_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
