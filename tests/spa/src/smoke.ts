// Drives every screen of the product page against a running server in development mode (the
// sandbox stands in for Meta), one request per screen, as the dashboard would. Exits non-zero on
// the first broken expectation. Usage: BASE_URL=http://127.0.0.1:8080 TOKEN=<editor JWT> node build/smoke.js
import {
  Api,
  actionsCell,
  agentCell,
  registerErrorToast,
  sendErrorToast,
  skipLine,
  statusLine,
  type Message,
  type PhoneNumber,
  type PhoneNumberList,
} from "./client.js";

const base = process.env["BASE_URL"];
const token = process.env["TOKEN"];
if (base === undefined || token === undefined) throw new Error("set BASE_URL and TOKEN");
const api = new Api(base, token);

function expect(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`expected: ${what}`);
}

async function ok<T>(pending: Promise<{ ok: true; value: T } | { ok: false; status: number; problem: unknown }>, what: string): Promise<T> {
  const outcome = await pending;
  if (!outcome.ok) throw new Error(`${what}: HTTP ${outcome.status} ${JSON.stringify(outcome.problem)}`);
  return outcome.value;
}

// Who am I: an editor sees the actions.
const me = await ok(api.me(), "GET /me");
expect(me.role === "editor" && me.can_write, "an editor token");

// The table, paged two at a time until the last page.
const rows: PhoneNumber[] = [];
let cursor: string | null = null;
do {
  const page: PhoneNumberList = await ok(api.phoneNumbers(cursor === null ? { limit: 2 } : { limit: 2, cursor }), "table page");
  rows.push(...page.data);
  cursor = page.next_cursor;
} while (cursor !== null);
expect(rows.length >= 6, "the sandbox's demo numbers fill the table");
for (const n of rows) {
  expect(!(n.can_register && n.can_assign_inbound_agent), `${n.display_phone_number}: Register and the agent picker never together`);
  expect(actionsCell(n).length > 0 && agentCell(n).length > 0, "every row renders");
}

// Filters and sort, each one request.
const usable = await ok(api.phoneNumbers({ can_use_as_outbound: true }), "outbound dropdown");
expect(usable.data.length > 0 && usable.data.every((n) => n.can_use_as_outbound && n.platform_type === "CLOUD_API"), "the dropdown lists usable Cloud API numbers");
const worst = await ok(api.phoneNumbers({ sort: "quality_rating", limit: 1 }), "worst quality first");
expect(worst.data[0]?.quality_rating === "RED", "quality sort puts RED first");

// One number.
const first = rows[0];
expect(first !== undefined, "a first row");
const one = await ok(api.phoneNumber(first.id), "one number");
expect(one.phone_number_id === first.phone_number_id, "the same number");

// An agent, found by the dropdown's search, assigned and cleared; then picked as outbound and cleared.
const agent = await ok(
  api.createAgent({
    name: `Smoke agent ${Date.now()}`,
    responder: { kind: "faq", faq: { entries: [{ keywords: ["hours"], answer: "9 to 5" }], fallback: null } },
  }),
  "create agent",
);
const found = await ok(api.searchAgents("smoke AGENT"), "search agents");
expect(found.data.some((a) => a.id === agent.id), "search is case-insensitive, anywhere in the name");
const target = usable.data[0];
expect(target !== undefined, "a usable number");
// The dashboard never needs a refresh: an open stream shows the assignment as it happens.
const live = api.listen((e) => e.type === "inbound_agent.changed" && e.number_id === target.id && e.agent_id === agent.id);
await new Promise((r) => setTimeout(r, 300));
const assigned = await ok(api.assignAgent(target.id, agent.id), "assign");
await Promise.race([
  live,
  new Promise((_, reject) => setTimeout(() => reject(new Error("expected: the assignment on the live stream")), 5000)),
]);
expect(assigned.inbound_agent?.id === agent.id, "the agent answers the number");

