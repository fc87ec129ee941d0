//! `cairn events` (and `system events`): podman's event log, read from the
//! store's file (see [`cairn_engine::events`]).
//!
//! As podman's: the events since `--since` (all of them with
//! `--stream=false`), then, streaming (the default), each new one as it is
//! written until killed or `--until` passes. Printed one line each, flushed
//! per line, so a client reading a pipe (the Dev Containers CLI waits for
//! `--filter event=start`) sees it at once.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use cairn_engine::events::{self, Event, EventType, Filters, Follower};

use crate::context::Context;
use crate::exit;
use crate::format::Format;

/// `events` flags (podman's).
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// filter output (event=, container=, image=, type=, label=K=V; the same key ORed, different keys ANDed)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// format the output using a Go template, or json
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// do not truncate the output
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub no_trunc: bool,
    /// show all events created since timestamp
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// show all events until timestamp
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// stream events and do not exit when returning the last known event
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub stream: bool,
}

/// How often a streaming `events` looks for new lines: a client waiting
/// for an event (the Dev Containers CLI waits for its container's start)
/// waits half of this on average; a look is a read and a stat.
const POLL: Duration = Duration::from_millis(10);

/// `cairn events`.
pub fn events(ctx: &Context, a: EventsArgs) -> anyhow::Result<u8> {
    let bad = |e: cairn_engine::Error| exit::with_code(exit::ENGINE, e.to_string());
    let filters = Filters::parse(&a.filter).map_err(bad)?;
    let now = events::now_ns();
    let since = a
        .since
        .as_deref()
        .map(|s| cairn_engine::time::parse_time(s, true, now))
        .transpose()
        .map_err(bad)?;
    let until = a
        .until
        .as_deref()
        .map(|s| cairn_engine::time::parse_time(s, false, now))
        .transpose()
        .map_err(bad)?;
    let format = parse_format(a.format.as_deref())?;
    let log = events::log_path(ctx.root());
    let in_range = |e: &Event| {
        let t = events::time_ns(e).unwrap_or(0);
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    let mut out = std::io::stdout().lock();
    let mut print = |e: &Event| -> anyhow::Result<bool> {
        if !(filters.matches(e) && in_range(e)) {
            return Ok(true);
        }
        let mut line = render(&format, e, !a.no_trunc)?;
        if !line.ends_with('\n') {
            line.push('\n');
        }
        // A reader that went away (`| head -1`) ends us quietly.
        Ok(out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_ok())
    };
    // Streaming without --since shows only what happens from now on
    // (podman's); with it, the past first, each event once.
    if !a.stream {
        for e in events::read_all(&log)? {
            if !print(&e)? {
                break;
            }
        }
        return Ok(0);
    }
    let mut follower = if since.is_some() {
        let (past, follower) = Follower::with_history(&log)?;
        for e in past {
            if !print(&e)? {
                return Ok(0);
            }
        }
        follower
    } else {
        Follower::from_end(&log)
    };
    loop {
        for e in follower.poll() {
            if !print(&e)? {
                return Ok(0);
            }
        }
        if until.is_some_and(|u| events::now_ns() > u) {
            return Ok(0);
        }
        std::thread::sleep(POLL);
    }
}

/// `--format`: podman takes `json` and `{{json .}}` with any spacing
/// inside the braces for the event's JSON line.
fn parse_format(value: Option<&str>) -> anyhow::Result<Format> {
    let compact: Option<String> = value.map(|v| v.chars().filter(|c| !c.is_whitespace()).collect());
    match compact.as_deref() {
        Some("json" | "{{json.}}") => Ok(Format::Json),
        _ => Format::parse(value, "events"),
    }
}

/// One event as `--format` asks: podman's line, its JSON, or a template.
fn render(format: &Format, e: &Event, truncate: bool) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(String::from_utf8_lossy(&e.to_line()).into_owned()),
        Format::Default => Ok(human_line(e, truncate)),
        Format::Template { .. } => format.render(&[template_data(e)], &Value::Null, true),
    }
}

/// podman's default line (`Event.ToHumanReadable`):
/// `TIME container STATUS ID (image=IMAGE, name=NAME, LABEL=VALUE...)`,
/// `TIME image STATUS ID NAME`, `TIME system STATUS`.
pub fn human_line(e: &Event, truncate: bool) -> String {
    let id = if truncate {
        e.id.get(..12).unwrap_or(&e.id)
    } else {
        &e.id
    };
    let time = go_time(e);
    let (kind, status) = (e.kind.as_str(), &e.status);
    match e.kind {
        EventType::Container => {
            let mut s = format!(
                "{time} {kind} {status} {id} (image={}, name={}",
                e.image, e.name
            );
            for (k, v) in e.attributes.iter().flatten() {
                s.push_str(&format!(", {k}={v}"));
            }
            s.push(')');
            s
        }
        EventType::Image => format!("{time} {kind} {status} {id} {}", e.name),
        EventType::System => format!("{time} {kind} {status}"),
        EventType::Volume => format!("{time} {kind} {status} {}", e.name),
    }
}

