//! Parser, a port of Go's `text/template/parse/parse.go` (Go 1.19), producing
//! the node tree that `exec` walks. Error messages follow Go's wording.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use super::lexer::{lex, Item, Tok};
use super::TemplateError;

/// Deepest nesting of control structures and parentheses accepted. Go 1.19
/// has no limit; a recursive-descent parser on a fixed stack needs one, and
/// real `--format` strings nest a handful of levels.
const MAX_DEPTH: usize = 200;

/// A list of nodes: the body of a template or of a control structure.
pub(super) type List = Vec<Node>;

/// A statement-level node.
#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Break,
    Continue,
    Template(TemplateCall),
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug)]
pub(super) struct Branch {
    pub(super) pipe: Pipe,
    pub(super) list: List,
    pub(super) else_list: Option<List>,
}

/// `{{template "name" pipeline}}`.
#[derive(Debug)]
pub(super) struct TemplateCall {
    pub(super) pos: usize,
    pub(super) name: String,
    pub(super) pipe: Option<Pipe>,
}

/// A pipeline, with optional variable declarations (`$x :=` / `$x =`).
#[derive(Debug)]
pub(super) struct Pipe {
    pub(super) pos: usize,
    pub(super) is_assign: bool,
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Command>,
}

/// One stage of a pipeline: an operand followed by arguments.
#[derive(Debug)]
pub(super) struct Command {
    pub(super) pos: usize,
    pub(super) args: Vec<Arg>,
}

/// A parsed number literal, with every interpretation Go's `NumberNode` keeps.
#[derive(Debug, Clone)]
pub(super) struct Number {
    pub(super) text: String,
    pub(super) int: Option<i64>,
    pub(super) uint: Option<u64>,
    pub(super) float: Option<f64>,
}

