//! The `history` route's Lambda function.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run(|event| handlers::history(&chat, event)).await
}
