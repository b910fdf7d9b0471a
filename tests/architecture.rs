//! The layering, checked: the domain names no adapter, framework or driver, so that its rules
//! can be read, tested and reused without them (docs/architecture.md).

use std::path::{Path, PathBuf};

/// What the domain must not name: the crate's adapters, and the crates they are built on (a
/// name also covers the crates named after it: `hyper` covers `hyper_util` and `hyper_rustls`).
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "crate::breach",
    "crate::cli",
    "crate::config",
    "crate::geo",
    "crate::http",
    "crate::limits",
    "crate::notify",
    "crate::passkeys",
    "crate::reload",
    "crate::startup",
    "crate::store",
    "crate::telemetry",
    "axum",
    "clap",
    "figment",
    "http_body_util",
    "hyper",
    "indicatif",
    "lettre",
    "maxminddb",
    "metrics_exporter_prometheus",
    "opentelemetry",
    "rcgen",
    "redis",
    "reqwest",
    "rusqlite",
    "rust_embed",
    "rustls",
    "sqlx",
    "tikv_jemallocator",
    "tower",
    "tracing_opentelemetry",
    "tracing_subscriber",
    "utoipa",
    "webauthn_rs",
    "webauthn_rs_proto",
    "webpki_roots",
];

/// Modules of the crate the domain may use: the clock is the one thing it asks of the outside
/// world, and it owns only a trait and two small implementations.
const MODULES_FOR_THE_DOMAIN: &[&str] = &["domain", "clock"];

/// Dependencies the domain may use: values, cryptography, errors, async plumbing, counters.
const CRATES_FOR_THE_DOMAIN: &[&str] = &[
    "anyhow",
    "argon2",
    "async_trait",
    "backon",
    "base64",
    "chacha20poly1305",
    "crossbeam_channel",
    "data_encoding",
    "ed25519_dalek",
    "getrandom",
    "governor",
    "hex",
    "hmac",
    "humantime",
    "ipnet",
    "metrics",
    "percent_encoding",
    "secrecy",
    "serde",
    "serde_json",
    "serde_path_to_error",
    "serde_value",
    "serde_with",
    "sha1",
    "sha2",
    "subtle",
    "thiserror",
    "time",
    "tokio",
    "tokio_util",
    "tracing",
    "unicode_normalization",
    "unicode_properties",
    "url",
    "uuid",
    "woothee",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `name` is one of the forbidden names, or a crate named after one of them.
fn is_forbidden(name: &str) -> bool {
    FORBIDDEN_IN_DOMAIN
        .iter()
        .any(|f| name == *f || name.starts_with(&format!("{f}_")))
}

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
    let domain = manifest_dir().join("src/domain");
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

/// The library's top-level modules (`pub mod x;` in `src/lib.rs`).
fn top_level_modules(lib: &str) -> Vec<&str> {
    lib.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("pub ").unwrap_or(line.trim());
            line.strip_prefix("mod ")?.strip_suffix(';')
        })
        .collect()
}

/// The crates of `[dependencies]` in a manifest, as Rust names (`tower-http` → `tower_http`).
fn dependencies(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['=', '.', ' ']).next())
        .map(|name| name.trim().replace('-', "_"))
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_adapter_module_and_crate_is_kept_out_of_the_domain() {
    let lib = std::fs::read_to_string(manifest_dir().join("src/lib.rs")).expect("src/lib.rs");
    let modules = top_level_modules(&lib);
    assert!(modules.contains(&"domain"), "{modules:?}");
    let unchecked: Vec<_> = modules
        .iter()
        .filter(|m| !MODULES_FOR_THE_DOMAIN.contains(m))
        .filter(|m| !FORBIDDEN_IN_DOMAIN.contains(&format!("crate::{m}").as_str()))
        .collect();
    assert!(
        unchecked.is_empty(),
        "modules neither forbidden in the domain nor allowed to it: {unchecked:?}"
    );

    let manifest = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).expect("Cargo.toml");
    let crates = dependencies(&manifest);
    assert!(crates.iter().any(|c| c == "sqlx"), "{crates:?}");
    let unclassified: Vec<_> = crates
        .iter()
        .filter(|c| !is_forbidden(c) && !CRATES_FOR_THE_DOMAIN.contains(&c.as_str()))
        .collect();
    assert!(
        unclassified.is_empty(),
        "dependencies neither forbidden in the domain nor allowed to it: {unclassified:?}"
    );
}

#[test]
fn the_lists_are_read_from_the_manifest_and_the_library() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\n# a comment\n\
                    tower-http = { version = \"0.6\" }\nsqlx.workspace = true\n\
                    redis = { workspace = true }\n\n[dev-dependencies]\ninsta = \"1\"\n";
    assert_eq!(dependencies(manifest), ["tower_http", "sqlx", "redis"]);
    assert_eq!(
        top_level_modules("//! docs\npub mod cli;\nmod private;\n#[cfg(test)]\nmod tests;"),
        ["cli", "private", "tests"]
    );
    assert!(is_forbidden("hyper_util") && is_forbidden("axum_server"));
    assert!(!is_forbidden("tokio") && !is_forbidden("serde_json"));
}
