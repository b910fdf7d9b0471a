//! The delivery worker's pass over the webhook outbox: each security event posted at least
//! once, retried with the messages' backoff until a day after it happened, then given up on.

use std::time::Duration as StdDuration;

use super::Courier;
use super::message::{ClaimToken, Finish};
use super::webhook::Webhook;
use crate::domain::ports::StoreResult;

/// Security events posted, by outcome (`sent`, `retried`, `failed`, `expired`).
const WEBHOOK_METRIC: &str = "finhub_webhook_deliveries_total";

impl Courier {
    /// Posts security events until the process ends, every `every`: a loop of its own, so a
    /// slow or unreachable receiver never holds back codes. Nothing without a webhook.
    pub async fn post_webhooks(self, every: StdDuration) {
        if self.webhooks.is_none() {
            return;
        }
        loop {
            match self.post_due_webhooks().await {
                // A full batch: there may be more waiting.
                Ok(n) if n >= self.policy.batch() as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook pass failed; will retry"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One pass: claims the webhook events due now and posts each; returns how many it
    /// claimed. Nothing without a webhook.
    pub async fn post_due_webhooks(&self) -> StoreResult<usize> {
        let Some(sender) = &self.webhooks else {
            return Ok(0);
        };
        let claim = ClaimToken::generate();
        let claimed = self
            .store
            .claim_webhooks(
                self.clock.now(),
                self.policy.lease,
                self.policy.batch(),
                &claim,
            )
            .await?;
        for webhook in &claimed {
            if self.clock.now() >= webhook.expires_at {
                self.give_up(webhook, "expired", "not delivered within 24 hours")
                    .await?;
                continue;
            }
            match self.send_within(sender.post(webhook)).await {
                Ok(()) => {
                    metrics::counter!(WEBHOOK_METRIC, "outcome" => "sent").increment(1);
                    let finish = self
                        .store
                        .finish_webhook(webhook, true, None, self.clock.now())
                        .await?;
                    if finish == Finish::ClaimLost {
                        tracing::warn!(webhook.id = %webhook.id, "webhook claim taken over by another worker; its outcome stands");
                    }
                }
                Err(e) if e.permanent => {
                    tracing::error!(error = %e, webhook.id = %webhook.id, kind = %webhook.kind, "webhook refused the event; giving up");
                    self.give_up(webhook, "failed", &e.to_string()).await?;
                }
                Err(e) => {
                    let next = self.clock.now() + self.policy.retry_delay(webhook.attempts);
                    if next >= webhook.expires_at {
                        tracing::error!(error = %e, webhook.id = %webhook.id, kind = %webhook.kind, "webhook not delivered within 24 hours; giving up");
                        self.give_up(webhook, "expired", &e.to_string()).await?;
                        continue;
                    }
                    metrics::counter!(WEBHOOK_METRIC, "outcome" => "retried").increment(1);
                    tracing::warn!(error = %e, webhook.id = %webhook.id, attempt = webhook.attempts, "webhook not delivered; will retry");
                    self.store
                        .retry_webhook(webhook, next, &e.to_string())
                        .await?;
                }
            }
        }
        Ok(claimed.len())
    }

    async fn give_up(
        &self,
        webhook: &Webhook,
        outcome: &'static str,
        why: &str,
    ) -> StoreResult<()> {
        metrics::counter!(WEBHOOK_METRIC, "outcome" => outcome).increment(1);
        self.store
            .finish_webhook(webhook, false, Some(why), self.clock.now())
            .await?;
        Ok(())
    }
}
