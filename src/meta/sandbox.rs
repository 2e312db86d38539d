//! A stand-in for Meta, used when no Meta app is configured: a demo WABA with numbers of every
//! platform type and quality, registration that sometimes fails with a transient error (so the
//! retry path shows), and a record of the messages it "sends". State lives in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::error::GraphError;
use super::{MetaApi, MetaError, MetaPhoneNumber, PhoneNumberPage, SentMessage, TokenInfo};
use crate::domain::{MetaMode, MetaPhoneNumberId, WabaId};

/// The WABA the demo workspace is connected to.
pub const DEMO_WABA_ID: &str = "100000000000001";
/// Numbers per page, small so that paging is exercised.
const PAGE_SIZE: usize = 4;
/// Every this-many-th register call fails with Meta's transient 133004 (the first one included).
const TRANSIENT_FAILURE_EVERY: u64 = 3;

/// A message the sandbox accepted.
#[derive(Debug, Clone)]
pub struct SandboxMessage {
    pub meta_phone_number_id: MetaPhoneNumberId,
    pub message_id: String,
    pub body: Value,
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct State {
    wabas: HashMap<WabaId, Vec<MetaPhoneNumber>>,
    pins: HashMap<MetaPhoneNumberId, String>,
    register_calls: u64,
    sent: Vec<SandboxMessage>,
}

/// The stand-in Meta. Which numbers it registered survives a restart when it has a file.
#[derive(Default)]
pub struct Sandbox {
    state: Mutex<State>,
    file: Option<std::path::PathBuf>,
}

fn number(
    id: &str,
    display: &str,
    name: &str,
    platform: &str,
    quality: &str,
    status: &str,
) -> MetaPhoneNumber {
    let cloud = platform == "CLOUD_API";
    MetaPhoneNumber {
        id: MetaPhoneNumberId::from(id),
        display_phone_number: display.into(),
        verified_name: Some(name.into()),
        quality_rating: Some(quality.into()),
        platform_type: Some(platform.into()),
        status: Some(status.into()),
        code_verification_status: Some(if cloud { "EXPIRED" } else { "VERIFIED" }.into()),
        name_status: Some("APPROVED".into()),
        messaging_limit: Some("TIER_250".into()),
        throughput_level: Some(if cloud { "STANDARD" } else { "NOT_APPLICABLE" }.into()),
        account_mode: Some("LIVE".into()),
        is_on_biz_app: false,
    }
}

fn demo_numbers() -> Vec<MetaPhoneNumber> {
    let mut coexistence = number(
        "200000000000006",
        "+55 11 91234-5678",
        "Jaspers Brasil",
        "NOT_APPLICABLE",
        "GREEN",
        "CONNECTED",
    );
    coexistence.is_on_biz_app = true;
    coexistence.throughput_level = Some("STANDARD".into());
    vec![
        number(
            "200000000000001",
            "+1 555-010-0001",
            "Jaspers Market",
            "CLOUD_API",
            "GREEN",
            "CONNECTED",
        ),
        number(
            "200000000000002",
            "+1 555-010-0002",
            "Jaspers Market Support",
            "CLOUD_API",
            "YELLOW",
            "CONNECTED",
        ),
        number(
            "200000000000003",
            "+44 20 7946 0003",
            "Jaspers UK",
            "ON_PREMISE",
            "GREEN",
            "CONNECTED",
        ),
        number(
            "200000000000004",
            "+91 98765 43210",
            "Jaspers India",
            "NOT_APPLICABLE",
            "UNKNOWN",
            "PENDING",
        ),
        number(
            "200000000000005",
            "+1 555-010-0005",
            "Jaspers Outlet",
            "CLOUD_API",
            "RED",
            "FLAGGED",
        ),
        coexistence,
    ]
}

/// Three numbers for any other WABA id, derived from the id so they are stable.
fn generated_numbers(waba_id: &WabaId) -> Vec<MetaPhoneNumber> {
    let seed: u64 = waba_id.as_str().bytes().fold(7u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    }) % 1_000_000;
    [
        ("CLOUD_API", "GREEN"),
        ("NOT_APPLICABLE", "UNKNOWN"),
        ("CLOUD_API", "YELLOW"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (platform, quality))| {
        let id = format!("3{seed:06}{i:08}");
        let display = format!("+1 555-{:03}-{:04}", seed % 1000, i);
        number(
            &id,
            &display,
            &format!("Sandbox {waba_id} #{}", i + 1),
            platform,
            quality,
            "CONNECTED",
        )
    })
    .collect()
}