/// An operand.
#[derive(Debug)]
pub(super) enum Arg {
    /// `.A.B`: the field names without dots.
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A`: the variable name (with `$`) followed by field names.
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    /// `(pipe).A` or another term followed by fields.
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Identifier {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Number {
        pos: usize,
        num: Number,
    },
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Pipe),
}

impl Arg {
    pub(super) fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::String { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

// The Display impls reproduce Go's `Node.String()`, which error messages
// quote as the context `<...>`.
impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { idents, .. } => f.write_str(&idents.join(".")),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(p) = node.as_ref() {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Dot { .. } => f.write_str("."),
            Arg::Nil { .. } => f.write_str("nil"),
            Arg::Bool { val, .. } => write!(f, "{val}"),
            Arg::Number { num, .. } => f.write_str(&num.text),
            Arg::String { quoted, .. } => f.write_str(quoted),
            Arg::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            if let Arg::Pipe(p) = arg {
                write!(f, "({p})")?;
            } else {
                write!(f, "{arg}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(" := ")?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TemplateCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{template {}", super::fmt::quote(&self.name))?;
        if let Some(p) = &self.pipe {
            write!(f, " {p}")?;
        }
        f.write_str("}}")
    }
}

/// The result of parsing: the top-level list plus `{{define}}`d templates.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) root: List,
    pub(super) defs: HashMap<String, List>,
}

/// Whether a function name is known; checked at parse time like Go.
pub(super) type FuncCheck = fn(&str) -> bool;

struct Parser<'a> {
    name: &'a str,
    items: Vec<Item>,
    next_item: usize,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
    depth: usize,
    has_func: FuncCheck,
    defs: HashMap<String, List>,
}

type PResult<T> = Result<T, TemplateError>;

/// Parses `text`; `name` only appears in error messages.
pub(super) fn parse(name: &str, text: &str, has_func: FuncCheck) -> PResult<Parsed> {
    let eof = Item {
        typ: Tok::Eof,
        pos: 0,
        val: String::new(),
        line: 0,
    };
    let mut p = Parser {
        name,
        items: lex(text),
        next_item: 0,
        token: [eof.clone(), eof.clone(), eof],
        peek_count: 0,
        vars: vec!["$".into()],
        action_line: 0,
        range_depth: 0,
        depth: 0,
        has_func,
        defs: HashMap::new(),
    };
    let root = p.parse_top()?;
    // A {{define}} of the top-level name only counts if the body is empty.
    let root = match p.defs.remove(name) {
        Some(def) if !is_empty_tree(&def) && !is_empty_tree(&root) => {
            return Err(TemplateError::new(format!(
                "template: {name}:1: template: multiple definition of template {}",
                super::fmt::quote(name)
            )))
        }
        Some(def) if !is_empty_tree(&def) => def,
        _ => root,
    };
    Ok(Parsed { root, defs: p.defs })
}

fn is_empty_tree(list: &List) -> bool {
    list.iter().all(|n| match n {
        Node::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

impl Parser<'_> {
    fn lex_next(&mut self) -> Item {
        match self.items.get(self.next_item) {
            Some(item) => {
                self.next_item += 1;
                item.clone()
            }
            None => {
                let mut item = self
                    .items
                    .last()
                    .cloned()
                    .expect("lexer emits a final item");
                item.typ = Tok::Eof;
                item
            }
        }
    }

    fn next(&mut self) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = self.lex_next();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        self.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = self.lex_next();
        self.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != Tok::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<T>(&self, msg: impl fmt::Display) -> PResult<T> {
        Err(TemplateError::new(format!(
            "template: {}:{}: {}",
            self.name, self.token[0].line, msg
        )))
    }

    fn unexpected<T>(&self, token: &Item, context: &str) -> PResult<T> {
        if token.typ == Tok::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format_args!("{token}{extra}"));
        }
        self.errorf(format_args!("unexpected {token} in {context}"))
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.errorf("max expression depth exceeded");
        }
        Ok(())
    }

    fn parse_top(&mut self) -> PResult<List> {
        let mut root = List::new();
        while self.peek().typ != Tok::Eof {
            if self.peek().typ == Tok::LeftDelim {
                let delim = self.next();
                if self.next_non_space().typ == Tok::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                Parsed1::End => return self.errorf("unexpected {{end}}"),
                Parsed1::Else => return self.errorf("unexpected {{else}}"),
                Parsed1::Node(n) => root.push(n),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        let token = self.next_non_space();
        if token.typ != Tok::String && token.typ != Tok::RawString {
            return self.unexpected(&token, CONTEXT);
        }
        let name = self.unquote(&token.val)?;
        let token = self.next_non_space();
        if token.typ != Tok::RightDelim {
            return self.unexpected(&token, CONTEXT);
        }
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let (list, end) = self.item_list()?;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        if !matches!(end, Parsed1::End) {
            return self.errorf(format_args!("unexpected {{{{else}}}} in {CONTEXT}"));
        }
        self.add_def(name, list)
    }

    fn add_def(&mut self, name: String, list: List) -> PResult<()> {
        match self.defs.get(&name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&list) {
                    return self.errorf(format_args!(
                        "template: multiple definition of template {}",
                        super::fmt::quote(&name)
                    ));
                }
            }
            _ => {
                self.defs.insert(name, list);
            }
        }
        Ok(())
    }

    /// Parses nodes up to `{{end}}` or `{{else}}`, which is returned separately.
    fn item_list(&mut self) -> PResult<(List, Parsed1)> {
        let mut list = List::new();
        while self.peek_non_space().typ != Tok::Eof {
            match self.text_or_action()? {
                Parsed1::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
        self.errorf("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Parsed1> {
        let token = self.next_non_space();
        match token.typ {
            Tok::Text => Ok(Parsed1::Node(Node::Text(token.val))),
            Tok::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&token, "input"),
        }
    }

    fn action(&mut self) -> PResult<Parsed1> {
        let token = self.next_non_space();
        let node = match token.typ {
            Tok::Block => self.block_control()?,
            Tok::Break | Tok::Continue => {
                let keyword = if token.typ == Tok::Break {
                    "break"
                } else {
                    "continue"
                };
                let next = self.next_non_space();
                if next.typ != Tok::RightDelim {
                    return self.unexpected(&next, &format!("{{{{{keyword}}}}}"));
                }
                if self.range_depth == 0 {
                    return self.errorf(format_args!("{{{{{keyword}}}}} outside {{{{range}}}}"));
                }
                if token.typ == Tok::Break {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            Tok::Else => {
                // "{{else if" is rewritten to "{{else}}{{if": leave the `if` pending.
                if self.peek_non_space().typ != Tok::If {
                    let t = self.next_non_space();
                    if t.typ != Tok::RightDelim {
                        return self.unexpected(&t, "else");
                    }
                }
                return Ok(Parsed1::Else);
            }
            Tok::End => {
                let t = self.next_non_space();
                if t.typ != Tok::RightDelim {
                    return self.unexpected(&t, "end");
                }
                return Ok(Parsed1::End);
            }
            Tok::If => Node::If(self.parse_control(true, "if")?),
            Tok::Range => Node::Range(self.parse_control(false, "range")?),
            Tok::With => Node::With(self.parse_control(false, "with")?),
            Tok::Template => self.template_control()?,
            _ => {
                self.backup();
                Node::Action(self.pipeline("command", Tok::RightDelim)?)
            }
        };
        Ok(Parsed1::Node(node))
    }

    fn parse_control(&mut self, allow_else_if: bool, context: &str) -> PResult<Branch> {
        self.enter()?;
        let mark = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let Parsed1::Else = next {
            if allow_else_if && self.peek().typ == Tok::If {
                // {{if a}}_{{else if b}}_{{end}} is {{if a}}_{{else}}{{if b}}_{{end}}{{end}}.
                self.next();
                else_list = Some(vec![Node::If(self.parse_control(true, "if")?)]);
            } else {
                let (list, next) = self.item_list()?;
                if !matches!(next, Parsed1::End) {
                    return self.errorf("expected end; found {{else}}");
                }
                else_list = Some(list);
            }
        }
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, Tok::RightDelim)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let (list, end) = self.item_list()?;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        if !matches!(end, Parsed1::End) {
            return self.errorf(format_args!("unexpected {{{{else}}}} in {CONTEXT}"));
        }
        self.add_def(name.clone(), list)?;
        Ok(Node::Template(TemplateCall {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        }))
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().typ != Tok::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, Tok::RightDelim)?);
        }
        Ok(Node::Template(TemplateCall {
            pos: token.pos,
            name,
            pipe,
        }))
    }

    fn parse_template_name(&mut self, token: &Item, context: &str) -> PResult<String> {
        match token.typ {
            Tok::String | Tok::RawString => self.unquote(&token.val),
            _ => self.unexpected(token, context),
        }
    }

    fn unquote(&self, quoted: &str) -> PResult<String> {
        match unquote(quoted) {
            Some(s) => Ok(s),
            None => self.errorf("invalid syntax"),
        }
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Are there declarations or assignments?
        loop {
            let v = self.peek_non_space();
            if v.typ != Tok::Variable {
                break;
            }
            self.next();
            // "$x foo" needs three tokens of look-ahead to tell an argument
            // from a declaration.
            let token_after_variable = self.peek();
            let next = self.peek_non_space();
            match next.typ {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next.typ == Tok::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                }
                Tok::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().typ {
                            Tok::Variable | Tok::RightDelim | Tok::RightParen => continue,
                            _ => return self.errorf("range can only initialize variables"),
                        }
                    }
                    return self.errorf(format_args!("too many declarations in {context}"));
                }
                _ if token_after_variable.typ == Tok::Space => {
                    self.backup3(v, token_after_variable);
                }
                _ => self.backup2(v),
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            match token.typ {
                t if t == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                Tok::Bool
                | Tok::CharConstant
                | Tok::Complex
                | Tok::Dot
                | Tok::Field
                | Tok::Identifier
                | Tok::Number
                | Tok::Nil
                | Tok::RawString
                | Tok::String
                | Tok::Variable
                | Tok::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&token, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format_args!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool { .. }
                    | Arg::Dot { .. }
                    | Arg::Nil { .. }
                    | Arg::Number { .. }
                    | Arg::String { .. }
            ) {
                return self.errorf(format_args!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let mut cmd = Command {
            pos: self.peek_non_space().pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next();
            match token.typ {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return self.unexpected(&token, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != Tok::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == Tok::Field {
            fields.push(self.next().val[1..].to_string());
        }
        // Fields after a field or variable extend it; after a literal they
        // are an error; otherwise they form a chain.
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field { pos, idents }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable { pos, idents }
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return self.errorf(format_args!(
                    "unexpected . after term {}",
                    super::fmt::quote(&node.to_string())
                ));
            }
            node => Arg::Chain {
                pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.typ {
            Tok::Identifier => {
                if !(self.has_func)(&token.val) {
                    return self.errorf(format_args!(
                        "function {} not defined",
                        super::fmt::quote(&token.val)
                    ));
                }
                Arg::Identifier {
                    pos,
                    name: token.val,
                }
            }
            Tok::Dot => Arg::Dot { pos },
            Tok::Nil => Arg::Nil { pos },
            Tok::Variable => {
                let name = token.val;
                if !self.vars.contains(&name) {
                    return self.errorf(format_args!(
                        "undefined variable {}",
                        super::fmt::quote(&name)
                    ));
                }
                Arg::Variable {
                    pos,
                    idents: vec![name],
                }
            }
            Tok::Field => Arg::Field {
                pos,
                idents: vec![token.val[1..].to_string()],
            },
            Tok::Bool => Arg::Bool {
                pos,
                val: token.val == "true",
            },
            Tok::CharConstant | Tok::Complex | Tok::Number => {
                let num = match parse_number(&token.val, token.typ) {
                    Ok(n) => n,
                    Err(e) => return self.errorf(e),
                };
                Arg::Number { pos, num }
            }
            Tok::LeftParen => {
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", Tok::RightParen)?;
                self.depth -= 1;
                Arg::Pipe(pipe)
            }
            Tok::String | Tok::RawString => {
                let text = self.unquote(&token.val)?;
                Arg::String {
                    pos,
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// What `text_or_action` found: a node, or the `{{end}}`/`{{else}}` that
/// closes the enclosing list.
enum Parsed1 {
    Node(Node),
    End,
    Else,
}

/// Go's `strconv.Unquote` for `"…"`, `` `…` `` and `'…'` literals.
pub(super) fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if s.len() < 2 || !s.ends_with(quote) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    match quote {
        '`' => {
            if body.contains('`') {
                return None;
            }
            Some(body.replace('\r', ""))
        }
        '"' | '\'' => {
            if body.contains('\n') {
                return None;
            }
            let mut out = Vec::new();
            let mut rest = body;
            let mut runes = 0;
            while !rest.is_empty() {
                if rest.starts_with(quote) && quote == '"' {
                    return None;
                }
                let (bytes, tail) = unquote_char(rest, quote)?;
                out.extend_from_slice(&bytes);
                rest = tail;
                runes += 1;
            }
            if quote == '\'' && runes != 1 {
                return None;
            }
            Some(String::from_utf8_lossy(&out).into_owned())
        }
        _ => None,
    }
}

