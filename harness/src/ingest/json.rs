//! A JSON document read from a file, with accessors whose errors name the file and field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::IngestError;

/// A parsed JSON file.
#[derive(Debug)]
pub(crate) struct JsonFile {
    pub(crate) path: PathBuf,
    pub(crate) root: Value,
}

impl JsonFile {
    /// Reads and parses `path`; syntax errors carry line and column.
    pub(crate) fn read(path: &Path) -> Result<Self, IngestError> {
        let text = std::fs::read_to_string(path).map_err(|source| IngestError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the content of `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, IngestError> {
        let root = serde_json::from_str(text).map_err(|e| IngestError::Json {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?;
        Ok(Self {
            path: path.to_owned(),
            root,
        })
    }

    /// An error about `field` of this file.
    pub(crate) fn field_error(&self, field: &str, reason: impl Into<String>) -> IngestError {
        IngestError::Field {
            path: self.path.clone(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// The value at dotted `field` (object keys only), or a "missing" error.
    pub(crate) fn get(&self, field: &str) -> Result<&Value, IngestError> {
        self.get_in(&self.root, field, field)
    }

    /// The value at `rel` below `base`; `full` is the field name used in errors.
    pub(crate) fn get_in<'a>(
        &self,
        base: &'a Value,
        rel: &str,
        full: &str,
    ) -> Result<&'a Value, IngestError> {
        let mut cur = base;
        for key in rel.split('.') {
            cur = match cur {
                Value::Object(map) => map
                    .get(key)
                    .ok_or_else(|| self.field_error(full, "missing"))?,
                other => {
                    return Err(self.field_error(
                        full,
                        format!("expected an object on the way, found {}", kind(other)),
                    ));
                }
            };
        }
        Ok(cur)
    }

    /// The finite number at `field`.
    pub(crate) fn f64(&self, field: &str) -> Result<f64, IngestError> {
        let v = self.get(field)?;
        self.as_f64(v, field)
    }

    /// `v` as a finite number; `field` names it in errors.
    pub(crate) fn as_f64(&self, v: &Value, field: &str) -> Result<f64, IngestError> {
        match v.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            Some(x) => Err(self.field_error(field, format!("{x} is not a finite number"))),
            None => Err(self.field_error(field, format!("expected a number, found {}", kind(v)))),
        }
    }

    /// `v` as a string; `field` names it in errors.
    pub(crate) fn as_str<'a>(&self, v: &'a Value, field: &str) -> Result<&'a str, IngestError> {
        v.as_str()
            .ok_or_else(|| self.field_error(field, format!("expected a string, found {}", kind(v))))
    }

    /// The string at `field`.
    pub(crate) fn str(&self, field: &str) -> Result<&str, IngestError> {
        let v = self.get(field)?;
        self.as_str(v, field)
    }

    /// The string at `field`, or `None` when it is absent or null.
    pub(crate) fn opt_str(&self, field: &str) -> Result<Option<&str>, IngestError> {
        match self.get(field) {
            Ok(Value::Null) => Ok(None),
            Ok(v) => self.as_str(v, field).map(Some),
            Err(IngestError::Field { reason, .. }) if reason == "missing" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The array of finite numbers at `field`.
    pub(crate) fn f64_array(&self, field: &str) -> Result<Vec<f64>, IngestError> {
        let v = self.get(field)?;
        let items = v.as_array().ok_or_else(|| {
            self.field_error(field, format!("expected an array, found {}", kind(v)))
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, x)| self.as_f64(x, &format!("{field}[{i}]")))
            .collect()
    }
}

/// A word for the JSON type of `v`, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json appends " at line L column C"; the error carries those separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let f =
            JsonFile::parse(Path::new("x.json"), r#"{"a": {"b": "s", "n": [1, "x"]}}"#).unwrap();
        let e = f.f64("a.b").unwrap_err().to_string();
        assert_eq!(e, "x.json: field `a.b`: expected a number, found a string");
        let e = f.f64("a.c").unwrap_err().to_string();
        assert_eq!(e, "x.json: field `a.c`: missing");
        let e = f.f64_array("a.n").unwrap_err().to_string();
        assert!(e.contains("field `a.n[1]`"), "{e}");
        assert_eq!(f.opt_str("a.z").unwrap(), None);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = JsonFile::parse(Path::new("y.json"), "{\n  \"a\": ,\n}").unwrap_err();
        match e {
            IngestError::Json { line, column, .. } => {
                assert_eq!(line, 2);
                assert_eq!(column, 8);
            }
            other => panic!("unexpected {other}"),
        }
    }
}
