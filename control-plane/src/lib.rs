//! meshgate control plane: the demo issuer and the `meshgate` command line.

pub mod access;
pub mod access_store;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod issuer;
pub mod serve;
pub mod snapshot;
pub mod validate;
pub mod view;
