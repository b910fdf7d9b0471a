//! Rows as both backends return them, and their conversion into domain values. Instants are
//! stored as milliseconds since the Unix epoch in both backends, so these are shared.

use anyhow::{Context as _, anyhow};

use crate::clock::from_unix_millis;
use crate::domain::audit::{AuditEvent, AuditKind, ChainedEvent, Outcome};
use crate::domain::credentials::challenge::{
    Challenge, ChallengeId, ChallengeMethod, ChallengeStatus, CodeHash,
};
use crate::domain::credentials::factor::{Factor, FactorId, FactorKind};
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::credentials::passkey::CeremonyState;
use crate::domain::customers::{Customer, CustomerId, Email, PersonName, Phone, Username};
use crate::domain::sessions::{Session, SessionId, SessionState};

use crate::domain::ports::{LoginCandidate, StoreError};
use crate::domain::risk::DeviceStanding;
use crate::store::record::{Cells, Record, record};

fn corrupt(what: &str) -> StoreError {
    StoreError::Other(anyhow!("corrupt stored {what}"))
}

record! {
    #[derive(Debug)]
    pub struct CustomerRow {
        pub id: String,
        pub username: String,
        pub email: String,
        pub phone: Option<String>,
        pub first_name: String,
        pub last_name: String,
        pub kyc_status: String,
        pub password_hash: String,
        pub last_login_at: Option<i64>,
        /// The default factor's, from [`default_factor_join`]; `None` without one.
        pub factor_id: Option<String>,
        pub factor_method: Option<String>,
        pub factor_address: Option<String>,
    }
}

/// The columns of [`CustomerRow`], from `customers c` and [`default_factor_join`].
macro_rules! customer_columns {
    () => {
        "c.id, c.username, c.email, c.phone, c.first_name, c.last_name, c.kyc_status, \
         c.password_hash, c.last_login_at, f.id AS factor_id, f.method AS factor_method, \
         f.address AS factor_address"
    };
}
pub(crate) use customer_columns;

/// The columns of [`LockoutRow`]; `lockout_columns!("l.")` names them from `lockouts l`.
macro_rules! lockout_columns {
    () => {
        $crate::store::rows::lockout_columns!("")
    };
    ($table:literal) => {
        concat!(
            $table,
            "failures, ",
            $table,
            "lock_count, ",
            $table,
            "locked_until, ",
            $table,
            "operator_locked, ",
            $table,
            "locked_down"
        )
    };
}
pub(crate) use lockout_columns;

/// Joins the default factor `f` of customer `c`, if they hold one: one indexed lookup
/// (`factors_one_default`) beside the customer's row, so reading a customer stays one query.
macro_rules! default_factor_join {
    () => {
        "LEFT JOIN factors f ON f.customer_id = c.id AND f.is_default = TRUE"
    };
}
pub(crate) use default_factor_join;

/// Whether customer `$customer`'s known devices include the one hashed `$2`, and whether they
/// hold any (`device_known`, `devices_known`; each found by `devices`' unique key): what
/// [`crate::domain::risk::DeviceStanding::of`] judges a login's device by.
macro_rules! device_counts {
    ($customer:literal) => {
        concat!(
            "(SELECT CAST(COUNT(*) AS BIGINT) FROM devices d WHERE d.customer_id = ",
            $customer,
            " AND d.fingerprint_hash = $2 AND d.verified_at IS NOT NULL) AS device_known, \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM devices d WHERE d.customer_id = ",
            $customer,
            " AND d.verified_at IS NOT NULL) AS devices_known"
        )
    };
}
pub(crate) use device_counts;

/// A static query reading [`CustomerRow`]s: `SELECT` its columns from `customers c` with
/// [`default_factor_join`], then the rest of the query.
macro_rules! select_customer {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            $crate::store::rows::customer_columns!(),
            " FROM customers c ",
            $crate::store::rows::default_factor_join!(),
            " ",
            $rest
        )
    };
}
pub(crate) use select_customer;