fn mark_registered(number: &mut MetaPhoneNumber) {
    number.platform_type = Some("CLOUD_API".into());
    number.throughput_level = Some("STANDARD".into());
    number.status = Some("CONNECTED".into());
}

fn api_error(http_status: u16, code: i64, message: &str, transient: bool) -> MetaError {
    MetaError::Api(Box::new(GraphError {
        http_status,
        code,
        subcode: None,
        message: message.into(),
        details: None,
        user_message: None,
        is_transient: transient,
        fbtrace_id: Some(format!("sandbox-{}", uuid::Uuid::new_v4().simple())),
        retry_after_seconds: None,
    }))
}

/// Tokens starting with `expired` are rejected like a revoked token, to show the reconnect path.
fn check_token(token: &str) -> Result<(), MetaError> {
    if token.is_empty() || token.starts_with("expired") {
        return Err(api_error(
            401,
            190,
            "Error validating access token: Session has expired",
            false,
        ));
    }
    Ok(())
}

impl Sandbox {
    /// A sandbox that forgets everything when dropped (tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sandbox that remembers which numbers it registered in `file` (JSON list of ids; no PINs).
    pub fn persistent(file: std::path::PathBuf) -> Self {
        let registered: Vec<MetaPhoneNumberId> = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let sandbox = Sandbox {
            state: Mutex::default(),
            file: Some(file),
        };
        if let Ok(mut state) = sandbox.state.lock() {
            for id in registered {
                if let Some(number) = state.find(&id) {
                    mark_registered(number);
                }
            }
        }
        sandbox
    }

    fn save(&self, state: &State) {
        let Some(file) = &self.file else { return };
        let registered: Vec<&MetaPhoneNumberId> = state.pins.keys().collect();
        if let Ok(text) = serde_json::to_string(&registered) {
            if let Err(err) = std::fs::write(file, text) {
                tracing::warn!(error = %err, "sandbox state not saved");
            }
        }
    }

    /// Messages "sent" so far, oldest first.
    pub fn sent_messages(&self) -> Vec<SandboxMessage> {
        self.state
            .lock()
            .map(|s| s.sent.clone())
            .unwrap_or_default()
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| MetaError::Transport("sandbox state poisoned".into()))?;
        f(&mut state)
    }
}

impl State {
    fn numbers(&mut self, waba_id: &WabaId) -> &mut Vec<MetaPhoneNumber> {
        self.wabas.entry(waba_id.clone()).or_insert_with(|| {
            if waba_id.as_str() == DEMO_WABA_ID {
                demo_numbers()
            } else {
                generated_numbers(waba_id)
            }
        })
    }

    fn find(&mut self, meta_phone_number_id: &MetaPhoneNumberId) -> Option<&mut MetaPhoneNumber> {
        self.numbers(&WabaId::from(DEMO_WABA_ID));
        self.wabas
            .values_mut()
            .flatten()
            .find(|n| n.id == *meta_phone_number_id)
    }
}

#[async_trait::async_trait]
impl MetaApi for Sandbox {
    fn mode(&self) -> MetaMode {
        MetaMode::Sandbox
    }

