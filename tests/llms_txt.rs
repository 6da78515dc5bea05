//! `llms.txt` and `llms-full.txt` (the API for code assistants) are made
//! from the docs in the sources; this test makes them again in memory and
//! fails when the files in the repository differ.
//!
//! After changing docs, write them anew with
//!
//! ```sh
//! KNITTING_UPDATE_LLMS=1 cargo test --test llms_txt
//! ```
//!
//! The generator reads the crate guide (`//!` in `src/lib.rs`), the README
//! and the `///` docs of every public item (the names `src/lib.rs`
//! re-exports, their inherent methods, public fields and enum variants),
//! skipping `#[doc(hidden)]` items and trait impls. It needs nothing but
//! this test: no nightly rustdoc JSON, no other tool.

use std::{collections::BTreeSet, fmt::Write as _, path::Path};

/// The sources whose public items are documented, in this order.
const SOURCES: &[&str] = &[
    "src/lib.rs",
    "src/pool/mod.rs",
    "src/pool/closures.rs",
    "src/pool/streams.rs",
    "src/pool/builder.rs",
    "src/pool/balancing.rs",
    "src/dispatch/balance.rs",
    "src/pool/processes.rs",
    "src/pool/processes/setup.rs",
    "src/pool/processes/shapes.rs",
    "src/pool/stats.rs",
    "src/runtime/limits.rs",
    "src/runtime/mod.rs",
    "src/runtime/permissions.rs",
    "src/call/mod.rs",
    "src/call/sleep.rs",
    "src/call/stream.rs",
    "src/diag/mod.rs",
    "src/error/mod.rs",
    "src/signal.rs",
    "src/task/mod.rs",
    "src/task/imported.rs",
    "src/task/bootstrap.rs",
    "src/payload/buffer.rs",
    "src/payload/envelope.rs",
    "src/role.rs",
    "src/payload/shared.rs",
    "src/payload/stream.rs",
];

/// The public modules: name and file, documented by the file's `//!`
/// docs.
const MODULES: &[(&str, &str)] = &[("encoded", "src/pool/encoded.rs")];

/// The examples listed in `llms.txt`: name, what it shows, how to run it.
const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "quickstart",
        "thread and process pools, blocking and awaited calls",
        "cargo run --example quickstart",
    ),
    (
        "timeout",
        "deadlines and defaults on both runtimes",
        "cargo run --example timeout",
    ),
    (
        "maybe_slow",
        "an `async fn` task that sometimes outlasts its caller's timeout: which calls finish, which time out",
        "cargo run --example maybe_slow",
    ),
    (
        "progress",
        "a progress bar fed by a streaming task on a worker process (`Pool::stream`, `indicatif`)",
        "cargo run --example progress",
    ),
    (
        "abort",
        "aborting and cancelling calls",
        "cargo run --example abort",
    ),
    (
        "hard_limit",
        "hard time limits for tasks that do not listen",
        "cargo run --example hard_limit",
    ),
    (
        "import_host",
        "a worker that is another program (`ImportedTask`, with `import_worker`)",
        "cargo build --example import_worker && cargo run --example import_host",
    ),
    (
        "shared_buffer",
        "memory shared by the host and its workers (`SharedBuffer`, atomics and raw copies)",
        "cargo run --example shared_buffer",
    ),
    (
        "sandbox_bwrap",
        "process workers in a bubblewrap sandbox",
        "cargo run --example sandbox_bwrap",
    ),
    (
        "axum_service",
        "an axum HTTP service whose handlers call a process pool",
        "cargo run --example axum_service -- --self-test",
    ),
];

