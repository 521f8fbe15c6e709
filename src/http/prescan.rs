//! Bounding the work a JSON request body can cause BEFORE anything is allocated for it: one
//! pass over the raw bytes, guided by the operation's registered OpenAPI schema, that enforces
//! every declared `maxItems` and `maxLength` (and a nesting depth), in O(n) time and without
//! allocating (a path is only built to name a refused field). A body that passes can then be
//! parsed knowing that no array or string in it is longer than the schema allows.
//!
//! Arrays and strings the schema leaves unbounded, and members the schema does not declare
//! (refused later as unknown fields), get the small [`UNDECLARED_ITEMS`] / [`UNDECLARED_BYTES`]
//! caps. Strings are measured in raw bytes between the quotes, allowed up to
//! [`BYTES_PER_CHAR`] × `maxLength` (UTF-8 and `\u` escapes); the exact character count is
//! checked by the typed parse afterwards.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use std::collections::HashMap;
use std::fmt;

/// Deepest nesting of arrays and objects accepted in any body (the top-level value is 1).
pub const MAX_DEPTH: usize = 16;
/// Elements of an array the schema does not bound, or members of an undeclared object.
pub const UNDECLARED_ITEMS: usize = 64;
/// Raw bytes of a string the schema does not bound.
pub const UNDECLARED_BYTES: usize = 1024;
/// Raw bytes allowed per character of `maxLength` (a `\uXXXX` escape is 6 bytes).
pub const BYTES_PER_CHAR: usize = 6;
/// Longest number literal.
pub const MAX_NUMBER_BYTES: usize = 40;

type NodeId = usize;

#[derive(Debug, Clone, Default)]
struct Node {
    /// Declared members (name → node); empty for non-objects.
    properties: Vec<(String, NodeId)>,
    /// Element node for arrays.
    items: Option<NodeId>,
    /// Most elements of an array.
    max_items: usize,
    /// Most raw bytes of a string.
    max_bytes: usize,
}

/// A request body's shape: the limits of every place in it, compiled from a schema.
#[derive(Debug, Clone)]
pub struct Shape {
    nodes: Vec<Node>,
}

const ANY: NodeId = 0;

impl Shape {
    /// Compiles the shape of `root` (a schema registered in `registry`). `oneOf`/`anyOf`/
    /// `allOf` variants are merged: a place is bounded by the loosest variant.
    pub fn compile(registry: &Registry, root: &MetaSchemaRef) -> Shape {
        let mut shape = Shape {
            nodes: vec![Node {
                max_items: UNDECLARED_ITEMS,
                max_bytes: UNDECLARED_BYTES,
                ..Node::default()
            }],
        };
        let mut memo = HashMap::new();
        let id = shape.add(registry, root, &mut memo, 0);
        debug_assert_eq!(id, 1);
        shape
    }

    fn resolve<'a>(registry: &'a Registry, s: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
        match s {
            MetaSchemaRef::Inline(s) => Some(s),
            MetaSchemaRef::Reference(name) => registry
                .schemas
                .get(name.trim_start_matches("#/components/schemas/")),
        }
    }

    /// Adds the node of `schema`; references already compiled are reused (recursion ends).
    fn add(
        &mut self,
        registry: &Registry,
        schema: &MetaSchemaRef,
        memo: &mut HashMap<String, NodeId>,
        depth: usize,
    ) -> NodeId {
        if let MetaSchemaRef::Reference(name) = schema
            && let Some(id) = memo.get(name)
        {
            return *id;
        }
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        if let MetaSchemaRef::Reference(name) = schema {
            memo.insert(name.clone(), id);
        }
        let mut parts = Vec::new();
        if let Some(s) = Self::resolve(registry, schema) {
            collect_variants(registry, s, &mut parts);
        }
        // A place is bounded by the loosest variant of its kind; variants of other kinds (and
        // combinator wrappers) say nothing about it.
        let loosest = |kind: &str, limit: fn(&MetaSchema) -> Option<usize>, undeclared: usize| {
            parts
                .iter()
                .filter(|s| s.ty == kind)
                .map(|s| limit(s).unwrap_or(undeclared))
                .max()
                .unwrap_or(undeclared)
        };
        let mut node = Node {
            max_items: loosest("array", |s| s.max_items, UNDECLARED_ITEMS),
            max_bytes: loosest(
                "string",
                |s| s.max_length.map(|c| c.saturating_mul(BYTES_PER_CHAR)),
                UNDECLARED_BYTES,
            ),
            ..Node::default()
        };
        let mut items: Vec<&MetaSchemaRef> = Vec::new();
        let mut properties: Vec<(&str, Vec<&MetaSchemaRef>)> = Vec::new();
        for s in &parts {
            if let Some(i) = &s.items {
                items.push(i);
            }
            for (name, p) in &s.properties {
                match properties.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => v.push(p),
                    None => properties.push((name, vec![p])),
                }
            }
        }
        if depth < MAX_DEPTH {
            if !items.is_empty() {
                node.items = Some(self.merged(registry, &items, memo, depth + 1));
            }
            for (name, variants) in properties {
                let child = self.merged(registry, &variants, memo, depth + 1);
                node.properties.push((name.to_string(), child));
            }
        }
        self.nodes[id] = node;
        id
    }

    fn merged(
        &mut self,
        registry: &Registry,
        variants: &[&MetaSchemaRef],
        memo: &mut HashMap<String, NodeId>,
        depth: usize,
    ) -> NodeId {
        if let [one] = variants {
            return self.add(registry, one, memo, depth);
        }
        let merged = MetaSchemaRef::Inline(Box::new(MetaSchema {
            any_of: variants.iter().map(|v| (*v).clone()).collect(),
            ..MetaSchema::ANY
        }));
        self.add(registry, &merged, memo, depth)
    }

    /// Every place whose schema declares no maximum, as paths (`assets[].name`): a test
    /// asserts this is empty for every request body.
    pub fn undeclared(registry: &Registry, root: &MetaSchemaRef) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        undeclared_walk(registry, root, "body", &mut seen, &mut out);
        out
    }
}

