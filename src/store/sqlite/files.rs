//! The files of the embedded database, kept to their owner: the database, its write-ahead log
//! and shared-memory index hold every customer's record and session hashes, and the audit key
//! generated beside them seals the audit chain and queued codes. Created with the process's
//! umask they would be readable by every local account.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::sqlite::SqliteConnectOptions;

/// The database file a `sqlite://` URL names; `None` for an in-memory database.
pub fn database_file(url: &str) -> anyhow::Result<Option<PathBuf>> {
    let options = SqliteConnectOptions::from_str(url)
        .context("FINHUB_DATABASE_URL is not a valid sqlite:// URL")?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    Ok((!in_memory).then(|| options.get_filename().to_owned()))
}

/// Creates `dir` and any missing parents, owner-only. An existing directory is left as it is:
/// it may be shared on purpose (a volume's root), and the files in it are checked one by one.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the database directory {}", dir.display()))
}

/// Creates the empty database file owner-only unless it exists. SQLite gives the write-ahead
/// log and shared-memory files it creates later the database file's own permissions.
pub fn create_private_database(file: &Path) -> anyhow::Result<()> {
    match private_new_file(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            Err(e).with_context(|| format!("cannot create the SQLite database {}", file.display()))
        }
    }
}

/// Refuses the database, its write-ahead log or its shared-memory file when another account
/// may read or write it.
pub fn refuse_shared_database(file: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        refuse_shared(Path::new(&name), "the SQLite database file")?;
    }
    Ok(())
}

/// Refuses `path` when it exists and grants anything to its group or others.
pub fn refuse_shared(path: &Path, what: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{what} {} is open to other accounts (mode {:o}); make it owner-only: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// The audit key generated for a database: `<database file>.audit-key`, beside it.
pub fn audit_key_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".audit-key");
    PathBuf::from(name)
}

/// Reads the generated audit key at `path`, if there is one; refused when other accounts may
/// read it.
pub fn read_audit_key(path: &Path) -> anyhow::Result<Option<SecretString>> {
    refuse_shared(path, "the generated audit key")?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim_end_matches(['\r', '\n']);
            if key.len() < 32 {
                anyhow::bail!(
                    "the generated audit key {} is shorter than 32 bytes: it was changed by something else than this service",
                    path.display()
                );
            }
            Ok(Some(key.into()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Reads the generated audit key at `path`, or creates it: 32 random bytes, hex-encoded,
/// owner-only. `true` when it was created now. Two processes starting at once agree: only one
/// file is ever created, and the other reads it.
pub fn read_or_create_audit_key(path: &Path) -> anyhow::Result<(SecretString, bool)> {
    if let Some(key) = read_audit_key(path)? {
        return Ok((key, false));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no random source for the audit key: {e}"))?;
    let key = hex::encode(bytes);
    // Written to a temporary name and linked into place, so no reader ever sees a half-written
    // key and a concurrent creator's key is never overwritten.
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let staging = PathBuf::from(staging);
    let written = private_new_file(&staging).and_then(|mut file| {
        file.write_all(key.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&staging, path));
    let _ = std::fs::remove_file(&staging);
    match linked {
        Ok(()) => Ok((key.into(), true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = read_audit_key(path)?
                .with_context(|| format!("{} vanished while being read", path.display()))?;
            Ok((key, false))
        }
        Err(e) => Err(e).with_context(|| format!("cannot write the audit key {}", path.display())),
    }
}

/// A new file that only its owner may read or write.
fn private_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_databases_have_no_file() {
        assert_eq!(database_file("sqlite::memory:").unwrap(), None);
        assert_eq!(
            database_file("sqlite://data/auth.db").unwrap(),
            Some(PathBuf::from("data/auth.db"))
        );
    }

    /// A generated key is created once, owner-only, and read back unchanged: a restart must
    /// find the key its queued codes were sealed under.
    #[cfg(unix)]
    #[test]
    fn the_generated_key_is_created_once_owner_only_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = audit_key_file(&dir.path().join("new").join("auth.db"));
        let (first, created) = read_or_create_audit_key(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let (again, created) = read_or_create_audit_key(&path).unwrap();
        assert!(!created);
        use secrecy::ExposeSecret as _;
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = read_or_create_audit_key(&path).unwrap_err().to_string();
        assert!(refused.contains("chmod 600"), "{refused}");
    }
}