/// The event's time as Go prints a `time.Time` in UTC:
/// `2026-12-06 07:48:10.94020365 +0000 UTC`.
fn go_time(e: &Event) -> String {
    match events::time_ns(e) {
        Some(ns) => {
            let rfc = events::rfc3339_nano(ns);
            let body = rfc.trim_end_matches('Z').replacen('T', " ", 1);
            format!("{body} +0000 UTC")
        }
        None => e.time.clone(),
    }
}

/// What a template sees: podman's `events.Event` fields, `.Time` printed
/// as Go prints it, `.Attributes` a map (`map[]` when there are none).
fn template_data(e: &Event) -> Value {
    let attributes = e.attributes.clone().unwrap_or_default();
    json!({
        "ContainerExitCode": e.container_exit_code,
        "ID": e.id,
        "Image": e.image,
        "Name": e.name,
        "Network": "",
        "Status": e.status,
        "Time": go_time(e),
        "Type": e.kind.as_str(),
        "HealthStatus": "",
        "Attributes": attributes,
        "Details": {"ID": "", "Attributes": attributes},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines podman 4.3 printed here for the same events (`podman events
    /// --stream=false`, then `--format json`).
    #[test]
    fn podmans_default_lines() {
        let create = Event::parse(r#"{"ID":"66e74a0541feeb4e9a5bc9e8b7f27d8aa60af4f0ab938869dbd1cd725a354792","Image":"localhost/var/cache/cairn-tests/oci:latest","Name":"k1","Status":"create","Time":"2026-12-06T07:48:10.498965886Z","Type":"container","Attributes":{"a":"b","c":"d"}}"#).unwrap();
        assert_eq!(
            human_line(&create, false),
            "2026-12-06 07:48:10.498965886 +0000 UTC container create 66e74a0541feeb4e9a5bc9e8b7f27d8aa60af4f0ab938869dbd1cd725a354792 (image=localhost/var/cache/cairn-tests/oci:latest, name=k1, a=b, c=d)"
        );
        assert_eq!(
            human_line(&create, true),
            "2026-12-06 07:48:10.498965886 +0000 UTC container create 66e74a0541fe (image=localhost/var/cache/cairn-tests/oci:latest, name=k1, a=b, c=d)"
        );
        let pull = Event::parse(r#"{"Name":"localhost/var/cache/cairn-tests/oci","Status":"pull","Time":"2026-12-06T07:48:10.349280046Z","Type":"image","Attributes":null}"#).unwrap();
        assert_eq!(
            human_line(&pull, false),
            "2026-12-06 07:48:10.349280046 +0000 UTC image pull  localhost/var/cache/cairn-tests/oci"
        );
        let tag = Event::parse(r#"{"ID":"92f301c02f69b6fa2cc044eee83ad89c6147cc38a60b00711e9adfbde7e9b4e5","Name":"localhost/deb:1","Status":"tag","Time":"2026-12-06T07:47:47.284179918Z","Type":"image","Attributes":null}"#).unwrap();
        assert_eq!(
            human_line(&tag, false),
            "2026-12-06 07:47:47.284179918 +0000 UTC image tag 92f301c02f69b6fa2cc044eee83ad89c6147cc38a60b00711e9adfbde7e9b4e5 localhost/deb:1"
        );
        let died = Event::parse(r#"{"ContainerExitCode":137,"ID":"700eae5ced47d55cb8ef1915cb88c9520255a49a172a3cdf4759e5db6c466448","Image":"localhost/deb:1","Name":"c2","Status":"died","Time":"2026-12-06T07:47:50.827363414Z","Type":"container","Attributes":{}}"#).unwrap();
        assert_eq!(
            human_line(&died, false),
            "2026-12-06 07:47:50.827363414 +0000 UTC container died 700eae5ced47d55cb8ef1915cb88c9520255a49a172a3cdf4759e5db6c466448 (image=localhost/deb:1, name=c2)"
        );
        let f = Format::parse(
            Some("{{.Status}}|{{.Type}}|{{.Time}}|{{.ID}}|{{.Attributes}}|{{.ContainerExitCode}}"),
            "events",
        )
        .unwrap();
        assert_eq!(
            render(&f, &died, false).unwrap(),
            "died|container|2026-12-06 07:47:50.827363414 +0000 UTC|700eae5ced47d55cb8ef1915cb88c9520255a49a172a3cdf4759e5db6c466448|map[]|137\n"
        );
        assert_eq!(
            render(&f, &pull, false).unwrap(),
            "pull|image|2026-12-06 07:48:10.349280046 +0000 UTC||map[]|0\n"
        );
        // json and {{json .}}: the line as stored, which is podman's.
        for j in ["json", "{{json .}}", " {{ json . }} "] {
            let f = parse_format(Some(j)).unwrap();
            assert_eq!(
                render(&f, &died, true).unwrap(),
                String::from_utf8(died.to_line()).unwrap()
            );
        }
    }
}
