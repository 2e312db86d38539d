//! Storage: one diesel `MultiConnection` over PostgreSQL and SQLite, an r2d2 pool, embedded
//! migrations, the repository functions (one module per table group), and [`types`], where ids and
//! closed sets become column text.
//!
//! Repository functions return diesel's `QueryResult`. Those that look rows up on behalf of a
//! caller take the caller's `WorkspaceId` and filter by it, so a row of another workspace is
//! indistinguishable from one that does not exist; those that act on a row the service already
//! loaded through such a lookup (sync, registration) go by the row's own id.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod conversations;
pub mod events;
pub mod graph_calls;
pub mod idempotency;
pub mod in_list;
pub mod models;
pub mod phone_numbers;
pub mod registration;
pub mod schema;
pub mod send_pacing;
pub mod types;
pub mod webhook_jobs;
pub mod workspaces;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{
    AnsiTransactionManager, InstrumentationEvent, SimpleConnection, TransactionManager,
};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The one connection type the repository layer is written against.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Sets up OpenSSL, which libpq uses for TLS, before the process's first PostgreSQL connection
/// (what OpenSSL's first set-up asks for holds for the whole process). By default OpenSSL frees
/// its state from an exit handler while other threads may still be closing TLS connections (a
/// pool's idle connections, a database thread finishing): a double free as the process exits.
/// Set up here, OpenSSL registers no exit handler. Idempotent and cheap; call it before any
/// PostgreSQL connection made outside [`DbUrl::connect`].
pub fn prepare_postgres_client() {
    openssl_sys::init();
}

/// Arbitrary but fixed key for `pg_advisory_lock`, so replicas starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x5741_4e55_4d42_4552; // "WANUMBER"

/// How long a statement waits for another connection's lock before it fails as busy.
pub const LOCK_WAIT_MS: u64 = 10_000;

/// Which database a `DATABASE_URL` names, decided by its scheme alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Postgres(String),
    /// A file path (or `:memory:`), with the `sqlite:` scheme removed.
    Sqlite(String),
}

impl DbUrl {
    /// Parses `postgres://`, `postgresql://`, `sqlite://path` or `sqlite:path`. Anything else is an
    /// error rather than a new, empty SQLite file named after the typo.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("DATABASE_URL `sqlite:` names no file".into());
            }
            return Ok(DbUrl::Sqlite(path.to_owned()));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(format!(
            "DATABASE_URL has unsupported scheme `{scheme}`: use postgres://… or sqlite://path"
        ))
    }

    /// `postgres` or `sqlite`, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            DbUrl::Postgres(_) => "postgres",
            DbUrl::Sqlite(_) => "sqlite",
        }
    }

    /// Opens the concrete connection for this scheme (never `MultiConnection::establish`, which
    /// tries each backend in turn and hides the real cause behind "Invalid connection url").
    pub fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match self {
            DbUrl::Postgres(url) => {
                prepare_postgres_client();
                let mut conn = diesel::PgConnection::establish(url)?;
                // A statement waits for a lock as long as SQLite's busy_timeout, then fails
                // (503, retry) rather than holding a request and a pooled connection forever.
                conn.batch_execute(&format!("SET lock_timeout = '{LOCK_WAIT_MS}ms'"))
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Postgresql(conn))
            }
            DbUrl::Sqlite(path) => {
                sqlite_multithread();
                // Switching a new file to WAL can fail with "database is locked" without waiting
                // on busy_timeout while another connection does the same: set up one at a time.
                let _guard = sqlite_lock();
                let mut conn = diesel::SqliteConnection::establish(path)?;
                conn.batch_execute(&format!(
                    // busy_timeout first: switching to WAL takes a lock another connection may hold.
                    "PRAGMA busy_timeout = {LOCK_WAIT_MS}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// r2d2 manager that opens connections through [`DbUrl::connect`] and counts the statements they run.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DbUrl,
    queries: Arc<AtomicU64>,
}

/// A pooled connection, with when it was last known to work.
pub struct Pooled {
    conn: DbConnection,
    checked_at: std::time::Instant,
    /// Set when a statement failed because the connection itself is gone (the server restarted,
    /// the network dropped): the pool then discards it instead of handing it out again.
    lost: Arc<std::sync::atomic::AtomicBool>,
}

/// Whether an error says the connection itself is unusable (trying again, on another, helps).
pub fn is_connection_lost(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        err,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | Error::BrokenTransactionManager
    )
}

/// A connection handed out again within this long of its last use is not tested first: a busy
/// service would otherwise pay a round trip to the database on every request.
const TRUSTED_FOR: Duration = Duration::from_secs(5);

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Pooled, r2d2::Error> {
        let mut conn = self.url.connect().map_err(r2d2::Error::ConnectionError)?;
        let queries = self.queries.clone();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen_lost = lost.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { .. } => {
                queries.fetch_add(1, Ordering::Relaxed);
            }
            InstrumentationEvent::FinishQuery {
                error: Some(err), ..
            } if is_connection_lost(err) => seen_lost.store(true, Ordering::Relaxed),
            _ => {}
        });
        Ok(Pooled {
            conn,
            checked_at: std::time::Instant::now(),
            lost,
        })
    }

    /// Tests a connection that sat idle (the server may have closed it meanwhile).
    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), r2d2::Error> {
        if pooled.checked_at.elapsed() > TRUSTED_FOR || pooled.lost.load(Ordering::Relaxed) {
            pooled
                .conn
                .batch_execute("SELECT 1")
                .map_err(r2d2::Error::QueryError)?;
        }
        pooled.checked_at = std::time::Instant::now();
        Ok(())
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        pooled.lost.load(Ordering::Relaxed)
            || <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                &mut pooled.conn,
            )
    }
}