    async fn list_phone_numbers(
        &self,
        token: &str,
        waba_id: &WabaId,
        after: Option<&str>,
    ) -> Result<PhoneNumberPage, MetaError> {
        check_token(token)?;
        self.with_state(|state| {
            let numbers = state.numbers(waba_id);
            let start = match after {
                Some(cursor) => cursor
                    .parse::<usize>()
                    .map_err(|_| api_error(400, 100, "Invalid cursor", false))?,
                None => 0,
            };
            let end = (start + PAGE_SIZE).min(numbers.len());
            let page = numbers.get(start..end).unwrap_or_default().to_vec();
            Ok(PhoneNumberPage {
                numbers: page,
                after: (end < numbers.len()).then(|| end.to_string()),
            })
        })
    }

    async fn get_phone_number(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
    ) -> Result<MetaPhoneNumber, MetaError> {
        check_token(token)?;
        self.with_state(|state| {
            state.find(meta_phone_number_id).cloned().ok_or_else(|| {
                api_error(
                    400,
                    100,
                    "Unsupported get request. Object does not exist",
                    false,
                )
            })
        })
    }

    async fn get_waba_name(
        &self,
        token: &str,
        waba_id: &WabaId,
    ) -> Result<Option<String>, MetaError> {
        check_token(token)?;
        Ok(Some(if waba_id.as_str() == DEMO_WABA_ID {
            "Jaspers Market (sandbox)".into()
        } else {
            format!("Sandbox WABA {waba_id}")
        }))
    }

    async fn register(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        pin: &str,
    ) -> Result<(), MetaError> {
        check_token(token)?;
        self.with_state(|state| {
            state.register_calls += 1;
            if state.register_calls % TRANSIENT_FAILURE_EVERY == 1 {
                return Err(api_error(
                    503,
                    133004,
                    "(#133004) Server temporarily unavailable",
                    true,
                ));
            }
            if let Some(existing) = state.pins.get(meta_phone_number_id) {
                if existing != pin {
                    return Err(api_error(
                        400,
                        133005,
                        "(#133005) Two step verification PIN Mismatch",
                        false,
                    ));
                }
            }
            let number = state.find(meta_phone_number_id).ok_or_else(|| {
                api_error(
                    400,
                    100,
                    "Unsupported post request. Object does not exist",
                    false,
                )
            })?;
            mark_registered(number);
            state
                .pins
                .insert(meta_phone_number_id.clone(), pin.to_owned());
            self.save(state);
            Ok(())
        })
    }

    async fn exchange_code(&self, code: &str) -> Result<String, MetaError> {
        if code.trim().is_empty() || code.starts_with("expired") {
            return Err(api_error(
                400,
                100,
                "Invalid verification code format.",
                false,
            ));
        }
        Ok(format!("sandbox-token-{}", uuid::Uuid::new_v4().simple()))
    }

    async fn inspect_token(&self, token: &str) -> Result<TokenInfo, MetaError> {
        check_token(token)?;
        Ok(TokenInfo {
            waba_ids: vec![WabaId::from(DEMO_WABA_ID)],
            expires_at: None,
        })
    }

    async fn subscribe_app(&self, token: &str, _waba_id: &WabaId) -> Result<(), MetaError> {
        check_token(token)
    }

    async fn unsubscribe_app(&self, token: &str, _waba_id: &WabaId) -> Result<(), MetaError> {
        check_token(token)
    }

    async fn send_message(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        body: &Value,
    ) -> Result<SentMessage, MetaError> {
        check_token(token)?;
        self.with_state(|state| {
            let message_id = format!("wamid.SANDBOX{}", uuid::Uuid::new_v4().simple());
            state.sent.push(SandboxMessage {
                meta_phone_number_id: meta_phone_number_id.clone(),
                message_id: message_id.clone(),
                body: body.clone(),
                sent_at: chrono::Utc::now(),
            });
            Ok(SentMessage { message_id })
        })
    }

