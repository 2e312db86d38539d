//! `spawn_app()`: a server on a free port over a database of its own, and typed request helpers.

use diesel::connection::SimpleConnection;
use diesel::Connection;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use whatsapp_numbers::auth::TokenKeys;
use whatsapp_numbers::config::{MetaApp, Settings};
use whatsapp_numbers::crypto::SecretBox;
use whatsapp_numbers::db::models::{AccountRow, PhoneNumberRow};
use whatsapp_numbers::db::{self, DbUrl};
use whatsapp_numbers::domain::{
    AccountId, AccountStatus, PhoneNumberId, PlatformType, QualityRating, RegistrationState, Role,
    WorkspaceId,
};
use whatsapp_numbers::service::ServiceError;
use whatsapp_numbers::startup::Application;
use whatsapp_numbers::state::AppState;

pub const JWT_SECRET: &str = "integration-test-secret-0123456789";

/// A running server and what a test needs to drive it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    keys: TokenKeys,
    /// The database: this app's own, or shared with the app it was spawned beside.
    database: std::sync::Arc<TestDatabase>,
}

/// A database made for one test and removed after it.
pub enum TestDatabase {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub fn create() -> (Self, DbUrl) {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) => {
                let name = format!("wn_test_{}", uuid::Uuid::new_v4().simple());
                whatsapp_numbers::db::prepare_postgres_client();
                let mut admin = diesel::PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("TEST_DATABASE_URL does not answer: {e}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let (base, _) = admin_url
                    .rsplit_once('/')
                    .expect("TEST_DATABASE_URL names a database");
                let url = DbUrl::Postgres(format!("{base}/{name}"));
                (TestDatabase::Postgres { admin_url, name }, url)
            }
            None => {
                let dir = std::env::temp_dir().join(format!("wn-test-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = DbUrl::Sqlite(dir.join("test.db").to_string_lossy().into_owned());
                (TestDatabase::Sqlite(dir), url)
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            TestDatabase::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDatabase::Postgres { admin_url, name } => {
                if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app whose Meta is the Graph client pointed at `meta` (a server answering like Meta).
pub async fn spawn_app_with_meta(meta: &wiremock::MockServer) -> TestApp {
    spawn_app_with_meta_and(meta, |_| {}).await
}

/// The same, with more settings changed by `configure`.
pub async fn spawn_app_with_meta_and(
    meta: &wiremock::MockServer,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let uri = meta.uri();
    spawn_app_with(move |settings| {
        settings.meta_app = Some(MetaApp {
            app_id: META_APP_ID.into(),
            app_secret: META_APP_SECRET.into(),
            es_config_id: Some("es-config-1".into()),
            webhook_verify_token: Some("verify-me".into()),
        });
        settings.meta_graph_url = uri;
        configure(settings);
    })
    .await
}

pub const META_APP_ID: &str = "1234";
pub const META_APP_SECRET: &str = "app-secret-xyz";

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (database, url) = TestDatabase::create();
    spawn_on(
        std::sync::Arc::new(database),
        url,
        SecretBox::generate_key(),
        configure,
    )
    .await
}

/// Another instance on `first`'s database (and secrets key), as a second replica would run.
pub async fn spawn_app_beside(first: &TestApp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let url = first.state.settings.database_url.clone();
    let key = first.state.settings.secrets_key.clone();
    spawn_on(first.database.clone(), url, key, configure).await
}

async fn spawn_on(
    database: std::sync::Arc<TestDatabase>,
    url: DbUrl,
    secrets_key: String,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings {
        database_url: url,
        bind_addr: "127.0.0.1:0".into(),
        data_dir: std::env::temp_dir(),
        auth_jwt_secret: JWT_SECRET.into(),
        auth_jwt_issuer: None,
        auth_jwt_audience: None,
        secrets_key,
        meta_app: None,
        meta_graph_url: "http://127.0.0.1:9".into(),
        meta_graph_version: "v25.0".into(),
        sync_interval_seconds: 0,
        register_retry_base_ms: 5,
        meta_timeout_seconds: 5,
        agent_timeout_seconds: 20,
        db_pool_size: 4,
        http_workers: 1,
        development: false,
        agent_url_allow_private: false,
        job_retry_base_ms: 20,
        webhook_workers: 2,
    };
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        state,
        keys: TokenKeys::new(JWT_SECRET),
        database,
    }
}

impl TestApp {
    /// The SQLite file under test, or `None` on PostgreSQL.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match self.database.as_ref() {
            TestDatabase::Sqlite(dir) => Some(dir.join("test.db")),
            TestDatabase::Postgres { .. } => None,
        }
    }

    /// As if the coalescing window had passed: the next manual sync calls Meta again.
    pub fn forget_recent_syncs(&self) {
        use diesel::connection::SimpleConnection;
        self.raw_connection()
            .batch_execute(
                "UPDATE whatsapp_accounts SET last_synced_at = '2000-01-01 00:00:00', \
                 next_sync_at = '2000-01-01 00:00:00', last_sync_failed_at = '2000-01-01 00:00:00'",
            )
            .expect("age the last syncs");
    }

    /// A connection of the test's own to its database, outside the server's pool.
    pub fn raw_connection(&self) -> db::DbConnection {
        let url = match self.database.as_ref() {
            TestDatabase::Sqlite(dir) => {
                DbUrl::Sqlite(dir.join("test.db").to_string_lossy().into_owned())
            }
            TestDatabase::Postgres { admin_url, name } => {
                let (base, _) = admin_url.rsplit_once('/').expect("a database in the URL");
                DbUrl::Postgres(format!("{base}/{name}"))
            }
        };
        url.connect().expect("a connection of the test's own")
    }
}

/// A number as Meta would describe it, for arranging tests.
pub struct NumberSeed<'a> {
    pub display: &'a str,
    pub verified_name: &'a str,
    pub platform_type: &'a str,
    pub quality_rating: &'a str,
    pub is_on_biz_app: bool,
    pub removed: bool,
    /// Meta's throughput level; by default `STANDARD` on the Cloud API, else `NOT_APPLICABLE`.
    pub throughput: Option<&'a str>,
}

impl Default for NumberSeed<'_> {
    fn default() -> Self {
        NumberSeed {
            display: "+1 555-555-0100",
            verified_name: "Jaspers Market",
            platform_type: "CLOUD_API",
            quality_rating: "GREEN",
            is_on_biz_app: false,
            removed: false,
            throughput: None,
        }
    }
}

