//! Go's `fmt` and `strconv` formatting, as far as templates need it: `%v`
//! printing of values, `Sprint`/`Sprintln`/`Sprintf`, `strconv.Quote`, and
//! float formatting (`%g` style exponents such as `1e+06`).

use std::fmt::Write as _;

use serde_json::Value;

use super::value::{sorted_entries, Val, View};

/// Go's `unicode.IsPrint`, approximated: no control characters, no spaces
/// other than U+0020, no invisible format characters, no private use.
pub(super) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xE000..=0xF8FF | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xF0000..=0x10FFFF)
}

fn push_escaped_rune(out: &mut String, r: char, quote: char, ascii_only: bool) {
    if r == quote || r == '\\' {
        out.push('\\');
        out.push(r);
        return;
    }
    if (!ascii_only || r.is_ascii()) && is_print(r) {
        out.push(r);
        return;
    }
    match r {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ if (r as u32) < 0x20 || r == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", r as u32);
        }
        _ if (r as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", r as u32);
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", r as u32);
        }
    }
}

/// Go's `strconv.Quote`.
pub(super) fn quote(s: &str) -> String {
    quote_with(s, false)
}

fn quote_with(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for r in s.chars() {
        push_escaped_rune(&mut out, r, '"', ascii_only);
    }
    out.push('"');
    out
}

fn quote_rune(r: char, ascii_only: bool) -> String {
    let mut out = String::from("'");
    push_escaped_rune(&mut out, r, '\'', ascii_only);
    out.push('\'');
    out
}

fn can_backquote(s: &str) -> bool {
    s.chars().all(|c| {
        c != '`'
            && c != '\u{feff}'
            && (c == '\t' || !(c.is_control() && c != '\u{80}' && (c as u32) < 0xa0))
    })
}

