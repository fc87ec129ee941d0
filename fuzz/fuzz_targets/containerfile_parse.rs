//! Containerfile parsing and word expansion: never panic, whatever the
//! bytes; errors name the file and a real position.
#![no_main]

use cairn_containerfile::{expand, expand_words, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let vars = |name: &str| (name.len() % 2 == 0).then(|| format!("v {name}*"));
    match parse(s, "Containerfile") {
        Ok(cf) => {
            assert!(!cf.stages.is_empty());
            for ins in cf.args.iter().chain(cf.stages.iter().flat_map(|st| st.instructions.iter())) {
                let _ = ins.op.expand(cf.escape, &vars);
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(e.line <= s.split_inclusive('\n').count().max(1), "{e}");
            assert!(e.to_string().starts_with("Containerfile:"));
        }
    }
    for escape in ['\\', '`'] {
        let _ = expand(s, escape, &vars);
        let _ = expand_words(s, escape, &vars);
    }
});
