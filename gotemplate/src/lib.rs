//! Go `text/template` for `--format` flags, executed over JSON data.
//!
//! podman's `--format` is Go's `text/template` plus a few helper functions;
//! this crate reproduces it closely enough that format strings written for
//! podman give the same output and the same error messages:
//!
//! * syntax of Go 1.19 (what podman 4.3 is built with): text and actions,
//!   `{{/* comments */}}`, `{{-`/`-}}` trimming, fields `.A.B`, variables
//!   (`$`, `$x := …`, `$x = …`, `range $i, $e := …`), pipelines, parentheses,
//!   `if`/`else if`/`else`, `range` (with `else`, `break`, `continue`),
//!   `with`, `define`/`template`/`block`, string (`"…"`, `` `…` ``), char,
//!   number, bool and `nil` literals;
//! * Go's builtins: `and`, `or` (short-circuiting), `not`, `eq` (several
//!   operands), `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`, `slice`,
//!   `print`, `printf`, `println`, `html`, `js`, `urlquery`, `call` (always
//!   an error: data holds no functions);
//! * podman's functions: `json`, `join`, `split`, `lower`, `upper`, `title`,
//!   `pad`, `truncate`;
//! * values print like Go's `fmt` `%v`: `[a b]` for lists, `map[k:v]` with
//!   sorted keys for objects, `1e+06` for large floats.
//!
//! The `table` prefix of podman's format strings is not handled here.
//!
//! Data model (where JSON differs from podman's Go structs):
//!
//! * with [`Template::execute_as`] and a [`Shape`], the objects the shape
//!   names are podman's structs: fields resolve by their Go names (which
//!   may differ from the JSON keys: `.Host.CgroupsVersion` is
//!   `host.cgroupVersion`), a field the struct lacks is Go's error
//!   `can't evaluate field X in type T`, a nil struct pointer's field is
//!   `nil pointer evaluating T.X`, and a struct prints as `{v1 v2 …}`;
//! * otherwise an object is a Go map: a missing key yields "no value", printed as
//!   `<no value>` (Go prints a missing *struct* field as an error, and a
//!   missing `map[string]string` entry as an empty string);
//! * JSON `null` is a nil interface: `<no value>` when printed by an action,
//!   `<nil>` inside a list or map, false in conditions, empty to `range`, and
//!   of length 0 (podman's nulls are mostly nil slices and maps, which Go
//!   prints as `[]` and `map[]`: emit `[]`/`{}` for empty collections to get
//!   podman's output);
//! * objects print as maps (`map[Env:[…]]`), where Go would print a struct
//!   as `{…}`; times print as the JSON string they were encoded to;
//! * integers have Go type `int64` and other numbers `float64`, so
//!   `{{truncate .Id .Size}}` fails like podman's ("wrong type for value; expected int; got
//!   int64"); number literals are `int` or `float64` as in Go;
//! * `json` keeps object members in the data's order (podman encodes
//!   structs in field order).
//!
//! Not supported: complex and hexadecimal floating-point literals, methods
//! (data has none, so `call` always fails), Go ≥ 1.22 additions (`range` over
//! an integer, `else with`). An error discards the partial output that Go
//! would already have written. Nesting is bounded (200 levels in the parser,
//! 300 for `template` calls plus control structures at run time) so that
//! hostile input fails with an error instead of exhausting the stack.

mod exec;
mod fmt;
mod funcs;
mod lexer;
mod parser;
mod value;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use value::{GoField, GoStruct, Shape};

/// A parsed template, ready to be executed any number of times.
#[derive(Debug)]
pub struct Template {
    name: String,
    text: String,
    parsed: parser::Parsed,
}

impl Template {
    /// Parses `text` as an unnamed template (errors read `template: :1: …`).
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Self::parse_named("", text)
    }

    /// Parses `text` under `name`, which error messages quote the way Go's
    /// do (podman names its inspect template "inspect").
    pub fn parse_named(name: &str, text: &str) -> Result<Template, TemplateError> {
        let parsed = parser::parse(name, text, funcs::exists)?;
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            parsed,
        })
    }

    /// Executes the template with `data` as dot (and `$`); objects are
    /// Go maps.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        exec::execute(&self.name, &self.text, &self.parsed, data, Shape::Any)
    }

    /// Executes the template with `data`, of the Go type `shape`, as dot:
    /// fields resolve by their Go names, and a field the type does not
    /// have is Go's error (`can't evaluate field X in type T`).
    pub fn execute_as(&self, data: &Value, shape: Shape) -> Result<String, TemplateError> {
        exec::execute(&self.name, &self.text, &self.parsed, data, shape)
    }
}

/// A parse or execution error, displayed with Go's wording, e.g.
/// `template: :1:2: executing "" at <.Os.Foo>: can't evaluate field Foo in type string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    message: String,
}

impl TemplateError {
    fn new(message: String) -> Self {
        TemplateError { message }
    }
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}
