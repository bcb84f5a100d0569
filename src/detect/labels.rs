//! What a detector says about itself: class names (from a labels file, the model's
//! `names` metadata, or "class N") and the input size, stride and task its exporter
//! recorded.
//!
//! Exporters write metadata values as Python's `str()` of them: ultralytics stores
//! `names` as a dict literal (`{0: 'person', 1: 'car'}`), YOLOv5 as a dict or a list
//! literal, `imgsz` as `[640, 640]`, `stride` as `32`; other tools write JSON. One small
//! reader of those literals (strings in either quote with Python's or JSON's escapes,
//! integer or quoted integer keys, trailing commas) takes them all.
//!
//! A `names` entry that is there but does not read is an error, not a silent "class N":
//! scored against named annotations, every "class N" would match nothing. A labels file
//! replaces the entry (and is the fix the error names).

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

/// The name of class `id`: from `labels`, else "class N".
pub fn label_of(labels: &[String], id: usize) -> String {
    labels
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("class {id}"))
}

/// Whether `label` is what [`label_of`] makes of class `id` without a name.
pub fn is_unnamed(label: &str, id: usize) -> bool {
    label
        .strip_prefix("class ")
        .is_some_and(|n| n.parse() == Ok(id))
}

/// The metadata entries of a detector that say what it is, each `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMetadata {
    /// `names`: class names by class id.
    pub names: Option<Vec<String>>,
    /// `imgsz`: the input size the model was exported at, `[height, width]`.
    pub imgsz: Option<[usize; 2]>,
    /// `stride`: the largest stride of the detection head, in input pixels.
    pub stride: Option<usize>,
    /// `task`: what the model does (`detect`, `segment`, `pose`, ...).
    pub task: Option<String>,
    /// `end2end`: the head gives final boxes `(1, K, 6)` (YOLOv10; ultralytics writes
    /// Python's `True`/`False`).
    pub end2end: Option<bool>,
}

impl ModelMetadata {
    /// Reads the entries of a model's `metadata_props`; one that is there but does not
    /// read is an error naming it and what was expected.
    pub fn read(entries: &BTreeMap<String, String>) -> Result<Self, DetectError> {
        Ok(ModelMetadata {
            names: entries.get("names").map(|t| parse_names(t)).transpose()?,
            imgsz: entries.get("imgsz").map(|t| parse_imgsz(t)).transpose()?,
            stride: entries.get("stride").map(|t| parse_stride(t)).transpose()?,
            task: entries
                .get("task")
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            end2end: entries.get("end2end").map(|t| parse_bool(t)).transpose()?,
        })
    }
}

