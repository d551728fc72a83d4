//! The `$connect` route's Lambda function.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run(|event| handlers::connect(&chat, event)).await
}
