//! Lines: parser directives at the top, and physical lines joined into
//! logical ones (continuations, comments and blank lines inside them).

/// One line of the file.
pub(super) struct Physical<'a> {
    /// 1-based line number.
    pub(super) no: usize,
    /// Without its line end (trailing `\r` and `\n` removed).
    pub(super) text: &'a str,
    /// With its line end, as heredoc bodies keep it.
    pub(super) raw: &'a str,
}

pub(super) fn split_lines(text: &str) -> Vec<Physical<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, raw)| Physical {
            no: i + 1,
            text: raw.trim_end_matches(['\r', '\n']),
            raw,
        })
        .collect()
}

/// The byte offset of `part` inside `whole` (a subslice of it).
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(whole.as_ptr() as usize)
        .min(whole.len())
}

fn column(line: &str, byte: usize) -> usize {
    line.get(..byte).map_or(0, |s| s.chars().count()) + 1
}

type DirectiveResult = Result<(char, Option<String>, usize), (usize, usize, String)>;

/// Reads the parser directives (`# key=value` lines before anything else:
/// the first line that is not one ends them). Returns the escape
/// character, the syntax, and the index of the first line after them.
pub(super) fn directives(lines: &[Physical<'_>]) -> DirectiveResult {
    let mut escape = '\\';
    let mut syntax = None;
    let mut seen: Vec<String> = Vec::new();
    for (idx, l) in lines.iter().enumerate() {
        let Some((key, value)) = directive(l.text) else {
            return Ok((escape, syntax, idx));
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            return Ok((escape, syntax, idx));
        }
        let col = column(l.text, offset_in(l.text, value));
        if seen.contains(&key) {
            return Err((
                l.no,
                1,
                format!("only one {key} parser directive can be used: remove this line"),
            ));
        }
        seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err((
                            l.no,
                            col,
                            format!("invalid escape token '{value}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => syntax = Some(value.to_string()),
            _ => {}
        }
    }
    Ok((escape, syntax, lines.len()))
}

/// `# key = value` (BuildKit: `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
/// after the line's leading blanks).
fn directive(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start().strip_prefix('#')?.trim_start();
    let key_len = body
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(body.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = body.split_at(key_len);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// A logical line: physical lines joined, with where each piece came from.
pub(super) struct Logical {
    pub(super) joined: String,
    /// (offset in `joined`, line number, 0-based column of the piece).
    segs: Vec<(usize, usize, usize)>,
}

impl Logical {
    /// The 1-based line where it starts.
    pub(super) fn line(&self) -> usize {
        self.segs.first().map_or(1, |s| s.1)
    }

    /// Line and 1-based column of byte `off` of `joined`.
    pub(super) fn position(&self, off: usize) -> (usize, usize) {
        let Some(&(at, line, col0)) = self.segs.iter().rev().find(|s| s.0 <= off) else {
            return (self.line(), 1);
        };
        let chars = self.joined.get(at..off).map_or(0, |s| s.chars().count());
        (line, col0 + chars + 1)
    }
}

/// `line` without a continuation escape at its end (blanks after it
/// allowed), and whether the instruction ends here. An escape that is
/// itself escaped does not continue (BuildKit's `([^\\])\\[ \t]*$`).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The next instruction's logical line from `lines[*i..]`, skipping
/// comments and blank lines; `None` at the end.
pub(super) fn next_logical(lines: &[Physical<'_>], i: &mut usize, escape: char) -> Option<Logical> {
    while let Some(first) = lines.get(*i) {
        *i += 1;
        let t = first.text.trim_start();
        if t.starts_with('#') {
            continue;
        }
        let (kept, mut ended) = trim_continuation(t, escape);
        if ended && kept.is_empty() {
            continue;
        }
        let mut joined = kept.to_string();
        let mut segs = vec![(
            0,
            first.no,
            column(first.text, offset_in(first.text, t)) - 1,
        )];
        while !ended {
            let Some(l) = lines.get(*i) else { break };
            *i += 1;
            // Comment and blank lines inside a continued instruction are
            // dropped (BuildKit warns about the blank ones).
            if is_comment(l.text) || l.text.trim().is_empty() {
                continue;
            }
            let (kept, e) = trim_continuation(l.text, escape);
            ended = e;
            segs.push((joined.len(), l.no, 0));
            joined.push_str(kept);
        }
        return Some(Logical { joined, segs });
    }
    None
}
