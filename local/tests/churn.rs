//! Connections that open and vanish at once (a tenth of a second of an
//! attacker's time, or a flaky network) cost the stream processor no
//! waiting: everyone else's welcome and presence still come promptly.

#![allow(clippy::expect_used)] // a failed step fails the test

use testkit::stack::{Client, TestStack};

#[tokio::test]
async fn a_burst_of_vanishing_connections_does_not_hold_up_a_newcomers_welcome() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let churn_url = format!("{url}?room=churn");
    // Fifty connections, each gone as soon as its handshake is done. Before,
    // each cost the stream processor four tries of its welcome, 0.9 s of
    // waiting, one after another: 45 s before anyone else's turn.
    let churners: Vec<_> = (0..50)
        .map(|_| {
            let churn_url = churn_url.clone();
            tokio::spawn(async move {
                let (socket, _) = tokio_tungstenite::connect_async(&churn_url)
                    .await
                    .expect("connects");
                drop(socket);
            })
        })
        .collect();
    for churner in churners {
        churner.await.expect("a churner");
    }
    let started = std::time::Instant::now();
    // Client::connect waits for the welcome, at most testkit::PATIENCE.
    let newcomer = Client::connect(&format!("{url}?room=quiet")).await;
    assert_eq!(newcomer.welcome["room"], "quiet");
    eprintln!("welcome after {:?}", started.elapsed());
    t.stack.shutdown().await;
}