    async fn mark_read(
        &self,
        token: &str,
        _meta_phone_number_id: &MetaPhoneNumberId,
        _message_id: &str,
    ) -> Result<(), MetaError> {
        check_token(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ErrorClass;

    #[tokio::test]
    async fn the_demo_waba_pages_through_numbers_of_every_kind() {
        let sandbox = Sandbox::new();
        let first = sandbox
            .list_phone_numbers("t", &WabaId::from(DEMO_WABA_ID), None)
            .await
            .unwrap();
        let second = sandbox
            .list_phone_numbers("t", &WabaId::from(DEMO_WABA_ID), first.after.as_deref())
            .await
            .unwrap();
        assert!(second.after.is_none());
        let all: Vec<_> = first.numbers.into_iter().chain(second.numbers).collect();
        assert_eq!(all.len(), 6);
        for platform in ["CLOUD_API", "ON_PREMISE", "NOT_APPLICABLE"] {
            assert!(all
                .iter()
                .any(|n| n.platform_type.as_deref() == Some(platform)));
        }
        for quality in ["GREEN", "YELLOW", "RED", "UNKNOWN"] {
            assert!(all
                .iter()
                .any(|n| n.quality_rating.as_deref() == Some(quality)));
        }
        assert!(all.iter().any(|n| n.is_on_biz_app));
    }

    #[tokio::test]
    async fn registration_fails_transiently_at_first_then_succeeds_and_keeps_the_pin() {
        let sandbox = Sandbox::new();
        let err = sandbox
            .register("t", &MetaPhoneNumberId::from("200000000000003"), "123456")
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
        sandbox
            .register("t", &MetaPhoneNumberId::from("200000000000003"), "123456")
            .await
            .unwrap();
        let number = sandbox
            .get_phone_number("t", &MetaPhoneNumberId::from("200000000000003"))
            .await
            .unwrap();
        assert_eq!(number.platform_type.as_deref(), Some("CLOUD_API"));
        sandbox
            .register("t", &MetaPhoneNumberId::from("200000000000004"), "000000")
            .await
            .unwrap();
        let wrong = sandbox
            .register("t", &MetaPhoneNumberId::from("200000000000003"), "654321")
            .await
            .unwrap_err();
        assert!(wrong.class() == ErrorClass::Transient || wrong.code() == Some(133005));
    }

    #[tokio::test]
    async fn a_persistent_sandbox_remembers_what_it_registered() {
        let file = std::env::temp_dir().join(format!("wn-sandbox-{}.json", uuid::Uuid::new_v4()));
        let sandbox = Sandbox::persistent(file.clone());
        let _ = sandbox
            .register("t", &MetaPhoneNumberId::from("200000000000004"), "123456")
            .await;
        sandbox
            .register("t", &MetaPhoneNumberId::from("200000000000004"), "123456")
            .await
            .unwrap();
        drop(sandbox);
        let again = Sandbox::persistent(file.clone());
        let number = again
            .get_phone_number("t", &MetaPhoneNumberId::from("200000000000004"))
            .await
            .unwrap();
        assert_eq!(number.platform_type.as_deref(), Some("CLOUD_API"));
        assert!(
            !std::fs::read_to_string(&file).unwrap().contains("123456"),
            "no PINs on disk"
        );
        std::fs::remove_file(file).ok();
    }

    #[tokio::test]
    async fn sent_messages_are_recorded_and_expired_tokens_rejected() {
        let sandbox = Sandbox::new();
        let body = serde_json::json!({"messaging_product": "whatsapp", "to": "+15551234567", "type": "text", "text": {"body": "hi"}});
        let sent = sandbox
            .send_message("t", &MetaPhoneNumberId::from("200000000000001"), &body)
            .await
            .unwrap();
        assert_eq!(sandbox.sent_messages()[0].message_id, sent.message_id);
        assert!(sandbox
            .list_phone_numbers("expired-x", &WabaId::from(DEMO_WABA_ID), None)
            .await
            .unwrap_err()
            .is_token_rejected());
    }
}