/// Parses a model's `names` metadata: a dict of class id to name (Python's
/// `{0: 'person', 1: 'car'}` or JSON's `{"0": "person"}`) or a list of names (Python or
/// JSON). Ids must be 0..n, each once.
pub fn parse_names(text: &str) -> Result<Vec<String>, DetectError> {
    let fail = |why: String| {
        DetectError::new(format!(
            "model metadata `names` does not read: {why}; expected class names as a dict {{0: 'person', 1: 'car'}} or a list [\"person\", \"car\"] (a labels file, one name per line, replaces them)"
        ))
    };
    let names = match Literal::parse(text).map_err(fail)? {
        Literal::List(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Literal::Str(s) => Ok(s),
                other => Err(fail(format!("item {i} is {}, not a name", other.kind()))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Literal::Dict(pairs) => names_by_id(pairs).map_err(fail)?,
        other => return Err(fail(format!("found {}", other.kind()))),
    };
    if names.is_empty() {
        return Err(fail("it names no class".into()));
    }
    Ok(names)
}

/// The names of a `names` dict, in id order; its ids must be exactly 0..n.
fn names_by_id(pairs: Vec<(Literal, Literal)>) -> Result<Vec<String>, String> {
    let mut by_id = BTreeMap::new();
    for (key, value) in pairs {
        let id = match &key {
            Literal::Int(i) => usize::try_from(*i).ok(),
            Literal::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("key {} is not a class id", key.show()))?;
        let Literal::Str(name) = value else {
            return Err(format!("class {id} is {}, not a name", value.kind()));
        };
        if by_id.insert(id, name).is_some() {
            return Err(format!("class {id} is named twice"));
        }
    }
    if let Some(missing) = (0..by_id.len()).find(|i| !by_id.contains_key(i)) {
        return Err(format!(
            "class ids run to {} but class {missing} has no name",
            by_id.keys().next_back().unwrap_or(&0)
        ));
    }
    Ok(by_id.into_values().collect())
}

/// Parses `imgsz`: `[height, width]`, `(h, w)`, `[size]` or `size`.
fn parse_imgsz(text: &str) -> Result<[usize; 2], DetectError> {
    let size = match Literal::parse(text) {
        Ok(Literal::Int(n)) => vec![n],
        Ok(Literal::List(items)) => items
            .iter()
            .map(|i| match i {
                Literal::Int(n) => Some(*n),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let positive = |n: i64| usize::try_from(n).ok().filter(|&n| n > 0);
    match size.as_slice() {
        [n] => positive(*n).map(|n| [n, n]),
        [h, w] => positive(*h).zip(positive(*w)).map(|(h, w)| [h, w]),
        _ => None,
    }
    .ok_or_else(|| {
        DetectError::new(format!(
            "model metadata `imgsz` does not read: `{}`; expected an input size [height, width] or a single size, e.g. [640, 640] or 640",
            excerpt(text)
        ))
    })
}

/// Parses `stride`: a positive integer.
fn parse_stride(text: &str) -> Result<usize, DetectError> {
    match Literal::parse(text) {
        Ok(Literal::Int(n)) if n > 0 => Ok(n as usize),
        _ => Err(DetectError::new(format!(
            "model metadata `stride` does not read: `{}`; expected a positive integer, e.g. 32",
            excerpt(text)
        ))),
    }
}

/// Parses `end2end`: Python's `True`/`False` (what ultralytics writes), JSON's
/// `true`/`false`, or `1`/`0`.
fn parse_bool(text: &str) -> Result<bool, DetectError> {
    match text.trim() {
        "True" | "true" | "1" => Ok(true),
        "False" | "false" | "0" => Ok(false),
        _ => Err(DetectError::new(format!(
            "model metadata `end2end` does not read: `{}`; expected True or False",
            excerpt(text)
        ))),
    }
}

/// At most 60 characters of `text`, for an error message on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &one_line[..end]),
        None => one_line,
    }
}

/// A Python or JSON literal of the kinds exporters write: integers, strings, lists (and
/// tuples), dicts.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Int(i64),
    Str(String),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

impl Literal {
    /// Parses the whole of `text` as one literal; the error says what and where.
    fn parse(text: &str) -> Result<Literal, String> {
        let mut reader = Reader {
            chars: text.chars().collect(),
            at: 0,
        };
        let value = reader.value()?;
        reader.skip_space();
        match reader.peek() {
            None => Ok(value),
            Some(_) => Err(reader.unexpected("after the value")),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Literal::Int(_) => "a number",
            Literal::Str(_) => "a string",
            Literal::List(_) => "a list",
            Literal::Dict(_) => "a dict",
        }
    }

    /// A short rendering for messages.
    fn show(&self) -> String {
        match self {
            Literal::Int(n) => n.to_string(),
            Literal::Str(s) => format!("'{s}'"),
            other => other.kind().to_string(),
        }
    }
}

/// A recursive-descent reader over the characters of a literal.
struct Reader {
    chars: Vec<char>,
    at: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// "unexpected `x` at character N <context>", or "ends <context>" at the end.
    fn unexpected(&self, context: &str) -> String {
        match self.peek() {
            Some(c) => format!("unexpected `{c}` at character {} {context}", self.at + 1),
            None => format!("the text ends {context}"),
        }
    }

    fn value(&mut self) -> Result<Literal, String> {
        self.skip_space();
        match self.peek() {
            Some('{') => self.dict(),
            Some('[') => self.sequence(']').map(Literal::List),
            Some('(') => self.sequence(')').map(Literal::List),
            Some(q @ ('\'' | '"')) => self.string(q).map(Literal::Str),
            Some(c) if c == '-' || c.is_ascii_digit() => self.int(),
            _ => Err(self.unexpected("where a value should be")),
        }
    }

    /// `open item, item, ... close` with an optional trailing comma; `self.at` is on
    /// the opening bracket.
    fn items<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(out);
            }
            out.push(item(self)?);
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(c) if c == close => {}
                _ => return Err(self.unexpected(&format!("where `,` or `{close}` should be"))),
            }
        }
    }

    fn sequence(&mut self, close: char) -> Result<Vec<Literal>, String> {
        self.items(close, Self::value)
    }

    fn dict(&mut self) -> Result<Literal, String> {
        self.items('}', |r| {
            let key = r.value()?;
            r.skip_space();
            if r.peek() != Some(':') {
                return Err(r.unexpected("where `:` should be"));
            }
            r.at += 1;
            Ok((key, r.value()?))
        })
        .map(Literal::Dict)
    }

    fn int(&mut self) -> Result<Literal, String> {
        let start = self.at;
        if self.peek() == Some('-') {
            self.at += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits: String = self.chars[start..self.at].iter().collect();
        digits
            .parse()
            .map(Literal::Int)
            .map_err(|_| format!("`{digits}` at character {} is not an integer", start + 1))
    }

    /// A string in `quote`, with Python's escapes (a superset of JSON's but for `\/`,
    /// taken too); `self.at` is on the opening quote.
    fn string(&mut self, quote: char) -> Result<String, String> {
        let start = self.at + 1;
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!(
                    "the string that starts at character {start} has no closing {quote}"
                ));
            };
            self.at += 1;
            match c {
                c if c == quote => return Ok(out),
                '\\' => out.push(self.escape()?),
                c => out.push(c),
            }
        }
    }

    /// The character an escape stands for; `self.at` is after the backslash.
    fn escape(&mut self) -> Result<char, String> {
        let at = self.at;
        let c = self
            .peek()
            .ok_or_else(|| "the text ends inside an escape".to_string())?;
        self.at += 1;
        Ok(match c {
            '\\' | '\'' | '"' | '/' => c,
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'a' => '\u{7}',
            '0' => '\0',
            'x' => self.code_point(2, at)?,
            'u' => {
                let high = self.code_point_value(4, at)?;
                if (0xD800..0xDC00).contains(&high)
                    && self.chars[self.at..].starts_with(&['\\', 'u'])
                {
                    // A JSON surrogate pair.
                    self.at += 2;
                    let low = self.code_point_value(4, at)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(bad_escape(at));
                    }
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                        .ok_or_else(|| bad_escape(at))?
                } else {
                    char::from_u32(high).ok_or_else(|| bad_escape(at))?
                }
            }
            'U' => self.code_point(8, at)?,
            _ => return Err(format!("unknown escape `\\{c}` at character {at}")),
        })
    }

    fn code_point(&mut self, digits: usize, at: usize) -> Result<char, String> {
        let v = self.code_point_value(digits, at)?;
        char::from_u32(v).ok_or_else(|| bad_escape(at))
    }

    fn code_point_value(&mut self, digits: usize, at: usize) -> Result<u32, String> {
        let hex: String = self.chars.iter().skip(self.at).take(digits).collect();
        if hex.len() != digits {
            return Err(bad_escape(at));
        }
        self.at += digits;
        u32::from_str_radix(&hex, 16).map_err(|_| bad_escape(at))
    }
}

