//! The fan-out workers' Lambda function: invoked asynchronously with a
//! [`handlers::fanout::FanoutTask`], the rest of one shard of a large
//! room's fan-out (handlers/src/fanout/workers.rs).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run(|task| handlers::fanout::work(&chat, task)).await
}
