//! The embedded DynamoDB: `dynoxide` serving the DynamoDB and DynamoDB
//! Streams HTTP API on a loopback listener, persistent in a directory or in
//! memory, with the TTL sweeper DynamoDB would run. The local stack and the
//! tests start it the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// How often expired items (ActiveConnections' `ttl`) are deleted. DynamoDB
/// itself takes up to a few days; sooner is kinder locally.
const TTL_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long indexing the stream records at start waits for another
/// process's write to the same database to finish.
const INDEX_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// File name of the database inside the data directory.
const DATABASE_FILE: &str = "chat.db";

/// Why the embedded engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {0} is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("cannot index the database's stream records: {0}")]
    Index(String),
    #[error(
        "{path} is not a chat-local database (it is not an SQLite database, or it is damaged): {detail}. \
         Move it away (or delete it: every message and session in it is lost) and start again, \
         or choose another --data-dir"
    )]
    NotADatabase { path: PathBuf, detail: String },
    #[error("cannot listen on {address}: {source}; choose another address with --dynamodb-listen")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running embedded DynamoDB. Stops when [`EmbeddedDynamo::shutdown`] is
/// awaited or when dropped.
pub struct EmbeddedDynamo {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl EmbeddedDynamo {
    /// Opens the database (in `data_dir`, or in memory when `None`) and
    /// serves it on `listen`.
    pub async fn start(data_dir: Option<&Path>, listen: SocketAddr) -> Result<Self, EmbeddedError> {
        let database = open(data_dir)?;
        let bind = |source| EmbeddedError::Bind {
            address: listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(bind)?;
        let address = listener.local_addr().map_err(bind)?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(sweep_ttl(database.clone(), stop.clone()));
        let stopped = stop.clone();
        tasks.spawn(async move {
            let serve = dynoxide::server::serve_with_shutdown(listener, database, async move {
                stopped.cancelled().await
            });
            if let Err(error) = serve.await {
                warn!(%error, "embedded DynamoDB stopped with an error");
            }
        });
        tasks.close();
        Ok(Self {
            endpoint: format!("http://{address}"),
            stop,
            tasks,
        })
    }

    /// Stops serving and waits until the database is closed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }
}

impl Drop for EmbeddedDynamo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn open(data_dir: Option<&Path>) -> Result<dynoxide::Database, EmbeddedError> {
    open_at(&database_path(data_dir)?, data_dir)
}

fn open_at(path: &str, data_dir: Option<&Path>) -> Result<dynoxide::Database, EmbeddedError> {
    let database = dynoxide::Database::new(path).map_err(|error| {
        let detail = error.to_string();
        // SQLite's "file is not a database", which the engine answers with
        // advice for its own developers (an encryption feature).
        match data_dir {
            Some(dir) if detail.contains("not a database") || detail.contains("encrypt") => {
                EmbeddedError::NotADatabase {
                    path: dir.join(DATABASE_FILE),
                    detail: "SQLite says \"file is not a database\"".into(),
                }
            }
            _ => EmbeddedError::Open(detail),
        }
    })?;
    index_stream_records(path).map_err(|error| EmbeddedError::Index(error.to_string()))?;
    Ok(database)
}

/// The database as SQLite opens it: `chat.db` in `data_dir`, created if
/// missing; without one, an in-memory database this process alone can
/// open again by name (shared cache), so that [`index_stream_records`]
/// reaches it. Each call names a new one: tests start several stacks.
fn database_path(data_dir: Option<&Path>) -> Result<String, EmbeddedError> {
    static IN_MEMORY: AtomicU64 = AtomicU64::new(0);
    let Some(dir) = data_dir else {
        let n = IN_MEMORY.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        return Ok(format!(
            "file:chat-local-{pid}-{n}?mode=memory&cache=shared"
        ));
    };
    std::fs::create_dir_all(dir).map_err(|source| EmbeddedError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    dir.join(DATABASE_FILE)
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| EmbeddedError::NotUtf8(dir.to_owned()))
}

/// Indexes, for the two queries dynoxide-rs 3.2 runs on its stream records,
/// the expressions they search by. It keeps every record (DynamoDB keeps
/// them 24 hours) in one table without an index, and every write to a table
/// with a stream asks for the table's highest sequence number
/// (`MAX(CAST(sequence_number AS INTEGER)) ... WHERE table_name = ?`), every
/// GetRecords for those past a position in one shard: each a scan of all
/// records so far. A crowd of 10,000 connecting writes 10,000 records, so
/// its writes cost time quadratic in the crowd, all of it under the
/// engine's one lock (docs/performance.md, "10,000 clients"). With these,
/// each is a seek. Created where missing, through a connection of our own:
/// the engine's is not reachable, and SQLite picks up a new index in every
/// connection.
fn index_stream_records(path: &str) -> rusqlite::Result<()> {
    let connection = rusqlite::Connection::open(path)?;
    // Another process on the same data directory may be writing.
    connection.busy_timeout(INDEX_BUSY_TIMEOUT)?;
    connection.execute_batch(
        "CREATE INDEX IF NOT EXISTS chat_local_stream_by_sequence
             ON _stream_records (table_name, CAST(sequence_number AS INTEGER));
         CREATE INDEX IF NOT EXISTS chat_local_stream_by_shard
             ON _stream_records (table_name, shard_id, CAST(sequence_number AS INTEGER));",
    )
}

/// dynoxide never expires items by itself.
async fn sweep_ttl(database: dynoxide::Database, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(TTL_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let database = database.clone();
        match tokio::task::spawn_blocking(move || database.sweep_ttl()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(expired)) => debug!(expired, "TTL sweep deleted expired items"),
            Ok(Err(error)) => warn!(%error, "TTL sweep failed"),
            Err(error) => warn!(%error, "TTL sweep task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two queries dynoxide-rs 3.2 runs on its stream records, as its
    /// src/storage.rs has them: the next sequence number of a table, and
    /// GetRecords' page of a shard.
    const NEXT_SEQUENCE_NUMBER: &str = "SELECT COALESCE(MAX(CAST(sequence_number AS INTEGER)), 0) + 1 \
         FROM _stream_records WHERE table_name = ?1";
    const RECORDS_AFTER: &str = "SELECT event_name, keys_json, new_image, old_image, sequence_number, \
         created_at, user_identity, event_id FROM _stream_records \
         WHERE table_name = ?1 AND shard_id = ?2 AND CAST(sequence_number AS INTEGER) > ?3 \
         ORDER BY CAST(sequence_number AS INTEGER) ASC LIMIT ?4";

    /// How SQLite would run `query` on the database at `path`.
    fn plan(path: &str, query: &str) -> String {
        let connection = rusqlite::Connection::open(path).expect("the database opens again");
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .expect("the query prepares");
        // The plan does not depend on the values.
        let unbound = vec![rusqlite::types::Null; statement.parameter_count()];
        let steps = statement
            .query_map(rusqlite::params_from_iter(unbound), |row| {
                row.get::<_, String>(3)
            })
            .expect("the plan runs")
            .collect::<Result<Vec<_>, _>>()
            .expect("the plan reads");
        steps.join("; ")
    }

    fn assert_seeks(path: &str) {
        let next = plan(path, NEXT_SEQUENCE_NUMBER);
        assert!(
            next.starts_with("SEARCH") && next.contains("INDEX chat_local_stream_by_sequence"),
            "{next}"
        );
        let page = plan(path, RECORDS_AFTER);
        assert!(
            page.starts_with("SEARCH") && page.contains("INDEX chat_local_stream_by_shard"),
            "{page}"
        );
        assert!(
            !page.contains("TEMP B-TREE"),
            "sorted without the index: {page}"
        );
    }

    #[test]
    fn an_in_memory_engine_seeks_its_stream_records() {
        let path = database_path(None).expect("a name for it");
        let _database = open_at(&path, None).expect("the engine opens");
        assert_seeks(&path);
        assert_ne!(
            database_path(None).expect("another name"),
            path,
            "each stack has its own"
        );
    }

    #[test]
    fn a_persistent_engine_seeks_its_stream_records_and_reopens() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = database_path(Some(dir.path())).expect("its file");
        drop(open(Some(dir.path())).expect("the engine opens"));
        // Opening it again finds the indexes there and keeps them.
        let _database = open(Some(dir.path())).expect("the engine opens again");
        assert_seeks(&path);
    }
}
