// Starts rasa-webchat the way its README shows for a <script> tag, against ?server=…
(function () {
  var server = new URLSearchParams(window.location.search).get('server') || window.location.origin;
  window.webchatEvents = [];
  function record(name) { return function (data) { window.webchatEvents.push([name, data]); }; }
  window.WebChat.default({
    socketUrl: server,
    socketPath: '/socket.io/',
    title: '政务咨询助手',
    inputTextFieldHint: '请输入您的问题',
    customData: { language: 'zh' },
    params: { storage: 'session' },
    onSocketEvent: {
      bot_uttered: record('bot_uttered'),
      turn_done: record('turn_done'),
      widget_error: record('widget_error')
    }
  }, null);
})();
