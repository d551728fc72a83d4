//! What a new user sees when chat-local cannot start: the endpoint or
//! address it tried, what happened, the flag that changes it, and a non-zero
//! exit status.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::process::Command;

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-local"))
        .args(args)
        .env_remove("CHAT_DYNAMODB_ENDPOINT")
        .output()
        .expect("chat-local runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unreachable_dynamodb_endpoint_is_named_with_the_cause_and_the_flag() {
    let endpoint = format!("http://127.0.0.1:{}", dead_port());
    let (code, stderr) = run(&["--dynamodb-endpoint", &endpoint, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    let expected = format!("chat-local: cannot reach DynamoDB at {endpoint}: ");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("ListTables"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("drop --dynamodb-endpoint"), "{stderr}");
    assert!(
        !stderr.contains("DispatchFailure {"),
        "no Debug dumps: {stderr}"
    );
}

#[test]
fn an_address_in_use_names_the_address_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let address = taken.local_addr().expect("its address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().display().to_string();
    let (code, stderr) = run(&[
        "--listen",
        &address,
        "--dynamodb-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn a_flag_out_of_range_is_refused_with_status_2() {
    let (code, stderr) = run(&["--max-message-bytes", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--max-message-bytes"), "{stderr}");
    assert!(stderr.contains("1..=32768"), "{stderr}");
}
