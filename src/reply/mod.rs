//! Stage 3 — the **reply**: one way through the stages for every caller ([`process`]: intake →
//! render → seal), sealing a result into one bounded, attested reply ([`seal`](mod@seal)), and the pure
//! decision of how a delivery is settled ([`settle`]).

pub mod process;
pub mod seal;
pub mod settle;

pub use seal::{seal, Sealed, Sealing};
