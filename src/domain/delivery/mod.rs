//! Delivering what the service sends a customer (two-factor codes, security notices) through
//! the outbox. The message (`crate::domain::delivery::message`) is written in the transaction of what it
//! is about (nothing is sent from the request); the [`Courier`] in every `serve` process claims
//! due messages, renders each, hands it to the [`Notifier`](crate::domain::ports::Notifier), and records
//! each outcome: sent; retried later with exponential backoff and jitter; dropped once it has
//! expired or been superseded (never sent late); or given up on after the last attempt, which
//! gives a code's send back when no attempt can have delivered it. A crash between the commit
//! and the send loses nothing: the claim's lease runs out and the message is claimed again.
//!
//! - `courier.rs`: the worker and how hard it tries ([`DeliveryPolicy`]).
//! - `message.rs`: a message and what it carries, by purpose; `outcome.rs`: where its delivery
//!   stands.
//! - `render.rs`: what each purpose of message says.
//! - `seal.rs`: codes wait sealed ([`CodeSeal`]) and are erased when their message is finished.
//! - `template.rs`: the text of a code's message.
//! - `webhook.rs`: security events for FinHub's fraud systems, delivered by the same worker.

mod courier;
pub mod message;
mod outcome;
mod render;
mod seal;
mod template;
pub mod webhook;
mod webhook_courier;

pub use courier::{Courier, DeliveryPolicy};
pub use seal::{CodeSeal, SealError, SealedFor};
pub use template::CodeTemplate;
