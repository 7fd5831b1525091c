//! meshgate control plane: the demo issuer and the `meshgate` command line.

pub mod cli;
pub mod issuer;
pub mod validate;