impl TryFrom<CustomerRow> for Customer {
    type Error = StoreError;

    fn try_from(r: CustomerRow) -> Result<Self, StoreError> {
        let bad = |_| corrupt("customer");
        Ok(Self {
            id: CustomerId::from_stored(r.id),
            username: Username::from_stored(r.username),
            email: Email::parse(&r.email).map_err(bad)?,
            phone: r
                .phone
                .as_deref()
                .map(Phone::parse)
                .transpose()
                .map_err(bad)?,
            first_name: PersonName::parse(&r.first_name).map_err(bad)?,
            last_name: PersonName::parse(&r.last_name).map_err(bad)?,
            kyc_status: r.kyc_status.parse().map_err(bad)?,
            factor: match (r.factor_id, r.factor_method) {
                (Some(id), Some(method)) => Some(Factor {
                    kind: FactorKind::from_stored(&method, r.factor_address.as_deref())
                        .map_err(|_| corrupt("factor"))?,
                    id: FactorId::from_stored(id),
                }),
                _ => None,
            },
            password_hash: r.password_hash,
            last_login_at: r.last_login_at.map(from_unix_millis),
        })
    }
}

#[derive(Debug)]
pub struct SessionRow {
    /// Read from `session_id`: named apart from the customer's id, so both can be read from
    /// one joined row.
    pub id: String,
    pub customer_id: String,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub absolute_expires_at: i64,
    pub last_seen_at: i64,
    pub login_at: Option<i64>,
    pub previous_login_at: Option<i64>,
    pub two_factor_verified: bool,
    pub revoked_at: Option<i64>,
    pub recent_auth_at: Option<i64>,
}

impl Record for SessionRow {
    fn decode<C: Cells>(row: &C) -> Result<Self, C::Error> {
        Ok(Self {
            id: row.named("session_id")?,
            customer_id: row.named("customer_id")?,
            state: row.named("state")?,
            created_at: row.named("created_at")?,
            expires_at: row.named("expires_at")?,
            absolute_expires_at: row.named("absolute_expires_at")?,
            last_seen_at: row.named("last_seen_at")?,
            login_at: row.named("login_at")?,
            previous_login_at: row.named("previous_login_at")?,
            two_factor_verified: row.named("two_factor_verified")?,
            revoked_at: row.named("revoked_at")?,
            recent_auth_at: row.named("recent_auth_at")?,
        })
    }
}

/// The columns of [`SessionRow`], from `sessions s`.
macro_rules! session_columns {
    () => {
        "s.id AS session_id, s.customer_id, s.state, s.created_at, s.expires_at, \
         s.absolute_expires_at, s.last_seen_at, s.login_at, s.previous_login_at, \
         s.two_factor_verified, s.revoked_at, s.recent_auth_at"
    };
}
pub(crate) use session_columns;

/// A static query reading [`SessionRow`]s: `SELECT` its columns, then the rest of the query
/// (which names `sessions s`).
macro_rules! select_session {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            $crate::store::rows::session_columns!(),
            " ",
            $rest
        )
    };
}
pub(crate) use select_session;

/// A session with its customer, read together.
#[derive(Debug)]
pub struct SessionCustomerRow {
    pub session: SessionRow,
    pub customer: CustomerRow,
}

impl Record for SessionCustomerRow {
    fn decode<C: Cells>(row: &C) -> Result<Self, C::Error> {
        Ok(Self {
            session: SessionRow::decode(row)?,
            customer: CustomerRow::decode(row)?,
        })
    }
}

/// A static query reading [`SessionCustomerRow`]s from `sessions s JOIN customers c`.
macro_rules! select_session_with_customer {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            $crate::store::rows::session_columns!(),
            ", ",
            $crate::store::rows::customer_columns!(),
            " FROM sessions s JOIN customers c ON c.id = s.customer_id ",
            $crate::store::rows::default_factor_join!(),
            " ",
            $rest
        )
    };
}
pub(crate) use select_session_with_customer;

