//! `--format` as podman reads it: `json`, a Go template applied to each item,
//! or `table …` (a template whose header row comes from the same template
//! run over the field names, laid out by the tabwriter).

use serde_json::{Map, Value};

use crate::exit;
use crate::output::Table;
use cairn_gotemplate::{Shape, Template};

/// The Go type podman executes a verb's `--format` template on, found by
/// the template's name (podman names it after the verb). Report rows are
/// structs whose fields are the row's keys: an unknown field is a template
/// error (exit 125) as in podman, never `<no value>`. `version` and `info`
/// render with their full types ([`Format::render_as`]).
fn shape_of(name: &str) -> Shape {
    static PS_ROW: Shape = Shape::Keys("containers.psReporter");
    static IMAGES_ROW: Shape = Shape::Keys("images.imageReporter");
    static DF_ROW: Shape = Shape::Keys("*system.dfSummary");
    match name {
        "stats" => Shape::Keys("containers.containerStats"),
        // Ranged (see `ranged`): the rows' list.
        "ps" => Shape::Slice(&PS_ROW),
        "images" => Shape::Slice(&IMAGES_ROW),
        "df" => Shape::Slice(&DF_ROW),
        // podman's inspect data is a []interface{}: the top level's type
        // in messages is `interface {}`; nested objects are maps here.
        "inspect" => Shape::Slice(&Shape::Keys("interface {}")),
        _ => Shape::Any,
    }
}

/// Whether podman runs the verb's template inside `{{range .}}…{{end}}`
/// over the list of rows (which shows in error positions).
fn ranged(name: &str) -> bool {
    matches!(name, "ps" | "images" | "df")
}

/// What `--format` asks for.
#[derive(Debug)]
pub enum Format {
    /// The command's own table.
    Default,
    /// JSON.
    Json,
    /// A Go template per item; with `table`, headers and column layout.
    Template {
        /// The parsed template (without the `table` keyword).
        template: Template,
        /// Whether it started with `table`.
        table: bool,
        /// The Go type of the data (for a ranged template, of the list).
        shape: Shape,
        /// Whether the template is wrapped in `{{range .}}` (run over a
        /// one-item list).
        ranged: bool,
    },
}

impl Format {
    /// Parses a `--format` value. `name` is the template name in errors
    /// (podman: "inspect" for inspect, "" elsewhere).
    pub fn parse(value: Option<&str>, name: &str) -> anyhow::Result<Format> {
        let Some(raw) = value else {
            return Ok(Format::Default);
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed == "table" {
            return Ok(Format::Default);
        }
        if trimmed == "json" || trimmed == "{{json .}}" {
            return Ok(Format::Json);
        }
        let (table, body) = match trimmed.strip_prefix("table") {
            Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
            _ => (false, raw),
        };
        // podman turns the two-character escapes into the characters and,
        // in a table, every space into a column break (string literals
        // included: `table {{.ID}} {{"a b"}}` has three columns).
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let body = if table { body.replace(' ', "\t") } else { body };
        let ranged = ranged(name);
        let text = if ranged {
            format!("{{{{range .}}}}{body}{{{{end}}}}")
        } else {
            body
        };
        let template = Template::parse_named(name, &text)
            .map_err(|e| exit::with_code(exit::ENGINE, e.to_string()))?;
        Ok(Format::Template {
            template,
            table,
            shape: shape_of(name),
            ranged,
        })
    }

    /// Parses `inspect --format` the way podman runs it: the template is
    /// wrapped in `{{range .}}…\n{{end}}` and named "inspect", so error
    /// positions match podman's.
    pub fn parse_inspect(value: Option<&str>) -> anyhow::Result<Format> {
        match value.map(str::trim) {
            None | Some("") | Some("json") | Some("{{json .}}") => Ok(Format::Json),
            Some(_) => {
                let raw = value.expect("checked above");
                let body = raw.replace("\\t", "\t").replace("\\n", "\n");
                let body = if body.ends_with('\n') {
                    body
                } else {
                    format!("{body}\n")
                };
                let text = format!("{{{{range .}}}}{body}{{{{end}}}}");
                let template = Template::parse_named("inspect", &text)
                    .map_err(|e| exit::with_code(exit::ENGINE, e.to_string()))?;
                Ok(Format::Template {
                    template,
                    table: false,
                    shape: shape_of("inspect"),
                    ranged: false,
                })
            }
        }
    }

    /// Runs an inspect template over all documents at once.
    pub fn render_all(&self, docs: &Value) -> anyhow::Result<String> {
        let Format::Template {
            template, shape, ..
        } = self
        else {
            unreachable!("render_all is for templates")
        };
        exec(template, docs, *shape)
    }

    /// Runs the template once over `data`, a value of podman's Go type
    /// `shape` (`version`, `info`).
    pub fn render_as(&self, data: &Value, shape: Shape) -> anyhow::Result<String> {
        let Format::Template { template, .. } = self else {
            unreachable!("render_as is for templates")
        };
        exec(template, data, shape)
    }

    /// Renders `items` with the template: one line per item; for `table`,
    /// a header row (from `headers`) first and tab-separated columns aligned.
    pub fn render(
        &self,
        items: &[Value],
        headers: &Value,
        noheading: bool,
    ) -> anyhow::Result<String> {
        let Format::Template {
            template,
            table,
            shape,
            ranged,
        } = self
        else {
            unreachable!("render is for templates")
        };
        let run = |item: &Value| {
            if *ranged {
                let items = Value::Array(vec![item.clone()]);
                exec(template, &items, *shape)
            } else {
                exec(template, item, *shape)
            }
        };
        let mut lines = Vec::new();
        if *table && !noheading {
            lines.push(run(headers)?);
        }
        for item in items {
            lines.push(run(item)?);
        }
        if !*table {
            let mut out = String::new();
            for l in lines {
                out.push_str(&l);
                if !l.ends_with('\n') {
                    out.push('\n');
                }
            }
            return Ok(out);
        }
        let mut t = Table::default();
        for l in lines {
            for row in l.trim_end_matches('\n').split('\n') {
                t.row(row.split('\t').map(str::to_owned));
            }
        }
        Ok(t.render())
    }
}

fn exec(template: &Template, data: &Value, shape: Shape) -> anyhow::Result<String> {
    template
        .execute_as(data, shape)
        .map_err(|e| exit::with_code(exit::ENGINE, e.to_string()))
}

/// Header names for the fields of `sample`, podman style: `CreatedAt` →
/// `CREATED AT`, `ID` → `ID`, with per-command overrides.
pub fn headers(sample: &Value, overrides: &[(&str, &str)]) -> Value {
    let mut m = Map::new();
    if let Some(obj) = sample.as_object() {
        for key in obj.keys() {
            let h = overrides
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, h)| (*h).to_owned())
                .unwrap_or_else(|| header_of(key));
            m.insert(key.clone(), Value::String(h));
        }
    }
    Value::Object(m)
}