/// Why a connection could not be had, or the blocking task failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool in time.
    #[error("{0}")]
    Unavailable(String),
    /// The database job panicked, or the database threads have stopped.
    #[error("{0}")]
    Task(String),
}

/// The pool, plus the means to run blocking diesel work off the async executor.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    backend: &'static str,
    queries: Arc<AtomicU64>,
    /// Work for the database threads, taken in arrival order.
    jobs: crossbeam_channel::Sender<Job>,
}

/// A unit of database work, run on one of the database threads.
type Job = Box<dyn FnOnce() + Send>;

/// Starts `count` threads that take jobs in arrival order and run them, one at a time each: as
/// many as the pool has connections, so a job never waits on the pool's lock for one. They end
/// when the last [`Db`] is dropped. A job that panics fails only its caller.
fn start_threads(count: u32) -> Result<crossbeam_channel::Sender<Job>, String> {
    let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
    for n in 0..count {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("db-{n}"))
            .spawn(move || {
                for job in queue {
                    // The caller hears of a panic through its dropped reply.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| format!("cannot start the database threads: {e}"))?;
    }
    Ok(jobs)
}

impl Db {
    /// Builds the pool and runs pending migrations before handing it out.
    pub fn connect(url: &DbUrl, max_size: u32) -> Result<Self, String> {
        if let DbUrl::Sqlite(path) = url {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
                }
            }
        }
        run_migrations(url)?;
        let queries = Arc::new(AtomicU64::new(0));
        let manager = Manager {
            url: url.clone(),
            queries: queries.clone(),
        };
        let pool = Pool::builder()
            .max_size(max_size)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| format!("cannot open the {} database: {e}", url.backend()))?;
        Ok(Db {
            pool,
            backend: url.backend(),
            queries,
            jobs: start_threads(max_size)?,
        })
    }

    /// Statements run so far by pooled connections (for `/metrics`, and to check query counts).
    pub fn queries_executed(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Runs `f` with a pooled connection on one of the database threads, in arrival order.
    /// Work whose caller has gone (a dropped request) before its turn is skipped.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pool = self.pool.clone();
        let job: Job = Box::new(move || {
            if reply.is_closed() {
                return;
            }
            let result = pool
                .get()
                .map_err(|e| DbError::Unavailable(format!("database pool: {e}")).into())
                .and_then(|mut conn: PooledConnection<Manager>| f(&mut conn.conn));
            let _ = reply.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| DbError::Task("the database threads have stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Task("database task failed: it panicked".into()))?
    }
}

fn run_migrations(url: &DbUrl) -> Result<(), String> {
    let mut conn = url
        .connect()
        .map_err(|e| format!("cannot connect to the {} database: {e}", url.backend()))?;
    let migrate = |conn: &mut DbConnection| -> Result<(), String> {
        let result = match conn {
            DbConnection::Postgresql(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
            DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        };
        match result {
            Ok(0) => Ok(()),
            Ok(n) => {
                tracing::info!(applied = n, "database migrations applied");
                Ok(())
            }
            Err(e) => Err(format!("database migration failed: {e}")),
        }
    };
    match &mut conn {
        DbConnection::Postgresql(c) => {
            // Replicas wait for each other's migrations however long they take.
            c.batch_execute("SET lock_timeout = 0")
                .map_err(|e| format!("cannot set up the migration connection: {e}"))?;
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .map_err(|e| format!("cannot take the migration lock: {e}"))?;
            let result = migrate(&mut conn);
            if let DbConnection::Postgresql(c) = &mut conn {
                let _ =
                    c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            }
            result
        }
        // SQLite is embedded: one process owns the file, so a lock within the process suffices.
        DbConnection::Sqlite(_) => {
            let _guard = sqlite_lock();
            migrate(&mut conn)
        }
    }
}

/// Puts SQLite in its multi-thread mode before it opens anything: a connection is used by one thread
/// at a time (the pool hands it out), so SQLite's own lock around every call on it, which its
/// default serialized mode takes, is pure cost. Too late once SQLite is initialized; then the
/// default stays, which is also correct.
fn sqlite_multithread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called once, before this process opens any SQLite connection
        // (every connection is opened through here); if SQLite was initialized anyway, it returns
        // SQLITE_MISUSE and changes nothing.
        let rc =
            unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(rc, "SQLite keeps its serialized threading mode");
        }
        // Nor does anything read SQLite's memory statistics, which take a global lock on every
        // allocation. SAFETY: as above.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0);
        }
        // SAFETY: registers a function with the signature SQLite calls auto-extensions with.
        let rc = unsafe { libsqlite3_sys::sqlite3_auto_extension(Some(stable_plans)) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::warn!(rc, "SQLite will re-plan statements with bound LIMITs");
        }
    });
}

