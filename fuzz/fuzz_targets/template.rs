//! Go text/template parsing and execution (`--format`): never panics, never
//! recurses without bound, whatever the template and the data.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cairn_gotemplate as template;

fuzz_target!(|data: &[u8]| {
    // TEMPLATE \0 JSON: the data part is optional.
    let (text, json) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let value = serde_json::from_slice(json).unwrap_or_else(|_| {
        serde_json::json!({
            "Names": ["web"], "State": {"Status": "running", "Pid": 42},
            "Config": {"Env": ["HOME=/root", "A=b"], "Labels": {"k": "v"}, "Cmd": null},
            "Mounts": [{"Destination": "/data", "RW": true}], "Size": 1.5e3,
        })
    });
    if let Ok(t) = template::Template::parse_named("", text) {
        let _ = t.execute(&value);
    }
});
