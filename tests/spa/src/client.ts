// A typed client for the dashboard, written only against the types openapi-typescript generates
// from openapi/openapi.json. A renamed field, a loosened type or a new error code on the server
// fails `tsc --strict` here.
import type { components, operations } from "./api";

type Schemas = components["schemas"];
export type PhoneNumber = Schemas["PhoneNumber"];
export type PhoneNumberList = Schemas["PhoneNumberList"];
export type Agent = Schemas["Agent"];
export type AgentList = Schemas["AgentList"];
export type Me = Schemas["Me"];
export type ConnectedAccount = Schemas["ConnectedAccount"];
export type Problem = Schemas["Problem"];
export type TableQuery = NonNullable<operations["list_phone_numbers"]["parameters"]["query"]>;
export type NewAgent = NonNullable<operations["create_agent"]["requestBody"]>["content"]["application/json"];
export type ConnectBody = NonNullable<operations["connect_whatsapp_account"]["requestBody"]>["content"]["application/json"];
export type ConversationList = Schemas["ConversationList"];
export type MessageList = Schemas["MessageList"];
export type Message = Schemas["Message"];
export type PlayedMessage = Schemas["PlayedMessage"];
export type InboundMessage = Schemas["InboundMessageInput"];
export type SendMessage = Schemas["SendMessage"];
export type LiveEvent = Schemas["Event"];

/** The problem bodies an operation documents, by status. */
type ProblemsOf<Op extends keyof operations> = {
  [S in keyof operations[Op]["responses"]]: operations[Op]["responses"][S] extends {
    content: { "application/problem+json": infer P };
  }
    ? P
    : never;
}[keyof operations[Op]["responses"]];

/** The codes an operation can answer with. */
export type CodeOf<Op extends keyof operations> = ProblemsOf<Op> extends { code: infer C } ? C : never;

export type Outcome<T, Op extends keyof operations> =
  | { ok: true; status: number; value: T }
  | { ok: false; status: number; problem: ProblemsOf<Op>; allow: string | null; retryAfter: number | null };

