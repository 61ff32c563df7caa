// The run page: the runs list with a submit form at "/", one run at "/runs/<id>". Everything comes from the REST API
// with the token kept in this browser's localStorage; a run's page polls while the run is unfinished.
'use strict';
(() => {
  const TOKEN_KEY = 'slopeToken';
  const main = document.getElementById('main');
  const FINISHED = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
  // The eval stage's four results, in this order (README: what each one measures). The sparse model's loss is also
  // what training measured at the end of the sparse phase, so the catalogue holds it at two steps: shown once, at the
  // first (the step it was measured at).
  const FINAL_EVALS = ['val_loss_sparse', 'val_loss_adapters', 'val_loss_merged', 'val_loss_inference_form'];

  const h = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      // style through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'style') node.style.cssText = v;
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c !== undefined && c !== null) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  };
  const badge = status => h('span', {class: `badge s-${status}`, 'data-status': status}, status);
  const when = t => t ? new Date(t).toLocaleString() : '';
  const duration = s => s == null ? '–' : s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min`
      : `${(s / 3600).toFixed(1)} h`;

  async function api(path, options = {}) {
    const token = localStorage.getItem(TOKEN_KEY);
    const headers = Object.assign({Accept: 'application/json'}, options.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, Object.assign({}, options, {headers}));
    if (response.status === 204) return null;
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.problem = body;
      throw error;
    }
    return body;
  }

  function showError(error) {
    if (error.status === 401) {
      main.replaceChildren(h('p', {class: 'error', id: 'auth-error'},
          'This page needs an API token: paste one above (an operator makes it with `slope token create --user NAME`). ',
          error.message));
      return;
    }
    const problem = error.problem || {};
    main.replaceChildren(h('p', {class: 'error'}, error.message),
        ...(problem.errors || []).map(e => h('p', {class: 'error'}, `${e.field}: ${e.message}`)));
  }

  // ---- runs list and submit form ----
  async function listPage() {
    const params = new URLSearchParams(location.search);
    const status = params.get('status') || '';
    const query = new URLSearchParams({limit: '50'});
    if (status) query.set('status', status);
    if (params.get('cursor')) query.set('cursor', params.get('cursor'));
    const page = await api(`/api/v1/runs?${query}`);
    const filter = h('select', {id: 'status-filter', onchange: e => {
      const q = new URLSearchParams(); if (e.target.value) q.set('status', e.target.value);
      location.search = q.toString();
    }}, h('option', {value: ''}, 'every status'),
        ['QUEUED', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'CANCELLED'].map(s =>
            h('option', Object.assign({value: s}, s === status ? {selected: ''} : {}), s)));
    const rows = page.items.map(run => h('tr', {'data-run': run.id},
        h('td', {}, h('a', {href: run.links.page}, run.name)), h('td', {}, badge(run.status)),
        h('td', {}, run.stage || ''), h('td', {}, `${run.stepsDone} / ${run.totalSteps}`),
        h('td', {}, run.owner), h('td', {}, when(run.createdAt))));
    const next = page.nextCursor ? h('a', {href: `/?${new URLSearchParams(Object.assign(
        status ? {status} : {}, {cursor: page.nextCursor}))}`}, 'older runs →') : '';
    main.replaceChildren(
        h('h1', {}, 'Runs'), h('p', {}, 'Show ', filter),
        page.items.length === 0 ? h('p', {class: 'muted'}, 'No runs yet.') :
            h('table', {id: 'runs'}, h('tr', {}, ['run', 'status', 'stage', 'steps', 'owner', 'submitted']
                .map(t => h('th', {}, t))), rows),
        h('p', {}, next), submitForm());
  }

  function submitForm() {
    const spec = h('textarea', {id: 'spec', spellcheck: 'false'}, JSON.stringify({
      name: 'my-run', model: {preset: 'tiny'}, training: {steps: 100},
      data: {corpus: ['s3://…/corpora/<id from an upload>'], tokenizer: 'char'}}, null, 2));
    const file = h('input', {type: 'file', id: 'corpus-file'});
    const out = h('div', {id: 'submit-result'});
    const upload = async () => {
      if (!file.files.length) return;
      const f = file.files[0];
      const corpus = await api(`/api/v1/datasets?filename=${encodeURIComponent(f.name)}`,
          {method: 'POST', headers: {'Content-Type': 'application/octet-stream'}, body: f});
      out.replaceChildren(h('p', {}, `uploaded ${f.name}: `, h('code', {}, corpus.uri)));
      try {
        const parsed = JSON.parse(spec.value);
        parsed.data = Object.assign({}, parsed.data, {corpus: [corpus.uri]});
        spec.value = JSON.stringify(parsed, null, 2);
      } catch (e) { /* the user edits the spec by hand */ }
    };
    const submit = async e => {
      e.preventDefault();
      try {
        const run = await api('/api/v1/runs', {method: 'POST', headers: {'Content-Type': 'application/json'},
          body: spec.value});
        history.pushState({}, '', run.links.page);
        route();
      } catch (error) {
        const problem = error.problem || {};
        out.replaceChildren(h('p', {class: 'error'}, error.message),
            ...(problem.errors || []).map(x => h('p', {class: 'error field-error'}, `${x.field}: ${x.message}`)));
      }
    };
    return h('section', {}, h('h2', {}, 'Submit a run'),
        h('p', {}, 'Corpus file: ', file, ' ', h('button', {type: 'button', onclick: () => upload().catch(showError)},
            'upload')),
        h('form', {id: 'submit-form', onsubmit: submit}, spec, h('button', {type: 'submit', id: 'submit'}, 'submit')),
        out);
  }

  // ---- one run ----
  let pollTimer = null;

  async function runPage(id) {
    const state = {samples: [], evals: new Map(), lastStep: 0};
    main.replaceChildren(h('p', {class: 'muted'}, 'loading…'));
    const refresh = async () => {
      const [run, metrics] = await Promise.all([api(`/api/v1/runs/${id}`),
        api(`/api/v1/runs/${id}/metrics?afterStep=${state.lastStep}`)]);
      state.samples.push(...metrics.samples);
      // Evaluations come a page at a time from lastStep on (so those of lastStep can come again): keyed, in order.
      for (const e of metrics.evals) state.evals.set(`${String(e.step).padStart(10, '0')} ${e.name}`, e);
      metrics.evals = [...state.evals.keys()].sort().map(k => state.evals.get(k));
      if (metrics.samples.length) state.lastStep = metrics.samples[metrics.samples.length - 1].step;
      render(run, metrics, state);
      if (!FINISHED.includes(run.status)) pollTimer = setTimeout(() => refresh().catch(showError), 1000);
    };
    await refresh();
  }

  function render(run, metrics, state) {
    const pct = run.totalSteps ? Math.min(100, 100 * run.stepsDone / run.totalSteps) : 0;
    const action = (label, path) => h('button', {id: `action-${label}`, onclick: async () => {
      try { await api(`/api/v1/runs/${run.id}/${path}`, {method: 'POST'}); } catch (e) { alert(e.message); }
    }}, label);
    const actions = FINISHED.includes(run.status) ? [] : [
      run.status === 'PAUSED' ? action('resume', 'resume') : action('pause', 'pause'), ' ', action('cancel', 'cancel')];
    const loss = SlopeCharts.svg('loss-chart'), lr = SlopeCharts.svg('lr-chart');
    // metrics.evals comes ordered by step: find() takes each final result's first step.
    const finals = FINAL_EVALS.map(name => metrics.evals.find(e => e.name === name)).filter(e => e);
    const during = metrics.evals.filter(e => !FINAL_EVALS.includes(e.name));
    const temporal = run.temporalUiUrl ? h('a', {href: run.temporalUiUrl, id: 'temporal-link', target: '_blank'},
        `workflow ${run.workflowId} in the Temporal UI`) : h('span', {class: 'muted'}, `workflow ${run.workflowId}`);
    const artifacts = h('div', {id: 'artifacts'}, h('p', {class: 'muted'}, run.status === 'SUCCEEDED'
        ? 'loading…' : 'Exports appear here when the run has finished.'));
    main.replaceChildren(
        h('h1', {}, run.name, ' ', badge(run.status)),
        h('p', {class: 'muted'}, `run ${run.id} · owner ${run.owner} · submitted ${when(run.createdAt)} · `, temporal),
        run.error ? h('p', {class: 'error', id: 'run-error'}, run.error) : '',
        h('div', {class: 'timeline', id: 'timeline'}, run.stages.map(s =>
            h('div', {class: s.state, 'data-stage': s.stage, title: s.completedAt ? `done ${when(s.completedAt)}` : s.state},
                s.stage))),
        h('div', {class: 'progress'}, h('div', {style: `width:${pct}%`})),
        h('div', {class: 'facts'},
            h('div', {}, h('span', {}, 'step'), h('b', {id: 'steps'}, `${run.stepsDone} / ${run.totalSteps}`)),
            h('div', {}, h('span', {}, 'tokens/s'), run.tokensPerSecond == null ? '–' : Math.round(run.tokensPerSecond)),
            h('div', {}, h('span', {}, 'ETA (training)'), duration(run.etaSeconds)),
            h('div', {}, h('span', {}, 'last checkpoint'), run.lastCheckpoint ? `step ${run.lastCheckpoint.step}` : '–'),
            h('div', {}, h('span', {}, 'ranks'), h('b', {id: 'ranks'}, run.options ? run.options.ranks : '–')),
            h('div', {}, actions)),
        h('div', {class: 'charts'},
            h('div', {class: 'chart'}, h('b', {}, 'training loss'), loss),
            h('div', {class: 'chart'}, h('b', {}, 'learning rate'), lr)),
        h('h2', {}, 'Evaluations'),
        finals.length ? h('table', {id: 'evals'}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'step'),
            h('th', {}, 'value')), finals.map(e => h('tr', {'data-name': e.name}, h('td', {}, e.name),
            h('td', {}, e.step), h('td', {}, e.value.toFixed(4))))) : h('p', {class: 'muted'}, 'none yet'),
        h('h2', {}, 'Validation loss during training'),
        during.length ? h('table', {id: 'val-losses'}, h('tr', {}, h('th', {}, 'step'), h('th', {}, 'name'),
            h('th', {}, 'value')), during.map(e => h('tr', {}, h('td', {}, e.step), h('td', {}, e.name),
            h('td', {}, e.value.toFixed(4))))) : h('p', {class: 'muted'}, 'none yet'),
        h('h2', {}, 'Checkpoints'),
        run.checkpoints.length ? h('table', {id: 'checkpoints'}, h('tr', {}, ['step', 'key', 'val loss', 'MB', 'committed']
            .map(t => h('th', {}, t))), run.checkpoints.map(c => h('tr', {}, h('td', {}, c.step), h('td', {}, c.key),
            h('td', {}, c.valLoss == null ? '' : c.valLoss.toFixed(4)), h('td', {}, (c.bytes / 1e6).toFixed(2)),
            h('td', {}, when(c.committedAt))))) : h('p', {class: 'muted'}, 'none yet'),
        h('h2', {}, 'Artifacts'), artifacts,
        h('h2', {}, 'Events'),
        h('table', {id: 'events'}, run.events.map(e => h('tr', {}, h('td', {}, when(e.at)), h('td', {}, e.level),
            h('td', {}, e.stage || ''), h('td', {}, e.message)))));
    SlopeCharts.line(loss, state.samples.map(s => [s.step, s.loss]));
    SlopeCharts.line(lr, state.samples.map(s => [s.step, s.lr]), {color: '#f79009'});
    if (run.status === 'SUCCEEDED') {
      api(`/api/v1/runs/${run.id}/artifacts`).then(list => artifacts.replaceChildren(list.items.length
          ? h('table', {}, h('tr', {}, ['file', 'kind', 'bytes', 'sha256'].map(t => h('th', {}, t))),
              list.items.map(a => h('tr', {}, h('td', {}, h('a', {href: a.url}, a.path)), h('td', {}, a.kind),
                  h('td', {}, a.bytes), h('td', {}, h('code', {}, a.sha256.slice(0, 16) + '…')))))
          : h('p', {class: 'muted'}, 'no exported files'))).catch(showError);
    }
  }

  // ---- routing and the token ----
  function route() {
    clearTimeout(pollTimer);
    const match = location.pathname.match(/^\/runs\/([0-9a-f-]{36})$/);
    (match ? runPage(match[1]) : listPage()).catch(showError);
  }

  document.getElementById('token-form').addEventListener('submit', e => {
    e.preventDefault();
    const value = document.getElementById('token-input').value.trim();
    if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
    document.getElementById('token-input').value = '';
    route();
  });
  window.addEventListener('popstate', route);
  route();
})();