fn header_of(field: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = field.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars[i - 1].is_uppercase());
        if boundary {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_names() {
        assert_eq!(header_of("CreatedAt"), "CREATED AT");
        assert_eq!(header_of("ID"), "ID");
        assert_eq!(header_of("SharedSize"), "SHARED SIZE");
        assert_eq!(header_of("Repository"), "REPOSITORY");
        assert_eq!(header_of("IDMappings"), "ID MAPPINGS");
    }

    #[test]
    fn table_and_plain_templates() {
        let rows = vec![
            json!({"ID": "abc", "Repository": "docker.io/library/debian", "Tag": "12"}),
            json!({"ID": "def", "Repository": "x", "Tag": "1"}),
        ];
        let h = headers(&rows[0], &[("ID", "IMAGE ID")]);
        let f = Format::parse(Some("table {{.ID}}\\t{{.Repository}}:{{.Tag}}"), "").unwrap();
        assert_eq!(
            f.render(&rows, &h, false).unwrap(),
            "IMAGE ID    REPOSITORY:TAG\nabc         docker.io/library/debian:12\ndef         x:1\n"
        );
        let f = Format::parse(Some("{{.ID}} {{upper .Tag}}"), "").unwrap();
        assert_eq!(f.render(&rows, &h, false).unwrap(), "abc 12\ndef 1\n");
        assert!(matches!(
            Format::parse(Some("json"), "").unwrap(),
            Format::Json
        ));
        assert!(matches!(Format::parse(None, "").unwrap(), Format::Default));
        // Captured from podman 4.3 `ps -a --format`.
        let ps = vec![json!({"ID": "68818c93017e", "Names": "c1", "Status": "Created"})];
        let h = headers(&ps[0], &[("ID", "CONTAINER ID")]);
        let f = Format::parse(
            Some(r#"table {{.ID}} {{"a b"}}|{{printf "%s %s" .Names .Status}}"#),
            "ps",
        )
        .unwrap();
        assert_eq!(
            f.render(&ps, &h, false).unwrap(),
            "CONTAINER ID  a           b|NAMES     STATUS\n68818c93017e  a           b|c1        Created\n"
        );
        let err = Format::parse(Some("{{.ID"), "").unwrap_err().to_string();
        assert!(err.contains("template:"), "{err}");
    }
}
