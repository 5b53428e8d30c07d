//! The director's model: virtual services, real servers, forwarding methods, and the split
//! between what the operator asked for ([`AdminState`], weight) and what the health checkers
//! observed ([`Health`]). The effective weight that schedulers see derives from both
//! ([`RealServer::effective_weight`]).

mod intent;
mod real;
mod service;

pub use intent::*;
pub use real::*;
pub use service::*;