impl TestApp {
    pub fn token(&self, workspace: &str, role: Role) -> String {
        self.keys
            .mint("tester", workspace, role, chrono::TimeDelta::hours(1))
    }

    /// On PostgreSQL, takes the test's database away from every connection (`on`: the server is
    /// as good as stopped for this app) or gives it back; false on SQLite (nothing to stop).
    pub fn database_outage(&self, on: bool) -> bool {
        use diesel::connection::SimpleConnection;
        let TestDatabase::Postgres { admin_url, name } = self.database.as_ref() else {
            return false;
        };
        let mut admin = diesel::PgConnection::establish(admin_url).expect("the admin database");
        let sql = if on {
            format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
            )
        } else {
            format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true;")
        };
        admin.batch_execute(&sql).expect("the outage");
        true
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn editor(&self, workspace: &str) -> String {
        self.token(workspace, Role::Editor)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    /// GET without a token (probes, the spec); returns the JSON body.
    pub async fn public_json(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent");
        response.json().await.expect("json body")
    }

    /// GET expecting 200; returns the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json body")
    }

    pub async fn create_agent(&self, token: &str, name: &str) -> Value {
        let body = json!({
            "name": name,
            "description": "answers questions",
            "responder": {"kind": "faq", "faq": {"entries": [{"keywords": ["hours"], "answer": "9 to 5"}], "fallback": "Sorry?"}}
        });
        let response = self
            .request(Method::POST, "/api/v1/agents", Some(token), Some(body))
            .await;
        assert_eq!(response.status(), 201, "create agent {name}");
        response.json().await.expect("agent json")
    }

    pub async fn assign(&self, token: &str, number_id: &str, agent_id: Value) -> Response {
        let path = format!("/api/v1/phone-numbers/{number_id}/inbound-agent");
        self.request(
            Method::PUT,
            &path,
            Some(token),
            Some(json!({ "agent_id": agent_id })),
        )
        .await
    }

    pub async fn set_outbound(&self, token: &str, agent_id: &str, number_id: Value) -> Response {
        let path = format!("/api/v1/agents/{agent_id}/whatsapp-outbound-number");
        self.request(
            Method::PUT,
            &path,
            Some(token),
            Some(json!({ "number_id": number_id })),
        )
        .await
    }

