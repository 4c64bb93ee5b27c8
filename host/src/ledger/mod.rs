//! Phase 8, record: the durable ledger. Rows are queued (bounded), written in batches to
//! the local spool (fsync) and then to Postgres; the spool is replayed when Postgres was
//! down and at start-up. Nothing accepted is lost; nothing is written twice. Every
//! statement on `billing_transactions` that money decisions rest on lives here.

pub mod bounds;
mod commit;
pub mod dead_letter;
pub mod insert;
pub mod lookup;
pub mod pending;
pub mod queries;
pub mod refusal;
pub mod rollup;
pub mod row;
pub mod spool;
pub mod unrecorded;
pub mod writer;

pub use lookup::LedgerBalance;
pub use pending::PendingDebits;
pub use row::TransactionRow;
pub use writer::{Ledger, LedgerConfig, LedgerError};
