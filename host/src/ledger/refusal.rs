//! Telling a Postgres outage from Postgres refusing what a batch carries.
//!
//! An *outage* (the server or the connection is away, busy or shutting down) passes: the
//! writer keeps the rows in the spool and retries them all. A *refusal* is about the values
//! of the statement: retrying the same batch fails the same way forever, so the writer
//! splits it to find the rows at fault (`ledger::dead_letter`).
//!
//! | SQLSTATE | meaning | |
//! |---|---|---|
//! | class `22` | data exception: `22021` a NUL character, `22001` too long, `22008` a timestamp out of range, `22P05` a JSON text jsonb cannot hold, `22P02` bad JSON | refusal |
//! | class `23` | integrity constraint | refusal |
//! | class `42` | syntax or access rule | refusal (but see [`blames_the_database`]) |
//! | class `54` | program limit: `54000` an index entry too big, `54001` too deep | refusal |
//! | anything else (`08` connection, `53` resources, `57P01` admin shutdown, `57014` cancelled, `40` serialisation/deadlock, `55` lock not available, `58`, `XX`) | | outage |
//!
//! Errors without a SQLSTATE are outages (I/O, TLS, protocol, pool timed out or closed),
//! except [`sqlx::Error::Encode`]: the client could not encode a value. When in doubt,
//! outage: a wrong "outage" stalls the ledger visibly (`xjp_ledger_oldest_unrecorded_seconds`)
//! and loses nothing, a wrong "refusal" would set good rows aside.

/// What a failed statement means for the rows it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Postgres is unavailable: keep the rows and retry them later.
    Outage,
    /// Postgres refused a value: the same statement can never succeed.
    Refusal,
}

/// The error's SQLSTATE, when Postgres sent one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Outage or refusal (the table in the module documentation).
pub fn classify(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::Encode(_) => Failure::Refusal,
        sqlx::Error::Database(_) => match sqlstate(e).as_deref().map(|c| c.get(..2).unwrap_or(c)) {
            Some("22" | "23" | "42" | "54") => Failure::Refusal,
            _ => Failure::Outage,
        },
        _ => Failure::Outage,
    }
}

/// Whether a refusal of a row is the database's doing rather than the row's: the row's
/// placeholder (no client text, every value safe) met the same SQLSTATE, or a class `42`
/// error (a missing table, a revoked privilege: nothing a value causes in the ledger's
/// statements, which bind every value). Then every row would be refused the same way, and
/// the writer treats it as an outage instead of setting the whole ledger aside.
pub fn blames_the_database(row_error: &sqlx::Error, placeholder_error: &sqlx::Error) -> bool {
    let placeholder = sqlstate(placeholder_error);
    placeholder.as_deref().is_some_and(|c| c.starts_with("42")) || placeholder == sqlstate(row_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_without_a_sqlstate() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::PoolClosed), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::Protocol("unexpected message".into())), Failure::Outage);
        assert_eq!(classify(&sqlx::Error::Encode("too big".into())), Failure::Refusal);
    }
}
