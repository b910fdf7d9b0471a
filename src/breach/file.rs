//! A breached-password file as Pwned Passwords publishes it: `HASH:COUNT` lines (SHA-1 in
//! upper-case hex), sorted by hash. It is searched where it lies: a binary search over byte
//! offsets, reading a few hundred bytes per step, so a file of a billion lines takes about 30
//! steps and no memory to speak of; it is never loaded.

use std::cmp::Ordering;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::credentials::password::breached::BreachDigest;
use crate::domain::ports::{BreachSourceUnavailable, BreachedPasswords};

/// Bytes read to find where the next line starts; longer lines are not of this format.
const WINDOW: usize = 256;
/// Hex digits of a SHA-1.
const HASH_DIGITS: usize = 40;

/// An open breached-password file.
#[derive(Debug, Clone)]
pub struct BreachedFile {
    file: Arc<File>,
    len: u64,
}

/// What one search found, and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// The digest is in the file.
    pub found: bool,
    /// Positioned reads made, each of at most 256 bytes.
    pub reads: u32,
}

impl BreachedFile {
    /// Opens the file at `path` (checked at start-up: a missing file stops it).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file: Arc::new(file),
            len,
        })
    }

    /// Searches for `digest`.
    pub fn lookup(&self, digest: &BreachDigest) -> io::Result<Lookup> {
        let target = digest.hex().as_bytes();
        let mut reads = 0;
        let (mut lo, mut hi) = (0u64, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(start) = self.line_start_at_or_after(mid, &mut reads)? else {
                hi = mid;
                continue;
            };
            if start >= hi {
                hi = mid;
                continue;
            }
            let (key, next) = self.key_at(start, &mut reads)?;
            match key.as_slice().cmp(target) {
                Ordering::Equal => return Ok(Lookup { found: true, reads }),
                Ordering::Less => lo = next,
                Ordering::Greater => hi = start,
            }
        }
        Ok(Lookup {
            found: false,
            reads,
        })
    }

    /// Where the first line starting at or after `pos` starts; `None` past the last line.
    fn line_start_at_or_after(&self, pos: u64, reads: &mut u32) -> io::Result<Option<u64>> {
        if pos == 0 {
            return Ok(Some(0));
        }
        let mut window = [0u8; WINDOW];
        let n = self.read_at(&mut window, pos - 1, reads)?;
        Ok(window[..n]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i as u64)
            .filter(|&start| start < self.len))
    }

    /// The upper-cased hash of the line starting at `start`, and where the next line starts.
    fn key_at(&self, start: u64, reads: &mut u32) -> io::Result<(Vec<u8>, u64)> {
        let mut window = [0u8; WINDOW];
        let n = self.read_at(&mut window, start, reads)?;
        let line = &window[..n];
        let end = line.iter().position(|&b| b == b'\n');
        let text = &line[..end.unwrap_or(n)];
        let key = text.split(|&b| b == b':').next().unwrap_or_default();
        if key.len() != HASH_DIGITS || !key.iter().all(u8::is_ascii_hexdigit) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a HASH:COUNT line at byte {start}"),
            ));
        }
        let next = match end {
            Some(i) => start + i as u64 + 1,
            None if start + (n as u64) >= self.len => self.len,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {WINDOW} bytes at byte {start}"),
                ));
            }
        };
        Ok((key.to_ascii_uppercase(), next))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, reads: &mut u32) -> io::Result<usize> {
        *reads += 1;
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

#[async_trait]
impl BreachedPasswords for BreachedFile {
    async fn contains(&self, digest: &BreachDigest) -> Result<bool, BreachSourceUnavailable> {
        let file = self.clone();
        let digest = digest.clone();
        // A few reads that may wait on a disk: off the request threads.
        tokio::task::spawn_blocking(move || file.lookup(&digest))
            .await
            .map_err(|e| BreachSourceUnavailable(e.to_string()))?
            .map(|lookup| lookup.found)
            .map_err(|e| BreachSourceUnavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file_of(lines: &[&str]) -> (tempfile::NamedTempFile, BreachedFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for line in lines {
            write!(f, "{line}\r\n").unwrap();
        }
        f.flush().unwrap();
        let opened = BreachedFile::open(f.path()).unwrap();
        (f, opened)
    }

    fn digest(hex: &str) -> BreachDigest {
        BreachDigest::from_hex(hex).unwrap()
    }

    #[test]
    fn every_line_is_found_and_nothing_between_them() {
        let hashes: Vec<String> = (1..=50u64).map(|i| format!("{:040X}", i * 1000)).collect();
        let lines: Vec<String> = hashes.iter().map(|h| format!("{h}:{}", 7)).collect();
        let (_f, file) = file_of(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        for h in &hashes {
            assert!(file.lookup(&digest(h)).unwrap().found, "{h}");
            assert!(file.lookup(&digest(&h.to_lowercase())).unwrap().found);
        }
        for i in [0u64, 1, 999, 1001, 25_500, 50_001] {
            assert!(
                !file.lookup(&digest(&format!("{i:040X}"))).unwrap().found,
                "{i}"
            );
        }
    }

    /// A file of a few million lines, as a Pwned-Passwords download has hundreds of millions:
    /// each search reads a bounded few hundred bytes a step, about twice log2 of its length.
    #[test]
    fn a_file_of_millions_of_lines_is_searched_in_a_few_dozen_small_reads() {
        const LINES: u64 = 2_000_000;
        const STEP: u64 = u64::MAX / LINES;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        {
            let mut out = std::io::BufWriter::new(f.as_file_mut());
            for i in 0..LINES {
                // Evenly spread, increasing hashes, with counts of different widths.
                writeln!(out, "{:016X}{:024X}:{}\r", i * STEP, i, i % 9_999).unwrap();
            }
        }
        let file = BreachedFile::open(f.path()).unwrap();
        let line = |i: u64| format!("{:016X}{:024X}", i * STEP, i);
        let bound = 2 * (64 - file.len.leading_zeros()) + 4;
        for i in [0, 1, 2, 999_999, 1_000_000, 1_234_567, LINES - 2, LINES - 1] {
            let found = file.lookup(&digest(&line(i))).unwrap();
            assert!(found.found, "line {i}");
            assert!(found.reads <= bound, "{} reads for line {i}", found.reads);
            let mut absent = line(i);
            absent.replace_range(39..40, if absent.ends_with('F') { "E" } else { "F" });
            let missing = file.lookup(&digest(&absent)).unwrap();
            assert!(!missing.found, "between lines, near {i}");
            assert!(missing.reads <= bound);
        }
    }

    #[test]
    fn an_empty_file_has_nothing_and_a_malformed_one_is_an_error() {
        let (_f, empty) = file_of(&[]);
        assert!(!empty.lookup(&digest(&"A".repeat(40))).unwrap().found);
        let (_g, bad) = file_of(&["not a hash", "neither"]);
        assert!(bad.lookup(&digest(&"A".repeat(40))).is_err());
    }
}
