//! Template functions: Go's builtins (`text/template/funcs.go`, Go 1.19) and
//! the extras podman 4.3 registers (containers/common `report.DefaultFuncs`:
//! `join`, `json`, `lower`, `pad`, `split`, `title`, `truncate`, `upper`).
//!
//! Each function declares Go-like parameter types so that argument checking
//! and its messages ("wrong number of args", "expected string; found 5")
//! happen in `exec` exactly where Go's reflection-based call does them.

use std::cmp::Ordering;

use serde_json::Value;

use super::fmt::{json, sprint, sprint_value, sprintf, sprintln};
use super::value::{Val, View};

/// Go parameter types the functions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ty {
    /// `reflect.Value`: anything, including no value.
    Value,
    /// `interface{}`: anything; no value becomes nil.
    Any,
    Str,
    Int,
    StrSlice,
}

impl Ty {
    pub(super) fn go_name(self) -> &'static str {
        match self {
            Ty::Value => "reflect.Value",
            Ty::Any => "interface {}",
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::StrSlice => "[]string",
        }
    }
}

/// A function's implementation: arguments already checked against the
/// signature; an `Err` becomes "error calling NAME: MSG".
pub(super) type Impl = for<'d> fn(Vec<Val<'d>>) -> Result<Val<'d>, String>;

/// A template function and its Go signature.
#[derive(Debug)]
pub(super) struct Func {
    pub(super) name: &'static str,
    pub(super) fixed: &'static [Ty],
    pub(super) variadic: Option<Ty>,
    pub(super) call: Impl,
}

use Ty::{Any, Int, Str, StrSlice, Value as V};

const FUNCS: &[Func] = &[
    // Go builtins. `and` and `or` are evaluated lazily by `exec`.
    f("and", &[V], Some(V), |a| {
        Ok(a.into_iter().next().unwrap_or(Val::Missing))
    }),
    f("or", &[V], Some(V), |a| {
        Ok(a.into_iter().next().unwrap_or(Val::Missing))
    }),
    f("call", &[V], Some(V), call),
    f("html", &[], Some(Any), |a| {
        Ok(Val::str(html_escape(&eval_args(&a))))
    }),
    f("index", &[V], Some(V), index),
    f("slice", &[V], Some(V), slice),
    f("js", &[], Some(Any), |a| {
        Ok(Val::str(js_escape(&eval_args(&a))))
    }),
    f("len", &[V], None, len),
    f("not", &[V], None, |a| Ok(Val::Bool(!a[0].view().truth()))),
    f("print", &[], Some(Any), |a| Ok(Val::str(sprint(&a)))),
    f("printf", &[Str], Some(Any), printf),
    f("println", &[], Some(Any), |a| Ok(Val::str(sprintln(&a)))),
    f("urlquery", &[], Some(Any), |a| {
        Ok(Val::str(query_escape(&eval_args(&a))))
    }),
    f("eq", &[V], Some(V), |a| eq(&a).map(Val::Bool)),
    f("ge", &[V, V], None, |a| {
        lt(&a[0], &a[1]).map(|l| Val::Bool(!l))
    }),
    f("gt", &[V, V], None, |a| {
        le(&a[0], &a[1]).map(|l| Val::Bool(!l))
    }),
    f("le", &[V, V], None, |a| le(&a[0], &a[1]).map(Val::Bool)),
    f("lt", &[V, V], None, |a| lt(&a[0], &a[1]).map(Val::Bool)),
    f("ne", &[V, V], None, |a| eq(&a).map(|e| Val::Bool(!e))),
    // podman 4.3 (containers/common pkg/report).
    f("join", &[StrSlice, Str], None, join),
    f("json", &[Any], None, |a| Ok(Val::str(json(&a[0])))),
    f("lower", &[Str], None, |a| {
        Ok(Val::str(map_runes(as_str(&a[0]), char::to_lowercase)))
    }),
    f("pad", &[Str, Int, Int], None, pad),
    f("split", &[Str, Str], None, split),
    f("title", &[Str], None, |a| {
        Ok(Val::str(title(as_str(&a[0]))))
    }),
    f("truncate", &[Str, Int], None, truncate),
    f("upper", &[Str], None, |a| {
        Ok(Val::str(map_runes(as_str(&a[0]), char::to_uppercase)))
    }),
];

const fn f(name: &'static str, fixed: &'static [Ty], variadic: Option<Ty>, call: Impl) -> Func {
    Func {
        name,
        fixed,
        variadic,
        call,
    }
}

/// The function called `name`, if any.
pub(super) fn lookup(name: &str) -> Option<&'static Func> {
    FUNCS.iter().find(|f| f.name == name)
}

/// Whether a function called `name` exists (checked at parse time).
pub(super) fn exists(name: &str) -> bool {
    lookup(name).is_some()
}

