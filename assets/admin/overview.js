/**
 * The /admin overview page's charts (served by src/api/routes/admin-overview.routes.ts): loads the
 * series of the window from /admin/overview/series, draws them with uPlot, then merges the newest
 * buckets that /admin/overview/stream sends every few seconds. Plain browser JavaScript, no build.
 */
/* global uPlot, document, window, EventSource, fetch */
(function () {
  'use strict';
  const root = document.getElementById('overview');
  const status = document.getElementById('status');
  const query = `window=${encodeURIComponent(root.dataset.window)}&step_s=${encodeURIComponent(root.dataset.step)}`;
  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];
  const pct = (a) => a.map((v) => (v === null ? null : Math.round(v * 10000) / 100));
  const perQueue = (s, key) => s.queues.map((q) => [q.queue, q[key]]);

  /** Each chart: its title, unit, and its lines ([label, values aligned with t]) from a series. */
  const CHARTS = [
    { id: 'rps', title: 'Requests/s', unit: 'req/s', lines: (s) => [['requests/s', s.http.rps]] },
    {
      id: 'latency',
      title: 'Latency',
      unit: 'ms',
      lines: (s) => [
        ['P50', s.http.p50_ms],
        ['P90', s.http.p90_ms],
        ['P99', s.http.p99_ms],
      ],
    },
    { id: 'errors', title: 'Error rate (5xx)', unit: '%', lines: (s) => [['5xx', pct(s.http.error_rate)]] },
    {
      id: 'throughput',
      title: 'Finished attempts/s per queue',
      unit: '/s',
      lines: (s) => perQueue(s, 'throughput_per_s'),
    },
    {
      id: 'failures',
      title: 'Failures/s per queue',
      unit: '/s',
      lines: (s) => perQueue(s, 'failures_per_s'),
    },
    { id: 'depth', title: 'Waiting jobs per queue', unit: 'jobs', lines: (s) => perQueue(s, 'waiting') },
    {
      id: 'oldest',
      title: 'Oldest wait per queue',
      unit: 's',
      lines: (s) => perQueue(s, 'oldest_waiting_s'),
    },
    { id: 'cache', title: 'Cache hit rate', unit: '%', lines: (s) => [['hit rate', pct(s.cache.hit_rate)]] },
    {
      id: 'cost',
      title: 'AI spend per provider',
      unit: 'USD',
      lines: (s) => s.ai_cost.map((p) => [p.provider, p.usd]),
    },
  ];

  /** What the page shows, readable from the console (and by the browser test). */
  const state = { series: null, updates: 0, charts: {} };
  window.overview = state;

  function box(chart) {
    let el = document.getElementById(`chart-${chart.id}`);
    if (!el) {
      el = document.createElement('section');
      el.className = 'chart';
      el.id = `chart-${chart.id}`;
      const h = document.createElement('h2');
      h.textContent = chart.title;
      const now = document.createElement('span');
      now.className = 'now';
      h.appendChild(now);
      el.appendChild(h);
      const plot = document.createElement('div');
      plot.className = 'plot';
      el.appendChild(plot);
      root.appendChild(el);
    }
    return el;
  }

  const latest = (values) => {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  };

  function draw() {
    const s = state.series;
    for (const chart of CHARTS) {
      const el = box(chart);
      const lines = chart.lines(s);
      const data = [s.t, ...lines.map((l) => l[1])];
      const labels = lines.map((l) => l[0]).join('\u0000');
      const now = lines.map((l) => `${l[0]} ${latest(l[1]) ?? '–'}`).join(' · ');
      el.querySelector('.now').textContent = lines.length ? `now: ${now} ${chart.unit}` : 'no data yet';
      const current = state.charts[chart.id];
      if (current && current.labels === labels) {
        current.plot.setData(data);
        continue;
      }
      if (current) current.plot.destroy();
      const plotEl = el.querySelector('.plot');
      const opts = {
        width: Math.max(300, plotEl.clientWidth || 460),
        height: 200,
        series: [{}, ...lines.map((l, i) => ({ label: l[0], stroke: COLORS[i % COLORS.length], width: 2 }))],
        axes: [{}, { label: chart.unit, size: 60 }],
        scales: { x: { time: true } },
      };
      state.charts[chart.id] = { labels, plot: new uPlot(opts, data, plotEl) };
    }
    state.updates += 1;
    document.body.dataset.updates = String(state.updates);
    status.textContent = `Updated ${new Date().toLocaleTimeString()} · buckets of ${s.step_s} s · live`;
  }

  /** Every array of a series that runs along t, with what an empty bucket holds. */
  function columns(s) {
    const out = [];
    for (const k of ['rps']) out.push([s.http[k], 0]);
    for (const k of ['error_rate', 'p50_ms', 'p90_ms', 'p99_ms']) out.push([s.http[k], null]);
    for (const q of s.queues) {
      out.push([q.throughput_per_s, 0], [q.failures_per_s, 0], [q.waiting, null], [q.oldest_waiting_s, null]);
    }
    out.push([s.cache.hit_rate, null]);
    for (const p of s.ai_cost) out.push([p.usd, 0]);
    return out;
  }

  /** Puts the newest buckets into the drawn series: replaces buckets it has, appends newer ones. */
  function merge(full, recent) {
    const n = full.t.length;
    for (let j = 0; j < recent.t.length; j++) {
      const t = recent.t[j];
      let i = full.t.indexOf(t);
      if (i < 0) {
        if (t < full.t[n - 1]) continue;
        full.t.push(t);
        full.t.shift();
        for (const [arr, empty] of columns(full)) {
          arr.push(empty);
          arr.shift();
        }
        i = n - 1;
      }
      for (const k of ['rps', 'error_rate', 'p50_ms', 'p90_ms', 'p99_ms'])
        full.http[k][i] = recent.http[k][j];
      for (const rq of recent.queues) {
        let q = full.queues.find((x) => x.queue === rq.queue);
        if (!q) {
          q = {
            queue: rq.queue,
            throughput_per_s: new Array(n).fill(0),
            failures_per_s: new Array(n).fill(0),
            waiting: new Array(n).fill(null),
            oldest_waiting_s: new Array(n).fill(null),
          };
          full.queues.push(q);
        }
        for (const k of ['throughput_per_s', 'failures_per_s', 'waiting', 'oldest_waiting_s'])
          q[k][i] = rq[k][j];
      }
      full.cache.hit_rate[i] = recent.cache.hit_rate[j];
      for (const rp of recent.ai_cost)
        if (!full.ai_cost.some((p) => p.provider === rp.provider))
          full.ai_cost.push({ provider: rp.provider, usd: new Array(n).fill(0) });
      for (const p of full.ai_cost) {
        const rp = recent.ai_cost.find((x) => x.provider === p.provider);
        p.usd[i] = rp ? rp.usd[j] : 0;
      }
    }
  }

  function listen() {
    const events = new EventSource(`/admin/overview/stream?${query}`);
    events.addEventListener('series', (e) => {
      merge(state.series, JSON.parse(e.data));
      draw();
    });
    events.addEventListener('error', () => {
      status.textContent = 'Live updates interrupted; reconnecting…';
    });
  }

  fetch(`/admin/overview/series?${query}`, { headers: { accept: 'application/json' } })
    .then((res) => {
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return res.json();
    })
    .then((series) => {
      state.series = series;
      draw();
      listen();
    })
    .catch((err) => {
      status.textContent = `Could not load the figures: ${err.message}`;
    });
})();
