//! `--change` instructions (`commit`, `import`): the Dockerfile subset
//! podman accepts, applied to an image config's `config` object.

use serde_json::{json, Map, Value};

/// The instructions `--change` takes, as podman lists them.
pub const INSTRUCTIONS: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Why a `--change` was refused (the message names the instruction and
/// what to write instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid change {change:?}: {why}")]
pub struct ChangeError {
    /// The instruction as given.
    pub change: String,
    /// What is wrong with it.
    pub why: String,
}

/// Applies one `--change` line to `config` (the image config's `config`
/// object, made if absent).
pub fn apply(config: &mut Map<String, Value>, change: &str) -> Result<(), ChangeError> {
    let err = |why: String| ChangeError {
        change: change.to_owned(),
        why,
    };
    let line = change.trim();
    let (word, rest) = line
        .split_once(|c: char| c.is_whitespace() || c == '=')
        .map_or((line, ""), |(w, r)| (w, r.trim()));
    let word = word.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&word.as_str()) {
        return Err(err(format!(
            "{word} is not an instruction --change takes (use one of {})",
            INSTRUCTIONS.join(", ")
        )));
    }
    if rest.is_empty() {
        return Err(err(format!("{word} needs an argument")));
    }
    match word.as_str() {
        "CMD" | "ENTRYPOINT" => {
            let argv = match json_array(rest) {
                Some(v) => v,
                None => vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.to_owned()],
            };
            let key = if word == "CMD" { "Cmd" } else { "Entrypoint" };
            config.insert(key.into(), json!(argv));
        }
        "ENV" | "LABEL" => env_or_labels(config, &word, rest).map_err(err)?,
        "EXPOSE" => {
            let map = object(config, "ExposedPorts").map_err(err)?;
            for p in words(rest).map_err(err)? {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let valid = port
                    .split_once('-')
                    .map_or(vec![port], |(a, b)| vec![a, b])
                    .iter()
                    .all(|n| n.parse::<u16>().is_ok());
                if !valid || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(err(format!(
                        "{p} is not a port (write PORT[/tcp|udp|sctp])"
                    )));
                }
                map.insert(format!("{port}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let list = match json_array(rest) {
                Some(v) => v,
                None => words(rest).map_err(err)?,
            };
            let map = object(config, "Volumes").map_err(err)?;
            for v in list {
                if !v.starts_with('/') {
                    return Err(err(format!("volume {v:?} is not an absolute path")));
                }
                map.insert(v, json!({}));
            }
        }
        "WORKDIR" => {
            let dir = if rest.starts_with('/') {
                rest.to_owned()
            } else {
                let base = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(dir));
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            let name = rest.trim_start_matches("SIG");
            let known = rest.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n))
                || format!("SIG{}", name.to_ascii_uppercase())
                    .parse::<nix::sys::signal::Signal>()
                    .is_ok()
                || name.to_ascii_uppercase().starts_with("RTMIN")
                || name.to_ascii_uppercase().starts_with("RTMAX");
            if !known {
                return Err(err(format!("{rest} is not a signal")));
            }
            config.insert("StopSignal".into(), json!(rest));
        }
        "ONBUILD" => {
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            if list.is_null() {
                *list = json!([]);
            }
            list.as_array_mut()
                .ok_or_else(|| err("OnBuild is not a list".into()))?
                .push(json!(rest));
        }
        _ => unreachable!("checked against INSTRUCTIONS"),
    }
    Ok(())
}

/// The object `config[key]`, made if absent or null.
fn object<'a>(
    config: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let v = config.entry(key).or_insert_with(|| json!({}));
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut()
        .ok_or_else(|| format!("{key} in the image config is not an object"))
}

/// `ENV` (replacing a variable of the same name) or `LABEL`.
fn env_or_labels(config: &mut Map<String, Value>, word: &str, rest: &str) -> Result<(), String> {
    let pairs = pairs(rest)?;
    if word == "LABEL" {
        let map = object(config, "Labels")?;
        for (k, v) in pairs {
            map.insert(k, json!(v));
        }
        return Ok(());
    }
    let env = config.entry("Env").or_insert_with(|| json!([]));
    if env.is_null() {
        *env = json!([]);
    }
    let list = env
        .as_array_mut()
        .ok_or("Env in the image config is not a list")?;
    for (k, v) in pairs {
        let prefix = format!("{k}=");
        list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
        list.push(json!(format!("{k}={v}")));
    }
    Ok(())
}

/// `["a", "b"]` as a list of strings; `None` when it is not one (then the
/// shell form applies).
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Words split at blanks, with `"…"` and `'…'` quoting and `\` escapes.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V K2="v 2"` or the legacy `K V…` form.
fn pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let w = words(s)?;
    let first_has_eq = w.first().is_some_and(|f| f.contains('='));
    if !first_has_eq {
        // `KEY value with spaces`: the rest of the line is the value.
        let (k, v) = s
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{s} has no value (write KEY=VALUE)"))?;
        let v = words(v.trim())?.join(" ");
        return Ok(vec![(k.to_owned(), v)]);
    }
    w.into_iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("{p} is not KEY=VALUE"))?;
            if k.is_empty() {
                return Err(format!("{p} has no name before ="));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut c = Map::new();
        c.insert("Env".into(), json!(["PATH=/bin", "A=old"]));
        for ch in changes {
            apply(&mut c, ch).unwrap();
        }
        Value::Object(c)
    }

    #[test]
    fn instructions_as_podman_applies_them() {
        let c = applied(&[
            r#"CMD ["/bin/echo", "hi there"]"#,
            "ENTRYPOINT /bin/sh -c 'x'",
            r#"ENV A=new B="two words""#,
            "ENV C three words",
            "EXPOSE 80 53/udp",
            r#"LABEL a=1 "b c"=2"#,
            "USER 1000:1000",
            r#"VOLUME ["/data"]"#,
            "VOLUME /v1 /v2",
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGTERM",
            "ONBUILD RUN true",
        ]);
        assert_eq!(c["Cmd"], json!(["/bin/echo", "hi there"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/sh -c 'x'"]));
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=new", "B=two words", "C=three words"])
        );
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"], json!({"a": "1", "b c": "2"}));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/v1": {}, "/v2": {}}));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["StopSignal"], json!("SIGTERM"));
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
    }

    #[test]
    fn bad_changes_say_why() {
        for (bad, why) in [
            ("RUN true", "RUN is not an instruction"),
            ("CMD", "CMD needs an argument"),
            ("EXPOSE 99999", "99999 is not a port"),
            ("STOPSIGNAL SIGNOPE", "SIGNOPE is not a signal"),
            ("VOLUME data", "not an absolute path"),
            ("ENV A=\"x", "unterminated quote"),
        ] {
            let e = apply(&mut Map::new(), bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
