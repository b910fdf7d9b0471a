//! Which adapter fills each port: the store and its audit key, the notifier, shared rate
//! limits, the location database. Each reads its own section of the settings and names the
//! variable at fault when it cannot be used.

use crate::breach::{BreachedFile, RangeService};
use crate::config::PasswordSection;
use crate::domain::ports::BreachedPasswords;
use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

use crate::config::{LimitsSection, NotifierKind, NotifierSection, Settings};
use crate::domain::delivery::CodeTemplate;
use crate::domain::ports::{Notifier, PasskeyCeremonies, Store, WebhookSender};
use crate::domain::risk::rate_limit::RateLimits;
use crate::geo::MmdbLocator;
use crate::limits::redis::RedisCounter;
use crate::notify::email::Mailer;
use crate::notify::live::LiveNotifier;
use crate::notify::outbox::OutboxNotifier;
use crate::notify::sms::SmsGateway;
use crate::notify::webhook::WebhookClient;
use crate::passkeys::WebauthnPasskeys;
use crate::store::{self, Migrations, Trail};

/// What a command does with the audit key generated for an SQLite database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratedKey {
    /// `serve` and `demo`: create it on first start, then use it; on PostgreSQL, refuse to
    /// start without a configured key unless `FINHUB_ALLOW_NO_AUDIT_KEY` accepts the risk.
    Create,
    /// The operator commands: use it when `serve` has created one, so that what they append
    /// to the chain and what they verify is sealed with the same key.
    Reuse,
}

/// Settles the audit key before anything is opened. Without `FINHUB_AUDIT_KEY`, codes waiting
/// for delivery would be sealed under a key of the process alone, so a restart silently drops
/// them, and the chain would be plain SHA-256. On SQLite, whose files one host keeps, a key is
/// generated once into an owner-only file beside the database and read on every later start;
/// a chain begun without a key switches to it at a marked event (`audit.sealed_with_key`), as
/// with a configured key. PostgreSQL serves several instances, which must share one key, so
/// none is made up there.
pub fn settle_audit_key(settings: &mut Settings, generated: GeneratedKey) -> anyhow::Result<()> {
    let url = settings.store.url.clone();
    let database = match store::DatabaseKind::of(&url) {
        Some(store::DatabaseKind::Sqlite) => store::sqlite_files::database_file(&url)?,
        Some(store::DatabaseKind::Postgres) => {
            if generated == GeneratedKey::Create
                && settings.audit.key.is_none()
                && !settings.audit.allow_no_key
            {
                anyhow::bail!(
                    "serve refuses PostgreSQL without an audit key: queued codes would be lost on every restart and the audit chain would be plain SHA-256; set FINHUB_AUDIT_KEY or FINHUB_AUDIT_KEY_FILE (the same on every instance), or FINHUB_ALLOW_NO_AUDIT_KEY=true to accept the risk"
                );
            }
            None
        }
        None => None,
    };
    let Some(database) = database else {
        return Ok(());
    };
    let path = store::sqlite_files::audit_key_file(&database);
    if settings.audit.key.is_some() {
        if path.exists() {
            tracing::warn!(
                path = %path.display(),
                "FINHUB_AUDIT_KEY is set, so the key generated beside the database is not used; a chain sealed with that key verifies only with it"
            );
        }
        return Ok(());
    }
    let key = match generated {
        GeneratedKey::Create => {
            let (key, created) = store::sqlite_files::read_or_create_audit_key(&path)?;
            if created {
                tracing::info!(path = %path.display(), "no FINHUB_AUDIT_KEY: generated an audit key beside the database; back it up with the database and keep it owner-only");
            } else {
                tracing::info!(path = %path.display(), "no FINHUB_AUDIT_KEY: using the audit key generated beside the database");
            }
            Some(key)
        }
        GeneratedKey::Reuse => store::sqlite_files::read_audit_key(&path)?,
    };
    settings.audit.key = key;
    Ok(())
}

/// Opens the store the settings name, doing `migrations`; the operator commands that need only
/// the store start here.
pub async fn open_store(
    settings: &Settings,
    migrations: Migrations,
) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(
        &settings.store.url,
        &settings.store.options(),
        migrations,
        Trail {
            seal: settings.audit.chain_seal()?,
            webhooks: settings.webhooks.kinds()?,
        },
    )
    .await
}

/// The security webhook's client, when `FINHUB_WEBHOOK_URL` is set (with its secret: the
/// settings refuse one without the other).
pub(super) fn webhooks(
    settings: &crate::config::WebhookSection,
) -> anyhow::Result<Option<Arc<dyn WebhookSender>>> {
    let (Some(url), Some(secret)) = (&settings.webhook_url, &settings.webhook_secret) else {
        return Ok(None);
    };
    Ok(Some(Arc::new(WebhookClient::new(url, secret)?)))
}