/// The string inside a value already checked to be a string.
fn as_str<'a>(v: &'a Val<'_>) -> &'a str {
    match v.view() {
        View::Str(s) => s,
        _ => "",
    }
}

fn as_int(v: &Val<'_>) -> i64 {
    match v {
        Val::Int(i) => *i,
        _ => 0,
    }
}

fn call(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    match a[0].view() {
        v if v.is_nil() => Err("call of nil".into()),
        v => Err(format!("non-function of type {}", v.type_name())),
    }
}

/// Go's `evalArgs` for html/js/urlquery: one string as is, otherwise
/// `fmt.Sprint` with nil shown as `<no value>`.
fn eval_args(args: &[Val<'_>]) -> String {
    if let [a] = args {
        if let View::Str(s) = a.view() {
            return s.to_string();
        }
    }
    let printable: Vec<Val<'_>> = args
        .iter()
        .map(|a| {
            if a.view().is_nil() {
                Val::str("<no value>")
            } else {
                a.clone()
            }
        })
        .collect();
    sprint(&printable)
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || super::fmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `indexArg`: an integer index within `0..=cap`.
fn index_arg(index: &Val<'_>, cap: usize) -> Result<usize, String> {
    let x = match index.view() {
        View::Int(i, _) => i,
        View::Uint(u) => u as i64,
        v if v.is_nil() => return Err("cannot index slice/array with nil".into()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ))
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let mut args = a.into_iter();
    let mut item = args.next().unwrap_or(Val::Missing);
    if item.view().is_nil() {
        return Err("index of untyped nil".into());
    }
    for idx in args {
        item = match item.view() {
            View::Missing | View::Null => return Err("index of nil pointer".into()),
            View::Array(arr) => {
                let x = index_arg(&idx, arr.len())?;
                if x == arr.len() {
                    return Err("reflect: slice index out of range".into());
                }
                item.child(|v| v.get(x))
            }
            View::Str(s) => {
                let x = index_arg(&idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Val::Byte(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            // A missing key gives the map's zero value: "" for a map of
            // strings (podman's labels and annotations are
            // map[string]string), no value for a map of anything else.
            View::Object(o) => match idx.view() {
                View::Str(k) => {
                    let strings = o.values().all(Value::is_string);
                    match item.child(|v| v.get(k)) {
                        Val::Missing if strings => Val::owned(Value::String(String::new())),
                        found => found,
                    }
                }
                v if v.is_nil() => return Err("value is nil; should be of type string".into()),
                v => {
                    return Err(format!(
                        "value has type {}; should be string",
                        v.type_name()
                    ))
                }
            },
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn slice(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let item = &a[0];
    let indexes = &a[1..];
    let view = item.view();
    if view.is_nil() {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match view {
        View::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        View::Array(arr) => arr.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match view {
        View::Str(s) => Val::str(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        View::Array(arr) => Val::owned(Value::Array(arr[idx[0]..idx[1]].to_vec())),
        _ => Val::Missing,
    })
}

fn len(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    match a[0].view() {
        // What Go 1.19 reports for a missing map entry (a reflect panic).
        View::Missing => Err("reflect: call of reflect.Value.Type on zero Value".into()),
        // podman's nulls are mostly nil slices and maps, whose length is 0.
        View::Null => Ok(Val::Int(0)),
        View::Str(s) => Ok(Val::Int(s.len() as i64)),
        View::Array(arr) => Ok(Val::Int(arr.len() as i64)),
        View::Object(o) => Ok(Val::Int(o.len() as i64)),
        v => Err(format!("len of type {}", v.type_name())),
    }
}

fn printf(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    Ok(Val::str(sprintf(as_str(&a[0]), &a[1..])))
}

/// The "basic kinds" Go's comparison functions accept.
#[derive(Clone, Copy)]
enum Basic<'a> {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a str),
}

fn basic(v: &View<'_>) -> Option<Basic<'static>> {
    match *v {
        View::Bool(b) => Some(Basic::Bool(b)),
        View::Int(i, _) => Some(Basic::Int(i)),
        View::Uint(u) => Some(Basic::Uint(u)),
        View::Float(f) => Some(Basic::Float(f)),
        _ => None,
    }
}

fn basic_of<'a>(v: &View<'a>) -> Option<Basic<'a>> {
    match *v {
        View::Str(s) => Some(Basic::Str(s)),
        _ => basic(v),
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

/// Compares two basic values of compatible kinds; `None` if incompatible.
fn compare(a: Basic<'_>, b: Basic<'_>) -> Option<Ordering> {
    match (a, b) {
        (Basic::Bool(x), Basic::Bool(y)) => Some(x.cmp(&y)),
        (Basic::Int(x), Basic::Int(y)) => Some(x.cmp(&y)),
        (Basic::Uint(x), Basic::Uint(y)) => Some(x.cmp(&y)),
        (Basic::Int(x), Basic::Uint(y)) => Some(if x < 0 {
            Ordering::Less
        } else {
            (x as u64).cmp(&y)
        }),
        (Basic::Uint(x), Basic::Int(y)) => Some(if y < 0 {
            Ordering::Greater
        } else {
            x.cmp(&(y as u64))
        }),
        (Basic::Float(x), Basic::Float(y)) => x.partial_cmp(&y).or(Some(Ordering::Less)),
        (Basic::Str(x), Basic::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn eq(a: &[Val<'_>]) -> Result<bool, String> {
    let a1 = a[0].view();
    if a.len() == 1 {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_of(&a1);
    for arg in &a[1..] {
        let a2 = arg.view();
        let truth = match (k1, basic_of(&a2)) {
            (Some(Basic::Float(x)), Some(Basic::Float(y))) => x == y,
            (Some(x), Some(y)) => match compare(x, y) {
                Some(o) => o == Ordering::Equal,
                None => return Err(BAD_COMPARISON.into()),
            },
            (Some(_), None) | (None, Some(_)) => {
                if !a1.is_nil() && !a2.is_nil() {
                    return Err(BAD_COMPARISON.into());
                }
                false
            }
            (None, None) => {
                if a1.is_nil() || a2.is_nil() {
                    a1.is_nil() && a2.is_nil()
                } else if a1.type_name() != a2.type_name() {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        sprint_value(&a1),
                        a1.type_name(),
                        a2.type_name(),
                        sprint_value(&a2)
                    ));
                } else {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        sprint_value(&a2),
                        a2.type_name()
                    ));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a: &Val<'_>, b: &Val<'_>) -> Result<bool, String> {
    let (va, vb) = (a.view(), b.view());
    let ka = basic_of(&va).ok_or(BAD_COMPARISON_TYPE)?;
    let kb = basic_of(&vb).ok_or(BAD_COMPARISON_TYPE)?;
    if let (Basic::Bool(_), Basic::Bool(_)) = (ka, kb) {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    if let (Basic::Float(x), Basic::Float(y)) = (ka, kb) {
        return Ok(x < y);
    }
    match compare(ka, kb) {
        Some(o) => Ok(o == Ordering::Less),
        None => Err(BAD_COMPARISON.into()),
    }
}

fn le(a: &Val<'_>, b: &Val<'_>) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(&[a.clone(), b.clone()])
}

fn join(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let parts: Vec<&str> = match a[0].view() {
        View::Array(arr) => arr.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    Ok(Val::str(parts.join(as_str(&a[1]))))
}

fn split(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let (s, sep) = (as_str(&a[0]), as_str(&a[1]));
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.to_string())).collect()
    };
    Ok(Val::owned(Value::Array(parts)))
}

/// podman's `pad`: spaces before and after a non-empty string.
fn pad(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let s = as_str(&a[0]);
    let (prefix, suffix) = (as_int(&a[1]), as_int(&a[2]));
    if s.is_empty() {
        return Ok(Val::str(""));
    }
    if prefix < 0 || suffix < 0 {
        return Err("strings: negative Repeat count".into());
    }
    let (prefix, suffix) = (prefix.min(1 << 20) as usize, suffix.min(1 << 20) as usize);
    Ok(Val::str(format!(
        "{}{s}{}",
        " ".repeat(prefix),
        " ".repeat(suffix)
    )))
}

/// podman's `truncate`: the first N bytes, when the string is that long.
fn truncate(a: Vec<Val<'_>>) -> Result<Val<'_>, String> {
    let s = as_str(&a[0]);
    let n = as_int(&a[1]);
    if (s.len() as i64) < n {
        return Ok(a[0].clone());
    }
    if n < 0 {
        return Err(format!("runtime error: slice bounds out of range [:{n}]"));
    }
    Ok(Val::str(String::from_utf8_lossy(
        &s.as_bytes()[..n as usize],
    )))
}

/// Go's `strings.ToUpper`/`ToLower`: rune by rune, keeping runes whose
/// case mapping is not a single rune.
fn map_runes<I: Iterator<Item = char> + ExactSizeIterator>(s: &str, f: fn(char) -> I) -> String {
    s.chars()
        .map(|c| {
            let mut m = f(c);
            if m.len() == 1 {
                m.next().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// Go's (deprecated) `strings.Title`, which podman's `title` uses.
fn title(s: &str) -> String {
    fn is_separator(r: char) -> bool {
        if r.is_ascii() {
            return !(r.is_ascii_alphanumeric() || r == '_');
        }
        if r.is_alphabetic() || r.is_numeric() {
            return false;
        }
        r.is_whitespace()
    }
    let mut prev = ' ';
    s.chars()
        .map(|r| {
            let out = if is_separator(prev) {
                let mut up = r.to_uppercase();
                if up.len() == 1 {
                    up.next().unwrap_or(r)
                } else {
                    r
                }
            } else {
                r
            };
            prev = r;
            out
        })
        .collect()
}
