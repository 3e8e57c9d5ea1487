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

  // The throughput chart: received solid, sent dashed, open streams dotted
  // on their own scale, so it reads without colour; the text says the same.
  function drawTraffic(tr) {
    var chart = document.getElementById('traffic-chart');
    if (!chart || !tr || !tr.down) return;
    var n = tr.down.length, peak = 1, maxStreams = 1, sumUp = 0, sumDown = 0, i;
    for (i = 0; i < n; i++) {
      peak = Math.max(peak, tr.down[i], tr.up[i]);
      maxStreams = Math.max(maxStreams, tr.streams[i]);
      sumUp += tr.up[i];
      sumDown += tr.down[i];
    }
    function line(id, values, top) {
      var pts = [], x, y;
      for (i = 0; i < n; i++) {
        x = 40 + (n > 1 ? i * 560 / (n - 1) : 0);
        y = 150 - values[i] / top * 140;
        pts.push(x.toFixed(1) + ',' + y.toFixed(1));
      }
      document.getElementById(id).setAttribute('points', pts.join(' '));
    }
    line('traffic-down', tr.down, peak);
    line('traffic-up', tr.up, peak);
    line('traffic-streams', tr.streams, maxStreams);
    chart.setAttribute('data-end', String(tr.endUnix));
    chart.setAttribute('data-sum-down', String(sumDown));
    chart.setAttribute('data-sum-up', String(sumUp));
    chart.setAttribute('data-peak', String(peak));
    setField('trafficPeak', fmtBytes(peak) + '/s');
    var lastUp = 0, lastDown = 0, from = Math.max(0, n - 60);
    for (i = from; i < n; i++) { lastUp += tr.up[i]; lastDown += tr.down[i]; }
    setField('trafficText', sumUp + sumDown === 0
      ? 'No traffic in the last 15 minutes; ' + tr.streams[n - 1] + ' streams open.'
      : 'Last minute: received ' + fmtBytes(Math.round(lastDown / (n - from))) +
        '/s, sent ' + fmtBytes(Math.round(lastUp / (n - from))) + '/s on average. ' +
        'Last 15 minutes: received ' + fmtBytes(sumDown) + ', sent ' + fmtBytes(sumUp) +
        ', peak ' + fmtBytes(peak) + '/s, at most ' + maxStreams + ' streams open; ' +
        tr.streams[n - 1] + ' open now.');
  }

  function cell(tr, tag, text, code) {
    var td = document.createElement(tag), inner = td;
    if (tag === 'th') td.setAttribute('scope', 'row');
    if (code) { inner = document.createElement('code'); td.appendChild(inner); }
    inner.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function fillTable(id, rows, build) {
    var table = document.getElementById(id);
    if (!table) return;
    var body = document.createElement('tbody');
    (rows || []).forEach(function (r) {
      var tr = document.createElement('tr');
      build(tr, r);
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
  }

  function drawDestinations(s) {
    var refused = s.refused || [];
    fillTable('refused', refused, function (tr, r) {
      cell(tr, 'th', r.host + ':' + r.port, true);
      cell(tr, 'td', r.reasonText).setAttribute('data-reason', r.reason);
      cell(tr, 'td', String(r.count));
      if (r.allowCommand) cell(tr, 'td', r.allowCommand, true).firstChild.className = 'allow-cmd';
      else cell(tr, 'td', 'not an allowlist matter');
    });
    var t = document.getElementById('refused'), none = document.getElementById('refused-none');
    if (t) t.hidden = refused.length === 0;
    if (none) none.hidden = refused.length !== 0;
    fillTable('destinations', s.destinations, function (tr, d) {
      cell(tr, 'th', d.host + ':' + d.port, true);
      cell(tr, 'td', String(d.opens));
      cell(tr, 'td', String(d.refused));
      cell(tr, 'td', fmtBytes(d.bytesUp));
      cell(tr, 'td', fmtBytes(d.bytesDown));
      cell(tr, 'td', d.lastSeen || '');
    });
    setField('destCount', String((s.destinations || []).length));
  }

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
    drawTraffic(s.traffic);
    drawDestinations(s);
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
  poll();
})();