/// A setting that real delivery cannot do without (`FINHUB_NOTIFIER=live`), named `name`.
fn live_needs<T>(value: Option<T>, name: &str) -> anyhow::Result<T> {
    value.ok_or_else(|| anyhow::anyhow!("FINHUB_NOTIFIER=live needs {name}"))
}

/// The outbox file, or SMS and e-mail for real (`FINHUB_NOTIFIER`).
pub(super) fn notifier(settings: &NotifierSection) -> anyhow::Result<Arc<dyn Notifier>> {
    match settings.kind {
        NotifierKind::Outbox => {
            let outbox = OutboxNotifier::new(&settings.outbox_path).with_context(|| {
                format!(
                    "FINHUB_OUTBOX_PATH: cannot use {}",
                    settings.outbox_path.display()
                )
            })?;
            Ok(Arc::new(outbox))
        }
        NotifierKind::Live => {
            let sms = SmsGateway::new(
                live_needs(
                    settings.sms_gateway_url.as_deref(),
                    "FINHUB_SMS_GATEWAY_URL",
                )?,
                live_needs(
                    settings.sms_gateway_secret.clone(),
                    "FINHUB_SMS_GATEWAY_SECRET",
                )?,
            )?;
            let email = Mailer::new(
                live_needs(settings.smtp_url.as_ref(), "FINHUB_SMTP_URL")?,
                live_needs(settings.smtp_from.as_deref(), "FINHUB_SMTP_FROM")?,
                settings.smtp_ca_file.as_deref(),
            )?;
            Ok(Arc::new(LiveNotifier { sms, email }))
        }
    }
}

/// The text of codes' messages: `FINHUB_CODE_TEMPLATE`, or the default.
pub(super) fn code_template(settings: &NotifierSection) -> anyhow::Result<CodeTemplate> {
    match &settings.code_template {
        None => Ok(CodeTemplate::default()),
        Some(raw) => {
            CodeTemplate::parse(raw).map_err(|e| anyhow::anyhow!("FINHUB_CODE_TEMPLATE {e}"))
        }
    }
}

/// The location database of `FINHUB_GEOIP_DB`; the background jobs reload it on SIGHUP and
/// when its files change.
pub(super) fn locator(settings: &Settings) -> anyhow::Result<Option<Arc<MmdbLocator>>> {
    let Some(paths) = &settings.risk.geoip_db else {
        return Ok(None);
    };
    Ok(Some(Arc::new(MmdbLocator::open(paths.clone())?)))
}

/// How long the range service has to answer before the breach check is skipped.
const BREACH_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The breached-password source of `FINHUB_BREACHED_PASSWORDS_FILE` or `_URL` (one, not both);
/// a file that cannot be opened stops start-up.
pub fn breached_passwords(
    settings: &PasswordSection,
) -> anyhow::Result<Option<Arc<dyn BreachedPasswords>>> {
    match (
        &settings.breached_passwords_file,
        &settings.breached_passwords_url,
    ) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => anyhow::bail!(
            "set FINHUB_BREACHED_PASSWORDS_FILE or FINHUB_BREACHED_PASSWORDS_URL, not both"
        ),
        (Some(path), None) => {
            let file = BreachedFile::open(path).with_context(|| {
                format!(
                    "FINHUB_BREACHED_PASSWORDS_FILE: cannot open {}",
                    path.display()
                )
            })?;
            Ok(Some(Arc::new(file)))
        }
        (None, Some(url)) => {
            let url = url::Url::parse(url)
                .map_err(|_| anyhow::anyhow!("FINHUB_BREACHED_PASSWORDS_URL is not a URL"))?;
            Ok(Some(Arc::new(
                RangeService::new(url, BREACH_LOOKUP_TIMEOUT)
                    .context("FINHUB_BREACHED_PASSWORDS_URL")?,
            )))
        }
    }
}

/// The rate limits, shared through Redis when `FINHUB_REDIS_URL` names one.
pub(super) async fn rate_limits(settings: &LimitsSection) -> anyhow::Result<RateLimits> {
    let limits = settings.rate_limits();
    Ok(match &settings.redis_url {
        None => limits,
        Some(url) => {
            let counter =
                RedisCounter::new(url.expose_secret(), settings.redis_ca_file.as_deref())?;
            counter.warm_up().await;
            limits.shared_through(Arc::new(counter))
        }
    })
}

/// WebAuthn for the configured relying party; `None` (and said at start-up) when none is set.
pub fn passkeys(settings: &Settings) -> anyhow::Result<Option<Arc<dyn PasskeyCeremonies>>> {
    let Some((rp_id, origins)) = settings.passkeys.relying_party()? else {
        tracing::warn!(
            "passkeys are off: set FINHUB_WEBAUTHN_RP_ID and FINHUB_WEBAUTHN_ORIGIN to accept them"
        );
        return Ok(None);
    };
    let ceremonies = WebauthnPasskeys::new(&rp_id, &origins)?;
    tracing::info!(rp_id = %rp_id, origins = origins.len(), login = settings.passkeys.passkey_login, "passkeys are on");
    Ok(Some(Arc::new(ceremonies)))
}
