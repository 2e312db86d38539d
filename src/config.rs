//! Settings from the environment (names as agreed in `shared/API.md`), and the development
//! secrets the server makes for itself when no Meta app is configured.

use std::path::{Path, PathBuf};

use crate::crypto::SecretBox;
use crate::db::DbUrl;
use crate::domain::MetaMode;

/// Where the server listens unless `BIND_ADDR` says otherwise.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";

/// Default Graph API base URL.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
/// Default Graph API version.
pub const DEFAULT_GRAPH_VERSION: &str = "v25.0";

/// A Meta app: when configured, the service talks to the real Graph API and never to the sandbox.
#[derive(Clone)]
pub struct MetaApp {
    pub app_id: String,
    pub app_secret: String,
    pub es_config_id: Option<String>,
    pub webhook_verify_token: Option<String>,
}

impl std::fmt::Debug for MetaApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaApp")
            .field("app_id", &self.app_id)
            .field("es_config_id", &self.es_config_id)
            .finish_non_exhaustive()
    }
}

/// Everything the server is configured with.
#[derive(Clone)]
pub struct Settings {
    pub database_url: DbUrl,
    pub bind_addr: String,
    pub data_dir: PathBuf,
    pub auth_jwt_secret: String,
    /// When set, tokens must carry this `iss`.
    pub auth_jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub auth_jwt_audience: Option<String>,
    /// Base64 of 32 bytes.
    pub secrets_key: String,
    pub meta_app: Option<MetaApp>,
    pub meta_graph_url: String,
    pub meta_graph_version: String,
    /// Seconds between background syncs of each account with Meta (0: no background sync).
    pub sync_interval_seconds: u64,
    /// First backoff between register retries after a transient Meta error, doubled each retry.
    pub register_retry_base_ms: u64,
    /// Timeout of one call to Meta.
    pub meta_timeout_seconds: u64,
    /// Longest an agent's server may take to answer (`AGENT_TIMEOUT_SECONDS`, default 20).
    pub agent_timeout_seconds: u64,
    /// Connections in the database pool.
    pub db_pool_size: u32,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// True when the secrets were generated under `data_dir` (no Meta app configured).
    pub development: bool,
    /// Agents' OpenAI and webhook URLs may reach loopback, private and link-local addresses
    /// (`AGENT_URL_ALLOW_PRIVATE`; by default only in development mode).
    pub agent_url_allow_private: bool,
    /// First wait before a failed webhook job is tried again, doubled each time
    /// (`JOB_RETRY_BASE_MS`, default 2000).
    pub job_retry_base_ms: u64,
    /// Background workers that process Meta's webhook deliveries (`WEBHOOK_WORKERS`, default 4;
    /// 0: this instance only takes deliveries in).
    pub webhook_workers: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.database_url.backend())
            .field("bind_addr", &self.bind_addr)
            .field("meta_app", &self.meta_app)
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

/// Connections (and database threads) when `DATABASE_POOL_SIZE` is unset: two a core. SQLite
/// works in this process, on its cores, and more threads only make requests wait longer at the
/// tail. PostgreSQL's connections wait on the network and on its own processes, but on a machine
/// it shares, ten of them on two cores gave the table a third longer p99 than four at the same
/// rate (bench/table.sh); at least four, so a small machine still overlaps its waits.
fn default_pool_size(url: &DbUrl, cores: usize) -> u32 {
    let two_a_core = u32::try_from(cores * 2).unwrap_or(u32::MAX);
    match url {
        DbUrl::Sqlite(_) => two_a_core.max(2),
        DbUrl::Postgres(_) => two_a_core.max(4),
    }
}

