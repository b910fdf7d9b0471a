//! Session renewal with refresh-token rotation and reuse detection.

use super::{AuthService, IssuedSession, ended_error};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::{RefreshToken, TokenHash, TokenPair};
use crate::domain::sessions::{Rotation, Session, SessionState};

impl AuthService {
    /// Swaps a refresh token for a new token pair. A refresh token works once: presenting one
    /// that was already used ends the whole session, since either the customer or a thief holds
    /// a copy. Renewal is not activity, and never reaches past the absolute lifetime.
    pub async fn refresh(
        &self,
        presented: &str,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        let token = RefreshToken::parse(presented).ok_or(AuthError::Unauthenticated)?;
        let hash = token.hash();
        let Some(session) = self.store.session_by_refresh(&hash).await? else {
            return match self.store.session_by_retired_refresh(&hash).await? {
                Some(session) => Err(self.revoke_for_reuse(&session, client).await),
                None => Err(AuthError::Unauthenticated),
            };
        };
        let now = self.clock.now();
        self.policies
            .session
            .check_renewal(&session, now)
            .map_err(ended_error)?;
        match session.state {
            SessionState::Active => {}
            SessionState::TwoFactorPending => return Err(AuthError::TwoFactorRequired),
            SessionState::EnrolmentRequired => return Err(AuthError::EnrolmentRequired),
            SessionState::PasswordReset => return Err(AuthError::PasswordResetInProgress),
        }

        let tokens = TokenPair::generate()?;
        let rotation = rotation(
            &session,
            hash,
            &tokens,
            self.policies
                .session
                .expiry(SessionState::Active, session.created_at, now),
            now,
        );
        let event = AuditEvent::new(AuditKind::SessionRefreshed, Outcome::Success, now)
            .customer(&session.customer_id)
            .session(&session.id)
            .client(client);
        if !self.store.rotate_session(&rotation, &event).await? {
            // A concurrent request spent this token first: that is reuse too.
            return Err(self.revoke_for_reuse(&session, client).await);
        }
        metrics::counter!("finhub_refreshes_total", "outcome" => "success").increment(1);
        Ok(IssuedSession {
            session_id: session.id,
            tokens,
            issued_at: now,
            expires_at: rotation.expires_at,
            two_factor_required: false,
            enrolment_required: false,
        })
    }

    async fn revoke_for_reuse(&self, session: &Session, client: &ClientContext) -> AuthError {
        let event = AuditEvent::new(AuditKind::RefreshReused, Outcome::Failure, self.clock.now())
            .customer(&session.customer_id)
            .session(&session.id)
            .client(client)
            .reason("refresh_token_reused");
        metrics::counter!("finhub_refreshes_total", "outcome" => "reused").increment(1);
        // Only ending the session is a change worth a write of its own; a replay at a session
        // already ended is counted and audited in aggregate, so replaying a spent token in a
        // loop costs the store no write.
        if session.revoked {
            self.refusals.count_event(&event);
            return AuthError::Unauthenticated;
        }
        match self
            .store
            .revoke_session(&session.id, "refresh_token_reused", &event)
            .await
        {
            Ok(true) => AuthError::Unauthenticated,
            Ok(false) => {
                self.refusals.count_event(&event);
                AuthError::Unauthenticated
            }
            Err(e) => e.into(),
        }
    }
}

fn rotation(
    session: &Session,
    old: TokenHash,
    tokens: &TokenPair,
    expires_at: time::OffsetDateTime,
    at: time::OffsetDateTime,
) -> Rotation {
    Rotation {
        session_id: session.id.clone(),
        old_refresh: Some(old),
        access_hash: tokens.access.hash(),
        refresh_hash: tokens.refresh.hash(),
        expires_at,
        at,
    }
}
