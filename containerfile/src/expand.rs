//! Word expansion with BuildKit's rules (`frontend/dockerfile/shell/lex.go`,
//! `ProcessWord` and `ProcessWords`): quote removal, the escape character,
//! `$VAR`, `${VAR}` and the `${VAR<modifier>word}` forms.
//!
//! This is not a shell: no command substitution, no globbing, no arithmetic.
//! What it does is what a Containerfile's `ENV`, `COPY`, `WORKDIR`... get
//! before the executor sees their words.

use crate::parse::{Copy, Heredoc, Op};

/// An expansion that failed: a missing quote or brace, a `${VAR:?msg}` on
/// an unset variable, an unsupported modifier. The message names the word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// `${a:-${b:-${c...}}}` nests by recursion; hostile input must not blow
/// the stack, and no real Containerfile nests this deep.
const MAX_DEPTH: usize = 64;

/// Expands one word as BuildKit's `ProcessWord`: quotes removed (`'...'`
/// literal, `"..."` with `$` expansion and escapes of `"`, `$` and the
/// escape character), the escape character making the next character
/// literal, variables replaced by `vars` (unset ones expand to nothing).
pub fn expand(
    word: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    Lexer::new(word, escape, vars).run(word).map(|(s, _)| s)
}

/// Expands like [`expand`], then splits on whitespace that was neither
/// quoted nor escaped (BuildKit's `ProcessWords`, used for `EXPOSE`).
/// Whitespace a variable's value brings in splits too, as in a shell.
pub fn expand_words(
    word: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(word, escape, vars).run(word).map(|(_, w)| w)
}

/// Expands a heredoc's content for `COPY <<EOF` (unquoted delimiter):
/// variables only, quotes are ordinary characters, `\` is the escape
/// whatever the file's escape directive (BuildKit's `ExpandRaw`).
pub fn expand_heredoc(
    content: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(content, '\\', vars);
    lx.skip_quotes = true;
    lx.run(content).map(|(s, _)| s)
}

/// Splits words the way BuildKit finds heredoc markers in an instruction
/// line: quotes and escapes kept as written, variables left alone, `<<`
/// glued to the word after it even across blanks.
pub(crate) fn raw_words(line: &str) -> Result<Vec<String>, ExpandError> {
    let none = |_: &str| None;
    let mut lx = Lexer::new(line, '\\', &none);
    lx.raw_quotes = true;
    lx.raw_escapes = true;
    lx.skip_unset = true;
    lx.run(line).map(|(_, w)| w)
}

/// The heredoc delimiter word after `<<`: its name with quotes removed, and
/// whether it was quoted anywhere (then the content is not expanded).
/// `None` when it is not exactly one word.
pub(crate) fn heredoc_name(rest: &str) -> Result<Option<(String, bool)>, ExpandError> {
    let none = |_: &str| None;
    let mut lx = Lexer::new(rest, '\\', &none);
    lx.skip_unset = true;
    let (_, words) = lx.run(rest)?;
    if words.len() != 1 {
        return Ok(None);
    }
    Ok(Some((words[0].clone(), lx.quoted)))
}

struct Words {
    words: Vec<String>,
    buf: String,
    in_word: bool,
}

impl Words {
    fn new() -> Self {
        Words {
            words: Vec::new(),
            buf: String::new(),
            in_word: false,
        }
    }
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Fn(&str) -> Option<String>,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_quotes: bool,
    skip_unset: bool,
    depth: usize,
    /// A quote pair was removed somewhere (heredoc delimiters).
    quoted: bool,
}

fn err(word: &str, msg: impl std::fmt::Display) -> ExpandError {
    ExpandError(format!("cannot expand {word:?}: {msg}"))
}