/// Decimal digits of a float and the position of the decimal point, like
/// strconv's `decimalSlice`: value = 0.d1d2d3… × 10^dp. Zero has no digits.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// `sig` significant digits (correctly rounded), or the shortest digits that
/// round-trip when `sig` is `None`. Trailing zeros are dropped.
fn digits(v: f64, sig: Option<usize>) -> Digits {
    let v = v.abs();
    if v == 0.0 {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    let s = match sig {
        None => format!("{v:e}"),
        Some(n) => format!("{:.*e}", n.max(1) - 1, v),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    if d == [b'0'] {
        d.clear();
    }
    Digits { d, dp: exp + 1 }
}

fn fmt_e(out: &mut String, dg: &Digits, prec: usize, upper: bool) {
    out.push(dg.d.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(dg.d.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if dg.d.is_empty() { 0 } else { dg.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
}

fn fmt_f(out: &mut String, dg: &Digits, prec: usize) {
    if dg.dp > 0 {
        for i in 0..dg.dp as usize {
            out.push(dg.d.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i32 {
            let j = dg.dp + i - 1;
            let c = if j >= 0 {
                dg.d.get(j as usize).copied()
            } else {
                None
            };
            out.push(c.map_or('0', |c| c as char));
        }
    }
}

/// Go's `strconv.FormatFloat(v, verb, prec, 64)` for verbs e, E, f, F, g, G;
/// `prec` `None` means the shortest representation.
pub(super) fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    let mut out = String::new();
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    match verb {
        'b' => {
            let (mant, exp) = float_parts(v);
            let _ = write!(
                out,
                "{mant}p{}{}",
                if exp - 52 >= 0 { "+" } else { "-" },
                (exp - 52).abs()
            );
        }
        'x' | 'X' => fmt_x(&mut out, v, prec, verb),
        'e' | 'E' => {
            let dg = digits(v, prec.map(|p| p + 1));
            let p = prec.unwrap_or(dg.d.len().saturating_sub(1));
            fmt_e(&mut out, &dg, p, verb == 'E');
        }
        'f' | 'F' => match prec {
            Some(p) => {
                let _ = write!(out, "{:.*}", p, v.abs());
            }
            None => {
                let dg = digits(v, None);
                fmt_f(&mut out, &dg, (dg.d.len() as i32 - dg.dp).max(0) as usize);
            }
        },
        _ => {
            let shortest = prec.is_none();
            let dg = digits(v, prec.map(|p| p.max(1)));
            let nd = dg.d.len() as i32;
            let mut p = match prec {
                None => nd,
                Some(p) => p.max(1) as i32,
            };
            let mut eprec = p;
            if eprec > nd && nd >= dg.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dg.dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&mut out, &dg, (p - 1).max(0) as usize, verb == 'G');
            } else {
                if p > dg.dp {
                    p = nd;
                }
                fmt_f(&mut out, &dg, (p - dg.dp).max(0) as usize);
            }
        }
    }
    out
}

/// The integer mantissa and binary exponent of `v`, as strconv splits it:
/// `v = mant × 2^(exp − 52)`.
fn float_parts(v: f64) -> (u64, i32) {
    let bits = v.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i32;
    let mut mant = bits & ((1 << 52) - 1);
    if exp == 0 {
        exp += 1; // denormal
    } else {
        mant |= 1 << 52;
    }
    (mant, exp - 1023)
}

/// strconv's `%x` for floats: `0x1.8p+01`.
fn fmt_x(out: &mut String, v: f64, prec: Option<usize>, verb: char) {
    let (mut mant, mut exp) = float_parts(v);
    if mant == 0 {
        exp = 0;
    }
    // Shift digits so that the leading 1 (if any) is at bit 60.
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if let Some(p) = prec.filter(|&p| p < 15) {
        let shift = (p * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let upper = verb == 'X';
    let hex = |d: u64| {
        let c = char::from_digit(d as u32, 16).unwrap_or('0');
        if upper {
            c.to_ascii_uppercase()
        } else {
            c
        }
    };
    out.push('0');
    out.push(verb);
    out.push(if (mant >> 60) & 1 == 1 { '1' } else { '0' });
    mant <<= 4;
    match prec {
        None if mant != 0 => {
            out.push('.');
            while mant != 0 {
                out.push(hex((mant >> 60) & 15));
                mant <<= 4;
            }
        }
        Some(p) if p > 0 => {
            out.push('.');
            for _ in 0..p {
                out.push(hex((mant >> 60) & 15));
                mant <<= 4;
            }
        }
        _ => {}
    }
    out.push(if upper { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
}

/// Go's encoding/json float format: `f` unless very small or large.
fn json_float(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format_float(v, 'e', None);
        // Go cleans up e-09 to e-9.
        match s.find("e-0") {
            Some(i) if s.len() == i + 4 => format!("{}e-{}", &s[..i], &s[i + 3..]),
            _ => s,
        }
    } else {
        format_float(v, 'f', None)
    }
}

/// Go's JSON string encoding with HTML escaping off (podman's `json`).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => {
                let _ = write!(out, "{i}");
            }
            (_, Some(u)) => {
                let _ = write!(out, "{u}");
            }
            _ => out.push_str(&json_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => json_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(out, e);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, e)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                json_value(out, e);
            }
            out.push('}');
        }
    }
}

/// Compact JSON like Go's `json.Marshal` with HTML escaping off. Object
/// members keep the data's order (podman's structs encode in field order).
pub(super) fn json(v: &Val<'_>) -> String {
    let mut out = String::new();
    match v {
        Val::Missing => out.push_str("null"),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Byte(b) => {
            let _ = write!(out, "{b}");
        }
        Val::Float(f) => out.push_str(&json_float(*f)),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Str(s) => json_string(&mut out, s),
        Val::Json(j, _) => json_value(&mut out, j),
        Val::Owned(j) => json_value(&mut out, j),
    }
    out
}

/// Formatting flags of one verb, as in Go's `fmt.fmt`.
#[derive(Clone, Copy, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    sharp_v: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

struct Printer {
    buf: String,
}

impl Printer {
    fn write_padding(&mut self, n: usize, zero: bool) {
        let c = if zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    /// Pads `s` to the width, in runes, like Go's `fmt.pad`.
    fn pad(&mut self, s: &str, sp: &Spec) {
        let Some(w) = sp.width else {
            self.buf.push_str(s);
            return;
        };
        let n = s.chars().count();
        if n >= w {
            self.buf.push_str(s);
        } else if sp.minus {
            self.buf.push_str(s);
            self.write_padding(w - n, false);
        } else {
            self.write_padding(w - n, sp.zero);
            self.buf.push_str(s);
        }
    }

    fn bad_verb(&mut self, verb: char, v: &View<'_>) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if v.is_nil() {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(v.type_name());
            self.buf.push('=');
            self.print(v, 'v', &Spec::default(), 0);
        }
        self.buf.push(')');
    }

    fn fmt_integer(&mut self, u: u64, negative: bool, base: u32, verb: char, sp: &Spec) {
        let upper = verb == 'X';
        let mut prec = 0usize;
        if let Some(p) = sp.prec {
            prec = p;
            if p == 0 && u == 0 {
                let mut s = *sp;
                s.zero = false;
                self.pad("", &s);
                return;
            }
        } else if sp.zero && sp.width.is_some() {
            prec = sp.width.unwrap_or(0);
            if negative || sp.plus || sp.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut digits = match base {
            2 => format!("{u:b}"),
            8 => format!("{u:o}"),
            16 if upper => format!("{u:X}"),
            16 => format!("{u:x}"),
            _ => format!("{u}"),
        };
        if digits.len() < prec {
            digits = "0".repeat(prec - digits.len()) + &digits;
        }
        let mut prefix = String::new();
        if sp.sharp {
            match base {
                2 => prefix.push_str("0b"),
                8 if !digits.starts_with('0') => prefix.push('0'),
                16 => prefix.push_str(if upper { "0X" } else { "0x" }),
                _ => {}
            }
        }
        if verb == 'O' {
            prefix.push_str("0o");
        }
        let sign = if negative {
            "-"
        } else if sp.plus {
            "+"
        } else if sp.space {
            " "
        } else {
            ""
        };
        let s = format!("{sign}{prefix}{digits}");
        let mut s2 = *sp;
        s2.zero = false;
        self.pad(&s, &s2);
    }

    fn fmt_float(&mut self, v: f64, verb: char, sp: &Spec) {
        let (verb, default_prec) = match verb {
            'v' => ('g', None),
            'g' | 'G' | 'b' | 'x' | 'X' => (verb, None),
            'e' | 'E' | 'f' | 'F' => (verb, Some(6)),
            _ => {
                self.bad_verb(verb, &View::Float(v));
                return;
            }
        };
        let prec = sp.prec.or(default_prec);
        let mut num = format_float(v, verb, prec);
        if !num.starts_with(['-', '+']) {
            num.insert(0, '+');
        }
        if sp.space && num.starts_with('+') && !sp.plus {
            num.replace_range(0..1, " ");
        }
        if num[1..].starts_with(['I', 'N']) {
            let mut s = *sp;
            s.zero = false;
            if num[1..].starts_with('N') && !sp.space && !sp.plus {
                num.remove(0);
            }
            self.pad(&num, &s);
            return;
        }
        if sp.plus || !num.starts_with('+') {
            if let Some(w) = sp.width {
                if sp.zero && w > num.len() {
                    self.buf.push_str(&num[..1]);
                    self.write_padding(w - num.len(), true);
                    self.buf.push_str(&num[1..]);
                    return;
                }
            }
            self.pad(&num, sp);
            return;
        }
        self.pad(&num[1..], sp);
    }

    fn fmt_string(&mut self, s: &str, verb: char, sp: &Spec) {
        let truncated: String;
        let s = match sp.prec {
            Some(p) if verb != 'x' && verb != 'X' => {
                truncated = s.chars().take(p).collect();
                &truncated
            }
            _ => s,
        };
        match verb {
            'v' if sp.sharp_v => self.pad(&quote(s), sp),
            'v' | 's' => self.pad(s, sp),
            'q' => {
                if sp.sharp && can_backquote(s) {
                    self.pad(&format!("`{s}`"), sp);
                } else {
                    self.pad(&quote_with(s, sp.plus), sp);
                }
            }
            'x' | 'X' => {
                let bytes = match sp.prec {
                    Some(p) => &s.as_bytes()[..p.min(s.len())],
                    None => s.as_bytes(),
                };
                let mut out = String::new();
                for (i, b) in bytes.iter().enumerate() {
                    if sp.space && i > 0 {
                        out.push(' ');
                    }
                    if sp.sharp && (sp.space || i == 0) {
                        out.push_str(if verb == 'x' { "0x" } else { "0X" });
                    }
                    if verb == 'x' {
                        let _ = write!(out, "{b:02x}");
                    } else {
                        let _ = write!(out, "{b:02X}");
                    }
                }
                self.pad(&out, sp);
            }
            _ => self.bad_verb(verb, &View::Str(s)),
        }
    }

    fn fmt_int_verb(&mut self, v: &View<'_>, u: u64, negative: bool, verb: char, sp: &Spec) {
        match verb {
            'v' | 'd' => self.fmt_integer(u, negative, 10, verb, sp),
            'b' => self.fmt_integer(u, negative, 2, verb, sp),
            'o' | 'O' => self.fmt_integer(u, negative, 8, verb, sp),
            'x' | 'X' => self.fmt_integer(u, negative, 16, verb, sp),
            'c' | 'q' | 'U' => {
                let r = if negative {
                    None
                } else {
                    u32::try_from(u).ok().and_then(char::from_u32)
                };
                let r = r.unwrap_or('\u{fffd}');
                let s = match verb {
                    'c' => r.to_string(),
                    'q' => quote_rune(r, sp.plus),
                    _ => {
                        let mut s = format!("U+{:04X}", if negative { u64::MAX } else { u });
                        if sp.sharp && is_print(r) {
                            let _ = write!(s, " '{r}'");
                        }
                        s
                    }
                };
                let mut s2 = *sp;
                s2.zero = false;
                self.pad(&s, &s2);
            }
            _ => self.bad_verb(verb, v),
        }
    }

    /// Go's `printArg`/`printValue` for one value.
    fn print(&mut self, v: &View<'_>, verb: char, sp: &Spec, depth: usize) {
        if verb == 'T' {
            let name = if v.is_nil() { "<nil>" } else { v.type_name() };
            self.pad(name, sp);
            return;
        }
        match *v {
            View::Missing | View::Null => {
                if depth > 0 && sp.sharp_v {
                    self.pad("interface {}(nil)", sp);
                } else if depth > 0 || verb == 'v' {
                    self.pad("<nil>", sp);
                } else {
                    self.bad_verb(verb, v);
                }
            }
            View::Bool(b) => match verb {
                't' | 'v' => self.pad(if b { "true" } else { "false" }, sp),
                _ => self.bad_verb(verb, v),
            },
            View::Int(i, _) => self.fmt_int_verb(v, i.unsigned_abs(), i < 0, verb, sp),
            View::Uint(u) => self.fmt_int_verb(v, u, false, verb, sp),
            View::Float(f) => self.fmt_float(f, verb, sp),
            View::Str(s) => self.fmt_string(s, verb, sp),
            View::Array(a) => {
                if sp.sharp_v {
                    self.buf.push_str(v.type_name());
                    self.buf.push('{');
                    for (i, e) in a.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.print(&View::of(e), verb, sp, depth + 1);
                    }
                    self.buf.push('}');
                    return;
                }
                self.buf.push('[');
                for (i, e) in a.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.print(&View::of(e), verb, sp, depth + 1);
                }
                self.buf.push(']');
            }
            View::Object(o) => {
                if sp.sharp_v {
                    self.buf.push_str(v.type_name());
                    self.buf.push('{');
                } else {
                    self.buf.push_str("map[");
                }
                for (i, (k, e)) in sorted_entries(o).into_iter().enumerate() {
                    if i > 0 {
                        self.buf.push_str(if sp.sharp_v { ", " } else { " " });
                    }
                    self.print(&View::Str(k), verb, sp, depth + 1);
                    self.buf.push(':');
                    self.print(&View::of(e), verb, sp, depth + 1);
                }
                self.buf.push(if sp.sharp_v { '}' } else { ']' });
            }
        }
    }
}

/// Formats one value like Go's `fmt.Sprint(v)` (the `%v` verb).
pub(super) fn sprint_value(v: &View<'_>) -> String {
    let mut p = Printer { buf: String::new() };
    p.print(v, 'v', &Spec::default(), 0);
    p.buf
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(super) fn sprint(args: &[Val<'_>]) -> String {
    let mut p = Printer { buf: String::new() };
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let v = a.view();
        let is_string = matches!(v, View::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print(&v, 'v', &Spec::default(), 0);
        prev_string = is_string;
    }
    p.buf
}

/// Go's `fmt.Sprintln`: always spaces between operands, and a newline.
pub(super) fn sprintln(args: &[Val<'_>]) -> String {
    let mut p = Printer { buf: String::new() };
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print(&a.view(), 'v', &Spec::default(), 0);
    }
    p.buf.push('\n');
    p.buf
}

/// Parses a decimal number at `i`, like Go's `parsenum`.
fn parse_num(f: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n: usize = 0;
    while i < f.len() && f[i].is_ascii_digit() {
        if n >= 1_000_000 {
            return (None, f.len()); // Go: too large, give up.
        }
        n = n * 10 + (f[i] - b'0') as usize;
        i += 1;
    }
    if i == start {
        (None, i)
    } else {
        (Some(n), i)
    }
}

/// An `*` width or precision taken from the arguments.
fn int_from_arg(args: &[Val<'_>], arg_num: &mut usize) -> Option<i64> {
    let v = args.get(*arg_num)?;
    *arg_num += 1;
    match v.view() {
        View::Int(i, _) if i.unsigned_abs() <= 1_000_000 => Some(i),
        View::Uint(u) if u <= 1_000_000 => Some(u as i64),
        _ => None,
    }
}

/// Go's `fmt.Sprintf`, including its in-band error notation
/// (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`).
pub(super) fn sprintf(format: &str, args: &[Val<'_>]) -> String {
    let mut run = Sprintf {
        format,
        args,
        p: Printer { buf: String::new() },
        i: 0,
        arg_num: 0,
        reordered: false,
        good_arg_num: true,
    };
    while run.copy_literal() {
        // Past the `%`.
        run.i += 1;
        if !run.directive() {
            break;
        }
    }
    run.extra_args();
    run.p.buf
}

/// One `Sprintf` call in progress: the state Go's `pp.doPrintf` keeps while
/// it walks the format.
struct Sprintf<'s, 'v> {
    format: &'s str,
    args: &'s [Val<'v>],
    p: Printer,
    /// Next byte of `format` to read.
    i: usize,
    /// The argument the next verb (or `*`) consumes.
    arg_num: usize,
    /// Whether an explicit `[n]` index appeared: Go then reports no
    /// `%!(EXTRA …)` for unused arguments.
    reordered: bool,
    /// False once an index of the current directive was bad or misplaced.
    good_arg_num: bool,
}

impl Sprintf<'_, '_> {
    /// Copies the text up to the next `%`; false at the end of the format.
    fn copy_literal(&mut self) -> bool {
        let f = self.format.as_bytes();
        let last = self.i;
        while self.i < f.len() && f[self.i] != b'%' {
            self.i += 1;
        }
        self.p.buf.push_str(&self.format[last..self.i]);
        self.i < f.len()
    }

    /// Formats one directive, the `%` already read: flags, argument index,
    /// width, precision, verb. False when the format ends before the verb.
    fn directive(&mut self) -> bool {
        let mut sp = self.flags();
        self.good_arg_num = true;
        let after_index = self.arg_index();
        let after_index = self.width(&mut sp, after_index);
        let after_index = self.precision(&mut sp, after_index);
        if !after_index {
            self.arg_index();
        }
        if self.i >= self.format.len() {
            self.p.buf.push_str("%!(NOVERB)");
            return false;
        }
        self.verb(sp);
        true
    }

    /// The flags `#0+- ` after the `%`.
    fn flags(&mut self) -> Spec {
        let f = self.format.as_bytes();
        let mut sp = Spec::default();
        while self.i < f.len() {
            match f[self.i] {
                b'#' => sp.sharp = true,
                b'0' => sp.zero = !sp.minus,
                b'+' => sp.plus = true,
                b'-' => {
                    sp.minus = true;
                    sp.zero = false;
                }
                b' ' => sp.space = true,
                _ => break,
            }
            self.i += 1;
        }
        sp
    }

    /// An explicit argument index `[n]`, like Go's `argNumber`: true when
    /// one was read and names an argument (or is a number out of range).
    fn arg_index(&mut self) -> bool {
        let f = self.format.as_bytes();
        if self.i >= f.len() || f[self.i] != b'[' {
            return false;
        }
        self.reordered = true;
        let Some(close) = self.format[self.i..].find(']') else {
            self.i += 1;
            self.good_arg_num = false;
            return false;
        };
        let idx = self.format[self.i + 1..self.i + close]
            .parse::<usize>()
            .ok();
        self.i += close + 1;
        match idx {
            Some(n) if n >= 1 && n - 1 < self.args.len() => {
                self.arg_num = n - 1;
                true
            }
            _ => {
                self.good_arg_num = false;
                idx.is_some()
            }
        }
    }

    /// The width: digits, or `*` to take it from the next argument (a
    /// negative one left-justifies). Returns whether an index directly
    /// precedes what follows.
    fn width(&mut self, sp: &mut Spec, after_index: bool) -> bool {
        let f = self.format.as_bytes();
        if self.i < f.len() && f[self.i] == b'*' {
            self.i += 1;
            match int_from_arg(self.args, &mut self.arg_num) {
                Some(w) => {
                    if w < 0 {
                        sp.minus = true;
                        sp.zero = false;
                    }
                    sp.width = Some(w.unsigned_abs() as usize);
                }
                None => self.p.buf.push_str("%!(BADWIDTH)"),
            }
            return false;
        }
        let (w, ni) = parse_num(f, self.i);
        sp.width = w;
        self.i = ni;
        if after_index && w.is_some() {
            // `%[1]2d`: an index must come right before the verb or a `*`.
            self.good_arg_num = false;
        }
        after_index
    }

    /// The precision after a `.`: digits (none means 0), or `*` to take it
    /// from the next argument, optionally preceded by an index. Returns
    /// whether an index directly precedes what follows.
    fn precision(&mut self, sp: &mut Spec, after_index: bool) -> bool {
        let f = self.format.as_bytes();
        if !(self.i + 1 < f.len() && f[self.i] == b'.') {
            return after_index;
        }
        self.i += 1;
        if after_index {
            self.good_arg_num = false;
        }
        let after_index = self.arg_index();
        if self.i < f.len() && f[self.i] == b'*' {
            self.i += 1;
            match int_from_arg(self.args, &mut self.arg_num) {
                Some(pr) if pr >= 0 => sp.prec = Some(pr as usize),
                _ => self.p.buf.push_str("%!(BADPREC)"),
            }
            return false;
        }
        let (pr, ni) = parse_num(f, self.i);
        sp.prec = Some(pr.unwrap_or(0));
        self.i = ni;
        after_index
    }

    /// Reads the verb and prints its argument, or Go's `%!v(BADINDEX)` /
    /// `%!v(MISSING)` in its place.
    fn verb(&mut self, mut sp: Spec) {
        let verb = self.format[self.i..].chars().next().unwrap_or('?');
        self.i += verb.len_utf8();
        match verb {
            '%' => self.p.buf.push('%'),
            _ if !self.good_arg_num => {
                let _ = write!(self.p.buf, "%!{verb}(BADINDEX)");
            }
            _ if self.arg_num >= self.args.len() => {
                let _ = write!(self.p.buf, "%!{verb}(MISSING)");
            }
            _ => {
                if verb == 'v' {
                    sp.sharp_v = sp.sharp;
                    sp.sharp = false;
                    sp.plus = false;
                }
                self.p.print(&self.args[self.arg_num].view(), verb, &sp, 0);
                self.arg_num += 1;
            }
        }
    }

    /// Go's `%!(EXTRA type=value, …)` for arguments no verb used, unless
    /// the format chose arguments by index.
    fn extra_args(&mut self) {
        if self.reordered || self.arg_num >= self.args.len() {
            return;
        }
        self.p.buf.push_str("%!(EXTRA ");
        for (k, a) in self.args[self.arg_num..].iter().enumerate() {
            if k > 0 {
                self.p.buf.push_str(", ");
            }
            let v = a.view();
            if v.is_nil() {
                self.p.buf.push_str("<nil>");
            } else {
                self.p.buf.push_str(v.type_name());
                self.p.buf.push('=');
                self.p.print(&v, 'v', &Spec::default(), 0);
            }
        }
        self.p.buf.push(')');
    }
}
