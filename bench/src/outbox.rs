//! Codes as the service's outbox notifier writes them (`FINHUB_OUTBOX_PATH`, one JSON line per
//! message), read as the files grow. Any instance may deliver any instance's message, so a code
//! is looked for in every instance's file.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Outbox {
    files: Vec<PathBuf>,
    read: Mutex<Read>,
}

#[derive(Default)]
struct Read {
    /// Bytes of each file already read.
    offsets: Vec<u64>,
    /// Codes read but not asked for yet, by challenge id.
    codes: HashMap<String, String>,
}

impl Outbox {
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self {
            read: Mutex::new(Read {
                offsets: vec![0; files.len()],
                codes: HashMap::new(),
            }),
            files,
        }
    }

    /// The code sent for `challenge`, waiting up to five seconds for it to be delivered.
    pub async fn code(&self, challenge: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(code) = self.try_code(challenge)? {
                return Ok(code);
            }
            anyhow::ensure!(Instant::now() < deadline, "no code in the outbox");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn try_code(&self, challenge: &str) -> anyhow::Result<Option<String>> {
        let mut read = self
            .read
            .lock()
            .map_err(|_| anyhow::anyhow!("outbox reader poisoned"))?;
        if let Some(code) = read.codes.remove(challenge) {
            return Ok(Some(code));
        }
        let Read { offsets, codes } = &mut *read;
        for (file, offset) in self.files.iter().zip(offsets.iter_mut()) {
            // Only what was added since the last look: the files grow for an hour in a soak.
            let Ok(mut f) = std::fs::File::open(file) else {
                continue;
            };
            f.seek(SeekFrom::Start(*offset))?;
            let mut new = Vec::new();
            f.read_to_end(&mut new)?;
            // Only whole lines: a line being written is read next time.
            let upto = new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            // A line that is not JSON carries no code: skipped, so later codes still arrive.
            let lines = new[..upto].split(|b| *b == b'\n');
            for line in lines.filter_map(|l| serde_json::from_slice::<Value>(l).ok()) {
                if let (Some(id), Some(code)) =
                    (line["challengeId"].as_str(), line["code"].as_str())
                {
                    codes.insert(id.to_owned(), code.to_owned());
                }
            }
            *offset += upto as u64;
        }
        Ok(codes.remove(challenge))
    }
}
