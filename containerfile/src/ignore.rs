//! `.containerignore` / `.dockerignore` rules, with the semantics of
//! moby/patternmatcher (what BuildKit and buildah use) and the line rules of
//! its `ignorefile.ReadAll`.
//!
//! A pattern is compiled the way patternmatcher turns it into a regular
//! expression: `*` and `?` never cross a `/`, `**` (and `**/`) spans any
//! number of directories, `\` escapes the next character, `[...]` is a Go
//! `filepath.Match` character class. Patternmatcher's shortcuts are kept
//! where they change results: a pattern that is `**` followed by literal
//! text only matches any path *ending* in that text (`**foo` matches
//! `barfoo`), and a literal pattern ending in `**` is a plain prefix test.
//!
//! A path is excluded when the last pattern that matches it (or one of its
//! parent directories: `foo` excludes `foo/bar`) is not an `!` exception.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The exclusion rules of a build context. The default excludes nothing.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    has_exceptions: bool,
}

/// A bad ignore file: which file, line and pattern, and why.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct IgnoreError(#[from] IgnoreErrorKind);

#[derive(Debug, thiserror::Error)]
enum IgnoreErrorKind {
    #[error(
        "{file}:{line}: bad ignore pattern \"{pattern}\": {reason}; fix the pattern or remove the line"
    )]
    Pattern {
        file: String,
        line: usize,
        pattern: String,
        reason: &'static str,
    },
    #[error("reading ignore file {path}: {source}; make it readable or remove it")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exception: bool,
    matcher: Matcher,
    /// Each `/`-separated element compiled on its own, to tell whether an
    /// exception can match something under an excluded directory.
    dirs: Vec<Matcher>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    /// `**` then literal text; the `String` is the text after `**`.
    Suffix(String),
    Tokens(Vec<Tok>),
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Quest,
    /// `[...]`: Go `filepath.Match` class (it may match `/`).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` (or `**/`) before more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end after other wildcards: anything at all.
    AnyRest,
}

impl Ignore {
    /// Parses the text of an ignore file (see the module doc).
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        Self::parse_named(text, "ignore rules")
    }

    pub(crate) fn parse_named(text: &str, file: &str) -> Result<Ignore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ignore = Ignore::default();
        for (n, raw) in text.lines().enumerate() {
            // ignorefile.ReadAll: a comment is a `#` in the first column,
            // before any trimming.
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason| {
                IgnoreError(IgnoreErrorKind::Pattern {
                    file: file.to_string(),
                    line: n + 1,
                    pattern: line.to_string(),
                    reason,
                })
            };
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if exception && body.is_empty() {
                return Err(bad("an exception \"!\" needs a pattern after it"));
            }
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            validate(&cleaned).map_err(bad)?;
            ignore.has_exceptions |= exception;
            ignore.patterns.push(Pattern {
                matcher: compile(&cleaned),
                dirs: cleaned.split('/').map(compile).collect(),
                text: cleaned,
                exception,
            });
        }
        Ok(ignore)
    }

    /// Whether `rel` (slash-separated, relative to the context, no leading
    /// `./`) is excluded: the last pattern matching it or one of its parent
    /// directories decides.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let rel = rel.trim_start_matches("./").trim_end_matches('/');
        let mut matched = false;
        for p in &self.patterns {
            // Patternmatcher skips an exclusion once excluded and an
            // exception while not excluded: their result could not change.
            if p.exception != matched {
                continue;
            }
            let mut hit = p.matcher.matches(rel);
            if !hit {
                // Each parent directory, shortest first.
                hit = rel
                    .match_indices('/')
                    .any(|(i, _)| p.matcher.matches(&rel[..i]));
            }
            if hit {
                matched = !p.exception;
            }
        }
        matched
    }

    /// Whether a walk must look inside the excluded directory `dir`: some
    /// `!` exception could match a path under it.
    pub(crate) fn may_include_under(&self, dir: &str) -> bool {
        if !self.has_exceptions {
            return false;
        }
        let comps: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            for (pd, d) in p.dirs.iter().zip(&comps) {
                if pd.spans_dirs() {
                    return true;
                }
                if !pd.matches(d) {
                    return false;
                }
            }
            true
        })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The ignore file that applies to a build, in buildah's and
    /// BuildKit's order: `<Containerfile>.containerignore`, then
    /// `<Containerfile>.dockerignore`, then `.containerignore` and
    /// `.dockerignore` in the context. None of them: nothing excluded.
    /// The context's files are opened inside the context (a symlinked
    /// `.dockerignore` cannot name a host file outside it).
    pub fn read_for(context: &Path, containerfile: Option<&Path>) -> Result<Ignore, IgnoreError> {
        if let Some(cf) = containerfile {
            for ext in [".containerignore", ".dockerignore"] {
                let mut p = cf.as_os_str().to_owned();
                p.push(ext);
                let p = PathBuf::from(p);
                match std::fs::read(&p) {
                    Ok(bytes) => return Self::from_bytes(&bytes, &p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(IgnoreErrorKind::Read {
                            path: p.display().to_string(),
                            source,
                        }
                        .into());
                    }
                }
            }
        }
        let read_err = |path: &Path, source| {
            IgnoreError(IgnoreErrorKind::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let root = rustix::fs::open(
            context,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| read_err(context, e.into()))?;
        for name in [".containerignore", ".dockerignore"] {
            let path = context.join(name);
            match rustix::fs::openat2(
                &root,
                name,
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => {
                    let mut bytes = Vec::new();
                    std::fs::File::from(fd)
                        .read_to_end(&mut bytes)
                        .map_err(|e| read_err(&path, e))?;
                    return Self::from_bytes(&bytes, &path);
                }
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(read_err(&path, e.into())),
            }
        }
        Ok(Ignore::default())
    }

    pub(crate) fn from_bytes(bytes: &[u8], path: &Path) -> Result<Ignore, IgnoreError> {
        Self::parse_named(&String::from_utf8_lossy(bytes), &path.display().to_string())
    }
}

impl fmt::Display for Ignore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.patterns {
            writeln!(f, "{}{}", if p.exception { "!" } else { "" }, p.text)?;
        }
        Ok(())
    }
}