/// What a code assistant most needs to get right, each said in the docs
/// linked from it.
const RULES: &[&str] = &[
    "Mark a free, non-generic function (plain or `async fn`) `#[knitting::task]`; call it as `pool.call(task_fn, args)`, where `args` is `()` for no parameter, the value for one, a tuple for several.",
    "On a thread pool, `pool.run(move || work(x))` runs any `FnOnce() -> T + Send + 'static` and returns the same `Call<T>` (`pool.run_with_signal(|signal| ..)` to see aborts); it does not compile on process pools or `Pool<AnyRuntime>`: use a `#[knitting::task]` there.",
    "`pool.call` returns a `Call<T>`: `.wait()` blocks, `.await` works in any executor, dropping it cancels the call, `.detach()` lets it run.",
    "Thread pools: `Pool::builder().threads(n).build()?` gives a `Pool` (`Pool<Threads>`). Process pools (Linux; elsewhere the build fails): `Pool::builder().processes(n).build()?` gives a `ProcessPool` (`Pool<Processes>`). Either converts `into()` a `Pool<AnyRuntime>` to pick the runtime at run time.",
    "A program that builds process pools calls `knitting::init()` first thing in a plain `fn main`; test files use `knitting::init_before_main!();` once at the top level.",
    "With tokio, do not put `#[tokio::main]` on `main`: call `knitting::init()` in a plain `main`, then call an `async fn` marked `#[tokio::main]` (or build the runtime by hand).",
    "Process tasks' arguments and results must be serde types; pass bytes as `serde_bytes::ByteBuf` or `#[serde(with = \"serde_bytes\")] Vec<u8>` (a plain `Vec<u8>` is about 50x slower).",
    "A `Pool` is a cheap handle: `clone()` it to share (for example as axum router state, no `Arc`); the pool shuts down when its last handle is dropped.",
    "A task returning `Result<T, E>` makes the call yield `T`; `Err(e)` arrives as an `Error` of kind `ErrorKind::Task` with `e`'s message and source chain. Panics arrive as errors too.",
    "A task may take a last parameter `&knitting::Signal` (not a call argument) and poll `signal.aborted()` to stop early on `abort()`, `cancel()` or a deadline.",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// One documented public item.
struct Item {
    /// `Pool`, `Pool::call`, `ErrorKind::Closed`, ...
    path: String,
    /// The declaration, without its body.
    signature: String,
    docs: Vec<String>,
    linux_only: bool,
}

/// The names `src/lib.rs` makes public (`pub use`, skipping
/// `#[doc(hidden)]` ones), plus its own public items; and those of them
/// that exist on Linux only (re-exported under `cfg(target_os = "linux")`).
fn public_names(lib: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names: BTreeSet<String> = ["task", "init", "init_before_main"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut linux_only = BTreeSet::new();
    let (mut hidden, mut linux) = (false, false);
    let mut statement: Option<(String, bool)> = None;
    for line in lib.lines() {
        let t = line.trim();
        if let Some((s, _)) = statement.as_mut() {
            s.push(' ');
            s.push_str(t);
        } else if line.starts_with("pub use ") && !hidden {
            statement = Some((t.to_owned(), linux));
        }
        let attribute = t.starts_with("#[");
        hidden = t == "#[doc(hidden)]" || (hidden && attribute);
        linux = t == "#[cfg(target_os = \"linux\")]" || (linux && attribute);
        if statement.as_ref().is_some_and(|(s, _)| s.ends_with(';')) {
            let (s, on_linux) = statement.take().unwrap();
            for token in s["pub use ".len()..].split(|c: char| "{},; ".contains(c)) {
                let name = token.rsplit("::").next().unwrap_or("");
                if !name.is_empty() && name != "self" {
                    names.insert(name.to_owned());
                    if on_linux {
                        linux_only.insert(name.to_owned());
                    }
                }
            }
        }
    }
    (names, linux_only)
}

/// What the lines at indentation 4 belong to.
#[derive(Clone, PartialEq)]
enum Scope {
    /// Not documented (private, hidden, trait impl, a module).
    Skip,
    /// An inherent impl, a struct, an enum or a trait of a public type.
    Of(String, Kind),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Impl,
    Struct,
    Enum,
    Trait,
}

/// The name an `impl` block is for (`None` for trait impls).
fn impl_target(line: &str) -> Option<String> {
    let mut rest = line.trim_start_matches("impl").trim_start();
    if rest.starts_with('<') {
        // Skip the generic parameters, which may nest.
        let mut depth = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i + 1;
                break;
            }
        }
        rest = rest[end..].trim_start();
    }
    if rest.contains(" for ") {
        return None;
    }
    Some(
        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()?
            .to_owned(),
    )
}

/// The name an item line declares (`pub fn call<T>(` gives `call`).
fn declared_name(line: &str) -> Option<String> {
    let t = line.trim();
    let t = t.strip_prefix("pub ").unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    for keyword in [
        "fn ",
        "struct ",
        "enum ",
        "trait ",
        "type ",
        "macro_rules! ",
    ] {
        if let Some(rest) = t.strip_prefix(keyword) {
            return rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .map(String::from);
        }
    }
    if let Some(rest) = t.strip_prefix("use ") {
        return rest
            .trim_end_matches(';')
            .rsplit("::")
            .next()
            .map(String::from);
    }
    None
}