impl<'a> Lexer<'a> {
    fn new(word: &str, escape: char, vars: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            escape,
            vars,
            raw_quotes: false,
            raw_escapes: false,
            skip_quotes: false,
            skip_unset: false,
            depth: 0,
            quoted: false,
        }
    }

    fn run(&mut self, word: &str) -> Result<(String, Vec<String>), ExpandError> {
        let raw = self.raw_escapes;
        self.stop_on(None, raw).map_err(|m| err(word, m))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Reads up to `stop` (consumed) or the end; `raw_escapes` keeps escape
    /// characters in the result (the patterns of `#`, `%` and `/` need them).
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("substitutions nested deeper than {MAX_DEPTH}"));
        }
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.dollar()?),
                '<' => Some(self.possible_heredoc()),
                '\'' if !self.skip_quotes => Some(self.single_quote()?),
                '"' if !self.skip_quotes => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.pos += 1;
            if ch == self.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // The escape makes the next character literal; one at the
                // very end is dropped.
                let Some(next) = self.next() else { break };
                words.add_raw_char(next);
                result.push(next);
            } else {
                words.add_char(ch);
                result.push(ch);
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        } else {
            self.quoted = true;
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        } else {
            self.quoted = true;
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // An escape just before the end is dropped; the
                            // missing quote is reported on the next turn.
                            None => continue,
                            // Only these are escaped inside double quotes;
                            // before anything else the escape stays.
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut out = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d @ '0'..='9') = self.peek() {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match (self.vars)(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let value = (self.vars)(&name);
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        match ch {
            '}' => Ok(match value {
                Some(v) => v,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut chs = ch.to_string();
                let null_is_unset = ch == ':';
                if null_is_unset {
                    let Some(c) = self.next() else {
                        return Err("syntax error: missing '}'".into());
                    };
                    ch = c;
                    chs.push(c);
                }
                let pattern_like = ch == '#' || ch == '%';
                if null_is_unset && pattern_like {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let (word, _) = self.stop_on_brace(Some('}'), pattern_like)?;
                self.modifier(&name, value, ch, &chs, null_is_unset, word)
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, _) = self.stop_on(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_string()
                    } else {
                        e
                    }
                })?;
                let (repl, _) = self.stop_on_brace(Some('}'), true)?;
                match value {
                    None if self.skip_unset => Ok(format!("${{{name}/{pattern}/{repl}}}")),
                    v => replace(&v.unwrap_or_default(), &pattern, &repl, all),
                }
            }
            _ => Err(format!("unsupported modifier ({ch}) in substitution")),
        }
    }

    fn stop_on_brace(
        &mut self,
        stop: Option<char>,
        raw: bool,
    ) -> Result<(String, Vec<String>), String> {
        self.stop_on(stop, raw).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        })
    }

    fn modifier(
        &self,
        name: &str,
        value: Option<String>,
        ch: char,
        chs: &str,
        null_is_unset: bool,
        word: String,
    ) -> Result<String, String> {
        let Some(value) = value else {
            if self.skip_unset {
                return Ok(format!("${{{name}{chs}{word}}}"));
            }
            return match ch {
                '-' => Ok(word),
                '+' | '#' | '%' => Ok(String::new()),
                '?' if word.is_empty() => Err(format!("{name}: is not allowed to be unset")),
                '?' => Err(format!("{name}: {word}")),
                _ => Err(format!("unsupported modifier ({chs}) in substitution")),
            };
        };
        let empty = null_is_unset && value.is_empty();
        match ch {
            '-' => Ok(if empty { word } else { value }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' if empty && word.is_empty() => Err(format!("{name}: is not allowed to be empty")),
            '?' if empty => Err(format!("{name}: {word}")),
            '?' => Ok(value),
            '#' | '%' => {
                // `##`/`%%` take the longest match, `#`/`%` the shortest.
                let (greedy, pat) = match word.strip_prefix(ch) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let toks = pattern(pat)?;
                if ch == '#' {
                    Ok(trim_prefix(&toks, &value, greedy))
                } else {
                    Ok(trim_suffix(&toks, &value, greedy))
                }
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }
}

/// One element of a `${VAR#pattern}` shell pattern (no bracket expressions,
/// as BuildKit).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

fn pattern(p: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        out.push(match c {
            '*' => Tok::Star,
            '?' => Tok::Any,
            '\\' => {
                // `\}` and `\/` only protect the brace or slash of `${}`.
                if matches!(it.peek(), Some('}' | '/')) {
                    continue;
                }
                match it.next() {
                    Some(e @ ('*' | '?' | '\\')) => Tok::Lit(e),
                    Some(e) => {
                        return Err(format!(
                            "invalid pattern ({p}) in substitution: invalid escape '\\{e}'"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "invalid pattern ({p}) in substitution: trailing escape"
                        ))
                    }
                }
            }
            c => Tok::Lit(c),
        });
    }
    Ok(out)
}

/// The lengths `k` for which `toks` matches all of `s[..k]`, ascending
/// (a set-of-states simulation: no backtracking, no blow-up).
fn prefix_matches(toks: &[Tok], s: &[char]) -> Vec<usize> {
    let m = toks.len();
    let close = |states: &mut Vec<bool>| {
        for i in 0..m {
            if states[i] && toks[i] == Tok::Star {
                states[i + 1] = true;
            }
        }
    };
    let mut states = vec![false; m + 1];
    states[0] = true;
    close(&mut states);
    let mut ends = Vec::new();
    if states[m] {
        ends.push(0);
    }
    for (k, &c) in s.iter().enumerate() {
        let mut next = vec![false; m + 1];
        let mut any = false;
        for i in 0..m {
            if !states[i] {
                continue;
            }
            match toks[i] {
                Tok::Star => next[i] = true,
                Tok::Any => next[i + 1] = true,
                Tok::Lit(l) if l == c => next[i + 1] = true,
                Tok::Lit(_) => {}
            }
        }
        close(&mut next);
        for &b in &next {
            any |= b;
        }
        if next[m] {
            ends.push(k + 1);
        }
        if !any {
            break;
        }
        states = next;
    }
    ends
}

fn trim_prefix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let ends = prefix_matches(toks, &chars);
    let cut = if greedy { ends.last() } else { ends.first() };
    match cut {
        Some(&k) => chars[k..].iter().collect(),
        None => value.to_string(),
    }
}

