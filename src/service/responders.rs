//! How an agent's answer is produced: the built-in FAQ, an OpenAI-compatible chat-completions
//! server, or the customer's webhook, behind one trait. Calls to agents' URLs go through
//! [`AgentHttp`]: the host is resolved and private addresses refused (unless allowed), no
//! redirect is followed, time and answer size are capped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::responder::{FaqSettings, OpenAiSettings, Responder, WebhookSettings};

/// Largest answer read from an agent's server.
pub const MAX_AGENT_ANSWER_BYTES: usize = 256 * 1024;

/// Why no answer could be had. All of these are worth a retry, except a refused address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponderError {
    /// The URL leads to an address agents may not call (loopback, private, link-local).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

impl ResponderError {
    pub fn retryable(&self) -> bool {
        matches!(self, ResponderError::Failed(_))
    }
}

/// One turn of the conversation, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// True for what the customer wrote.
    pub from_customer: bool,
    pub text: String,
}

/// What an agent answers.
#[derive(Debug, Clone)]
pub struct Question {
    /// Our id of the customer's message.
    pub message_id: String,
    pub conversation_id: String,
    /// What the customer wrote (for a message without text, `[image]` and the like).
    pub text: String,
    pub kind: String,
    pub customer: Value,
    pub number: Value,
    pub agent: Value,
    /// Earlier messages, oldest first.
    pub history: Vec<Turn>,
}

/// Produces the answer to a customer's message; `None` when the agent has nothing to say.
#[async_trait::async_trait]
pub trait Respond: Send + Sync {
    async fn answer(&self, question: &Question) -> Result<Option<String>, ResponderError>;
}

/// The responder an agent is configured with, with its secret (decrypted for this call only).
pub fn responder_for(
    settings: Responder,
    secret: Option<String>,
    http: &AgentHttp,
) -> Box<dyn Respond> {
    match settings {
        Responder::Faq { faq } => Box::new(Faq(faq)),
        Responder::Openai { openai } => Box::new(OpenAi {
            settings: openai,
            api_key: secret,
            http: http.clone(),
        }),
        Responder::Webhook { webhook } => Box::new(Webhook {
            settings: webhook,
            secret: secret.unwrap_or_default(),
            http: http.clone(),
        }),
    }
}

/// Keyword entries: the first entry with a keyword in the message answers; else the fallback.
pub struct Faq(pub FaqSettings);

#[async_trait::async_trait]
impl Respond for Faq {
    async fn answer(&self, question: &Question) -> Result<Option<String>, ResponderError> {
        let said = question.text.to_lowercase();
        let hit = self.0.entries.iter().find(|entry| {
            entry
                .keywords
                .iter()
                .map(|k| k.trim().to_lowercase())
                .any(|k| !k.is_empty() && said.contains(&k))
        });
        Ok(hit
            .map(|entry| entry.answer.clone())
            .or_else(|| self.0.fallback.clone()))
    }
}

/// Any OpenAI-compatible chat-completions server.
pub struct OpenAi {
    settings: OpenAiSettings,
    api_key: Option<String>,
    http: AgentHttp,
}

