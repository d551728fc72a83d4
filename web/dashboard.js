// The local metrics dashboard: reads the stack's Prometheus text at /metrics
// every second or so and draws the metrics of the CloudWatch dashboard
// (infra/dashboard.js), by the same names, with uPlot (web/vendor/uplot/).
// Plain script, no build step. A metric the stack has not recorded yet is
// "no data yet", never an error.
//
// Query parameters (for tests and debugging):
//   ?interval=SECONDS   time between reads of /metrics (default 1, at least 0.2)
//   ?window=SECONDS     time span kept and drawn (default 300, at least 10)
(function () {
  'use strict';

  const METRICS_URL = 'metrics'; // relative: works at /dashboard and /dashboard.html
  const FETCH_TIMEOUT_MS = 5000;
  const CHART_HEIGHT = 190;
  // The `kind` label on the fan-out metrics, as in infra/dashboard.js.
  const FANOUT_KINDS = ['message', 'presence'];
  // The exporter keeps summaries over a rolling window of about a minute
  // (3 buckets of 20 s); with no sample in it, every quantile reads 0.
  const SUMMARY_WINDOW_SECS = 60;

  const params = new URLSearchParams(window.location.search);
  const INTERVAL_MS = Math.round(numberParam('interval', 1, 0.2) * 1000);
  const WINDOW_SECS = Math.round(numberParam('window', 300, 10));

  // ------------------------------------------------------------ the charts

  // A series reads one thing from each scrape:
  //   gauge     the sample's value
  //   rate      a counter's increase per second since the previous scrape
  //   quantile  one quantile of a summary (a histogram, as the exporter renders it)
  const gauge = (metric, label = metric) => ({ type: 'gauge', metric, labels: {}, label });
  const rate = (metric, labels = {}, label = metric) => ({ type: 'rate', metric, labels, label });
  const quantile = (metric, q, labels = {}, label = metric) =>
    ({ type: 'quantile', metric, q, labels, label });
  const percentileName = (q) => `p${Math.round(q * 100)}`;
  const perKind = (make) => FANOUT_KINDS.map(make);
  // p50 solid and p99 dashed, one colour per kind.
  const fanoutPercentiles = (metric) => FANOUT_KINDS.flatMap((kind, k) => [0.5, 0.99].map((q) => ({
    ...quantile(metric, q, { kind }, `${metric} ${kind} ${percentileName(q)}`),
    color: k,
    dashed: q !== 0.5,
  })));

  const PANELS = [
    {
      id: 'connections',
      title: 'Connections open',
      metrics: 'gauge connections_open (local only; on AWS, API Gateway ConnectCount)',
      unit: '',
      series: [gauge('connections_open')],
    },
    {
      id: 'sessions',
      title: 'Sessions: connects, refusals, disconnects and repairs per second',
      metrics:
        'counters connects, handshakes_refused, tokens_refused (sign-in, all reasons), rooms_refused (members-only rooms and bans), moderation_actions (remove, ban, delete), disconnects, sessions_repaired',
      unit: '/s',
      series: [
        rate('connects'),
        rate('handshakes_refused'),
        rate('tokens_refused'),
        rate('rooms_refused'),
        rate('moderation_actions'),
        rate('disconnects'),
        rate('sessions_repaired'),
      ],
    },
    {
      id: 'session-duration',
      title: 'Session duration (s)',
      metrics: 'summary session_duration, quantiles 0.5, 0.9, 0.99',
      unit: ' s',
      series: [0.5, 0.9, 0.99].map((q) => quantile('session_duration', q, {}, `session_duration ${percentileName(q)}`)),
    },
    {
      id: 'messages',
      title: 'Messages and presence frames per second',
      metrics: 'counters messages_sent, messages_rejected, presence_frames_sent',
      unit: '/s',
      series: [rate('messages_sent'), rate('messages_rejected'), rate('presence_frames_sent')],
    },
    {
      id: 'fanout-latency',
      title: 'Fan-out latency (ms)',
      metrics: 'summary fanout_latency{kind}, quantiles 0.5, 0.99',
      unit: ' ms',
      series: fanoutPercentiles('fanout_latency'),
    },
    {
      id: 'fanout-recipients',
      title: 'Fan-out recipients per fan-out',
      metrics: 'summary fanout_recipients{kind}, quantiles 0.5, 0.99',
      unit: '',
      series: fanoutPercentiles('fanout_recipients'),
    },
    {
      id: 'handoffs',
      title: 'Shards handed to fan-out workers per second',
      metrics: 'counter fanout_handoffs{kind}',
      unit: '/s',
      series: perKind((kind) => rate('fanout_handoffs', { kind }, `fanout_handoffs ${kind}`)),
    },
    {
      id: 'failures',
      title: 'Delivery problems per second',
      metrics: 'counters fanout_failures{kind}, fanout_throttled{kind}, fanout_handoff_failures{kind}, connections_pruned{kind}, stream_records_failed',
      unit: '/s',
      series: [
        ...perKind((kind) => rate('fanout_failures', { kind }, `fanout_failures ${kind}`)),
        ...perKind((kind) => rate('fanout_throttled', { kind }, `fanout_throttled ${kind}`)),
        ...perKind((kind) => rate('fanout_handoff_failures', { kind }, `fanout_handoff_failures ${kind}`)),
        ...perKind((kind) => rate('connections_pruned', { kind }, `connections_pruned ${kind}`)),
        rate('stream_records_failed'),
      ],
    },
    {
      id: 'stream-lag',
      title: 'Stream lag: iterator age (ms)',
      metrics: 'gauge stream_iterator_age (local only; on AWS, Lambda IteratorAge)',
      unit: ' ms',
      series: [gauge('stream_iterator_age')],
    },
  ];

  // ------------------------------------------------- Prometheus text format

  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  const LABEL = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/;

  /** Parses Prometheus text exposition into samples; skips lines it cannot read. */
  function parsePrometheus(text) {
    const samples = [];
    for (const raw of String(text).split('\n')) {
      const line = raw.trim();
      if (line === '' || line[0] === '#') continue;
      const sample = parseLine(line);
      if (sample) samples.push(sample);
    }
    return samples;
  }

  function parseLine(line) {
    const name = NAME.exec(line);
    if (!name) return null;
    let i = name[0].length;
    const labels = {};
    if (line[i] === '{') {
      i += 1;
      for (;;) {
        while (line[i] === ' ') i += 1;
        if (line[i] === '}') {
          i += 1;
          break;
        }
        const label = LABEL.exec(line.slice(i));
        if (!label) return null;
        i += label[0].length;
        let value = '';
        for (;;) {
          const c = line[i];
          if (c === undefined) return null;
          if (c === '"') {
            i += 1;
            break;
          }
          if (c === '\\') {
            const next = line[i + 1];
            if (next === undefined) return null;
            value += next === 'n' ? '\n' : next;
            i += 2;
          } else {
            value += c;
            i += 1;
          }
        }
        labels[label[1]] = value;
        while (line[i] === ' ') i += 1;
        if (line[i] === ',') {
          i += 1;
        } else if (line[i] === '}') {
          i += 1;
          break;
        } else {
          return null;
        }
      }
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = parseValue(rest[0]);
    if (value === undefined) return null;
    return { name: name[0], labels, value };
  }

  function parseValue(text) {
    if (text === 'NaN') return NaN;
    if (text === '+Inf' || text === 'Inf') return Infinity;
    if (text === '-Inf') return -Infinity;
    if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text || '')) return undefined;
    return Number(text);
  }

  /** Samples by metric name. */
  function index(samples) {
    const byName = new Map();
    for (const sample of samples) {
      if (!byName.has(sample.name)) byName.set(sample.name, []);
      byName.get(sample.name).push(sample);
    }
    return byName;
  }

  /** The samples of `name` whose labels include every one of `labels`. */
  function matching(byName, name, labels) {
    return (byName.get(name) || []).filter((sample) =>
      Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  }

  // ------------------------------------------------------------ the state

  const $ = (id) => document.getElementById(id);
  const root = $('dashboard');
  const times = []; // seconds since the epoch, one per scrape (or failed scrape)
  const panels = PANELS.map((definition) => ({
    ...definition,
    series: definition.series.map((series, i) => ({
      color: i,
      dashed: false,
      ...series,
      values: [], // aligned with `times`; null where there was nothing to draw
      seen: false, // has the metric ever been in /metrics?
      present: false, // is it in the latest scrape?
      previous: null, // rate: { total, at } from the previous scrape
      total: null, // rate: the counter's latest value
      lastIncrease: -Infinity, // quantile: when its _count last went up
      lastCount: null,
    })),
    chart: null,
    element: null,
    hoverIdx: null,
  }));
  let polls = 0;
  let errors = 0;

  // ---------------------------------------------------------- one scrape

  /** Reads one series' value from a scrape taken at `at` (seconds). */
  function read(series, byName, at) {
    if (series.type === 'gauge') {
      const found = matching(byName, series.metric, series.labels);
      series.present = found.length > 0;
      return series.present ? finite(found[0].value) : null;
    }

    if (series.type === 'rate') {
      const found = matching(byName, series.metric, series.labels);
      series.present = found.length > 0;
      const previous = series.previous;
      if (!series.present) {
        // Not recorded yet (or the stack restarted): it will count from zero.
        series.previous = { total: 0, at };
        series.total = null;
        return null;
      }
      const total = found.reduce((sum, sample) => sum + sample.value, 0);
      series.total = finite(total);
      series.previous = { total, at };
      if (!previous || !(at > previous.at) || !Number.isFinite(total)) return null;
      // A counter that went down was reset (a restarted stack): it counted from zero.
      const increase = total >= previous.total ? total - previous.total : total;
      return increase / (at - previous.at);
    }

    // A quantile of a summary.
    const all = matching(byName, series.metric, series.labels)
      .filter((sample) => sample.labels.quantile !== undefined);
    const found = all.filter((sample) => Number(sample.labels.quantile) === series.q);
    const count = matching(byName, `${series.metric}_count`, series.labels);
    series.present = found.length > 0 || count.length > 0;
    // Absent means nothing recorded yet: a count of zero.
    const total = count.length > 0 ? count[0].value : 0;
    if (series.lastCount !== null && total > series.lastCount) series.lastIncrease = at;
    series.lastCount = total;
    if (found.length === 0) return null;
    // An empty rolling window reads 0 for every quantile: draw a gap, not a 0,
    // unless samples did arrive within the window.
    const empty = all.every((sample) => sample.value === 0);
    if (empty && at - series.lastIncrease > SUMMARY_WINDOW_SECS) return null;
    return finite(found[0].value);
  }

  function record(text, at) {
    const byName = index(parsePrometheus(text));
    for (const panel of panels) {
      for (const series of panel.series) {
        const value = read(series, byName, at);
        series.values.push(value);
        if (series.present) series.seen = true;
      }
    }
  }

  /** A failed scrape: a gap in every line, and rates restart afterwards. */
  function recordGap() {
    for (const panel of panels) {
      for (const series of panel.series) {
        series.values.push(null);
        series.previous = null;
        series.present = false;
      }
    }
  }

  function trim(now) {
    let drop = 0;
    while (drop < times.length && times[drop] < now - WINDOW_SECS) drop += 1;
    if (drop === 0) return;
    times.splice(0, drop);
    for (const panel of panels) {
      for (const series of panel.series) series.values.splice(0, drop);
    }
  }

  async function scrape() {
    const abort = new AbortController();
    const timer = window.setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(METRICS_URL, {
        cache: 'no-store',
        signal: abort.signal,
        headers: { Accept: 'text/plain' },
      });
      const body = await response.text();
      if (!response.ok) {
        const why = body.trim().split('\n')[0].slice(0, 120);
        throw new Error(`HTTP ${response.status}${why ? ` (${why})` : ''}`);
      }
      return body;
    } catch (error) {
      if (error.name === 'AbortError') throw new Error(`no answer in ${FETCH_TIMEOUT_MS / 1000} s`);
      throw error;
    } finally {
      window.clearTimeout(timer);
    }
  }

  async function poll() {
    const started = Date.now();
    try {
      const text = await scrape();
      const at = Date.now() / 1000;
      times.push(at);
      record(text, at);
      polls += 1;
      status('live', `Live: updated ${clock(at)} UTC${charts ? '' : ' (values only: the chart library did not load)'}`);
    } catch (error) {
      const at = Date.now() / 1000;
      times.push(at);
      recordGap();
      errors += 1;
      status('error', `Cannot read /metrics: ${error.message || error}. Retrying…`);
    }
    trim(Date.now() / 1000);
    draw();
    root.dataset.polls = String(polls);
    root.dataset.errors = String(errors);
    window.setTimeout(poll, Math.max(0, INTERVAL_MS - (Date.now() - started)));
  }

  // ------------------------------------------------------------- drawing

  function draw() {
    for (const panel of panels) {
      const hasData = panel.series.some((series) => series.seen);
      let points = 0;
      for (const series of panel.series) {
        for (const value of series.values) if (value !== null) points += 1;
      }
      panel.element.dataset.state = hasData ? 'data' : 'no-data';
      panel.element.dataset.points = String(points);
      panel.element.querySelector('.no-data').hidden = hasData;
      if (panel.chart) panel.chart.setData([times, ...panel.series.map((series) => series.values)]);
      readout(panel);
    }
  }

  /** The values under the chart: the latest, or those under the cursor. */
  function readout(panel) {
    const idx = panel.hoverIdx;
    const last = times.length - 1;
    panel.series.forEach((series, i) => {
      const item = panel.readout[i];
      let text;
      if (!series.seen) {
        text = 'no data yet';
      } else {
        const at = idx === null ? last : idx;
        const value = at >= 0 ? series.values[at] : null;
        text = value === null || value === undefined ? '—' : `${format(value)}${panel.unit}`;
        if (series.type === 'rate' && idx === null && series.total !== null) {
          text += ` · ${format(series.total)} total`;
        }
      }
      if (item.value.textContent !== text) item.value.textContent = text;
      item.li.dataset.state = series.seen ? 'data' : 'no-data';
    });
  }

  function build() {
    const template = $('panel-template');
    const container = $('panels');
    for (const panel of panels) {
      const element = template.content.firstElementChild.cloneNode(true);
      element.id = `panel-${panel.id}`;
      element.dataset.panel = panel.id;
      const heading = element.querySelector('.card-title');
      heading.id = `panel-${panel.id}-title`;
      heading.textContent = panel.title;
      element.setAttribute('aria-labelledby', heading.id);
      element.querySelector('.card-metrics').textContent = panel.metrics;
      const list = element.querySelector('.readout');
      panel.readout = panel.series.map((series) => {
        const li = document.createElement('li');
        li.dataset.series = series.label;
        const swatch = document.createElement('span');
        swatch.className = `swatch c${series.color}${series.dashed ? ' dashed' : ''}`;
        swatch.setAttribute('aria-hidden', 'true');
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = series.label;
        const value = document.createElement('span');
        value.className = 'value';
        li.append(swatch, name, value);
        list.append(li);
        return { li, value };
      });
      panel.element = element;
      container.append(element);
    }
  }

  function palette() {
    const style = window.getComputedStyle(document.documentElement);
    const get = (name) => style.getPropertyValue(name).trim();
    return {
      text: get('--muted'),
      grid: get('--border'),
      series: Array.from({ length: 6 }, (_, i) => get(`--series-${i}`)),
    };
  }

  const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), 'Etc/UTC');

  function makeChart(panel, colours) {
    const box = panel.element.querySelector('.chart');
    const axis = {
      stroke: colours.text,
      grid: { stroke: colours.grid, width: 1 },
      ticks: { stroke: colours.grid, width: 1, size: 4 },
      font: '11px system-ui, sans-serif',
    };
    const options = {
      width: Math.max(200, box.clientWidth),
      height: CHART_HEIGHT,
      tzDate: utc,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: {
          time: true,
          // A fixed span ending at the latest read, so the charts scroll together.
          range: () => {
            const end = times.length > 0 ? times[times.length - 1] : Date.now() / 1000;
            return [end - WINDOW_SECS, end];
          },
        },
        y: {
          range: (u, min, max) => (max === null || !Number.isFinite(max) || max <= 0
            ? [0, 1]
            : uPlot.rangeNum(0, max, 0.1, true)),
        },
      },
      axes: [
        {
          ...axis,
          space: 64,
          // UTC, 24-hour: 09:35, or 09:35:10 when the ticks are closer than a minute.
          values: (u, splits, axisIdx, space, increment) =>
            splits.map((v) => clock(v).slice(0, increment >= 60 ? 5 : 8)),
        },
        { ...axis, size: 48, values: (u, splits) => splits.map((v) => format(v)) },
      ],
      series: [
        {},
        ...panel.series.map((series) => ({
          label: series.label,
          stroke: colours.series[series.color % colours.series.length],
          width: 1.5,
          dash: series.dashed ? [5, 4] : undefined,
          spanGaps: false,
        })),
      ],
      hooks: {
        setCursor: [(u) => {
          const idx = u.cursor.idx;
          panel.hoverIdx = idx === null || idx === undefined ? null : idx;
          readout(panel);
        }],
      },
    };
    panel.chart = new uPlot(options, [times, ...panel.series.map((series) => series.values)], box);
  }

  function makeCharts() {
    const colours = palette();
    for (const panel of panels) {
      if (panel.chart) panel.chart.destroy();
      makeChart(panel, colours);
    }
  }

  function watchSizes() {
    const resized = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const panel = panels.find((p) => p.element.querySelector('.chart') === entry.target);
        if (!panel || !panel.chart) continue;
        const width = Math.max(200, Math.floor(entry.contentRect.width));
        if (width !== panel.chart.width) panel.chart.setSize({ width, height: CHART_HEIGHT });
      }
    });
    for (const panel of panels) resized.observe(panel.element.querySelector('.chart'));
  }

  // ------------------------------------------------------------ helpers

  function status(state, text) {
    root.dataset.state = state;
    $('status-dot').className = `dot ${state === 'live' ? 'connected' : state}`;
    if ($('status').textContent !== text) $('status').textContent = text;
  }

  function finite(value) {
    return Number.isFinite(value) ? value : null;
  }

  /** Three significant digits, no exponent, no trailing zeros. */
  function format(value) {
    if (value === null || !Number.isFinite(value)) return '—';
    const abs = Math.abs(value);
    if (abs >= 1000) return String(Math.round(value));
    if (abs === 0) return '0';
    return String(Number(value.toPrecision(3)));
  }

  function clock(seconds) {
    return new Date(seconds * 1000).toISOString().slice(11, 19);
  }

  function numberParam(name, fallback, min) {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) && value >= min ? value : fallback;
  }

  function describeTimes() {
    $('interval').textContent = INTERVAL_MS === 1000 ? 'second' : `${INTERVAL_MS / 1000} s`;
    $('window').textContent = WINDOW_SECS % 60 === 0
      ? `${WINDOW_SECS / 60} minute${WINDOW_SECS === 60 ? '' : 's'}`
      : `${WINDOW_SECS} s`;
  }

  // -------------------------------------------------------------- start

  build();
  describeTimes();
  const charts = typeof window.uPlot === 'function';
  if (charts) {
    makeCharts();
    watchSizes();
    window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', makeCharts);
  }
  // For tests and the console: the charts and their data.
  window.chatDashboard = {
    parsePrometheus,
    panels: () => panels.map((panel) => ({
      id: panel.id,
      chartData: panel.chart ? panel.chart.data.map((column) => Array.from(column)) : null,
      series: panel.series.map((series) => ({ label: series.label, seen: series.seen, values: series.values.slice() })),
    })),
  };
  poll();
}());
