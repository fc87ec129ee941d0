//! The Containerfile parser, with BuildKit's rules
//! (`frontend/dockerfile/parser` and `instructions/parse.go`): parser
//! directives at the top, line continuations with the escape character,
//! comments, heredocs for `RUN`/`COPY`/`ADD`, `--flag=value` options, the
//! JSON (exec) form, and the per-instruction argument rules.
//!
//! Words are kept as written (quotes and `$VAR` included): which of them are
//! expanded, and with which variables, is the executor's business (see
//! [`Op::expand`]). Errors name the file, line and column.

use std::fmt;
use std::time::Duration;

mod text;
mod words;

use text::{Logical, Physical};
use words::{parse_words, split_ws, Word};

/// A Containerfile that could not be parsed: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name given to [`parse`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters) where the bad part starts, 1 when
    /// that cannot be told.
    pub column: usize,
    /// What is wrong, and what to write instead where that helps.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Containerfile {
    /// The `# escape=` directive, `\` by default.
    pub escape: char,
    /// The `# syntax=` directive, recorded and otherwise ignored.
    pub syntax: Option<String>,
    /// The `ARG`s before the first `FROM` (only those may come before it).
    pub args: Vec<Instruction>,
    /// The build stages, in order; at least one.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// 0-based position among the stages.
    pub index: usize,
    /// The image word as written (may hold `$ARG`s).
    pub base: String,
    /// `AS name`, lowercased and validated.
    pub name: Option<String>,
    /// The `--platform` value as written.
    pub platform: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// The `FROM` line as written, continuations joined.
    pub text: String,
    /// The stage's instructions after its `FROM`.
    pub instructions: Vec<Instruction>,
}

/// One instruction other than `FROM`.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// As written, continuations joined (without heredoc bodies): for the
    /// history's `created_by` and the cache key.
    pub text: String,
    /// What it does.
    pub op: Op,
}

/// What an instruction does, its words as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `RUN [--mount=...]... [--network=...] [--security=...] command`.
    Run {
        /// The raw `--mount` values, in order.
        mounts: Vec<String>,
        /// `--network`.
        network: Option<String>,
        /// `--security`.
        security: Option<String>,
        /// The command.
        cmd: Cmd,
        /// Heredocs named on the line, in order.
        heredocs: Vec<Heredoc>,
    },
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Copy),
    /// `ENV` pairs, raw words.
    Env(Vec<(String, String)>),
    /// `ARG name[=default]...`, raw words.
    Arg(Vec<(String, Option<String>)>),
    /// `LABEL` pairs, raw words.
    Label(Vec<(String, String)>),
    /// `WORKDIR`.
    Workdir(String),
    /// `USER`.
    User(String),
    /// `EXPOSE` words.
    Expose(Vec<String>),
    /// `VOLUME`, a JSON array or words.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `ENTRYPOINT`.
    Entrypoint(Cmd),
    /// `CMD`.
    Cmd(Cmd),
    /// `SHELL`, JSON form only.
    Shell(Vec<String>),
    /// `HEALTHCHECK`; `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Health>),
    /// `ONBUILD`: the trigger instruction's text (heredoc bodies appended
    /// as BuildKit records them), checked to parse as an instruction.
    Onbuild(String),
    /// `MAINTAINER`.
    Maintainer(String),
}

/// A command in shell or exec form.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Shell form: the text, to run with the stage's `SHELL`.
    Shell(String),
    /// Exec (JSON array) form.
    Exec(Vec<String>),
}

/// A here-document (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter, quotes removed.
    pub name: String,
    /// The lines between, each with its line end.
    pub content: String,
    /// The delimiter was unquoted: `COPY` expands variables in the content.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from each content line.
    pub chomp: bool,
}

