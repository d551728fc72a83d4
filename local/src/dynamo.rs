//! The embedded DynamoDB: `dynoxide` serving the DynamoDB and DynamoDB
//! Streams HTTP API on a loopback listener, persistent in a directory or in
//! memory, with the TTL sweeper DynamoDB would run. The local stack and the
//! tests start it the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// How often expired items (ActiveConnections' `ttl`) are deleted. DynamoDB
/// itself takes up to a few days; sooner is kinder locally.
const TTL_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

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
    let Some(dir) = data_dir else {
        return dynoxide::Database::memory()
            .map_err(|error| EmbeddedError::Open(error.to_string()));
    };
    std::fs::create_dir_all(dir).map_err(|source| EmbeddedError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    let file = dir.join(DATABASE_FILE);
    let path = file
        .to_str()
        .ok_or_else(|| EmbeddedError::NotUtf8(dir.to_owned()))?;
    dynoxide::Database::new(path).map_err(|error| {
        let detail = error.to_string();
        // SQLite's "file is not a database", which the engine answers with
        // advice for its own developers (an encryption feature).
        if detail.contains("not a database") || detail.contains("encrypt") {
            EmbeddedError::NotADatabase {
                path: file,
                detail: "SQLite says \"file is not a database\"".into(),
            }
        } else {
            EmbeddedError::Open(detail)
        }
    })
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
