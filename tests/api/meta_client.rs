//! The real Graph client against a local server that answers like Meta.

use std::time::Duration;
use whatsapp_numbers::domain::WabaId;

use serde_json::{json, Value};
use whatsapp_numbers::meta::graph::{AppCredentials, GraphClient};
use whatsapp_numbers::meta::{ErrorClass, MetaApi, MetaError};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "EAAG-business-token";

async fn client(server: &MockServer) -> GraphClient {
    client_with_timeout(server, Duration::from_secs(5)).await
}

async fn client_with_timeout(server: &MockServer, timeout: Duration) -> GraphClient {
    let app = AppCredentials {
        app_id: "1234".into(),
        app_secret: "app-secret".into(),
    };
    GraphClient::new(&server.uri(), "v25.0", app, timeout).unwrap()
}

fn meta_error(code: i64, message: &str, transient: bool) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": "details here"},
        "is_transient": transient, "fbtrace_id": "AbCdEf"}})
}

#[tokio::test]
async fn list_phone_numbers_asks_for_every_field_and_follows_the_after_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-1/phone_numbers"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "111", "display_phone_number": "+1 555-555-0111", "verified_name": "A",
                      "quality_rating": "GREEN", "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"},
                      "status": "CONNECTED", "name_status": "APPROVED",
                      "whatsapp_business_manager_messaging_limit": "TIER_250"}],
            "paging": {"cursors": {"before": "QVFIUb", "after": "QVFIUa"},
                       "next": format!("{}/v25.0/waba-1/phone_numbers?after=QVFIUa", server.uri())}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-1/phone_numbers"))
        .and(query_param("after", "QVFIUa"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "222", "display_phone_number": "15555550222", "platform_type": "NOT_APPLICABLE",
                      "quality_rating": "NA"}],
            "paging": {"cursors": {"before": "QVFIUc", "after": "QVFIUd"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let graph = client(&server).await;

    let first = graph
        .list_phone_numbers(TOKEN, &"waba-1".into(), None)
        .await
        .unwrap();
    assert_eq!(first.after.as_deref(), Some("QVFIUa"));
    assert_eq!(
        first.numbers[0].throughput_level.as_deref(),
        Some("STANDARD")
    );
    assert_eq!(
        first.numbers[0].messaging_limit.as_deref(),
        Some("TIER_250")
    );
    let second = graph
        .list_phone_numbers(TOKEN, &"waba-1".into(), first.after.as_deref())
        .await
        .unwrap();
    assert_eq!(
        second.after, None,
        "no `next`: the last page, even with cursors"
    );
    assert_eq!(second.numbers[0].quality_rating.as_deref(), Some("NA"));

    let requests = server.received_requests().await.unwrap();
    let fields = requests[0]
        .url
        .query_pairs()
        .find(|(k, _)| k == "fields")
        .unwrap()
        .1
        .into_owned();
    for field in [
        "status",
        "name_status",
        "whatsapp_business_manager_messaging_limit",
        "platform_type",
        "throughput",
    ] {
        assert!(
            fields.split(',').any(|f| f == field),
            "fields= lacks {field}: {fields}"
        );
    }
}

#[tokio::test]
async fn register_posts_the_pin_and_reads_meta_errors_with_their_class() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/333/register"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(
            json!({"messaging_product": "whatsapp", "pin": "123456"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/444/register"))
        .respond_with(ResponseTemplate::new(400).set_body_json(meta_error(
            133005,
            "(#133005) PIN mismatch",
            false,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/555/register"))
        .respond_with(ResponseTemplate::new(503).set_body_json(meta_error(
            133004,
            "(#133004) Unavailable",
            true,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/666/register"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-business-use-case-usage", r#"{"waba-1":[{"type":"whatsapp_business_management","call_count":100,"estimated_time_to_regain_access":12}]}"#)
                .set_body_json(meta_error(80008, "(#80008) Too many calls", false)),
        )
        .mount(&server)
        .await;
    let graph = client(&server).await;

    graph
        .register(TOKEN, &"333".into(), "123456")
        .await
        .unwrap();

    let wrong_pin = graph
        .register(TOKEN, &"444".into(), "123456")
        .await
        .unwrap_err();
    assert_eq!(wrong_pin.class(), ErrorClass::NeedsUserAction);
    let MetaError::Api(e) = &wrong_pin else {
        panic!("{wrong_pin:?}")
    };
    assert_eq!(
        (e.http_status, e.code, e.fbtrace_id.as_deref()),
        (400, 133005, Some("AbCdEf"))
    );
    assert_eq!(e.details.as_deref(), Some("details here"));

    assert_eq!(
        graph
            .register(TOKEN, &"555".into(), "123456")
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Transient
    );

    let limited = graph
        .register(TOKEN, &"666".into(), "123456")
        .await
        .unwrap_err();
    assert_eq!(limited.class(), ErrorClass::RateLimited);
    assert_eq!(limited.retry_after_seconds(), Some(12 * 60));
}

#[tokio::test]
async fn get_phone_number_reads_one_node_with_fields() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/333"))
        .and(query_param("fields", whatsapp_numbers::meta::phone_number_fields("v25.0").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "333", "display_phone_number": "+1 555-555-0333", "platform_type": "CLOUD_API",
            "quality_rating": "YELLOW", "code_verification_status": "EXPIRED", "is_on_biz_app": false
        })))
        .expect(1)
        .mount(&server)
        .await;
    let number = client(&server)
        .await
        .get_phone_number(TOKEN, &"333".into())
        .await
        .unwrap();
    assert_eq!(number.platform_type.as_deref(), Some("CLOUD_API"));
    assert_eq!(number.code_verification_status.as_deref(), Some("EXPIRED"));
}

#[tokio::test]
async fn the_signup_code_is_exchanged_and_the_token_inspected_as_the_app() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .and(query_param("client_id", "1234"))
        .and(query_param("client_secret", "app-secret"))
        .and(query_param("code", "the-code"))
        .and(query_param_is_missing("redirect_uri"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "EAAB-new", "token_type": "bearer"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/debug_token"))
        .and(query_param("input_token", "EAAB-new"))
        .and(header("authorization", "Bearer 1234|app-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "app_id": "1234", "is_valid": true, "expires_at": 0,
            "granular_scopes": [
                {"scope": "business_management"},
                {"scope": "whatsapp_business_management", "target_ids": ["waba-9", "waba-10"]},
                {"scope": "whatsapp_business_messaging", "target_ids": ["waba-9"]}
            ]
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let graph = client(&server).await;
    let token = graph.exchange_code("the-code").await.unwrap();
    assert_eq!(token, "EAAB-new");
    let info = graph.inspect_token(&token).await.unwrap();
    assert_eq!(
        info.waba_ids,
        vec![WabaId::from("waba-9"), WabaId::from("waba-10")]
    );
    assert_eq!(info.expires_at, None, "0 means never");
}

#[tokio::test]
async fn subscribe_send_and_mark_read_post_what_meta_expects() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/waba-1/subscribed_apps"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    let text = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+16505551234",
                      "type": "text", "text": {"body": "Hello"}});
    Mock::given(method("POST"))
        .and(path("/v25.0/333/messages"))
        .and(body_json(text.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}], "messages": [{"id": "wamid.ABC"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/333/messages"))
        .and(body_json(
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-1"))
        .and(query_param("fields", "id,name"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "waba-1", "name": "Jaspers"})),
        )
        .mount(&server)
        .await;
    let graph = client(&server).await;
    graph.subscribe_app(TOKEN, &"waba-1".into()).await.unwrap();
    assert_eq!(
        graph
            .send_message(TOKEN, &"333".into(), &text)
            .await
            .unwrap()
            .message_id,
        "wamid.ABC"
    );
    graph
        .mark_read(TOKEN, &"333".into(), "wamid.IN")
        .await
        .unwrap();
    assert_eq!(
        graph
            .get_waba_name(TOKEN, &"waba-1".into())
            .await
            .unwrap()
            .as_deref(),
        Some("Jaspers")
    );
}

#[tokio::test]
async fn a_rejected_token_and_an_answer_that_is_not_meta_are_told_apart() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-1/phone_numbers"))
        .respond_with(ResponseTemplate::new(401).set_body_json(meta_error(
            190,
            "Error validating access token",
            false,
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-2/phone_numbers"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"))
        .mount(&server)
        .await;
    let graph = client(&server).await;
    let rejected = graph
        .list_phone_numbers(TOKEN, &"waba-1".into(), None)
        .await
        .unwrap_err();
    assert!(rejected.is_token_rejected());
    assert_eq!(rejected.class(), ErrorClass::NeedsUserAction);
    let proxy = graph
        .list_phone_numbers(TOKEN, &"waba-2".into(), None)
        .await
        .unwrap_err();
    assert!(matches!(proxy, MetaError::Transport(_)), "{proxy:?}");
    assert_eq!(proxy.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn a_slow_meta_trips_the_timeout_as_a_transient_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/333/register"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let graph = client_with_timeout(&server, Duration::from_millis(300)).await;
    let err = graph
        .register(TOKEN, &"333".into(), "123456")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetaError::Transport(m) if m.contains("timed out")),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn a_success_that_is_not_metas_answer_is_an_error() {
    let server = MockServer::start().await;
    // A proxy's page with 200 must not mark a number registered.
    Mock::given(method("POST"))
        .and(path("/v25.0/111/register"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("<html><body>OK</body></html>"),
        )
        .mount(&server)
        .await;
    // JSON, but without the `success: true` Meta promises.
    Mock::given(method("POST"))
        .and(path("/v25.0/222/register"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v25.0/waba-1/subscribed_apps"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&server)
        .await;
    // An answer far larger than any of Meta's is not read whole.
    let huge = format!(
        "{{\"data\": [], \"pad\": \"{}\"}}",
        "x".repeat(whatsapp_numbers::meta::graph::MAX_ANSWER_BYTES)
    );
    Mock::given(method("GET"))
        .and(path("/v25.0/waba-1/phone_numbers"))
        .respond_with(ResponseTemplate::new(200).set_body_string(huge))
        .mount(&server)
        .await;
    let graph = client(&server).await;

    let html = graph
        .register(TOKEN, &"111".into(), "123456")
        .await
        .unwrap_err();
    assert!(matches!(html, MetaError::Unexpected(_)), "{html:?}");
    let empty = graph
        .register(TOKEN, &"222".into(), "123456")
        .await
        .unwrap_err();
    assert!(empty.to_string().contains("success"), "{empty}");
    graph.subscribe_app(TOKEN, &"waba-1".into()).await.unwrap();
    let large = graph
        .list_phone_numbers(TOKEN, &"waba-1".into(), None)
        .await
        .unwrap_err();
    assert!(large.to_string().contains("larger than"), "{large}");
}

#[tokio::test]
async fn the_code_exchange_takes_a_bare_token_but_not_a_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .and(query_param("code", "bare"))
        .respond_with(ResponseTemplate::new(200).set_body_string("EAAB1234567890abcdefZZ\n"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .and(query_param("code", "page"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>Sign in</html>"))
        .mount(&server)
        .await;
    let graph = client(&server).await;
    assert_eq!(
        graph.exchange_code("bare").await.unwrap(),
        "EAAB1234567890abcdefZZ"
    );
    assert!(graph.exchange_code("page").await.is_err());
}
