//! `completions` and `man`: shell completions and man pages generated from
//! the clap types in `args`, so they list exactly the commands and flags the
//! binary parses. The Debian package ships what these print
//! (`packaging/build-deb.sh`).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::CommandFactory;
use clap_complete::Shell;
use serde::Serialize;

use super::args::Cli;
use crate::output::{Out, say};

/// The program name the completions and pages are written for.
const BIN: &str = "fleetdeck";

/// Prints the completion script for `shell` on stdout.
pub(super) fn completions(shell: Shell) -> Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
    say(String::from_utf8_lossy(&buf).trim_end_matches('\n'));
    Ok(())
}

/// What `man --dir` wrote (`--json`).
#[derive(Serialize)]
struct Written {
    dir: PathBuf,
    pages: Vec<String>,
}

/// Prints the main page (roff) on stdout; with `dir`, writes `fleetdeck.1`
/// and one page per subcommand, at every depth, into it instead.
pub(super) fn man(out: &Out, dir: Option<&Path>) -> Result<()> {
    // `help` is a clap built-in, not a command worth a page.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    // Every page names the program and its version, subcommands' too (clap
    // would name them `add 0.1.0`).
    let source = format!("{BIN} {}", cmd.get_version().unwrap_or_default());
    let Some(dir) = dir else {
        let mut buf = Vec::new();
        page(&cmd, &source)
            .render(&mut buf)
            .map_err(|e| anyhow!("could not render the man page: {e}"))?;
        say(ascii_roff(&String::from_utf8_lossy(&buf)).trim_end_matches('\n'));
        return Ok(());
    };
    let mut pages = Vec::new();
    std::fs::create_dir_all(dir)
        .and_then(|()| write_pages(&cmd, &source, dir, &mut pages))
        .map_err(|e| anyhow!("could not write man pages into {}: {e}", dir.display()))?;
    pages.sort();
    let written = Written {
        dir: dir.to_path_buf(),
        pages,
    };
    out.emit(&written, || {
        format!(
            "wrote {} man pages into {}",
            written.pages.len(),
            written.dir.display()
        )
    })
}

fn page(cmd: &clap::Command, source: &str) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd.clone())
        .source(source)
        .manual("fleetdeck manual")
}

/// Writes the page of `cmd` and of each visible subcommand below it.
fn write_pages(
    cmd: &clap::Command,
    source: &str,
    dir: &Path,
    pages: &mut Vec<String>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, source, dir, pages)?;
    }
    let man = page(cmd, source);
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    let name = man.get_filename();
    replace_file(
        dir,
        &name,
        ascii_roff(&String::from_utf8_lossy(&buf)).as_bytes(),
    )?;
    pages.push(name);
    Ok(())
}

/// Writes `dir/name` as a new file: `text` goes to a file of its own in
/// `dir` (made new, never opened through a link), then renamed over `name`.
/// A symlink planted at `name` (DIR may be shared, e.g. a staging tree) is
/// replaced, never written through; a reader never sees half a page.
fn replace_file(dir: &Path, name: &str, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let target = dir.join(name);
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(text)
        .and_then(|()| std::fs::rename(&tmp, &target));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The help texts have a few characters beyond ASCII (`⊕`, `…`): written as
/// groff's `\[uXXXX]` escapes, the pages read the same in `man` and in a
/// bare `groff -man` or mandoc, which would otherwise take UTF-8 for Latin-1.
fn ascii_roff(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}
