/*!
 * 政务咨询助手 — 网页聊天组件（无构建步骤，纯 JavaScript）
 *
 * 嵌入方法（门户网站页面中粘贴两行）：
 *   <link rel="stylesheet" href="https://机器人服务器/webhooks/widget/static/widget.css">
 *   <script src="https://机器人服务器/webhooks/widget/static/widget.js" defer></script>
 *
 * 可选的 script 属性：
 *   data-server       机器人服务器地址（默认：本脚本所在的源）
 *   data-socket-path  socket.io 路径（默认 /socket.io）
 *   data-max-length   输入字数上限（默认 300）
 *   data-open="true"  页面打开时自动展开对话窗口
 *   data-title        窗口标题
 *
 * 安全：所有来自机器人、市民和工作人员的文字都通过 textContent 显示，从不作为 HTML 解析。
 */
(function () {
  'use strict';

  if (window.zwzxWidget) { return; }

  var script = document.currentScript || (function () {
    var all = document.getElementsByTagName('script');
    for (var i = all.length - 1; i >= 0; i--) {
      if (/widget\.js(\?|$)/.test(all[i].src)) { return all[i]; }
    }
    return null;
  })();
  var scriptUrl = new URL(script && script.src ? script.src : location.href, location.href);
  var attr = function (name, dflt) {
    var v = script && script.getAttribute(name);
    return v === null || v === undefined || v === '' ? dflt : v;
  };
  var SERVER = attr('data-server', scriptUrl.origin).replace(/\/+$/, '');
  var BASE = SERVER + '/webhooks/widget';
  var SOCKET_PATH = attr('data-socket-path', '/socket.io');
  var MAX_LEN = Math.max(10, parseInt(attr('data-max-length', '300'), 10) || 300);
  var AUTO_OPEN = attr('data-open', 'false') === 'true';
  var TITLE = attr('data-title', '宁乡市政务咨询助手');
  var SESSION_KEY = 'zwzx-widget-session';
  var TOKEN_KEY = 'zwzx-widget-token';  // the server's signed session token (HMAC of the session id)
  var OPEN_KEY = 'zwzx-widget-open';
  var TYPING_TIMEOUT_MS = 30000;
  var FEEDBACK_KINDS = { answer: 1, clarify: 1, fallback: 1, out_of_scope: 1 };
  var EXAMPLES = ['财政预决算会公开吗？', '“一件事一次办”由哪个部门牵头？', '市发改局负责哪些工作？'];
  var WELCOME = '您好！我是宁乡市政务咨询助手，可以为您解答《宁乡市2021年政务公开工作要点》等政务公开政策问题，' +
    '并注明答复所依据的条目。您可以点击下面的示例问题，或直接输入您的问题。需要人工服务时，请点击右上角“转人工”。';

  // ------------------------------------------------------------------ helpers
  function el(tag, props, children) {
    var node = document.createElement(tag);
    props = props || {};
    Object.keys(props).forEach(function (k) {
      var v = props[k];
      if (v === undefined || v === null || v === false) { return; }
      if (k === 'text') { node.textContent = String(v); }
      else if (k === 'className') { node.className = v; }
      else if (k.slice(0, 2) === 'on' && typeof v === 'function') { node.addEventListener(k.slice(2), v); }
      else { node.setAttribute(k, v === true ? '' : String(v)); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }

  function storageGet(store, key) {
    try { return window[store].getItem(key); } catch (e) { return null; }
  }
  function storageSet(store, key, value) {
    try { window[store].setItem(key, value); } catch (e) { /* private mode */ }
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function formatTime(ts) {
    var d = ts ? new Date(ts * 1000) : new Date();
    var now = new Date();
    var hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
    if (d.toDateString() === now.toDateString()) { return hm; }
    return (d.getMonth() + 1) + '月' + d.getDate() + '日 ' + hm;
  }
  function fullTime(ts) {
    var d = ts ? new Date(ts * 1000) : new Date();
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function getJSON(url) {
    return fetch(url, { credentials: 'omit', headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) { throw new Error(body && body.error ? body.error : '请求失败（' + r.status + '）'); }
        return body;
      });
    });
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = src;
      s.async = true;
      s.onload = resolve;
      s.onerror = function () { reject(new Error('无法加载 ' + src)); };
      document.head.appendChild(s);
    });
  }

  function ensureCss() {
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    for (var i = 0; i < links.length; i++) {
      if (/widget\.css(\?|$)/.test(links[i].href)) { return; }
    }
    document.head.appendChild(el('link', { rel: 'stylesheet', href: BASE + '/static/widget.css' }));
  }

  // ------------------------------------------------------------------ state
  var sessionId = storageGet('localStorage', SESSION_KEY);
  if (sessionId && !/^[A-Za-z0-9_-]{8,64}$/.test(sessionId)) { sessionId = null; }
  var sessionToken = storageGet('localStorage', TOKEN_KEY);
  if (sessionToken && !/^[A-Za-z0-9_-]{16,128}$/.test(sessionToken)) { sessionToken = null; }
  function historyUrl() {
    return BASE + '/history/' + encodeURIComponent(sessionId) + '?token=' + encodeURIComponent(sessionToken || '');
  }
  var socket = null;
  var everConnected = false;
  var dropped = false;
  // The message sent last whose turn_done has not come yet. Every message carries an id of its
  // own; after a reconnect (e.g. the server holding the socket died mid-turn) it is sent again
  // with the same id, and the server answers it once (bot/ops/idempotency.py).
  var pending = null;
  var pendingResent = false;

  function newMessageId() {
    var hex = '';
    try {
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      for (var i = 0; i < bytes.length; i++) { hex += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16); }
      return hex;
    } catch (e) {
      for (var j = 0; j < 32; j++) { hex += Math.floor(Math.random() * 16).toString(16); }
      return hex;
    }
  }
  var typingTimer = null;
  var currentBotTurn = null;   // the bot block that receives the rest of this turn
  var lastFeedbackBar = null;
  var lastFocusBeforeDialog = null;

  // ------------------------------------------------------------------ DOM
  var ids = { panel: 'zw-panel', title: 'zw-title', input: 'zw-input', counter: 'zw-counter', log: 'zw-log' };

  var launcher = el('button', {
    type: 'button', className: 'zw-launcher', 'aria-expanded': 'false', 'aria-controls': ids.panel,
    onclick: function () { openPanel(true); }
  }, [el('span', { className: 'zw-launcher-icon', 'aria-hidden': 'true', text: '💬' }), '政务咨询']);

  var humanBtn = el('button', {
    type: 'button', className: 'zw-human', title: '转接12345热线人工客服',
    onclick: function () { send('/request_human', '转人工'); }
  }, ['转人工']);
  var closeBtn = el('button', {
    type: 'button', className: 'zw-close', 'aria-label': '收起对话窗口', title: '收起',
    onclick: function () { closePanel(); }
  }, ['×']);
  var header = el('div', { className: 'zw-header' }, [
    el('div', { className: 'zw-heading' }, [
      el('h2', { id: ids.title, className: 'zw-title', text: TITLE }),
      el('p', { className: 'zw-subtitle', text: '智能助手 · 依据市政府公开文件答复' })
    ]),
    humanBtn, closeBtn
  ]);

  var statusText = el('span', { className: 'zw-status-text' });
  var reconnectBtn = el('button', {
    type: 'button', className: 'zw-reconnect', onclick: function () { reconnect(); }
  }, ['重新连接']);
  var statusBar = el('div', { className: 'zw-status', role: 'alert', hidden: true }, [statusText, reconnectBtn]);

  var log = el('div', {
    id: ids.log, className: 'zw-log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
    'aria-label': '对话记录', tabindex: '0'
  });
  var typing = el('div', { className: 'zw-typing', hidden: true, 'aria-hidden': 'true' }, [
    el('span', { className: 'zw-dot' }), el('span', { className: 'zw-dot' }), el('span', { className: 'zw-dot' }),
    el('span', { className: 'zw-typing-text', text: '智能助手正在输入…' })
  ]);

  var input = el('textarea', {
    id: ids.input, className: 'zw-input', rows: '2', maxlength: String(MAX_LEN),
    placeholder: '请输入您的问题，按 Enter 发送，Shift+Enter 换行', 'aria-describedby': ids.counter + ' zw-privacy'
  });
  var counter = el('span', { id: ids.counter, className: 'zw-counter', text: '0/' + MAX_LEN, 'aria-label': '已输入字数' });
  var sendBtn = el('button', { type: 'submit', className: 'zw-send' }, ['发送']);
  var form = el('form', { className: 'zw-form', onsubmit: function (e) { e.preventDefault(); submitInput(); } }, [
    el('label', { className: 'zw-sr-only', for: ids.input, text: '输入您的问题' }),
    input,
    el('div', { className: 'zw-form-row' }, [
      el('span', { id: 'zw-privacy', className: 'zw-privacy', text: '请勿输入身份证号、银行卡号等个人敏感信息' }),
      counter, sendBtn
    ])
  ]);

  var panel = el('section', {
    id: ids.panel, className: 'zw-panel', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': ids.title,
    hidden: true
  }, [header, statusBar, log, typing, form]);

  // Item detail dialog (opened from a citation chip)
  var dialogTitle = el('h3', { id: 'zw-dialog-title', className: 'zw-dialog-title' });
  var dialogBody = el('div', { className: 'zw-dialog-body', tabindex: '0', 'aria-label': '条目全文' });
  var dialogClose = el('button', { type: 'button', className: 'zw-dialog-close', onclick: function () { closeDialog(); } }, ['关闭']);
  var dialog = el('div', {
    className: 'zw-dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'zw-dialog-title', hidden: true
  }, [el('div', { className: 'zw-dialog-box' }, [dialogTitle, dialogBody, el('div', { className: 'zw-dialog-actions' }, [dialogClose])])]);
  panel.appendChild(dialog);

  var root = el('div', { id: 'zwzx-widget', className: 'zw-root', lang: 'zh-CN' }, [launcher, panel]);

  // ------------------------------------------------------------------ panel
  function openPanel(focusInput) {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute('aria-expanded', 'true');
    root.classList.add('zw-open');
    storageSet('localStorage', OPEN_KEY, '1');
    scrollToEnd();
    if (focusInput) { input.focus(); }
  }
  function closePanel() {
    closeDialog();
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute('aria-expanded', 'false');
    root.classList.remove('zw-open');
    storageSet('localStorage', OPEN_KEY, '0');
    launcher.focus();
  }

  function scrollToEnd() { log.scrollTop = log.scrollHeight; }

  // ------------------------------------------------------------------ messages
  var LABELS = { user: '我', bot: '智能助手', staff: '工作人员', system: '系统提示' };

  function block(role, ts, senderName) {
    var sender = LABELS[role];
    if (role === 'staff' && senderName && senderName !== LABELS.staff) { sender = LABELS.staff + ' ' + senderName; }
    var node = el('div', { className: 'zw-msg zw-msg--' + role }, [
      el('div', { className: 'zw-meta' }, [
        el('span', { className: 'zw-sender', text: sender }),
        el('time', { className: 'zw-time', datetime: new Date((ts || Date.now() / 1000) * 1000).toISOString(),
          title: fullTime(ts), text: formatTime(ts) })
      ])
    ]);
    log.appendChild(node);
    return node;
  }

  function bubble(parent, text) {
    var b = el('div', { className: 'zw-bubble', text: text });
    parent.appendChild(b);
    return b;
  }

  function addUser(text, ts) {
    currentBotTurn = null;
    var node = block('user', ts);
    bubble(node, text);
    scrollToEnd();
    return node;
  }

  function addStaff(text, name, ts) {
    currentBotTurn = null;
    var node = block('staff', ts, name);
    bubble(node, text);
    scrollToEnd();
    return node;
  }

  function addSystem(text) {
    var node = el('div', { className: 'zw-msg zw-msg--system' }, [el('div', { className: 'zw-bubble', text: text })]);
    log.appendChild(node);
    scrollToEnd();
    return node;
  }

  function quickReplies(parent, buttons, label) {
    var group = el('div', { className: 'zw-replies', role: 'group', 'aria-label': label || '可选回复' });
    buttons.forEach(function (b) {
      group.appendChild(el('button', {
        type: 'button', className: 'zw-reply', text: b.title,
        onclick: function () { send(b.payload || b.title, b.title); }
      }));
    });
    parent.appendChild(group);
  }

  function citationLabel(c) {
    if (c.label) { return c.label; }
    return c.item ? '第' + c.item + '项 ' + (c.title || '') : '《' + (c.doc_title || c.title || '') + '》';
  }

  function unitsLine(c, departments) {
    var lead = c && Array.isArray(c.lead_units) ? c.lead_units : null;
    var resp = c && Array.isArray(c.responsible_units) ? c.responsible_units : null;
    var depts = Array.isArray(departments) ? departments : [];
    // the item's own units, when the card's departments are that item's (not e.g. a department's list)
    var own = (lead || []).concat(resp || []).filter(function (d, i, a) { return a.indexOf(d) === i; });
    if ((lead || resp) && own.slice().sort().join('|') === depts.slice().sort().join('|')) {
      var parts = [];
      if (lead && lead.length) { parts.push('牵头：' + lead.join('、')); }
      if (resp && resp.length) { parts.push('责任：' + resp.join('、')); }
      if (parts.length) { return parts.join('；'); }
    }
    return depts.length ? '相关部门：' + depts.join('、') : '';
  }

  function renderCard(parent, card) {
    var cites = Array.isArray(card.citations) ? card.citations : [];
    if (cites.length) {
      var row = el('div', { className: 'zw-cites' }, [el('span', { className: 'zw-cites-label', text: '依据：' })]);
      cites.forEach(function (c) {
        row.appendChild(el('button', {
          type: 'button', className: 'zw-chip', text: citationLabel(c),
          title: (c.doc_title ? '《' + c.doc_title + '》' : '') + ' 点击查看全文',
          onclick: function (e) { openCitation(c, e.currentTarget); }
        }));
      });
      parent.appendChild(row);
    }
    // the card is the one place an answer names its units (the widget gets no source texts)
    var units = card.kind === 'answer' ? unitsLine(cites[0], card.departments) : '';
    // "由哪个部门负责？": the answer sentence itself names every unit, so no second units line
    var said = Array.prototype.map.call(parent.querySelectorAll('.zw-bubble'), function (b) { return b.textContent; }).join('\n');
    var depts = Array.isArray(card.departments) ? card.departments : [];
    if (depts.length && depts.every(function (d) { return said.indexOf(d) !== -1; })) { units = ''; }
    if (units) { parent.appendChild(el('p', { className: 'zw-depts', text: units })); }
    if (card.kind === 'handoff') {
      var t = card.ticket;
      var tid = t && typeof t === 'object' ? (t.id || t.number) : t;
      parent.appendChild(el('p', { className: 'zw-notice', text: tid ?
        '已为您创建人工服务工单（编号 ' + tid + '），工作人员接入后将在此回复您。' :
        '已提交人工服务请求，工作人员接入后将在此回复您。' }));
    }
    if (FEEDBACK_KINDS[card.kind]) {
      lastFeedbackBar = feedbackBar(parent);
    }
  }

  function feedbackBar(parent) {
    var thanks = el('span', { className: 'zw-fb-thanks', hidden: true, text: '感谢您的反馈' });
    var bar = el('div', { className: 'zw-feedback', role: 'group', 'aria-label': '这个回答有帮助吗？' }, [
      el('span', { className: 'zw-fb-q', text: '有帮助吗？' })
    ]);
    var up = el('button', { type: 'button', className: 'zw-fb zw-fb-up', 'aria-label': '有帮助', title: '有帮助', 'aria-pressed': 'false', text: '👍' });
    var down = el('button', { type: 'button', className: 'zw-fb zw-fb-down', 'aria-label': '没有帮助', title: '没有帮助', 'aria-pressed': 'false', text: '👎' });
    function choose(value, fromHistory) {
      (value === 'up' ? up : down).setAttribute('aria-pressed', 'true');
      up.disabled = true; down.disabled = true;
      thanks.hidden = false;
      bar.setAttribute('data-feedback', value);
      if (!fromHistory) {
        send('/feedback{"feedback": "' + value + '"}', value === 'up' ? '👍' : '👎', { hidden: true });
      }
    }
    up.addEventListener('click', function () { choose('up'); });
    down.addEventListener('click', function () { choose('down'); });
    bar.appendChild(up); bar.appendChild(down); bar.appendChild(thanks);
    bar._choose = choose;
    parent.appendChild(bar);
    return bar;
  }

  function addBot(msg) {
    if (!msg || typeof msg !== 'object') { return; }
    var hasText = typeof msg.text === 'string' && msg.text !== '';
    if (!currentBotTurn) { currentBotTurn = block('bot', msg.timestamp); }
    if (hasText) { bubble(currentBotTurn, msg.text); }
    var buttons = Array.isArray(msg.quick_replies) ? msg.quick_replies : (Array.isArray(msg.buttons) ? msg.buttons : []);
    if (buttons.length) { quickReplies(currentBotTurn, buttons); }
    if (msg.custom && typeof msg.custom === 'object') { renderCard(currentBotTurn, msg.custom); }
    scrollToEnd();
  }

  function welcome() {
    var node = block('bot');
    node.classList.add('zw-welcome');
    bubble(node, WELCOME);
    quickReplies(node, EXAMPLES.map(function (q) { return { title: q, payload: q }; }), '示例问题');
    currentBotTurn = null;
  }

  // ------------------------------------------------------------------ typing
  function showTyping() {
    typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_TIMEOUT_MS);
    scrollToEnd();
  }
  function hideTyping() {
    typing.hidden = true;
    clearTimeout(typingTimer);
  }

  // ------------------------------------------------------------------ dialog
  function openCitation(c, opener) {
    lastFocusBeforeDialog = opener || null;
    dialogTitle.textContent = citationLabel(c);
    dialogBody.textContent = '';
    dialogBody.appendChild(el('p', { className: 'zw-loading', text: '正在加载…' }));
    dialog.hidden = false;
    dialogClose.focus();
    var url = c.item ? BASE + '/item/' + encodeURIComponent(c.doc) + '/' + encodeURIComponent(c.item)
      : BASE + '/doc/' + encodeURIComponent(c.doc);
    getJSON(url).then(function (d) {
      dialogBody.textContent = '';
      if (c.item) {
        dialogTitle.textContent = d.label || citationLabel(c);
        dialogBody.appendChild(el('p', { className: 'zw-dialog-doc', text: '出自《' + d.doc_title + '》' + (d.doc_number ? '（' + d.doc_number + '）' : '') }));
        dialogBody.appendChild(el('p', { className: 'zw-dialog-text', text: d.body }));
        var dl = el('dl', { className: 'zw-dialog-units' });
        dl.appendChild(el('dt', { text: '牵头单位' }));
        dl.appendChild(el('dd', { text: d.lead_units && d.lead_units.length ? d.lead_units.join('、') : '未指定' }));
        dl.appendChild(el('dt', { text: '责任单位' }));
        dl.appendChild(el('dd', { text: d.responsible_units && d.responsible_units.length ? d.responsible_units.join('、') : '未列明' }));
        dialogBody.appendChild(dl);
      } else {
        dialogTitle.textContent = '《' + d.title + '》';
        var info = [];
        if (d.doc_number) { info.push('文号：' + d.doc_number); }
        if (d.issuer) { info.push('发文单位：' + d.issuer); }
        if (d.date) { info.push('印发日期：' + d.date); }
        info.push('共 ' + d.items + ' 项工作要点');
        info.forEach(function (line) { dialogBody.appendChild(el('p', { text: line })); });
      }
    }).catch(function (err) {
      dialogBody.textContent = '';
      dialogBody.appendChild(el('p', { className: 'zw-error', text: '无法加载条目内容：' + err.message }));
    });
  }
  function closeDialog() {
    if (dialog.hidden) { return; }
    dialog.hidden = true;
    if (lastFocusBeforeDialog && document.body.contains(lastFocusBeforeDialog)) { lastFocusBeforeDialog.focus(); }
    else { input.focus(); }
  }

  // ------------------------------------------------------------------ sending
  function send(message, display, opts) {
    opts = opts || {};
    message = String(message || '').trim();
    if (!message) { return false; }
    if (message.length > MAX_LEN && message.charAt(0) !== '/') {
      addSystem('您的消息超过了' + MAX_LEN + '字的长度限制，请精简后重新发送。');
      return false;
    }
    var metadata = {};
    if (display && display !== message) { metadata.display = display; }
    if (opts.hidden) { metadata.hidden = true; }
    if (!socket) { addSystem('正在连接咨询服务，请稍候再试。'); return false; }
    if (!opts.hidden) { addUser(display || message); }
    if (!socket.connected) { addSystem('当前连接已断开，消息将在重新连接后发送。'); }
    pending = { message: message, session_id: sessionId, session_token: sessionToken, metadata: metadata,
      message_id: newMessageId() };
    pendingResent = false;
    socket.emit('user_uttered', pending);
    showTyping();
    return true;
  }

  function submitInput() {
    var text = input.value.trim();
    if (!text) { input.focus(); return; }
    if (send(text)) {
      input.value = '';
      updateCounter();
    }
    input.focus();
  }

  function updateCounter() {
    var n = input.value.length;
    counter.textContent = n + '/' + MAX_LEN;
    counter.classList.toggle('zw-counter--full', n >= MAX_LEN);
    counter.classList.toggle('zw-counter--near', n >= MAX_LEN * 0.9 && n < MAX_LEN);
  }

  // ------------------------------------------------------------------ history
  function renderHistory(turns) {
    log.textContent = '';
    currentBotTurn = null;
    lastFeedbackBar = null;
    welcome();
    (turns || []).forEach(function (t) {
      if (t.role === 'user') { addUser(t.text, t.timestamp); }
      else if (t.role === 'staff') { addStaff(t.text, t.staff, t.timestamp); }
      else if (t.role === 'bot') { addBot(t); }
      else if (t.role === 'feedback' && lastFeedbackBar && (t.value === 'up' || t.value === 'down')) {
        lastFeedbackBar._choose(t.value, true);
      }
    });
    currentBotTurn = null;
    scrollToEnd();
  }

  function loadHistory() {
    if (!sessionId || !sessionToken) { renderHistory([]); return Promise.resolve(); }
    return getJSON(historyUrl()).then(function (body) {
      renderHistory(body.turns || []);
    }).catch(function () {
      renderHistory([]);
      addSystem('暂时无法读取之前的对话记录。');
    });
  }

  // ------------------------------------------------------------------ connection
  function showStatus(text, withButton) {
    statusText.textContent = text;
    reconnectBtn.hidden = !withButton;
    statusBar.hidden = false;
    statusBar.classList.remove('zw-status--ok');
  }
  function hideStatus() { statusBar.hidden = true; }

  function reconnect() {
    if (!socket) { return; }
    showStatus('正在重新连接…', false);
    socket.connect();
  }

  function connect() {
    socket = window.io(SERVER, { path: SOCKET_PATH, reconnectionDelayMax: 5000, withCredentials: false });
    root.setAttribute('data-state', 'connecting');
    socket.on('connect', function () {
      socket.emit('session_request', { session_id: sessionId, session_token: sessionToken });
      root.setAttribute('data-state', 'connected');
      if (dropped) {
        dropped = false;
        statusText.textContent = '已重新连接。';
        reconnectBtn.hidden = true;
        statusBar.classList.add('zw-status--ok');
        setTimeout(function () { if (socket.connected) { hideStatus(); } }, 2500);
        if (pending) {
          // the last message got no turn_done: send it again (same id: answered once); its
          // turn_done redraws the conversation from the history
          pendingResent = true;
          socket.emit('user_uttered', pending);
          showTyping();
        } else {
          // catch up on anything said while the connection was down
          loadHistory();
        }
      } else {
        hideStatus();
      }
      everConnected = true;
    });
    socket.on('session_token', function (s) {
      // issued with every session_confirm: the session id and its token, kept for reloads
      if (!s || typeof s.session_id !== 'string' || typeof s.token !== 'string') { return; }
      sessionId = s.session_id;
      sessionToken = s.token;
      storageSet('localStorage', SESSION_KEY, sessionId);
      storageSet('localStorage', TOKEN_KEY, sessionToken);
    });
    socket.on('session_confirm', function (id) {
      if (typeof id === 'string' && id !== sessionId) {
        sessionId = id;
        storageSet('localStorage', SESSION_KEY, id);
      }
    });
    socket.on('disconnect', function () {
      dropped = true;
      hideTyping();
      root.setAttribute('data-state', 'disconnected');
      showStatus('与咨询服务的连接已断开，正在尝试重新连接…', true);
    });
    socket.on('connect_error', function () {
      dropped = dropped || everConnected;
      root.setAttribute('data-state', 'disconnected');
      showStatus(everConnected ? '与咨询服务的连接已断开，正在尝试重新连接…' : '暂时无法连接咨询服务，正在重试…', true);
    });
    socket.on('bot_uttered', function (raw) {
      // Rasa's message keys at the top, the rest (timestamp, from, staff, push) under metadata
      if (!raw || typeof raw !== 'object') { return; }
      var meta = raw.metadata && typeof raw.metadata === 'object' ? raw.metadata : {};
      var msg = { text: raw.text, quick_replies: raw.quick_replies, buttons: raw.buttons, custom: raw.custom,
        timestamp: meta.timestamp, from: meta.from, staff: meta.staff, push: meta.push };
      if (msg.from === 'staff') {
        addStaff(String(msg.text || ''), msg.staff, msg.timestamp);
      } else if (msg.push) {
        // a notice pushed outside a turn (e.g. staff closed the ticket): the stored message may
        // carry buttons, so redraw from the history; show the text alone if that fails
        getJSON(historyUrl()).then(function (body) {
          renderHistory(body.turns || []);
        }).catch(function () { currentBotTurn = null; addBot({ text: msg.text, timestamp: msg.timestamp }); currentBotTurn = null; });
      } else {
        addBot(msg);
      }
    });
    socket.on('turn_done', function (d) {
      hideTyping();
      currentBotTurn = null;
      var id = d && typeof d === 'object' ? d.message_id : null;
      if (pending && (!id || id === pending.message_id)) {
        var resent = pendingResent || (d && d.replayed);
        pending = null;
        pendingResent = false;
        if (resent) { loadHistory(); }
      }
    });
    socket.on('widget_error', function (e) {
      hideTyping();
      addSystem(e && e.text ? String(e.text) : '消息发送失败，请稍后再试。');
    });
  }

  // ------------------------------------------------------------------ keyboard
  input.addEventListener('input', updateCounter);
  input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitInput();
    }
  });
  panel.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') {
      e.preventDefault();
      if (!dialog.hidden) { closeDialog(); } else { closePanel(); }
    } else if (e.key === 'Tab' && !dialog.hidden) {
      // keep focus inside the item dialog while it is open (its text, then 关闭)
      e.preventDefault();
      (document.activeElement === dialogClose ? dialogBody : dialogClose).focus();
    }
  });

  // ------------------------------------------------------------------ start
  function start() {
    ensureCss();
    document.body.appendChild(root);
    renderHistory([]);
    if (AUTO_OPEN || storageGet('localStorage', OPEN_KEY) === '1') { openPanel(false); }
    var ready = window.io ? Promise.resolve() : loadScript(BASE + '/static/vendor/socket.io.min.js');
    Promise.all([ready, loadHistory()]).then(function () { connect(); }).catch(function () {
      showStatus('无法加载咨询组件，请刷新页面重试。', false);
    });
  }

  window.zwzxWidget = {
    open: function () { openPanel(true); },
    close: closePanel,
    send: function (text) { return send(text); },
    get socket() { return socket; },
    get sessionId() { return sessionId; }
  };

  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', start); }
  else { start(); }
})();