/// Run by SQLite for every connection it opens: turns on the query planner stability guarantee.
/// Without it SQLite reads a bound `LIMIT` (diesel binds every limit) while planning and
/// re-prepares the statement each time it is bound again, so the table's cached query was parsed
/// and planned afresh on every request. No query here relies on bound values for its plan (the
/// searches are `%…%` patterns, and no statistics are gathered).
unsafe extern "C" fn stable_plans(
    db: *mut libsqlite3_sys::sqlite3,
    _error: *mut *mut std::ffi::c_char,
    _api: *const libsqlite3_sys::sqlite3_api_routines,
) -> std::ffi::c_int {
    // SAFETY: `db` is the connection SQLite is opening; the option takes an int and a nullable
    // out-pointer.
    unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        );
    }
    libsqlite3_sys::SQLITE_OK
}

/// Serializes SQLite connection set-up and migrations within the process.
fn sqlite_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is taken
/// up front and waits on `busy_timeout` instead of failing with `SQLITE_BUSY` on lock upgrade.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            // The original error matters more than a failed rollback (which also breaks the connection,
            // so the pool discards it).
            let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(err)
        }
    }
}

/// True when the database could not take the statement in time because another holds its lock:
/// SQLite busy (or locked) past `busy_timeout`, PostgreSQL's lock timeout. Trying again helps.
pub fn is_busy(err: &diesel::result::Error) -> bool {
    let diesel::result::Error::DatabaseError(_, info) = err else {
        return false;
    };
    let message = info.message();
    message.contains("database is locked")
        || message.contains("database table is locked")
        || message.contains("database is busy")
        || message.contains("lock timeout")
}

/// True when `err` is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The current time, truncated to microseconds so both backends store and return the same value.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::microseconds(1)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_scheme_picks_the_backend() {
        assert_eq!(
            DbUrl::parse("postgres://u@h/db").unwrap().backend(),
            "postgres"
        );
        assert_eq!(
            DbUrl::parse("postgresql://u@h/db").unwrap().backend(),
            "postgres"
        );
        assert_eq!(
            DbUrl::parse("sqlite://./data/x.db").unwrap(),
            DbUrl::Sqlite("./data/x.db".into())
        );
        assert_eq!(
            DbUrl::parse("sqlite:x.db").unwrap(),
            DbUrl::Sqlite("x.db".into())
        );
    }

    #[test]
    fn unknown_database_url_scheme_is_an_error() {
        let err = DbUrl::parse("mysql://localhost/db").unwrap_err();
        assert!(err.contains("mysql"), "{err}");
        assert!(DbUrl::parse("./data/x.db").is_err());
        assert!(DbUrl::parse("sqlite://").is_err());
    }

    fn memory_db(threads: u32) -> Db {
        Db::connect(&DbUrl::Sqlite(":memory:".into()), threads).unwrap()
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_only_its_caller() {
        let db = memory_db(2);
        for _ in 0..4 {
            let failed: Result<(), DbError> = db.run(|_| panic!("a bug in one query")).await;
            assert!(matches!(failed, Err(DbError::Task(_))), "{failed:?}");
        }
        // Both threads are still there to run work.
        let select = || {
            db.run(|conn| {
                conn.batch_execute("SELECT 1")
                    .map_err(|e| DbError::Task(e.to_string()))
            })
        };
        let both = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(select(), select())
        });
        let (a, b) = both.await.expect("no thread is left to run work");
        a.unwrap();
        b.unwrap();
    }

    #[tokio::test]
    async fn work_is_taken_in_arrival_order_and_skipped_when_its_caller_has_gone() {
        let db = memory_db(1);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        // The one thread is busy until released.
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (worker, running) = (db.clone(), started.clone());
        let busy = tokio::spawn(async move {
            worker
                .run(move |_| {
                    running.store(true, Ordering::SeqCst);
                    hold.recv().ok();
                    Ok::<_, DbError>(())
                })
                .await
        });
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Queued behind it: a job whose caller gives up before its turn, then two that wait.
        let seen = order.clone();
        let gone = db.run(move |_| {
            seen.lock().unwrap().push("gone");
            Ok::<_, DbError>(())
        });
        let polled_once = tokio::time::timeout(Duration::from_millis(1), gone).await;
        assert!(
            polled_once.is_err(),
            "it cannot have run while the thread is busy"
        );
        let (first, second) = (order.clone(), order.clone());
        let first = db.run(move |_| {
            first.lock().unwrap().push("first");
            Ok::<_, DbError>(())
        });
        let second = db.run(move |_| {
            second.lock().unwrap().push("second");
            Ok::<_, DbError>(())
        });
        release.send(()).unwrap();
        let (a, b) = tokio::join!(first, second);
        a.unwrap();
        b.unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "second"]);
    }
}
