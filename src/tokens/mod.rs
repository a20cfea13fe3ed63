//! Signed tokens: keys, and compact JWS encoding and checking.

pub mod jwt;
pub mod keys;

pub use keys::{Keys, SigningAlg};
