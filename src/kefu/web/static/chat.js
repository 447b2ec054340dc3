/* kefu customer chat — plain JavaScript, no framework, no build step, no network beyond the kefu API.
 *
 * Talks to:  POST /v1/conversations                      → {id}
 *            POST /v1/conversations/{id}/messages         → text/event-stream (meta, citations, delta, done, error)
 *            GET  /v1/conversations/{id}/messages         → {data: [...], count}
 *            GET  /v1/conversations/{id}/events           → text/event-stream (agent_message, handoff)
 *            GET  /v1/conversations/{id}/handoff          → the open handoff, or 404
 *            POST /v1/conversations/{id}/messages/{mid}/rating → 👍/👎 or 1–5 stars (+ comment) on an answer
 *            POST /v1/conversations/{id}/rating           → CSAT when the chat ends or goes idle
 * All server text is put in the page through textContent (never innerHTML).
 */
(function () {
  "use strict";

  const I18N = {
    zh: {
      title: "{shop} 在线客服",
      newChat: "新对话",
      langToggle: "English",
      langToggleLabel: "Switch to English",
      logLabel: "对话记录",
      inputLabel: "输入您的问题",
      placeholder: "请输入您的问题…",
      inputHint: "按 Enter 发送，Shift+Enter 换行",
      send: "发送",
      welcome: "您好，欢迎来到{shop}！我是在线客服，可以为您解答配送、退换货、订单等问题。",
      sources: "参考来源",
      typing: "客服正在输入…",
      networkError: "抱歉，暂时连接不上客服服务，请检查网络后再试一次。",
      genericError: "抱歉，出了点问题，请稍后再试。",
      tooLong: "消息太长了，请控制在 {max} 字以内。",
      rateLimited: "消息发送太频繁，请 {n} 秒后再试",
      interrupted: "回答中断了，请重新发送一次。",
      citeLabel: "查看来源 {n}",
      agentFrom: "人工客服 {name}",
      agentAnon: "人工客服",
      sent: "已发送",
      hoQueued: "您前面还有 {n} 位，预计等待约 {m} 分钟",
      hoQueuedNoWait: "您前面还有 {n} 位，请稍候",
      hoNext: "您是下一位，预计等待约 {m} 分钟",
      hoNextNoWait: "您是下一位，请稍候",
      hoActive: "客服 {name} 已接入",
      hoActiveAnon: "人工客服已接入",
      hoReturned: "已转回智能助手",
      hoClosed: "人工客服已结束本次服务，如还有问题可以继续提问",
      hoTicket: "已为您记录留言，客服上班后会尽快回复您",
      endChat: "结束对话",
      rateGroup: "评价这条回答",
      thumbUp: "有帮助",
      thumbDown: "没帮助",
      star: "{n} 星",
      commentLabel: "补充说明（可选）",
      commentSend: "提交",
      rated: "感谢您的反馈",
      csatAsk: "请为本次服务打分",
      csatGroup: "本次服务满意度",
      csatThanks: "感谢您的评价！",
    },
    en: {
      title: "{shop} Support",
      newChat: "New chat",
      langToggle: "中文",
      langToggleLabel: "切换到中文",
      logLabel: "Conversation",
      inputLabel: "Type your question",
      placeholder: "Type your question…",
      inputHint: "Enter sends, Shift+Enter adds a new line",
      send: "Send",
      welcome: "Hi, welcome to {shop}! I can help with shipping, returns, orders and more.",
      sources: "Sources",
      typing: "Agent is typing…",
      networkError: "Sorry, we can't reach the support service right now. Please check your connection and try again.",
      genericError: "Sorry, something went wrong. Please try again later.",
      tooLong: "That message is too long; please keep it under {max} characters.",
      rateLimited: "You're sending messages too fast; try again in {n} s",
      interrupted: "The answer was cut off; please send your message again.",
      citeLabel: "Show source {n}",
      agentFrom: "Agent {name}",
      agentAnon: "Agent",
      sent: "Sent",
      hoQueued: "{n} ahead of you, about {m} min wait",
      hoQueuedNoWait: "{n} ahead of you, please hold on",
      hoNext: "You are next in line, about {m} min wait",
      hoNextNoWait: "You are next in line, please hold on",
      hoActive: "{name} from our support team has joined",
      hoActiveAnon: "An agent has joined",
      hoReturned: "You're back with the assistant",
      hoClosed: "The agent has closed this conversation; ask again any time",
      hoTicket: "Your message was recorded; an agent will reply during working hours",
      endChat: "End chat",
      rateGroup: "Rate this answer",
      thumbUp: "Helpful",
      thumbDown: "Not helpful",
      star: "{n} stars",
      commentLabel: "Anything to add? (optional)",
      commentSend: "Send",
      rated: "Thanks for your feedback",
      csatAsk: "How satisfied are you with this conversation?",
      csatGroup: "Satisfaction with this conversation",
      csatThanks: "Thank you for rating us!",
    },
  };

  const STORE_LANG = "kefu.lang";
  const STORE_CONVERSATION = "kefu.conversation";
  const STORE_CSAT = "kefu.csat"; // the conversation whose CSAT prompt was shown
  const DEFAULT_SHOP = "小铺优选";
  const DEFAULT_MAX = 4000;
  const MARKER = /\[(\d{1,3})\]/g;
  const CSAT_IDLE_MS = 5 * 60 * 1000; // ask for CSAT once after 5 idle minutes following an answer

  const $ = (id) => document.getElementById(id);
  const ui = {
    title: $("title"),
    log: $("log"),
    logWrap: $("log-wrap"),
    form: $("composer"),
    input: $("message-input"),
    send: $("send-button"),
    count: $("char-count"),
    newChat: $("new-chat"),
    endChat: $("end-chat"),
    langToggle: $("lang-toggle"),
  };

  const config = {
    shop: metaContent("kefu-shop-name") || DEFAULT_SHOP,
    maxChars: parseInt(metaContent("kefu-max-chars"), 10) || DEFAULT_MAX,
    apiBase: (metaContent("kefu-api-base") || "").replace(/\/$/, ""),
  };

  const state = {
    lang: readStorage(localStorage, STORE_LANG) === "en" ? "en" : "zh",
    conversationId: readStorage(sessionStorage, STORE_CONVERSATION),
    busy: false,
    abort: null,
    seq: 0,
    events: null, // EventSource for agent messages and handoff status
    handoff: null, // the last handoff status seen: {id, status}
    statusItem: null,
    csatAsked: false, // the CSAT prompt was shown in this conversation
    idleTimer: 0,
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

  function t(key, vars) {
    const table = I18N[state.lang] || I18N.zh;
    let text = table[key] !== undefined ? table[key] : I18N.zh[key];
    const all = Object.assign({ shop: config.shop, max: config.maxChars }, vars || {});
    for (const name of Object.keys(all)) text = text.split(`{${name}}`).join(String(all[name]));
    return text;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function charCount(text) {
    return Array.from(text).length; // code points, as the server counts them
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
    for (const node of document.querySelectorAll("[data-agent-name]")) node.textContent = agentLabel(node.dataset.agentName);
    for (const node of document.querySelectorAll("[data-handoff-status]")) node.textContent = handoffText(node.dataset);
    for (const node of document.querySelectorAll(".star[data-n]")) node.setAttribute("aria-label", t("star", { n: node.dataset.n }));
  }

  function toggleLang() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    writeStorage(localStorage, STORE_LANG, state.lang);
    applyLang();
  }

  // ---------- rendering ----------

  function nearBottom() {
    const w = ui.logWrap;
    return w.scrollHeight - w.scrollTop - w.clientHeight < 80;
  }

  function keepScrolled(wasNearBottom) {
    if (wasNearBottom) ui.logWrap.scrollTop = ui.logWrap.scrollHeight;
  }

  function addBubble(role, text, i18nKey) {
    const stick = nearBottom();
    const bubble = el("div", { class: "bubble" });
    if (i18nKey) bubble.dataset.i18n = i18nKey;
    bubble.textContent = text;
    const item = el("li", { class: "msg", "data-testid": "message", "data-role": role }, [bubble]);
    ui.log.append(item);
    keepScrolled(stick || role === "user");
    return { item, bubble };
  }

  /** Fill `bubble` with `text`, turning [n] into superscript links to citation n when it exists. */
  function renderAnswer(bubble, text, key, known) {
    bubble.replaceChildren();
    let last = 0;
    for (const match of text.matchAll(MARKER)) {
      const n = Number(match[1]);
      if (!known.has(n)) continue;
      bubble.append(text.slice(last, match.index));
      const link = el("a", {
        class: "cite-link", href: `#${citeId(key, n)}`, "aria-label": t("citeLabel", { n }),
        "data-cite": String(n), text: `[${n}]`,
      });
      bubble.append(el("sup", {}, [link]));
      last = match.index + match[0].length;
    }
    bubble.append(text.slice(last));
  }

  function citeId(key, n) {
    return `cite-${key}-${n}`;
  }

  function sectionLabel(citation) {
    const title = citation.title || citation.source || "";
    let section = citation.section || "";
    if (section.startsWith(`${title} > `)) section = section.slice(title.length + 3);
    if (section === title) section = "";
    return { title, section };
  }

  function renderCitation(citation, key) {
    const { title, section } = sectionLabel(citation);
    const summary = el("summary", {}, [
      el("span", { class: "num", text: `[${citation.index}]` }),
      el("span", { class: "ctitle", text: title }),
    ]);
    if (section) summary.append(el("span", { class: "section", text: ` · ${section}` }));
    const details = el("details", {}, [summary]);
    if (citation.snippet) details.append(el("p", { class: "snippet", text: citation.snippet }));
    if (citation.source) details.append(el("span", { class: "source", text: citation.source }));
    return el("li", {
      class: "citation", id: citeId(key, citation.index), "data-testid": "citation",
      "data-index": String(citation.index), "data-chunk-id": citation.chunk_id || "",
      "data-section": citation.section || "", "data-source": citation.source || "",
    }, [details]);
  }

  function openCitation(event) {
    const link = event.target.closest(".cite-link");
    if (!link) return;
    event.preventDefault();
    const target = document.getElementById(link.getAttribute("href").slice(1));
    if (!target) return;
    const details = target.querySelector("details");
    if (details) details.open = true;
    target.scrollIntoView({ block: "nearest", behavior: "smooth" });
    target.classList.remove("flash");
    void target.offsetWidth; // restart the highlight
    target.classList.add("flash");
    setTimeout(() => target.classList.remove("flash"), 1600);
    const summary = target.querySelector("summary");
    if (summary) summary.focus({ preventScroll: true });
  }

  /** An assistant bubble that fills in as events arrive. */
  class AnswerView {
    constructor(quiet) {
      this.key = String(++state.seq);
      this.text = "";
      this.citations = [];
      this.finished = false;
      this.dismissed = false;
      const { item, bubble } = addBubble("assistant", "");
      this.item = item;
      this.bubble = bubble;
      this.item.dataset.state = "streaming";
      this.item.hidden = Boolean(quiet); // an agent owns the conversation: no typing dots unless the bot answers
      this.list = null;
      this.showTyping();
    }

    /** The message went to the human agent: the bot says nothing, so the bubble goes away. */
    dismiss() {
      this.dismissed = true;
      this.item.remove();
    }

    showTyping() {
      const dots = el("span", { class: "typing", "data-testid": "typing", role: "status" }, [
        el("span"), el("span"), el("span"),
        el("span", { class: "visually-hidden", "data-i18n": "typing", text: t("typing") }),
      ]);
      this.bubble.replaceChildren(dots);
    }

    setMeta(meta) {
      if (meta.answer_kind === "agent_pending") { this.dismiss(); return; }
      this.item.hidden = false;
      if (meta.message_id) this.item.dataset.messageId = meta.message_id;
      if (meta.answer_kind) this.item.dataset.answerKind = meta.answer_kind;
    }

    setCitations(citations) {
      this.citations = Array.isArray(citations) ? citations : [];
      const stick = nearBottom();
      if (this.list) this.list.remove();
      if (this.label) this.label.remove();
      this.list = null;
      this.label = null;
      if (this.citations.length) {
        this.label = el("div", { class: "citations-label", "data-i18n": "sources", text: t("sources") });
        this.list = el("ol", { class: "citations" }, this.citations.map((c) => renderCitation(c, this.key)));
        this.item.append(this.label, this.list);
      }
      if (this.text) this.render();
      keepScrolled(stick);
    }

    append(text) {
      this.text += text;
      if (this.pending) return;
      this.pending = requestAnimationFrame(() => { this.pending = 0; this.render(); });
    }

    render() {
      const stick = nearBottom();
      const known = new Set(this.citations.map((c) => Number(c.index)));
      renderAnswer(this.bubble, this.text, this.key, known);
      keepScrolled(stick);
    }

    finish(message) {
      this.finished = true;
      if (this.pending) cancelAnimationFrame(this.pending);
      this.pending = 0;
      if (this.dismissed) return;
      if (!message && !this.text) { this.dismiss(); return; } // no reply stored (the agent has it)
      this.item.hidden = false;
      if (message) {
        this.text = message.content || this.text;
        if (message.id) this.item.dataset.messageId = message.id;
        if (message.answer_kind) this.item.dataset.answerKind = message.answer_kind;
        if (Array.isArray(message.citations)) this.setCitations(message.citations);
      }
      this.render();
      this.item.dataset.state = "done";
      if (this.item.dataset.messageId) addRating(this.item);
    }

    /** Keep a partial answer; drop an empty bubble. */
    abandon() {
      if (this.pending) cancelAnimationFrame(this.pending);
      this.pending = 0;
      if (this.text) { this.render(); this.item.dataset.state = "interrupted"; } else this.item.remove();
    }
  }

  // ---------- ratings: 👍/👎 and stars on an answer, CSAT on the conversation ----------

  function starButtons(name, onPick) {
    const buttons = [1, 2, 3, 4, 5].map((n) => {
      const b = el("button", {
        type: "button", class: "star", "data-testid": `${name}-${n}`, "data-score": String(n),
        "aria-pressed": "false", text: "★",
      });
      b.setAttribute("aria-label", t("star", { n }));
      b.dataset.n = String(n);
      b.addEventListener("click", () => onPick(n, buttons));
      return b;
    });
    return buttons;
  }

  function press(buttons, chosen) { // chosen: a star count, or the pressed thumb button
    for (const b of buttons) {
      const isStar = b.classList.contains("star");
      const on = isStar ? Number(b.dataset.score) <= chosen : b === chosen;
      b.classList.toggle("on", on);
      b.setAttribute("aria-pressed", String(isStar ? Number(b.dataset.score) === chosen : on));
    }
  }

  function commentBox(testid, onSend) {
    const id = `comment-${++state.seq}`;
    const input = el("textarea", { id, rows: "2", maxlength: "2000", class: "rate-comment", "data-testid": testid });
    const label = el("label", { for: id, class: "rate-label", "data-i18n": "commentLabel", text: t("commentLabel") });
    const sendBtn = el("button", {
      type: "button", class: "btn ghost", "data-testid": `${testid}-send`, "data-i18n": "commentSend",
      text: t("commentSend"),
    });
    sendBtn.addEventListener("click", () => onSend(input.value.trim()));
    const box = el("div", { class: "rate-more" }, [label, input, sendBtn]);
    box.hidden = true;
    return box;
  }

  async function sendRating(path, body, note) {
    try {
      await postJson(path, body);
      note.textContent = t("rated");
      note.dataset.i18n = "rated";
      return true;
    } catch (err) {
      note.textContent = err instanceof ApiError ? err.message : t("genericError");
      delete note.dataset.i18n;
      return false;
    }
  }

  function addRating(item) {
    if (!state.conversationId || item.querySelector(".rate")) return;
    const path = `/v1/conversations/${encodeURIComponent(state.conversationId)}/messages/${
      encodeURIComponent(item.dataset.messageId)}/rating`;
    const note = el("span", { class: "msg-note", role: "status", "data-testid": "rate-note" });
    const thumbs = [["thumbUp", 1, "👍"], ["thumbDown", 0, "👎"]].map(([key, score, face]) => {
      const b = el("button", {
        type: "button", class: "thumb", "data-testid": key === "thumbUp" ? "thumb-up" : "thumb-down",
        "aria-pressed": "false", "data-i18n-aria-label": key, "data-score": String(score), text: face,
      });
      b.setAttribute("aria-label", t(key));
      b.addEventListener("click", async () => {
        if (await sendRating(path, { kind: "thumbs", score }, note)) press(thumbs, b);
      });
      return b;
    });
    let stars = 0;
    const more = commentBox("rate-comment", (comment) => {
      if (stars) sendRating(path, { kind: "stars", score: stars, comment }, note).then((ok) => { if (ok) more.hidden = true; });
    });
    const starRow = starButtons("star", async (n, buttons) => {
      if (await sendRating(path, { kind: "stars", score: n }, note)) { stars = n; press(buttons, n); more.hidden = false; }
    });
    const group = el("div", { class: "rate", role: "group", "data-i18n-aria-label": "rateGroup", "data-testid": "rate" },
      [...thumbs, el("span", { class: "stars" }, starRow), note]);
    group.setAttribute("aria-label", t("rateGroup"));
    item.append(group, more);
    armIdleCsat();
  }

  function askCsat() {
    if (state.csatAsked || !state.conversationId || !ui.log.querySelector("[data-message-id]")) return false;
    if (readStorage(sessionStorage, STORE_CSAT) === state.conversationId) return false; // asked before a reload
    state.csatAsked = true;
    writeStorage(sessionStorage, STORE_CSAT, state.conversationId);
    clearTimeout(state.idleTimer);
    const path = `/v1/conversations/${encodeURIComponent(state.conversationId)}/rating`;
    const note = el("span", { class: "msg-note", role: "status", "data-testid": "csat-note" });
    let score = 0;
    const more = commentBox("csat-comment", (comment) => {
      if (score) sendRating(path, { score, comment }, note).then((ok) => { if (ok) { more.hidden = true; note.textContent = t("csatThanks"); } });
    });
    const row = starButtons("csat", async (n, buttons) => {
      if (await sendRating(path, { score: n }, note)) {
        score = n; press(buttons, n); more.hidden = false; note.textContent = t("csatThanks");
      }
    });
    const group = el("div", { class: "rate csat", role: "group", "data-i18n-aria-label": "csatGroup" },
      [el("span", { class: "stars" }, row), note]);
    group.setAttribute("aria-label", t("csatGroup"));
    const stick = nearBottom();
    const item = el("li", { class: "msg", "data-role": "csat", "data-testid": "csat" }, [
      el("div", { class: "bubble", "data-i18n": "csatAsk", text: t("csatAsk") }), group, more,
    ]);
    ui.log.append(item);
    keepScrolled(true);
    row[0].focus({ preventScroll: true });
    return true;
  }

  function armIdleCsat() {
    clearTimeout(state.idleTimer);
    if (!state.csatAsked) state.idleTimer = setTimeout(askCsat, CSAT_IDLE_MS);
  }

  function showError(message) {
    const { item } = addBubble("error", message);
    item.setAttribute("role", "alert");
  }

  function showWelcome() {
    addBubble("welcome", t("welcome"), "welcome");
  }

  function showHistoryMessage(message) {
    if (message.role === "user") { addBubble("user", message.content || ""); return; }
    if (message.role === "agent") { showAgentMessage(message); return; }
    if (message.role !== "assistant") return;
    const view = new AnswerView();
    view.finish(message);
  }

  // ---------- human agent: messages and handoff status ----------

  function agentLabel(name) {
    return name ? t("agentFrom", { name }) : t("agentAnon");
  }

  function showAgentMessage(message) {
    if (message.id && ui.log.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`)) return;
    const { item } = addBubble("agent", message.content || "");
    const name = message.agent || "";
    item.prepend(el("span", { class: "msg-from", "data-agent-name": name, text: agentLabel(name) }));
    if (message.id) item.dataset.messageId = message.id;
    keepScrolled(true);
  }

  function handoffText(h) {
    const status = h.status;
    if (status === "queued") {
      const position = parseInt(h.position, 10); // 1 = next in line
      const wait = parseInt(h.expectedWaitS !== undefined ? h.expectedWaitS : h.expected_wait_s, 10);
      const n = Number.isNaN(position) ? 0 : Math.max(0, position - 1);
      const m = Math.max(1, Math.round(wait / 60));
      if (n === 0) return Number.isNaN(wait) ? t("hoNextNoWait") : t("hoNext", { m });
      return Number.isNaN(wait) ? t("hoQueuedNoWait", { n }) : t("hoQueued", { n, m });
    }
    if (status === "active") return h.agent ? t("hoActive", { name: h.agent }) : t("hoActiveAnon");
    const key = { returned: "hoReturned", closed: "hoClosed", ticket: "hoTicket" }[status];
    return key ? t(key) : "";
  }

  /** A status line in the log; a queue update of the same handoff rewrites the line instead of adding one. */
  function showHandoff(h) {
    if (!h || !h.status) return;
    const data = {
      status: String(h.status), position: h.position === null || h.position === undefined ? "" : String(h.position),
      expectedWaitS: h.expected_wait_s === null || h.expected_wait_s === undefined ? "" : String(h.expected_wait_s),
      agent: h.agent || "",
    };
    const text = handoffText(data);
    const previous = state.handoff;
    state.handoff = { id: h.id, status: data.status };
    if (!text) return;
    const last = state.statusItem;
    const same = last && last.isConnected && previous && previous.id === h.id && previous.status === data.status;
    const line = same ? last.firstElementChild : el("span", { class: "status-line" });
    Object.assign(line.dataset, data, { handoffStatus: data.status });
    line.textContent = text;
    if (same) return;
    const stick = nearBottom();
    const item = el("li", { class: "msg", "data-testid": "handoff-status", "data-role": "status" }, [line]);
    item.dataset.status = data.status;
    ui.log.append(item);
    state.statusItem = item;
    keepScrolled(stick);
  }

  function withAgent() {
    return Boolean(state.handoff && (state.handoff.status === "queued" || state.handoff.status === "active"));
  }

  function listen(id) {
    if (typeof EventSource === "undefined" || (state.events && state.events.conversationId === id)) return;
    stopListening();
    const source = new EventSource(`${config.apiBase}/v1/conversations/${encodeURIComponent(id)}/events`);
    source.conversationId = id;
    source.addEventListener("agent_message", (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (_) { return; }
      showAgentMessage(data);
    });
    source.addEventListener("handoff", (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (_) { return; }
      showHandoff(data);
    });
    state.events = source;
  }

  function stopListening() {
    if (state.events) state.events.close();
    state.events = null;
  }

  async function loadHandoff(id) {
    try {
      const response = await fetch(`${config.apiBase}/v1/conversations/${encodeURIComponent(id)}/handoff`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) showHandoff(await response.json());
    } catch (_) { /* no handoff information: the page works as a plain bot chat */ }
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function request(path, options) {
    let response;
    try {
      response = await fetch(`${config.apiBase}${path}`, options);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(t("networkError"), 0, "network");
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async function errorFrom(response) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    const error = body && body.error ? body.error : {};
    if (response.status === 429) { // rate limited: a friendly line, with the server's Retry-After
      const wait = Math.max(1, Math.ceil(Number(response.headers.get("Retry-After")) || 1));
      return new ApiError(t("rateLimited", { n: wait }), 429, "rate_limited");
    }
    const fallback = response.status === 413 ? t("tooLong") : t("genericError");
    return new ApiError(error.message || fallback, response.status, error.code || "http_" + response.status);
  }

  function postJson(path, body, signal) {
    return request(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream, application/json" },
      body: JSON.stringify(body),
      signal,
    });
  }

  async function ensureConversation(signal) {
    if (state.conversationId) return state.conversationId;
    const response = await postJson("/v1/conversations", { channel: "web" }, signal);
    const body = await response.json();
    state.conversationId = body.id;
    writeStorage(sessionStorage, STORE_CONVERSATION, body.id);
    return body.id;
  }

  function forgetConversation() {
    state.conversationId = null;
    writeStorage(sessionStorage, STORE_CONVERSATION, null);
  }

  function newMessageId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    return `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  }

  // A request the network cut is sent once more with the same client_message_id: the server stores the
  // message once and answers the retry with the reply it stored (or answers it now).
  async function postWithRetry(path, body, signal) {
    try {
      return await postJson(path, body, signal);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 0) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return postJson(path, body, signal);
    }
  }

  async function postMessage(text, signal) {
    const id = await ensureConversation(signal);
    listen(id);
    const body = { content: text, stream: true, client_message_id: newMessageId() };
    try {
      return await postWithRetry(`/v1/conversations/${encodeURIComponent(id)}/messages`, body, signal);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
      forgetConversation(); // the server no longer knows it (e.g. a new database): start afresh once
      const fresh = await ensureConversation(signal);
      listen(fresh);
      return postWithRetry(`/v1/conversations/${encodeURIComponent(fresh)}/messages`, body, signal);
    }
  }

  // ---------- server-sent events over fetch (EventSource cannot POST) ----------

  function takeLine(buffer, final) {
    const i = buffer.search(/[\r\n]/);
    if (i < 0) return null;
    if (buffer[i] === "\r" && i === buffer.length - 1 && !final) return null; // maybe "\r\n" split
    const skip = buffer[i] === "\r" && buffer[i + 1] === "\n" ? 2 : 1;
    return [buffer.slice(0, i), buffer.slice(i + skip)];
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let name = "message";
    let data = [];
    const handleLine = (line) => {
      if (line === "") {
        if (data.length) onEvent(name, data.join("\n"));
        name = "message";
        data = [];
        return;
      }
      if (line.startsWith(":")) return; // comment / keep-alive ping
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
        let taken;
        while ((taken = takeLine(buffer, done))) {
          buffer = taken[1];
          handleLine(taken[0]);
        }
        if (done) break;
      }
    } catch (err) {
      reader.cancel().catch(() => {}); // stop the download when an event says the answer failed
      throw err;
    }
    if (buffer) handleLine(buffer);
    handleLine("");
  }

  function applyEvent(view, name, raw) {
    let data;
    try { data = JSON.parse(raw); } catch (_) { return; }
    if (name === "meta") { view.setMeta(data); showHandoff(data.handoff); }
    else if (name === "citations") view.setCitations(data.citations);
    else if (name === "delta") view.append(data.text || "");
    else if (name === "done") view.finish(data.message);
    else if (name === "error") {
      const error = data.error || {};
      throw new ApiError(error.message || t("genericError"), 200, error.code || "stream_error");
    }
  }

  async function streamAnswer(response, view) {
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) {
      const body = await response.json();
      if (body.answer_kind === "agent_pending") view.dismiss();
      showHandoff(body.handoff);
      view.finish(body.message);
      return;
    }
    await readEvents(response, (name, raw) => applyEvent(view, name, raw));
    if (!view.finished) {
      view.abandon();
      throw new ApiError(t("interrupted"), 200, "interrupted");
    }
  }

  // ---------- sending ----------

  function setBusy(busy) {
    state.busy = busy;
    ui.log.setAttribute("aria-busy", busy ? "true" : "false");
    updateComposer();
  }

  function updateComposer() {
    const n = charCount(ui.input.value);
    ui.count.textContent = `${n}/${config.maxChars}`;
    ui.count.classList.toggle("near", n > config.maxChars * 0.9);
    ui.send.disabled = state.busy || ui.input.value.trim() === "" || n > config.maxChars;
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${ui.input.scrollHeight + 2}px`;
  }

  async function send() {
    const text = ui.input.value.trim();
    if (state.busy || !text) return;
    if (charCount(text) > config.maxChars) { showError(t("tooLong")); return; }
    const sent = addBubble("user", text);
    ui.input.value = "";
    autosize();
    setBusy(true);
    const controller = new AbortController();
    state.abort = controller;
    const view = new AnswerView(withAgent());
    try {
      const response = await postMessage(text, controller.signal);
      await streamAnswer(response, view);
      if (view.dismissed) markSent(sent.item);
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (!view.finished) view.abandon();
      showError(err instanceof ApiError ? err.message : t("genericError"));
    } finally {
      if (state.abort === controller) {
        state.abort = null;
        setBusy(false);
        ui.input.focus();
      }
    }
  }

  function markSent(item) {
    item.dataset.state = "sent";
    item.append(el("span", { class: "msg-note", "data-i18n": "sent", text: t("sent") }));
  }

  function newChat() {
    if (state.abort) state.abort.abort();
    state.abort = null;
    stopListening();
    state.handoff = null;
    state.statusItem = null;
    state.csatAsked = false;
    clearTimeout(state.idleTimer);
    forgetConversation();
    ui.log.replaceChildren();
    setBusy(false);
    showWelcome();
    ui.input.value = "";
    autosize();
    updateComposer();
    ui.input.focus();
  }

  async function loadHistory() {
    showWelcome();
    if (!state.conversationId) return;
    const id = state.conversationId;
    try {
      const response = await request(`/v1/conversations/${encodeURIComponent(id)}/messages`, {
        headers: { Accept: "application/json" },
      });
      const body = await response.json();
      for (const message of body.data || []) showHistoryMessage(message);
      await loadHandoff(id);
      listen(id);
      ui.logWrap.scrollTop = ui.logWrap.scrollHeight;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) forgetConversation();
      else if (err instanceof ApiError) showError(err.message);
    }
  }

  // ---------- wiring ----------

  ui.input.setAttribute("maxlength", String(config.maxChars));
  ui.form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault(); // Enter sends; Shift+Enter and IME composition keep their newline / candidate
    send();
  });
  ui.input.addEventListener("input", () => { autosize(); updateComposer(); });
  ui.newChat.addEventListener("click", newChat);
  ui.endChat.addEventListener("click", () => { if (!askCsat()) ui.input.focus(); });
  ui.langToggle.addEventListener("click", toggleLang);
  ui.log.addEventListener("click", openCitation);

  applyLang();
  updateComposer();
  loadHistory().finally(() => { document.body.dataset.ready = "true"; });
})();
