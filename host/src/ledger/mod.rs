//! Phase 8, record: the durable ledger. Rows are queued (bounded), written in batches to
//! the local spool (fsync) by one stage and inserted into Postgres by another; the spool is
//! replayed when Postgres was down or behind and at start-up. Nothing accepted is lost;
//! nothing is written twice. Every statement on `billing_transactions` that money
//! decisions rest on lives here.

pub mod backlog;
pub mod bounds;
mod commit;
pub mod dead_letter;
mod frames;
pub mod insert;
mod inserter;
mod lock;
pub mod lookup;
pub mod pending;
pub mod queries;
pub mod recount;
pub mod refusal;
mod replay;
pub mod rollup;
pub mod row;
pub mod spool;
mod spool_error;
mod spooler;
mod stages;
pub mod unrecorded;
pub mod writer;

pub use backlog::Backlog;
pub use lookup::LedgerBalance;
pub use pending::PendingDebits;
pub use row::TransactionRow;
pub use writer::{Ledger, LedgerConfig, LedgerError, LeftBehind};
