//! Where each field of a YAML document sits in its file, so that `ballast lint` can
//! point at `file:line:column` for a field path such as `spec.metrics[0].query`.
//!
//! The values themselves are read by `serde_yaml` (libyaml); this is a second,
//! position-keeping pass over the same text with `saphyr-parser`'s event stream.
//! Where the two could disagree (a text one of them refuses, aliases and merge
//! keys, whose fields have no place of their own) a field falls back to its
//! nearest ancestor with a place, and at worst to the document's first line.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser};

/// A place in a file: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(m: Marker) -> Pos {
        Pos {
            line: m.line().max(1),
            column: m.col() + 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Place {
    /// Where the key is, for a mapping entry.
    key: Option<Pos>,
    /// Where the value starts.
    value: Pos,
    /// The value is a mapping or a sequence: it is placed at its key, as a block
    /// value starts on the line after it.
    container: bool,
}

/// The places of one document's fields.
#[derive(Clone, Debug, Default)]
pub struct Positions {
    start: Option<Pos>,
    fields: HashMap<String, Place>,
}

impl Positions {
    /// Where `field` is: its value, or its key when `key` is asked for (an unknown
    /// field is its key; a wrong value is the value) or the value is a mapping or a
    /// sequence. A field that has no place of
    /// its own (a missing required field, one read through an alias) is placed at
    /// its nearest ancestor's key.
    pub fn locate(&self, field: &str, key: bool) -> Pos {
        if let Some(place) = self.fields.get(field) {
            return match (key || place.container, place.key) {
                (true, Some(k)) => k,
                _ => place.value,
            };
        }
        let mut path = field;
        while let Some(parent) = parent(path) {
            if let Some(place) = self.fields.get(parent) {
                return place.key.unwrap_or(place.value);
            }
            path = parent;
        }
        self.start.unwrap_or(Pos::START)
    }

    /// Where the document starts (its first node).
    pub fn start(&self) -> Pos {
        self.start.unwrap_or(Pos::START)
    }
}

/// `spec.metrics[0]` for `spec.metrics[0].query`, `spec.metrics` for
/// `spec.metrics[0]`, `None` at the top.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

enum Frame {
    Mapping {
        path: String,
        /// The key just read and where it is, while its value is awaited.
        key: Option<(String, Pos)>,
    },
    Sequence {
        path: String,
        next: usize,
    },
    /// Not addressable: a mapping or sequence used as a key (`key`), or anything
    /// under one.
    Opaque {
        key: bool,
    },
}

/// The places of every document in `text`, in document order (empty documents
/// included, so that index `i` is the `i+1`-th document). A text the parser
/// refuses yields the documents read before the error.
pub fn positions(text: &str) -> Vec<Positions> {
    let mut documents = Vec::new();
    let mut current: Option<Positions> = None;
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else {
            documents.extend(current.take());
            break;
        };
        let here = Pos::from_marker(span.start);
        match event {
            Event::DocumentStart(_) => {
                current = Some(Positions::default());
                stack.clear();
            }
            Event::DocumentEnd => {
                if let Some(doc) = current.take() {
                    documents.push(doc);
                }
            }
            Event::Scalar(ref text, ..) => {
                let Some(doc) = current.as_mut() else {
                    continue;
                };
                node(doc, &mut stack, here, Some(text.as_ref()), None);
            }
            Event::Alias(_) => {
                let Some(doc) = current.as_mut() else {
                    continue;
                };
                node(doc, &mut stack, here, None, None);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(doc) = current.as_mut() else {
                    continue;
                };
                let mapping = matches!(event, Event::MappingStart(..));
                node(doc, &mut stack, here, None, Some(mapping));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                // A complex key's end leaves its mapping awaiting the value.
                if !matches!(stack.pop(), Some(Frame::Opaque { key: true })) {
                    value_done(&mut stack);
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    documents
}

/// One node at `here`: a key of the enclosing mapping, or a value. `container`:
/// `Some(true)` opens a mapping, `Some(false)` a sequence, `None` is a leaf.
fn node(
    doc: &mut Positions,
    stack: &mut Vec<Frame>,
    here: Pos,
    scalar: Option<&str>,
    container: Option<bool>,
) {
    if doc.start.is_none() {
        doc.start = Some(here);
    }
    // A key?
    if let Some(Frame::Mapping { key, .. }) = stack.last_mut()
        && key.is_none()
    {
        match (scalar, container) {
            (Some(name), None) => *key = Some((name.to_string(), here)),
            (None, None) => *key = Some(("*".to_string(), here)),
            (_, Some(_)) => {
                *key = Some(("?".to_string(), here));
                stack.push(Frame::Opaque { key: true });
            }
        }
        return;
    }
    // A value: its path.
    let (path, key_pos) = match stack.last() {
        None => (Some(String::new()), None),
        Some(Frame::Mapping {
            path,
            key: Some((name, at)),
        }) => (
            Some(if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            }),
            Some(*at),
        ),
        Some(Frame::Sequence { path, next }) => (Some(format!("{path}[{next}]")), None),
        Some(Frame::Mapping { key: None, .. }) | Some(Frame::Opaque { .. }) => (None, None),
    };
    if let Some(path) = &path {
        doc.fields.entry(path.clone()).or_insert(Place {
            key: key_pos,
            value: here,
            container: container.is_some(),
        });
    }
    match (container, path) {
        (Some(true), Some(path)) => stack.push(Frame::Mapping { path, key: None }),
        (Some(false), Some(path)) => stack.push(Frame::Sequence { path, next: 0 }),
        (Some(_), None) => stack.push(Frame::Opaque { key: false }),
        (None, _) => value_done(stack),
    }
}

/// A value of the innermost container is complete.
fn value_done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Mapping { key, .. }) => *key = None,
        Some(Frame::Sequence { next, .. }) => *next += 1,
        Some(Frame::Opaque { .. }) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "# a comment
apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: web, namespace: default}
spec:
  minReplicas: 2
  metrics:
    - name: evictions
      query: |
        sum(rate(x[1m]))
      target: {type: Value, value: \"100\"}
    - name: lag
      query: y
---
---
kind: Other
list: [a, {b: 1}]
";

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn fields_are_placed_at_their_keys_and_values() {
        let docs = positions(POLICY);
        assert_eq!(docs.len(), 3, "empty documents count too");
        let p = &docs[0];
        assert_eq!(p.start(), at(2, 1));
        assert_eq!(p.locate("spec.minReplicas", false), at(6, 16));
        assert_eq!(p.locate("spec.minReplicas", true), at(6, 3));
        assert_eq!(p.locate("metadata.name", false), at(4, 18));
        assert_eq!(p.locate("spec.metrics[0]", false), at(8, 7));
        assert_eq!(p.locate("spec.metrics", false), at(7, 3));
        assert_eq!(p.locate("spec.metrics[0].query", true), at(9, 7));
        assert_eq!(p.locate("spec.metrics[1].query", false), at(13, 14));
        assert_eq!(p.locate("spec.metrics[0].target.value", false), at(11, 36));
        // Missing fields land on their nearest ancestor's key.
        assert_eq!(p.locate("spec.metrics[1].target.value", false), at(12, 7));
        assert_eq!(p.locate("spec.maxReplicas", false), at(5, 1));
        assert_eq!(p.locate("nothing.at.all", false), at(2, 1));
        assert_eq!(docs[2].locate("list[1].b", false), at(17, 15));
        assert_eq!(docs[2].locate("kind", true), at(16, 1));
    }

    #[test]
    fn odd_yaml_does_not_panic_and_keeps_what_it_read() {
        assert!(positions("").is_empty());
        let docs = positions("a: 1\nb: [\n");
        assert!(docs.len() <= 1);
        let docs = positions("base: &b {x: 1}\nother: *b\n? [complex]\n: 2\nc: 3\n");
        assert_eq!(docs[0].locate("c", true), at(5, 1));
        assert_eq!(docs[0].locate("other.x", false), at(2, 1));
    }
}
