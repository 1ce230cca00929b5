//! The vouchsafe domain: identifiers and values that are valid by
//! construction, tenant settings with their bounds, roles, API-key and
//! at-rest cryptography, and the storage contract ([`store::Store`]) that the
//! `store` crate implements.
//!
//! This crate decides what is allowed; it must not speak SQL or HTTP, read
//! the system clock (time comes from a [`clock::Clock`]) or log secrets.

pub mod api_key;
pub mod audit;
pub mod authenticator;
pub mod caller;
pub mod challenge;
pub mod channel;
pub mod clock;
pub mod crypto;
pub mod delivery;
pub mod destination;
pub mod error;
pub mod event;
pub mod field_error;
pub mod fraud;
pub mod ids;
pub mod outbound;
pub mod provider;
pub mod role;
pub mod service;
pub mod settings;
pub mod store;
pub mod tenant;
pub mod user;
pub mod verification;
pub mod webhook;
pub mod yubikey;

pub use vouchsafe_otp as otp;
