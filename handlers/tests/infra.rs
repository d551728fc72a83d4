//! The routes infra/serverless.yml deploys are the ones [`Route`] knows, and
//! exactly the two-way ones have a route response: a handler's body reaches
//! the client only then (and an empty body there reaches it as an empty
//! frame).

use handlers::protocol::Route;

/// (route key, has a route response) for each `websocket` event.
fn deployed_routes() -> Vec<(String, bool)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/serverless.yml");
    let yaml = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    let mut routes = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if *line != "- websocket:" {
            continue;
        }
        // The event's own keys follow until the next list item or section.
        let keys: Vec<&str> = lines[index + 1..]
            .iter()
            .take_while(|line| !line.starts_with('-') && !line.is_empty() && !line.ends_with(':'))
            .copied()
            .collect();
        let route = keys
            .iter()
            .find_map(|key| key.strip_prefix("route: "))
            .unwrap_or_else(|| panic!("a websocket event without a route near line {index}"));
        let two_way = keys
            .iter()
            .any(|key| key.starts_with("routeResponseSelectionExpression:"));
        routes.push((route.trim_matches(['"', '\'']).to_owned(), two_way));
    }
    routes
}

#[test]
fn serverless_yml_deploys_every_route_with_its_direction() {
    let mut deployed = deployed_routes();
    deployed.sort();
    let mut expected: Vec<(String, bool)> = Route::ALL
        .iter()
        .map(|route| (route.key().to_owned(), route.is_two_way()))
        .collect();
    expected.sort();
    assert_eq!(deployed, expected);
}

/// docs/architecture.md counts the binaries and the functions that answer
/// routes as handlers/Cargo.toml and the code have them.
#[test]
fn the_architecture_counts_the_binaries_and_route_functions() {
    let words = [
        "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/architecture.md"
    ))
    .expect("docs/architecture.md");
    let manifest = include_str!("../Cargo.toml");
    let binaries = manifest.matches("[[bin]]").count();
    assert!(
        doc.contains(&format!("yes: {} binaries", words[binaries])),
        "docs/architecture.md should say `yes: {} binaries` (handlers/Cargo.toml has {binaries})",
        words[binaries]
    );
    // Every binary but the authorizer, the repair and the fan-out workers
    // answers routes.
    let route_functions = binaries - 3;
    let sentence = format!(
        "{} route handlers answer API Gateway",
        words[route_functions]
    );
    let capitalised = sentence[..1].to_uppercase() + &sentence[1..];
    assert!(
        doc.contains(&capitalised),
        "docs/architecture.md should say `{capitalised}`"
    );
}