fn trim_suffix(toks: &[Tok], value: &str, greedy: bool) -> String {
    // Matching the reversed pattern against the reversed value turns the
    // rightmost search into a leftmost one (BuildKit does the same).
    let rtoks: Vec<Tok> = toks.iter().rev().copied().collect();
    let rev: String = value.chars().rev().collect();
    trim_prefix(&rtoks, &rev, greedy).chars().rev().collect()
}

/// `${VAR/pattern/repl}` and `${VAR//pattern/repl}`: the leftmost, longest
/// match(es) replaced; `repl` is literal.
fn replace(value: &str, pat: &str, repl: &str, all: bool) -> Result<String, String> {
    let toks = pattern(pat)?;
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut p = 0;
    let mut last_end = None;
    let mut done = false;
    while p <= chars.len() {
        let end = if done {
            None
        } else {
            prefix_matches(&toks, &chars[p..]).last().map(|k| p + k)
        };
        match end {
            // An empty match right after a match is skipped (Go's rule).
            Some(e) if !(e == p && last_end == Some(p)) => {
                out.push_str(repl);
                done = !all;
                last_end = Some(e);
                if e > p {
                    p = e;
                    continue;
                }
            }
            _ => {}
        }
        if let Some(&c) = chars.get(p) {
            out.push(c);
        }
        p += 1;
    }
    Ok(out)
}

