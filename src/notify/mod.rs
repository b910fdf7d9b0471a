//! Delivery of two-factor codes: implementations of the domain's
//! [`Notifier`](crate::domain::ports::Notifier) port.

pub mod outbox;
