//! The import rules of the workspace, checked on the sources: within each
//! crate, a module refers only to modules of lower layers (so imports never
//! go in a circle), and no module refers to an item of the crate root
//! (`lib.rs` holds module declarations, re-exports and the entry points
//! only). Lines are read without their `//` comments; a reference is any
//! `crate::name` in code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One crate: its source dir and its top-level modules, lowest layer first.
/// Modules in one inner list may not refer to each other.
struct Crate {
    src: &'static str,
    layers: &'static [&'static [&'static str]],
}

const CRATES: &[Crate] = &[
    Crate {
        src: "../shared/src",
        layers: &[
            &["ids", "secret", "throttle", "signal", "record", "tls"],
            &["message", "topic", "broker"],
            &["codec", "mqtt"],
        ],
    },
    Crate {
        src: "core/src",
        layers: &[
            &["model", "stops", "notice"],
            &["history", "balance", "ctp", "forecast", "testkit"],
            &["state"],
            &["alert", "rollup", "snapshot", "resend"],
            &["projection", "fanout", "accuracy"],
        ],
    },
    Crate {
        src: "src",
        layers: &[
            // The core's modules, re-exported by the crate root.
            &[
                "accuracy",
                "alert",
                "balance",
                "ctp",
                "fanout",
                "forecast",
                "history",
                "model",
                "notice",
                "projection",
                "resend",
                "rollup",
                "snapshot",
                "state",
                "stops",
            ],
            &["metrics", "store", "journal"],
            &["error"],
            &["broker", "link"],
            &["sink"],
            &["service"],
            &["tasks", "api"],
            // Each config section builds its component, so it sits above them.
            &["config"],
            &["cli"],
        ],
    },
    Crate {
        src: "../edge-agent/src",
        layers: &[&["spool"], &["error", "source"], &["seq", "link"], &["publish", "config"]],
    },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `crate::name` references in the code of `text` (comments left out).
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn modules_import_downwards_only_and_never_the_crate_root() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for krate in CRATES {
        let src = manifest.join(krate.src);
        let layer: BTreeMap<&str, usize> =
            krate.layers.iter().enumerate().flat_map(|(i, l)| l.iter().map(move |m| (*m, i))).collect();
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        assert!(!files.is_empty(), "no sources under {}", src.display());
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let Some(&own) = layer.get(top.as_str()) else {
                problems.push(format!("{}: module `{top}` has no layer in this test", file.display()));
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap();
            for name in references(&text) {
                if name == top {
                    continue;
                }
                match layer.get(name.as_str()) {
                    Some(&l) if l < own => {}
                    Some(_) => problems
                        .push(format!("{}: `{top}` imports `{name}`, which is not below it", file.display())),
                    None => problems.push(format!(
                        "{}: `{top}` refers to `crate::{name}`, an item of the crate root",
                        file.display()
                    )),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_references_in_code_but_not_in_comments() {
    let text =
        "use crate::store::Store; // crate::api\n/// see [`crate::tasks`]\nlet x = crate::Config::default();";
    assert_eq!(references(text), ["store", "Config"]);
}
