//! A PostgreSQL backend, for several engine processes sharing one database.
//!
//! Three tables (created on first connect, versioned in `kms_meta`):
//!
//! - `kms_records (key BYTEA PRIMARY KEY, value BYTEA, revision BIGINT)`: the records.
//! - `kms_changes (seq BIGINT PRIMARY KEY, key BYTEA, at TIMESTAMPTZ)`: every committed write,
//!   in commit order, for [`Storage::changes_since`]; trimmed after [`PostgresOptions::keep_changes`].
//! - `kms_leases (name TEXT PRIMARY KEY, holder TEXT, expires_at TIMESTAMPTZ)`: leases.
//!
//! `kms_meta (name TEXT PRIMARY KEY, value BIGINT)` holds the schema version, the revision
//! counter and the highest trimmed change.
//!
//! **Commits.** One transaction per batch: it first advances the revision counter row by the
//! number of operations (so revisions, and the change log's sequence numbers, are handed out
//! in commit order: two commits that overlap in time serialize on that row), then locks the
//! touched records (`SELECT ... FOR UPDATE`), checks every precondition against them, writes
//! the final value of each touched key and appends the touched keys to the change log.
//! Serialization failures and deadlocks (SQLSTATE 40001, 40P01) are retried with a bounded
//! backoff. A lost connection answers [`StorageError::Unavailable`]; the pool connects again
//! by itself once the database is back.
//!
//! **Portability.** Only statements CockroachDB and YugabyteDB also accept: `INSERT ... ON
//! CONFLICT ... DO UPDATE`, `= ANY($1)` over arrays, `UNNEST`, `SELECT ... FOR UPDATE`; no
//! advisory locks, `LISTEN`, stored procedures or PostgreSQL-only types.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kms_core::{Batch, ChangedKeys, Changes, Entry, Op, Storage, StorageError};
use postgres::error::SqlState;
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

use crate::precondition;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Most commit attempts on serialization failures and deadlocks.
const MAX_ATTEMPTS: u32 = 8;

/// How a [`PostgresStorage`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most open connections (default 8).
    pub pool_size: u32,
    /// How long a call waits for a connection before answering `Unavailable` (default 2 s).
    pub connect_timeout: Duration,
    /// How long the change log keeps a change (default 10 minutes). An engine that does not
    /// follow the log for longer than this drops its whole cache when it next does.
    pub keep_changes: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(2),
            keep_changes: Duration::from_secs(600),
        }
    }
}

type Pool = r2d2::Pool<Manager>;

/// A pooled connection and the statements prepared on it (each prepared once per connection,
/// so a call costs one round trip per statement instead of two).
struct Connection {
    client: postgres::Client,
    statements: HashMap<&'static str, postgres::Statement>,
}

impl Connection {
    fn statement(&mut self, sql: &'static str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.client.prepare(sql)?;
        self.statements.insert(sql, prepared.clone());
        Ok(prepared)
    }
}

/// r2d2's manager for [`Connection`]s.
struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Connection, postgres::Error> {
        Ok(Connection {
            client: self.0.connect()?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.client.is_closed()
    }
}

const GET: &str = "SELECT value, revision FROM kms_records WHERE key = $1";
const SCAN: &str = "SELECT key, value, revision FROM kms_records
     WHERE (key > $1 OR (NOT $2 AND key = $1)) AND ($3::BYTEA IS NULL OR key < $3)
     ORDER BY key LIMIT $4";
const BUMP_REVISION: &str =
    "UPDATE kms_meta SET value = value + $1 WHERE name = 'revision' RETURNING value";
const LOCK_RECORDS: &str =
    "SELECT key, revision FROM kms_records WHERE key = ANY($1) ORDER BY key FOR UPDATE";
const DELETE_RECORDS: &str = "DELETE FROM kms_records WHERE key = ANY($1)";
const UPSERT_RECORDS: &str = "INSERT INTO kms_records (key, value, revision)
     SELECT * FROM UNNEST($1::BYTEA[], $2::BYTEA[], $3::BIGINT[])
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision";
const APPEND_CHANGES: &str =
    "INSERT INTO kms_changes (seq, key) SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[])";
const META: &str = "SELECT value FROM kms_meta WHERE name = $1";
const CHANGES: &str = "SELECT key FROM kms_changes WHERE seq > $1 AND seq <= $2 ORDER BY seq";
const LEASE: &str = "INSERT INTO kms_leases (name, holder, expires_at)
     VALUES ($1, $2, now() + $3::BIGINT * INTERVAL '1 millisecond')
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
     WHERE kms_leases.holder = EXCLUDED.holder OR kms_leases.expires_at < now()
     RETURNING holder";

/// A store in one PostgreSQL database (or anything speaking its protocol and SQL).
pub struct PostgresStorage {
    /// Always `Some` but in `drop`.
    pool: Option<Pool>,
    options: PostgresOptions,
    /// The database named in the URL, for messages (never the password).
    target: String,
    /// When the change log was last trimmed (milliseconds since `started`).
    last_trim_ms: AtomicI64,
    started: Instant,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("target", &self.target)
            .field("options", &self.options)
            .finish()
    }
}

fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        hosts.join(","),
        config
            .get_ports()
            .first()
            .map_or_else(|| "5432".to_owned(), u16::to_string),
        config.get_dbname().unwrap_or("?")
    )
}

/// Whether an error is the database being unreachable or going away (no answer, a lost
/// connection, SQLSTATE class 08 connection exception, 57 operator intervention such as a
/// shutdown, 53 insufficient resources) rather than a refused statement.
fn is_connection_error(e: &postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => e.is_closed() || matches!(code.code().get(..2), Some("08" | "57" | "53")),
    }
}

fn sql_error(e: postgres::Error) -> StorageError {
    if is_connection_error(&e) {
        StorageError::Unavailable(format!("the database connection failed: {e}"))
    } else {
        StorageError::Backend(format!("the database refused a statement: {e}"))
    }
}

fn pool_error(e: r2d2::Error) -> StorageError {
    StorageError::Unavailable(format!("no database connection: {e}"))
}

fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn revision_of(value: i64) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::Backend(format!("negative revision {value}")))
}

/// The first key after every key that starts with `prefix` (`None`: no upper bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Why a commit attempt ended without committing.
enum Failed {
    /// A precondition did not hold: final.
    Refused(StorageError),
    /// The database failed: retried when [`retryable`].
    Sql(postgres::Error),
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Self {
        Failed::Sql(e)
    }
}