/// The arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Copy {
    /// `--from` (COPY only).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// Source words (heredoc markers excluded).
    pub sources: Vec<String>,
    /// Destination word.
    pub dest: String,
    /// Heredocs used as sources, in the order named.
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK [flags] CMD ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `["CMD", args...]` (exec form) or `["CMD-SHELL", "command"]`.
    pub test: Vec<String>,
    /// `--interval` (absent or 0: the default).
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// An error inside one instruction: a byte offset in its joined text.
#[derive(Debug)]
struct Perr {
    off: usize,
    msg: String,
}

fn perr(off: usize, msg: impl Into<String>) -> Perr {
    Perr {
        off,
        msg: msg.into(),
    }
}

const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Parses a Containerfile. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Containerfile, ParseError> {
    let lines = text::split_lines(text);
    let err_at = |line: usize, column: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let (escape, syntax, mut i) = text::directives(&lines).map_err(|(l, c, m)| err_at(l, c, m))?;
    let mut cf = Containerfile {
        escape,
        syntax,
        args: Vec::new(),
        stages: Vec::new(),
    };
    while let Some(logical) = text::next_logical(&lines, &mut i, escape) {
        if logical.joined.trim().is_empty() {
            // Only escapes and blanks: nothing to run.
            continue;
        }
        let at = |e: Perr| {
            let (l, c) = logical.position(e.off);
            err_at(l, c, e.msg)
        };
        let parsed = parse_instruction(&logical.joined, escape, false).map_err(at)?;
        let mut op = match parsed.kind {
            Parsed::From {
                base,
                name,
                platform,
                name_off,
            } => {
                if let Some(n) = &name {
                    if cf.stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(at(perr(
                            name_off,
                            format!("duplicate stage name {n:?}: give each stage its own name"),
                        )));
                    }
                }
                cf.stages.push(Stage {
                    index: cf.stages.len(),
                    base,
                    name,
                    platform,
                    line: logical.line(),
                    text: logical.joined.trim().to_string(),
                    instructions: Vec::new(),
                });
                continue;
            }
            Parsed::Op(op) => op,
        };
        if parsed.heredocs && logical.joined.contains("<<") {
            let docs =
                read_heredocs(&logical, &lines, &mut i).map_err(|(l, c, m)| err_at(l, c, m))?;
            op = attach_heredocs(op, docs);
        }
        let ins = Instruction {
            line: logical.line(),
            text: logical.joined.trim().to_string(),
            op,
        };
        match cf.stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None if matches!(ins.op, Op::Arg(_)) => cf.args.push(ins),
            None => {
                let (l, c) = logical.position(parsed.name_off);
                return Err(err_at(
                    l,
                    c,
                    format!(
                        "{} before the first FROM: only ARG may come before FROM (no build stage in current context)",
                        parsed.name
                    ),
                ));
            }
        }
    }
    if cf.stages.is_empty() {
        return Err(err_at(
            lines.len().max(1),
            1,
            "no FROM instruction: a Containerfile starts its first stage with FROM image".into(),
        ));
    }
    Ok(cf)
}

enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
        name_off: usize,
    },
    Op(Op),
}

struct ParsedInstruction {
    /// The instruction name, upper case.
    name: String,
    name_off: usize,
    kind: Parsed,
    /// The line may name heredocs (RUN/COPY/ADD in shell form, or an
    /// ONBUILD of one).
    heredocs: bool,
}

