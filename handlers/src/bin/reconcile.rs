//! An operator's command, not a Lambda function: closes the sessions of
//! connections API Gateway no longer has (their `$disconnect` never came),
//! asking the Management API about each ActiveConnections row. Reads the
//! same variables as the functions (tables, MANAGEMENT_API_ENDPOINT) and
//! AWS credentials from the usual places.
//!
//!   MANAGEMENT_API_ENDPOINT=https://… ACTIVE_CONNECTIONS_TABLE=… SESSION_HISTORY_TABLE=… \
//!     cargo run -p chat-handlers --bin reconcile
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    let management = &chat.management;
    let report = handlers::reconcile::close_dead_connections(
        &chat.store,
        handlers::time::Timestamp::now(),
        "Connection gone (found by reconcile)",
        |id| async move { management.is_connected(&id).await },
    )
    .await?;
    println!(
        "checked {} connections: closed {} dead ones, {} could not be checked",
        report.checked, report.closed, report.unknown
    );
    Ok(())
}
