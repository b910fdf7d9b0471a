//! Rate limits shared by every instance: implementations of the domain's
//! [`SharedCounter`](crate::domain::ports::SharedCounter) port.

pub mod redis;