/// Parses one joined instruction line. `in_onbuild`: the trigger of an
/// ONBUILD (which cannot itself be ONBUILD, so this recurses once at most).
fn parse_instruction(
    joined: &str,
    escape: char,
    in_onbuild: bool,
) -> Result<ParsedInstruction, Perr> {
    let name_off = joined.len() - joined.trim_start().len();
    let name_end = joined[name_off..]
        .find(words::is_blank)
        .map_or(joined.len(), |e| name_off + e);
    let written = &joined[name_off..name_end];
    let name = written.to_ascii_uppercase();
    let (flags, args_off) = words::extract_flags(joined, name_end, escape);
    let args = joined[args_off..].trim_end();
    let a = Args {
        text: args,
        off: args_off,
        escape,
        name: &name,
        flags,
    };
    let mut heredocs = false;
    let kind = match name.as_str() {
        "FROM" => {
            return Ok(ParsedInstruction {
                kind: a.from()?,
                name,
                name_off,
                heredocs,
            })
        }
        "RUN" => {
            let op = a.run()?;
            heredocs = matches!(
                &op,
                Op::Run {
                    cmd: Cmd::Shell(_),
                    ..
                }
            );
            op
        }
        "CMD" => Op::Cmd(a.command()?),
        "ENTRYPOINT" => Op::Entrypoint(a.command()?),
        "SHELL" => Op::Shell(a.shell()?),
        "COPY" | "ADD" => {
            let (op, json) = a.copy()?;
            heredocs = !json;
            op
        }
        "ENV" => Op::Env(a.name_values()?),
        "LABEL" => Op::Label(a.name_values()?),
        "ARG" => Op::Arg(a.arg()?),
        "EXPOSE" => Op::Expose(a.list(false)?),
        "VOLUME" => Op::Volume(a.list(true)?),
        "WORKDIR" => Op::Workdir(a.string()?),
        "USER" => Op::User(a.string()?),
        "STOPSIGNAL" => Op::StopSignal(a.string()?),
        "MAINTAINER" => Op::Maintainer(a.string()?),
        "HEALTHCHECK" => Op::Healthcheck(a.healthcheck()?),
        "ONBUILD" if !in_onbuild => {
            a.no_flags()?;
            let (op, trigger_heredocs) = onbuild(args, args_off, escape)?;
            heredocs = trigger_heredocs;
            op
        }
        _ => return Err(perr(name_off, unknown_instruction(written))),
    };
    Ok(ParsedInstruction {
        name,
        name_off,
        kind: Parsed::Op(kind),
        heredocs,
    })
}

fn onbuild(args: &str, args_off: usize, escape: char) -> Result<(Op, bool), Perr> {
    if args.is_empty() {
        return Err(perr(
            args_off,
            "ONBUILD requires at least one argument: the instruction to run later",
        ));
    }
    let trigger = args
        .split(words::is_blank)
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(perr(
                args_off,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ))
        }
        "FROM" | "MAINTAINER" => {
            return Err(perr(
                args_off,
                format!("{trigger} isn't allowed as an ONBUILD trigger"),
            ))
        }
        _ => {}
    }
    let inner = parse_instruction(args, escape, true).map_err(|e| perr(args_off + e.off, e.msg))?;
    // The trigger as written: the line without its leading `ONBUILD`.
    Ok((Op::Onbuild(args.to_string()), inner.heredocs))
}

