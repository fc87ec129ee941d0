//! Tokenizer, a port of Go's `text/template/parse/lex.go` (Go 1.19).
//!
//! The whole input is scanned up front into a token list; scanning stops at
//! the first error, which becomes an [`Tok::Error`] item carrying the message
//! (the parser reports it, exactly as Go's parser reports its lexer's errors).

/// Kinds of tokens, named after Go's `itemType`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords; `is_keyword` relies on them coming last.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Tok {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Tok::Block
                | Tok::Break
                | Tok::Continue
                | Tok::Dot
                | Tok::Define
                | Tok::Else
                | Tok::End
                | Tok::If
                | Tok::Nil
                | Tok::Range
                | Tok::Template
                | Tok::With
        )
    }
}

/// One token: its kind, byte offset, text and starting line.
#[derive(Clone, Debug)]
pub(super) struct Item {
    pub(super) typ: Tok,
    pub(super) pos: usize,
    pub(super) val: String,
    pub(super) line: usize,
}

impl std::fmt::Display for Item {
    /// Go's `item.String()`, used in "unexpected X in Y" messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.typ {
            Tok::Eof => f.write_str("EOF"),
            Tok::Error => f.write_str(&self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.len() > 10 => {
                // Go's `%.10q`: the first ten runes, quoted.
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", super::fmt::quote(&head))
            }
            _ => f.write_str(&super::fmt::quote(&self.val)),
        }
    }
}

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";
const TRIM_MARKER_LEN: usize = 2;

#[derive(Clone, Copy)]
enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    InsideAction,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
    paren_depth: i32,
    items: Vec<Item>,
    /// A position and its line number, so lines are counted incrementally.
    line_cache: (usize, usize),
}

/// Scans `input` into tokens, ending with `Eof` or `Error`.
pub(super) fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        width: 0,
        paren_depth: 0,
        items: Vec::new(),
        line_cache: (0, 1),
    };
    let mut state = Some(State::Text);
    while let Some(s) = state {
        state = l.step(s);
    }
    l.items
}

fn is_space(r: char) -> bool {
    matches!(r, ' ' | '\t' | '\r' | '\n')
}

