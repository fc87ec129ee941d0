//! Executor, a port of Go's `text/template/exec.go` (Go 1.19) over JSON data.
//!
//! Error messages carry the location and the node being evaluated, like Go:
//! `template: NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE`.

use serde_json::Value;

use super::fmt::{quote, sprint_value};
use super::funcs::{self, Func, Ty};
use super::parser::{Arg, Branch, Command, List, Node, Number, Parsed, Pipe, TemplateCall};
use super::value::{sorted_entries, Shape, Val, View};
use super::TemplateError;

/// How deeply `{{template}}` calls and control structures (`if`, `with`,
/// `range`) may nest together. Go allows 100000 template calls on its
/// growable stacks; a fixed native stack needs a much smaller bound.
const MAX_EXEC_DEPTH: usize = 300;

/// Non-local exits from `walk`: `{{break}}`, `{{continue}}` and errors.
#[derive(Debug)]
enum Flow {
    Break,
    Continue,
    Err(TemplateError),
}

impl From<TemplateError> for Flow {
    fn from(e: TemplateError) -> Self {
        Flow::Err(e)
    }
}

type R<T> = Result<T, Flow>;

/// The node being evaluated, for error messages (Go's `state.at`).
#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Arg(&'t Arg),
    Cmd(&'t Command),
    Pipe(&'t Pipe),
    Template(&'t TemplateCall),
}

pub(super) struct State<'t, 'd> {
    /// The top-level template's name, used in locations.
    parse_name: &'t str,
    /// The name of the template being executed.
    name: &'t str,
    text: &'t str,
    parsed: &'t Parsed,
    vars: Vec<(&'t str, Val<'d>)>,
    out: String,
    at: At<'t>,
    depth: usize,
}

/// Runs a parsed template over `data`.
pub(super) fn execute(
    name: &str,
    text: &str,
    parsed: &Parsed,
    data: &Value,
    shape: Shape,
) -> Result<String, TemplateError> {
    let mut s = State {
        parse_name: name,
        name,
        text,
        parsed,
        vars: vec![("$", Val::Json(data, shape))],
        out: String::new(),
        at: At::None,
        depth: 0,
    };
    match s.walk(&Val::Json(data, shape), &parsed.root) {
        Ok(()) => Ok(s.out),
        Err(Flow::Err(e)) => Err(e),
        // The parser rejects {{break}} and {{continue}} outside {{range}}.
        Err(Flow::Break | Flow::Continue) => Ok(s.out),
    }
}

fn can_be_nil(ty: Ty) -> bool {
    matches!(ty, Ty::Value | Ty::Any | Ty::StrSlice)
}

impl<'t, 'd> State<'t, 'd> {
    fn errorf<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        let (pos, context) = match self.at {
            At::None => {
                return Err(Flow::Err(TemplateError::new(format!(
                    "template: {}: {msg}",
                    self.name
                ))));
            }
            At::Arg(a) => (a.pos(), a.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Template(t) => (t.pos, t.to_string()),
        };
        let before = &self.text[..pos.min(self.text.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - (nl + 1),
            None => pos,
        };
        Err(Flow::Err(TemplateError::new(format!(
            "template: {}:{line}:{col}: executing {} at <{context}>: {msg}",
            self.parse_name,
            quote(self.name),
        ))))
    }

    fn walk(&mut self, dot: &Val<'d>, list: &'t List) -> R<()> {
        for node in list {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let val = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print_value(&val);
                    }
                }
                Node::If(b) => self.nested(|s| s.walk_if_or_with(false, dot, b))?,
                Node::With(b) => self.nested(|s| s.walk_if_or_with(true, dot, b))?,
                Node::Range(b) => self.nested(|s| s.walk_range(dot, b))?,
                Node::Break => return Err(Flow::Break),
                Node::Continue => return Err(Flow::Continue),
                Node::Template(t) => {
                    self.at = At::Template(t);
                    self.nested(|s| s.walk_template(dot, t))?
                }
            }
        }
        Ok(())
    }

    /// Runs `f` one level deeper, failing past `MAX_EXEC_DEPTH`.
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> R<()>) -> R<()> {
        if self.depth >= MAX_EXEC_DEPTH {
            return self.errorf(format_args!(
                "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            ));
        }
        self.depth += 1;
        let res = f(self);
        self.depth -= 1;
        res
    }

    fn print_value(&mut self, val: &Val<'d>) {
        let view = val.view();
        if let (Shape::Struct(_), View::Null) = (val.shape(), view) {
            // A nil pointer to a struct.
            self.out.push_str("<nil>");
        } else if let (Shape::Struct(_), false) = (val.shape(), view.is_nil()) {
            let text = struct_text(val);
            self.out.push_str(&text);
        } else if view.is_nil() {
            self.out.push_str("<no value>");
        } else if let View::Str(s) = view {
            self.out.push_str(s);
        } else {
            self.out.push_str(&sprint_value(&view));
        }
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Val<'d>, b: &'t Branch) -> R<()> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        if val.view().truth() {
            if with {
                self.walk(&val, &b.list)?;
            } else {
                self.walk(dot, &b.list)?;
            }
        } else if let Some(else_list) = &b.else_list {
            self.walk(dot, else_list)?;
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn walk_range(&mut self, dot: &Val<'d>, r: &'t Branch) -> R<()> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &r.pipe)?;
        // Variables of the body are popped after each iteration.
        let body_mark = self.vars.len();
        let decls = r.pipe.decl.len();
        let one = |s: &mut Self, index: Val<'d>, elem: Val<'d>| -> R<bool> {
            if decls > 0 {
                s.vars[body_mark - 1].1 = elem.clone();
            }
            if decls > 1 {
                s.vars[body_mark - 2].1 = index;
            }
            let res = s.walk(&elem, &r.list);
            s.vars.truncate(body_mark);
            match res {
                Ok(()) | Err(Flow::Continue) => Ok(true),
                Err(Flow::Break) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let iterated = match val.view() {
            View::Array(a) if !a.is_empty() => {
                for i in 0..a.len() {
                    let elem = val.child(|v| v.get(i));
                    if !one(self, Val::Int(i as i64), elem)? {
                        break;
                    }
                }
                true
            }
            View::Object(o) if !o.is_empty() => {
                for (k, _) in sorted_entries(o) {
                    let elem = val.child(|v| v.get(k));
                    if !one(self, Val::str(k.as_str()), elem)? {
                        break;
                    }
                }
                true
            }
            View::Array(_) | View::Object(_) | View::Missing | View::Null => false,
            v => {
                return self.errorf(format_args!(
                    "range can't iterate over {}",
                    sprint_value(&v)
                ))
            }
        };
        if !iterated {
            if let Some(else_list) = &r.else_list {
                self.walk(dot, else_list)?;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn walk_template(&mut self, dot: &Val<'d>, t: &'t TemplateCall) -> R<()> {
        self.at = At::Template(t);
        let body = if t.name == self.parse_name {
            &self.parsed.root
        } else {
            match self.parsed.defs.get(&t.name) {
                Some(body) => body,
                None => {
                    return self.errorf(format_args!("template {} not defined", quote(&t.name)))
                }
            }
        };
        let new_dot = match &t.pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Val::Missing,
        };
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.name, &t.name);
        let res = self.walk(&new_dot, body);
        self.name = saved_name;
        self.vars = saved_vars;
        res
    }

    fn eval_pipeline(&mut self, dot: &Val<'d>, pipe: &'t Pipe) -> R<Val<'d>> {
        self.at = At::Pipe(pipe);
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Val::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn set_var(&mut self, name: &str, value: Val<'d>) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => self.errorf(format_args!("undefined variable: {name}")),
        }
    }

    fn var_value(&self, name: &str) -> R<Val<'d>> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.errorf(format_args!("undefined variable: {name}")),
        }
    }

    fn eval_command(
        &mut self,
        dot: &Val<'d>,
        cmd: &'t Command,
        fin: Option<Val<'d>>,
    ) -> R<Val<'d>> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match first {
            Arg::Field { idents, .. } => {
                self.at = At::Arg(first);
                self.eval_field_chain(dot, dot.clone(), idents, !rest.is_empty(), fin)
            }
            Arg::Chain { .. } => self.eval_chain(dot, first, !rest.is_empty(), fin),
            Arg::Identifier { name, .. } => {
                self.at = At::Arg(first);
                self.eval_function(dot, name, At::Cmd(cmd), rest, fin)
            }
            Arg::Pipe(p) => {
                self.not_a_function(cmd, fin.is_some())?;
                self.eval_pipeline(dot, p)
            }
            Arg::Variable { .. } => self.eval_variable(dot, first, !rest.is_empty(), fin),
            _ => {
                self.at = At::Arg(first);
                self.not_a_function(cmd, fin.is_some())?;
                match first {
                    Arg::Bool { val, .. } => Ok(Val::Bool(*val)),
                    Arg::Dot { .. } => Ok(dot.clone()),
                    Arg::Nil { .. } => self.errorf("nil is not a command"),
                    Arg::Number { num, .. } => self.ideal_constant(num),
                    Arg::String { text, .. } => Ok(Val::str(text.as_str())),
                    _ => self.errorf(format_args!(
                        "can't evaluate command {}",
                        quote(&first.to_string())
                    )),
                }
            }
        }
    }

    fn not_a_function(&self, cmd: &Command, has_final: bool) -> R<()> {
        if cmd.args.len() > 1 || has_final {
            return self.errorf(format_args!(
                "can't give argument to non-function {}",
                cmd.args[0]
            ));
        }
        Ok(())
    }

    fn ideal_constant(&self, num: &Number) -> R<Val<'d>> {
        let text = &num.text;
        let is_hex_int = text.len() > 2
            && text.starts_with('0')
            && matches!(text.as_bytes()[1], b'x' | b'X')
            && !text.contains(['p', 'P']);
        let is_rune = text.starts_with('\'');
        if let Some(f) = num.float {
            if !is_hex_int && !is_rune && text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Val::Float(f));
            }
        }
        if let Some(i) = num.int {
            return Ok(Val::Int(i));
        }
        if num.uint.is_some() {
            return self.errorf(format_args!("{text} overflows int"));
        }
        Ok(Val::Missing)
    }

    /// `.A.B` (when `receiver` is dot) or the fields after a variable or chain.
    fn eval_field_chain(
        &mut self,
        _dot: &Val<'d>,
        mut receiver: Val<'d>,
        idents: &[String],
        has_args: bool,
        fin: Option<Val<'d>>,
    ) -> R<Val<'d>> {
        let n = idents.len();
        for (i, name) in idents.iter().enumerate() {
            let last = i + 1 == n;
            let with_args = last && (has_args || fin.is_some());
            receiver = self.eval_field(name, with_args, receiver)?;
        }
        Ok(receiver)
    }

    fn eval_field(&self, name: &str, has_args: bool, receiver: Val<'d>) -> R<Val<'d>> {
        if let Some(field) = receiver.struct_field(name) {
            return match field {
                Err(type_name) => self.errorf(format_args!(
                    "can't evaluate field {name} in type {type_name}"
                )),
                Ok(_) if receiver.view().is_nil() => self.errorf(format_args!(
                    "nil pointer evaluating {}.{name}",
                    receiver.shape().struct_name().unwrap_or("interface {}")
                )),
                Ok(_) if has_args => self.errorf(format_args!(
                    "{name} has arguments but cannot be invoked as function"
                )),
                Ok(v) => Ok(v),
            };
        }
        match receiver.view() {
            View::Missing => Ok(Val::Missing),
            View::Null => self.errorf(format_args!("nil pointer evaluating interface {{}}.{name}")),
            View::Object(_) => {
                if has_args {
                    return self.errorf(format_args!(
                        "{name} has arguments but cannot be invoked as function"
                    ));
                }
                Ok(receiver.child(|v| v.get(name)))
            }
            v => self.errorf(format_args!(
                "can't evaluate field {name} in type {}",
                v.type_name()
            )),
        }
    }

    fn eval_chain(
        &mut self,
        dot: &Val<'d>,
        chain: &'t Arg,
        has_args: bool,
        fin: Option<Val<'d>>,
    ) -> R<Val<'d>> {
        self.at = At::Arg(chain);
        let Arg::Chain { node, fields, .. } = chain else {
            return self.errorf("internal error: not a chain");
        };
        if let Arg::Nil { .. } = node.as_ref() {
            return self.errorf(format_args!("indirection through explicit nil in {chain}"));
        }
        let pipe = self.eval_arg(dot, Ty::Any, node)?;
        self.eval_field_chain(dot, pipe, fields, has_args, fin)
    }

    fn eval_variable(
        &mut self,
        dot: &Val<'d>,
        var: &'t Arg,
        has_args: bool,
        fin: Option<Val<'d>>,
    ) -> R<Val<'d>> {
        self.at = At::Arg(var);
        let Arg::Variable { idents, .. } = var else {
            return self.errorf("internal error: not a variable");
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            if has_args || fin.is_some() {
                return self.errorf(format_args!("can't give argument to non-function {var}"));
            }
            return Ok(value);
        }
        self.eval_field_chain(dot, value, &idents[1..], has_args, fin)
    }

    fn eval_function(
        &mut self,
        dot: &Val<'d>,
        name: &str,
        node: At<'t>,
        args: &'t [Arg],
        fin: Option<Val<'d>>,
    ) -> R<Val<'d>> {
        let Some(func) = funcs::lookup(name) else {
            return self.errorf(format_args!("{} is not a defined function", quote(name)));
        };
        self.eval_call(dot, func, node, args, fin)
    }

    fn eval_call(
        &mut self,
        dot: &Val<'d>,
        func: &Func,
        node: At<'t>,
        args: &'t [Arg],
        fin: Option<Val<'d>>,
    ) -> R<Val<'d>> {
        let name = func.name;
        let num_in = args.len() + usize::from(fin.is_some());
        let num_fixed = func.fixed.len();
        if func.variadic.is_some() {
            if num_in < num_fixed {
                return self.errorf(format_args!(
                    "wrong number of args for {name}: want at least {num_fixed} got {}",
                    args.len()
                ));
            }
        } else if num_in != num_fixed {
            return self.errorf(format_args!(
                "wrong number of args for {name}: want {num_fixed} got {num_in}"
            ));
        }

        // `and` and `or` short-circuit, returning the deciding operand.
        if name == "and" || name == "or" {
            let mut v = Val::Missing;
            for arg in args {
                v = self.eval_arg(dot, Ty::Value, arg)?;
                if v.view().truth() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(fin) = fin {
                v = self.validate_type(fin, Ty::Value)?;
            }
            return Ok(v);
        }

        let mut argv = Vec::with_capacity(num_in);
        for (i, arg) in args.iter().enumerate() {
            let ty = func
                .fixed
                .get(i)
                .copied()
                .or(func.variadic)
                .unwrap_or(Ty::Any);
            argv.push(self.eval_arg(dot, ty, arg)?);
        }
        if let Some(fin) = fin {
            let ty = if num_in - 1 < num_fixed {
                func.fixed[num_in - 1]
            } else {
                func.variadic.unwrap_or(Ty::Any)
            };
            argv.push(self.validate_type(fin, ty)?);
        }
        match (func.call)(argv) {
            Ok(v) => Ok(v),
            Err(msg) => {
                self.at = node;
                self.errorf(format_args!("error calling {name}: {msg}"))
            }
        }
    }

    fn validate_type(&self, value: Val<'d>, ty: Ty) -> R<Val<'d>> {
        if value.is_missing() {
            return match ty {
                Ty::Value | Ty::Any => Ok(Val::Missing),
                Ty::StrSlice => Ok(Val::owned(Value::Array(Vec::new()))),
                _ => self.errorf(format_args!("invalid value; expected {}", ty.go_name())),
            };
        }
        let view = value.view();
        let ok = match ty {
            Ty::Value | Ty::Any => true,
            Ty::Str => matches!(view, View::Str(_)),
            Ty::Int => matches!(view, View::Int(_, "int")),
            Ty::StrSlice => matches!(view, View::Array(a) if a.iter().all(Value::is_string)),
        };
        if ok {
            Ok(value)
        } else {
            self.errorf(format_args!(
                "wrong type for value; expected {}; got {}",
                ty.go_name(),
                view.type_name()
            ))
        }
    }

    fn eval_arg(&mut self, dot: &Val<'d>, ty: Ty, arg: &'t Arg) -> R<Val<'d>> {
        self.at = At::Arg(arg);
        let v = match arg {
            Arg::Dot { .. } => dot.clone(),
            Arg::Nil { .. } => {
                if can_be_nil(ty) {
                    return self.validate_type(Val::Missing, ty);
                }
                return self.errorf(format_args!("cannot assign nil to {}", ty.go_name()));
            }
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot, dot.clone(), idents, false, None)?
            }
            Arg::Variable { .. } => self.eval_variable(dot, arg, false, None)?,
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Identifier { name, .. } => {
                self.eval_function(dot, name, At::Arg(arg), &[], None)?
            }
            Arg::Chain { .. } => self.eval_chain(dot, arg, false, None)?,
            _ => {
                return match ty {
                    Ty::Str => match arg {
                        Arg::String { text, .. } => Ok(Val::str(text.as_str())),
                        _ => self.errorf(format_args!("expected string; found {arg}")),
                    },
                    Ty::Int => match arg {
                        Arg::Number { num, .. } if num.int.is_some() => {
                            Ok(Val::Int(num.int.unwrap_or(0)))
                        }
                        _ => self.errorf(format_args!("expected integer; found {arg}")),
                    },
                    Ty::Value | Ty::Any => self.eval_empty_interface(arg),
                    Ty::StrSlice => {
                        self.errorf(format_args!("can't handle {arg} for arg of type []string"))
                    }
                };
            }
        };
        self.validate_type(v, ty)
    }

    /// A literal passed where any type is accepted.
    fn eval_empty_interface(&mut self, arg: &'t Arg) -> R<Val<'d>> {
        self.at = At::Arg(arg);
        match arg {
            Arg::Bool { val, .. } => Ok(Val::Bool(*val)),
            Arg::Number { num, .. } => self.ideal_constant(num),
            Arg::String { text, .. } => Ok(Val::str(text.as_str())),
            _ => self.errorf(format_args!(
                "can't handle assignment of {arg} to empty interface argument"
            )),
        }
    }
}

/// A struct as Go's `%v` prints it: `{v1 v2 …}`, fields in declaration
/// order (a nested struct the same way, where Go would print a pointer's
/// address; a field absent from the data as nothing).
fn struct_text(val: &Val<'_>) -> String {
    let Shape::Struct(s) = val.shape() else {
        return sprint_value(&val.view());
    };
    let parts: Vec<String> = s
        .fields
        .iter()
        .map(|f| match val.struct_field(f.name) {
            Some(Ok(v)) => match (v.shape(), v.view()) {
                (_, View::Null | View::Missing) => String::new(),
                (Shape::Struct(_), _) => struct_text(&v),
                (_, View::Str(t)) => t.to_owned(),
                (_, view) => sprint_value(&view),
            },
            _ => String::new(),
        })
        .collect();
    format!("{{{}}}", parts.join(" "))
}
