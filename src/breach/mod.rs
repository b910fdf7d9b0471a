//! The breached-password sources (the domain's
//! [`BreachedPasswords`](crate::domain::ports::BreachedPasswords) port): a Pwned-Passwords file
//! searched on disk, or a k-anonymity range service.

mod file;
mod range;

pub use file::{BreachedFile, Lookup};
pub use range::RangeService;
