//! What the Debian package ships and what an operator's tools read (issue
//! 17): shell completions and man pages generated from the command line's
//! own definitions, `--version` naming the commit, and logs that journald
//! and `grep` read well (no colour codes off a terminal, one line per event,
//! fields as key=value).
//!
//! The roff checks need groff (Debian's groff-base, which `.ci/run`
//! installs): without it they fail under CI (`$CI` set) and are skipped,
//! saying so, elsewhere.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use fleetdeck_store::document::SiteRecord;
use fleetdeck_store::{Replica, SiteId};

/// The build script itself, so how it picks the commit is tested on trees
/// made here (its `main` runs only under cargo).
#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

/// Main commands every completion script and the man page must offer.
const COMMANDS: &[&str] = &[
    "init",
    "site",
    "node",
    "config",
    "status",
    "alerts",
    "sync",
    "serve",
    "bundle",
    "rollout",
    "console",
    "demo",
    "completions",
    "man",
];

fn fleetdeck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env_remove("FLEETDECK_DATA")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run fleetdeck")
}

fn stdout_of(args: &[&str]) -> String {
    let out = fleetdeck(args);
    assert!(
        out.status.success(),
        "fleetdeck {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Whether `tool` runs here; under CI a missing tool fails the test.
fn have(tool: &str, why: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing and CI is set: {why}"
        );
        eprintln!("skipped: {tool} is not installed ({why})");
    }
    found
}

#[test]
fn completions_for_every_shell_offer_the_main_commands() {
    // How each generator writes "a subcommand of fleetdeck named X".
    fn entry(shell: &str, command: &str) -> String {
        match shell {
            "bash" => format!("fleetdeck,{command})"),
            "zsh" => format!("({command})"),
            "fish" => format!("-a \"{command}\""),
            _ => format!("'fleetdeck;{command}'"), // elvish, powershell
        }
    }
    let shells = ["bash", "zsh", "fish", "elvish", "powershell"];
    for shell in shells {
        let script = stdout_of(&["completions", shell]);
        for command in COMMANDS {
            assert!(
                script.contains(&entry(shell, command)),
                "{shell} completions do not offer `{command}`"
            );
        }
    }
    // Deeper levels too: `fleetdeck site add --from` completes a file.
    let fish = stdout_of(&["completions", "fish"]);
    assert!(
        fish.lines()
            .any(|l| l.contains("__fish_seen_subcommand_from add") && l.contains("-l from")),
        "fish completions miss `site add --from`"
    );
}

