//! The stream processor's binary, run as Lambda runs it at the most verbose
//! level a deployment may set and past it, on a batch whose sessions carry
//! a source address and a display name: neither address nor anything of the
//! raw records reaches its output (handlers/tests/log_secrets.rs does the
//! same for the other functions).

#![allow(clippy::expect_used)] // a failed step fails the test

use serde_json::json;
use testkit::runtime_api::{Invocation, function_variables, invoke_binary};
use testkit::{FakeManagementApi, TestDynamo, fixtures};

/// A client's address (TEST-NET-2), in each session's `source_ip`.
const ADDRESS: &str = "198.51.100.73";

#[tokio::test]
async fn the_stream_processor_logs_no_address_at_any_level() {
    let db = TestDynamo::start().await;
    let api = FakeManagementApi::start().await;
    for level in ["DEBUG", "TRACE"] {
        let mut insert = fixtures::stream_record("insert.json");
        let mut closed = fixtures::stream_record("modify_disconnected.json");
        for record in [&mut insert, &mut closed] {
            let image = serde_json::to_value(&record.change.new_image).expect("JSON");
            let mut image = image;
            image["source_ip"] = json!({ "S": ADDRESS });
            record.change.new_image = serde_json::from_value(image).expect("an image");
        }
        let batch =
            serde_json::to_value(fixtures::stream_batch(vec![insert, closed])).expect("JSON");
        let mut variables = function_variables(&db, &api, level);
        variables.push(("RUST_LOG", "trace".to_owned()));
        let (answers, output) = invoke_binary(
            env!("CARGO_BIN_EXE_stream-processor"),
            vec![batch],
            &variables,
        )
        .await;
        assert!(
            matches!(&answers[..], [Invocation::Response { .. }]),
            "{answers:?}\n{output}"
        );
        assert!(output.contains(r#""level":"INFO""#), "{output}");
        assert!(!output.contains(ADDRESS), "at {level}:\n{output}");
        assert!(
            !output.contains("NewImage"),
            "a raw record at {level}:\n{output}"
        );
    }
}