#[async_trait::async_trait]
impl Respond for OpenAi {
    async fn answer(&self, question: &Question) -> Result<Option<String>, ResponderError> {
        let mut messages = Vec::new();
        if let Some(prompt) = &self.settings.system_prompt {
            messages.push(json!({"role": "system", "content": prompt}));
        }
        let keep = self.settings.history_messages as usize;
        let skip = question.history.len().saturating_sub(keep);
        for turn in question.history.iter().skip(skip) {
            let role = if turn.from_customer {
                "user"
            } else {
                "assistant"
            };
            messages.push(json!({"role": role, "content": turn.text}));
        }
        messages.push(json!({"role": "user", "content": question.text}));
        let body = json!({"model": self.settings.model, "messages": messages});
        let url = format!("{}/chat/completions", self.settings.base_url);
        let mut headers = Vec::new();
        if let Some(key) = &self.api_key {
            headers.push(("authorization", format!("Bearer {key}")));
        }
        let answer = self.http.post_json(&url, &body, headers).await?;
        let parsed: Value = serde_json::from_slice(&answer.body).map_err(|_| {
            ResponderError::Failed(format!(
                "the chat-completions server answered HTTP {} with no JSON",
                answer.status
            ))
        })?;
        if !(200..300).contains(&answer.status) {
            let why = parsed
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(ResponderError::Failed(format!(
                "the chat-completions server answered HTTP {}: {}",
                answer.status,
                why.chars().take(300).collect::<String>()
            )));
        }
        let content = parsed
            .get("choices")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("message"))
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ResponderError::Failed(
                    "the chat-completions answer has no choices[0].message.content".into(),
                )
            })?;
        Ok(Some(content.trim().to_owned()).filter(|c| !c.is_empty()))
    }
}

/// The customer's own endpoint: gets the message and its context, signed; answers the text.
pub struct Webhook {
    settings: WebhookSettings,
    secret: String,
    http: AgentHttp,
}

/// Header of the signature on calls to agents' webhooks: `sha256=<hex HMAC-SHA256 of the body>`.
pub const AGENT_SIGNATURE_HEADER: &str = "x-signature-256";

#[async_trait::async_trait]
impl Respond for Webhook {
    async fn answer(&self, question: &Question) -> Result<Option<String>, ResponderError> {
        let history: Vec<Value> = question
            .history
            .iter()
            .map(|t| {
                json!({"role": if t.from_customer { "customer" } else { "agent" }, "text": t.text})
            })
            .collect();
        let body = json!({
            "message": {"id": question.message_id, "type": question.kind, "text": question.text},
            "conversation": {"id": question.conversation_id, "history": history},
            "customer": question.customer,
            "number": question.number,
            "agent": question.agent,
        });
        let bytes = body.to_string();
        let signature = crate::crypto::hub_signature(self.secret.as_bytes(), bytes.as_bytes());
        let answer = self
            .http
            .post_raw(
                &self.settings.url,
                bytes.into_bytes(),
                vec![(AGENT_SIGNATURE_HEADER, signature)],
            )
            .await?;
        if answer.status == 204 {
            return Ok(None);
        }
        if !(200..300).contains(&answer.status) {
            return Err(ResponderError::Failed(format!(
                "the agent's webhook answered HTTP {}",
                answer.status
            )));
        }
        // `{"text": "..."}` (null: no answer), or the text itself.
        let text = match serde_json::from_slice::<Value>(&answer.body) {
            Ok(Value::Object(o)) => match o.get("text") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(_) => {
                    return Err(ResponderError::Failed(
                        "the agent's webhook answered a `text` that is not a string".into(),
                    ))
                }
            },
            _ => Some(String::from_utf8_lossy(&answer.body).into_owned()),
        };
        Ok(text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
    }
}

/// An answer from an agent's server.
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The HTTP client for agents' URLs.
#[derive(Clone)]
pub struct AgentHttp {
    client: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

impl AgentHttp {
    /// `timeout`: longest an agent's server may take to answer.
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()
            .map_err(|e| format!("cannot build the agents' HTTP client: {e}"))?;
        Ok(AgentHttp {
            client,
            allow_private,
            timeout,
        })
    }

