//! The `$connect` route's Lambda function.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    handlers::lambda::init_logging();
    let chat = handlers::lambda::chat_from_env().await?;
    handlers::lambda::run(|event| handlers::connect(chat, event)).await
}
