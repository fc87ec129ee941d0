//! The values a template computes with, and how they map onto Go's types.
//!
//! Data arrives as JSON. Go would see podman's structs; here a JSON object
//! behaves like a Go map (missing keys yield "no value"), numbers keep the
//! integer/float distinction serde_json parsed, and type names in messages
//! are the Go types podman's data most likely had (`int64`, `[]string`,
//! `map[string]string`).

use std::rc::Rc;

use serde_json::{Map, Value};

/// A value during execution, borrowed from the data where possible.
#[derive(Clone, Debug)]
pub(super) enum Val<'d> {
    /// Go's invalid `reflect.Value`: a missing map key, or no value at all.
    Missing,
    /// A Go `int`: number literals, `len`, range indices.
    Int(i64),
    /// A Go `uint8`: a byte of a string, from `index`.
    Byte(u8),
    /// A Go `float64` literal.
    Float(f64),
    Bool(bool),
    Str(Rc<str>),
    /// Part of the data, with the Go type it had in podman.
    Json(&'d Value, Shape),
    /// JSON computed during execution (`split`, `slice` of a list).
    Owned(Rc<Value>),
}

/// A uniform read-only view of a [`Val`] or of a JSON value.
#[derive(Clone, Copy, Debug)]
pub(super) enum View<'a> {
    Missing,
    /// JSON `null`: Go's nil interface inside a map or slice.
    Null,
    Bool(bool),
    /// An integer and the name of its Go type (`int` or `int64`).
    Int(i64, &'static str),
    Uint(u64),
    Float(f64),
    Str(&'a str),
    Array(&'a [Value]),
    Object(&'a Map<String, Value>),
}

impl<'d> Val<'d> {
    pub(super) fn str(s: impl Into<Rc<str>>) -> Self {
        Val::Str(s.into())
    }

    pub(super) fn owned(v: Value) -> Self {
        Val::Owned(Rc::new(v))
    }

    pub(super) fn view(&self) -> View<'_> {
        match self {
            Val::Missing => View::Missing,
            Val::Int(i) => View::Int(*i, "int"),
            Val::Byte(b) => View::Int(i64::from(*b), "uint8"),
            Val::Float(f) => View::Float(*f),
            Val::Bool(b) => View::Bool(*b),
            Val::Str(s) => View::Str(s),
            Val::Json(v, _) => View::of(v),
            Val::Owned(v) => View::of(v),
        }
    }

    /// The Go type this value had: [`Shape::Any`] unless it is part of
    /// data executed with a shape.
    pub(super) fn shape(&self) -> Shape {
        match self {
            Val::Json(_, s) => *s,
            _ => Shape::Any,
        }
    }

    /// An element of this list or map, keeping the borrow from the data
    /// when there is one.
    pub(super) fn child(
        &self,
        pick: impl for<'x> FnOnce(&'x Value) -> Option<&'x Value>,
    ) -> Val<'d> {
        match self {
            Val::Json(v, s) => pick(v).map_or(Val::Missing, |c| Val::Json(c, s.elem())),
            Val::Owned(v) => pick(v).map_or(Val::Missing, |c| Val::owned(c.clone())),
            _ => Val::Missing,
        }
    }

    pub(super) fn is_missing(&self) -> bool {
        matches!(self, Val::Missing)
    }
}

impl<'a> View<'a> {
    pub(super) fn of(v: &'a Value) -> Self {
        match v {
            Value::Null => View::Null,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    View::Int(i, "int64")
                } else if let Some(u) = n.as_u64() {
                    View::Uint(u)
                } else {
                    View::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => View::Str(s),
            Value::Array(a) => View::Array(a),
            Value::Object(o) => View::Object(o),
        }
    }

    /// The Go type name used in messages such as "wrong type for value".
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            View::Missing => "<nil>",
            View::Null => "interface {}",
            View::Bool(_) => "bool",
            View::Int(_, t) => t,
            View::Uint(_) => "uint64",
            View::Float(_) => "float64",
            View::Str(_) => "string",
            View::Array(a) => {
                if a.iter().all(Value::is_string) {
                    "[]string"
                } else {
                    "[]interface {}"
                }
            }
            View::Object(o) => {
                if o.values().all(Value::is_string) {
                    "map[string]string"
                } else {
                    "map[string]interface {}"
                }
            }
        }
    }

    /// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
    pub(super) fn truth(&self) -> bool {
        match self {
            View::Missing | View::Null => false,
            View::Bool(b) => *b,
            View::Int(i, _) => *i != 0,
            View::Uint(u) => *u != 0,
            View::Float(f) => *f != 0.0,
            View::Str(s) => !s.is_empty(),
            View::Array(a) => !a.is_empty(),
            View::Object(o) => !o.is_empty(),
        }
    }

    pub(super) fn is_nil(&self) -> bool {
        matches!(self, View::Missing | View::Null)
    }
}