fn unknown_instruction(written: &str) -> String {
    let upper = written.to_ascii_uppercase();
    let best = if upper.chars().count() <= 20 {
        INSTRUCTIONS
            .iter()
            .map(|k| (words::edit_distance(&upper, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
    } else {
        None
    };
    match best {
        Some((_, k)) => format!("unknown instruction: {written} (did you mean {k}?)"),
        None => format!("unknown instruction: {written}"),
    }
}

/// The arguments of one instruction after its flags.
struct Args<'a> {
    text: &'a str,
    /// Offset of `text` in the joined line.
    off: usize,
    escape: char,
    name: &'a str,
    flags: Vec<Word>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Bool,
    Many,
}

/// Flag values by name, as the instruction declared them.
struct Flags(Vec<(&'static str, Vec<String>)>);

impl Flags {
    fn one(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.last().cloned())
    }
    fn many(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    fn bool(&self, name: &str) -> bool {
        self.one(name).as_deref() == Some("true")
    }
}

impl Args<'_> {
    fn err(&self, msg: impl Into<String>) -> Perr {
        perr(self.off, msg)
    }

    /// Checks the flags against what the instruction takes (BuildKit's
    /// BFlags rules: `--bool` alone is true, strings need `=value`, only
    /// `Many` flags may repeat).
    fn flags(&self, spec: &[(&'static str, Kind)]) -> Result<Flags, Perr> {
        let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
        for w in &self.flags {
            let body = w.text.strip_prefix("--").unwrap_or(&w.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let takes = if spec.is_empty() {
                    "it takes no flags".to_string()
                } else {
                    let names: Vec<String> = spec.iter().map(|(n, _)| format!("--{n}")).collect();
                    format!("it takes {}", names.join(", "))
                };
                return Err(perr(
                    w.off,
                    format!("unknown flag --{name} for {} ({takes})", self.name),
                ));
            };
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    b @ ("true" | "false") => b.to_string(),
                    _ => {
                        return Err(perr(
                            w.off,
                            format!("expecting boolean value for flag --{name}, not: {v}"),
                        ))
                    }
                },
                (_, Some(v)) => v.to_string(),
                (_, None) => {
                    return Err(perr(
                        w.off,
                        format!("missing a value on flag --{name}: write --{name}=VALUE"),
                    ))
                }
            };
            match out.iter_mut().find(|(n, _)| *n == key) {
                Some(_) if kind != Kind::Many => {
                    return Err(perr(w.off, format!("duplicate flag specified: --{name}")))
                }
                Some((_, vals)) => vals.push(value),
                None => out.push((key, vec![value])),
            }
        }
        Ok(Flags(out))
    }

    fn no_flags(&self) -> Result<(), Perr> {
        self.flags(&[]).map(drop)
    }

    fn from(&self) -> Result<Parsed, Perr> {
        let f = self.flags(&[("platform", Kind::Str)])?;
        let w = split_ws(self.text, self.off);
        let usage = "FROM requires either one or three arguments: FROM image [AS name]";
        let name = match w.as_slice() {
            [_] => None,
            [_, as_, n] if as_.text.eq_ignore_ascii_case("as") => {
                let lower = n.text.to_lowercase();
                if !valid_stage_name(&lower) {
                    return Err(perr(
                        n.off,
                        format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols (use [a-z][a-z0-9-_.]*)",
                            n.text
                        ),
                    ));
                }
                Some((lower, n.off))
            }
            [_, bad, _] => {
                return Err(perr(
                    bad.off,
                    format!("{usage}; expected AS, found {:?}", bad.text),
                ))
            }
            [] => return Err(self.err(usage)),
            [_, second, ..] => return Err(perr(second.off, usage)),
        };
        Ok(Parsed::From {
            base: w[0].text.clone(),
            name_off: name.as_ref().map_or(self.off, |n| n.1),
            name: name.map(|n| n.0),
            platform: f.one("platform"),
        })
    }

    fn run(&self) -> Result<Op, Perr> {
        let f = self.flags(&[
            ("mount", Kind::Many),
            ("network", Kind::Str),
            ("security", Kind::Str),
        ])?;
        Ok(Op::Run {
            mounts: f.many("mount"),
            network: f.one("network"),
            security: f.one("security"),
            cmd: self.command_form()?,
            heredocs: Vec::new(),
        })
    }

    fn command(&self) -> Result<Cmd, Perr> {
        self.no_flags()?;
        self.command_form()
    }

    fn command_form(&self) -> Result<Cmd, Perr> {
        if self.text.is_empty() {
            return Err(self.err(format!("{} requires at least one argument", self.name)));
        }
        Ok(match json_array(self.text, self.off)? {
            Some(v) => Cmd::Exec(v),
            None => Cmd::Shell(self.text.to_string()),
        })
    }

    fn shell(&self) -> Result<Vec<String>, Perr> {
        self.no_flags()?;
        match json_array(self.text, self.off)? {
            Some(v) if v.is_empty() => Err(self.err("SHELL requires at least one argument")),
            Some(v) => Ok(v),
            None if self.text.is_empty() => Err(self.err("SHELL requires at least one argument")),
            None => Err(self.err(
                "SHELL requires the arguments to be in JSON form: write SHELL [\"/bin/sh\", \"-c\"]",
            )),
        }
    }

    /// The op and whether it was in JSON form (no heredocs then).
    fn copy(&self) -> Result<(Op, bool), Perr> {
        let add = self.name == "ADD";
        let spec: &[(&'static str, Kind)] = if add {
            &[
                ("chown", Kind::Str),
                ("chmod", Kind::Str),
                ("link", Kind::Bool),
                ("keep-git-dir", Kind::Bool),
                ("checksum", Kind::Str),
                ("exclude", Kind::Many),
            ]
        } else {
            &[
                ("from", Kind::Str),
                ("chown", Kind::Str),
                ("chmod", Kind::Str),
                ("link", Kind::Bool),
                ("parents", Kind::Bool),
                ("exclude", Kind::Many),
            ]
        };
        let f = self.flags(spec)?;
        let json = json_array(self.text, self.off)?;
        let is_json = json.is_some();
        let words: Vec<Word> = match json {
            Some(v) => v
                .into_iter()
                .map(|text| Word {
                    text,
                    off: self.off,
                })
                .collect(),
            None => split_ws(self.text, self.off),
        };
        let Some((dest, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Err(self.err(format!(
                "{} requires at least two arguments, but only one was provided. Destination could not be determined",
                self.name
            )));
        };
        // (BuildKit checks this in JSON form too, and ignores a marker it
        // cannot lex.)
        if let Ok(Some(_)) = heredoc_marker(&dest.text) {
            return Err(perr(
                dest.off,
                format!("{} cannot accept a heredoc as a destination", self.name),
            ));
        }
        let c = Copy {
            from: f.one("from"),
            chown: f.one("chown"),
            chmod: f.one("chmod"),
            link: f.bool("link"),
            parents: f.bool("parents"),
            exclude: f.many("exclude"),
            checksum: f.one("checksum"),
            keep_git_dir: f.bool("keep-git-dir"),
            sources: sources.iter().map(|w| w.text.clone()).collect(),
            dest: dest.text.clone(),
            heredocs: Vec::new(),
        };
        Ok((if add { Op::Add(c) } else { Op::Copy(c) }, is_json))
    }

    /// ENV and LABEL: `k=v...` or the legacy `k value words`.
    fn name_values(&self) -> Result<Vec<(String, String)>, Perr> {
        self.no_flags()?;
        let words = parse_words(self.text, self.off, self.escape);
        let Some(first) = words.first() else {
            return Err(self.err(format!("{} requires at least one argument", self.name)));
        };
        if !first.text.contains('=') {
            let Some(sp) = self.text.find(words::is_blank) else {
                return Err(self.err(format!(
                    "{0} must have two arguments: write {0} {1}=value",
                    self.name, self.text
                )));
            };
            let value = self.text[sp..].trim_start_matches(words::is_blank);
            return Ok(vec![(self.text[..sp].to_string(), value.to_string())]);
        }
        let mut out = Vec::new();
        for w in &words {
            let Some((k, v)) = w.text.split_once('=') else {
                return Err(perr(
                    w.off,
                    format!(
                        "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                        w.text
                    ),
                ));
            };
            if k.is_empty() {
                return Err(perr(w.off, format!("{} names can not be blank", self.name)));
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(out)
    }

    fn arg(&self) -> Result<Vec<(String, Option<String>)>, Perr> {
        self.no_flags()?;
        let words = parse_words(self.text, self.off, self.escape);
        if words.is_empty() {
            return Err(self.err("ARG requires at least one argument"));
        }
        words
            .iter()
            .map(|w| match w.text.split_once('=') {
                Some(("", _)) => Err(perr(w.off, "ARG names can not be blank")),
                Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                None => Ok((w.text.clone(), None)),
            })
            .collect()
    }

    /// EXPOSE (words) and VOLUME (a JSON array or words).
    fn list(&self, json: bool) -> Result<Vec<String>, Perr> {
        self.no_flags()?;
        let v = match json
            .then(|| json_array(self.text, self.off))
            .transpose()?
            .flatten()
        {
            Some(v) => v,
            None => split_ws(self.text, self.off)
                .into_iter()
                .map(|w| w.text)
                .collect(),
        };
        if v.is_empty() {
            return Err(self.err(format!("{} requires at least one argument", self.name)));
        }
        if json && v.iter().any(|s| s.trim().is_empty()) {
            return Err(self.err("VOLUME specified can not be an empty string"));
        }
        Ok(if json {
            v.iter().map(|s| s.trim().to_string()).collect()
        } else {
            v
        })
    }

    fn string(&self) -> Result<String, Perr> {
        self.no_flags()?;
        if self.text.is_empty() {
            return Err(self.err(format!("{} requires exactly one argument", self.name)));
        }
        Ok(self.text.to_string())
    }

    fn healthcheck(&self) -> Result<Option<Health>, Perr> {
        if self.text.is_empty() {
            return Err(self.err("HEALTHCHECK requires at least one argument: NONE or CMD command"));
        }
        let sep = self.text.find(words::is_blank).unwrap_or(self.text.len());
        let typ = self.text[..sep].to_ascii_uppercase();
        let rest = self.text[sep..].trim_start_matches(words::is_blank);
        let rest_off = self.off + (self.text.len() - rest.len());
        if typ == "NONE" {
            if !rest.is_empty() {
                return Err(perr(rest_off, "HEALTHCHECK NONE takes no arguments"));
            }
            if let Some(w) = self.flags.first() {
                return Err(perr(w.off, "HEALTHCHECK NONE takes no flags"));
            }
            return Ok(None);
        }
        let f = self.flags(&[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ])?;
        if typ != "CMD" {
            return Err(self.err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)")));
        }
        let test = match json_array(rest, rest_off)? {
            Some(v) if v.is_empty() => vec![],
            Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
            None if rest.is_empty() => vec![],
            None => vec!["CMD-SHELL".to_string(), rest.to_string()],
        };
        if test.is_empty() {
            return Err(perr(rest_off, "Missing command after HEALTHCHECK CMD"));
        }
        let flag_off = |name: &str| {
            self.flags
                .iter()
                .rev()
                .find(|w| w.text.strip_prefix("--").and_then(|b| b.split('=').next()) == Some(name))
                .map_or(self.off, |w| w.off)
        };
        let dur = |name: &'static str| -> Result<Option<Duration>, Perr> {
            match f.one(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => interval(name, &v).map_err(|m| perr(flag_off(name), m)),
            }
        };
        let retries = match f.one("retries").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.parse::<i32>() {
                Ok(n) if n < 0 => {
                    return Err(perr(
                        flag_off("retries"),
                        format!("--retries cannot be negative ({n})"),
                    ))
                }
                Ok(n) => Some(n.unsigned_abs()),
                Err(_) => {
                    return Err(perr(
                        flag_off("retries"),
                        format!("--retries={v:?} is not a whole number: write --retries=3"),
                    ))
                }
            },
        };
        Ok(Some(Health {
            test,
            interval: dur("interval")?,
            timeout: dur("timeout")?,
            start_period: dur("start-period")?,
            start_interval: dur("start-interval")?,
            retries,
        }))
    }
}

/// A HEALTHCHECK duration: 0 means the default (None), otherwise at least
/// 1ms (BuildKit's `parseOptInterval`).
fn interval(name: &str, v: &str) -> Result<Option<Duration>, String> {
    match words::go_duration(v) {
        None => Err(format!(
            "--{name}={v:?} is not a duration: write e.g. 30s, 1m30s or 500ms"
        )),
        Some(0) => Ok(None),
        Some(n) if n < 1_000_000 => Err(format!(
            "Interval {name:?} cannot be less than 1ms (got {v})"
        )),
        Some(n) => Ok(Some(Duration::from_nanos(
            u64::try_from(n).unwrap_or(u64::MAX),
        ))),
    }
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '-' | '_' | '.')
        })
}

/// The JSON (exec) form: `Some` when the text is a JSON array. An array of
/// strings is the exec form; an array holding anything else is an error;
/// text that is not a JSON array at all is shell form (`None`), as BuildKit.
fn json_array(text: &str, off: usize) -> Result<Option<Vec<String>>, Perr> {
    let t = text.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(t) else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(perr(
                off,
                "when using JSON array syntax, arrays must be comprised of strings only",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// What a `<<` word announces: `(name, expand, chomp)`, or `None` when the
/// word is no heredoc marker (BuildKit's `^(\d*)<<(-?)\s*([^<]*)$`, then
/// exactly one word after quote removal).
fn heredoc_marker(word: &str) -> Result<Option<(String, bool, bool)>, String> {
    let w = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(w) = w.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, w) = match w.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, w),
    };
    let rest = w.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    match crate::expand::heredoc_name(rest) {
        Ok(Some((name, quoted))) => Ok(Some((name, !quoted, chomp))),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("bad heredoc delimiter {word:?}: {}", e.0)),
    }
}

