//! Stage 2, the caller. Takes a verified token's claims and the provider that issued it;
//! gives the [`principal::Principal`] (subject, groups, catalog user) and, with a catalog
//! snapshot, the [`caller::Caller`] rules look at (groups closed under nesting, ownership).
//!
//! [`provider`] holds an issuer's claim checks and identity mapping, read through [`claims`];
//! [`groupref`] and [`backstage`] say how group names and Backstage tokens are written;
//! [`cache`] keeps verified identities so a token seen before skips stage 1.

pub mod backstage;
pub mod cache;
pub mod caller;
pub mod claims;
pub mod groupref;
pub mod principal;
pub mod provider;
