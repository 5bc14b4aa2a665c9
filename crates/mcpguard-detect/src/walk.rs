//! Walking a JSON document without building it: every key and string (and long number)
//! is handed to a visitor with its path, in document order, and the short strings of one
//! object or array are also handed over joined (a value split across adjacent fields).

use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::ScanError;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Renders a path as `$.a.b[2]["odd key"]`.
pub fn render_path(path: &[PathSeg]) -> String {
    let mut out = String::from("$");
    for seg in path {
        match seg {
            PathSeg::Key(k)
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                out.push('.');
                out.push_str(k);
            }
            PathSeg::Key(k) => {
                let _ = write!(out, "[{}]", serde_json::Value::from(k.as_str()));
            }
            PathSeg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// What the walk reports.
pub(crate) trait Visit {
    /// A string (or a key, with `name` = `None` and `is_key`), at `path`.
    fn string(&mut self, path: &[PathSeg], name: Option<&str>, value: &str, is_key: bool);
    /// The short strings directly inside the container at `path`, joined; `cuts` are the
    /// byte offsets where one piece ends and the next begins.
    fn joined(&mut self, path: &[PathSeg], value: &str, cuts: &[usize]);
}

/// Strings up to this length take part in joining adjacent fields.
const JOIN_PIECE: usize = 1024;
/// Joined text stops growing at this length.
const JOIN_TOTAL: usize = 8192;
/// Numbers with at least this many digits are scanned (card numbers, SSNs, phones).
const NUMBER_DIGITS: usize = 9;

struct Walk<'v> {
    visit: &'v mut dyn Visit,
    path: Vec<PathSeg>,
    max_depth: usize,
    error: Option<ScanError>,
}

struct Node<'a, 'v> {
    walk: &'a mut Walk<'v>,
    name: Option<&'a str>,
}

/// Walks `json`, failing closed on a nesting depth over `max_depth`.
pub(crate) fn walk(json: &str, max_depth: usize, visit: &mut dyn Visit) -> Result<(), ScanError> {
    let mut walk = Walk {
        visit,
        path: Vec::new(),
        max_depth,
        error: None,
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let result = Node {
        walk: &mut walk,
        name: None,
    }
    .deserialize(&mut de)
    .and_then(|_| de.end());
    match (walk.error.take(), result) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(ScanError::Json {
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        }),
        (None, Ok(())) => Ok(()),
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Node<'_, '_> {
    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.walk.path.len() >= self.walk.max_depth {
            let location = render_path(&self.walk.path);
            self.walk.error = Some(ScanError::TooDeep {
                limit: self.walk.max_depth,
                location,
            });
            return Err(E::custom("nesting too deep"));
        }
        Ok(())
    }

    fn number<E>(self, text: String) -> Result<Option<String>, E> {
        if text.len() >= NUMBER_DIGITS {
            self.walk
                .visit
                .string(&self.walk.path, self.name, &text, false);
        }
        Ok(None)
    }
}

/// Collects the short strings of one container for joining.
#[derive(Default)]
struct Pieces {
    text: String,
    cuts: Vec<usize>,
    count: usize,
}

impl Pieces {
    fn add(&mut self, piece: Option<String>) {
        if let Some(piece) = piece
            && self.text.len() + piece.len() <= JOIN_TOTAL
        {
            if self.count > 0 {
                self.cuts.push(self.text.len());
            }
            self.text.push_str(&piece);
            self.count += 1;
        }
    }

    fn report(self, walk: &mut Walk<'_>) {
        if self.count >= 2 {
            walk.visit.joined(&walk.path, &self.text, &self.cuts);
        }
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.walk.visit.string(&self.walk.path, self.name, v, false);
        Ok((v.len() <= JOIN_PIECE).then(|| v.to_owned()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        self.number(v.to_string())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        self.number(v.to_string())
    }

    fn visit_f64<E>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        self.enter()?;
        let mut pieces = Pieces::default();
        while let Some(key) = map.next_key::<String>()? {
            self.walk.visit.string(&self.walk.path, None, &key, true);
            self.walk.path.push(PathSeg::Key(key));
            let name = match self.walk.path.last() {
                Some(PathSeg::Key(k)) => k.clone(),
                _ => String::new(),
            };
            let piece = map.next_value_seed(Node {
                walk: &mut *self.walk,
                name: Some(&name),
            })?;
            self.walk.path.pop();
            pieces.add(piece);
        }
        pieces.report(self.walk);
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.enter()?;
        let mut pieces = Pieces::default();
        let mut index = 0;
        loop {
            self.walk.path.push(PathSeg::Index(index));
            let element = seq.next_element_seed(Node {
                walk: &mut *self.walk,
                name: self.name,
            });
            self.walk.path.pop();
            match element? {
                Some(piece) => pieces.add(piece),
                None => break,
            }
            index += 1;
        }
        pieces.report(self.walk);
        Ok(None)
    }
}