/// The Go type a JSON value had in podman, so that templates see podman's
/// structs: fields named as in Go (`.Host.OCIRuntime.Name` on the JSON key
/// `host.ociRuntime.name`), an unknown field an error, a struct printed
/// as `{v1 v2}`. Values without a shape are [`Shape::Any`].
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Plain JSON: an object is a Go map (a missing key is "no value").
    Any,
    /// A Go struct (or a pointer to one) with these fields.
    Struct(&'static GoStruct),
    /// A struct whose Go fields are exactly the JSON object's keys (values
    /// [`Shape::Any`]), with this type name in messages: podman's report
    /// rows (`containers.psReporter`), which cairn builds under Go's names.
    Keys(&'static str),
    /// A slice whose elements have this shape.
    Slice(&'static Shape),
    /// A map whose values have this shape.
    Map(&'static Shape),
}

impl Shape {
    /// The shape of an element of a slice or map.
    fn elem(self) -> Shape {
        match self {
            Shape::Slice(e) | Shape::Map(e) => *e,
            _ => Shape::Any,
        }
    }

    /// The Go type name, for "can't evaluate field" messages, when it is a struct.
    pub(super) fn struct_name(self) -> Option<&'static str> {
        match self {
            Shape::Struct(s) => Some(s.name),
            Shape::Keys(n) => Some(n),
            _ => None,
        }
    }
}

/// A Go struct type: its name as Go prints it (`*define.HostInfo`) and its
/// fields in declaration order.
#[derive(Debug)]
pub struct GoStruct {
    /// The type's name in messages, e.g. `*define.Info`.
    pub name: &'static str,
    /// The fields, in Go's order (which `{{.}}` prints in).
    pub fields: &'static [GoField],
}

/// A field of a [`GoStruct`].
#[derive(Debug)]
pub struct GoField {
    /// The Go name templates use (`OCIRuntime`).
    pub name: &'static str,
    /// The JSON key the value is stored under (`ociRuntime`).
    pub json: &'static str,
    /// The field's type.
    pub shape: Shape,
}

impl GoField {
    /// A field named `name` in Go, `json` in JSON.
    pub const fn new(name: &'static str, json: &'static str, shape: Shape) -> GoField {
        GoField { name, json, shape }
    }
}

/// JSON `null`, for a struct field absent from the data: a nil pointer.
static NULL: Value = Value::Null;

/// An empty object, for a struct-valued (not pointer) field absent from
/// the data: Go's zero struct, whose fields are all zero.
static EMPTY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| Value::Object(Map::new()));

/// The value of field `f` in the struct `v`: absent or null, a pointer
/// to a struct (type name `*…`) is nil and a struct value is zero.
fn field_value<'d>(v: &'d Value, f: &GoField) -> &'d Value {
    match (v.get(f.json), f.shape) {
        (Some(c), _) if !c.is_null() => c,
        (_, Shape::Struct(s)) if !s.name.starts_with('*') => &EMPTY,
        _ => &NULL,
    }
}

impl<'d> Val<'d> {
    /// The Go field `name` of a struct value: `Ok(None)` when the value is
    /// no struct (a map lookup applies), `Err(type)` when the struct has no
    /// such field.
    pub(super) fn struct_field(&self, name: &str) -> Option<Result<Val<'d>, &'static str>> {
        let Val::Json(v, shape) = self else {
            return None;
        };
        match shape {
            Shape::Struct(s) => Some(match s.fields.iter().find(|f| f.name == name) {
                Some(f) => Ok(Val::Json(field_value(v, f), f.shape)),
                None => Err(s.name),
            }),
            Shape::Keys(type_name) => Some(match v.get(name) {
                Some(c) => Ok(Val::Json(c, Shape::Any)),
                None => Err(type_name),
            }),
            _ => None,
        }
    }
}

/// An object's entries in Go's map order: sorted by key.
pub(super) fn sorted_entries(o: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = o.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}