impl TryFrom<SessionCustomerRow> for (Session, Customer) {
    type Error = StoreError;

    fn try_from(r: SessionCustomerRow) -> Result<Self, StoreError> {
        Ok((r.session.try_into()?, r.customer.try_into()?))
    }
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: SessionId::from_stored(r.id),
            customer_id: CustomerId::from_stored(r.customer_id),
            state: SessionState::from_stored(&r.state).ok_or_else(|| corrupt("session state"))?,
            created_at: from_unix_millis(r.created_at),
            expires_at: from_unix_millis(r.expires_at),
            absolute_expires_at: from_unix_millis(r.absolute_expires_at),
            last_seen_at: from_unix_millis(r.last_seen_at),
            login_at: r.login_at.map(from_unix_millis),
            previous_login_at: r.previous_login_at.map(from_unix_millis),
            two_factor_verified: r.two_factor_verified,
            recent_auth_at: r.recent_auth_at.map(from_unix_millis),
            revoked: r.revoked_at.is_some(),
        })
    }
}

/// A username's counters and its customer, either of which may be missing, from one row of
/// `lockouts l` and `customers c` (with [`default_factor_join`]) both outer-joined to the name.
#[derive(Debug)]
pub struct LoginCandidateRow {
    pub lockout: Option<LockoutRow>,
    pub customer: Option<CustomerRow>,
    /// Known devices of the customer with the login's fingerprint hash (0 or 1), and in all.
    pub device_known: i64,
    pub devices_known: i64,
}

impl Record for LoginCandidateRow {
    fn decode<C: Cells>(row: &C) -> Result<Self, C::Error> {
        // Each table's key column says whether it joined a row.
        let held: Option<String> = row.named("id")?;
        Ok(Self {
            lockout: LockoutRow::joined(row)?,
            customer: held.map(|_| CustomerRow::decode(row)).transpose()?,
            device_known: row.named("device_known")?,
            devices_known: row.named("devices_known")?,
        })
    }
}

/// A guess's counters, session and challenge, each of which may be missing, from one row of
/// `lockouts l`, `sessions s` and `challenges c` outer-joined to the username asked.
#[derive(Debug)]
pub struct AdmissionRow {
    pub lockout: Option<LockoutRow>,
    /// The session's state and when it was revoked.
    pub session: Option<(String, Option<i64>)>,
    /// The challenge's status, attempts and expiry.
    pub challenge: Option<(String, i64, i64)>,
}

impl Record for AdmissionRow {
    fn decode<C: Cells>(row: &C) -> Result<Self, C::Error> {
        let session_state: Option<String> = row.named("session_state")?;
        let challenge_status: Option<String> = row.named("challenge_status")?;
        Ok(Self {
            lockout: LockoutRow::joined(row)?,
            session: match session_state {
                Some(state) => Some((state, row.named("session_revoked_at")?)),
                None => None,
            },
            challenge: match challenge_status {
                Some(status) => Some((
                    status,
                    row.named("challenge_attempts")?,
                    row.named("challenge_expires_at")?,
                )),
                None => None,
            },
        })
    }
}

impl LoginCandidateRow {
    /// The candidate of a login that `named` a device or not.
    pub fn into_candidate(self, named: bool) -> LoginCandidate {
        let customer = self.customer.map(Customer::try_from).transpose();
        LoginCandidate {
            lockout: self.lockout.map(Into::into).unwrap_or_default(),
            device: matches!(customer, Ok(Some(_)))
                .then(|| DeviceStanding::of(named, self.device_known > 0, self.devices_known > 0)),
            customer,
        }
    }
}

record! {
    #[derive(Debug)]
    pub struct LockoutRow {
        pub failures: i64,
        pub lock_count: i64,
        pub locked_until: Option<i64>,
        pub operator_locked: bool,
        pub locked_down: bool,
    }
}

