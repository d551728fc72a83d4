//! The `$connect` REQUEST authorizer's Lambda function (deployed only when
//! sign-in is turned on). It verifies tokens and touches no AWS service.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    handlers::lambda::init_logging();
    let settings = handlers::auth::AuthSettings::from_env()?;
    let verifier = handlers::auth::Verifier::new(settings)?;
    handlers::lambda::run(|event| handlers::authorize(&verifier, event)).await
}