impl PostgresStorage {
    /// Connects with [`PostgresOptions::default`]; see [`PostgresStorage::connect_with`].
    pub fn connect(url: &str) -> Result<Self, StorageError> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// Connects to the database `url` (`postgres://user[:password]@host[:port]/db`, or the
    /// key=value form), creating the schema on first use and checking its version.
    ///
    /// Errors: `Backend` for a malformed URL or a schema written by a newer version;
    /// `Unavailable` when the database cannot be reached.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StorageError::Backend(format!("the database URL is invalid: {e}")))?;
        let target = describe(&config);
        let manager = Manager(PostgresConnectionManager::new(config, NoTls));
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager);
        let store = PostgresStorage {
            pool: Some(pool),
            options,
            target,
            last_trim_ms: AtomicI64::new(0),
            started: Instant::now(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database this store uses, as `user@host:port/db`.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn client(&self) -> Result<r2d2::PooledConnection<Manager>, StorageError> {
        self.pool
            .as_ref()
            .ok_or_else(|| StorageError::Unavailable("the store is closing".into()))?
            .get()
            .map_err(pool_error)
    }

    /// Runs a read, once more on a fresh connection when the first one turns out closed (the
    /// database restarted since the pool opened it).
    fn read<T>(
        &self,
        f: impl Fn(&mut Connection) -> Result<T, postgres::Error>,
    ) -> Result<T, StorageError> {
        let mut client = self.client()?;
        match f(&mut client) {
            Err(e) if is_connection_error(&e) => {
                drop(client);
                let mut fresh = self.client()?;
                f(&mut fresh).map_err(sql_error)
            }
            other => other.map_err(sql_error),
        }
    }

    /// Creates the tables on first use; refuses a schema newer than this build's.
    fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.client()?;
        // Two processes starting at once may both create: the loser's statement fails on the
        // catalog's unique index, and the second attempt finds everything in place.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let created = client.client.batch_execute(
                "CREATE TABLE IF NOT EXISTS kms_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
                 CREATE TABLE IF NOT EXISTS kms_records (
                     key BYTEA PRIMARY KEY, value BYTEA NOT NULL, revision BIGINT NOT NULL);
                 CREATE TABLE IF NOT EXISTS kms_changes (
                     seq BIGINT PRIMARY KEY, key BYTEA NOT NULL,
                     at TIMESTAMPTZ NOT NULL DEFAULT now());
                 CREATE TABLE IF NOT EXISTS kms_leases (
                     name TEXT PRIMARY KEY, holder TEXT NOT NULL,
                     expires_at TIMESTAMPTZ NOT NULL);
                 INSERT INTO kms_meta (name, value) VALUES
                     ('schema', 1), ('revision', 0), ('trimmed', 0)
                 ON CONFLICT (name) DO NOTHING;",
            );
            match created {
                Ok(()) => break,
                Err(e) if attempt < 3 && !is_connection_error(&e) => continue,
                Err(e) => return Err(sql_error(e)),
            }
        }
        let version: i64 = client
            .client
            .query_one("SELECT value FROM kms_meta WHERE name = 'schema'", &[])
            .map_err(sql_error)?
            .get(0);
        if version > SCHEMA_VERSION {
            return Err(StorageError::Backend(format!(
                "the database {} holds schema version {version}, written by a newer release; \
                 this one knows versions up to {SCHEMA_VERSION}",
                self.target
            )));
        }
        Ok(())
    }

    fn commit_once(conn: &mut Connection, batch: &Batch) -> Result<(), Failed> {
        let n = i64::try_from(batch.ops.len()).map_err(|_| {
            Failed::Refused(StorageError::Backend(
                "a batch of more than 2^63 writes".into(),
            ))
        })?;
        let bump = conn.statement(BUMP_REVISION)?;
        let lock = conn.statement(LOCK_RECORDS)?;
        let delete = conn.statement(DELETE_RECORDS)?;
        let upsert = conn.statement(UPSERT_RECORDS)?;
        let append = conn.statement(APPEND_CHANGES)?;
        let mut tx = conn.client.transaction()?;
        // Taken first by every commit: revisions and change sequence numbers follow commit
        // order, and commits never wait on each other's record locks in a cycle.
        let last: i64 = tx.query_one(&bump, &[&n])?.get(0);
        let first = last - n + 1;
        let keys: Vec<&[u8]> = {
            let mut keys: Vec<&[u8]> = batch.ops.iter().map(Op::key).collect();
            keys.sort_unstable();
            keys.dedup();
            keys
        };
        let mut current: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for row in tx.query(&lock, &[&keys])? {
            let key: Vec<u8> = row.get(0);
            let revision = revision_of(row.get(1)).map_err(Failed::Refused)?;
            current.insert(key, revision);
        }
        for op in &batch.ops {
            if let Some(p) = op.precondition() {
                precondition::check(p, current.get(op.key()).copied(), op.key())
                    .map_err(Failed::Refused)?;
            }
        }
        // The final state of each touched key, the last write winning.
        let mut last_write: BTreeMap<&[u8], Option<(&[u8], i64)>> = BTreeMap::new();
        let mut change_seqs = Vec::with_capacity(batch.ops.len());
        let mut change_keys: Vec<&[u8]> = Vec::with_capacity(batch.ops.len());
        for (revision, op) in (first..).zip(&batch.ops) {
            match op {
                Op::Put { key, value, .. } => {
                    last_write.insert(key, Some((value, revision)));
                }
                Op::Delete { key, .. } => {
                    last_write.insert(key, None);
                }
            }
            change_seqs.push(revision);
            change_keys.push(op.key());
        }
        let (mut put_keys, mut put_values, mut put_revisions) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut deleted: Vec<&[u8]> = Vec::new();
        for (key, write) in last_write {
            match write {
                Some((value, revision)) => {
                    put_keys.push(key);
                    put_values.push(value);
                    put_revisions.push(revision);
                }
                None => deleted.push(key),
            }
        }
        if !deleted.is_empty() {
            tx.execute(&delete, &[&deleted])?;
        }
        if !put_keys.is_empty() {
            tx.execute(&upsert, &[&put_keys, &put_values, &put_revisions])?;
        }
        tx.execute(&append, &[&change_seqs, &change_keys])?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes changes older than [`PostgresOptions::keep_changes`], at most once a minute.
    fn trim_changes(&self, conn: &mut Connection) -> Result<(), StorageError> {
        let now_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let last = self.last_trim_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms - last < 60_000 {
            return Ok(());
        }
        self.last_trim_ms.store(now_ms.max(1), Ordering::Relaxed);
        let keep_ms = i64::try_from(self.options.keep_changes.as_millis()).unwrap_or(i64::MAX);
        let mut tx = conn.client.transaction().map_err(sql_error)?;
        let trimmed: Option<i64> = tx
            .query_one(
                "SELECT MAX(seq) FROM kms_changes
                 WHERE at < now() - $1::BIGINT * INTERVAL '1 millisecond'",
                &[&keep_ms],
            )
            .map_err(sql_error)?
            .get(0);
        if let Some(upto) = trimmed {
            tx.execute("DELETE FROM kms_changes WHERE seq <= $1", &[&upto])
                .map_err(sql_error)?;
            tx.execute(
                "UPDATE kms_meta SET value = $1 WHERE name = 'trimmed' AND value < $1",
                &[&upto],
            )
            .map_err(sql_error)?;
        }
        tx.commit().map_err(sql_error)
    }
}

