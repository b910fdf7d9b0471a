//! Appending to and reading the hash-chained audit trail.

use async_trait::async_trait;

use super::{SqlStore, Tx, webhooks};
use crate::clock::to_unix_millis;
use crate::domain::audit::{AuditEvent, ChainedEvent, Link};
use crate::domain::ports::{
    AddressText, AuditFilter, AuditQuery, AuditStore, StoreError, StoreResult,
};
use crate::store::Trail;
use crate::store::backend::{Backend, HeadMove, query, query_built, row_placeholders};
use crate::store::rows::{AuditRow, select_audit};
use crate::telemetry::traces;

const EVENTS_AFTER: &str =
    select_audit!("FROM audit_events WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3");
/// The newest events, oldest first.
const NEWEST: &str = concat!(
    "SELECT * FROM (",
    select_audit!("FROM audit_events ORDER BY seq DESC LIMIT $1"),
    ") AS newest ORDER BY seq"
);

/// The start of an insert into the chain, up to its `VALUES`.
macro_rules! insert_events {
    () => {
        "INSERT INTO audit_events (seq, id, at, kind, outcome, reason, username, customer_id, \
         session_id, ip, user_agent, device_fingerprint, device_name, details, prev_hash, hash) \
         VALUES"
    };
}
/// Moves the chain's head to the seq and hash given as the two placeholders.
macro_rules! move_head {
    ($seq:literal, $hash:literal) => {
        concat!(
            "UPDATE audit_head SET seq = ",
            $seq,
            ", hash = ",
            $hash,
            " WHERE id = 1"
        )
    };
}
/// An insert of one event (`$1` to `$16`).
macro_rules! insert_one {
    () => {
        concat!(
            insert_events!(),
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        )
    };
}
/// One event appended, moving the head to `$17` and `$18`, as each [`HeadMove`] writes it:
/// fixed text for what most appends are (a login, a logout, …).
const ONE_WITH_HEAD_MOVE: &str = concat!(
    "WITH moved AS (",
    move_head!("$17", "$18"),
    ") ",
    insert_one!()
);
/// The head's move in a statement of its own ([`HeadMove::Separate`]).
const HEAD_MOVE_ALONE: &str = move_head!("$1", "$2");
/// Values of one event in an insert.
const COLUMNS: usize = 16;

/// Events per statement when many are appended at once (an import's batch): typical events
/// (~400 bytes of values) keep a statement within one TLS record (see "Batch sizes" in
/// `store/backend.rs`).
const EVENTS_PER_STATEMENT: usize = 24;

/// An insert of `n` events, written at run time (`n` > 1).
fn insert_of<B: Backend>(n: usize) -> String {
    format!("{} {}", insert_events!(), row_placeholders::<B>(n, COLUMNS))
}

/// The placeholders of the head's new seq and hash, after an insert of `n` events.
fn head_placeholders<B: Backend>(n: usize) -> (String, String) {
    (
        B::placeholder(n * COLUMNS + 1),
        B::placeholder(n * COLUMNS + 2),
    )
}

