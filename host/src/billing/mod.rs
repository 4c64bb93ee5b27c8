//! Money on the request path: phase 4 ([`reserve`]) holds an upper bound before the
//! upstream call; phase 7 ([`settle`]) records the transaction durably and turns the hold
//! into the real debit. Balances live in Redis ([`balance`]); expired holds are swept
//! ([`sweeper`]).

pub mod balance;
pub mod pending;
pub mod reserve;
pub mod settle;
pub mod sweeper;

pub use balance::{BalanceError, Balances, LiveBalance, Reservation, Settlement};
