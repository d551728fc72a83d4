//! The stream processor's Lambda function.
use std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let processor = stream_processor::Processor::new(handlers::lambda::start().await?);
    handlers::lambda::run(|event| async {
        // Failed records come back in the response, never as a failed batch.
        Ok::<_, Infallible>(processor.handle(event).await)
    })
    .await
}