/// The declaration that starts at `lines[at]`, up to its body or its end
/// (for a field or a variant, `one_line`: its line).
fn signature(lines: &[&str], at: usize, one_line: bool) -> String {
    let mut out = String::new();
    for line in &lines[at..] {
        let t = line.trim();
        let body = one_line || t.ends_with('{') || t.ends_with(';') || t.ends_with("=>");
        out.push_str(if out.is_empty() { "" } else { " " });
        out.push_str(t.trim_end_matches(['{', ';']).trim_end());
        if body || t.starts_with("macro_rules!") {
            break;
        }
    }
    let out = out.replace("( ", "(").replace(" )", ")").replace(",)", ")");
    out.trim_end().trim_end_matches(',').to_owned()
}

/// The text of doc lines: `/// ` and `//! ` stripped, the hidden lines of
/// code examples (`# ...`) left out.
fn doc_text(raw: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in raw {
        let t = line.trim_start();
        if t.starts_with("```") {
            in_code = !in_code;
            // Examples are Rust unless the fence says otherwise.
            let info = t.trim_start_matches('`');
            let rust = info.is_empty()
                || [
                    "no_run",
                    "compile_fail",
                    "should_panic",
                    "ignore",
                    "edition",
                ]
                .iter()
                .any(|w| info.starts_with(w));
            out.push(if in_code && rust {
                "```rust".into()
            } else {
                line.clone()
            });
            continue;
        }
        if in_code && (t == "#" || t.starts_with("# ")) {
            continue;
        }
        out.push(line.clone());
    }
    out
}

/// Strips a doc comment marker (`///` or `//!`) and the space after it.
fn strip_marker<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(marker)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// Every documented public item of `source`.
fn items_of(source: &str, public: &BTreeSet<String>, linux_only: &BTreeSet<String>) -> Vec<Item> {
    let lines: Vec<&str> = source.lines().collect();
    let mut items = Vec::new();
    let mut docs: Vec<String> = Vec::new();
    let mut hidden = false;
    let mut linux = false;
    let mut exported_macro = false;
    let mut scope = Scope::Skip;
    // Inside an attribute that spans lines (`#[diagnostic::on_unimplemented(`).
    let mut in_attribute = false;
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if in_attribute {
            in_attribute = !(indent == 0 && t.ends_with(']'));
            continue;
        }
        if let Some(text) = strip_marker(line, "///") {
            docs.push(text.to_owned());
            continue;
        }
        if t.starts_with("#[") || t.starts_with("#![") {
            in_attribute = indent == 0 && !t.ends_with(']');
            hidden |= t.starts_with("#[doc(hidden)]");
            linux |= t.contains("target_os = \"linux\"") && t.starts_with("#[cfg(");
            exported_macro |= t == "#[macro_export]";
            continue;
        }
        if indent == 0 && t == "}" {
            scope = Scope::Skip;
        }
        if indent == 0 && !t.is_empty() {
            let name = declared_name(t);
            let is_pub = t.starts_with("pub ") && !t.starts_with("pub(");
            let public_name = name.as_ref().filter(|n| public.contains(*n)).cloned();
            if t.starts_with("impl") {
                scope = match impl_target(t) {
                    Some(target) if public.contains(&target) && t.ends_with('{') => {
                        Scope::Of(target, Kind::Impl)
                    }
                    _ => Scope::Skip,
                };
            } else if let (Some(name), false) = (public_name, hidden) {
                let exported = is_pub || (exported_macro && t.starts_with("macro_rules!"));
                if exported && !docs.is_empty() {
                    let kind = if t.contains("struct ") {
                        Some(Kind::Struct)
                    } else if t.contains("enum ") {
                        Some(Kind::Enum)
                    } else if t.contains("trait ") {
                        Some(Kind::Trait)
                    } else {
                        None
                    };
                    if let (Some(kind), true) = (kind, t.ends_with('{')) {
                        scope = Scope::Of(name.clone(), kind);
                    }
                    items.push(Item {
                        linux_only: linux || linux_only.contains(&name),
                        path: name,
                        signature: signature(&lines, i, false),
                        docs: doc_text(&docs),
                    });
                }
            }
        } else if indent == 4 && !t.is_empty() && !hidden && !docs.is_empty() {
            if let Scope::Of(owner, kind) = &scope {
                let member = match kind {
                    Kind::Impl => t.starts_with("pub fn ") || t.starts_with("pub const fn "),
                    Kind::Struct => t.starts_with("pub ") && t.contains(':'),
                    Kind::Enum => t.starts_with(|c: char| c.is_ascii_uppercase()),
                    Kind::Trait => t.starts_with("fn ") || t.starts_with("type "),
                };
                let name = match kind {
                    Kind::Struct => t
                        .trim_start_matches("pub ")
                        .split(':')
                        .next()
                        .map(String::from),
                    Kind::Enum => t
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .map(String::from),
                    _ => declared_name(t),
                };
                if let (true, Some(name)) = (member, name) {
                    let one_line = matches!(kind, Kind::Struct | Kind::Enum);
                    items.push(Item {
                        path: format!("{owner}::{name}"),
                        signature: signature(&lines, i, one_line),
                        docs: doc_text(&docs),
                        linux_only: linux || linux_only.contains(owner),
                    });
                }
            }
        }
        docs.clear();
        hidden = false;
        linux = false;
        exported_macro = false;
    }
    items
}

