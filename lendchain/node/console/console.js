// The lendchain console: a read-only view of one node, drawn from that node's API only.
//
// One poll a second asks /status and any new blocks; the network and chain views
// render from what the poll keeps, so the charts fill in whichever view is open.
// Data is put in the page as text nodes only (never as HTML), since tx payloads
// and purposes are written by anyone who can submit a transaction.
"use strict";

const TOKEN_KEY = "lendchain.console.token";
const KEEP_BLOCKS = 500; // the most /blocks hands out in one answer
const CHART_SECONDS = 120;

const poll = {
  status: null,
  blocks: [], // newest last, at most KEEP_BLOCKS
  polls: 0,
  viewChanges: [], // {at, from, to, how}
  reachable: true,
  members: null, // /members/*: the consortium as the chain records it, refreshed every MEMBERS_EVERY polls
  params: null, // /params/*: the chain parameters in force, refreshed with the members
  disputes: null, // /disputes/{did} of every member from rules 7 (memberDisputes), refreshed with the members
};
const MEMBERS_EVERY = 10;

// ---- API access --------------------------------------------------------------

function takeToken() {
  const url = new URL(window.location.href);
  const supplied = url.searchParams.get("token");
  if (supplied) {
    sessionStorage.setItem(TOKEN_KEY, supplied);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "this node does not answer (" + e.message + ")");
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    throw new ApiError(401, "this node needs its API token: open /console/?token=YOUR_TOKEN");
  }
  if (!response.ok) throw new ApiError(response.status, body.message || response.statusText);
  return body;
}

// ---- DOM helpers ---------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "onclick") el.addEventListener("click", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const short = (hex, n = 12) => (hex && hex.length > n + 2 ? hex.slice(0, n) + "…" : hex || "");
const link = (hash, text, cls) => h("a", { href: hash, class: cls }, text);
const blockLink = (height) => link("#/block/" + height, "#" + height);
const txLink = (id) => link("#/tx/" + id, short(id), "mono");
const loanLink = (id) => link("#/loan/" + id, short(id), "mono");
const partyLink = (did) => {
  if (!did) return "—";
  const a = link("#/party/" + encodeURIComponent(did), short(did, 24), "mono");
  a.title = did;
  return a;
};
// A member's name: the one a view gives, else the one in the consortium's list the poll keeps
// (/members/*); none for a party (parties have no names on chain), or before the first poll.
const nameOf = (did, name) => name || ((poll.members || []).find((m) => m.did === did) || {}).name;
// A member by its name (see nameOf) and its DID, which links to its page; a party by its DID alone.
const memberOf = (name, did) => {
  const known = did ? nameOf(did, name) : null;
  return [known ? known + " " : "", partyLink(did)];
};
// A member a view names by DID in a nested record, by the view's member_names (an older node: none).
const namedIn = (names, did) => memberOf(names && names[did], did);
const senderOf = (s) => (s.sender ? memberOf(s.sender_name, s.sender) : "—");
const pill = (text, kind) => h("span", { class: "pill " + kind }, text);
const card = (label, value, id) => h("div", { class: "card" }, h("div", { class: "label" }, label),
  h("div", { class: "value", id }, value));

function time(ms) {
  if (!ms) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function money(amount, currency) {
  if (amount === null || amount === undefined) return "—";
  const sign = amount < 0 ? "-" : "";
  const abs = Math.abs(amount);
  const units = Math.trunc(abs / 100).toLocaleString("en");
  return `${sign}${units}.${String(abs % 100).padStart(2, "0")}${currency ? " " + currency : ""}`;
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function table(columns, rows, onRow) {
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((row) => {
      const tr = h("tr", { class: onRow ? "clickable" : null, dataset: row.dataset || {} },
        row.cells.map((cell) => h("td", {}, cell)));
      if (onRow) tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") onRow(row); });
      return tr;
    })));
}

function banner(message) {
  const el = document.getElementById("banner");
  el.hidden = !message;
  el.textContent = message || "";
}

// ---- the poll ----------------------------------------------------------------

async function refresh() {
  const status = await api("/status");
  const previous = poll.status;
  poll.status = status;
  document.getElementById("node-name").textContent = `${status.name} · ${status.chain_id}`;
  if (previous && status.view !== previous.view) {
    poll.viewChanges.push({ at: Date.now(), from: previous.view, to: status.view, how: "seen by this console" });
  }
  const last = poll.blocks.length ? poll.blocks[poll.blocks.length - 1].header.height : 0;
  if (status.height > last) {
    const from = Math.max(last + 1, status.height - KEEP_BLOCKS + 1, 1);
    const got = await api(`/blocks?from=${from}&limit=${status.height - from + 1}`);
    poll.blocks = poll.blocks.filter((b) => b.header.height < from).concat(got.blocks).slice(-KEEP_BLOCKS);
  }
  if (poll.members === null || poll.polls % MEMBERS_EVERY === 0) {
    // Governance changes it rarely; a node without the route (an older release) leaves the panel out.
    poll.members = await api("/members/*").then((v) => v.members, () => poll.members);
    poll.params = await api("/params/*").then((v) => v.parameters, () => poll.params);
    poll.disputes = await memberDisputes(status, poll.members);
  }
  poll.polls += 1;
}

// Each member's record of answering the disputes of the credit reports it furnished (rules 7), for a
// supervisor: asked only of a chain on rules 7 or later, or scheduled to reach it (none before), one request
// per member.
async function memberDisputes(status, members) {
  const rules = status.rules;
  if (!members || !rules || (rules.version < 7 && !rules.scheduled.some((s) => s.version >= 7))) return null;
  const records = await Promise.all(members.map((m) => api("/disputes/" + encodeURIComponent(m.did))
    .then((view) => ({ ...view, name: m.name }), () => null)));
  return records.filter((record) => record !== null);
}

async function tick() {
  try {
    await refresh();
    poll.reachable = true;
    banner(null);
  } catch (e) {
    poll.reachable = false;
    banner(e.message);
  }
  if (live[currentView]) live[currentView]();
  setTimeout(tick, 1000);
}

// Blocks and txs committed in each of the last CHART_SECONDS seconds, by block timestamp,
// so the chart has history as soon as the page opens. Seconds older than the oldest
// kept block are left out when the keep is full (they would read as idle).
function rates() {
  if (!poll.blocks.length) return [];
  const newest = poll.blocks[poll.blocks.length - 1].header.timestamp_ms;
  const end = Math.max(Date.now(), newest);
  const full = poll.blocks.length >= KEEP_BLOCKS;
  const oldest = poll.blocks[0].header.timestamp_ms;
  const out = [];
  for (let i = CHART_SECONDS - 1; i >= 0; i--) {
    const lo = end - (i + 1) * 1000;
    if (full && lo < oldest) continue;
    const inSecond = poll.blocks.filter((b) => b.header.timestamp_ms > lo && b.header.timestamp_ms <= lo + 1000);
    out.push({ blocksPerS: inSecond.length, txPerS: inSecond.reduce((sum, b) => sum + b.header.tx_count, 0) });
  }
  return out;
}

function blockTimes() {
  const out = [];
  for (let i = 1; i < poll.blocks.length; i++) {
    const a = poll.blocks[i - 1].header;
    const b = poll.blocks[i].header;
    if (b.height === a.height + 1) out.push({ height: b.height, ms: b.timestamp_ms - a.timestamp_ms });
  }
  return out;
}

// On-chain view changes: consecutive certificates committed in different views.
function certificateViewChanges() {
  const out = [];
  for (let i = 1; i < poll.blocks.length; i++) {
    const a = poll.blocks[i - 1];
    const b = poll.blocks[i];
    if (a.certificate && b.certificate && b.certificate.view !== a.certificate.view) {
      out.push({ at: b.header.timestamp_ms, from: a.certificate.view, to: b.certificate.view,
        how: `certificate of block #${b.header.height}` });
    }
  }
  return out;
}

// ---- charts --------------------------------------------------------------------

