//! The layering, checked: the domain names no adapter, framework or driver, so that its rules
//! can be read, tested and reused without them (docs/architecture.md).

use std::path::{Path, PathBuf};

/// What the domain must not name: the crate's adapters, and the crates they are built on.
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "crate::store",
    "crate::notify",
    "crate::http",
    "crate::config",
    "crate::cli",
    "crate::startup",
    "sqlx",
    "axum",
    "utoipa",
    "tower",
    "reqwest",
    "figment",
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The forbidden names a source text uses in code (comments may mention them).
fn forbidden_uses(source: &str) -> Vec<(usize, &'static str)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let code = line.split("//").next().unwrap_or_default();
            FORBIDDEN_IN_DOMAIN
                .iter()
                .find(|name| {
                    code.match_indices(*name).any(|(at, _)| {
                        let before = code[..at].chars().next_back();
                        // A whole path segment, not part of a longer identifier.
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                })
                .map(|name| (n + 1, *name))
        })
        .collect()
}

#[test]
fn the_domain_depends_on_no_adapter_framework_or_driver() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let files = rust_files(&domain);
    assert!(files.len() > 10, "the domain's files were not found");
    let offences: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let source = std::fs::read_to_string(file).expect("readable source file");
            forbidden_uses(&source)
                .into_iter()
                .map(|(line, name)| format!("{}:{line} names {name}", file.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_check_sees_imports_and_derives_but_not_comments() {
    assert_eq!(
        forbidden_uses("use crate::store::Store;"),
        vec![(1, "crate::store")]
    );
    assert_eq!(
        forbidden_uses("fn f() {}\n#[derive(sqlx::FromRow)]"),
        vec![(2, "sqlx")]
    );
    assert_eq!(forbidden_uses("    x: axum::Json<T>,"), vec![(1, "axum")]);
    assert!(forbidden_uses("//! implemented in crate::store").is_empty());
    assert!(forbidden_uses("let my_sqlx_free = 1;").is_empty());
}
