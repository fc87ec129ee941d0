//! Splitting an instruction's text into words and flags, the way BuildKit's
//! parser does before any expansion (quotes and escapes kept as written).

/// A word and the byte offset where it starts in the joined line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Word {
    pub(super) text: String,
    pub(super) off: usize,
}

/// The blanks BuildKit splits instruction arguments on (`[\t\v\f\r ]`).
pub(super) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Words separated by blanks, nothing else special.
pub(super) fn split_ws(text: &str, off: usize) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (is_blank(c), start) {
            (true, Some(s)) => {
                out.push(Word {
                    text: text[s..i].to_string(),
                    off: off + s,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

#[derive(PartialEq, Clone, Copy)]
enum Phase {
    Spaces,
    InWord,
    InQuote(char),
}

/// Words for ENV, LABEL and ARG: split on unquoted, unescaped whitespace;
/// quotes and escapes stay in the words (expansion removes them later).
pub(super) fn parse_words(text: &str, off: usize, escape: char) -> Vec<Word> {
    let cs: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut k = 0;
    while k < cs.len() {
        let (pos, ch) = cs[k];
        k += 1;
        match phase {
            Phase::Spaces if ch.is_whitespace() => continue,
            Phase::Spaces => {
                phase = Phase::InWord;
                start = pos;
            }
            _ => {}
        }
        match phase {
            Phase::InWord if ch.is_whitespace() => {
                if blank_ok || !buf.is_empty() {
                    out.push(Word {
                        text: std::mem::take(&mut buf),
                        off: off + start,
                    });
                }
                blank_ok = false;
                phase = Phase::Spaces;
                continue;
            }
            Phase::InWord => {
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::InQuote(ch);
                }
                if ch == escape {
                    let Some(&(_, next)) = cs.get(k) else {
                        continue;
                    };
                    buf.push(ch);
                    buf.push(next);
                    k += 1;
                    continue;
                }
            }
            Phase::InQuote(q) => {
                if ch == q {
                    phase = Phase::InWord;
                } else if ch == escape && q != '\'' {
                    let Some(&(_, next)) = cs.get(k) else {
                        phase = Phase::InWord;
                        continue;
                    };
                    buf.push(ch);
                    buf.push(next);
                    k += 1;
                    continue;
                }
            }
            Phase::Spaces => {}
        }
        buf.push(ch);
    }
    if phase != Phase::Spaces && (blank_ok || !buf.is_empty()) {
        out.push(Word {
            text: buf,
            off: off + start,
        });
    }
    out
}

/// The leading `--flag[=value]` words of `line[start..]` (quotes removed,
/// escapes applied, a lone `--` ends them) and the offset of the arguments
/// after them (BuildKit's `extractBuilderFlags`).
pub(super) fn extract_flags(line: &str, start: usize, escape: char) -> (Vec<Word>, usize) {
    let s = &line[start..];
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let mut words = Vec::new();
    let mut buf = String::new();
    let mut blank_ok = false;
    let mut word_off = 0;
    let mut phase = Phase::Spaces;
    let mut k = 0;
    let args = loop {
        let Some(&(pos, mut ch)) = cs.get(k) else {
            if phase != Phase::Spaces && buf != "--" && (blank_ok || !buf.is_empty()) {
                words.push(Word {
                    text: buf,
                    off: start + word_off,
                });
            }
            break s.len();
        };
        k += 1;
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if ch != '-' || cs.get(k).map(|c| c.1) != Some('-') {
                    break pos;
                }
                phase = Phase::InWord;
                word_off = pos;
                buf.push(ch);
            }
            Phase::InWord => {
                if ch.is_whitespace() {
                    if buf == "--" {
                        break pos;
                    }
                    if blank_ok || !buf.is_empty() {
                        words.push(Word {
                            text: std::mem::take(&mut buf),
                            off: start + word_off,
                        });
                    }
                    buf.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::InQuote(ch);
                    continue;
                }
                if ch == escape {
                    let Some(&(_, next)) = cs.get(k) else {
                        continue;
                    };
                    k += 1;
                    ch = next;
                }
                buf.push(ch);
            }
            Phase::InQuote(q) => {
                if ch == q {
                    phase = Phase::InWord;
                    continue;
                }
                if ch == escape {
                    let Some(&(_, next)) = cs.get(k) else {
                        phase = Phase::InWord;
                        continue;
                    };
                    k += 1;
                    ch = next;
                }
                buf.push(ch);
            }
        }
    };
    let rest = &line[start + args..];
    (words, start + args + (rest.len() - rest.trim_start().len()))
}

/// Levenshtein distance (for "did you mean").
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A Go `time.ParseDuration` string in nanoseconds (`300ms`, `1.5h`,
/// `2h45m`, `-1s`); `None` when it is not one or overflows.
pub(super) fn go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let l = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(l)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        if int.len() > 20 {
            return None;
        }
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut v = whole.checked_mul(scale)?;
        // Fraction digits past 20 cannot change a nanosecond count.
        let frac = &frac[..frac.len().min(20)];
        if !frac.is_empty() {
            let f: i128 = frac.parse().ok()?;
            v =
                v.checked_add(f.checked_mul(scale)? / 10i128.pow(u32::try_from(frac.len()).ok()?))?;
        }
        total = total.checked_add(v)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
        rest = after;
    }
    Some(if neg { -total } else { total })
}