/// Decodes one (possibly escaped) character; returns its bytes and the rest.
fn unquote_char(s: &str, quote: char) -> Option<(Vec<u8>, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c != '\\' {
        let mut buf = [0u8; 4];
        return Some((c.encode_utf8(&mut buf).as_bytes().to_vec(), chars.as_str()));
    }
    let e = chars.next()?;
    let rest = chars.as_str();
    let simple = |b: u8| Some((vec![b], rest));
    match e {
        'a' => simple(7),
        'b' => simple(8),
        'f' => simple(12),
        'n' => simple(b'\n'),
        'r' => simple(b'\r'),
        't' => simple(b'\t'),
        'v' => simple(11),
        '\\' => simple(b'\\'),
        '\'' | '"' if e == quote => simple(e as u8),
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex = rest.get(..n)?;
            let v = u32::from_str_radix(hex, 16).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            if e == 'x' {
                return Some((vec![v as u8], &rest[n..]));
            }
            let c = char::from_u32(v)?;
            let mut buf = [0u8; 4];
            Some((c.encode_utf8(&mut buf).as_bytes().to_vec(), &rest[n..]))
        }
        '0'..='7' => {
            let oct = s.get(1..4)?;
            if !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(oct, 8).ok()?;
            if v > 255 {
                return None;
            }
            Some((vec![v as u8], &s[4..]))
        }
        _ => None,
    }
}