/// Markdown headings in `text` moved `levels` deeper (code left alone).
fn demote(text: &[String], levels: usize) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in text {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.push_str(&"#".repeat(levels));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The crate guide: the `//!` lines at the top of `src/lib.rs`.
fn guide(lib: &str) -> Vec<String> {
    let raw: Vec<String> = lib
        .lines()
        .map_while(|l| strip_marker(l, "//!"))
        .map(String::from)
        .collect();
    doc_text(&raw)
}

/// The first sentence of an item's docs (a `. ` inside code does not end
/// it).
fn summary(docs: &[String]) -> String {
    let paragraph: Vec<&str> = docs
        .iter()
        .map(|l| l.trim())
        .take_while(|l| !l.is_empty() && !l.starts_with("```"))
        .collect();
    let text = paragraph.join(" ");
    let mut in_code = false;
    for (i, c) in text.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '.' if !in_code && text[i + 1..].starts_with(' ') => return text[..=i].to_owned(),
            _ => {}
        }
    }
    text
}

/// How an item reads in the one-line API list: members named with their
/// owner (`Pool::call<T: Task>(&self, ...)`, `ErrorKind::Closed`).
fn short_signature(item: &Item) -> String {
    let Some((owner, name)) = item.path.split_once("::") else {
        return item.signature.clone();
    };
    let mut rest = item.signature.as_str();
    for prefix in ["pub ", "const ", "fn ", "type "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix(name).unwrap_or(rest);
    format!("{owner}::{name}{rest}")
}

fn manifest_field(manifest: &str, key: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("Cargo.toml has no {key}"))
}

