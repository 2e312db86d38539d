//! What every request handler shares.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::db::Db;
use crate::domain::WorkspaceId;
use crate::meta::sandbox::Sandbox;
use crate::meta::MetaApi;
use crate::metrics::{CountingMeta, Metrics};
use crate::service::ServiceError;

/// The process is stopping: the server stops taking requests, streams end, and background workers
/// finish the job in hand and hand back the rest (their leases released), for another instance or
/// the next start.
#[derive(Clone)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Shutdown {
    /// Starts stopping (a signal, or a test).
    pub fn begin(&self) {
        self.0.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once stopping has begun.
    pub async fn wait(&self) {
        let mut receiver = self.0.subscribe();
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub secrets: SecretBox,
    pub tokens: TokenKeys,
    pub settings: Arc<Settings>,
    /// The Graph API client, or the sandbox when no Meta app is configured.
    pub meta: Arc<dyn MetaApi>,
    pub metrics: Arc<Metrics>,
    /// The sandbox itself when it stands in for Meta, for what only it can show (sent messages).
    pub sandbox: Option<Arc<Sandbox>>,
    /// The writer of the webhook queue.
    pub intake: crate::service::inbound::Intake,
    /// What Meta's webhook deliveries are signed with (see `Settings::webhook_secret`).
    pub webhook_secret: Arc<str>,
    /// The HTTP client for agents' OpenAI and webhook URLs.
    pub agent_http: crate::service::responders::AgentHttp,
    /// The live stream's reader and broadcast (`GET /api/v1/events`).
    pub events: Arc<crate::service::events::Hub>,
    pub shutdown: Shutdown,
    known_workspaces: Arc<Mutex<HashSet<WorkspaceId>>>,
}

impl AppState {
    /// Wraps `meta` so its calls are counted for `/metrics`.
    pub fn new(
        db: Db,
        secrets: SecretBox,
        tokens: TokenKeys,
        settings: Arc<Settings>,
        meta: Arc<dyn MetaApi>,
        intake: crate::service::inbound::Intake,
        agent_http: crate::service::responders::AgentHttp,
    ) -> Self {
        // The process's metrics, shared with the intake's writer thread that counts into them.
        let metrics = intake.metrics.clone();
        let webhook_secret: Arc<str> = settings.webhook_secret(&secrets).into();
        let meta: Arc<dyn MetaApi> = Arc::new(CountingMeta::new(meta, metrics.clone()));
        AppState {
            db,
            secrets,
            tokens,
            settings,
            meta,
            metrics,
            sandbox: None,
            intake,
            webhook_secret,
            agent_http,
            events: Arc::default(),
            shutdown: Shutdown::default(),
            known_workspaces: Arc::default(),
        }
    }

    pub fn with_sandbox(mut self, sandbox: Option<Arc<Sandbox>>) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Creates the workspace on first sight; later calls for it cost no query.
    pub async fn ensure_workspace(&self, id: &WorkspaceId) -> Result<(), ServiceError> {
        if self
            .known_workspaces
            .lock()
            .map(|k| k.contains(id))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let owned = id.clone();
        self.db
            .run(move |conn| {
                crate::db::workspaces::ensure(conn, &owned).map_err(ServiceError::from)
            })
            .await?;
        if let Ok(mut known) = self.known_workspaces.lock() {
            known.insert(id.clone());
        }
        Ok(())
    }
}