impl Settings {
    /// The keys that sign and check bearer tokens, with the configured issuer and audience.
    pub fn token_keys(&self) -> crate::auth::TokenKeys {
        crate::auth::TokenKeys::new(&self.auth_jwt_secret)
            .with_issuer_and_audience(self.auth_jwt_issuer.clone(), self.auth_jwt_audience.clone())
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::load(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads settings through `var`, so tests can supply their own environment.
    pub fn load(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let default_database = var("DATABASE_URL").is_none();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let database_url = match var("DATABASE_URL") {
            Some(url) => DbUrl::parse(&url)?,
            None => DbUrl::Sqlite(
                data_dir
                    .join("whatsapp-numbers.db")
                    .to_string_lossy()
                    .into_owned(),
            ),
        };
        let pool_size = default_pool_size(&database_url, cores);
        let meta_app = match (var("META_APP_ID"), var("META_APP_SECRET")) {
            (Some(app_id), Some(app_secret)) => Some(MetaApp {
                app_id,
                app_secret,
                es_config_id: var("META_ES_CONFIG_ID"),
                webhook_verify_token: var("META_WEBHOOK_VERIFY_TOKEN"),
            }),
            (Some(_), None) => {
                return Err("META_APP_ID is set but META_APP_SECRET is not: set both".into())
            }
            (None, _) => None,
        };
        // Development mode (secrets generated under DATA_DIR) only when nothing says otherwise:
        // neither secret set, no Meta app, the default SQLite file. Anything in between is a
        // mistake that would, quietly, sign tokens or seal secrets with keys nobody chose.
        let (auth_jwt_secret, secrets_key, development) = match (
            var("AUTH_JWT_SECRET"),
            var("SECRETS_KEY"),
        ) {
            (Some(jwt), Some(key)) => (jwt, key, false),
            (None, None) if meta_app.is_none() && default_database => {
                let dev = DevSecrets::load_or_create(&data_dir)?;
                (dev.auth_jwt_secret, dev.secrets_key, true)
            }
            (jwt, key) => {
                let missing: Vec<&str> = [
                    ("AUTH_JWT_SECRET", jwt.is_none()),
                    ("SECRETS_KEY", key.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name))
                .collect();
                let why = if meta_app.is_some() {
                    "a Meta app is configured (META_APP_ID): the server will not run against Meta \
                         with generated secrets"
                } else if jwt.is_some() || key.is_some() {
                    "one secret is set, so this is not development mode, and a generated one would \
                         sign tokens or seal stored secrets with a key nobody chose"
                } else {
                    "DATABASE_URL is set: generated development secrets are only for the default \
                         SQLite file"
                };
                return Err(format!("{} must be set: {why}", missing.join(" and ")));
            }
        };
        SecretBox::from_base64(&secrets_key).map_err(|e| e.to_string())?;
        if auth_jwt_secret.len() < 16 {
            return Err(
                "AUTH_JWT_SECRET must be at least 16 characters (32 or more recommended)".into(),
            );
        }
        Ok(Settings {
            database_url,
            bind_addr: var("BIND_ADDR").unwrap_or_else(|| DEFAULT_BIND_ADDR.into()),
            data_dir,
            auth_jwt_secret,
            auth_jwt_issuer: var("AUTH_JWT_ISSUER"),
            auth_jwt_audience: var("AUTH_JWT_AUDIENCE"),
            secrets_key,
            meta_app,
            meta_graph_url: var("META_GRAPH_URL")
                .unwrap_or_else(|| DEFAULT_GRAPH_URL.into())
                .trim_end_matches('/')
                .to_owned(),
            meta_graph_version: var("META_GRAPH_VERSION")
                .unwrap_or_else(|| DEFAULT_GRAPH_VERSION.into()),
            sync_interval_seconds: match var("SYNC_INTERVAL_SECONDS").as_deref() {
                Some("0") => 0,
                _ => number(&var, "SYNC_INTERVAL_SECONDS", 300)?,
            },
            register_retry_base_ms: number(&var, "REGISTER_RETRY_BASE_MS", 2000)?,
            meta_timeout_seconds: number(&var, "META_TIMEOUT_SECONDS", 15)?,
            agent_timeout_seconds: number(&var, "AGENT_TIMEOUT_SECONDS", 20)?,
            db_pool_size: number(&var, "DATABASE_POOL_SIZE", pool_size)?,
            http_workers: number(&var, "HTTP_WORKERS", cores)?,
            agent_url_allow_private: match var("AGENT_URL_ALLOW_PRIVATE").as_deref() {
                None => development,
                Some("true" | "1") => true,
                Some("false" | "0") => false,
                Some(other) => {
                    return Err(format!(
                        "AGENT_URL_ALLOW_PRIVATE must be true or false, not `{other}`"
                    ))
                }
            },
            job_retry_base_ms: number(&var, "JOB_RETRY_BASE_MS", 2000)?,
            webhook_workers: match var("WEBHOOK_WORKERS").as_deref() {
                Some("0") => 0,
                _ => number(&var, "WEBHOOK_WORKERS", 4)?,
            },
            development,
        })
    }

    /// Which agent URLs beyond `https` the server takes: loopback `http` where private addresses
    /// are allowed (development mode, or `AGENT_URL_ALLOW_PRIVATE=true`).
    pub fn url_policy(&self) -> crate::domain::responder::UrlPolicy {
        crate::domain::responder::UrlPolicy {
            allow_loopback_http: self.agent_url_allow_private,
        }
    }

    /// The secret Meta's webhook deliveries are signed with: the app secret, or in sandbox mode
    /// one derived from `SECRETS_KEY` (the sandbox signs the deliveries it plays with it).
    pub fn webhook_secret(&self, secrets: &SecretBox) -> String {
        match &self.meta_app {
            Some(app) => app.app_secret.clone(),
            None => secrets.derive("sandbox webhook signing"),
        }
    }

    /// Whether the server listens on a loopback address only (where printing a development token
    /// shows it to nobody but the person at this machine).
    pub fn binds_loopback(&self) -> bool {
        let host = self
            .bind_addr
            .rsplit_once(':')
            .map_or(self.bind_addr.as_str(), |(host, _)| host)
            .trim_matches(|c| c == '[' || c == ']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The Graph API with a Meta app configured, else the sandbox.
    pub fn meta_mode(&self) -> MetaMode {
        if self.meta_app.is_some() {
            MetaMode::Graph
        } else {
            MetaMode::Sandbox
        }
    }
}

fn number<T: std::str::FromStr + PartialOrd + From<u8>>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<T>() {
            Ok(n) if n >= T::from(1) => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number of at least 1, not `{text}`"
            )),
        },
    }
}

