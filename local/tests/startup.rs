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
    run_with_log_filter(args, None)
}

fn run_with_log_filter(args: &[&str], rust_log: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-local"));
    command.args(args).env_remove("CHAT_DYNAMODB_ENDPOINT");
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let output = command.output().expect("chat-local runs");
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
fn a_log_filter_that_does_not_parse_is_named_and_the_default_used() {
    let endpoint = format!("http://127.0.0.1:{}", dead_port());
    let args = ["--dynamodb-endpoint", &endpoint, "--listen", "127.0.0.1:0"];
    let (code, stderr) = run_with_log_filter(&args, Some("handlers=loud"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("RUST_LOG is not a list of level or target=level directives"),
        "{stderr}"
    );
    assert!(stderr.contains("handlers=loud"), "{stderr}");

    let (_, stderr) = run_with_log_filter(&args, Some("warn,handlers=debug"));
    assert!(!stderr.contains("RUST_LOG"), "a good filter: {stderr}");
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

/// `kill -9` in the middle of a conversation, then a restart on the same
/// data, seconds later: history is intact, and the sessions the dead process
/// left open are closed (1006, a reason, a duration) as of when the process
/// was last alive, not as of the restart, and their rows removed.
#[test]
fn a_restart_after_kill_9_closes_what_the_dead_process_left_open() {
    use testkit::item::{connection_row, number, scan, string};
    use testkit::stack::{Client, start_stack, unique_prefix};

    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = unique_prefix();
    let data_dir = dir.path().display().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-local"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dynamodb-listen",
            "127.0.0.1:0",
        ])
        .args(["--data-dir", &data_dir, "--table-prefix", &prefix])
        .args(["--stream-poll-ms", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(endpoint) = testkit::dynamo::external_endpoint() {
        command.args(["--dynamodb-endpoint", &endpoint]);
    }
    let mut child = command.spawn().expect("chat-local starts");
    let url = testkit::stack::banner_websocket_url(&mut child);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // The client stays connected until the process dies under it.
    let client = runtime.block_on(async {
        let mut client = Client::connect(&url).await;
        client.say("said before the crash").await;
        client.next_of_type("message").await;
        client
    });
    let id = client.id.clone();
    // Chat a little longer than one liveness mark, so the mark, not the
    // message, is the last sign of life.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let killed_at = handlers::time::Timestamp::now();
    child.kill().expect("kill -9");
    let _ = child.wait();
    drop(client);
    // The stack is down for a while: that is not chat time.
    std::thread::sleep(std::time::Duration::from_secs(3));

    runtime.block_on(async {
        let t = start_stack(dir.path(), &prefix, &[]).await;
        let tables = &t.stack.tables;
        assert!(
            scan(&t.dynamodb, &tables.active_connections)
                .await
                .is_empty(),
            "the dead connection's row is gone"
        );
        let messages = scan(&t.dynamodb, &tables.message_history).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(string(&messages[0], "message"), "said before the crash");
        let session = testkit::eventually("the session is measured", || async {
            connection_row(&t.dynamodb, &tables.session_history, &id)
                .await
                .filter(|item| item.contains_key("duration_seconds"))
        })
        .await;
        assert_eq!(number(&session, "disconnect_status_code"), "1006");
        assert!(string(&session, "disconnect_reason").contains("stopped without closing"));
        let said_at: handlers::time::Timestamp =
            string(&messages[0], "timestamp").parse().expect("a time");
        let closed_at: handlers::time::Timestamp =
            string(&session, "disconnected_at").parse().expect("a time");
        assert!(
            closed_at <= killed_at,
            "closed at {closed_at}, after the kill at {killed_at}"
        );
        assert!(
            closed_at >= said_at.plus(std::time::Duration::from_secs(1)),
            "closed at {closed_at}: the liveness mark saw it alive after its message at {said_at}"
        );
        let connected_at: handlers::time::Timestamp =
            string(&session, "connected_at").parse().expect("a time");
        let duration: f64 = number(&session, "duration_seconds")
            .parse()
            .expect("a number");
        assert!(
            duration <= killed_at.seconds_since(connected_at),
            "{duration} s: the downtime is not chat time"
        );
        t.stack.shutdown().await;

        // A clean restart finds nothing to close: what was closed stays so.
        let t = start_stack(dir.path(), &prefix, &[]).await;
        let again = connection_row(&t.dynamodb, &t.stack.tables.session_history, &id)
            .await
            .expect("the session");
        assert_eq!(again, session);
        t.stack.shutdown().await;
    });
}

#[test]
fn a_file_that_is_not_a_database_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("chat.db"), vec![0x5a_u8; 8192]).expect("written");
    let data_dir = dir.path().display().to_string();
    let (code, stderr) = run(&[
        "--data-dir",
        &data_dir,
        "--listen",
        "127.0.0.1:0",
        "--dynamodb-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("chat.db is not a chat-local database"),
        "{stderr}"
    );
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(
        !stderr.contains("encryption"),
        "the engine's advice to its developers: {stderr}"
    );
}

#[test]
fn the_same_address_for_the_gateway_and_the_engine_names_both_flags() {
    let port = dead_port().to_string();
    let address = format!("127.0.0.1:{port}");
    let (code, stderr) = run(&[
        "--in-memory",
        "--listen",
        &address,
        "--dynamodb-listen",
        &address,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--listen and --dynamodb-listen are both"),
        "{stderr}"
    );
    assert!(!stderr.contains("another chat-local"), "{stderr}");
}
