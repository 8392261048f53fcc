//! Turns the built-in policy and frequency table (policy/*.toml) into JSON for the
//! crate to embed: the same data through the same serde types, but serde_json reads
//! it in a fraction of the time the TOML parser takes, and every run of sandvmm reads
//! it at start-up. A built-in file that is not valid TOML fails the build here.

use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (source, json) in [
        ("policy/x86_64.toml", "x86_64.json"),
        ("policy/x86_64-frequency.toml", "x86_64-frequency.json"),
    ] {
        println!("cargo:rerun-if-changed={source}");
        let text = std::fs::read_to_string(source).expect("the built-in policy files exist");
        let value: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{source} is not valid TOML: {e}"));
        let text = serde_json::to_string(&value).expect("TOML values convert to JSON");
        std::fs::write(Path::new(&out).join(json), text).expect("OUT_DIR is writable");
    }
}
