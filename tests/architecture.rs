//! The layering rule of ARCHITECTURE.md, checked on the sources: each
//! module imports only from its own layer and the ones before it;
//! `cfg(target_os)` appears only where the platform decides; no library
//! file grows past about 600 lines.

use std::path::{Path, PathBuf};

/// The layers, lowest first (ARCHITECTURE.md, and the order of `mod` in
/// `src/lib.rs`).
const LAYERS: &[&str] = &[
    "sys",
    "sync",
    "time",
    "error",
    "signal",
    "role",
    "diag",
    "transport",
    "payload",
    "task",
    "exec",
    "call",
    "runtime",
    "dispatch",
    "pool",
];

/// Where `cfg(target_os = ..)` may appear (path prefixes under `src/`).
const PLATFORM_GATED: &[&str] = &["sys/", "runtime/process/", "lib.rs"];

/// The longest a library source file may be.
const MAX_LINES: usize = 620;

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// The layer a source file belongs to (`None` for `lib.rs`).
fn layer_of(rel: &str) -> Option<usize> {
    let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
    LAYERS.iter().position(|l| *l == top)
}

/// The crate's top-level modules that `line` names: `crate::x::..` paths,
/// and the first segment of each item of a `use crate::{..}` group.
fn named_layers(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A group: the first path segment of every top-level item.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || item.is_empty() {
                    item.push(c);
                }
            }
            names.push(item);
        } else {
            names.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
        .into_iter()
        .map(|n| {
            n.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The code of a file without comments (doc comments and examples
/// included) and without its test-only modules' files.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("/tests.rs") || rel.ends_with("/loom.rs")
}

#[test]
fn every_module_imports_only_from_its_own_layer_and_lower_ones() {
    let mut broken = Vec::new();
    for (rel, text) in sources() {
        let Some(own) = layer_of(&rel) else { continue };
        if is_test_file(&rel) {
            continue;
        }
        for name in named_layers(&code(&text)) {
            if let Some(other) = LAYERS.iter().position(|l| *l == name) {
                if other > own {
                    broken.push(format!("src/{rel} ({}) uses {name}", LAYERS[own]));
                }
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "imports against the layer order:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layer_list_matches_the_modules_lib_rs_declares_in_order() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    assert_eq!(declared, LAYERS);
}

#[test]
fn the_platform_decides_only_in_the_system_call_layer_and_the_process_runtime() {
    let mut gated = Vec::new();
    for (rel, text) in sources() {
        if PLATFORM_GATED.iter().any(|p| rel.starts_with(p)) {
            continue;
        }
        if code(&text).contains("cfg(target_os") || code(&text).contains("cfg(not(target_os") {
            gated.push(format!("src/{rel}"));
        }
    }
    assert!(
        gated.is_empty(),
        "cfg(target_os) outside its places: {gated:?}"
    );
}

#[test]
fn no_library_file_is_over_the_size_limit() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| !is_test_file(rel))
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(rel, text)| format!("src/{rel}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_import_scanner_sees_paths_and_groups() {
    let names = named_layers(
        "use crate::{call::{cell::JobRef, route::Route}, runtime::Lanes, Error};\n\
         let x = crate::time::now_nanos();",
    );
    assert_eq!(names, ["call", "runtime", "Error", "time"]);
}