fn bad_escape(at: usize) -> String {
    format!("bad escape at character {at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        parse_names(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn names_error(text: &str) -> String {
        match parse_names(text) {
            Ok(n) => panic!("{text} reads as {n:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_read_in_every_form_exporters_write() {
        let want = ["person", "car", "traffic light"];
        for text in [
            // ultralytics (str of a dict), YOLOv5 (str of a list), JSON list and dict
            "{0: 'person', 1: 'car', 2: 'traffic light'}",
            "['person', 'car', 'traffic light']",
            r#"["person", "car", "traffic light"]"#,
            r#"{"0": "person", "1": "car", "2": "traffic light"}"#,
            // trailing commas, other spacing, ids out of order, a tuple
            "{0: 'person', 1: 'car', 2: 'traffic light',}",
            "  {0:'person',\n 1 :'car' ,2:  'traffic light' }  ",
            "{2: 'traffic light', 0: 'person', 1: 'car'}",
            "('person', 'car', 'traffic light',)",
            "{'0': 'person', '1': \"car\", 2: 'traffic light'}",
        ] {
            assert_eq!(names(text), want, "{text}");
        }
    }

    #[test]
    fn names_keep_quotes_escapes_and_non_ascii_as_python_and_json_write_them() {
        // Python's repr: double quotes around a name with a single quote, escapes when
        // it has both
        assert_eq!(
            names(r#"{0: "driver's seat", 1: 'say "hi"', 2: 'it\'s "x"', 3: 'a\\b'}"#),
            [r#"driver's seat"#, r#"say "hi""#, r#"it's "x""#, r"a\b"]
        );
        assert_eq!(
            names(r#"["caf\u00e9", "\ud83d\ude97 car", "tab\there", "Fu\u00dfg\u00e4nger"]"#),
            ["café", "🚗 car", "tab\there", "Fußgänger"]
        );
        assert_eq!(names("{0: 'Straße', 1: '\\xe9t\\xe9'}"), ["Straße", "été"]);
        assert_eq!(names("{0: '{1: x}', 1: 'a, b: c'}"), ["{1: x}", "a, b: c"]);
    }

    #[test]
    fn names_that_do_not_read_are_a_one_line_error_saying_what_was_expected() {
        for (text, says) in [
            (
                "person, car",
                "unexpected `p` at character 1 where a value should be",
            ),
            (
                "{0: 'a",
                "the string that starts at character 5 has no closing '",
            ),
            (
                "{0: 'a', 2: 'b'}",
                "class ids run to 2 but class 1 has no name",
            ),
            ("{0: 'a', 0: 'b'}", "class 0 is named twice"),
            (
                "{0: 'a' 1: 'b'}",
                "unexpected `1` at character 9 where `,` or `}` should be",
            ),
            ("{0 'a'}", "where `:` should be"),
            ("{'x': 'a'}", "key 'x' is not a class id"),
            ("{-1: 'a'}", "key -1 is not a class id"),
            ("{0: 1}", "class 0 is a number, not a name"),
            ("['a', 2]", "item 1 is a number, not a name"),
            ("{}", "it names no class"),
            ("[]", "it names no class"),
            ("80", "found a number"),
            ("'person'", "found a string"),
            (
                "['a'] ['b']",
                "unexpected `[` at character 7 after the value",
            ),
            ("['a\\q']", "unknown escape `\\q`"),
            ("['a\\u00']", "bad escape"),
            (r#"["\ud83d\u0041"]"#, "bad escape at character 3"),
            ("", "the text ends where a value should be"),
            ("{0: None}", "unexpected `N`"),
        ] {
            let e = names_error(text);
            assert!(e.contains(says), "{text}: {e}");
            assert!(
                e.starts_with("model metadata `names` does not read: "),
                "{text}: {e}"
            );
            assert!(
                e.ends_with(
                    "expected class names as a dict {0: 'person', 1: 'car'} or a list [\"person\", \"car\"] (a labels file, one name per line, replaces them)"
                ),
                "{text}: {e}"
            );
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn input_size_stride_task_and_end2end_read_as_exporters_write_them() {
        let entries = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let meta = ModelMetadata::read(&entries(&[
            ("names", "{0: 'person', 1: 'car', 2: 'bicycle'}"),
            ("imgsz", "[320, 416]"),
            ("stride", "32"),
            ("task", "detect"),
            ("end2end", "True"),
            ("modality", "thermal"),
        ]))
        .unwrap();
        assert_eq!(
            meta,
            ModelMetadata {
                names: Some(vec!["person".into(), "car".into(), "bicycle".into()]),
                imgsz: Some([320, 416]),
                stride: Some(32),
                task: Some("detect".into()),
                end2end: Some(true),
            }
        );
        let meta = ModelMetadata::read(&entries(&[("end2end", "False")])).unwrap();
        assert_eq!(meta.end2end, Some(false));
        assert_eq!(
            ModelMetadata::read(&BTreeMap::new()).unwrap(),
            ModelMetadata::default()
        );
        for (text, size) in [
            ("640", [640, 640]),
            ("(480, 640)", [480, 640]),
            ("[512]", [512, 512]),
        ] {
            let meta = ModelMetadata::read(&entries(&[("imgsz", text)])).unwrap();
            assert_eq!(meta.imgsz, Some(size), "{text}");
        }
        for (key, text, says) in [
            (
                "imgsz",
                "[640, 0]",
                "model metadata `imgsz` does not read: `[640, 0]`; expected an input size",
            ),
            ("imgsz", "640x640", "`imgsz` does not read: `640x640`"),
            ("imgsz", "[1, 2, 3]", "`imgsz` does not read"),
            (
                "stride",
                "0",
                "model metadata `stride` does not read: `0`; expected a positive integer",
            ),
            ("stride", "[8, 16, 32]", "`stride` does not read"),
            ("names", "oops", "model metadata `names` does not read"),
            (
                "end2end",
                "yes",
                "model metadata `end2end` does not read: `yes`; expected True or False",
            ),
        ] {
            let e = ModelMetadata::read(&entries(&[(key, text)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{key}={text}: {e}");
        }
        let long = format!("[{}]", "9".repeat(200));
        let e = ModelMetadata::read(&entries(&[("imgsz", &long)]))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "a long value is cut short: {e}");
    }

    #[test]
    fn unnamed_labels_are_recognised_by_their_class_id() {
        assert!(is_unnamed("class 3", 3));
        assert!(is_unnamed(&label_of(&[], 12), 12));
        assert!(!is_unnamed("class 3", 2));
        assert!(!is_unnamed("person", 0));
        assert!(!is_unnamed("class 03x", 3));
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