/// Go's `parse.newNumber`: records every exact interpretation of a literal.
fn parse_number(text: &str, typ: Tok) -> Result<Number, String> {
    let mut n = Number {
        text: text.to_string(),
        int: None,
        uint: None,
        float: None,
    };
    match typ {
        Tok::CharConstant => {
            // Go: strconv.UnquoteChar, then the rest must be the closing quote.
            let body = &text[1..];
            if body.starts_with('\'') {
                return Err("invalid syntax".into());
            }
            let (bytes, tail) = unquote_char(body, '\'').ok_or("invalid syntax")?;
            if tail != "'" {
                return Err(format!("malformed character constant: {text}"));
            }
            // A \x or octal escape denotes the rune with that byte's value.
            let c = match bytes[..] {
                [b] => char::from(b),
                _ => String::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.chars().next())
                    .ok_or("invalid syntax")?,
            };
            n.int = Some(c as i64);
            n.uint = Some(c as u64);
            n.float = Some(c as u32 as f64);
            return Ok(n);
        }
        Tok::Complex => return Err(format!("complex constants are not supported: {text}")),
        _ => {}
    }
    if text.ends_with('i') {
        return Err(format!("complex constants are not supported: {text}"));
    }
    n.uint = parse_uint(text);
    n.int = parse_int(text);
    if n.int == Some(0) {
        n.uint = Some(0); // in case of -0.
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else if let Some(f) = parse_float(text) {
        // Parsed as a float but looks like an integer: a huge integer.
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", super::fmt::quote(text)));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            n.int = Some(f as i64);
        }
        if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
            n.uint = Some(f as u64);
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!(
            "illegal number syntax: {}",
            super::fmt::quote(text)
        ));
    }
    Ok(n)
}

/// Go's `strconv.ParseUint(s, 0, 64)`: base prefixes and underscores.
fn parse_uint(s: &str) -> Option<u64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let (digits, radix) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (r, 2)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let digits = digits.strip_prefix('_').unwrap_or(digits);
    if digits.is_empty() || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

fn parse_int(s: &str) -> Option<i64> {
    if let Some(rest) = s.strip_prefix('-') {
        let u = parse_uint(rest)?;
        if u <= i64::MAX as u64 + 1 {
            return Some((u as i128).wrapping_neg() as i64);
        }
        return None;
    }
    i64::try_from(parse_uint(s)?).ok()
}

fn parse_float(s: &str) -> Option<f64> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    if lower.contains("0x") || lower.contains("inf") || lower.contains("nan") {
        return None; // hex floats are not supported; inf/nan are not literals.
    }
    clean.parse::<f64>().ok()
}