/// Reads the bodies of the heredocs named on `logical`'s line, from the
/// physical lines after it, in order.
fn read_heredocs(
    logical: &Logical,
    lines: &[Physical<'_>],
    i: &mut usize,
) -> Result<Vec<Heredoc>, (usize, usize, String)> {
    let (line, col) = logical.position(0);
    // A line the lexer cannot split (an unmatched quote) names no heredoc:
    // BuildKit ignores that error here; the shell reports it when it runs.
    let words = crate::expand::raw_words(&logical.joined).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        let Some((name, expand, chomp)) = heredoc_marker(&w).map_err(|m| (line, col, m))? else {
            continue;
        };
        let mut content = String::new();
        let mut done = false;
        while let Some(l) = lines.get(*i) {
            *i += 1;
            let candidate = if chomp {
                l.text.trim_start_matches('\t')
            } else {
                l.text
            };
            if candidate == name {
                done = true;
                break;
            }
            content.push_str(if chomp {
                l.raw.trim_start_matches('\t')
            } else {
                l.raw
            });
        }
        if !done {
            let (l, c) = logical.position(logical.joined.find(&w).unwrap_or(0));
            return Err((
                l,
                c,
                format!("unterminated heredoc {w} started on line {l}: end it with a line holding only {name}"),
            ));
        }
        docs.push(Heredoc {
            name,
            content,
            expand,
            chomp,
        });
    }
    Ok(docs)
}