/// `(llms.txt, llms-full.txt)`, as made from the sources now.
fn generate() -> (String, String) {
    let lib = read("src/lib.rs");
    let manifest = read("Cargo.toml");
    let version = manifest_field(&manifest, "version");
    let description = manifest_field(&manifest, "description");
    let (public, linux_only) = public_names(&lib);
    let mut items: Vec<Item> = SOURCES
        .iter()
        .flat_map(|path| items_of(&read(path), &public, &linux_only))
        .collect();
    items.extend(MODULES.iter().map(|(name, path)| Item {
        path: (*name).to_owned(),
        signature: format!("pub mod {name}"),
        docs: guide(&read(path)),
        linux_only: false,
    }));
    for name in &public {
        assert!(
            items.iter().any(|item| &item.path == name),
            "the public item `{name}` has no docs the generator found; document it or teach \
             tests/llms_txt.rs where it is"
        );
    }
    let guide = guide(&lib);
    let note = "Made from the crate's docs by `tests/llms_txt.rs`; do not edit by hand \
                (`KNITTING_UPDATE_LLMS=1 cargo test --test llms_txt` writes it anew).";

    let mut short = String::new();
    writeln!(short, "# knitting {version}\n\n> {description}\n\n{note}\n").unwrap();
    // The guide's opening, up to its first section, then its first example.
    let intro: Vec<String> = guide
        .iter()
        .take_while(|l| !l.starts_with('#'))
        .cloned()
        .collect();
    short.push_str(&demote(&intro, 1));
    let mut first_example = Vec::new();
    for line in guide.iter().skip_while(|l| !l.starts_with("```")) {
        first_example.push(line.clone());
        if first_example.len() > 1 && line.starts_with("```") {
            break;
        }
    }
    short.push_str("## Example\n\n");
    short.push_str(&demote(&first_example, 1));
    short.push_str("\n## Rules\n\n");
    for rule in RULES {
        writeln!(short, "- {rule}").unwrap();
    }
    short.push_str("\n## API\n\n");
    for item in &items {
        let linux = if item.linux_only { " (Linux only)" } else { "" };
        writeln!(
            short,
            "- `{}`{linux}: {}",
            short_signature(item),
            summary(&item.docs)
        )
        .unwrap();
    }
    short.push_str("\n## Docs\n\n");
    short.push_str("- [llms-full.txt](llms-full.txt): the README, the guide and every public item's docs with examples\n");
    short.push_str("- [README.md](README.md): overview, benchmarks, how to run the tests\n");
    short.push_str("\n## Examples\n\n");
    for (name, what, run) in EXAMPLES {
        writeln!(
            short,
            "- [examples/{name}.rs](examples/{name}.rs): {what} (`{run}`)"
        )
        .unwrap();
    }

    let mut full = String::new();
    writeln!(full, "# knitting {version}\n\n> {description}\n\n{note}\n").unwrap();
    full.push_str("## README\n\n");
    let readme: Vec<String> = read("README.md")
        .lines()
        .skip(1) // its title, given above
        .map(String::from)
        .collect();
    full.push_str(demote(&readme, 1).trim_start());
    full.push_str("\n## Guide\n\n");
    full.push_str(&demote(&guide, 2));
    full.push_str("\n## API\n");
    for item in &items {
        let level = if item.path.contains("::") {
            "####"
        } else {
            "###"
        };
        let linux = if item.linux_only { " (Linux only)" } else { "" };
        writeln!(full, "\n{level} `{}`{linux}\n", item.path).unwrap();
        writeln!(full, "```rust\n{}\n```\n", item.signature).unwrap();
        full.push_str(&demote(&item.docs, 4));
    }
    (short, full)
}

#[test]
fn llms_txt_and_llms_full_txt_are_up_to_date() {
    let (short, full) = generate();
    let update = std::env::var_os("KNITTING_UPDATE_LLMS").is_some();
    let mut stale = Vec::new();
    for (name, made) in [("llms.txt", &short), ("llms-full.txt", &full)] {
        let path = root().join(name);
        if update {
            std::fs::write(&path, made).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if &on_disk != made {
            let line = on_disk
                .lines()
                .zip(made.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| on_disk.lines().count().min(made.lines().count()));
            stale.push(format!(
                "{name} differs from the docs from line {} on:\n  file: {:?}\n  docs: {:?}",
                line + 1,
                on_disk.lines().nth(line).unwrap_or("<end>"),
                made.lines().nth(line).unwrap_or("<end>"),
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nwrite them anew with `KNITTING_UPDATE_LLMS=1 cargo test --test llms_txt`",
        stale.join("\n")
    );
}

#[test]
fn the_generator_finds_the_main_items_and_their_examples() {
    let (short, full) = generate();
    for path in [
        "Pool::call",
        "Pool::shutdown_timeout",
        "ProcessPoolBuilder::command_prefix",
        "AnyRuntime",
        "Call::wait",
        "ErrorKind::Closed",
        "PoolStats::lanes",
        "Task::info",
        "init_before_main",
    ] {
        assert!(
            full.contains(&format!("`{path}`")),
            "llms-full.txt has no `{path}`"
        );
    }
    assert!(!full.contains("__private"), "hidden items stay out");
    assert!(
        !full.contains("shared_memory_objects_of"),
        "hidden items stay out"
    );
    assert!(
        full.contains("Process workers need Linux"),
        "what process pools need is said"
    );
    assert!(
        short.contains("`Pool<AnyRuntime>`"),
        "the short file says how to pick the runtime"
    );
    assert!(
        full.contains("```rust\n#[knitting::task]"),
        "examples come along"
    );
}