/// Appends events to the chain inside the caller's transaction. The head is read with the
/// backend's lock (SQLite's single writer; a row lock in PostgreSQL), so concurrent appenders,
/// from this instance or another, take their turn. The links are computed first, then the
/// events are written a few dozen to a statement, the last of them moving the head. A keyed
/// seal on a chain begun without a key marks the switch first ([`ChainSeal::link`]).
pub(super) async fn append<B: Backend>(
    tx: &mut Tx<'_, B>,
    trail: &Trail,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    // With traces exported, each event names the trace of the request that caused it, so an
    // investigation can go from the audit trail to the request's trace and back.
    let traced: Vec<AuditEvent>;
    let with_trace: Vec<&AuditEvent>;
    let events = match traces::current_trace_id() {
        Some(trace) => {
            traced = events
                .iter()
                .map(|e| (*e).clone().detail("traceId", trace.as_str()))
                .collect();
            with_trace = traced.iter().collect();
            &with_trace[..]
        }
        None => events,
    };
    let (head_seq, head_hash): (i64, String) = query::<B>(B::HEAD_FOR_APPEND).fetch_one(tx).await?;
    let links = trail.seal.link(head_seq, head_hash, events).map_err(|e| {
        // A stale configuration: this instance must not write, but others can.
        tracing::error!(error = %e, "an audit event cannot be appended");
        StoreError::Unavailable(e.to_string())
    })?;
    let Some(head) = links.last() else {
        return Ok(());
    };
    let (seq, hash) = (head.seq, head.hash.clone());
    let statements = links.len().div_ceil(EVENTS_PER_STATEMENT);
    for (i, chunk) in links.chunks(EVENTS_PER_STATEMENT).enumerate() {
        // Where the backend can, the last statement also moves the head, so an append of one
        // event (every login, logout, …) is one call after the head's read.
        let moves_head = i + 1 == statements && B::HEAD_MOVE == HeadMove::With;
        let mut insert = match (chunk.len(), moves_head) {
            (1, true) => query::<B>(ONE_WITH_HEAD_MOVE),
            (1, false) => query::<B>(insert_one!()),
            (n, false) => query_built::<B>(insert_of::<B>(n)),
            (n, true) => {
                let (seq, hash) = head_placeholders::<B>(n);
                query_built::<B>(format!(
                    concat!("WITH moved AS (", move_head!("{}", "{}"), ") {}"),
                    seq,
                    hash,
                    insert_of::<B>(n)
                ))
            }
        };
        for Link {
            event,
            seq,
            prev_hash,
            hash,
        } in chunk
        {
            insert = insert
                .bind(*seq)
                .bind(event.id.as_str())
                .bind(to_unix_millis(event.at))
                .bind(event.kind.as_str())
                .bind(event.outcome.as_str())
                .bind(event.reason.as_deref())
                .bind(event.username.as_deref())
                .bind(event.customer_id.as_deref())
                .bind(event.session_id.as_deref())
                .bind(event.ip.as_deref())
                .bind(event.user_agent.as_deref())
                .bind(event.device_fingerprint.as_deref())
                .bind(event.device_name.as_deref())
                .bind(serde_json::Value::Object(event.details.clone()).to_string())
                .bind(prev_hash.as_str())
                .bind(hash.as_str());
        }
        if moves_head {
            insert = insert.bind(seq).bind(hash.as_str());
        }
        insert.execute(tx).await?;
    }
    if B::HEAD_MOVE == HeadMove::Separate {
        query::<B>(HEAD_MOVE_ALONE)
            .bind(seq)
            .bind(hash.as_str())
            .execute(tx)
            .await?;
    }
    // The security webhook hears of an event exactly when the trail records it.
    if !trail.webhooks.is_empty() {
        let sent = events.iter().copied();
        webhooks::enqueue(tx, sent.filter(|e| trail.webhooks.sends(e.kind))).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()> {
        self.append_events(std::slice::from_ref(event)).await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.append_events",
        skip_all
    )]
    async fn append_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        let events: Vec<&AuditEvent> = events.iter().collect();
        let mut tx = self.write().await?;
        append(&mut tx, &self.trail, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(&self, q: AuditQuery) -> StoreResult<Vec<ChainedEvent>> {
        let rows: Vec<AuditRow> = query::<B>(EVENTS_AFTER)
            .bind(q.after_seq)
            .bind(q.since.map_or(i64::MIN, to_unix_millis))
            .bind(i64::from(q.limit))
            .fetch_all(&mut self.read().await?)
            .await?;
        rows.into_iter().map(ChainedEvent::try_from).collect()
    }

    async fn search_audit(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<ChainedEvent>> {
        // Only the filters given appear in the statement, so that each can use its index.
        let mut conditions = vec!["seq > $1".to_owned()];
        let (address_from, address_before) = match &filter.address {
            Some(AddressText::Exact(ip)) => (Some(ip.clone()), None),
            // Every address starting `203.0.7.` sorts from it to `203.0.7/` ('/' follows '.');
            // a prefix of another form is left to the caller's own check.
            Some(AddressText::Prefix(prefix)) => match prefix.strip_suffix('.') {
                Some(stem) => (Some(prefix.clone()), Some(format!("{stem}/"))),
                None => (None, None),
            },
            None => (None, None),
        };
        let exact = matches!(filter.address, Some(AddressText::Exact(_)));
        let optional = [
            ("username", " = ", filter.username.is_some()),
            ("kind", " = ", filter.kind.is_some()),
            ("at", " >= ", filter.since.is_some()),
            ("at", " < ", filter.until.is_some()),
            (
                B::AUDIT_IP_BYTEWISE,
                if exact { " = " } else { " >= " },
                address_from.is_some(),
            ),
            (B::AUDIT_IP_BYTEWISE, " < ", address_before.is_some()),
        ];
        for (column, operator, _) in optional.iter().filter(|(_, _, given)| *given) {
            conditions.push(format!("{column}{operator}${}", conditions.len() + 1));
        }
        let sql = format!(
            "{} WHERE {} ORDER BY seq LIMIT ${}",
            select_audit!("FROM audit_events"),
            conditions.join(" AND "),
            conditions.len() + 1
        );
        let mut q = query_built::<B>(sql).bind(after_seq);
        if let Some(username) = &filter.username {
            q = q.bind(username.clone());
        }
        if let Some(kind) = &filter.kind {
            q = q.bind(kind.clone());
        }
        for at in [filter.since, filter.until].into_iter().flatten() {
            q = q.bind(to_unix_millis(at));
        }
        for text in [address_from, address_before].into_iter().flatten() {
            q = q.bind(text);
        }
        let rows: Vec<AuditRow> = q
            .bind(i64::from(limit))
            .fetch_all(&mut self.read().await?)
            .await?;
        rows.into_iter().map(ChainedEvent::try_from).collect()
    }

    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>> {
        let rows: Vec<AuditRow> = query::<B>(NEWEST)
            .bind(i64::from(n))
            .fetch_all(&mut self.read().await?)
            .await?;
        rows.into_iter().map(ChainedEvent::try_from).collect()
    }

    async fn audit_head(&self) -> StoreResult<(i64, String)> {
        Ok(query::<B>("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut self.read().await?)
            .await?)
    }

    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)> {
        Ok(
            query::<B>("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")
                .fetch_one(&mut self.read().await?)
                .await?,
        )
    }
}
