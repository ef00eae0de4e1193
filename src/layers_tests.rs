//! One-way layering, enforced: a module may name (`crate::x`, `drconsole::x`) only modules of
//! its own layer or below. The layers, low to high:
//!
//! fault < fsutil, disk < topology, replica < dr, workspace < recovery < engine
//! < scenario, bench, generate, report < cli < gui < main
//!
//! The test reads every source file under `src/` (not the tests: `*tests.rs` files and what
//! follows a `#[cfg(test)] mod tests {` line, which may drive a module from above) and fails
//! naming each file that reaches up. `sim` is a test harness, outside the layers.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each module's layer, low to high; modules of one layer may name each other.
const LAYERS: &[&[&str]] = &[
    &["fault"],
    &["fsutil", "disk"],
    &["topology", "replica"],
    &["dr", "workspace"],
    &["recovery"],
    &["engine"],
    &["scenario", "bench", "generate", "report"],
    &["cli"],
    &["gui"],
    &["main"],
];

/// Modules the layering does not cover.
const OUTSIDE: &[&str] = &["sim", "lib"];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The crate modules `source` names through `crate::x` or `drconsole::x` (also
/// `crate::{x, y::z}`), up to an inline `#[cfg(test)] mod … {`, comments left out.
fn named_modules(source: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = source.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && is_inline_mod(w[1]))
        .unwrap_or(lines.len());
    let code: String = lines[..end]
        .iter()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "drconsole::"] {
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            match rest.strip_prefix('{') {
                Some(group) => out.extend(group_heads(group)),
                None => out.extend(ident(rest)),
            }
        }
    }
    out
}

/// `mod name {`: a module written inline (a file's test module, after `#[cfg(test)]`).
fn is_inline_mod(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("mod ") && line.ends_with('{')
}

/// The first path segment of each item of a `{a, b::c, d::{e}}` group (up to its `}`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && !c.is_whitespace() => {
                heads.extend(ident(&group[i..]));
                item_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(s: &str) -> Option<String> {
    let id: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The top-level module a source file belongs to: `src/x.rs` and `src/x/**` are `x`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.to_string_lossy().ends_with("tests.rs")
        {
            out.push(path);
        }
    }
}

/// Every `file: module (layer) names module (higher layer)` in the crate's sources.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let module = module_of(src, &file);
        if OUTSIDE.contains(&module.as_str()) {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let text = fs::read_to_string(&file).expect("read source");
        out.extend(upward(&module, own, &text, &file));
    }
    out
}

/// The names in `text` (of `module`, at layer `own`) of modules in a higher layer.
fn upward(module: &str, own: usize, text: &str, file: &Path) -> Vec<String> {
    named_modules(text)
        .into_iter()
        .filter_map(|named| {
            let theirs = layer(&named)?;
            (theirs > own).then(|| format!("{}: {module} names {named}", file.display()))
        })
        .collect()
}

#[test]
fn no_module_names_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "upward dependencies:\n{}", bad.join("\n"));
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    for file in files {
        let module = module_of(&src, &file);
        assert!(
            OUTSIDE.contains(&module.as_str()) || layer(&module).is_some(),
            "{module} ({}) has no layer",
            file.display()
        );
    }
}

#[test]
fn the_reader_finds_plain_grouped_and_binary_paths() {
    let text = "use crate::disk::Block;\nuse crate::{fsutil, topology::{Topology, Vm}};\n\
                // crate::gui in a comment\nfn f() { drconsole::cli::run(); mycrate::engine(); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::gui;\n}\n";
    let names: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(names, ["cli", "disk", "fsutil", "topology"]);
}

#[test]
fn a_lower_layer_naming_a_higher_one_is_reported() {
    let bad = upward(
        "disk",
        layer("disk").expect("disk"),
        "use crate::gui::DrApp;\nuse crate::fault;\n",
        Path::new("src/disk/image.rs"),
    );
    assert_eq!(bad, ["src/disk/image.rs: disk names gui"]);
}
