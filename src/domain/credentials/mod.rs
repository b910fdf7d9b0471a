//! What a customer proves who they are with: the password, second factors and the challenges
//! that ask for them, and the lockout that failures of either count towards.

pub mod challenge;
pub mod factor;
pub mod lockdown;
pub mod lockout;
pub mod passkey;
pub mod passkey_login;
pub mod password;
pub mod recovery;
pub mod reset;
pub mod totp;
