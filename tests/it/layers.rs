//! Every import points down the job's way: `src/lib.rs` declares the modules in that order, and
//! no module's code names (`crate::…`) a module declared after it. Test code may reach further
//! (a test of the renderer may build its photos with `tools::samples`) and is not checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules `lib.rs` declares, in order.
fn layers(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

/// The top-level modules `code` names through `crate::`, in `use` lines, in `use` groups
/// (`crate::{a::X, b}` names `a` and `b`) and in paths, outside comments and test modules.
fn named(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: the first segment after `{` and after each comma
            // at depth one.
            let mut depth = 1;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => start = true,
                    c if start && !c.is_whitespace() => {
                        found.insert(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `file: module -> later module` the sources contain.
fn violations(src: &Path) -> Vec<String> {
    let order = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let name = rel.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        // `main.rs` is the binary, above every module; `lib.rs` declares them.
        let Some(own) = rank(top) else { continue };
        let code = std::fs::read_to_string(&file).unwrap();
        for used in named(&code) {
            if rank(&used).is_some_and(|r| r > own) {
                found.push(format!("{}: {top} -> {used}", rel.display()));
            }
        }
    }
    found
}

#[test]
fn no_module_names_one_that_comes_later_in_the_jobs_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(order.len() >= 10, "lib.rs declares the layers: {order:?}");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the job's way:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_an_upward_import_in_any_form() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "pub mod low;\n\npub mod high;\n").unwrap();
    std::fs::create_dir(src.join("low")).unwrap();
    std::fs::write(src.join("high.rs"), "use crate::low::Thing;\n").unwrap();
    let cases = [
        "use crate::high::Thing;\n",
        "use crate::{\n    low::A,\n    high::{B, C},\n};\n",
        "fn f() { crate::high::go() }\n",
    ];
    for case in cases {
        std::fs::write(src.join("low/mod.rs"), case).unwrap();
        assert_eq!(violations(src), ["low/mod.rs: low -> high"], "{case}");
    }
    // Comments and test modules may name anything.
    let allowed =
        "// see crate::high\nfn f() {}\n#[cfg(test)]\nmod tests { use crate::high::X; }\n";
    std::fs::write(src.join("low/mod.rs"), allowed).unwrap();
    assert!(violations(src).is_empty());
}