export class Api {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  async call<T, Op extends keyof operations>(
    _op: Op,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Outcome<T, Op>> {
    const init: RequestInit = {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(`${this.base}${path}`, init);
    const text = await response.text();
    const json: unknown = text === "" ? null : JSON.parse(text);
    if (response.ok) return { ok: true, status: response.status, value: json as T };
    const retry = response.headers.get("Retry-After");
    return {
      ok: false,
      status: response.status,
      problem: json as ProblemsOf<Op>,
      allow: response.headers.get("Allow"),
      retryAfter: retry === null ? null : Number(retry),
    };
  }

  /** The caller: hide actions a viewer cannot take. */
  me() {
    return this.call<Me, "get_me">("get_me", "GET", "/api/v1/me");
  }

  /** The Phone Numbers table, one page. */
  phoneNumbers(query: TableQuery) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) params.set(key, String(value));
    }
    return this.call<PhoneNumberList, "list_phone_numbers">(
      "list_phone_numbers",
      "GET",
      `/api/v1/phone-numbers?${params}`,
    );
  }

  phoneNumber(id: PhoneNumber["id"]) {
    return this.call<PhoneNumber, "get_phone_number">("get_phone_number", "GET", `/api/v1/phone-numbers/${id}`);
  }

  /** The Actions column's Register button. */
  register(id: PhoneNumber["id"]) {
    return this.call<PhoneNumber, "register_phone_number">(
      "register_phone_number",
      "POST",
      `/api/v1/phone-numbers/${id}/register`,
    );
  }

  /** "Register all pending numbers": what was queued, and what was skipped and why. */
  registerAll(body: Schemas["RegisterMany"]) {
    return this.call<Schemas["RegisterManyResult"], "register_phone_numbers">(
      "register_phone_numbers",
      "POST",
      "/api/v1/phone-numbers/register",
      body,
    );
  }

  /** The WhatsApp Agent column's modal: assign, or clear with null. */
  assignAgent(number: PhoneNumber["id"], agent: Agent["id"] | null) {
    return this.call<PhoneNumber, "assign_inbound_agent">(
      "assign_inbound_agent",
      "PUT",
      `/api/v1/phone-numbers/${number}/inbound-agent`,
      { agent_id: agent },
    );
  }

  /** The assignment dropdown's search box. */
  searchAgents(q: string) {
    return this.call<AgentList, "list_agents">("list_agents", "GET", `/api/v1/agents?q=${encodeURIComponent(q)}`);
  }

  createAgent(agent: NewAgent) {
    return this.call<Agent, "create_agent">("create_agent", "POST", "/api/v1/agents", agent);
  }

  /** The agents table's WhatsApp Outbound Number column: pick, or clear with null. */
  setOutbound(agent: Agent["id"], number: PhoneNumber["id"] | null) {
    return this.call<Agent, "set_whatsapp_outbound_number">(
      "set_whatsapp_outbound_number",
      "PUT",
      `/api/v1/agents/${agent}/whatsapp-outbound-number`,
      { number_id: number },
    );
  }

  /** The Conversations screen: most recently active first, optionally of one number. */
  conversations(number?: PhoneNumber["id"]) {
    const query = number === undefined ? "" : `?number_id=${number}`;
    return this.call<ConversationList, "list_conversations">("list_conversations", "GET", `/api/v1/conversations${query}`);
  }

  /** One conversation's messages, oldest first, with delivery status. */
  messages(conversation: Schemas["Conversation"]["id"]) {
    return this.call<MessageList, "list_conversation_messages">(
      "list_conversation_messages",
      "GET",
      `/api/v1/conversations/${conversation}/messages`,
    );
  }

  /** The agent's Send button: text inside the customer's 24-hour window, else a template. */
  sendMessage(agent: Agent["id"], body: SendMessage) {
    return this.call<Message, "send_agent_message">("send_agent_message", "POST", `/api/v1/agents/${agent}/messages`, body);
  }

  /**
   * The live stream (Server-Sent Events over fetch, so the bearer token goes in a header): calls
   * `on` with each event until it returns true, then closes the stream.
   */
  async listen(on: (event: LiveEvent) => boolean, lastEventId?: string): Promise<void> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
    const controller = new AbortController();
    const response = await fetch(`${this.base}/api/v1/events`, { headers, signal: controller.signal });
    if (!response.ok || response.body === null) throw new Error(`events: ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("events: the stream ended");
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split("\n").find((line) => line.startsWith("data: "));
        if (data === undefined) continue;
        if (on(JSON.parse(data.slice(6)) as LiveEvent)) {
          controller.abort();
          return;
        }
      }
    }
  }

  /** Development mode: play a WhatsApp user writing to one of the numbers. */
  playInbound(body: InboundMessage) {
    return this.call<PlayedMessage, "play_sandbox_inbound_message">(
      "play_sandbox_inbound_message",
      "POST",
      "/api/v1/sandbox/inbound-messages",
      body,
    );
  }

  /** Add Phone Number: finish Embedded Signup, or connect with a system-user token. */
  connect(body: ConnectBody) {
    return this.call<ConnectedAccount, "connect_whatsapp_account">(
      "connect_whatsapp_account",
      "POST",
      "/api/v1/whatsapp/accounts",
      body,
    );
  }
}

/** What the Actions column shows, from what the server decided. */
export function actionsCell(n: PhoneNumber): string {
  const r = n.registration;
  switch (r.state) {
    case "registered":
      return "✅ Registered";
    case "registering":
      return "⏳ Registering…";
    case "not_registered":
    case "failed":
      if (!n.can_register) return "—";
      switch (r.blocked_reason) {
        case null:
          return r.state === "failed" && r.retryable === false ? "Fix in Meta, then Register" : "Register";
        case "limit_reached":
          return `Blocked until ${r.next_attempt_at ?? "later"} (${r.attempts_in_window}/${r.max_attempts})`;
        case "meta_unavailable":
          return `Meta is not answering: try again after ${r.next_attempt_at ?? "a while"}`;
        case "account_needs_reconnect":
          return "Reconnect the account";
        case "coexistence":
        case "removed":
          return "—";
      }
  }
}

/** A message's status line in the conversation view: every status the server can send. */
export function statusLine(m: Message): string {
  switch (m.status) {
    case "received":
      return "Answering…";
    case "answered":
      return "Answered";
    case "no_agent":
      return "No agent on this number";
    case "not_answered":
      return "The agent had nothing to say";
    case "reply_failed":
      return `Not answered: ${m.error?.message ?? "unknown"}`;
    case "queued":
      return "Waiting for its turn…";
    case "sending":
      return "Sending…";
    case "sent":
      return "✓";
    case "delivered":
      return "✓✓";
    case "read":
      return "✓✓ read";
    case "failed":
      return `Failed${m.error?.code == null ? "" : ` (${m.error.code})`}: ${m.error?.message ?? ""}`;
  }
}

/** The WhatsApp Agent column. */
export function agentCell(n: PhoneNumber): string {
  if (!n.can_assign_inbound_agent) return "Register via Actions";
  return n.inbound_agent === null ? "Assign…" : n.inbound_agent.name;
}

/** The toast of a failed Register click: every code the operation documents, and no other. */
export function registerErrorToast(code: CodeOf<"register_phone_number">): string {
  switch (code) {
    case "registration_in_progress":
      return "Already registering; wait a moment.";
    case "already_registered":
      return "Already registered.";
    case "number_removed":
      return "This number was removed in Meta.";
    case "account_needs_reconnect":
      return "Reconnect the WhatsApp account first.";
    case "registration_limit_reached":
      return "Meta's limit is reached; try again later.";
    case "meta_error":
      return "Meta refused; see the details.";
    case "phone_number_not_found":
      return "This number no longer exists.";
    case "idempotency_key_in_progress":
      return "Your first click is still registering; wait a moment.";
    case "idempotency_key_reused":
      return "Something went wrong; reload and try again.";
    case "validation_failed":
    case "unauthorized":
    case "forbidden":
    case "internal_error":
    case "service_unavailable":
      return "Something went wrong; try again.";
  }
}

/** The toast of a refused send: every code the operation documents, and no other. */
export function sendErrorToast(code: CodeOf<"send_agent_message">): string {
  switch (code) {
    case "outside_service_window":
      return "They have not written in 24 hours: pick a template.";
    case "no_outbound_number":
      return "Pick this agent's outbound number first.";
    case "number_not_cloud_api":
      return "The outbound number is not on the Cloud API; register it first.";
    case "number_removed":
      return "The outbound number was removed in Meta; pick another.";
    case "account_needs_reconnect":
      return "Reconnect the number's WhatsApp account first.";
    case "agent_not_found":
      return "This agent no longer exists.";
    case "idempotency_key_in_progress":
      return "Still sending your first click; wait a moment.";
    case "payload_too_large":
      return "The message is too large.";
    case "idempotency_key_reused":
    case "validation_failed":
    case "unauthorized":
    case "forbidden":
    case "internal_error":
    case "service_unavailable":
      return "Something went wrong; try again.";
  }
}

/** Why Register all left a number out, in the table's words. */
export function skipLine(s: Schemas["SkippedRegistration"]): string {
  switch (s.reason) {
    case "not_found":
      return "No longer exists";
    case "removed":
      return "Removed in Meta";
    case "coexistence":
      return "On the WhatsApp Business app: Meta registered it";
    case "already_registered":
      return "Already registered";
    case "in_progress":
      return "Being registered";
    case "account_needs_reconnect":
      return "Reconnect the account first";
    case "limit_reached":
      return `Meta's limit: try again in ${Math.ceil((s.retry_after_seconds ?? 0) / 3600)} h`;
  }
}
