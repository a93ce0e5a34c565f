//! `PLUGIN_AUTH_ENABLED=false`: a pass-through layer and exactly one WARN line.

use axum::Router;
use axum::routing::get;
use lib_auth::{Auth, AuthConfig};
use lib_auth_testkit::{capture_logs, serve};

#[test]
fn disabled_from_env_passes_everything_through_with_one_warning() {
    let (logs, _guard) = capture_logs("trace");

    let config =
        AuthConfig::from_lookup(|name| (name == "PLUGIN_AUTH_ENABLED").then(|| "FALSE".to_owned()))
            .expect("false is a valid value");
    let auth = Auth::new(config).expect("disabled needs nothing else");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/v1/organizations",
                get(|| async { "open" }).post(|| async { "open" }),
            )
            .route_layer(auth.require_method("midaz", "organizations"))
            .layer(auth.authenticate());
        let addr = serve(app).await;
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let r = client
                .post(format!("http://{addr}/v1/organizations"))
                .send()
                .await
                .expect("sent");
            assert_eq!(r.status(), 200);
            let r = client
                .get(format!("http://{addr}/v1/organizations"))
                .header("authorization", "Bearer garbage")
                .send()
                .await
                .expect("sent");
            assert_eq!(r.status(), 200, "even a bad token passes when disabled");
        }
    });

    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "exactly one WARN line, got:\n{text}");
    assert!(warnings[0].contains("DISABLED"), "{}", warnings[0]);
}