fn collect_variants<'a>(registry: &'a Registry, s: &'a MetaSchema, out: &mut Vec<&'a MetaSchema>) {
    out.push(s);
    for v in s.one_of.iter().chain(&s.any_of).chain(&s.all_of) {
        if let Some(inner) = Shape::resolve(registry, v) {
            collect_variants(registry, inner, out);
        }
    }
}

fn undeclared_walk(
    registry: &Registry,
    schema: &MetaSchemaRef,
    path: &str,
    seen: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    if let MetaSchemaRef::Reference(name) = schema {
        if seen.contains(name) {
            return;
        }
        seen.push(name.clone());
    }
    let Some(s) = Shape::resolve(registry, schema) else {
        return;
    };
    match s.ty {
        "array" if s.max_items.is_none() => out.push(format!("{path} (maxItems)")),
        "string"
            if s.max_length.is_none()
                && s.enum_items.is_empty()
                && s.format != Some("date-time") =>
        {
            out.push(format!("{path} (maxLength)"))
        }
        _ => {}
    }
    if let Some(items) = &s.items {
        undeclared_walk(registry, items, &format!("{path}[]"), seen, out);
    }
    for (name, p) in &s.properties {
        undeclared_walk(registry, p, &format!("{path}.{name}"), seen, out);
    }
    for v in s.one_of.iter().chain(&s.any_of).chain(&s.all_of) {
        undeclared_walk(registry, v, path, seen, out);
    }
    if let MetaSchemaRef::Reference(name) = schema {
        seen.retain(|n| n != name);
    }
}

/// Why a body was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Nested deeper than [`MAX_DEPTH`].
    Depth {
        /// Where.
        path: String,
    },
    /// An array with more elements than allowed at that place.
    Items {
        /// Where.
        path: String,
        /// The maximum.
        max: usize,
    },
    /// A string longer than allowed at that place (raw bytes).
    StringBytes {
        /// Where.
        path: String,
        /// The maximum, in characters.
        max_chars: usize,
    },
    /// A number literal longer than [`MAX_NUMBER_BYTES`].
    Number {
        /// Where.
        path: String,
    },
    /// Unbalanced brackets or an unterminated string.
    Malformed {
        /// Byte offset.
        at: usize,
    },
}

impl Violation {
    /// The field the violation is at (`body` for the whole body).
    pub fn field(&self) -> &str {
        match self {
            Self::Depth { path }
            | Self::Items { path, .. }
            | Self::StringBytes { path, .. }
            | Self::Number { path } => path,
            Self::Malformed { .. } => "body",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Depth { path } => write!(f, "{path}: nested deeper than {MAX_DEPTH} levels"),
            Self::Items { path, max } => write!(f, "{path}: more than {max} elements"),
            Self::StringBytes { path, max_chars } => {
                write!(f, "{path}: longer than {max_chars} characters")
            }
            Self::Number { path } => {
                write!(
                    f,
                    "{path}: a number literal longer than {MAX_NUMBER_BYTES} characters"
                )
            }
            Self::Malformed { at } => write!(f, "the request body is not valid JSON (byte {at})"),
        }
    }
}