    async fn post_json(
        &self,
        url: &str,
        body: &Value,
        headers: Vec<(&'static str, String)>,
    ) -> Result<HttpAnswer, ResponderError> {
        self.post_raw(url, body.to_string().into_bytes(), headers)
            .await
    }

    async fn post_raw(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: Vec<(&'static str, String)>,
    ) -> Result<HttpAnswer, ResponderError> {
        let parsed = url::Url::parse(url)
            .map_err(|_| ResponderError::Refused("the agent's URL does not parse".into()))?;
        // An address written in the URL is not resolved, so it is checked here.
        if let Some(url::Host::Ipv4(ip)) = parsed.host() {
            self.check(IpAddr::V4(ip))?;
        }
        if let Some(url::Host::Ipv6(ip)) = parsed.host() {
            self.check(IpAddr::V6(ip))?;
        }
        let mut request = self
            .client
            .post(parsed)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|e| self.describe(e))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(ResponderError::Failed(format!(
                "the agent's server answered a redirect (HTTP {status}), which is not followed"
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.describe(e))? {
            if bytes.len() + chunk.len() > MAX_AGENT_ANSWER_BYTES {
                return Err(ResponderError::Failed(format!(
                    "the agent's server answered more than {MAX_AGENT_ANSWER_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(HttpAnswer {
            status,
            body: bytes,
        })
    }

    fn describe(&self, err: reqwest::Error) -> ResponderError {
        // A refused address surfaces as a connect error carrying our resolver's message.
        let text = format!("{err:?}");
        if text.contains(REFUSED_MARK) {
            return refused();
        }
        ResponderError::Failed(if err.is_timeout() {
            format!(
                "the agent's server did not answer within {} s",
                self.timeout.as_secs()
            )
        } else if err.is_connect() {
            "could not connect to the agent's server".into()
        } else {
            format!("calling the agent's server failed: {}", err.without_url())
        })
    }

    fn check(&self, ip: IpAddr) -> Result<(), ResponderError> {
        if self.allow_private || crate::domain::responder::is_public_address(ip) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

fn refused() -> ResponderError {
    ResponderError::Refused(
        "the agent's URL leads to a loopback, private or link-local address, which agents may not \
         call (AGENT_URL_ALLOW_PRIVATE is off)"
            .into(),
    )
}

const REFUSED_MARK: &str = "address not allowed for agents";

/// Resolves like the system, then keeps only addresses agents may call: checking the addresses
/// actually connected to, not a name looked up earlier, leaves no room for DNS rebinding.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || crate::domain::responder::is_public_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    REFUSED_MARK,
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::responder::FaqEntry;

    fn question(text: &str) -> Question {
        Question {
            message_id: "m".into(),
            conversation_id: "c".into(),
            text: text.into(),
            kind: "text".into(),
            customer: Value::Null,
            number: Value::Null,
            agent: Value::Null,
            history: vec![],
        }
    }

    #[tokio::test]
    async fn faq_answers_the_first_matching_entry_else_the_fallback() {
        let faq = Faq(FaqSettings {
            entries: vec![
                FaqEntry {
                    keywords: vec!["Opening Hours".into(), "open".into()],
                    answer: "9 to 5".into(),
                },
                FaqEntry {
                    keywords: vec!["price".into()],
                    answer: "Cheap".into(),
                },
            ],
            fallback: Some("Ask a human".into()),
        });
        assert_eq!(
            faq.answer(&question("When are you OPEN?"))
                .await
                .unwrap()
                .as_deref(),
            Some("9 to 5")
        );
        assert_eq!(
            faq.answer(&question("what price"))
                .await
                .unwrap()
                .as_deref(),
            Some("Cheap")
        );
        assert_eq!(
            faq.answer(&question("hello")).await.unwrap().as_deref(),
            Some("Ask a human")
        );
        let silent = Faq(FaqSettings {
            entries: vec![],
            fallback: None,
        });
        assert_eq!(silent.answer(&question("hello")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let http = AgentHttp::new(false, Duration::from_secs(20)).unwrap();
        let err = http
            .post_raw("http://127.0.0.1:9/x", vec![], vec![])
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ResponderError::Refused(_)), "{err:?}");
        let err = http
            .post_raw("http://localhost:9/x", vec![], vec![])
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, ResponderError::Refused(_)),
            "a name resolving to loopback: {err:?}"
        );
        let allowed = AgentHttp::new(true, Duration::from_secs(20)).unwrap();
        let err = allowed
            .post_raw("http://127.0.0.1:9/x", vec![], vec![])
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, ResponderError::Failed(_)),
            "allowed, then nothing listens: {err:?}"
        );
    }
}