#[test]
fn the_bash_completion_script_parses() {
    if !have("bash", "the bash completion is checked with bash -n") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("fleetdeck.bash");
    std::fs::write(&file, stdout_of(&["completions", "bash"])).expect("write");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("run bash");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = fleetdeck(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

/// groff's rendering of a page as text, after checking it renders with no
/// warning at all (`-ww`).
fn groff(page: &Path) -> String {
    let out = Command::new("groff")
        // -P -cbou: plain text, no overstriking for bold or underline.
        .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
        .arg(page)
        .output()
        .expect("run groff");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "{}: {warnings}",
        page.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_man_page_lists_the_commands_and_is_valid_roff() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH fleetdeck 1"), "{page}");
    assert!(page.is_ascii(), "non-ASCII left in the page");
    for command in COMMANDS {
        assert!(
            page.contains(&format!("fleetdeck\\-{command}(1)")),
            "the man page does not name `{command}`"
        );
    }
    if !have("groff", "the man pages are checked with groff -man -ww") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("fleetdeck.1");
    std::fs::write(&file, &page).expect("write");
    let text = groff(&file);
    assert!(text.contains("SUBCOMMANDS"), "{text}");
    assert!(text.contains("--data <DIR>"), "{text}");
}

#[test]
fn man_dir_writes_a_valid_page_for_every_command_at_every_depth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = stdout_of(&[
        "--json",
        "man",
        "--dir",
        dir.path().to_str().expect("UTF-8 temp path"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("--json prints JSON");
    let pages: Vec<&str> = v["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for page in [
        "fleetdeck.1",
        "fleetdeck-site.1",
        "fleetdeck-site-add.1",
        "fleetdeck-config-set.1",
        "fleetdeck-node-run.1",
        "fleetdeck-completions.1",
    ] {
        assert!(pages.contains(&page), "{page} missing from {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, pages, "--json names exactly the files written");
    if !have("groff", "the man pages are checked with groff -man -ww") {
        return;
    }
    for page in &pages {
        groff(&dir.path().join(page));
    }
    let add = groff(&dir.path().join("fleetdeck-site-add.1"));
    assert!(
        add.starts_with("fleetdeck-site-add(1)") && add.contains("--from <FILE>"),
        "{add}"
    );
}

#[test]
fn man_dir_replaces_a_symlink_in_its_way_and_never_writes_through_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("man");
    std::fs::create_dir(&dir).expect("mkdir");
    // Someone who can write into DIR points pages elsewhere: at a file,
    // and at a file not there yet.
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "keep me").expect("write");
    let absent = tmp.path().join("absent");
    std::os::unix::fs::symlink(&victim, dir.join("fleetdeck.1")).expect("symlink");
    std::os::unix::fs::symlink(&absent, dir.join("fleetdeck-site.1")).expect("symlink");
    stdout_of(&["man", "--dir", dir.to_str().expect("UTF-8 temp path")]);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "keep me",
        "written through the link"
    );
    assert!(!absent.exists(), "a file made through the dangling link");
    for name in ["fleetdeck.1", "fleetdeck-site.1"] {
        let page = dir.join(name);
        let meta = std::fs::symlink_metadata(&page).expect("stat");
        assert!(meta.file_type().is_file(), "{name} is still a link");
        let text = std::fs::read_to_string(&page).expect("read");
        assert!(text.contains(".TH fleetdeck"), "{name}: {text}");
    }
    let left: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !n.ends_with(".1") || n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let line = stdout_of(&["--version"]);
    let line = line.trim_end();
    let rest = line
        .strip_prefix(&format!("fleetdeck {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `fleetdeck VERSION (COMMIT)`: {line:?}"));
    // The builder's word comes first (a distribution's build).
    if let Some(given) = std::env::var("FLEETDECK_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty() && c.trim().chars().all(|ch| ch.is_ascii_graphic()))
    {
        assert_eq!(rest, given.trim(), "{line}");
        return;
    }
    let hash = rest.strip_suffix("-dirty").unwrap_or(rest);
    assert!(
        rest == "unknown" || (hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit())),
        "not 12 hex digits (or `unknown`): {line:?}"
    );
    // In a git checkout with git at hand (a developer's tree, CI's clone)
    // it is HEAD's hash, not a fallback.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        && head.status.success()
    {
        assert_eq!(hash, String::from_utf8_lossy(&head.stdout).trim(), "{line}");
    }
}

/// Runs git in `dir` (no signing, a fixed author), failing the test if it
/// fails; its trimmed output.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_commit_is_the_builders_first_and_never_an_enclosing_repositorys() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Not a checkout at all.
    assert_eq!(build_script::commit(None, tmp.path()), "unknown");
    assert_eq!(
        build_script::commit(Some(" 1.2-3+deb12u1 "), tmp.path()),
        "1.2-3+deb12u1"
    );
    if !have("git", "the build script reads the commit with git") {
        return;
    }
    // A distribution's packaging tree in git, the source unpacked inside.
    let packaging = tmp.path().join("packaging");
    let source = packaging.join("fleetdeck-0.1.0");
    std::fs::create_dir_all(&source).expect("mkdir");
    std::fs::write(source.join("Cargo.toml"), "[package]\n").expect("write");
    git_in(&packaging, &["init", "-q"]);
    git_in(&packaging, &["add", "-A"]);
    git_in(&packaging, &["commit", "-q", "-m", "packaging"]);
    assert_eq!(
        build_script::commit(None, &source),
        "unknown",
        "the packaging tree's commit is not the source's"
    );
    assert_eq!(
        build_script::commit(Some("abc123"), &source),
        "abc123",
        "what the builder says"
    );

    // The source's own checkout: its HEAD, unless the builder says.
    git_in(&source, &["init", "-q"]);
    git_in(&source, &["add", "-A"]);
    git_in(&source, &["commit", "-q", "-m", "source"]);
    let head = git_in(&source, &["rev-parse", "--short=12", "HEAD"]);
    assert_eq!(build_script::commit(None, &source), head);
    assert_eq!(build_script::commit(Some("  "), &source), head);
    assert_eq!(
        build_script::commit(Some("tarball-1"), &source),
        "tarball-1"
    );
    // Reached through a symlink: still the top of its own checkout.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&source, &link).expect("symlink");
    assert_eq!(build_script::commit(None, &link), head);
    std::fs::write(source.join("Cargo.toml"), "[package]\nname = \"x\"\n").expect("write");
    assert_eq!(build_script::commit(None, &source), format!("{head}-dirty"));
}

/// A replica of a new fleet in `tmp/admin`, and a bundle at `tmp/rogue.fdb`
/// holding a change by a replica that is not a member of it, which
/// importing refuses with a warning per change.
fn fleet_and_rogue_bundle(tmp: &Path) -> (String, String) {
    let admin = tmp.join("admin");
    let admin_s = admin.to_str().expect("UTF-8 temp path").to_owned();
    stdout_of(&["--data", &admin_s, "init", "--name", "ops"]);
    let base = Replica::open(&admin)
        .expect("open the new replica")
        .changes_after(&[]);
    let rogue = tmp.join("rogue");
    let mut outsider = Replica::init_from_changes(&rogue, base).expect("a replica of the fleet");
    // A change by a key that is no member, signed by it. Its own replica
    // would not write it (every peer refuses it), so it is made on the
    // document directly, as a forger would, and carried in a bundle.
    let hash = {
        let doc = outsider.doc_mut();
        doc.add_site(
            &SiteId::parse("ROGUE").expect("site id"),
            &SiteRecord {
                name: "rogue".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )
        .expect("an edit");
        doc.commit("add a site as an outsider", 0)
            .expect("a change")
    };
    let sig = outsider.identity().sign_change(&hash);
    outsider.add_signatures([(hash, sig)]);
    let bundle = tmp.join("rogue.fdb");
    let bundle_s = bundle.to_str().expect("UTF-8 temp path").to_owned();
    fleetdeck_sync::bundle::export(&mut outsider, &bundle).expect("export the bundle");
    (admin_s, bundle_s)
}

/// Checks every line of `log` is one whole warning event with its fields.
fn assert_one_line_per_warning(log: &str, starts: impl Fn(&str) -> bool) {
    println!("{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        assert!(
            starts(line),
            "not the start of an event: {line:?} in {log:?}"
        );
        assert!(
            line.contains("refused a change")
                && line.contains(" change=")
                && line.contains(" author="),
            "not one whole event with key=value fields: {line:?}"
        );
    }
}

#[test]
fn logs_off_a_terminal_have_no_colour_codes_and_one_line_per_event() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (admin, bundle) = fleet_and_rogue_bundle(tmp.path());
    let out = fleetdeck(&["--data", &admin, "bundle", "import", &bundle]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"));
    let log = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    // `2026-01-02T03:04:05.678901Z  WARN refused a change: … change=… author=…`
    assert_one_line_per_warning(&log, |l| {
        l.split_once(' ').is_some_and(|(time, rest)| {
            time.len() > 20 && time.ends_with('Z') && rest.trim_start().starts_with("WARN ")
        })
    });
}

#[test]
fn logs_to_journald_carry_a_priority_and_no_timestamp() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (admin, bundle) = fleet_and_rogue_bundle(tmp.path());
    // systemd names the journal stream by device and inode; a file stands
    // in for it here.
    let log_file = tmp.path().join("journal");
    let stderr = std::fs::File::create(&log_file).expect("create");
    let journal_stream = {
        use std::os::unix::fs::MetadataExt;
        let m = stderr.metadata().expect("stat");
        format!("{}:{}", m.dev(), m.ino())
    };
    let status = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(["--data", &admin, "bundle", "import", &bundle])
        .env_remove("FLEETDECK_DATA")
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", journal_stream)
        .stdout(Stdio::null())
        .stderr(stderr)
        .status()
        .expect("run fleetdeck");
    assert!(status.success());
    let log = std::fs::read_to_string(&log_file).expect("read the log");
    // `<4>WARN refused a change: … change=… author=…`: journald takes the
    // `<4>` as the entry's priority (warning) and stamps the time itself.
    assert_one_line_per_warning(&log, |l| l.starts_with("<4>WARN refused"));
}