// The inbound loop: a WhatsApp user writes (through the signed webhook pipeline), the agent answers.
const customer = `+1555${String(Date.now()).slice(-7)}`;
await ok(api.playInbound({ phone_number_id: target.phone_number_id, from: customer, text: "your hours?" }), "play inbound");
let answer: Message | undefined;
for (let i = 0; i < 300 && answer === undefined; i++) {
  const conversations = await ok(api.conversations(target.id), "conversations");
  const mine = conversations.data.find((c) => `+${c.customer.phone}` === customer);
  if (mine !== undefined) {
    const thread = await ok(api.messages(mine.id), "messages");
    // The answer is stored as "sending" before Meta is called: wait until Meta has answered.
    answer = thread.data.find((m) => m.direction === "outbound" && m.status !== "sending");
    thread.data.forEach((m) => expect(statusLine(m).length > 0, "every message renders"));
  }
  if (answer === undefined) await new Promise((r) => setTimeout(r, 50));
}
expect(answer?.text === "9 to 5" && answer.status === "sent", "the agent answered from the number");
const cleared = await ok(api.assignAgent(target.id, null), "clear");
expect(cleared.inbound_agent === null, "cleared");
const withOutbound = await ok(api.setOutbound(agent.id, target.id), "pick outbound");
expect(withOutbound.whatsapp_outbound_number?.id === target.id, "outbound number set");

// The agent writes first: text to the customer who just wrote (their window is open) is queued,
// then sent; text to someone who never wrote is refused before Meta, and a template goes.
const queued = await ok(api.sendMessage(agent.id, { to: customer, text: "Your order shipped" }), "send text");
expect(queued.status === "queued" && queued.direction === "outbound", "202 with the message queued");
let outbound: Message | undefined;
for (let i = 0; i < 300 && outbound === undefined; i++) {
  const thread = await ok(api.messages(queued.conversation_id), "messages");
  outbound = thread.data.find((m) => m.id === queued.id && m.status === "sent");
  if (outbound === undefined) await new Promise((r) => setTimeout(r, 50));
}
expect(outbound !== undefined, "the agent's message reached Meta");
const stranger = `+1444${String(Date.now()).slice(-7)}`;
const closed = await api.sendMessage(agent.id, { to: stranger, text: "hi" });
expect(!closed.ok && closed.status === 422 && closed.problem.code === "outside_service_window", sendErrorToast("outside_service_window"));
const templated = await ok(
  api.sendMessage(agent.id, { to: stranger, template: { name: "hello_world", language: "en_US" } }),
  "send template",
);
expect(templated.type === "template" && templated.template?.name === "hello_world", "a template goes to anyone");
const withoutOutbound = await ok(api.setOutbound(agent.id, null), "clear outbound");
expect(withoutOutbound.whatsapp_outbound_number === null, "outbound number cleared");

// A number off the Cloud API cannot take an agent: 409 number_not_cloud_api.
const offCloud = rows.find((n) => n.can_register);
expect(offCloud !== undefined, "a number that needs Register");
const refused = await api.assignAgent(offCloud.id, agent.id);
expect(!refused.ok && refused.status === 409 && refused.problem.code === "number_not_cloud_api", "register it first");

// Register: the sandbox fails the first call transiently, the click retries within Meta's limits.
const registered = await api.register(offCloud.id);
if (!registered.ok) throw new Error(`register: ${registerErrorToast(registered.problem.code)} ${JSON.stringify(registered.problem)}`);
expect(registered.value.registration.state === "registered" && registered.value.platform_type === "CLOUD_API", "registered");
expect(registered.value.can_assign_inbound_agent && !registered.value.can_register, "now it can take an agent");
const again = await api.register(offCloud.id);
expect(!again.ok && again.problem.code === "already_registered", "a second click is refused");
expect(!again.ok && again.problem.phone_number?.id === offCloud.id, "the error carries the number as it now is");

// Register all: the coexistence number is left out and says why; the rest is queued.
const all = await ok(api.registerAll({ all_pending: true }), "register all");
expect(all.skipped.some((s) => s.reason === "coexistence" && skipLine(s).length > 0), "coexistence is skipped with its reason");

// Add Phone Number with a system-user token: the answer lists the numbers it added.
const connected = await ok(api.connect({ waba_id: `7${Date.now()}`, access_token: "sandbox-token" }), "connect");
expect(connected.added_phone_numbers.length > 0 && connected.phone_number_count === connected.added_phone_numbers.length, "the new numbers come back");

// A method a path does not support: 405 with Allow.
const wrong = await api.call<never, "list_phone_numbers">("list_phone_numbers", "DELETE", "/api/v1/phone-numbers");
expect(!wrong.ok && wrong.status === 405 && wrong.allow === "GET", "405 with Allow: GET");

console.log(`SPA smoke: ${rows.length} numbers paged, every screen answered in one request`);
