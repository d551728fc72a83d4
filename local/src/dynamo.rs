//! The embedded DynamoDB: `dynoxide` over HTTP on 127.0.0.1, persistent in
//! the data directory or in memory, with the TTL sweeper DynamoDB would run.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::error::StartError;

/// How often expired ActiveConnections rows are deleted. DynamoDB itself
/// takes up to a few days; sooner is kinder locally.
const TTL_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// File name of the database inside the data directory.
const DATABASE_FILE: &str = "chat.db";

/// A running embedded DynamoDB.
pub struct EmbeddedDynamo {
    pub endpoint: String,
}

/// Opens the database and serves it until `shutdown` is cancelled.
pub async fn start(
    data_dir: Option<&Path>,
    listen: SocketAddr,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<EmbeddedDynamo, StartError> {
    let database = match data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
                path: dir.to_owned(),
                source,
            })?;
            let path = dir.join(DATABASE_FILE);
            let path = path.to_str().ok_or_else(|| {
                StartError::Dynamo(format!(
                    "data directory {} is not valid UTF-8",
                    dir.display()
                ))
            })?;
            dynoxide::Database::new(path).map_err(|error| StartError::Dynamo(error.to_string()))?
        }
        None => {
            dynoxide::Database::memory().map_err(|error| StartError::Dynamo(error.to_string()))?
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "DynamoDB",
            address: listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| StartError::Bind {
        what: "DynamoDB",
        address: listen,
        source,
    })?;

    let sweeper = database.clone();
    let stop_sweeping = shutdown.clone();
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval(TTL_SWEEP_INTERVAL);
        loop {
            tokio::select! {
                () = stop_sweeping.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let database = sweeper.clone();
            match tokio::task::spawn_blocking(move || database.sweep_ttl()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(expired)) => debug!(expired, "TTL sweep deleted expired items"),
                Ok(Err(error)) => warn!(%error, "TTL sweep failed"),
                Err(error) => warn!(%error, "TTL sweep task failed"),
            }
        }
    });

    tasks.spawn(async move {
        let stopped = shutdown.clone();
        if let Err(error) = dynoxide::server::serve_with_shutdown(listener, database, async move {
            stopped.cancelled().await
        })
        .await
        {
            warn!(%error, "embedded DynamoDB stopped with an error");
        }
    });
    Ok(EmbeddedDynamo {
        endpoint: format!("http://{address}"),
    })
}