fn is_alphanumeric(r: char) -> bool {
    r == '_' || r.is_alphabetic() || r.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

/// Go's `%#U`: `U+0041 'A'`, or just `U+0000` for unprintable runes.
pub(super) fn sharp_u(r: char) -> String {
    if super::fmt::is_print(r) {
        format!("U+{:04X} '{}'", r as u32, r)
    } else {
        format!("U+{:04X}", r as u32)
    }
}

impl Lexer<'_> {
    fn line_at(&mut self, pos: usize) -> usize {
        let (mut from, mut line) = self.line_cache;
        if pos < from {
            (from, line) = (0, 1);
        }
        line += self.input.as_bytes()[from..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line_cache = (pos, line);
        line
    }

    fn next(&mut self) -> Option<char> {
        match self.input[self.pos..].chars().next() {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    fn emit(&mut self, typ: Tok) {
        let line = self.line_at(self.start);
        let item = Item {
            typ,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
            line,
        };
        self.items.push(item);
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while let Some(c) = self.next() {
            if !valid.contains(c) {
                break;
            }
        }
        self.backup();
    }

    fn errorf(&mut self, msg: String) -> Option<State> {
        let line = self.line_at(self.start);
        let item = Item {
            typ: Tok::Error,
            pos: self.start,
            val: msg,
            line,
        };
        self.items.push(item);
        None
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = &self.input[self.pos..];
        if has_right_trim_marker(rest) && rest[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            return (true, true);
        }
        (rest.starts_with(RIGHT_DELIM), false)
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(r) if is_space(r) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            // Go 1.19 checks for the whole delimiter, so `{{.X}` is an error.
            Some(_) => self.input[self.pos..].starts_with(RIGHT_DELIM),
        }
    }

    fn step(&mut self, state: State) -> Option<State> {
        match state {
            State::Text => self.lex_text(),
            State::LeftDelim => self.lex_left_delim(),
            State::Comment => self.lex_comment(),
            State::RightDelim => self.lex_right_delim(),
            State::InsideAction => self.lex_inside_action(),
            State::Space => self.lex_space(),
            State::Identifier => self.lex_identifier(),
            State::Field => self.lex_field_or_variable(Tok::Field),
            State::Variable => {
                if self.at_terminator() {
                    self.emit(Tok::Variable);
                    return Some(State::InsideAction);
                }
                self.lex_field_or_variable(Tok::Variable)
            }
            State::Char => {
                self.lex_quoted('\'', "unterminated character constant", Tok::CharConstant)
            }
            State::Number => self.lex_number(),
            State::Quote => self.lex_quoted('"', "unterminated quoted string", Tok::String),
            State::RawQuote => self.lex_raw_quote(),
        }
    }

    fn lex_text(&mut self) -> Option<State> {
        self.width = 0;
        if let Some(x) = self.input[self.pos..].find(LEFT_DELIM) {
            self.pos += x;
            let mut trim = 0;
            if has_left_trim_marker(&self.input[self.pos + LEFT_DELIM.len()..]) {
                let text = &self.input[self.start..self.pos];
                trim = text.len() - text.trim_end_matches(is_space).len();
            }
            self.pos -= trim;
            if self.pos > self.start {
                self.emit(Tok::Text);
            }
            self.pos += trim;
            self.ignore();
            return Some(State::LeftDelim);
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(Tok::Text);
        }
        self.emit(Tok::Eof);
        None
    }

    fn lex_left_delim(&mut self) -> Option<State> {
        self.pos += LEFT_DELIM.len();
        let after_marker = if has_left_trim_marker(&self.input[self.pos..]) {
            TRIM_MARKER_LEN
        } else {
            0
        };
        if self.input[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            self.ignore();
            return Some(State::Comment);
        }
        self.emit(Tok::LeftDelim);
        self.pos += after_marker;
        self.ignore();
        self.paren_depth = 0;
        Some(State::InsideAction)
    }

    fn lex_comment(&mut self) -> Option<State> {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.input[self.pos..].find(RIGHT_COMMENT) else {
            return self.errorf("unclosed comment".into());
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.errorf("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += TRIM_MARKER_LEN;
        }
        self.pos += RIGHT_DELIM.len();
        if trim {
            let rest = &self.input[self.pos..];
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
        }
        self.ignore();
        Some(State::Text)
    }

    fn lex_right_delim(&mut self) -> Option<State> {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += TRIM_MARKER_LEN;
            self.ignore();
        }
        self.pos += RIGHT_DELIM.len();
        self.emit(Tok::RightDelim);
        if trim {
            let rest = &self.input[self.pos..];
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
            self.ignore();
        }
        Some(State::Text)
    }

    fn lex_inside_action(&mut self) -> Option<State> {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return Some(State::RightDelim);
            }
            return self.errorf("unclosed left paren".into());
        }
        let Some(r) = self.next() else {
            return self.errorf("unclosed action".into());
        };
        match r {
            _ if is_space(r) => {
                self.backup();
                return Some(State::Space);
            }
            '=' => self.emit(Tok::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.errorf("expected :=".into());
                }
                self.emit(Tok::Declare);
            }
            '|' => self.emit(Tok::Pipe),
            '"' => return Some(State::Quote),
            '`' => return Some(State::RawQuote),
            '$' => return Some(State::Variable),
            '\'' => return Some(State::Char),
            '.' if !self
                .input
                .as_bytes()
                .get(self.pos)
                .is_some_and(u8::is_ascii_digit) =>
            {
                return Some(State::Field)
            }
            '.' | '+' | '-' | '0'..='9' => {
                self.backup();
                return Some(State::Number);
            }
            _ if is_alphanumeric(r) => {
                self.backup();
                return Some(State::Identifier);
            }
            '(' => {
                self.emit(Tok::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Tok::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.errorf(format!("unexpected right paren {}", sharp_u(r)));
                }
            }
            _ if r.is_ascii() && !r.is_ascii_control() => self.emit(Tok::Char),
            _ => {
                return self.errorf(format!("unrecognized character in action: {}", sharp_u(r)));
            }
        }
        Some(State::InsideAction)
    }

    fn lex_space(&mut self) -> Option<State> {
        let mut num_spaces = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            num_spaces += 1;
        }
        // A trim-marked closing delimiter has a minus after a space: leave
        // that space for `at_right_delim`.
        let before = &self.input[self.pos - 1..];
        if has_right_trim_marker(before) && before[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            self.pos -= 1;
            if num_spaces == 1 {
                return Some(State::InsideAction);
            }
        }
        self.emit(Tok::Space);
        Some(State::InsideAction)
    }

    fn lex_identifier(&mut self) -> Option<State> {
        loop {
            match self.next() {
                Some(r) if is_alphanumeric(r) => {}
                r => {
                    self.backup();
                    if !self.at_terminator() {
                        let r = r.unwrap_or('\u{fffd}');
                        return self.errorf(format!("bad character {}", sharp_u(r)));
                    }
                    let word = &self.input[self.start..self.pos];
                    let typ = match word {
                        "block" => Tok::Block,
                        "break" => Tok::Break,
                        "continue" => Tok::Continue,
                        "define" => Tok::Define,
                        "else" => Tok::Else,
                        "end" => Tok::End,
                        "if" => Tok::If,
                        "range" => Tok::Range,
                        "nil" => Tok::Nil,
                        "template" => Tok::Template,
                        "with" => Tok::With,
                        "true" | "false" => Tok::Bool,
                        _ => Tok::Identifier,
                    };
                    self.emit(typ);
                    return Some(State::InsideAction);
                }
            }
        }
    }

    /// Scans `.Field` or `$var`; the `.` or `$` has been consumed.
    fn lex_field_or_variable(&mut self, typ: Tok) -> Option<State> {
        if self.at_terminator() {
            self.emit(if typ == Tok::Variable {
                Tok::Variable
            } else {
                Tok::Dot
            });
            return Some(State::InsideAction);
        }
        let mut last = None;
        loop {
            let r = self.next();
            if !r.is_some_and(is_alphanumeric) {
                self.backup();
                last = r.or(last);
                break;
            }
        }
        if !self.at_terminator() {
            let r = last.unwrap_or('\u{fffd}');
            return self.errorf(format!("bad character {}", sharp_u(r)));
        }
        self.emit(typ);
        Some(State::InsideAction)
    }

    /// Scans a `"…"` string or a `'…'` character constant; the opening quote
    /// has been consumed. Escapes are checked later by the parser.
    fn lex_quoted(&mut self, quote: char, unterminated: &str, typ: Tok) -> Option<State> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(r) if r != '\n' => {}
                    _ => return self.errorf(unterminated.into()),
                },
                None | Some('\n') => return self.errorf(unterminated.into()),
                Some(r) if r == quote => break,
                Some(_) => {}
            }
        }
        self.emit(typ);
        Some(State::InsideAction)
    }

    fn lex_raw_quote(&mut self) -> Option<State> {
        loop {
            match self.next() {
                None => return self.errorf("unterminated raw quoted string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::RawString);
        Some(State::InsideAction)
    }

    fn lex_number(&mut self) -> Option<State> {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_string();
            return self.errorf(format!("bad number syntax: {}", super::fmt::quote(&text)));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // Complex: 1+2i. No spaces, must end in 'i'.
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let text = self.input[self.start..self.pos].to_string();
                return self.errorf(format!("bad number syntax: {}", super::fmt::quote(&text)));
            }
            self.emit(Tok::Complex);
        } else {
            self.emit(Tok::Number);
        }
        Some(State::InsideAction)
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }
}
