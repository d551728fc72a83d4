//! The `remove`, `ban` and `delete` routes' Lambda function: the one
//! function allowed to close connections (`DeleteConnection`).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run(|event| handlers::moderate(&chat, event)).await
}