function drawChart(canvas, series, maxHint, unit) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 44, right: 8, top: 8, bottom: 18 };
  const w = width - pad.left - pad.right;
  const hgt = height - pad.top - pad.bottom;
  const values = series.flatMap((s) => s.points);
  const max = Math.max(maxHint, ...values) * 1.15 || 1;
  ctx.strokeStyle = "#dde2e8";
  ctx.fillStyle = "#6b7684";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + hgt - (hgt * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(pad.left + w, y);
    ctx.stroke();
    const label = (max * i) / 4;
    ctx.fillText(label >= 10 ? label.toFixed(0) : label.toFixed(1), 4, y + 4);
  }
  ctx.fillText(unit, pad.left, height - 4);
  for (const s of series) {
    const n = Math.max(s.points.length - 1, 1);
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach((v, i) => {
      const x = pad.left + (w * i) / n;
      const y = pad.top + hgt - (hgt * v) / max;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function legend(items) {
  return h("div", { class: "legend" }, items.map(([color, text]) => h("span", {},
    h("i", { style: "background:" + color }), text)));
}

// ---- network view ----------------------------------------------------------------

const BEHIND_BLOCKS = 2; // a member's votes may trail this node's head by a block or so

// A member's state as this node sees it: catching up (its node asks this one for blocks, as a
// node restored from a backup does), down (no link, or heard from once and then silent),
// behind (its signed messages name a height well below ours), or up.
function memberState(row, ownHeight) {
  if (row.self) return ["this node", "info", "self"];
  if (row.catching_up) return [`catching up (${ownHeight - row.height} behind)`, "warn", "catching_up"];
  if (!row.connected || row.silent) return ["down", "bad", "down"];
  if (row.height === null) return ["not heard yet", "warn", "unheard"];
  if (row.height < ownHeight - BEHIND_BLOCKS) return ["behind", "warn", "behind"];
  return ["up", "ok", "up"];
}

function memberRows(status) {
  const lastProposed = {};
  for (const b of poll.blocks) lastProposed[b.header.proposer] = b.header.height;
  return status.member_heights.map((row) => {
    const link = row.self ? pill("this node", "info")
      : row.connected ? pill("connected", "ok") : pill("not connected", "bad");
    const [label, kind, state] = memberState(row, status.height);
    return {
      dataset: { member: row.name, connected: String(row.connected), state, height: String(row.height ?? "") },
      cells: [
        h("strong", {}, row.name),
        link,
        row.name === status.primary ? pill("primary", "info") : "",
        row.height === null ? "—" : "#" + row.height,
        row.self ? "—" : row.last_seen_s === null ? "never" : `${row.last_seen_s} s ago`,
        row.self ? "" : pill(label, kind),
        lastProposed[row.name] ? "#" + lastProposed[row.name] : "—",
      ],
    };
  });
}

// Caught up, or how far behind (not known until a peer has been heard since the node started).
function syncText(sync) {
  if (!sync.state) return "—";
  if (sync.state === "synced") return `synced at #${sync.target}`;
  if (sync.behind === null || sync.behind === undefined) return "catching up: no peer heard yet";
  return `catching up: ${sync.behind} behind (target #${sync.target})`;
}

// How many members vote at the height in flight (member.voting may change it) and how many may fail.
function votersText(members) {
  if (!members || !members.length) return "—";
  return `${members.length} · tolerates ${Math.floor((members.length - 1) / 3)} faulty`;
}

// The ledger rules in force, and a warning when this node's release cannot run scheduled ones.
function rulesText(rules) {
  if (!rules) return "—";
  const next = rules.scheduled.length ? ` · v${rules.scheduled[0].version} from #${rules.scheduled[0].height}` : "";
  const stop = rules.upgrade_needed_at === null ? "" : ` · upgrade this node before #${rules.upgrade_needed_at}`;
  return `version ${rules.version}${next}${stop}`;
}

// One chain parameter (params.py): its value in force, the default, where it came from, whether
// governance may change it (params.set, rules 6).
function paramRow(p) {
  const shown = (v) => (Array.isArray(v) ? v.join(", ") : String(v));
  const source = p.source === "governance"
    ? [`changed at `, blockLink(p.changed_height)]
    : p.source === "genesis" ? "set by the genesis" : "the default";
  return {
    dataset: { param: p.name },
    cells: [h("span", { class: "mono" }, p.name), shown(p.value), shown(p.default), source,
      p.changeable ? "params.set" : pill("fixed", "info")],
  };
}

// One member of the consortium: how it joined, whether it votes, its roles, address, removal.
function consortiumRow(m) {
  const joined = m.joined === "admitted" ? `admitted at #${m.admitted_height}` : "genesis";
  const votes = m.voting ? (m.voting_since ? `votes from #${m.voting_since}` : "votes") : "observes";
  const state = m.removed_height === undefined
    ? pill("member", "ok")
    : pill(`removed at #${m.removed_height}: ${m.removal_reason}`, "bad");
  return {
    dataset: { consortium: m.name },
    cells: [m.name, joined, votes, m.roles.join(", ") || "—", h("span", { class: "mono" }, m.address || "—"), state],
  };
}

// One member's dispute record (GET /disputes/{did}): overdue and late answers stand out.
function disputeRecordRow(r) {
  const flagged = (count, kind) => (count ? pill(String(count), kind) : "0");
  return {
    dataset: { disputesOf: r.name },
    cells: [link("#/party/" + encodeURIComponent(r.did), r.name), String(r.count), String(r.open),
      flagged(r.overdue, "bad"), String(r.answered_on_time), flagged(r.answered_late, "warn")],
  };
}

function renderNetwork() {
  const root = document.getElementById("view");
  const status = poll.status;
  if (!status) {
    root.replaceChildren(h("p", { class: "muted" }, "waiting for this node's status…"));
    return;
  }
  const sync = status.sync || {};
  const viewState = status.in_view_change ? pill("view change", "warn") : pill("normal", "ok");
  const changes = certificateViewChanges().concat(poll.viewChanges).sort((a, b) => b.at - a.at).slice(0, 8);
  const existing = document.getElementById("chart-rate");
  const charts = existing ? null : [
    h("div", { class: "row" },
      h("div", { class: "panel" }, h("h3", {}, "Throughput (last 2 minutes, by block timestamp)"),
        h("canvas", { id: "chart-rate" }), legend([["#2457c5", "blocks/s"], ["#1f8a4c", "tx/s"]])),
      h("div", { class: "panel" }, h("h3", {}, "Block time (last 60 blocks)"),
        h("canvas", { id: "chart-blocktime" }), legend([["#b7791f", "ms between block timestamps"]]))),
  ];
  const top = h("div", { id: "network-top" },
    h("h2", {}, "Network as seen by ", status.name),
    h("div", { class: "cards" },
      card("height", String(status.height), "stat-height"),
      card("view / primary", `${status.view ?? "—"} / ${status.primary ?? "—"}`, "stat-view"),
      card("consensus", viewState),
      card("peers connected", `${status.peers.length} of ${Math.max((status.consortium || status.members).length - 1, 0)}`, "stat-peers"),
      card("mempool", `${status.mempool.txs} txs · ${(status.mempool.bytes / 1024).toFixed(1)} KiB`, "stat-mempool"),
      card("sync", syncText(sync), "stat-sync"),
      card("role", status.role),
      card("voting members", votersText(status.members), "stat-voters"),
      card("rules", rulesText(status.rules), "stat-rules"),
      card("uptime", `${Math.round(status.uptime_s || 0)} s`)),
    h("div", { class: "row" },
      h("div", { class: "panel" }, h("h3", {}, "Voting members"),
        table(["member", "link from this node", "", "height", "last heard", "state", "last proposed"],
          memberRows(status)),
        h("p", { class: "muted" }, "A member's height is the highest block its signed consensus messages " +
          "to this node named, or, while it catches up, the height it asks blocks from; a member " +
          "with no link to this node, or gone quiet, is down.")),
      h("div", { class: "panel" }, h("h3", {}, "Recent view changes"),
        changes.length
          ? table(["when", "view", "seen in"], changes.map((c) => ({ cells: [time(c.at), `${c.from} → ${c.to}`, c.how] })))
          : h("p", { class: "muted" }, "none among the recent blocks"),
        h("h3", {}, "Head"),
        kv([["hash", h("span", { class: "mono" }, short(status.head_hash, 24))],
          ["state root", h("span", { class: "mono" }, short(status.state_root, 24))],
          ["stable checkpoint", String(status.stable_checkpoint ?? "—")]]))),
    poll.members && h("div", { class: "panel" }, h("h3", {}, "Consortium, as the chain records it"),
      table(["member", "joined", "vote", "roles", "node address", ""], poll.members.map(consortiumRow))),
    poll.disputes && h("div", { class: "panel", id: "dispute-records" },
      h("h3", {}, "Disputes of the credit reports each member furnished"),
      table(["member", "disputes", "open", "overdue now", "answered on time", "answered late"],
        poll.disputes.map(disputeRecordRow)),
      h("p", { class: "muted" }, "Judged at the head block's time: a dispute its member has not answered by " +
        "its deadline is overdue, and the report it names no longer counts in the score.")),
    poll.params && h("div", { class: "panel", id: "chain-params" }, h("h3", {}, "Chain parameters in force"),
      table(["parameter", "value", "default", "from", "changed by"], poll.params.map(paramRow))));
  if (existing) {
    document.getElementById("network-top").replaceWith(top);
  } else {
    root.replaceChildren(top, ...charts);
  }
  drawCharts();
}

function drawCharts() {
  const rateCanvas = document.getElementById("chart-rate");
  if (!rateCanvas) return;
  const r = rates();
  drawChart(rateCanvas, [
    { color: "#2457c5", points: r.map((x) => x.blocksPerS) },
    { color: "#1f8a4c", points: r.map((x) => x.txPerS) },
  ], 1, "per second");
  drawChart(document.getElementById("chart-blocktime"),
    [{ color: "#b7791f", points: blockTimes().slice(-60).map((x) => x.ms) }], 100, "ms");
}

// ---- chain view --------------------------------------------------------------------

function blockRow(b) {
  const cert = b.certificate || { view: "—", signers: [] };
  return {
    height: b.header.height,
    dataset: { height: String(b.header.height) },
    cells: [blockLink(b.header.height), h("span", { class: "mono" }, short(b.hash)), time(b.header.timestamp_ms),
      b.header.proposer, String(b.header.tx_count), String(cert.view), cert.signers.join(", ")],
  };
}

function renderChain() {
  const rows = poll.blocks.slice(-50).reverse().map(blockRow);
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Recent blocks"), h("p", { class: "muted" }, "The newest 50; click one for its transactions."),
    h("div", { class: "panel" }, rows.length
      ? table(["height", "hash", "time", "proposer", "txs", "view", "certificate signers"], rows,
        (row) => { window.location.hash = "#/block/" + row.height; })
      : h("p", { class: "muted" }, "no blocks yet")));
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// A value of an event: a member's DID as "name (did)" once the poll has the consortium's list.
const memberText = (value) => {
  const name = typeof value === "string" && value.startsWith("did:key:") ? nameOf(value) : null;
  return name ? `${name} (${value})` : value;
};

function eventSummary(event) {
  const parts = Object.entries(event).filter(([k]) => k !== "event" && k !== "loan_id");
  return h("span", {}, h("strong", {}, event.event || "event"), " ",
    event.loan_id ? ["loan ", loanLink(event.loan_id), " "] : "",
    parts.map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : memberText(v)}`).join(" "));
}

function resultCell(result) {
  if (!result) return "—";
  return h("div", {}, result.ok ? pill(result.code, "ok") : pill(result.code, "bad"),
    result.message ? " " + result.message : "",
    (result.events || []).map((e) => h("div", {}, eventSummary(e))));
}

async function renderBlock(ref) {
  const b = await api("/blocks/" + encodeURIComponent(ref));
  const statuses = await Promise.all(b.txs.map((id) => api("/txs/" + id)));
  const header = b.header;
  const cert = b.certificate || { view: "—", signers: [] };
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Block #", String(header.height)),
    h("div", { class: "panel" }, kv([
      ["hash", h("span", { class: "mono" }, b.hash)],
      ["previous", header.height > 1 ? link("#/block/" + (header.height - 1), short(header.prev_hash, 24), "mono") : short(header.prev_hash, 24)],
      ["time", time(header.timestamp_ms)],
      ["proposer", header.proposer],
      ["state root", h("span", { class: "mono" }, header.state_root)],
      ["certificate", `view ${cert.view}, signed by ${cert.signers.join(", ")}`],
    ])),
    // What the chain did by itself at the block's start (instalments falling overdue, defaults).
    (b.ledger_events || []).length
      ? h("div", { class: "panel", id: "block-ledger-events" },
        h("h3", {}, `chain (block ${header.height}): ${plural(b.ledger_events.length, "event")} before its transactions`),
        b.ledger_events.map((e) => h("div", {}, eventSummary(e))))
      : "",
    h("div", { class: "panel", id: "block-txs" }, h("h3", {}, `${b.txs.length} transactions`),
      table(["#", "tx", "kind", "signed by", "result"], statuses.map((s, i) => ({
        cells: [String(i), txLink(s.id), s.kind || "—", senderOf(s), resultCell(s.result)] })))));
}

async function renderTx(id) {
  const s = await api("/txs/" + id);
  const result = s.result || {};
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Transaction"),
    h("div", { class: "panel" }, kv([
      ["id", h("span", { class: "mono" }, s.id)],
      ["status", s.status],
      s.kind ? ["kind", s.kind] : null,
      s.sender ? ["signed by", senderOf(s)] : null,
      s.height ? ["block", [blockLink(s.height), " · ", time(s.timestamp_ms)]] : null,
      s.index !== undefined ? ["index in block", String(s.index)] : null,
      ["result", resultCell(s.result)],
      s.code ? ["refused", `${s.code}: ${s.message}`] : null,
    ])),
    (result.events || []).some((e) => e.loan_id === s.id)
      ? h("p", {}, "This transaction opened a loan: ", loanLink(s.id)) : "");
}

// ---- loan and party pages --------------------------------------------------------------

const BAD_EVENTS = /overdue|default|cancel|expire|refus|write_off|written_off/;

// Who signed a history entry: a member by name (and did), a party by did, or, for what
// the chain did by itself while executing someone's tx (an instalment falling overdue,
// a policy's automatic offer), the chain at that block.
function signerOf(entry) {
  if (entry.signer) {
    return ["signed by ", entry.signer.name ? [h("strong", {}, entry.signer.name), " "] : "", partyLink(entry.signer.did)];
  }
  const cause = entry.tx_sender
    ? [" during ", entry.tx_kind, " by ", entry.tx_sender.name || partyLink(entry.tx_sender.did)] : "";
  return [h("strong", {}, `chain (block ${entry.height})`), cause];
}

const TIMELINE_KEYS = ["event", "height", "tx_id", "timestamp_ms", "tx_kind", "tx_sender", "signer"];
// A collateral entry's value and previous value are amounts too (rules 6: collateral.py)
// ... and so is what a guarantee's release says was called on it (rules 7: guarantees.py)
const MONEY_KEYS = ["amount", "interest", "principal", "penalty", "holiday_interest", "new_principal", "price", "value", "previous",
  "called"];

// A history entry; a member it names by DID (a servicer, a funder) by its name (names: the loan's member_names).
function timelineItem(entry, currency, names) {
  const details = Object.entries(entry)
    .filter(([k]) => !TIMELINE_KEYS.includes(k))
    .map(([k, v]) => (MONEY_KEYS.includes(k) ? `${k} ${money(v, currency)}`
      : k.endsWith("_ms") && Number.isInteger(v) && v > 1e11 ? `${k.slice(0, -3)} ${time(v)}`  // a time, not a duration
        : `${k} ${typeof v === "string" ? (names && names[v]) || short(v, 16) : v}`));
  const signer = entry.signer ? entry.signer.did : "chain";
  return h("li", { class: BAD_EVENTS.test(entry.event) ? "bad" : null,
    dataset: { event: entry.event, signer, height: String(entry.height) } },
    h("span", { class: "event" }, entry.event), " · ", h("span", { class: "signer" }, signerOf(entry)),
    " · block ", blockLink(entry.height), " · ", time(entry.timestamp_ms),
    entry.tx_id && !/^0+$/.test(entry.tx_id) ? [" · tx ", txLink(entry.tx_id)] : "",  // all zeros: no tx made it
    details.length ? h("div", { class: "muted" }, details.join(" · ")) : "");
}

function scheduleRows(loan) {
  const paid = loan.instalments_paid || 0;
  const late = /overdue|default/.test(loan.state);
  return (loan.schedule || []).map((row) => {
    const status = row.number <= paid ? pill("paid", "ok")
      : loan.state === "written_off" ? pill("written off", "bad")  // nothing is due on chain any more
        : row.number === paid + 1 && loan.state !== "closed" ? (late ? pill("overdue", "bad") : pill("due next", "warn"))
          : pill("scheduled", "info");
    return { dataset: { instalment: String(row.number) },
      cells: [String(row.number), time(row.due_ms), money(row.payment, loan.currency),
        money(row.principal, loan.currency), money(row.interest, loan.currency),
        money(row.outstanding_after, loan.currency), status] };
  });
}

const percent = (bps) => `${Math.trunc(bps / 100)}.${String(bps % 100).padStart(2, "0")} %`;

// A restructuring still proposed (pending, lapsed and why, or expired: rules 6) and each one the
// borrower accepted (rules 5): what was capitalised into the new principal and the new schedule's
// terms; on a syndicated loan, its funders' consents (funder_consent.py: a majority of the amount
// committed). A proposal made under rules 6 has an expires_ms (restructuring_limits.py).
const PROPOSAL_LABELS = { pending: "restructuring proposed", lapsed: "restructuring lapsed", expired: "restructuring expired" };

function proposalStatus(proposal, acceptable) {
  if (proposal.status === "lapsed") return `: ${proposal.lapsed_because}`;
  if (proposal.status === "expired") return `: expired ${time(proposal.expires_ms)}; the servicer may propose again`;
  const until = proposal.expires_ms ? ` until ${time(proposal.expires_ms)}` : "";
  return `: the borrower may accept it${until} ${acceptable}`.trimEnd();
}

function restructuringRows(loan) {
  const c = loan.currency;
  const proposal = loan.restructuring;
  const counted = proposal && proposal.consent;  // pending on a syndicated loan (an older node: none)
  const acceptable = counted && !counted.majority ? "once its funders' consents are a majority" : "";
  const rows = proposal ? [[
    PROPOSAL_LABELS[proposal.status] || "restructuring proposed",
    h("span", { id: "loan-restructuring", dataset: { status: proposal.status } },
      `${proposal.rate_bps} bps over ${proposal.term_months} months (${proposal.holiday_months} of holiday), `
      + `at block ${proposal.height}` + proposalStatus(proposal, acceptable))]] : [];
  if (counted) {
    rows.push(["funders' consent", h("span", { id: "loan-restructuring-consent" },
      `${money(counted.consented, c)} of ${money(counted.committed, c)} committed (${percent(counted.consented_bps)}); `
      + `a majority needs more than half, at least ${money(counted.needed, c)}: `
      + (counted.majority ? "reached" : `missing ${money(counted.missing, c)} (${percent(counted.missing_bps)})`))]);
    proposal.consents.forEach((given, n) => rows.push(["consented", h("span", { dataset: { consent: String(n) } },
      namedIn(loan.member_names, given.funder), ` ${money(given.amount, c)} at block ${given.height}${given.by_proposal ? ", by proposing" : ""}`)]));
  }
  (loan.restructurings || []).forEach((r, n) => rows.push(["restructured", h("span", { dataset: { restructuring: String(n) } },
    `at block ${r.height}, ${time(r.time_ms)}, from ${r.state}: principal ${money(r.principal, c)} + interest `
    + `${money(r.interest, c)} + penalty ${money(r.penalty, c)} + holiday interest `
    + `${money(r.holiday_interest.reduce((a, b) => a + b, 0), c)} = ${money(r.new_principal, c)}; `
    + `${r.instalments} instalments at ${r.new.rate_bps} bps (was ${r.old.rate_bps}), the first due ${time(r.first_due_ms)}`
    + (r.consents ? `; consented by ${plural(r.consents.length, "funder")} holding `
      + `${money(r.consents.reduce((a, given) => a + given.amount, 0), c)}` : ""))]));
  return rows;
}

// A restructured loan's status as a forborne exposure (rules 5), judged at the node's head block:
// non-performing (under cure), performing (on probation) or ended, since when, what ends it and why.
const FORBEARANCE_PILLS = { non_performing: "bad", performing: "warn", ended: "ok" };

function forbearanceRow(loan) {
  const f = loan.forbearance;
  if (!f) return null;
  const times = [
    f.since_ms ? `since ${time(f.since_ms)}` : null,
    `${f.restructurings} ${f.restructurings === 1 ? "restructuring" : "restructurings"}`,
    f.cure_ends_ms ? `cured no earlier than ${time(f.cure_ends_ms)}` : null,
    f.probation_ends_ms ? `forborne until ${time(f.probation_ends_ms)} at the earliest` : null,
  ].filter(Boolean).join(" · ");
  return ["forbearance", h("span", { id: "loan-forbearance", dataset: { status: f.status } },
    pill(f.status.replace("_", "-"), FORBEARANCE_PILLS[f.status]), " ", times,
    h("div", { class: "muted" }, f.why))];
}

// A drawn loan's days past due and IFRS 9 stage at the node's head block, with every rule that holds
// and its source (staging.py), a commitment's from its borrower's loans; a loan without a stage says why. An older node sends none of it.
const STAGE_NAMES = { 1: "performing", 2: "credit risk increased significantly", 3: "credit-impaired" };
const STAGE_PILLS = { 1: "ok", 2: "warn", 3: "bad" };

function stageRows(loan) {
  if (!loan.stage_reasons) return [];
  if (loan.stage === null) {
    return [["IFRS 9 stage", h("span", { id: "loan-stage", dataset: { stage: "none" } },
      `none: ${loan.stage_reasons[0].why}`)]];
  }
  // A commitment (nothing due yet) is staged by its borrower's other loans: it has no days past due.
  const late = loan.days_past_due === null
    ? "none: an undisbursed commitment, nothing is due yet" : plural(loan.days_past_due, "day");
  return [
    ["days past due", h("span", { id: "loan-days-past-due" },
      `${late} as of ${time(loan.stage_as_of_ms)}`)],
    ["IFRS 9 stage", h("span", { id: "loan-stage", dataset: { stage: String(loan.stage) } },
      pill(`stage ${loan.stage}`, STAGE_PILLS[loan.stage]), " ", STAGE_NAMES[loan.stage],
      loan.stage_reasons.map((r) => h("div", { class: "muted", dataset: { reason: r.rule } },
        `${r.rule} (stage ${r.stage}): ${r.why} — ${r.source}`)))],
  ];
}

// A syndicated loan's funders (funding.py): each holder's share and what it received; from rules 6 the
// offers of a share still recorded (pending, or lapsed and why) and each share sold (assignment.py), and
// from rules 7 each offer its buyer declined, with the buyer's note (share_decline.py).
const priceText = (record, c) => (record.price === undefined ? "—" : money(record.price, c));

function fundersPanel(loan) {
  const f = loan.funding;
  if (!f) return "";
  const c = loan.currency;
  const who = (did) => namedIn(loan.member_names, did);  // a member funder by name; an investor by DID
  const holders = f.commitments.map((x) => ({ dataset: { funder: x.funder },
    cells: [who(x.funder), money(x.amount, c), money(x.received, c),
      pill(x.status, x.status === "committed" ? "ok" : "info")] }));
  const offers = (f.share_offers || []).map((o) => ({ dataset: { shareOffer: o.from, status: o.status },
    cells: [who(o.from), who(o.to), money(o.amount, c), priceText(o, c), blockLink(o.height),
      o.status === "lapsed" ? `lapsed: ${o.lapsed_because}` : pill("pending", "warn")] }));
  const sales = (f.assignments || []).map((a, n) => ({ dataset: { assignment: String(n) },
    cells: [who(a.from), who(a.to), money(a.amount, c), priceText(a, c), blockLink(a.height)] }));
  const declines = (f.share_declines || []).map((d, n) => ({ dataset: { declined: String(n) },
    cells: [who(d.from), who(d.to), money(d.amount, c), priceText(d, c), blockLink(d.offered_height),
      blockLink(d.height), d.note || "—"] }));
  return h("div", { class: "panel", id: "funders" }, h("h3", {}, "Funders"),
    h("p", { class: "muted" }, `funded ${money(f.funded, c)} of ${money(f.target, c)}`),
    table(["funder", "share", "received", "status"], holders),
    offers.length ? [h("h3", {}, "Shares offered"),
      table(["from", "to", "share", "price", "offered at", "status"], offers)] : "",
    sales.length ? [h("h3", {}, "Shares sold"), table(["from", "to", "share", "price", "block"], sales)] : "",
    declines.length ? [h("h3", {}, "Offers declined"),
      table(["from", "to", "share", "price", "offered at", "declined at", "buyer's note"], declines)] : "");
}

// A position's IFRS 9 stage (staging.py): a share sold whole carries none of the loan's risk, so it shows
// as sold, apart from the stages (rules 6); a loan without a stage (or an older node) shows none.
function positionStage(p) {
  if (p.status === "assigned") return pill("sold", "info");
  if (p.stage === null || p.stage === undefined) return "—";
  return pill(`stage ${p.stage}`, STAGE_PILLS[p.stage]);
}

// A funder's positions in syndicated loans (positions.py), an investor's or a lender member's own: what it
// holds of each loan, what it received, its share of the principal and its stage, and from rules 6 what it
// bought and sold and the shares offered to it; from rules 7 its offers the buyers declined and its part of
// what the loan's guarantees cover.
function positionsPanel(view) {
  if (!view) return "";
  const rows = view.positions.map((p) => ({ dataset: { position: p.loan_id },
    cells: [loanLink(p.loan_id), p.state, money(p.commitment, p.currency),
      pill(p.status, p.status === "committed" ? "ok" : "info"), money(p.received, p.currency),
      p.share_of ? `${money(p.share, p.currency)} ${p.share_of.replace("_", " ")}` : "—",
      positionStage(p), p.guaranteed ? money(p.guaranteed, p.currency) : "—",
      money(p.bought ?? 0, p.currency), money(p.sold ?? 0, p.currency)] }));
  const offered = (view.share_offers_to || []).map((o) => ({ dataset: { offeredFrom: o.from },
    cells: [loanLink(o.loan_id), namedIn(view.member_names, o.from), money(o.amount, o.currency), priceText(o, o.currency),
      blockLink(o.height)] }));
  const declined = view.positions.flatMap((p) => (p.offers_declined || []).map((d) => ({
    dataset: { declinedBy: d.to, loan: p.loan_id },
    cells: [loanLink(p.loan_id), namedIn(view.member_names, d.to), money(d.amount, p.currency), priceText(d, p.currency),
      blockLink(d.offered_height), blockLink(d.height), d.note || "—"] })));
  return h("div", { class: "panel", id: "positions" }, h("h3", {}, "Positions in syndicated loans"),
    rows.length ? table(["loan", "state", "holds", "status", "received", "share of principal", "stage",
      "guaranteed", "bought", "sold"], rows) : h("p", { class: "muted" }, "no share held"),
    offered.length ? [h("h3", {}, "Shares offered to it"), table(["loan", "from", "share", "price", "offered at"],
      offered)] : "",
    declined.length ? [h("h3", {}, "Its offers declined"), table(["loan", "declined by", "share", "price",
      "offered at", "declined at", "buyer's note"], declined)] : "");
}

// The collateral securing a loan (collateral.py, rules 6): each pledged asset with its lien and the liens
// ahead of it on the asset, the value pledged and the loan-to-value (basis points, rounded up).
const assetLink = (asset) => link("#/collateral/" + asset, short(asset, 16), "mono");

function collateralPanel(loan) {
  const pledges = loan.collateral || [];  // an older node: none
  if (!pledges.length) return "";
  const c = loan.currency;
  const rows = pledges.map((p) => ({ dataset: { asset: p.asset },
    cells: [assetLink(p.asset), p.kind, String(p.rank), money(p.value, c),
      [blockLink(p.height), p.revalued_height ? [" · revalued ", blockLink(p.revalued_height)] : ""],
      p.ahead.length ? p.ahead.map((a) => h("div", {}, `rank ${a.rank}: `, loanLink(a.loan_id),
        ` ${a.lender_name || short(a.lender, 24)} · ${money(a.value, c)} · ${a.state}`)) : "none"] }));
  const ltv = loan.ltv_bps === null ? "—" : percent(loan.ltv_bps);
  // A junior lien's ratio with the liens ahead of it (collateral_views); an older node sends none.
  const combined = pledges.some((p) => p.ahead.length) && loan.combined_ltv_bps != null
    ? ` · combined with the liens ahead ${percent(loan.combined_ltv_bps)}` : "";
  return h("div", { class: "panel", id: "loan-collateral" }, h("h3", {}, "Collateral"),
    h("p", { id: "loan-collateral-summary" },
      `${money(loan.collateral_value, c)} pledged in ${plural(pledges.length, "asset")} · loan-to-value ${ltv}${combined}`),
    table(["asset", "kind", "rank", "value", "pledged at", "liens ahead"], rows));
}

// The guarantees of a loan (guarantees.py, rules 7): each with its guarantor, status at the head block's
// time, cap, what was called and what the guarantor may still be called for; an older node sends none.
function guaranteesPanel(loan) {
  const rows = (loan.guarantees || []).map((g) => ({ dataset: { guarantee: g.guarantee_id },
    cells: [namedIn(loan.member_names, g.guarantor), g.kind, g.status, money(g.amount, g.currency), money(g.called, g.currency),
      money(g.contingent, g.currency), g.expires_ms ? time(g.expires_ms) : "—"] }));
  if (!rows.length) return "";
  return h("div", { class: "panel", id: "loan-guarantees" }, h("h3", {}, "Guarantees"),
    h("p", { id: "loan-guaranteed" }, `${money(loan.guaranteed, loan.currency)} of the principal at risk guaranteed`),
    table(["guarantor", "kind", "status", "cap", "called", "contingent", "expires"], rows));
}

// What a DID stands behind as a guarantor, at every lender (guarantee_views, rules 7); an older node: nothing.
// A member's are bank guarantees, titled so. Per currency its totals, and from rules 8 what it was ever
// called for on any guarantee, live or ended (called_total, on called_guarantees guarantees): a release
// ends the claim, not the record that the guarantor was called (an older node: "—").
function guarantorPanel(exposure, title) {
  const mine = exposure && exposure.guarantees;
  if (!mine || !mine.guarantees.length) return "";
  const ever = (t, key, text) => (t[key] === undefined ? "—" : text(t[key]));
  const currencies = Object.entries(mine.currencies || {}).map(([c, t]) => ({ dataset: { guarantorCurrency: c },
    cells: [c, money(t.contingent, c), money(t.called, c), ever(t, "called_total", (v) => money(v, c)),
      ever(t, "called_guarantees", String), String(t.active), String(t.proposed)] }));
  const lenders = mine.by_lender.map((row) => ({ dataset: { lender: row.did },
    cells: [row.name || partyLink(row.did), row.currency, money(row.contingent, row.currency),
      money(row.called, row.currency), String(row.active), String(row.proposed)] }));
  const rows = mine.guarantees.map((g) => ({ dataset: { guarantee: g.guarantee_id },
    cells: [loanLink(g.loan_id), g.loan_state, g.status, money(g.amount, g.currency), money(g.called, g.currency),
      money(g.contingent, g.currency)] }));
  return h("div", { class: "panel", id: "guarantor" }, h("h3", {}, title),
    currencies.length ? table(["currency", "contingent", "called (live guarantees)", "called ever",
      "guarantees called", "active", "proposed"], currencies) : "",
    lenders.length ? table(["lender", "currency", "contingent", "called", "active", "proposed"], lenders) : "",
    table(["loan", "loan state", "status", "cap", "called", "contingent"], rows));
}

async function renderAsset(asset) {
  const view = await api("/collateral/" + asset);
  const rows = view.liens.map((l) => ({ dataset: { rank: String(l.rank) },
    cells: [String(l.rank), loanLink(l.loan_id), l.lender_name || partyLink(l.lender), partyLink(l.borrower),
      l.state, money(l.value, l.currency), money(l.principal, l.currency), blockLink(l.height)] }));
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Asset ", h("span", { class: "mono" }, short(view.asset, 16)), " ", pill(view.kind, "info")),
    h("div", { class: "panel", id: "asset-liens" }, h("h3", {}, "Liens by rank"),
      table(["rank", "loan", "servicer", "borrower", "state", "value", "principal at risk", "since"], rows)));
}

// A score factor's source names a report by its furnisher's DID: written "name (did)" with the names the
// party's view gives its KYC attester, credit reporter and disputed reports' furnishers (an older node: none).
function namedSource(source, party) {
  const named = [[party.kyc, "attester"], [party.credit_report, "reporter"],
    ...((party.disputes && party.disputes.shown) || []).map((d) => [d, "furnisher"])];
  const names = new Map(named.filter(([record, field]) => record && record[field + "_name"])
    .map(([record, field]) => [record[field], record[field + "_name"]]));  // each member once
  return [...names].reduce((text, [did, name]) => text.split(did).join(`${name} (${did})`), source);
}

function scorePanel(party) {
  const score = party && party.credit_score;
  if (!score) return "";
  return h("div", { class: "panel" }, h("h3", {}, `Credit score ${score.score}`),
    table(["factor", "value", "points", "source"], score.factors.map((f) => ({
      cells: [f.factor, f.value === null ? "—" : String(f.value), String(f.points), namedSource(f.source, party)] }))));
}

const DISPUTE_PILLS = { open: "warn", overdue: "bad", answered: "ok" };

// A party's disputes of its credit reports, or a member's of the reports it furnished (rules 7).
function disputesPanel(view, kind) {
  if (!view || !view.count) return "";
  const party = kind === "party";
  const rows = view.shown.map((d) => ({ dataset: { height: String(d.report_height), status: d.status },
    cells: [party ? memberOf(d.furnisher_name, d.furnisher) : partyLink(d.subject), blockLink(d.report_height), time(d.opened_ms),
      time(d.deadline_ms),
      pill(d.answer ? d.answer.outcome + (d.answer.on_time ? "" : " (late)") : d.status, DISPUTE_PILLS[d.status]),
      d.report_current ? "yes" : "replaced"] }));
  return h("div", { class: "panel", id: "disputes" },
    h("h3", {}, party ? "Disputes of its credit reports" : "Disputes of the credit reports it furnished"),
    h("p", { class: "muted", id: "disputes-summary" }, `${plural(view.count, "dispute")}: ${view.open} open, ` +
      `${view.overdue} overdue, ${view.answered_on_time} answered on time, ${view.answered_late} late`),
    table([party ? "furnished by" : "subject", "report", "disputed", "answer due", "status", "latest report"], rows));
}

async function renderLoan(id) {
  const loan = await api("/loans/" + id);
  const borrower = await api("/parties/" + encodeURIComponent(loan.borrower)).catch(() => null);
  const c = loan.currency;
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Loan ", h("span", { class: "mono" }, short(loan.loan_id, 16)), " ",
      pill(loan.state, /overdue|default|written_off/.test(loan.state) ? "bad" : "info")),
    h("div", { class: "cards" },
      card("amount", money(loan.amount, c)),
      card("term / rate", `${loan.term_months} months / ${loan.rate_bps ?? "—"} bps`),
      card("principal paid", money(loan.principal_paid, c)),
      card("interest paid", money(loan.interest_paid, c)),
      card("outstanding principal", money(loan.outstanding_principal, c)),
      card("owed in total", money(loan.amount_owed, c)),
      loan.net_loss ? card("net loss", money(loan.net_loss.total, c), "loan-net-loss-card") : ""),
    h("div", { class: "row" },
      h("div", { class: "panel" }, h("h3", {}, "Timeline"),
        h("ol", { class: "timeline", id: "loan-timeline" }, loan.history.map((e) => timelineItem(e, c, loan.member_names)))),
      h("div", { class: "panel" }, h("h3", {}, "Parties"), kv([
        ["loan id", h("span", { class: "mono" }, loan.loan_id)],
        ["borrower", partyLink(loan.borrower)],
        ["lender", memberOf(loan.lender_name, loan.lender)],
        loan.transfer && [
            loan.transfer.status === "pending" ? "transfer offered to" : "transfer lapsed (was offered to)",
            memberOf(loan.transfer.to_name, loan.transfer.to),
        ],
        ["purpose", loan.purpose || "—"],
        ["applied", time(loan.applied_ms)],
        ["disbursed", time(loan.disbursed_ms)],
        ["penalty due", h("span", { id: "loan-penalty-due" }, money(loan.penalty_due ?? loan.penalty_owed, c)
          + (loan.penalty_capitalised ? ` (${money(loan.penalty_capitalised, c)} capitalised by restructuring)` : ""))],
        loan.written_off && ["written off", h("span", { id: "loan-written-off" },
          `at block ${loan.written_off.height}, ${time(loan.written_off.time_ms)}: principal `
          + `${money(loan.written_off.principal, c)}, interest ${money(loan.written_off.interest, c)}, `
          + `penalty ${money(loan.written_off.penalty, c)}`)],
        loan.written_off && ["write-off reason", loan.written_off.reason],
        loan.recovered && ["recovered since", h("span", { id: "loan-recovered" },
          `${money(loan.recovered.total, c)} in ${loan.recovered.recoveries} `
          + `${loan.recovered.recoveries === 1 ? "recovery" : "recoveries"}, the last at block `
          + `${loan.recovered.height}, ${time(loan.recovered.time_ms)}: principal ${money(loan.recovered.principal, c)}, `
          + `interest ${money(loan.recovered.interest, c)}, penalty ${money(loan.recovered.penalty, c)}`)],
        // rules 6: who handed the recovery on (and what was recovered by then), and its end
        ...(loan.recovery_handovers || []).map((r) => ["recovery handed on", h("span", { class: "recovery-handover" },
          namedIn(loan.member_names, r.lender), ` at block ${r.height}, with ${money(r.recovered, c)} recovered by then`)]),
        loan.recovery_ended && ["recovery ended", h("span", { id: "loan-recovery-ended" },
          `at block ${loan.recovery_ended.height}, ${time(loan.recovery_ended.time_ms)}: ${loan.recovery_ended.reason}`)],
        loan.net_loss && ["net loss", h("span", { id: "loan-net-loss" },
          `${money(loan.net_loss.total, c)}: principal ${money(loan.net_loss.principal, c)}, `
          + `interest ${money(loan.net_loss.interest, c)}, penalty ${money(loan.net_loss.penalty, c)}`)],
        ...restructuringRows(loan),
        ...stageRows(loan),
        forbearanceRow(loan),
      ]))),
    fundersPanel(loan),
    collateralPanel(loan),
    guaranteesPanel(loan),
    h("div", { class: "panel" }, h("h3", {}, "Schedule"), loan.schedule
      ? table(["#", "due", "payment", "principal", "interest", "outstanding after", "status"], scheduleRows(loan))
      : h("p", { class: "muted" }, "no schedule until an offer is accepted")),
    scorePanel(borrower));
}

// What a borrower's exposure or a lender's book wrote off, per currency, and what was recovered
// since (an older node sends none of it, or no recoveries); a book's part of the recoveries that
// changed servicer (taken over, handed on: exposure.py), when any did.
function writtenOffTable(writtenOff) {
  // A lender's book whose recoveries changed servicer (rules 6): what it took over and handed on.
  const moved = Object.values(writtenOff || {}).some((t) => t.taken_over || t.handed_on);
  const since = (t, key, c) => (t[key] === undefined ? "—" : money(t[key], c));
  const rows = Object.entries(writtenOff || {}).map(([c, t]) => ({ dataset: { writtenOff: c },
    cells: [c, money(t.principal, c), money(t.interest, c), money(t.penalty, c), String(t.loans),
      since(t, "recovered", c), since(t, "net_principal", c), since(t, "net", c),
      ...(moved ? [since(t, "taken_over", c), since(t, "handed_on", c), String(t.recovering_loans ?? "—")] : [])] }));
  return rows.length ? table(["currency", "written off principal", "interest", "penalty", "loans",
    "recovered since", "net principal", "net loss", ...(moved ? ["taken over", "handed on", "recovering"] : [])],
  rows) : "";
}

// The restructured loans still forborne in a borrower's exposure or a lender's book, per currency:
// performing (on probation) and non-performing (under cure), among the live loans (rules 5).
function forborneTable(forborne) {
  const rows = Object.entries(forborne || {}).map(([c, t]) => ({ dataset: { forborne: c },
    cells: [c, String(t.loans), money(t.outstanding, c), String(t.performing_loans),
      money(t.performing_outstanding, c), String(t.non_performing_loans), money(t.non_performing_outstanding, c)] }));
  return rows.length ? table(["currency", "forborne loans", "outstanding", "performing", "principal",
    "non-performing", "principal"], rows) : "";
}

// The drawn loans of a borrower's exposure or a lender's book per currency by IFRS 9 stage, and their
// arrears ageing by days past due (loans · principal), as of the node's head block (an older node: none).
const AGEING_BUCKETS = { dpd_0: "0 days past due", dpd_1_30: "1-30 days", dpd_31_60: "31-60 days",
  dpd_61_90: "61-90 days", dpd_over_90: ">90 days" };

function stagesTable(stages) {
  const rows = Object.entries(stages || {}).map(([c, t]) => ({ dataset: { stages: c },
    cells: [c, ...[1, 2, 3].flatMap((n) => [String(t[`stage_${n}_loans`]), money(t[`stage_${n}_outstanding`], c)])] }));
  return rows.length ? table(["currency", "stage 1", "principal", "stage 2", "principal", "stage 3 (impaired)",
    "principal"], rows) : "";
}

function ageingTable(ageing) {
  const rows = Object.entries(ageing || {}).map(([c, t]) => ({ dataset: { ageing: c },
    cells: [c, ...Object.keys(AGEING_BUCKETS).map((b) => `${t[b + "_loans"]} · ${money(t[b + "_outstanding"], c)}`)] }));
  return rows.length ? table(["currency", ...Object.values(AGEING_BUCKETS)], rows) : "";
}

// How much of the outstanding principal the collateral pledged on it covers, per currency (rules 6),
// once anything is secured (an older node: none).
function coverageTable(coverage) {
  if (!Object.values(coverage || {}).some((t) => t.secured_loans)) return "";
  const rows = Object.entries(coverage).map(([c, t]) => ({ dataset: { collateral: c },
    cells: [c, money(t.secured, c), money(t.unsecured, c), money(t.collateral_value, c), String(t.secured_loans)] }));
  return table(["currency", "secured", "unsecured", "collateral value", "secured loans"], rows);
}

// What a borrower's repayment history shows of the recoveries on its written-off loans, per currency.
const recoveredText = (recovered) => Object.entries(recovered || {})
  .map(([c, amount]) => `, ${money(amount, c)} recovered after write-offs`).join("");

function exposurePanel(exposure) {
  if (!exposure || !Object.keys(exposure.currencies).length && !Object.keys(exposure.written_off || {}).length) {
    return "";
  }
  // rules 7: the part of it guarantees cover, per currency and per loan (an older node: no column)
  const guaranteed = exposure.guaranteed;
  const covered = (t, c) => (guaranteed ? [money(t ? t.guaranteed : 0, c)] : []);
  const totals = Object.entries(exposure.currencies).map(([c, t]) => ({ dataset: { currency: c },
    cells: [c, money(t.outstanding, c), money(t.committed, c), String(t.loans), String(t.overdue_loans),
      String(t.defaulted_loans), money(t.penalty_due, c), ...covered(guaranteed && guaranteed[c], c)] }));
  const carriers = exposure.carriers.map((row) => ({ dataset: { carrier: row.did },
    cells: [memberOf(row.name, row.did), money(row.outstanding, row.currency),
      money(row.committed, row.currency), String(row.loans)] }));
  const loans = (exposure.loans || []).map((l) => ({ dataset: { exposureLoan: l.loan_id },
    cells: [loanLink(l.loan_id), l.state, money(l.outstanding, l.currency), money(l.penalty_due, l.currency),
      positionStage(l), l.days_past_due ?? "—", ...(guaranteed ? [money(l.guaranteed ?? 0, l.currency)] : [])] }));
  return h("div", { class: "panel", id: "exposure" }, h("h3", {}, "Exposure across lenders"),
    totals.length
      ? table(["currency", "outstanding", "committed", "loans", "overdue", "defaulted", "penalty due",
        ...(guaranteed ? ["guaranteed"] : [])], totals)
      : h("p", { class: "muted" }, "no live loans"),
    carriers.length ? table(["carried by", "outstanding", "committed", "loans"], carriers) : "",
    loans.length ? table(["loan", "state", "outstanding", "penalty due", "stage", "days past due",
      ...(guaranteed ? ["guaranteed"] : [])], loans) : "",
    coverageTable(exposure.collateral),
    forborneTable(exposure.forborne),
    stagesTable(exposure.stages),
    ageingTable(exposure.ageing),
    writtenOffTable(exposure.written_off));
}

function portfolioPanel(book) {
  if (!book) return "";
  const rows = Object.entries(book.currencies).map(([c, t]) => ({ dataset: { currency: c },
    cells: [c, money(t.outstanding, c), money(t.funded_by_others, c), money(t.committed, c), String(t.loans),
      String(t.overdue_loans), String(t.defaulted_loans), money(t.penalty_due, c)] }));
  const largest = Object.entries(book.largest_borrowers).flatMap(([c, list]) => list.map((row) => ({
    cells: [partyLink(row.did), money(row.principal, c)] })));
  // loan.transfer offers from or to this lender not accepted yet (rules 4; an older node: none)
  const transfers = (book.pending_transfers || []).map((t) => ({ dataset: { transfer: t.loan_id },
    cells: [loanLink(t.loan_id), memberOf(t.lender_name, t.lender), memberOf(t.to_name, t.to), blockLink(t.offered_height)] }));
  return h("div", { class: "panel", id: "portfolio" }, h("h3", {}, "Loans it services"),
    rows.length ? table(["currency", "outstanding", "funded by others", "committed", "loans", "overdue",
      "defaulted", "penalty due"], rows) : h("p", { class: "muted" }, "no live loans"),
    largest.length ? table(["largest borrowers", "principal"], largest) : "",
    transfers.length ? [h("h3", {}, "Servicing transfers pending"),
      table(["loan", "from", "to", "offered at"], transfers)] : "",
    coverageTable(book.collateral),
    forborneTable(book.forborne),
    stagesTable(book.stages),
    ageingTable(book.ageing),
    writtenOffTable(book.written_off));
}

// A registered party's record (queries.get_party): its KYC attestation, the consents it gave (each in force
// or expired at the head block's time), its latest credit report, how many loans it applied for and its
// repayments. An older node sends no consents and no count: none shown; nor the attesting and reporting
// members' names: their DIDs alone shown.
function registeredRows(party) {
  const kyc = party.kyc;
  const report = party.credit_report;
  const history = party.repayment_history;
  return [
    party.attestation && ["attestation", h("span", { class: "mono" }, party.attestation)],
    ["KYC", kyc ? h("span", { id: "party-kyc" }, `level ${kyc.level}, attested by `, memberOf(kyc.attester_name, kyc.attester),
      " at ", blockLink(kyc.height), `, expires ${time(kyc.expires_ms)}, evidence `,
      h("span", { class: "mono", title: kyc.evidence_hash }, short(kyc.evidence_hash, 16))) : "none"],
    party.consents && ["consents", party.consents.length ? party.consents.map((c) => h("div",
      { dataset: { consent: c.member } }, `${c.name || short(c.member, 24)}: ${c.scopes.join(", ")} until `
      + `${time(c.until_ms)}, given at `, blockLink(c.height), " ", c.in_force ? pill("in force", "ok")
      : pill("expired", "warn"))) : "none"],
    ["credit report", report ? h("span", { id: "party-credit-report" }, `income band ${report.income_band}, `
      + `debt-to-income ${percent(report.dti_bps)}, ${report.history_months} months of credit history, `
      + `${report.obligations} obligations; reported by `, memberOf(report.reporter_name, report.reporter), " at ",
    blockLink(report.height)) : "none"],
    party.borrower_loans !== undefined && ["loans applied for", String(party.borrower_loans)],
    history && ["repayments", `${history.on_time} on time, ${history.late} late, ${history.defaults} defaults (${history.written_off ?? 0} written off${recoveredText(history.recovered)}), ${history.closed} closed, ${history.restructurings ?? 0} restructured`],
  ];
}

// A member's record: its roles, its vote (the genesis's or admission's, then each change), its address,
// admission and removal.
function memberRecordRows(party) {
  const changes = (party.voting_changes || []).map((c) =>
    `; ${c.voting ? "votes" : "stops voting"} from block ${c.effective_height}`).join("");
  return [
    ["name", party.name],
    ["roles", (party.roles || []).join(", ") || "none"],
    ["voting", h("span", { id: "party-voting" }, (party.voting ? "votes" : "observer") + changes)],
    ["public key", h("span", { class: "mono" }, party.public_key)],
    party.address && ["address", h("span", { class: "mono" }, party.address)],
    party.admitted_height && ["admitted", blockLink(party.admitted_height)],
    party.removed_height && ["removed", h("span", { id: "party-removed" }, blockLink(party.removed_height),
      `: ${party.removal_reason}`)],
  ];
}

// A key a member rotated to: the member it signs for, and the heights it signs in.
function memberKeyRows(party) {
  return [
    ["signs for", [party.member, " ", partyLink(party.member_did)]],
    ["from block", blockLink(party.signs_from_height)],
    ["replaced at", party.signs_until_height == null ? "— (signs now)" : blockLink(party.signs_until_height)],
  ];
}

// The loans a borrower is repaying and their next unpaid instalments (queries.get_reminders), with each
// loan's stage and days past due as of the head block. Amounts are in the loan's currency.
function remindersPanel(party) {
  const rows = (party.reminders || []).map((r) => ({ dataset: { reminder: r.loan_id },
    cells: [loanLink(r.loan_id), r.state, positionStage(r), r.days_past_due ?? "—", money(r.penalty_due),
      r.instalments.map((i) => h("div", {}, `#${i.number} due ${time(i.due_ms)}: ${money(i.amount)}`))] }));
  if (!rows.length) return "";
  return h("div", { class: "panel", id: "reminders" }, h("h3", {}, "Loans being repaid"),
    table(["loan", "state", "stage", "days past due", "penalty due", "next instalments"], rows));
}

async function renderParty(did) {
  const party = await api("/parties/" + encodeURIComponent(did));
  // A party's exposure carries what it guarantees too (rules 7). A member has an exposure view only once a
  // guarantee was proposed to it (a bank guarantee): its page counts them, so none is asked for in vain.
  const exposure = party.kind === "party" || party.guarantees_proposed_to
    ? await api("/exposure/" + encodeURIComponent(did)).catch(() => null) : null;
  const book = party.kind === "member"
    ? await api("/portfolio/" + encodeURIComponent(did)).catch(() => null) : null;
  // An investor's positions, and a member's own (a lender funds syndicated loans too): none until it funds or
  // is offered a share, which its page counts (funder_loans; an older node does not: then ask and see)
  const funds = party.funder_loans === undefined ? party.role === "investor" || party.kind === "member"
    : party.funder_loans > 0;
  const positions = funds ? await api("/positions/" + encodeURIComponent(did)).catch(() => null) : null;
  const disputes = party.kind === "member"  // a party's come with it
    ? await api("/disputes/" + encodeURIComponent(did)).catch(() => null) : party.disputes;
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Party"),
    h("div", { class: "panel", id: "party-record" }, kv([
      ["did", h("span", { class: "mono" }, party.did)],
      ["kind", party.kind], party.role && ["role", party.role],
      party.registered_height ? ["registered", blockLink(party.registered_height)] : null,
      ["next nonce", String(party.nonce)],
      ...(party.kind === "member" ? memberRecordRows(party) : party.kind === "member_key" ? memberKeyRows(party)
        : registeredRows(party)),
    ])),
    remindersPanel(party),
    exposurePanel(exposure),
    guarantorPanel(exposure, party.kind === "member" ? "Bank guarantees it gives" : "Contingent exposure as guarantor"),
    portfolioPanel(book),
    positionsPanel(positions),
    scorePanel(party),
    disputesPanel(disputes, party.kind));
}

// ---- search and routing --------------------------------------------------------------

async function search(query) {
  const q = query.trim();
  if (/^\d+$/.test(q)) return "#/block/" + q;
  if (q.startsWith("did:")) return "#/party/" + encodeURIComponent(q);
  if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const id = q.toLowerCase();
    // A loan's id is the id of its loan.apply tx, so a tx lookup answers both.
    const tx = await api("/txs/" + id).catch((e) => (e.status === 404 ? null : Promise.reject(e)));
    if (tx) return (tx.result && (tx.result.events || []).some((e) => e.loan_id === id)) ? "#/loan/" + id : "#/tx/" + id;
    // An asset's collateral id (rules 6) names no tx: it is an asset while a lien is recorded on it.
    const asset = await api("/collateral/" + id).catch((e) => (e.status === 404 ? null : Promise.reject(e)));
    return asset ? "#/collateral/" + id : "#/block/" + id;
  }
  throw new ApiError(400, `"${q}" is not a height, a 64-digit hex id or a did`);
}

const live = { network: renderNetwork, chain: renderChain };
let currentView = "network";

async function route() {
  const [, view = "network", ...rest] = window.location.hash.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  currentView = view;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === view);
  const pages = { block: renderBlock, tx: renderTx, loan: renderLoan, party: renderParty, collateral: renderAsset };
  const root = document.getElementById("view");
  if (live[view]) return live[view]();
  if (!pages[view]) return void (window.location.hash = "#/network");
  root.replaceChildren(h("p", { class: "muted" }, "loading…"));
  try {
    await pages[view](arg);
  } catch (e) {
    root.replaceChildren(h("h2", {}, "Not found"), h("p", { id: "not-found" }, e.message));
  }
}

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("search-input");
  try {
    window.location.hash = await search(input.value);
  } catch (e) {
    document.getElementById("view").replaceChildren(h("h2", {}, "Search"), h("p", { id: "not-found" }, e.message));
  }
});
window.addEventListener("hashchange", route);
window.addEventListener("resize", drawCharts);
route();
tick();
