//! The README's commands, run as a newcomer would on a fresh clone: a copy of the tracked
//! files only (no sample photos, no outputs, no build), every `sh` block run in order from its
//! root with `bash -e`. `cargo run --release -- ARGS` runs the binary this suite built (the same
//! code; the release profile differs only in optimisation). Three kinds of line are checked,
//! not run, and say why here: `cargo test --workspace` is this suite itself (it must be the
//! command `.ci/run` runs); `cargo bench …` and `benches/compare.sh` build the bench profile and
//! run for many minutes, so their targets and script are checked to exist. Every
//! `midnit-worker …` command quoted in the text runs too when it names a real file, and is
//! checked against `--help` (the command and its flags exist) when it shows placeholders or
//! names no file (`serve`, `bench`: they run until stopped, or for minutes).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the files git tracks (as they are in the working tree), as a clone has them.
fn fresh_clone() -> tempfile::TempDir {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo())
        .output()
        .expect("git runs");
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let rel = Path::new(std::str::from_utf8(name).unwrap());
        let (from, to) = (repo().join(rel), dir.path().join(rel));
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    dir
}

/// The README's fenced `sh` blocks, each as its lines.
fn sh_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(Vec::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(block), l) if !l.is_empty() => block.push(l.to_owned()),
            _ => {}
        }
    }
    blocks
}

/// What a line of a block is.
enum Line {
    /// Run it (with `cargo run --release --` replaced by the built binary).
    Run(String),
    /// Checked, not run: why.
    Checked,
}

fn classify(line: &str, cargo_toml: &str, ci: &str) -> Line {
    let words: Vec<&str> = line.split_whitespace().collect();
    let words = match words.as_slice() {
        ["taskset", "-c", _, rest @ ..] => rest.to_vec(),
        all => all.to_vec(),
    };
    match words.as_slice() {
        ["cargo", "test", ..] => {
            assert!(
                ci.lines().any(|l| l.trim() == line.trim()),
                "`{line}` must be the command .ci/run runs"
            );
            Line::Checked
        }
        ["cargo", "bench", "--bench", name, ..] => {
            assert!(
                cargo_toml.contains(&format!("[[bench]]\nname = \"{name}\"")),
                "`{line}`: no bench target {name}"
            );
            Line::Checked
        }
        ["benches/compare.sh", ..] => {
            let script = repo().join("benches/compare.sh");
            let syntax = Command::new("bash")
                .arg("-n")
                .arg(&script)
                .status()
                .unwrap();
            assert!(syntax.success(), "benches/compare.sh does not parse");
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&script).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "benches/compare.sh is not executable");
            Line::Checked
        }
        _ => Line::Run(line.replace("cargo run --release --", "\"$WORKER_BIN\"")),
    }
}

/// Runs `script` with `bash -e` in `dir`, with a Python virtual environment of the clone's own
/// first on `PATH` (so `pip install` never touches the packages other tests import) and its
/// temporary files inside the clone (removed with it).
fn run_script(dir: &Path, script: &str) {
    let venv = dir.join(".venv");
    if !venv.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
    }
    let tmp = dir.join(".tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env("WORKER_BIN", env!("CARGO_BIN_EXE_midnit-worker"))
        .env("NO_COLOR", "1")
        .env("PATH", path)
        .env("VIRTUAL_ENV", &venv)
        .env("TMPDIR", &tmp)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "README commands failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_command_in_the_readme_runs_as_written_on_a_fresh_clone() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let cargo_toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let clone = fresh_clone();
    assert!(
        !clone.path().join("docs/examples/recipes/photos").exists(),
        "a fresh clone has no sample photos"
    );
    let mut ran = 0;
    for block in sh_blocks(&readme) {
        let script: Vec<String> = block
            .iter()
            .filter_map(|line| match classify(line, &cargo_toml, &ci) {
                Line::Run(command) => Some(command),
                Line::Checked => None,
            })
            .collect();
        if !script.is_empty() {
            run_script(clone.path(), &script.join("\n"));
            ran += script.len();
        }
    }
    assert!(ran >= 4, "only {ran} commands ran");
    // What the commands promise is there.
    for made in [
        "demo-out/card.jpg",
        "out/card.jpg",
        "docs/examples/recipes/photos/figure-1.jpg",
    ] {
        assert!(clone.path().join(made).is_file(), "{made} was not written");
    }
}

/// The `midnit-worker …` commands quoted in the README's text (inline code spans).
fn quoted_commands(readme: &str) -> Vec<String> {
    readme
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("midnit-worker "))
        // The renderer's hidden command is named to explain the process tree, not to be run.
        .filter(|span| !span.starts_with("midnit-worker __"))
        .map(|span| span.replace("\\|", "|"))
        .collect()
}

/// Whether a quoted command shows placeholders (upper-case names, options in brackets,
/// alternatives) rather than real arguments.
fn has_placeholders(command: &str) -> bool {
    command.split_whitespace().any(|w| {
        w.contains('[')
            || w.contains('|')
            || w.chars().any(|c| c.is_ascii_uppercase()) && !w.starts_with("--")
    })
}

#[test]
fn every_midnit_worker_command_the_readme_quotes_exists_with_its_flags() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let clone = fresh_clone();
    let commands = quoted_commands(&readme);
    assert!(commands.len() >= 10, "{commands:?}");
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let names_a_file = words
            .iter()
            .skip(1)
            .any(|w| !w.starts_with('-') && clone.path().join(w).is_file());
        if has_placeholders(&command) || !names_a_file {
            let subcommands: Vec<&str> = words[0].split('|').collect();
            for sub in subcommands {
                let mut args: Vec<&str> = vec![sub];
                if sub == "keys" {
                    args.push(words[1].split('|').next().unwrap());
                }
                let help = Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
                    .args(args.iter().filter(|a| !a.is_empty()))
                    .arg("--help")
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&help.stdout);
                assert!(help.status.success(), "`{command}`: no command {sub}");
                for flag in words.iter().filter(|w| w.starts_with("--")) {
                    let flag = flag.trim_matches(|c| c == '[' || c == ']');
                    assert!(text.contains(flag), "`{command}`: {sub} has no {flag}");
                }
            }
        } else {
            let script = command.replacen("midnit-worker", "\"$WORKER_BIN\"", 1);
            run_script(clone.path(), &script);
        }
    }
}