impl LockoutRow {
    /// The counters outer-joined into `row`, if a counter row joined (`failures`, never null
    /// in a row of `lockouts`, is null otherwise).
    pub fn joined<C: Cells>(row: &C) -> Result<Option<Self>, C::Error> {
        let counted: Option<i64> = row.named("failures")?;
        counted.map(|_| Self::decode(row)).transpose()
    }
}

impl From<LockoutRow> for LockoutRecord {
    fn from(r: LockoutRow) -> Self {
        Self {
            failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
            lock_count: u32::try_from(r.lock_count).unwrap_or(u32::MAX),
            locked_until: r.locked_until.map(from_unix_millis),
            operator_locked: r.operator_locked,
            locked_down: r.locked_down,
        }
    }
}

record! {
    #[derive(Debug)]
    pub struct ChallengeRow {
        pub id: String,
        pub session_id: String,
        pub method: String,
        pub factor_id: Option<String>,
        pub code_hash: Option<Vec<u8>>,
        pub ceremony: Option<String>,
        pub expires_at: i64,
        pub attempts: i64,
        pub status: String,
    }
}

/// The columns of [`ChallengeRow`].
pub const CHALLENGE_COLUMNS: &str =
    "id, session_id, method, factor_id, code_hash, ceremony, expires_at, attempts, status";

impl TryFrom<ChallengeRow> for Challenge {
    type Error = StoreError;

    fn try_from(r: ChallengeRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: ChallengeId::from_stored(r.id),
            session_id: SessionId::from_stored(r.session_id),
            method: ChallengeMethod::from_stored(&r.method)
                .ok_or_else(|| corrupt("challenge method"))?,
            factor_id: r.factor_id.map(FactorId::from_stored),
            code_hash: r
                .code_hash
                .map(|hash| CodeHash::from_stored(&hash).ok_or_else(|| corrupt("code hash")))
                .transpose()?,
            ceremony: r.ceremony.map(CeremonyState),
            expires_at: from_unix_millis(r.expires_at),
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            status: ChallengeStatus::from_stored(&r.status)
                .ok_or_else(|| corrupt("challenge status"))?,
        })
    }
}

record! {
    #[derive(Debug)]
    pub struct AuditRow {
        pub seq: i64,
        pub id: String,
        pub at: i64,
        pub kind: String,
        pub outcome: String,
        pub reason: Option<String>,
        pub username: Option<String>,
        pub customer_id: Option<String>,
        pub session_id: Option<String>,
        pub ip: Option<String>,
        pub user_agent: Option<String>,
        pub device_fingerprint: Option<String>,
        pub device_name: Option<String>,
        pub details: String,
        pub prev_hash: String,
        pub hash: String,
    }
}

/// A static query reading [`AuditRow`]s: `SELECT` its columns, then the rest of the query.
macro_rules! select_audit {
    ($rest:literal) => {
        concat!("SELECT ", "seq, id, at, kind, outcome, reason, username, customer_id, session_id, ip, user_agent, device_fingerprint, device_name, details, prev_hash, hash", " ", $rest)
    };
}
pub(crate) use select_audit;

impl TryFrom<AuditRow> for ChainedEvent {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        let details = serde_json::from_str(&r.details)
            .with_context(|| format!("audit event {} has unreadable details", r.seq))?;
        Ok(Self {
            seq: r.seq,
            event: AuditEvent {
                id: r.id,
                at: from_unix_millis(r.at),
                kind: AuditKind::from_stored(&r.kind).ok_or_else(|| corrupt("audit kind"))?,
                outcome: Outcome::from_stored(&r.outcome)
                    .ok_or_else(|| corrupt("audit outcome"))?,
                reason: r.reason,
                username: r.username,
                customer_id: r.customer_id,
                session_id: r.session_id,
                ip: r.ip,
                user_agent: r.user_agent,
                device_fingerprint: r.device_fingerprint,
                device_name: r.device_name,
                details,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
    }
}
