//! Delivering what the service sends a customer (two-factor codes, security notices) through
//! the outbox. The message is written in the transaction of what it is about (nothing is sent
//! from the request); the [`Courier`] in every `serve` process claims due messages, hands them to
//! the [`Notifier`](super::ports::Notifier), and records each outcome: sent; retried later with
//! exponential backoff and jitter; dropped once it has expired or been superseded (never sent
//! late); or given up on after the last attempt, which gives a code's send back when no attempt
//! can have delivered it. A crash between the commit and the send loses nothing: the claim's
//! lease runs out and the message is claimed again.
//!
//! - `message.rs`: what waits in the outbox, and how its delivery ends.
//! - `seal.rs`: codes wait sealed ([`CodeSeal`]) and are erased when their message is finished.
//! - `template.rs`: the text of a code's message.
//! - `courier.rs`: the worker and how hard it tries ([`DeliveryPolicy`]).

mod courier;
mod message;
mod seal;
mod template;

pub use courier::{Courier, DeliveryPolicy};
pub use message::{
    ClaimToken, DeliveryEnd, DeliveryState, Finish, NoticeFacts, QueuedCode, QueuedNotice,
};
pub use seal::{CodeSeal, SealError, SealedFor};
pub use template::CodeTemplate;
