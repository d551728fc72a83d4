//! The metrics a stream batch records, as CloudWatch Embedded Metric Format.
//! Its own test binary, because it installs the process-wide recorder
//! exactly as the Lambda binaries do.

#![allow(clippy::expect_used)] // a failed step fails the test

use serde_json::Value;
use testkit::Harness;
use testkit::fixtures::{stream_batch as batch, stream_record as record};

#[tokio::test]
async fn a_batch_emits_emf_with_namespace_dimensions_names_and_units() {
    let settings = handlers::lambda::MetricsSettings {
        namespace: "ChatTest".into(),
        stage: "ci".into(),
    };
    let collector = handlers::lambda::init_metrics(&settings).expect("installs the EMF recorder");

    let h = Harness::start().await;
    for id in ["alice", "bob", "L0SM9cOFvHcCIhw="] {
        h.connected(id).await;
    }
    h.disconnected("L0SM9cOFvHcCIhw=").await;
    let response = stream_processor::Processor::new(h.chat.clone())
        .handle(batch(vec![
            testkit::fixtures::stream_record_for("insert.json", "bob"),
            record("modify_disconnected.json"),
            record("undecodable.json"),
        ]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);

    let mut out = Vec::new();
    collector.flush(&mut out).expect("flushes");
    let text = String::from_utf8(out).expect("UTF-8");
    let documents: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("each line is one JSON document"))
        .collect();
    assert!(!documents.is_empty(), "{text}");

    let mut units = std::collections::HashMap::new();
    let mut values = std::collections::HashMap::new();
    for document in &documents {
        let aws = &document["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some(), "{document}");
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("the EMF directive");
        for directive in directives {
            assert_eq!(directive["Namespace"], "ChatTest");
            for metric in directive["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("named").to_owned();
                // Fan-out metrics carry `kind` (message or presence) too.
                let expected = if name.starts_with("fanout_") || name == "connections_pruned" {
                    assert_eq!(document["kind"], "presence", "{name}: {document}");
                    serde_json::json!([["Stage", "kind"]])
                } else {
                    serde_json::json!([["Stage"]])
                };
                assert_eq!(directive["Dimensions"], expected, "{name}");
                values.insert(name.clone(), document[&name].clone());
                units.insert(name, metric["Unit"].as_str().unwrap_or("None").to_owned());
            }
        }
        assert_eq!(
            document["Stage"], "ci",
            "the dimension value is in the document"
        );
        assert!(
            !text.contains("L0SM9cOFvHcCIhw="),
            "no connection ids in metrics (low cardinality)"
        );
    }
    assert_eq!(units.get("connects").map(String::as_str), Some("Count"));
    assert_eq!(units.get("disconnects").map(String::as_str), Some("Count"));
    assert_eq!(
        units.get("session_duration").map(String::as_str),
        Some("Seconds")
    );
    assert_eq!(
        units.get("presence_frames_sent").map(String::as_str),
        Some("Count")
    );
    assert_eq!(
        units.get("stream_records_failed").map(String::as_str),
        Some("Count")
    );
    assert_eq!(
        units.get("fanout_latency").map(String::as_str),
        Some("Milliseconds")
    );
    assert_eq!(values["connects"], 1);
    assert_eq!(values["disconnects"], 1);
    assert_eq!(values["stream_records_failed"], 1);
    // the welcome, and one presence frame (joined and left) to alice
    assert_eq!(values["presence_frames_sent"], 2);
    let durations = &values["session_duration"];
    let recorded: Vec<f64> = match durations {
        Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
        value => value.as_f64().into_iter().collect(),
    };
    assert_eq!(recorded, [84.877]);
}
