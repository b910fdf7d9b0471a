//! Checking the stored audit trail end to end.

use time::OffsetDateTime;

use crate::domain::audit::{
    Anchor, AnchorBreak, AnchorKeys, AuditKind, ChainBreak, ChainSeal, ChainVerifier, ChainedEvent,
};
use crate::domain::ports::{AuditQuery, AuditStore, StoreError, StoreResult};

/// Why the trail could not be confirmed intact.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    /// An event altered, missing or out of order.
    #[error("audit trail broken")]
    Broken(#[from] ChainBreak),
    /// The trail no longer reaches what an anchor recorded.
    #[error("audit trail does not match its anchors")]
    Anchor(#[from] AnchorBreak),
    /// The store could not be read.
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
    /// The head's hash, to anchor or compare.
    pub head_hash: String,
}

/// Events per read when the trail is walked from end to end.
const PAGE: u32 = 1000;

/// The next page of the trail walked in order: up to a thousand events after `after_seq` (and at
/// or after `since`, when given), oldest first; empty at the end.
pub async fn page_after(
    store: &dyn AuditStore,
    after_seq: i64,
    since: Option<OffsetDateTime>,
) -> StoreResult<Vec<ChainedEvent>> {
    store
        .audit_events(AuditQuery {
            after_seq,
            since,
            limit: PAGE,
        })
        .await
}

/// Checks are started again this many times when retention moves the checkpoint mid-check.
const ATTEMPTS: u32 = 5;

/// Walks the chain from the retention checkpoint to the head as it stood when the check
/// began (events appended meanwhile are left for the next check), in constant memory. A
/// retention run on another instance can remove events mid-check; a break found while the
/// checkpoint moved is not tampering, so the check starts again.
pub async fn verify(store: &dyn AuditStore, seal: &ChainSeal) -> Result<Verified, TrailError> {
    let mut attempt = 1;
    loop {
        let checkpoint = store.audit_checkpoint().await?;
        match verify_from(store, seal, &checkpoint).await {
            Err(TrailError::Broken(_))
                if attempt < ATTEMPTS && store.audit_checkpoint().await? != checkpoint =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn verify_from(
    store: &dyn AuditStore,
    seal: &ChainSeal,
    (from_seq, from_hash): &(i64, String),
) -> Result<Verified, TrailError> {
    let from_seq = *from_seq;
    // The head is read after the checkpoint, so a purge in between is inside the range checked.
    let (head_seq, head_hash) = store.audit_head().await?;
    let mut verifier = ChainVerifier::starting_after(seal.clone(), from_seq, from_hash);
    let mut after = from_seq;
    // Retention records every removal; the newest record must name the checkpoint, or the
    // checkpoint was moved by hand to hide events.
    let mut purged_through = 0;
    loop {
        let page = page_after(store, after, None).await?;
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

/// An anchor of the chain's head as it stands at `at`.
pub async fn anchor(
    store: &dyn AuditStore,
    keys: &AnchorKeys,
    at: OffsetDateTime,
) -> Result<Anchor, StoreError> {
    let (seq, hash) = store.audit_head().await?;
    Ok(Anchor::new(keys, seq, hash, at))
}

/// Checks the trail against anchors taken earlier (numbered from 1, as the lines of their
/// file): each must be signed with these keys (unsigned only where no key is set), and the chain must still reach its
/// sequence with the same hash there. Anchors at or before the retention checkpoint name events
/// that retention removed (and recorded); they are not checked further. Returns how many anchors
/// were checked against an event.
pub async fn verify_anchors(
    store: &dyn AuditStore,
    keys: &AnchorKeys,
    anchors: &[Anchor],
) -> Result<usize, TrailError> {
    let (head, _) = store.audit_head().await?;
    let (checkpoint, _) = store.audit_checkpoint().await?;
    let mut checked = 0;
    for (i, anchor) in anchors.iter().enumerate() {
        let number = i + 1;
        anchor.check(keys, number)?;
        if anchor.seq > head {
            return Err(AnchorBreak::ChainEndsBefore {
                anchor: number,
                seq: anchor.seq,
                head,
            }
            .into());
        }
        if anchor.seq <= checkpoint {
            continue;
        }
        let found = store
            .audit_events(AuditQuery {
                after_seq: anchor.seq - 1,
                since: None,
                limit: 1,
            })
            .await?;
        match found.first() {
            Some(event) if event.seq == anchor.seq && event.hash == anchor.hash => checked += 1,
            _ => {
                return Err(AnchorBreak::Differs {
                    anchor: number,
                    seq: anchor.seq,
                }
                .into());
            }
        }
    }
    Ok(checked)
}