impl Drop for PostgresStorage {
    /// Closes the connections on a thread of their own: closing one blocks on the client's
    /// own runtime, which must not happen on a thread that drives another (an async server
    /// dropping its engine).
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl Storage for PostgresStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        let row = self.read(|conn| {
            let statement = conn.statement(GET)?;
            conn.client.query_opt(&statement, &[&key])
        })?;
        row.map(|r| {
            Ok(Entry {
                value: r.get(0),
                revision: revision_of(r.get(1))?,
            })
        })
        .transpose()
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let end = prefix_end(prefix);
        // `after` below the prefix means "from the start of the prefix", as in every backend.
        let lower = match after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let exclusive = matches!(after, Some(a) if a >= prefix);
        let rows = self.read(|conn| {
            let statement = conn.statement(SCAN)?;
            conn.client
                .query(&statement, &[&lower, &exclusive, &end, &limit])
        })?;
        rows.into_iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                Ok((
                    key,
                    Entry {
                        value: r.get(1),
                        revision: revision_of(r.get(2))?,
                    },
                ))
            })
            .collect()
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        let mut client = self.client()?;
        let mut backoff = Duration::from_millis(5);
        for attempt in 1..=MAX_ATTEMPTS {
            match Self::commit_once(&mut client, &batch) {
                Ok(()) => return Ok(()),
                Err(Failed::Refused(e)) => return Err(e),
                Err(Failed::Sql(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Err(Failed::Sql(e)) => return Err(sql_error(e)),
            }
        }
        Err(StorageError::Unavailable(
            "the commit kept meeting concurrent transactions".into(),
        ))
    }

    fn changes_since(&self, cursor: Option<u64>) -> Result<Changes, StorageError> {
        let meta = |conn: &mut Connection, name: &str| -> Result<i64, postgres::Error> {
            let statement = conn.statement(META)?;
            Ok(conn.client.query_one(&statement, &[&name])?.get(0))
        };
        let Some(cursor) = cursor else {
            let head = self.read(|conn| meta(conn, "revision"))?;
            return Ok(Changes {
                cursor: revision_of(head)?,
                keys: ChangedKeys::Some(Vec::new()),
            });
        };
        // Trimming is housekeeping: a failure of it does not fail the read.
        if let Ok(mut conn) = self.client() {
            let _ = self.trim_changes(&mut conn);
        }
        let from = i64::try_from(cursor).unwrap_or(i64::MAX);
        let (trimmed, head, keys) = self.read(|conn| {
            // Every commit numbered at or below `head` has committed (the counter row stays
            // locked until its commit ends), so nothing at or below it can appear later.
            let head = meta(conn, "revision")?;
            let statement = conn.statement(CHANGES)?;
            let rows = conn.client.query(&statement, &[&from, &head])?;
            // Read after the changes: a trim that removed some of them before that read
            // (deleting and raising `trimmed` in one transaction) shows here.
            let trimmed = meta(conn, "trimmed")?;
            Ok((trimmed, head, rows.into_iter().map(|r| r.get(0)).collect()))
        })?;
        Ok(Changes {
            cursor: revision_of(head)?,
            // Behind the trimmed log, or ahead of the counter (a database restored from an older
            // backup): what changed is unknown.
            keys: if from < trimmed || from > head {
                ChangedKeys::All
            } else {
                ChangedKeys::Some(keys)
            },
        })
    }

    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let row = self.read(|conn| {
            let statement = conn.statement(LEASE)?;
            conn.client
                .query_opt(&statement, &[&name, &holder, &ttl_ms])
        })?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"k/"), Some(b"k0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
