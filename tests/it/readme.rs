//! The README's flags table against `mirrorftpd --help`: every flag the
//! server takes has a row, and every row names a flag the server takes, so
//! the table cannot drift from the code.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::util::run_ok;

/// The long flags `help` defines: the option lines (`  -h, --help`,
/// `      --root <DIR>`), not the flags named in descriptions.
fn defined_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = if l.starts_with('-') && !l.starts_with("--") { l.split_once(", ")?.1 } else { l };
            l.strip_prefix("--")
        })
        .map(|rest| {
            format!("--{}", rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).next().unwrap_or(""))
        })
        .collect()
}

/// The flags of the first column of the table under `## Flags`
/// (`` `--tls-cert FILE` / `--tls-key FILE` `` names two).
fn table_flags(readme: &str) -> BTreeSet<String> {
    let section = readme.split("\n## Flags\n").nth(1).expect("README has a '## Flags' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut flags = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or("");
        for (i, _) in first.match_indices("--") {
            let name: String = first[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            flags.insert(format!("--{name}"));
        }
    }
    flags
}

#[test]
fn the_readme_flags_table_lists_exactly_the_flags_of_help() {
    let ran = run_ok(Command::new(env!("CARGO_BIN_EXE_mirrorftpd")).arg("--help"), Duration::from_secs(10));
    let help = defined_flags(&ran.stdout);
    assert!(help.contains("--root") && help.contains("--ban-time") && help.len() > 40, "parsed --help: {help:?}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let table = table_flags(&readme);
    let missing: Vec<&String> = help.difference(&table).collect();
    let stale: Vec<&String> = table.difference(&help).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's flags table (## Flags) and `mirrorftpd --help` differ:\n  \
         without a row in the table: {missing:?}\n  rows for flags --help does not have: {stale:?}"
    );
}

#[test]
fn the_table_parser_reads_first_columns_only() {
    let readme = "x\n## Flags\n\n| flag | default | meaning |\n|---|---|---|\n\
                  | `--a N` / `--b-c FILE` | 1 | see `--not-a-row` |\n| `--d` | off | x |\n\n## Next\n| `--e` | | |\n";
    let got: Vec<String> = table_flags(readme).into_iter().collect();
    assert_eq!(got, ["--a", "--b-c", "--d"]);
    let help = "Options:\n      --root <DIR>\n          see --not-this\n  -h, --help\n          Print help\n";
    let got: Vec<String> = defined_flags(help).into_iter().collect();
    assert_eq!(got, ["--help", "--root"]);
}
