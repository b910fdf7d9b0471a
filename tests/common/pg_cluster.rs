//! A PostgreSQL cluster of a test's own, in a temporary directory on its own port: for tests
//! that stop the server or change its configuration (doing that to the shared one would disturb
//! every other test).
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::free_port;

/// A PostgreSQL cluster in a temporary directory, on its own port.
pub struct TempPostgres {
    pub data: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// Extra `-c` options for every start.
    options: String,
    _dir: tempfile::TempDir,
}

fn postgres_bin() -> PathBuf {
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Ok(out) = out
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("initdb").exists())
        .expect("initdb")
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (the server refuses root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str]) {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let program = bin.join(tool);
    let status = if is_root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(args)
            .status()
    } else {
        Command::new(&program).args(args).status()
    }
    .expect("run a PostgreSQL tool");
    assert!(status.success(), "{tool} {args:?} failed");
}

impl TempPostgres {
    pub fn start() -> Self {
        Self::start_with(&[], |_| {})
    }

    /// Starts with extra server options (`-c name=value`), after `prepare` has put files in
    /// the data directory (owned by the server's user afterwards).
    pub fn start_with(options: &[&str], prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        if is_root {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = dir.path().join("data");
        let bin = postgres_bin();
        pg_tool(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        prepare(&data);
        if is_root {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&data)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let pg = Self {
            data,
            port: free_port(),
            bin,
            options: options.iter().map(|o| format!(" -c {o}")).collect(),
            _dir: dir,
        };
        pg.up();
        pg
    }

    pub fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off{}",
            self.port,
            self.data.display(),
            self.options
        );
        pg_tool(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-s",
                "start",
            ],
        );
    }

    pub fn down(&self) {
        pg_tool(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-s",
                "stop",
            ],
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-s",
                "stop",
            ])
            .status();
    }
}
