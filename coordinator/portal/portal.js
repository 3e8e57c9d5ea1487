// egress portal: copy buttons and the live status of the lease page.
// Values are only ever set with textContent, never parsed as HTML.
'use strict';
(function () {
  var POLL_MS = 2000;

  function fmtBytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], u = 0, v = n;
    while (v >= 1024 && u < 4) { v /= 1024; u++; }
    return u === 0 ? n + ' B' : v.toFixed(1) + ' ' + units[u];
  }

  function setField(name, text) {
    var el = document.querySelector('[data-field="' + name + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  }

  function setConn(name, on, since) {
    var dot = document.querySelector('[data-dot="' + name + '"]');
    if (dot) dot.classList.toggle('on', on);
    setField(name, on ? 'connected' : 'disconnected');
    setField(name + 'Since', since ? 'since ' + since : '');
  }

  function copyFallback(el) {
    var range = document.createRange(), sel = window.getSelection(), ok = false;
    range.selectNodeContents(el);
    sel.removeAllRanges();
    sel.addRange(range);
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    return ok;
  }

  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.addEventListener('click', function () {
      var src = document.getElementById(button.getAttribute('data-copy'));
      var done = function (ok) {
        button.textContent = ok ? 'Copied' : 'Select and copy';
        window.setTimeout(function () { button.textContent = 'Copy'; }, 3000);
      };
      if (!src) return;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(src.textContent).then(
          function () { done(true); }, function () { done(copyFallback(src)); });
      } else {
        done(copyFallback(src));
      }
    });
  });

  var live = document.getElementById('live');
  if (!live) return;
  var url = live.getAttribute('data-status-url');

  function apply(doc) {
    var s = doc.session;
    if (!s) {
      setField('state', 'no session');
      setConn('host', false, null);
      setConn('client', false, null);
      return;
    }
    setField('state', s.state);
    setConn('host', !!s.hostConnected, s.hostSince);
    setConn('client', !!s.clientConnected, s.clientSince);
    setField('streams', String(s.streams));
    setField('bytesUp', fmtBytes(s.bytesUp));
    setField('bytesDown', fmtBytes(s.bytesDown));
    setField('createdAt', s.createdAt);
    setField('updatedAt', s.updatedAt);
  }

  function poll() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store',
                 headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        if (r.status === 401) { window.location.assign('/portal/login'); return null; }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (doc) {
        if (!doc) return;
        apply(doc);
        setField('checked', 'Live: updated ' + new Date().toLocaleTimeString() + '.');
        window.setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        setField('checked', 'Cannot reach the coordinator; retrying.');
        window.setTimeout(poll, POLL_MS * 2);
      });
  }
  window.setTimeout(poll, POLL_MS);
})();