/// Secrets generated once for development and kept in `<data_dir>/dev-secrets.json`, so a printed
/// token and stored encrypted values survive a restart.
#[derive(serde::Serialize, serde::Deserialize)]
struct DevSecrets {
    auth_jwt_secret: String,
    secrets_key: String,
}

impl DevSecrets {
    fn load_or_create(dir: &Path) -> Result<Self, String> {
        let path = dir.join("dev-secrets.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return serde_json::from_str(&text)
                .map_err(|e| format!("{} is damaged: {e}", path.display()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let secrets = DevSecrets {
            auth_jwt_secret: SecretBox::generate_key(),
            secrets_key: SecretBox::generate_key(),
        };
        let text = serde_json::to_string_pretty(&secrets).map_err(|e| e.to_string())?;
        write_private(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(secrets)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn temp_dir(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("wn-config-{name}-{}", uuid::Uuid::new_v4()));
        dir.to_string_lossy().into_owned()
    }

    #[test]
    fn with_nothing_configured_it_generates_secrets_once_and_keeps_them() {
        let dir = temp_dir("dev");
        let first = Settings::load(env(&[("DATA_DIR", &dir)])).unwrap();
        let second = Settings::load(env(&[("DATA_DIR", &dir)])).unwrap();
        assert!(first.development);
        assert_eq!(first.auth_jwt_secret, second.auth_jwt_secret);
        assert_eq!(first.secrets_key, second.secrets_key);
        assert_eq!(first.meta_mode(), MetaMode::Sandbox);
        assert!(matches!(first.database_url, DbUrl::Sqlite(ref p) if p.starts_with(&dir)));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_meta_app_without_real_secrets_refuses_to_start() {
        let dir = temp_dir("meta");
        let err = Settings::load(env(&[
            ("DATA_DIR", &dir),
            ("META_APP_ID", "1"),
            ("META_APP_SECRET", "s"),
        ]))
        .unwrap_err();
        assert!(err.contains("AUTH_JWT_SECRET"), "{err}");
        assert!(
            !std::path::Path::new(&dir).exists(),
            "no secrets are generated for a Meta app"
        );
        let key = SecretBox::generate_key();
        let ok = Settings::load(env(&[
            ("META_APP_ID", "1"),
            ("META_APP_SECRET", "s"),
            ("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("SECRETS_KEY", &key),
        ]))
        .unwrap();
        assert_eq!((ok.meta_mode(), ok.development), (MetaMode::Graph, false));
    }

    #[test]
    fn development_mode_needs_nothing_configured_and_half_a_configuration_is_an_error() {
        let key = SecretBox::generate_key();
        let jwt = "0123456789abcdef0123456789abcdef";
        let dir = temp_dir("half");
        let err = Settings::load(env(&[("DATA_DIR", &dir), ("AUTH_JWT_SECRET", jwt)])).unwrap_err();
        assert!(err.starts_with("SECRETS_KEY must be set"), "{err}");
        let err = Settings::load(env(&[("DATA_DIR", &dir), ("SECRETS_KEY", &key)])).unwrap_err();
        assert!(err.starts_with("AUTH_JWT_SECRET must be set"), "{err}");
        let err = Settings::load(env(&[
            ("DATA_DIR", &dir),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/db"),
        ]))
        .unwrap_err();
        assert!(
            err.contains("AUTH_JWT_SECRET and SECRETS_KEY must be set"),
            "{err}"
        );
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(
            !std::path::Path::new(&dir).exists(),
            "no secrets were generated"
        );
    }

    #[test]
    fn a_token_is_printed_only_when_listening_on_loopback() {
        let dir = temp_dir("bind");
        let mut settings = Settings::load(env(&[("DATA_DIR", &dir)])).unwrap();
        for (addr, loopback) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("[::1]:8080", true),
            ("0.0.0.0:8080", false),
            ("[::]:8080", false),
            ("10.0.0.5:8080", false),
        ] {
            settings.bind_addr = addr.into();
            assert_eq!(settings.binds_loopback(), loopback, "{addr}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_pool_has_two_connections_a_core_and_at_least_four_on_postgresql() {
        let sqlite = DbUrl::Sqlite("x.db".into());
        let pg = DbUrl::Postgres("postgres://u@h/db".into());
        assert_eq!(default_pool_size(&sqlite, 1), 2);
        assert_eq!(default_pool_size(&sqlite, 2), 4);
        assert_eq!(default_pool_size(&pg, 1), 4);
        assert_eq!(default_pool_size(&pg, 2), 4);
        assert_eq!(default_pool_size(&pg, 8), 16);
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let key = SecretBox::generate_key();
        let err = Settings::load(env(&[
            ("AUTH_JWT_SECRET", "0123456789abcdef"),
            ("SECRETS_KEY", "short"),
        ]))
        .unwrap_err();
        assert!(err.contains("SECRETS_KEY"), "{err}");
        let err = Settings::load(env(&[
            ("AUTH_JWT_SECRET", "0123456789abcdef"),
            ("SECRETS_KEY", &key),
            ("DATABASE_URL", "mysql://x"),
        ]))
        .unwrap_err();
        assert!(err.contains("mysql"), "{err}");
    }
}