    /// Stores a number for `workspace` below the HTTP surface (numbers come from Meta, not from the API).
    pub async fn seed_number(&self, workspace: &str, seed: NumberSeed<'_>) -> String {
        let workspace = WorkspaceId::from(workspace);
        self.state
            .ensure_workspace(&workspace)
            .await
            .expect("workspace");
        let now = db::now();
        let account_id = AccountId::random();
        let account = AccountRow {
            id: account_id,
            workspace_id: workspace.clone(),
            waba_id: format!("waba-{}", uuid::Uuid::new_v4().simple()).into(),
            name: Some("Test WABA".into()),
            access_token_enc: None,
            token_expires_at: None,
            status: AccountStatus::Connected,
            last_synced_at: Some(now),
            last_sync_error: None,
            last_sync_counts: None,
            sync_lease_until: None,
            sync_lease_owner: None,
            created_at: now,
            updated_at: now,
            last_sync_failed_at: None,
            last_sync_failure: None,
        };
        let id = PhoneNumberId::random();
        let quality_rating = QualityRating::parse(seed.quality_rating).expect("a quality rating");
        let row = PhoneNumberRow {
            id,
            workspace_id: workspace.clone(),
            whatsapp_account_id: account_id,
            meta_phone_number_id: format!("1{}", &uuid::Uuid::new_v4().as_u128().to_string()[..14])
                .into(),
            display_phone_number: seed.display.into(),
            display_digits: whatsapp_numbers::domain::digits(seed.display),
            verified_name: Some(seed.verified_name.into()),
            verified_name_key: whatsapp_numbers::domain::search_key(seed.verified_name),
            platform_type: PlatformType::from_meta(seed.platform_type),
            quality_rating,
            quality_rank: quality_rating.rank().to_owned(),
            status: Some("CONNECTED".into()),
            code_verification_status: Some("VERIFIED".into()),
            name_status: Some("APPROVED".into()),
            messaging_limit: Some("TIER_250".into()),
            throughput_level: Some(
                seed.throughput
                    .unwrap_or(if seed.platform_type == "CLOUD_API" {
                        "STANDARD"
                    } else {
                        "NOT_APPLICABLE"
                    })
                    .into(),
            ),
            account_mode: Some("LIVE".into()),
            is_on_biz_app: seed.is_on_biz_app,
            inbound_agent_id: None,
            registration_state: RegistrationState::NotRegistered,
            registration_last_error: None,
            registration_last_error_code: None,
            registration_last_attempt_at: None,
            registration_lease_until: None,
            registration_lease_owner: None,
            pin_enc: None,
            last_synced_at: Some(now),
            removed_at: seed.removed.then_some(now),
            created_at: now,
            updated_at: now,
            quality_alert: None,
        };
        self.state
            .db
            .run(move |conn| -> Result<(), ServiceError> {
                db::accounts::insert(conn, &account)?;
                db::phone_numbers::insert(conn, &row)?;
                Ok(())
            })
            .await
            .expect("seed number");
        id.to_string()
    }

    /// A Cloud API number with the given display number.
    pub async fn seed_cloud_number(&self, workspace: &str, display: &str) -> String {
        self.seed_number(
            workspace,
            NumberSeed {
                display,
                ..NumberSeed::default()
            },
        )
        .await
    }

    /// The number's registration ledger, newest first.
    pub async fn ledger(&self, token: &str, number_id: &str) -> Vec<Value> {
        let body = self
            .get_json(
                &format!("/api/v1/phone-numbers/{number_id}/registration-attempts"),
                token,
            )
            .await;
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// Audit events of the workspace, newest first.
    pub async fn audit(&self, token: &str, query: &str) -> Vec<Value> {
        let body = self
            .get_json(&format!("/api/v1/audit-events?{query}"), token)
            .await;
        body["data"].as_array().cloned().unwrap_or_default()
    }
}

/// Asserts a problem+json response with `status` and `code`; returns the problem.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Lets the raw database be checked where the HTTP surface cannot show something (secrets at rest).
pub async fn raw_agent_columns(app: &TestApp, id: &str) -> (String, Option<String>) {
    let id = id.to_owned();
    app.state
        .db
        .run(move |conn| -> Result<_, ServiceError> {
            use diesel::prelude::*;
            use whatsapp_numbers::db::schema::agents::dsl as a;
            Ok(a::agents
                .filter(a::id.eq(id))
                .select((a::responder_config, a::responder_secret_enc))
                .first::<(String, Option<String>)>(conn)?)
        })
        .await
        .expect("agent row")
}
