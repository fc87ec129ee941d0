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
    Json(&'d Value),
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
            Val::Json(v) => View::of(v),
            Val::Owned(v) => View::of(v),
        }
    }

    /// A part of this value (an element or member), keeping the borrow from
    /// the data when there is one.
    pub(super) fn child(
        &self,
        pick: impl for<'x> FnOnce(&'x Value) -> Option<&'x Value>,
    ) -> Val<'d> {
        match self {
            Val::Json(v) => pick(v).map_or(Val::Missing, Val::Json),
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

/// An object's entries in Go's map order: sorted by key.
pub(super) fn sorted_entries(o: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = o.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}
