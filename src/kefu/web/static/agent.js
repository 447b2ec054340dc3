/* kefu agent console — plain JavaScript, no framework, no build step, no network beyond the kefu API.
 *
 * Talks to:  POST /v1/agent/login                               → {token, agent}
 *            GET  /v1/agent/queue                               → {handoffs, tickets}
 *            GET  /v1/agent/events?token=…                      → text/event-stream (queue, customer_message)
 *            GET  /v1/agent/conversations/{cid}                 → {handoff, summary, messages}
 *            POST /v1/agent/conversations/{cid}/messages {text} → {message}
 *            GET  /v1/conversations/{cid}/ratings               → the customer's ratings (👍/👎, stars, CSAT)
 *            POST /v1/agent/handoffs/{hid}/take | release | close
 * Every call but login carries "Authorization: Bearer <token>"; the token lives in sessionStorage only.
 * All server text is put in the page through textContent (never innerHTML).
 */
(function () {
  "use strict";

  const I18N = {
    zh: {
      title: "{shop} 客服工作台",
      langToggle: "English",
      langToggleLabel: "Switch to English",
      logout: "退出",
      loginHeading: "客服登录",
      username: "用户名",
      password: "密码",
      login: "登录",
      loggingIn: "登录中…",
      badLogin: "用户名或密码不正确，请重新输入。",
      missingLogin: "请输入用户名和密码。",
      expired: "登录已过期，请重新登录。",
      sidebarLabel: "待处理会话",
      tabsLabel: "会话类型",
      tabQueue: "排队会话",
      tabTickets: "留言工单",
      queueLabel: "排队会话",
      ticketsLabel: "留言工单",
      queueEmpty: "暂时没有等待人工的会话。",
      ticketsEmpty: "暂时没有留言工单。",
      live: "实时更新中",
      connecting: "正在连接…",
      polling: "实时连接中断，每 10 秒自动刷新",
      paneEmpty: "从左侧选择一个会话查看记录并接入。",
      back: "‹ 返回列表",
      conversation: "会话 {id}",
      csatBadge: "满意度 {n}/5",
      starsBadge: "{n} 星",
      take: "接入",
      release: "交还机器人",
      close: "结束会话",
      summary: "会话摘要",
      noSummary: "（暂无摘要）",
      historyLabel: "会话记录",
      replyLabel: "回复客户",
      replyHint: "按 Enter 发送，Shift+Enter 换行",
      replyPlaceholder: "输入回复，Enter 发送…",
      replyLocked: "接入后即可回复客户",
      send: "发送",
      customer: "客户",
      bot: "智能助手",
      agent: "客服 {name}",
      agentAnon: "人工客服",
      system: "系统",
      cites: "引用 {n} 条",
      priority1: "紧急",
      priority2: "高",
      priority3: "中",
      priority4: "普通",
      vip: "VIP",
      vipLabel: "VIP 客户",
      unread: "有新消息",
      lastMessage: "最新：",
      waiting: "已等待 {d}",
      handling: "已服务 {d}",
      leftAt: "留言于 {d}",
      statusQueued: "排队中",
      statusActive: "处理中",
      statusActiveBy: "{name} 处理中",
      statusMine: "由我处理",
      statusReturned: "已交还机器人",
      statusClosed: "已结束",
      statusTicket: "留言工单",
      minutes: "{m}分",
      minSec: "{m}分{s}秒",
      seconds: "{s}秒",
      hours: "{h}小时{m}分",
      networkError: "连接不上服务器，请检查网络后重试。",
      genericError: "操作失败，请稍后再试。",
      takenByOther: "该会话已由其他客服接入。",
      reason_asked: "客户要求转人工",
      reason_negative_sentiment: "客户情绪负面",
      reason_low_confidence: "连续未找到答案",
      reason_sensitive: "敏感话题",
      reason_flow_failed: "业务办理需要人工",
      reason_complaint: "客户投诉",
      reason_vip: "VIP 客户",
      reason_other: "其他原因",
      kind_grounded: "知识库",
      kind_faq: "FAQ",
      kind_no_answer: "未找到答案",
      kind_fallback: "兜底回复",
      kind_refused: "已拒答",
      kind_smalltalk: "寒暄",
      kind_greeting: "寒暄",
      kind_flow: "业务办理",
      kind_policy: "退换规则",
      kind_handoff: "转人工",
      kind_ticket: "留言工单",
    },
    en: {
      title: "{shop} Agent console",
      langToggle: "中文",
      langToggleLabel: "切换到中文",
      logout: "Sign out",
      loginHeading: "Agent sign-in",
      username: "Username",
      password: "Password",
      login: "Sign in",
      loggingIn: "Signing in…",
      badLogin: "Wrong username or password; please try again.",
      missingLogin: "Please enter your username and password.",
      expired: "Your session has expired; please sign in again.",
      sidebarLabel: "Conversations to handle",
      tabsLabel: "Conversation type",
      tabQueue: "Queue",
      tabTickets: "Tickets",
      queueLabel: "Queue",
      ticketsLabel: "Tickets",
      queueEmpty: "No conversation is waiting for an agent.",
      ticketsEmpty: "No tickets.",
      live: "Live",
      connecting: "Connecting…",
      polling: "Live updates lost; refreshing every 10 s",
      paneEmpty: "Pick a conversation on the left to read it and take over.",
      back: "‹ Back to list",
      conversation: "Conversation {id}",
      csatBadge: "CSAT {n}/5",
      starsBadge: "{n} stars",
      take: "Take over",
      release: "Hand back",
      close: "Close",
      summary: "Summary",
      noSummary: "(no summary yet)",
      historyLabel: "Conversation history",
      replyLabel: "Reply to the customer",
      replyHint: "Enter sends, Shift+Enter adds a new line",
      replyPlaceholder: "Type a reply, Enter sends…",
      replyLocked: "Take over the conversation to reply",
      send: "Send",
      customer: "Customer",
      bot: "Assistant",
      agent: "Agent {name}",
      agentAnon: "Agent",
      system: "System",
      cites: "{n} sources",
      priority1: "Urgent",
      priority2: "High",
      priority3: "Medium",
      priority4: "Normal",
      vip: "VIP",
      vipLabel: "VIP customer",
      unread: "New message",
      lastMessage: "Latest: ",
      waiting: "Waiting {d}",
      handling: "Handling {d}",
      leftAt: "Left at {d}",
      statusQueued: "Queued",
      statusActive: "Active",
      statusActiveBy: "With {name}",
      statusMine: "Mine",
      statusReturned: "Back with the bot",
      statusClosed: "Closed",
      statusTicket: "Ticket",
      minutes: "{m} min",
      minSec: "{m}m {s}s",
      seconds: "{s}s",
      hours: "{h}h {m}m",
      networkError: "Can't reach the server; check the connection and try again.",
      genericError: "That didn't work; please try again later.",
      takenByOther: "Another agent has already taken this conversation.",
      reason_asked: "Customer asked for an agent",
      reason_negative_sentiment: "Negative sentiment",
      reason_low_confidence: "No answer found twice",
      reason_sensitive: "Sensitive topic",
      reason_flow_failed: "A task needs a person",
      reason_complaint: "Complaint",
      reason_vip: "VIP customer",
      reason_other: "Other reason",
      kind_grounded: "Knowledge base",
      kind_faq: "FAQ",
      kind_no_answer: "No answer",
      kind_fallback: "Fallback",
      kind_refused: "Refused",
      kind_smalltalk: "Small talk",
      kind_greeting: "Small talk",
      kind_flow: "Task",
      kind_policy: "Return rules",
      kind_handoff: "Handoff",
      kind_ticket: "Ticket",
    },
  };

  const STORE_LANG = "kefu.lang";
  const STORE_TOKEN = "kefu.agent.token";
  const STORE_AGENT = "kefu.agent.profile";
  const DEFAULT_SHOP = "小铺优选";
  const DEFAULT_MAX = 4000;
  const POLL_MS = 10000;
  const CLOCK_MS = 5000;
  const MARKER = /\[(\d{1,3})\]/g;

  const $ = (id) => document.getElementById(id);
  const ui = {
    console: $("console"),
    title: $("title"),
    who: $("who"),
    logout: $("logout"),
    langToggle: $("lang-toggle"),
    loginView: $("login-view"),
    loginForm: $("login-form"),
    username: $("login-username"),
    password: $("login-password"),
    loginError: $("login-error"),
    loginSubmit: $("login-submit"),
    workspace: $("workspace"),
    tabs: { queue: $("tab-queue"), tickets: $("tab-tickets") },
    panels: { queue: $("queue-panel"), tickets: $("tickets-panel") },
    lists: { queue: $("queue-list"), tickets: $("tickets-list") },
    empties: { queue: $("queue-empty"), tickets: $("tickets-empty") },
    counts: { queue: $("queue-count"), tickets: $("tickets-count") },
    live: $("live-state"),
    paneEmpty: $("pane-empty"),
    conversation: $("conversation"),
    back: $("back"),
    convTitle: $("conversation-title"),
    convStatus: $("conversation-status"),
    take: $("take"),
    release: $("release"),
    close: $("close"),
    summary: $("summary-text"),
    paneError: $("pane-error"),
    historyWrap: $("history-wrap"),
    history: $("history"),
    replyForm: $("reply-form"),
    replyInput: $("reply-input"),
    replySend: $("reply-send"),
  };

  const config = {
    shop: metaContent("kefu-shop-name") || DEFAULT_SHOP,
    maxChars: parseInt(metaContent("kefu-max-chars"), 10) || DEFAULT_MAX,
    apiBase: (metaContent("kefu-api-base") || "").replace(/\/$/, ""),
  };

  const state = {
    lang: readStorage(localStorage, STORE_LANG) === "en" ? "en" : "zh",
    token: readStorage(sessionStorage, STORE_TOKEN),
    agent: parseJson(readStorage(sessionStorage, STORE_AGENT)),
    tab: "queue",
    handoffs: [],
    tickets: [],
    unread: new Set(),
    open: null, // {cid, handoff, summary, ids: Set of shown message ids, busy}
    source: null,
    live: "connecting",
    timers: [],
    reconnect: 0,
  };

  // ---------- small helpers ----------

  function metaContent(name) {
    const node = document.querySelector(`meta[name="${name}"]`);
    const value = node ? node.getAttribute("content").trim() : "";
    return value.includes("{{") ? "" : value; // an unfilled server template counts as empty
  }

  function readStorage(store, key) {
    try { return store.getItem(key); } catch (_) { return null; }
  }

  function writeStorage(store, key, value) {
    try {
      if (value === null) store.removeItem(key); else store.setItem(key, value);
    } catch (_) { /* private mode: keep working without persistence */ }
  }

  function parseJson(raw) {
    try { return raw ? JSON.parse(raw) : null; } catch (_) { return null; }
  }

  function t(key, vars) {
    const table = I18N[state.lang] || I18N.zh;
    let text = table[key] !== undefined ? table[key] : I18N.zh[key];
    if (text === undefined) return "";
    const all = Object.assign({ shop: config.shop }, vars || {});
    for (const name of Object.keys(all)) text = text.split(`{${name}}`).join(String(all[name]));
    return text;
  }

  function has(key) {
    return I18N.zh[key] !== undefined;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  /** Server times are UTC; SQLite hands them back without a zone, so a bare time counts as UTC. */
  function parseTime(value) {
    if (!value) return NaN;
    let text = String(value).trim().replace(" ", "T").replace(/(\.\d{3})\d+/, "$1");
    if (!/(Z|[+-]\d\d:?\d\d)$/i.test(text)) text += "Z";
    return Date.parse(text);
  }

  function duration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h) return t("hours", { h, m });
    if (m >= 10) return t("minutes", { m });
    if (m) return t("minSec", { m, s });
    return t("seconds", { s });
  }

  function clock(value) {
    const ms = parseTime(value);
    if (Number.isNaN(ms)) return "";
    const date = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return time;
    return `${date.getMonth() + 1}/${date.getDate()} ${time}`;
  }

  function shortId(cid) {
    return String(cid || "").slice(0, 8);
  }

  // ---------- language ----------

  function applyLang() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    ui.title.textContent = t("title");
    ui.langToggle.setAttribute("lang", state.lang === "zh" ? "en" : "zh-CN");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.setAttribute("placeholder", t(node.dataset.i18nPlaceholder));
    }
    for (const node of document.querySelectorAll("[data-i18n-aria-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
    }
    renderLive();
    if (state.token) {
      renderLists();
      if (state.open) { renderPane(); rerenderHistory(); }
    }
  }

  function toggleLang() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    writeStorage(localStorage, STORE_LANG, state.lang);
    applyLang();
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (state.token && !opts.anonymous) headers.Authorization = `Bearer ${state.token}`;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`${config.apiBase}${path}`, {
        method: opts.method || "GET",
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (_) {
      throw new ApiError(t("networkError"), 0, "network");
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* empty or not JSON */ }
    if (response.ok) return body || {};
    const error = body && body.error ? body.error : {};
    if (response.status === 401 && !opts.anonymous) {
      signOut(t("expired"));
      throw new ApiError(t("expired"), 401, "unauthorized");
    }
    throw new ApiError(error.message || t("genericError"), response.status, error.code || `http_${response.status}`);
  }

  // ---------- sign-in ----------

  function showLoginError(message) {
    ui.loginError.textContent = message;
    ui.loginError.hidden = !message;
  }

  async function signIn(event) {
    event.preventDefault();
    const username = ui.username.value.trim();
    const password = ui.password.value;
    if (!username || !password) { showLoginError(t("missingLogin")); return; }
    showLoginError("");
    ui.loginSubmit.disabled = true;
    ui.loginSubmit.textContent = t("loggingIn");
    try {
      const body = await api("/v1/agent/login", { method: "POST", body: { username, password }, anonymous: true });
      state.token = body.token;
      state.agent = body.agent || { username };
      writeStorage(sessionStorage, STORE_TOKEN, state.token);
      writeStorage(sessionStorage, STORE_AGENT, JSON.stringify(state.agent));
      ui.password.value = "";
      startWorkspace();
    } catch (err) {
      showLoginError(err.status === 401 ? t("badLogin") : err.message || t("genericError"));
    } finally {
      ui.loginSubmit.disabled = false;
      ui.loginSubmit.textContent = t("login");
    }
  }

  function signOut(message) {
    stopLive();
    state.token = null;
    state.agent = null;
    state.open = null;
    state.handoffs = [];
    state.tickets = [];
    state.unread.clear();
    writeStorage(sessionStorage, STORE_TOKEN, null);
    writeStorage(sessionStorage, STORE_AGENT, null);
    showView("login");
    showLoginError(message || "");
    ui.username.focus();
  }

  function showView(view) {
    ui.console.dataset.view = view;
    const signedIn = view !== "login";
    ui.loginView.hidden = signedIn;
    ui.workspace.hidden = !signedIn;
    ui.logout.hidden = !signedIn;
    ui.who.hidden = !signedIn;
    ui.who.textContent = signedIn && state.agent ? state.agent.display_name || state.agent.username || "" : "";
  }

  function startWorkspace() {
    showView(state.open ? "conversation" : "list");
    renderLists();
    refreshQueue();
    connectEvents();
    state.timers.push(setInterval(pollTick, POLL_MS));
    state.timers.push(setInterval(updateClocks, CLOCK_MS));
  }

  // ---------- live updates: server-sent events, with a 10 s poll while they are down ----------

  function connectEvents() {
    if (!state.token || typeof EventSource === "undefined") { setLive("polling"); return; }
    if (state.source) state.source.close();
    const url = `${config.apiBase}/v1/agent/events?token=${encodeURIComponent(state.token)}`;
    const source = new EventSource(url);
    state.source = source;
    setLive("connecting");
    // The stream's headers can reach us before the server has subscribed it: a change made in between
    // (a ticket filed right as the console connects) comes by no event, so look again a moment later.
    source.onopen = () => {
      if (state.source !== source) return;
      setLive("live");
      refreshQueue();
      setTimeout(() => { if (state.source === source) refreshQueue(); }, 1500);
    };
    source.onerror = () => {
      if (state.source !== source) return;
      setLive("polling");
      if (source.readyState === EventSource.CLOSED) { // refused (e.g. 401): retry later, the poll checks the token
        source.close();
        state.source = null;
        clearTimeout(state.reconnect);
        state.reconnect = setTimeout(() => { if (state.token && !state.source) connectEvents(); }, POLL_MS);
      }
    };
    source.addEventListener("queue", (event) => {
      const data = parseJson(event.data);
      if (data) applyQueue(data);
    });
    source.addEventListener("customer_message", (event) => {
      const data = parseJson(event.data);
      if (data) onCustomerMessage(data);
    });
  }

  function stopLive() {
    if (state.source) state.source.close();
    state.source = null;
    clearTimeout(state.reconnect);
    for (const timer of state.timers) clearInterval(timer);
    state.timers = [];
  }

  function setLive(live) {
    state.live = live;
    renderLive();
  }

  function renderLive() {
    ui.live.dataset.state = state.live;
    ui.live.textContent = t(state.live);
  }

  function pollTick() {
    if (!state.token || state.live === "live") return;
    refreshQueue();
    if (state.open) loadConversation(state.open.cid, { quiet: true });
  }

  async function refreshQueue() {
    try {
      applyQueue(await api("/v1/agent/queue"));
    } catch (err) {
      if (err.status !== 401) setLive(state.live === "live" ? "live" : "polling");
    }
  }

  function applyQueue(data) {
    if (Array.isArray(data.handoffs)) state.handoffs = data.handoffs;
    if (Array.isArray(data.tickets)) state.tickets = data.tickets;
    renderLists();
    if (!state.open) return;
    const current = findHandoff(state.open.cid);
    const before = state.open.handoff;
    if (current) {
      state.open.handoff = current;
      if (current.summary) state.open.summary = current.summary;
      renderPane();
    } else if (before && ["queued", "active", "ticket"].includes(before.status)) {
      loadConversation(state.open.cid, { quiet: true }); // handed back or closed elsewhere
    }
  }

  function findHandoff(cid) {
    return state.handoffs.concat(state.tickets).find((h) => h.conversation_id === cid) || null;
  }

  function onCustomerMessage(data) {
    const cid = data.conversation_id;
    for (const h of state.handoffs.concat(state.tickets)) {
      if (h.conversation_id === cid) h.last_message = data.content;
    }
    if (state.open && state.open.cid === cid) {
      addMessage({ id: data.id, role: "user", content: data.content, created_at: data.created_at });
    } else {
      state.unread.add(cid);
    }
    renderLists();
  }

  // ---------- the queue and ticket lists ----------

  function priorityLabel(priority) {
    const p = Math.max(1, Number(priority) || 4); // 1 (most urgent) .. 5
    const level = Math.min(p, 4);
    return { p: level, text: `P${p} ${t(`priority${level}`)}` };
  }

  function reasonLabel(reason) {
    const key = `reason_${String(reason || "").trim().toLowerCase()}`;
    return has(key) ? t(key) : t("reason_other"); // never an internal name
  }

  function statusLabel(h) {
    if (!h) return "";
    if (h.status === "active") {
      if (isMine(h)) return t("statusMine");
      return h.agent ? t("statusActiveBy", { name: h.agent }) : t("statusActive");
    }
    const status = String(h.status || "");
    const key = `status${status.charAt(0).toUpperCase()}${status.slice(1)}`;
    return has(key) ? t(key) : status;
  }

  function waitLabel(h) {
    if (h.status === "ticket") return t("leftAt", { d: clock(h.created_at) });
    const since = parseTime(h.status === "active" && h.taken_at ? h.taken_at : h.created_at);
    if (Number.isNaN(since)) return "";
    return t(h.status === "active" ? "handling" : "waiting", { d: duration(Date.now() - since) });
  }

  function isMine(h) {
    if (!h || h.status !== "active" || !state.agent) return false;
    if (h.agent_id !== undefined && state.agent.id !== undefined) return h.agent_id === state.agent.id;
    return Boolean(h.agent) && h.agent === (state.agent.display_name || state.agent.username);
  }

  function renderItem(h) {
    const prio = priorityLabel(h.priority);
    const top = el("span", { class: "item-top" }, [
      el("span", { class: `prio p${prio.p}`, "data-testid": "priority", text: prio.text }),
      h.vip ? el("span", { class: "vip", "data-testid": "vip", title: t("vipLabel"), text: t("vip") }) : null,
      el("span", { class: `state s-${h.status}`, text: statusLabel(h) }),
      state.unread.has(h.conversation_id)
        ? el("span", { class: "dot", title: t("unread") }, [el("span", { class: "visually-hidden", text: t("unread") })])
        : null,
      el("span", { class: "wait", "data-testid": "waiting", "data-wait": "", text: waitLabel(h) }),
    ]);
    const button = el("button", {
      type: "button", class: "item", "data-testid": "queue-item", "data-handoff-id": h.id,
      "data-conversation-id": h.conversation_id, "data-status": h.status,
      "aria-current": state.open && state.open.cid === h.conversation_id ? "true" : null,
    }, [
      top,
      h.reason ? el("span", { class: "reason", "data-testid": "reason", text: reasonLabel(h.reason) }) : null,
      h.summary ? el("span", { class: "item-summary", text: h.summary }) : null,
      h.last_message
        ? el("span", { class: "item-last", "data-testid": "last-message" }, [
          el("span", { class: "muted", text: t("lastMessage") }), h.last_message,
        ])
        : null,
    ]);
    button.addEventListener("click", () => openConversation(h));
    const item = el("li", {}, [button]);
    item._handoff = h;
    return item;
  }

  function renderLists() {
    for (const [name, items] of [["queue", state.handoffs], ["tickets", state.tickets]]) {
      ui.lists[name].replaceChildren(...items.map(renderItem));
      ui.empties[name].hidden = items.length > 0;
      ui.counts[name].textContent = String(name === "queue" ? items.filter((h) => h.status === "queued").length : items.length);
    }
  }

  function updateClocks() {
    for (const item of document.querySelectorAll(".items > li")) {
      const node = item.querySelector("[data-wait]");
      if (node && item._handoff) node.textContent = waitLabel(item._handoff);
    }
  }

  function selectTab(name) {
    state.tab = name;
    for (const key of Object.keys(ui.tabs)) {
      const on = key === name;
      ui.tabs[key].setAttribute("aria-selected", on ? "true" : "false");
      ui.tabs[key].tabIndex = on ? 0 : -1;
      ui.panels[key].hidden = !on;
    }
  }

  // ---------- the open conversation ----------

  function openConversation(h) {
    state.unread.delete(h.conversation_id);
    state.open = { cid: h.conversation_id, handoff: h, summary: h.summary || "", ids: new Set(), messages: [] };
    ui.history.replaceChildren();
    showPaneError("");
    ui.replyInput.value = "";
    showView("conversation");
    renderPane();
    renderLists();
    loadConversation(h.conversation_id, {});
  }

  async function loadConversation(cid, options) {
    try {
      const body = await api(`/v1/agent/conversations/${encodeURIComponent(cid)}`);
      if (!state.open || state.open.cid !== cid) return;
      if (body.handoff) state.open.handoff = body.handoff;
      if (typeof body.summary === "string") state.open.summary = body.summary;
      for (const message of body.messages || []) addMessage(message);
      renderPane();
      if (!options.quiet) scrollHistory(true);
      showRatings(cid);
    } catch (err) {
      if (!options.quiet && err.status !== 401) showPaneError(err.message);
    }
  }

  /** The customer's ratings as badges: 👍/👎 and stars on the rated answers, CSAT under the summary. */
  async function showRatings(cid) {
    let body;
    try { body = await api(`/v1/conversations/${encodeURIComponent(cid)}/ratings`); } catch (_) { return; }
    if (!state.open || state.open.cid !== cid) return;
    for (const old of document.querySelectorAll("[data-testid=rating]")) old.remove();
    for (const r of body.data || []) {
      const text = r.kind === "thumbs" ? (r.score ? "👍" : "👎")
        : t(r.kind === "csat" ? "csatBadge" : "starsBadge", { n: r.score });
      const badge = el("span", {
        class: `kind rating r-${r.kind}`, "data-testid": "rating", "data-kind": r.kind,
        "data-score": String(r.score), text: r.comment ? `${text} 「${r.comment}」` : text,
      });
      const target = r.message_id
        ? ui.history.querySelector(`[data-message-id="${CSS.escape(r.message_id)}"] .msg-head`)
        : ui.summary.parentElement;
      if (target) target.append(badge);
    }
  }

  function showPaneError(message) {
    ui.paneError.textContent = message || "";
    ui.paneError.hidden = !message;
  }

  function renderPane() {
    const open = state.open;
    ui.paneEmpty.hidden = Boolean(open);
    ui.conversation.hidden = !open;
    if (!open) return;
    const h = open.handoff;
    ui.convTitle.textContent = t("conversation", { id: shortId(open.cid) });
    ui.convStatus.textContent = statusLabel(h);
    ui.convStatus.dataset.status = h ? h.status : "";
    ui.summary.textContent = open.summary || t("noSummary");
    const mine = isMine(h);
    const status = h ? h.status : "";
    ui.take.hidden = !(status === "queued" || status === "ticket");
    ui.release.hidden = !mine;
    ui.close.hidden = !(mine || status === "ticket");
    for (const button of [ui.take, ui.release, ui.close]) button.disabled = Boolean(open.busy);
    ui.replyInput.disabled = !mine;
    ui.replyInput.setAttribute("placeholder", mine ? t("replyPlaceholder") : t("replyLocked"));
    updateReplyButton();
    for (const li of ui.lists.queue.children) markCurrent(li);
    for (const li of ui.lists.tickets.children) markCurrent(li);
  }

  function markCurrent(li) {
    const button = li.firstElementChild;
    if (!button) return;
    if (state.open && button.dataset.conversationId === state.open.cid) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }

  function closePane() {
    state.open = null;
    showView("list");
    renderPane();
    renderLists();
  }

  function nearBottom() {
    const w = ui.historyWrap;
    return w.scrollHeight - w.scrollTop - w.clientHeight < 80;
  }

  function scrollHistory(force) {
    if (force) ui.historyWrap.scrollTop = ui.historyWrap.scrollHeight;
  }

  function whoLabel(message) {
    if (message.role === "user") return t("customer");
    if (message.role === "assistant") return t("bot");
    if (message.role === "agent") return message.agent ? t("agent", { name: message.agent }) : t("agentAnon");
    return t("system");
  }

  function renderText(bubble, text) {
    let last = 0;
    for (const match of text.matchAll(MARKER)) {
      bubble.append(text.slice(last, match.index));
      bubble.append(el("span", { class: "cite-mark", text: match[0] }));
      last = match.index + match[0].length;
    }
    bubble.append(text.slice(last));
  }

  function renderMessage(message) {
    const role = ["user", "assistant", "agent"].includes(message.role) ? message.role : "system";
    const head = el("div", { class: "msg-head" }, [el("span", { class: "msg-who", text: whoLabel(message) })]);
    const kindKey = `kind_${message.answer_kind}`;
    if (role === "assistant" && message.answer_kind && has(kindKey)) { // an unknown kind: no label, never its name
      head.append(el("span", {
        class: `kind k-${message.answer_kind}`, "data-testid": "answer-kind", text: t(kindKey),
      }));
    }
    const cites = Array.isArray(message.citations) ? message.citations.length : 0;
    if (role === "assistant" && cites) head.append(el("span", { class: "kind cites", text: t("cites", { n: cites }) }));
    const time = clock(message.created_at);
    if (time) head.append(el("time", { class: "msg-time", datetime: message.created_at, text: time }));
    const bubble = el("div", { class: "bubble" });
    renderText(bubble, String(message.content || ""));
    return el("li", {
      class: "msg", "data-testid": "history-message", "data-role": role,
      "data-message-id": message.id || "", "data-answer-kind": message.answer_kind || null,
    }, [head, bubble]);
  }

  function addMessage(message) {
    const open = state.open;
    if (!open) return;
    if (message.id && open.ids.has(message.id)) return;
    if (message.id) open.ids.add(message.id);
    open.messages.push(message);
    const stick = nearBottom();
    ui.history.append(renderMessage(message));
    scrollHistory(stick || message.role === "agent");
  }

  function rerenderHistory() {
    if (!state.open) return;
    ui.history.replaceChildren(...state.open.messages.map(renderMessage));
  }

  async function act(kind) {
    const open = state.open;
    if (!open || !open.handoff || open.busy) return;
    open.busy = true;
    renderPane();
    showPaneError("");
    try {
      const body = await api(`/v1/agent/handoffs/${encodeURIComponent(open.handoff.id)}/${kind}`, { method: "POST" });
      if (state.open !== open) return;
      const fallback = { take: "active", release: "returned", close: "closed" }[kind];
      open.handoff = body && body.status ? body : Object.assign({}, open.handoff, { status: fallback });
      if (kind === "take" && !body.agent && state.agent) open.handoff.agent = state.agent.display_name;
    } catch (err) {
      if (state.open === open && err.status !== 401) {
        showPaneError(err.status === 409 && kind === "take" ? `${t("takenByOther")} ${err.message}` : err.message);
      }
    } finally {
      open.busy = false;
      if (state.open === open) {
        renderPane();
        if (kind === "take" && isMine(open.handoff)) {
          loadConversation(open.cid, { quiet: true });
          ui.replyInput.focus();
        }
      }
      refreshQueue();
    }
  }

  // ---------- replying ----------

  function updateReplyButton() {
    const text = ui.replyInput.value.trim();
    ui.replySend.disabled = ui.replyInput.disabled || !text || Array.from(text).length > config.maxChars
      || Boolean(state.open && state.open.sending);
  }

  function autosize() {
    ui.replyInput.style.height = "auto";
    ui.replyInput.style.height = `${ui.replyInput.scrollHeight + 2}px`;
  }

  async function sendReply() {
    const open = state.open;
    const text = ui.replyInput.value.trim();
    if (!open || open.sending || !text || ui.replyInput.disabled) return;
    open.sending = true;
    updateReplyButton();
    showPaneError("");
    try {
      const body = await api(`/v1/agent/conversations/${encodeURIComponent(open.cid)}/messages`, {
        method: "POST", body: { text },
      });
      if (state.open !== open) return;
      const message = body.message || { role: "agent", content: text };
      if (!message.agent && state.agent) message.agent = state.agent.display_name;
      addMessage(message);
      if (ui.replyInput.value.trim() === text) ui.replyInput.value = "";
      autosize();
    } catch (err) {
      if (state.open === open && err.status !== 401) showPaneError(err.message);
    } finally {
      open.sending = false;
      updateReplyButton();
      if (state.open === open) ui.replyInput.focus();
    }
  }

  // ---------- wiring ----------

  ui.replyInput.setAttribute("maxlength", String(config.maxChars));
  ui.loginForm.addEventListener("submit", signIn);
  ui.logout.addEventListener("click", () => signOut(""));
  ui.langToggle.addEventListener("click", toggleLang);
  ui.tabs.queue.addEventListener("click", () => selectTab("queue"));
  ui.tabs.tickets.addEventListener("click", () => selectTab("tickets"));
  for (const tab of Object.values(ui.tabs)) {
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = state.tab === "queue" ? "tickets" : "queue";
      selectTab(next);
      ui.tabs[next].focus();
    });
  }
  ui.back.addEventListener("click", closePane);
  ui.take.addEventListener("click", () => act("take"));
  ui.release.addEventListener("click", () => act("release"));
  ui.close.addEventListener("click", () => act("close"));
  ui.replyForm.addEventListener("submit", (event) => { event.preventDefault(); sendReply(); });
  ui.replyInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault(); // Enter sends; Shift+Enter and IME composition keep their newline / candidate
    sendReply();
  });
  ui.replyInput.addEventListener("input", () => { autosize(); updateReplyButton(); });

  applyLang();
  if (state.token) startWorkspace(); else showView("login");
  renderPane();
  document.body.dataset.ready = "true";
})();
