/* 工作人员控制台：人工队列（轮询刷新、接单、回复、结束服务）与少量表单辅助。
   No inline scripts (CSP script-src 'self'); all text goes through textContent. */
(function () {
  'use strict';

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute('content') : '';
  }

  function api(method, url, body) {
    var opts = { method: method, credentials: 'same-origin',
                 headers: { 'Accept': 'application/json', 'X-Requested-With': 'fetch' } };
    if (method !== 'GET') { opts.headers['X-CSRF-Token'] = csrf(); }
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 401) { window.location.href = '/login?next=' + encodeURIComponent(location.pathname); }
        return { status: r.status, data: data };
      });
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  /* ---------------------------------------------------------------- gaps page */
  document.addEventListener('change', function (ev) {
    var t = ev.target;
    if (t && t.hasAttribute && t.hasAttribute('data-select-group')) {
      var group = t.closest('details');
      group.querySelectorAll('input[name="turn"]').forEach(function (c) { c.checked = t.checked; });
    }
  });

  /* ---------------------------------------------------------------- queue page */
  var queue = document.getElementById('queue');
  if (!queue) { return; }
  var me = queue.getAttribute('data-me');
  var openTicket = null;
  var lastTickets = [];

  function showError(msg) {
    var e = document.getElementById('queue-error');
    e.textContent = msg || '';
    e.hidden = !msg;
  }

  function ticketCard(t, supervisor) {
    var card = el('div', 'ticket status-' + t.status);
    card.setAttribute('data-ticket', t.id);
    var head = el('div', 'ticket-head');
    head.appendChild(el('strong', null, '#' + t.id));
    head.appendChild(el('span', 'badge', t.reason_label));
    head.appendChild(el('span', 'age', (t.status === 'waiting' ? '已等待 ' : '创建于 ') + t.age));
    card.appendChild(head);
    card.appendChild(el('div', 'summary', t.summary));
    var meta = el('div', 'muted small', '渠道 ' + t.channel + (t.assignee ? ' · 处理人 ' + t.assignee : ''));
    card.appendChild(meta);
    if (t.status === 'callback') {
      card.appendChild(el('div', 'callback', '回电号码：' + (t.phone || '未留') + (t.callback_time ? ' · 希望时间：' + t.callback_time : '')));
    }
    var actions = el('div', 'ticket-actions');
    var link = el('a', 'small', '会话记录');
    link.href = '/conversation?sid=' + encodeURIComponent(t.sender_id);
    actions.appendChild(link);
    if (t.status === 'waiting') {
      var accept = el('button', 'primary', '接单');
      accept.setAttribute('data-action', 'accept');
      actions.appendChild(accept);
    }
    if (t.status === 'active' && (t.mine || supervisor)) {
      var open = el('button', 'primary', '打开对话');
      open.setAttribute('data-action', 'open');
      actions.appendChild(open);
    }
    if (t.status === 'callback' || (t.status === 'waiting' && supervisor)) {
      var close = el('button', null, t.status === 'callback' ? '已回电，关闭' : '关闭');
      close.setAttribute('data-action', 'close');
      actions.appendChild(close);
    }
    card.appendChild(actions);
    return card;
  }

  function render(data) {
    lastTickets = data.tickets || [];
    ['waiting', 'active', 'callback'].forEach(function (status) {
      var box = document.getElementById('q-' + status);
      var list = lastTickets.filter(function (t) { return t.status === status; });
      box.replaceChildren();
      if (!list.length) { box.appendChild(el('p', 'muted small', '无')); }
      list.forEach(function (t) { box.appendChild(ticketCard(t, data.supervisor)); });
      document.getElementById('count-' + status).textContent = list.length;
    });
    document.getElementById('queue-status').textContent = '更新于 ' + new Date().toLocaleTimeString('zh-CN');
  }

  function refresh() {
    return api('GET', '/api/queue').then(function (r) {
      if (r.status !== 200) { showError(r.data.error || ('加载失败（' + r.status + '）')); return; }
      showError('');
      render(r.data);
      if (openTicket) { loadTranscript(openTicket, false); }
    }).catch(function () { showError('无法连接控制台服务'); });
  }

  function loadTranscript(id, first) {
    return api('GET', '/api/queue/' + id + '/transcript' + (first ? '?open=1' : '')).then(function (r) {
      if (r.status !== 200) { showError(r.data.error || '无法读取会话'); return; }
      var t = r.data.ticket || {};
      document.getElementById('ticket-title').textContent = '工单 #' + t.id + '（' + (t.assignee || '') + '）';
      document.getElementById('ticket-summary').textContent = t.summary || '';
      var box = document.getElementById('ticket-transcript');
      box.replaceChildren();
      (r.data.events || []).forEach(function (e) {
        var who = e.from === 'citizen' ? '市民' : (e.from === 'staff' ? ('工作人员 ' + (e.staff || '')) : '机器人');
        var row = el('div', 'msg ' + e.from);
        var meta = el('div', 'meta');
        meta.appendChild(el('span', 'who', who));
        meta.appendChild(el('span', 'time', ' ' + (e.time_text || '')));
        row.appendChild(meta);
        row.appendChild(el('div', 'text', e.text));
        box.appendChild(row);
      });
      box.scrollTop = box.scrollHeight;
      var panel = document.getElementById('ticket-panel');
      panel.hidden = false;
      panel.setAttribute('data-ticket', id);
    });
  }

  queue.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button[data-action]');
    if (!btn) { return; }
    var id = btn.closest('[data-ticket]').getAttribute('data-ticket');
    var action = btn.getAttribute('data-action');
    if (action === 'open') { openTicket = id; loadTranscript(id, true); return; }
    if (action === 'close' && !window.confirm('确定关闭工单 #' + id + '？')) { return; }
    btn.disabled = true;
    api('POST', '/api/queue/' + id + '/' + action).then(function (r) {
      if (r.status >= 400) { showError(r.data.error || ('操作失败（' + r.status + '）')); }
      else if (action === 'accept') { openTicket = id; loadTranscript(id, true); }
      return refresh();
    });
  });

  document.getElementById('reply-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = document.getElementById('reply-text').value;
    if (!openTicket || !text.trim()) { return; }
    var status = document.getElementById('reply-status');
    status.textContent = '发送中…';
    api('POST', '/api/queue/' + openTicket + '/messages', { text: text }).then(function (r) {
      if (r.status >= 400) { status.textContent = r.data.error || ('发送失败（' + r.status + '）'); return; }
      document.getElementById('reply-text').value = '';
      status.textContent = r.data.delivered ? '已发送并送达市民' : ('已保存：' + (r.data.detail || '未能实时送达'));
      loadTranscript(openTicket, false);
    });
  });

  document.getElementById('close-ticket').addEventListener('click', function () {
    if (!openTicket || !window.confirm('确定结束工单 #' + openTicket + ' 的人工服务？机器人将接回对话。')) { return; }
    api('POST', '/api/queue/' + openTicket + '/close').then(function (r) {
      var status = document.getElementById('reply-status');
      if (r.status >= 400) { status.textContent = r.data.error || '关闭失败'; return; }
      status.textContent = '已结束服务';
      document.getElementById('ticket-panel').hidden = true;
      openTicket = null;
      refresh();
    });
  });

  document.getElementById('hide-ticket').addEventListener('click', function () {
    document.getElementById('ticket-panel').hidden = true;
    openTicket = null;
  });

  refresh();
  setInterval(refresh, 5000);
})();