#[derive(Clone, Copy)]
struct Frame {
    node: NodeId,
    is_array: bool,
    /// Elements (arrays) or members (objects) seen so far.
    count: usize,
    /// Objects: the next string is a key.
    expect_key: bool,
    /// Objects: the node of the value after the current key; byte range of that key.
    child: NodeId,
    key: (usize, usize),
}

/// Scans `body` against `shape`. Never allocates unless it refuses (to name the field).
///
/// # Errors
/// The first place that exceeds its limit, or malformed structure (serde would refuse it too).
pub fn prescan(body: &[u8], shape: &Shape) -> Result<(), Violation> {
    let mut stack = [Frame {
        node: ANY,
        is_array: false,
        count: 0,
        expect_key: false,
        child: ANY,
        key: (0, 0),
    }; MAX_DEPTH];
    let mut depth = 0usize;
    let nodes = &shape.nodes;
    let n = body.len();
    let mut i = 0usize;
    let path = |stack: &[Frame], depth: usize| -> String { path_of(body, &stack[..depth]) };

    // The node of a value starting now (and count it in its array).
    macro_rules! value_node {
        () => {{
            if depth == 0 {
                1
            } else {
                let top = &mut stack[depth - 1];
                if top.is_array {
                    top.count += 1;
                    let max = nodes[top.node].max_items;
                    if top.count > max {
                        // The array's own path: its elements' indices are not part of it.
                        return Err(Violation::Items {
                            path: path(&stack, depth - 1),
                            max,
                        });
                    }
                    nodes[top.node].items.unwrap_or(ANY)
                } else {
                    top.child
                }
            }
        }};
    }

    while i < n {
        match body[i] {
            b' ' | b'\n' | b'\r' | b'\t' | b':' => i += 1,
            b',' => {
                if depth == 0 {
                    return Err(Violation::Malformed { at: i });
                }
                let top = &mut stack[depth - 1];
                if !top.is_array {
                    top.expect_key = true;
                }
                i += 1;
            }
            open @ (b'[' | b'{') => {
                let node = value_node!();
                if depth == MAX_DEPTH {
                    return Err(Violation::Depth {
                        path: path(&stack, depth),
                    });
                }
                stack[depth] = Frame {
                    node,
                    is_array: open == b'[',
                    count: 0,
                    expect_key: open == b'{',
                    child: ANY,
                    key: (0, 0),
                };
                depth += 1;
                i += 1;
            }
            close @ (b']' | b'}') => {
                if depth == 0 || stack[depth - 1].is_array != (close == b']') {
                    return Err(Violation::Malformed { at: i });
                }
                depth -= 1;
                i += 1;
            }
            b'"' => {
                let is_key = depth > 0 && !stack[depth - 1].is_array && stack[depth - 1].expect_key;
                let max_bytes = if is_key {
                    UNDECLARED_BYTES
                } else {
                    let node = value_node!();
                    nodes[node].max_bytes
                };
                let start = i + 1;
                let end = string_end(body, start, max_bytes).map_err(|e| match e {
                    StringEnd::TooLong => Violation::StringBytes {
                        path: path(&stack, depth),
                        max_chars: max_bytes / BYTES_PER_CHAR,
                    },
                    StringEnd::Unterminated => Violation::Malformed { at: i },
                })?;
                if is_key {
                    let top = &mut stack[depth - 1];
                    top.expect_key = false;
                    top.count += 1;
                    let name = &body[start..end];
                    top.key = (start, end);
                    top.child = nodes[top.node]
                        .properties
                        .iter()
                        .find(|(p, _)| p.as_bytes() == name)
                        .map_or(ANY, |(_, id)| *id);
                    let max = nodes[top.node].properties.len().max(UNDECLARED_ITEMS);
                    if top.count > max {
                        return Err(Violation::Items {
                            path: path(&stack, depth - 1),
                            max,
                        });
                    }
                }
                i = end + 1;
            }
            _ => {
                value_node!();
                let start = i;
                while i < n && !matches!(body[i], b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
                {
                    i += 1;
                    if i - start > MAX_NUMBER_BYTES {
                        return Err(Violation::Number {
                            path: path(&stack, depth),
                        });
                    }
                }
            }
        }
    }
    if depth != 0 {
        return Err(Violation::Malformed { at: n });
    }
    Ok(())
}

enum StringEnd {
    TooLong,
    Unterminated,
}

/// The index of the closing quote of the string starting at `start` (just after its opening
/// quote), looking no further than `max_bytes` ahead.
fn string_end(body: &[u8], start: usize, max_bytes: usize) -> Result<usize, StringEnd> {
    let limit = start
        .saturating_add(max_bytes)
        .saturating_add(1)
        .min(body.len());
    let mut j = start;
    while j < limit {
        match body[j] {
            b'"' => return Ok(j),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    if limit < body.len() {
        Err(StringEnd::TooLong)
    } else {
        Err(StringEnd::Unterminated)
    }
}

/// `assets[3].name`-style path of the current position (allocates; only for errors).
fn path_of(body: &[u8], frames: &[Frame]) -> String {
    let mut out = String::new();
    for f in frames {
        if f.is_array {
            out.push_str(&format!("[{}]", f.count.saturating_sub(1)));
        } else if f.key.1 > f.key.0 {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&String::from_utf8_lossy(&body[f.key.0..f.key.1]));
        }
    }
    if out.is_empty() { "body".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::Object;
    use poem_openapi::types::Type;

    #[derive(Object)]
    struct Inner {
        #[oai(validator(max_length = 5))]
        name: String,
        #[oai(validator(max_items = 3))]
        values: Vec<f64>,
    }

    #[derive(Object)]
    struct Outer {
        #[oai(validator(max_items = 2))]
        inner: Vec<Inner>,
        #[oai(validator(max_items = 2))]
        matrix: Vec<crate::http::types::BoundedVec<f64, 2>>,
    }

    fn shape() -> Shape {
        let mut registry = Registry::new();
        Outer::register(&mut registry);
        Shape::compile(&registry, &Outer::schema_ref())
    }

    #[test]
    fn accepts_what_the_schema_allows() {
        let s = shape();
        prescan(
            br#"{"inner": [{"name": "abc", "values": [1, 2, 3]}], "matrix": [[1, 2], [3]]}"#,
            &s,
        )
        .unwrap();
        prescan(br#"{"inner": [{"name": "a\"b\\c"}]}"#, &s).unwrap();
        prescan(b"{}", &s).unwrap();
    }

    #[test]
    fn refuses_each_declared_maximum_naming_the_field() {
        let s = shape();
        let e = prescan(br#"{"inner": [{"values": [1, 2, 3, 4]}]}"#, &s).unwrap_err();
        assert_eq!(
            e,
            Violation::Items {
                path: "inner[0].values".into(),
                max: 3
            }
        );
        let e = prescan(br#"{"inner": [{}, {}, {}]}"#, &s).unwrap_err();
        assert_eq!(e.field(), "inner");
        let long = format!(r#"{{"inner": [{{"name": "{}"}}]}}"#, "x".repeat(31));
        assert_eq!(
            prescan(long.as_bytes(), &s).unwrap_err().field(),
            "inner[0].name"
        );
        let e = prescan(br#"{"matrix": [[1], [2], [3]]}"#, &s).unwrap_err();
        assert_eq!(e.field(), "matrix");
    }

    #[test]
    fn undeclared_places_get_small_caps_and_depth_is_bounded() {
        let s = shape();
        let wide = format!(
            r#"{{"unknown": [{}]}}"#,
            vec!["0"; UNDECLARED_ITEMS + 1].join(",")
        );
        assert_eq!(prescan(wide.as_bytes(), &s).unwrap_err().field(), "unknown");
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(
            prescan(deep.as_bytes(), &s),
            Err(Violation::Depth { .. })
        ));
        let members: Vec<String> = (0..=UNDECLARED_ITEMS)
            .map(|k| format!(r#""k{k}": 1"#))
            .collect();
        let obj = format!(r#"{{"unknown": {{{}}}}}"#, members.join(","));
        assert!(matches!(
            prescan(obj.as_bytes(), &s),
            Err(Violation::Items { .. })
        ));
        let number = format!("{{\"matrix\": [[{}]]}}", "1".repeat(MAX_NUMBER_BYTES + 1));
        assert!(matches!(
            prescan(number.as_bytes(), &s),
            Err(Violation::Number { .. })
        ));
    }

    #[test]
    fn malformed_structure_is_refused() {
        let s = shape();
        for bad in [&b"[1,2"[..], b"[1}", br#"{"inner": "abc"#, b"}"] {
            assert!(
                matches!(prescan(bad, &s), Err(Violation::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn finds_undeclared_maxima() {
        #[derive(Object)]
        struct Loose {
            names: Vec<String>,
        }
        let mut registry = Registry::new();
        Loose::register(&mut registry);
        let missing = Shape::undeclared(&registry, &Loose::schema_ref());
        assert_eq!(
            missing,
            ["body.names (maxItems)", "body.names[] (maxLength)"]
        );
        let mut registry = Registry::new();
        Outer::register(&mut registry);
        assert!(Shape::undeclared(&registry, &Outer::schema_ref()).is_empty());
    }
}
