//! FinHub Auth: signs in FinHub's individual (B2C) customers.
//!
//! The crate is layered: [`http`] turns requests into calls on the [`domain`], which holds every
//! rule and knows nothing of HTTP or SQL; [`store`] persists the domain behind one trait;
//! [`notify`] delivers two-factor codes. [`startup`] wires them into a running service and
//! [`cli`] is the operator's entry point.

#![deny(missing_docs)]

pub mod breach;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod geo;
pub mod http;
pub mod limits;
pub mod notify;
pub mod passkeys;
pub mod reload;
pub mod startup;
pub mod store;
pub mod telemetry;