impl Op {
    /// This instruction with BuildKit's expansion applied: `ADD`, `COPY`
    /// (sources, dest, `--from`, `--chown`, `--chmod`, `--checksum`, the
    /// content of unquoted heredocs), `ENV`, `LABEL` (keys and values),
    /// `ARG` (default values), `EXPOSE` (split into words), `STOPSIGNAL`,
    /// `USER`, `VOLUME`, `WORKDIR`. Every word of one instruction sees
    /// `vars` as they were before it (`ENV a=1 b=$a` gives `b` the old `a`).
    /// `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK`, `ONBUILD`,
    /// `MAINTAINER` come back unchanged (the shell expands those at run time).
    ///
    /// Two differences from BuildKit to know: it refuses variables in
    /// `--from` (buildah expands them; so does this); and an `ARG` default
    /// there sees the ARGs before it on the same line (`ARG a=1 b=$a` gives
    /// `b=1`), while here, as for ENV, it sees `vars`. An executor that
    /// tracks ARG state (build-arg values replace defaults) should expand
    /// each default with [`expand`] as it goes instead.
    pub fn expand(
        &self,
        escape: char,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Op, ExpandError> {
        let x = |w: &str| expand(w, escape, vars);
        let pairs = |v: &[(String, String)]| -> Result<Vec<(String, String)>, ExpandError> {
            v.iter().map(|(k, v)| Ok((x(k)?, x(v)?))).collect()
        };
        let opt = |o: &Option<String>| o.as_deref().map(&x).transpose();
        Ok(match self {
            Op::Env(v) => Op::Env(pairs(v)?),
            Op::Label(v) => Op::Label(pairs(v)?),
            Op::Arg(v) => Op::Arg(
                v.iter()
                    .map(|(k, d)| Ok((k.clone(), opt(d)?)))
                    .collect::<Result<_, ExpandError>>()?,
            ),
            Op::Copy(c) => Op::Copy(expand_copy(c, &x, vars)?),
            Op::Add(c) => Op::Add(expand_copy(c, &x, vars)?),
            Op::Workdir(w) => Op::Workdir(x(w)?),
            Op::User(w) => Op::User(x(w)?),
            Op::StopSignal(w) => Op::StopSignal(x(w)?),
            Op::Volume(v) => Op::Volume(v.iter().map(|w| x(w)).collect::<Result<_, _>>()?),
            Op::Expose(v) => {
                let mut out = Vec::new();
                for w in v {
                    out.extend(expand_words(w, escape, vars)?);
                }
                Op::Expose(out)
            }
            other => other.clone(),
        })
    }
}

fn expand_copy(
    c: &Copy,
    x: &dyn Fn(&str) -> Result<String, ExpandError>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Copy, ExpandError> {
    let opt = |o: &Option<String>| o.as_deref().map(x).transpose();
    Ok(Copy {
        from: opt(&c.from)?,
        chown: opt(&c.chown)?,
        chmod: opt(&c.chmod)?,
        checksum: opt(&c.checksum)?,
        sources: c.sources.iter().map(|s| x(s)).collect::<Result<_, _>>()?,
        dest: x(&c.dest)?,
        heredocs: c
            .heredocs
            .iter()
            .map(|h| {
                Ok(Heredoc {
                    content: if h.expand {
                        expand_heredoc(&h.content, vars)?
                    } else {
                        h.content.clone()
                    },
                    ..h.clone()
                })
            })
            .collect::<Result<_, ExpandError>>()?,
        ..c.clone()
    })
}

#[cfg(test)]
mod tests {
    //! Expected values follow BuildKit's lexer rules (shell/lex.go and the
    //! cases of its envVarTest/wordsTest tables).

    use super::*;
    use crate::parse::Cmd;

    fn env(name: &str) -> Option<String> {
        let v = match name {
            "PWD" => "/home",
            "SHELL" => "bash",
            "KOREAN" => "한국어",
            "NULL" => "",
            "space" => "abc  def",
            "leading" => "  ab c",
            "FOO" => "xxyy",
            "X" => "x",
            _ => return None,
        };
        Some(v.to_string())
    }

    #[test]
    fn process_word_table() {
        // (word, Some(expected) or None for an error)
        let cases: &[(&str, Option<&str>)] = &[
            ("hello", Some("hello")),
            ("he'll'o", Some("hello")),
            ("he'llo", None),
            ("he\\'llo", Some("he'llo")),
            ("he\\\\'llo", None),
            // Outside quotes the escape makes any character literal.
            ("abc\\tdef", Some("abctdef")),
            // Inside double quotes it escapes only " $ and itself.
            ("\"abc\\tdef\"", Some("abc\\tdef")),
            ("\"abc\\\\tdef\"", Some("abc\\tdef")),
            ("'abc\\tdef'", Some("abc\\tdef")),
            // A trailing escape is dropped.
            ("hello\\", Some("hello")),
            ("hello\\\\", Some("hello\\")),
            ("\"hello", None),
            ("\"hello\\\"", None),
            ("\"hel'lo\"", Some("hel'lo")),
            ("'hello\\'", Some("hello\\")),
            ("\"''\"", Some("''")),
            ("$.", Some("$.")),
            // $1 is a (never set) positional parameter.
            ("he$1x", Some("hex")),
            ("$999aaa", Some("aaa")),
            ("$@@@", Some("@@")),
            ("he$PWD", Some("he/home")),
            ("he\\$PWD", Some("he$PWD")),
            ("he\\\\$PWD", Some("he\\/home")),
            ("\"he\\$PWD\"", Some("he$PWD")),
            ("\"he\\\\$PWD\"", Some("he\\/home")),
            ("'$PWD'", Some("$PWD")),
            ("\"he'$PWD'\"", Some("he'/home'")),
            ("\\${}", Some("${}")),
            ("${}", None),
            ("he${.}", None),
            ("he${hi}xx", Some("hexx")),
            ("he${PWD}", Some("he/home")),
            ("he${XXX:-000}xx", Some("he000xx")),
            ("he${PWD:-000}xx", Some("he/homexx")),
            ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
            ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
            ("he${XXX:YYY}", None),
            ("he${XXX?}", None),
            ("he${XXX:?}", None),
            ("he${PWD?}", Some("he/home")),
            ("he${NULL?}", Some("he")),
            ("he${NULL:?}", None),
            // Without the colon, set-but-empty counts as set.
            ("${NULL-x}", Some("")),
            ("${NULL:-x}", Some("x")),
            ("${NULL+x}", Some("x")),
            ("${NULL:+x}", Some("")),
            ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
            ("he${XXX:+000}xx", Some("hexx")),
            ("he${PWD:=000}xx", None),
            ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
            ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
            ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
            ("he${PWD", None),
            ("안녕$KOREAN", Some("안녕한국어")),
            ("${aaa}}", Some("}")),
            ("${aaa:-bbb}}", Some("bbb}")),
            ("${aaa:-bbb {foo}", Some("bbb {foo")),
            ("${aaa:-bbb ${foo}", None),
            ("${:}", None),
            ("${{aaa}", None),
            ("${1:-bbb}aaa", Some("bbbaaa")),
            // Prefix and suffix removal: shortest with one #/%, longest with two.
            ("${FOO#*x*y}", Some("y")),
            ("${FOO#*}", Some("xxyy")),
            ("${FOO##*x}", Some("yy")),
            ("${FOO#$X}", Some("xyy")),
            ("${FOO#}", Some("xxyy")),
            ("${FOO%y*}", Some("xxy")),
            ("${FOO%%y*}", Some("xx")),
            ("${FOO%x}", Some("xxyy")),
            ("${FOO#?}", Some("xyy")),
            ("${UNSET#x}", Some("")),
            ("${FOO:#x}", None),
            ("${FOO:%%x}", None),
            ("${FOO#\\q}", None),
            // Replacement: first or all, longest match, literal replacement.
            ("${FOO/y/Z}", Some("xxZy")),
            ("${FOO//y/Z}", Some("xxZZ")),
            ("${FOO/x*/-}", Some("-")),
            ("${FOO/?/}", Some("xyy")),
            ("${FOO///}", Some("xxyy")),
            ("${FOO//ww}", None),
            ("${PWD//\\//\\/}", Some("\\/home")),
            ("${FOO=}", None),
        ];
        let mut failed = Vec::new();
        for (word, want) in cases {
            let got = expand(word, '\\', &env).ok();
            if got.as_deref() != *want {
                failed.push(format!("{word:?}: want {want:?}, got {got:?}"));
            }
        }
        assert!(
            failed.is_empty(),
            "{} of {} failed:\n{}",
            failed.len(),
            cases.len(),
            failed.join("\n")
        );
    }

    #[test]
    fn process_words_table() {
        let cases: &[(&str, &[&str])] = &[
            ("hello", &["hello"]),
            ("hello${space}bye", &["helloabc", "defbye"]),
            ("hello\"${space}\"bye", &["helloabc  defbye"]),
            ("hello \"${space}\"bye", &["hello", "abc  defbye"]),
            ("hello${leading}def", &["hello", "ab", "cdef"]),
            ("hello\\ there", &["hello there"]),
            ("hello\\\" there", &["hello\"", "there"]),
            ("hello\" there  \"", &["hello there  "]),
            ("  a   b  ", &["a", "b"]),
            ("''", &[]),
            ("80/tcp $PWD", &["80/tcp", "/home"]),
        ];
        for (word, want) in cases {
            assert_eq!(expand_words(word, '\\', &env).unwrap(), s(want), "{word:?}");
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(expand("a`$PWD", '`', &env).unwrap(), "a$PWD");
        // With ` as the escape a backslash is an ordinary character.
        assert_eq!(expand("C:\\$PWD", '`', &env).unwrap(), "C:\\/home");
        assert_eq!(expand("\"a`\"b\"", '`', &env).unwrap(), "a\"b");
    }

    #[test]
    fn errors_name_the_word() {
        let e = expand("${X:?set X}", '\\', &|_| None).unwrap_err();
        assert_eq!(e.0, "cannot expand \"${X:?set X}\": X: set X");
        let e = expand("a\"b", '\\', &env).unwrap_err();
        assert_eq!(
            e.0,
            "cannot expand \"a\\\"b\": unexpected end of statement while looking for matching double-quote"
        );
        // Nesting is bounded, not a stack overflow.
        let deep = "${a:-".repeat(100_000);
        assert!(expand(&deep, '\\', &env).is_err());
    }

    #[test]
    fn heredoc_helpers() {
        assert_eq!(heredoc_name("EOF").unwrap(), Some(("EOF".into(), false)));
        assert_eq!(heredoc_name("\"EOF\"").unwrap(), Some(("EOF".into(), true)));
        assert_eq!(heredoc_name("'E'OF").unwrap(), Some(("EOF".into(), true)));
        assert_eq!(heredoc_name("EOF x").unwrap(), None);
        assert_eq!(
            raw_words("RUN cat <<  EOF '<<x' a\\ b").unwrap(),
            s(&["RUN", "cat", "<<  EOF", "'<<x'", "a\\ b"])
        );
        assert_eq!(
            expand_heredoc("\"$PWD\" '\\$X'\n", &env).unwrap(),
            "\"/home\" '$X'\n"
        );
    }

    /// The same Containerfile built by buildah 1.28 on this machine gave
    /// Env a=1 b=old c="x y" d=old legacy="value with quotes 1", Labels
    /// {"k k": "$a", x: "1 b"}, ExposedPorts 1/tcp 80/tcp, WorkingDir "/w 1".
    #[test]
    fn matches_buildah() {
        let text = "FROM scratch\nENV a=old\nENV a=1 b=$a c=\"x y\" d=${a:-z}\nLABEL \"k k\"='$a' x=\"$a b\"\nENV legacy value \"with quotes\" $a\nEXPOSE 80 $a/tcp\nWORKDIR \"/w $a\"\n";
        let cf = crate::parse(text, "Containerfile").unwrap();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut labels = Vec::new();
        let mut ports = Vec::new();
        let mut workdir = String::new();
        for ins in &cf.stages[0].instructions {
            let snapshot = env.clone();
            let lookup = |k: &str| {
                snapshot
                    .iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            match ins.op.expand(cf.escape, &lookup).unwrap() {
                Op::Env(pairs) => {
                    for (k, v) in pairs {
                        env.retain(|(n, _)| *n != k);
                        env.push((k, v));
                    }
                }
                Op::Label(pairs) => labels.extend(pairs),
                Op::Expose(p) => ports.extend(p),
                Op::Workdir(w) => workdir = w,
                other => panic!("{other:?}"),
            }
        }
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            s(&[
                "a=1",
                "b=old",
                "c=x y",
                "d=old",
                "legacy=value with quotes 1"
            ])
        );
        assert_eq!(
            labels,
            vec![
                ("k k".to_string(), "$a".to_string()),
                ("x".into(), "1 b".into())
            ]
        );
        assert_eq!(ports, s(&["80", "1/tcp"]));
        assert_eq!(workdir, "/w 1");
    }

    fn vars(name: &str) -> Option<String> {
        match name {
            "a" => Some("old".into()),
            "S" => Some("build".into()),
            "P" => Some("80 443/udp".into()),
            "D" => Some("/dst dir".into()),
            _ => None,
        }
    }

    #[test]
    fn op_expand() {
        // Every value sees the variables from before the instruction.
        let op = Op::Env(vec![("a".into(), "1".into()), ("b".into(), "$a".into())]);
        assert_eq!(
            op.expand('\\', &vars).unwrap(),
            Op::Env(vec![("a".into(), "1".into()), ("b".into(), "old".into())])
        );
        let op = Op::Label(vec![
            ("\"k k\"".into(), "'$a'".into()),
            ("x".into(), "\"$a b\"".into()),
        ]);
        assert_eq!(
            op.expand('\\', &vars).unwrap(),
            Op::Label(vec![
                ("k k".into(), "$a".into()),
                ("x".into(), "old b".into())
            ])
        );
        // ARG: the default is expanded, the name is not.
        let op = Op::Arg(vec![
            ("$a".into(), Some("${a}-x".into())),
            ("n".into(), None),
        ]);
        assert_eq!(
            op.expand('\\', &vars).unwrap(),
            Op::Arg(vec![
                ("$a".into(), Some("old-x".into())),
                ("n".into(), None)
            ])
        );
        let op = Op::Expose(vec!["$P".into(), "8080".into()]);
        assert_eq!(
            op.expand('\\', &vars).unwrap(),
            Op::Expose(s(&["80", "443/udp", "8080"]))
        );
        for (op, want) in [
            (
                Op::Workdir("\"$D\"/x".into()),
                Op::Workdir("/dst dir/x".into()),
            ),
            (Op::User("${U:-1000}".into()), Op::User("1000".into())),
            (Op::StopSignal("$SIG".into()), Op::StopSignal(String::new())),
            (
                Op::Volume(s(&["$D", "/v"])),
                Op::Volume(s(&["/dst dir", "/v"])),
            ),
            // Not expanded: the shell does it when the command runs.
            (
                Op::Cmd(Cmd::Shell("echo $a".into())),
                Op::Cmd(Cmd::Shell("echo $a".into())),
            ),
            (
                Op::Onbuild("RUN echo $a".into()),
                Op::Onbuild("RUN echo $a".into()),
            ),
        ] {
            assert_eq!(op.expand('\\', &vars).unwrap(), want);
        }
        let c = Copy {
            from: Some("$S".into()),
            chown: Some("${a}:${a}".into()),
            chmod: Some("0$a".into()),
            sources: s(&["\"a b\"", "$a*"]),
            dest: "$D/".into(),
            heredocs: vec![
                Heredoc {
                    name: "A".into(),
                    content: "x=\"$a\"\n".into(),
                    expand: true,
                    chomp: false,
                },
                Heredoc {
                    name: "B".into(),
                    content: "$a\n".into(),
                    expand: false,
                    chomp: false,
                },
            ],
            ..Copy::default()
        };
        let Op::Copy(got) = Op::Copy(c).expand('\\', &vars).unwrap() else {
            panic!()
        };
        assert_eq!(got.from.as_deref(), Some("build"));
        assert_eq!(got.chown.as_deref(), Some("old:old"));
        assert_eq!(got.chmod.as_deref(), Some("0old"));
        assert_eq!(got.sources, s(&["a b", "old*"]));
        assert_eq!(got.dest, "/dst dir/");
        assert_eq!(got.heredocs[0].content, "x=\"old\"\n");
        assert_eq!(got.heredocs[1].content, "$a\n");
        // A failing expansion is an error, not an empty word.
        assert!(Op::Workdir("${a:?}x${b:?b must be set}".into())
            .expand('\\', &vars)
            .is_err());
    }
}
