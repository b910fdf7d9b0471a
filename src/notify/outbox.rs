//! The outbox notifier: appends each message to a JSON Lines file, for development and tests.
//! The file is the one place a code is written down.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::audit::rfc3339;
use crate::domain::ports::{Notifier, NotifyError, Outgoing};

/// Appends to one file; a lock keeps concurrent lines whole.
#[derive(Debug)]
pub struct OutboxNotifier {
    path: PathBuf,
    lock: Mutex<()>,
}

/// One line: what every message has, then its purpose's own fields (a code's `challengeId` and
/// `code`; a notice's `kind`, `notice`, `noticeId` and `flags`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboxLine<'a> {
    at: String,
    channel: &'static str,
    to: &'a str,
    customer_id: &'a str,
    #[serde(flatten)]
    record: &'a serde_json::Map<String, serde_json::Value>,
    text: &'a str,
}

impl OutboxNotifier {
    /// Creates the file's directory if needed.
    pub fn new(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            path,
            lock: Mutex::new(()),
        })
    }
}

#[async_trait]
impl Notifier for OutboxNotifier {
    async fn send(&self, m: &Outgoing) -> Result<(), NotifyError> {
        let line = OutboxLine {
            at: rfc3339(m.at),
            channel: m.channel.as_str(),
            to: &m.to,
            customer_id: m.customer_id.as_str(),
            record: &m.record,
            text: &m.text,
        };
        self.append(&line).await
    }
}

impl OutboxNotifier {
    async fn append(&self, line: &impl Serialize) -> Result<(), NotifyError> {
        let mut bytes =
            serde_json::to_vec(line).map_err(|e| NotifyError::transient(e.to_string()))?;
        bytes.push(b'\n');
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        // Opened, written and synced on one blocking thread: one hand-off, not one per step.
        tokio::task::spawn_blocking(move || append_synced(&path, &bytes))
            .await
            .map_err(|e| NotifyError::transient(format!("outbox writer: {e}")))?
    }
}

/// Appends `bytes` to the file at `path` and syncs them to disk before the message counts as
/// delivered.
fn append_synced(path: &Path, bytes: &[u8]) -> Result<(), NotifyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    // It holds live codes: readable by the service's own user only.
    options.create(true).append(true).mode(0o600);
    let mut file = options
        .open(path)
        .map_err(|e| NotifyError::transient(format!("open outbox: {e}")))?;
    file.write_all(bytes)
        .map_err(|e| NotifyError::transient(format!("write outbox: {e}")))?;
    file.sync_data()
        .map_err(|e| NotifyError::transient(format!("sync outbox: {e}")))
}

/// A message as the outbox file holds it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    /// When the message was queued (RFC 3339).
    pub at: String,
    /// `SMS` or `EMAIL`.
    pub channel: String,
    /// The unmasked phone number or e-mail address.
    pub to: String,
    /// The text the customer would read; may hold a live code, which is why the file is for
    /// development only.
    pub text: String,
    /// A code's digits, when the message carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A security notice's "this wasn't me" link, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockdown_url: Option<String>,
}

/// The newest `limit` messages of the outbox at `path`, newest first (none if it does not
/// exist yet); lines that are not messages are skipped.
pub async fn recent(path: &Path, limit: usize) -> std::io::Result<Vec<OutboxMessage>> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str(line).ok())
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::credentials::factor::TwoFactorMethod;
    use crate::domain::customers::CustomerId;

    #[tokio::test]
    async fn each_message_is_one_json_line_with_its_purposes_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/outbox.jsonl");
        let outbox = OutboxNotifier::new(&path).unwrap();
        for code in ["123456", "654321"] {
            let message = Outgoing {
                id: "challenge-1".into(),
                at: time::OffsetDateTime::UNIX_EPOCH,
                channel: TwoFactorMethod::Sms,
                to: "+447700900123".into(),
                customer_id: CustomerId::generate(),
                subject: "Your FinHub security code",
                text: format!("Your FinHub security code is {code}."),
                record: serde_json::json!({"challengeId": "challenge-1", "code": code})
                    .as_object()
                    .cloned()
                    .unwrap(),
            };
            outbox.send(&message).await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["code"], "654321");
        assert_eq!(lines[0]["challengeId"], "challenge-1");
        assert_eq!(lines[0]["channel"], "SMS");
        assert!(lines[0]["text"].as_str().unwrap().contains("123456"));
    }
}
