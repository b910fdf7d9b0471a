//! Checking the stored audit trail end to end.

use super::audit::{AuditKind, ChainBreak, ChainVerifier};
use crate::store::{AuditQuery, Store, StoreError};

/// Why the trail could not be confirmed intact.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("audit trail broken: {0}")]
    Broken(#[from] ChainBreak),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An intact trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// Where checking started: the retention checkpoint (0 when nothing was ever removed).
    pub from_seq: i64,
    pub head_hash: String,
}

const PAGE: u32 = 1000;

/// Walks the chain from the retention checkpoint to the head as it stood when the check
/// began (events appended meanwhile are left for the next check), in constant memory.
pub async fn verify(store: &dyn Store) -> Result<Verified, TrailError> {
    let (head_seq, head_hash) = store.audit_head().await?;
    let (from_seq, from_hash) = store.audit_checkpoint().await?;
    let mut verifier = ChainVerifier::starting_after(from_seq, &from_hash);
    let mut after = from_seq;
    // Retention records every removal; the newest record must name the checkpoint, or the
    // checkpoint was moved by hand to hide events.
    let mut purged_through = 0;
    loop {
        let page = store
            .audit_events(AuditQuery {
                after_seq: after,
                since: None,
                limit: PAGE,
            })
            .await?;
        let in_range: Vec<_> = page.iter().filter(|e| e.seq <= head_seq).collect();
        let Some(last) = in_range.last() else { break };
        after = last.seq;
        for event in in_range {
            verifier.check(event)?;
            if event.event.kind == AuditKind::AuditPurged {
                purged_through = event
                    .event
                    .details
                    .get("throughSeq")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(-1);
            }
        }
    }
    let events = verifier.finish(head_seq, &head_hash)?;
    if purged_through != from_seq {
        return Err(ChainBreak::UnaccountedCheckpoint {
            checkpoint: from_seq,
        }
        .into());
    }
    Ok(Verified {
        events,
        from_seq,
        head_hash,
    })
}