/// Go's `filepath.Clean` on a slash-separated path.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The syntax check patternmatcher gets from `filepath.Match(p, ".")`:
/// a dangling `\` and a malformed `[...]` class are errors.
fn validate(p: &str) -> Result<(), &'static str> {
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            // The guard consumes the escaped character either way.
            '\\' if it.next().is_none() => {
                return Err("a \"\\\" at the end escapes nothing (write \"\\\\\" for a backslash)");
            }
            '[' => {
                parse_class(&mut it)?;
            }
            _ => {}
        }
    }
    Ok(())
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Parses a class after its `[`, with Go's rules: optional `^`, at least
/// one character or range, `-` and `]` must be escaped inside a range.
fn parse_class(it: &mut Chars<'_>) -> Result<Tok, &'static str> {
    const UNCLOSED: &str = "a \"[\" class is not closed by \"]\"";
    fn esc(it: &mut Chars<'_>) -> Result<char, &'static str> {
        match it.next() {
            None => Err(UNCLOSED),
            Some('-' | ']') => Err("\"-\" or \"]\" in a class must be escaped with \"\\\""),
            Some('\\') => it.next().ok_or(UNCLOSED),
            Some(c) => Ok(c),
        }
    }
    let negated = it.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        match it.peek() {
            None => return Err(UNCLOSED),
            Some(']') if !ranges.is_empty() => {
                it.next();
                return Ok(Tok::Class { negated, ranges });
            }
            _ => {}
        }
        let lo = esc(it)?;
        let hi = if it.next_if_eq(&'-').is_some() {
            esc(it)?
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

/// Compiles a cleaned, valid pattern the way patternmatcher does.
fn compile(p: &str) -> Matcher {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let mut kind = Kind::Exact;
    let mut toks = Vec::new();
    let mut it = p.chars().peekable();
    let mut first = true;
    while let Some(c) = it.next() {
        match c {
            '*' if it.next_if_eq(&'*').is_some() => {
                it.next_if_eq(&'/');
                if it.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        toks.push(Tok::AnyRest);
                        kind = Kind::Regexp;
                    }
                } else {
                    toks.push(Tok::AnyDirs);
                    kind = Kind::Regexp;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = Kind::Regexp;
            }
            '?' => {
                toks.push(Tok::Quest);
                kind = Kind::Regexp;
            }
            '\\' => match it.next() {
                Some(n) => {
                    toks.push(Tok::Lit(n));
                    kind = Kind::Regexp;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                // validate() accepted it, so it parses.
                let class = parse_class(&mut it).unwrap_or(Tok::Lit('['));
                toks.push(class);
                kind = Kind::Regexp;
            }
            c => toks.push(Tok::Lit(c)),
        }
        first = false;
    }
    match kind {
        Kind::Exact => Matcher::Exact(p.to_string()),
        Kind::Prefix => Matcher::Prefix(p[..p.len() - 2].to_string()),
        Kind::Suffix => Matcher::Suffix(p[2..].to_string()),
        Kind::Regexp => Matcher::Tokens(toks),
    }
}

impl Matcher {
    /// Whether the pattern has a `**`, which can match any depth.
    fn spans_dirs(&self) -> bool {
        match self {
            Matcher::Exact(_) => false,
            Matcher::Prefix(_) | Matcher::Suffix(_) => true,
            Matcher::Tokens(t) => t.iter().any(|t| matches!(t, Tok::AnyDirs | Tok::AnyRest)),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(s) => path == s,
            Matcher::Prefix(s) => path.starts_with(s.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Matcher::Tokens(t) => tokens_match(t, path),
        }
    }
}

impl Tok {
    fn class_matches(negated: bool, ranges: &[(char, char)], c: char) -> bool {
        ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated
    }
}

/// Dynamic programming over (token, character): `row[j]` says whether the
/// tokens from `i` on match the characters from `j` on. Linear in each.
fn tokens_match_chars(toks: &[Tok], s: &[char]) -> bool {
    let n = s.len();
    let mut next: Vec<bool> = (0..=n).map(|j| j == n).collect();
    for tok in toks.iter().rev() {
        let mut row = vec![false; n + 1];
        // For `**`: whether some k >= j has s[k] == '/' and next[k + 1].
        let mut slash_then = false;
        for j in (0..=n).rev() {
            let one = |ok: bool| j < n && ok && next[j + 1];
            if j < n && s[j] == '/' && next[j + 1] {
                slash_then = true;
            }
            row[j] = match tok {
                Tok::Lit(c) => one(j < n && s[j] == *c),
                Tok::Quest => one(j < n && s[j] != '/'),
                Tok::Class { negated, ranges } => {
                    one(j < n && Tok::class_matches(*negated, ranges, s[j]))
                }
                Tok::Star => next[j] || (j < n && s[j] != '/' && row[j + 1]),
                Tok::AnyRest => next[j] || (j < n && row[j + 1]),
                // `(.*/)?`: nothing, or up to and including some later `/`.
                Tok::AnyDirs => next[j] || slash_then,
            };
        }
        next = row;
    }
    next[0]
}

fn tokens_match(toks: &[Tok], path: &str) -> bool {
    let chars: Vec<char> = path.chars().collect();
    tokens_match_chars(toks, &chars)
}

/// A compiled single-element glob for COPY sources: Go `filepath.Match`
/// on one path element (`*`, `?`, `[...]`, `\` escapes).
#[derive(Debug, Clone)]
pub struct ElementGlob(Vec<Tok>);

impl ElementGlob {
    /// Compiles `elem`, or says why it is malformed.
    pub fn new(elem: &str) -> Result<ElementGlob, &'static str> {
        validate(elem)?;
        let mut toks = Vec::new();
        let mut it = elem.chars().peekable();
        while let Some(c) = it.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::Quest,
                '\\' => Tok::Lit(it.next().unwrap_or('\\')),
                '[' => parse_class(&mut it)?,
                c => Tok::Lit(c),
            });
        }
        Ok(ElementGlob(toks))
    }

    /// Whether `name` (one path element) matches.
    pub fn matches(&self, name: &str) -> bool {
        tokens_match(&self.0, name)
    }
}

/// Whether `s` has a character `filepath.Match` treats specially.
pub(crate) fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ignore file, path, excluded?) — expectations from patternmatcher's
    /// code and the Docker `.dockerignore` documentation.
    const CASES: &[(&str, &str, bool)] = &[
        ("*.md", "README.md", true),
        // `*` does not cross `/`: a root-level `*.md` leaves docs/ alone.
        ("*.md", "docs/a.md", false),
        ("docs/*.md", "docs/a.md", true),
        ("docs/*.md", "README.md", false),
        ("docs/*.md", "docs/sub/a.md", false),
        // `**` spans any number of directories, zero included.
        ("**/*.md", "README.md", true),
        ("**/*.md", "a/b/c/x.md", true),
        ("docs/**/*.md", "docs/x.md", true),
        ("docs/**/*.md", "docs/a/b/x.md", true),
        ("docs/**/*.md", "other/x.md", false),
        // Parent matching: a pattern naming a directory excludes its tree.
        ("node_modules", "node_modules/a/b.js", true),
        ("node_modules", "src/node_modules/a.js", false),
        ("**/node_modules", "src/node_modules/a.js", true),
        // Leading `/` and `./` are removed by the cleaning; trailing `/` too.
        ("/build", "build/out", true),
        ("./build", "build/out", true),
        ("build/", "build", true),
        ("build/", "build/x", true),
        ("a//b/../c", "a/c", true),
        // Exceptions: the last matching pattern wins.
        ("*.md\n!README.md", "README.md", false),
        ("*.md\n!README.md", "CHANGES.md", true),
        ("!README.md\n*.md", "README.md", true),
        // An exception re-includes a file under an excluded directory.
        ("docs\n!docs/keep.txt", "docs/keep.txt", false),
        ("docs\n!docs/keep.txt", "docs/other.txt", true),
        ("docs\n!docs/keep", "docs/keep/deep/x", false),
        // Comments only in the first column; blank lines and spaces trimmed.
        ("# a comment\n\n   secret.txt   \n", "secret.txt", true),
        ("# secret.txt", "secret.txt", false),
        // `?` is one character but `/`.
        ("file?.txt", "file1.txt", true),
        ("file?.txt", "file10.txt", false),
        ("a?b", "a/b", false),
        // Classes: ranges and `^` negation as in Go's filepath.Match.
        ("file[0-9].txt", "file7.txt", true),
        ("file[0-9].txt", "filex.txt", false),
        ("file[^0-9].txt", "filex.txt", true),
        ("file[^0-9].txt", "file7.txt", false),
        // `\` escapes a wildcard.
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
        // Regexp metacharacters that mean nothing to filepath.Match are literal.
        ("a.b", "axb", false),
        ("a+(b)", "a+(b)", true),
        // patternmatcher's suffix shortcut: `**` + literal text is "ends with".
        ("**foo", "barfoo", true),
        ("**/foo", "foo", true),
        ("**/foo", "barfoo", false),
        // Literal + trailing `**` is a prefix test: `foo/**` spares `foo` itself.
        ("foo/**", "foo/x/y", true),
        ("foo/**", "foo", false),
        // `**` then other wildcards then `**` at the end: `.*`.
        ("*/**", "a/b/c", true),
        // `**` alone excludes everything, and an exception still works.
        ("**\n!keep", "x/y", true),
        ("**\n!keep", "keep", false),
        // A pattern matching a parent later excepted by a deeper exception.
        ("a\n!a/b\na/b/c", "a/b/c/d", true),
        ("a\n!a/b\na/b/c", "a/b/x", false),
    ];

    #[test]
    fn table() {
        for (rules, path, want) in CASES {
            let ig = Ignore::parse(rules).unwrap();
            assert_eq!(ig.is_excluded(path), *want, "rules {rules:?} path {path:?}");
        }
    }

    #[test]
    fn bad_patterns_name_line_and_pattern() {
        for (text, line, pat) in [
            ("ok\n[abc", 2, "[abc"),
            ("a\nb\nx\\", 3, "x\\"),
            ("[]a]", 1, "[]a]"),
            ("[a-]", 1, "[a-]"),
            ("!", 1, "!"),
        ] {
            let err = Ignore::parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!(":{line}:")), "{err}");
            assert!(err.contains(&format!("\"{pat}\"")), "{err}");
        }
    }

    #[test]
    fn may_include_under_follows_exceptions() {
        let ig = Ignore::parse("docs\n!docs/keep/*.txt").unwrap();
        assert!(ig.may_include_under("docs"));
        assert!(ig.may_include_under("docs/keep"));
        assert!(!ig.may_include_under("docs/other"));
        let ig = Ignore::parse("docs").unwrap();
        assert!(!ig.may_include_under("docs"));
        let ig = Ignore::parse("x\n!**/keep").unwrap();
        assert!(ig.may_include_under("x/y"));
    }

    #[test]
    fn clean_is_go_filepath_clean() {
        for (i, o) in [
            ("", "."),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a/./b//c/", "a/b/c"),
            ("/", "/"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }

    #[test]
    fn read_for_order() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        let cf = t.path().join("app.Containerfile");
        let got = |cf: Option<&Path>| Ignore::read_for(&ctx, cf).unwrap().to_string();
        assert_eq!(got(Some(&cf)), "");
        std::fs::write(ctx.join(".dockerignore"), "d\n").unwrap();
        assert_eq!(got(Some(&cf)), "d\n");
        std::fs::write(ctx.join(".containerignore"), "c\n").unwrap();
        assert_eq!(got(None), "c\n");
        std::fs::write(t.path().join("app.Containerfile.dockerignore"), "fd\n").unwrap();
        assert_eq!(got(Some(&cf)), "fd\n");
        std::fs::write(t.path().join("app.Containerfile.containerignore"), "fc\n").unwrap();
        assert_eq!(got(Some(&cf)), "fc\n");
        assert_eq!(got(None), "c\n");
        // A context .dockerignore that is a symlink out of the context is
        // read inside it (here: dangling, so not found, nothing excluded).
        std::fs::remove_file(ctx.join(".containerignore")).unwrap();
        std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
        std::fs::write(t.path().join("host-rules"), "host\n").unwrap();
        std::os::unix::fs::symlink("../host-rules", ctx.join(".dockerignore")).unwrap();
        assert_eq!(got(None), "");
    }
}