/// Puts heredoc bodies where the instruction uses them.
fn attach_heredocs(op: Op, docs: Vec<Heredoc>) -> Op {
    match op {
        Op::Run {
            mounts,
            network,
            security,
            cmd,
            ..
        } => Op::Run {
            mounts,
            network,
            security,
            cmd,
            heredocs: docs,
        },
        Op::Copy(c) => Op::Copy(copy_heredocs(c, &docs)),
        Op::Add(c) => Op::Add(copy_heredocs(c, &docs)),
        Op::Onbuild(mut t) => {
            for d in &docs {
                t.push('\n');
                t.push_str(&d.content);
                t.push_str(&d.name);
            }
            Op::Onbuild(t)
        }
        other => other,
    }
}

fn copy_heredocs(mut c: Copy, docs: &[Heredoc]) -> Copy {
    let mut sources = Vec::new();
    for s in std::mem::take(&mut c.sources) {
        match heredoc_marker(&s).ok().flatten() {
            Some((name, expand, chomp)) => {
                // Two bodies of one name: the last wins (BuildKit keeps them in a map).
                let content = docs
                    .iter()
                    .rev()
                    .find(|d| d.name == name)
                    .map(|d| d.content.clone());
                c.heredocs.push(Heredoc {
                    name,
                    content: content.unwrap_or_default(),
                    expand,
                    chomp,
                });
            }
            None => sources.push(s),
        }
    }
    c.sources = sources;
    c
}

#[cfg(test)]
mod tests;
