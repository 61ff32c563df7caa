// Browser tests: Debian's headless Chromium driven by playwright-core, network off except loopback.
//  1. The run page: paste a token, upload a corpus and submit a tiny run from the form, watch the loss curve draw
//     while it trains and the run finish; screenshot.
//  2. The real Temporal UI (the dev server's): find the run's workflow by its search attributes; screenshot.
// Environment: SLOPE_API, SLOPE_TOKEN, SLOPE_TEMPORAL_UI, SLOPE_CORPUS_FILE, SLOPE_SCREENSHOTS (a folder).
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {mkdtempSync, mkdirSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const api = process.env.SLOPE_API;
const token = process.env.SLOPE_TOKEN;
const temporalUi = process.env.SLOPE_TEMPORAL_UI;
const corpusFile = process.env.SLOPE_CORPUS_FILE;
const screenshots = process.env.SLOPE_SCREENSHOTS;
for (const [name, value] of Object.entries({SLOPE_API: api, SLOPE_TOKEN: token, SLOPE_TEMPORAL_UI: temporalUi,
  SLOPE_CORPUS_FILE: corpusFile, SLOPE_SCREENSHOTS: screenshots})) {
  if (!value) throw new Error(`${name} is not set`);
}
mkdirSync(screenshots, {recursive: true});

let context;
let runId;
const blocked = [];

before(async () => {
  // A fresh profile each run (Playwright's way of passing --user-data-dir).
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'slope-chromium-')), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: {width: 1280, height: 1000},
  });
  // Network off except loopback: anything else is refused and remembered (the run page must ask for nothing
  // else; the Temporal UI asks for its newsfeed, which it does without).
  await context.route(url => !['127.0.0.1', 'localhost'].includes(new URL(url).hostname), route => {
    blocked.push(route.request().url());
    return route.abort();
  });
});

after(async () => {
  await context?.close();
});

test('submit a tiny run from the run page and watch it train to the end', {timeout: 300_000}, async () => {
  const page = await context.newPage();
  await page.goto(`${api}/`);
  // Without a token the page says what to do.
  await page.locator('#auth-error').waitFor();
  await page.fill('#token-input', token);
  await page.click('#token-form button');
  await page.locator('#submit-form').waitFor();

  await page.setInputFiles('#corpus-file', corpusFile);
  await page.click('text=upload');
  await page.locator('#submit-result code').waitFor();
  const spec = JSON.parse(await page.inputValue('#spec'));
  assert.match(spec.data.corpus[0], /^s3:\/\/slope\/corpora\/[0-9a-f]{64}$/);
  Object.assign(spec, {
    name: 'browser-run', model: {preset: 'tiny', layers: 2, dModel: 64, heads: 4, seqLen: 32},
    adapters: {start: 0.75}, training: {steps: 400, batchSize: 4, seed: 3},
    optimizer: {lr: 0.003, warmupSteps: 10}, eval: {every: 100, maxWindows: 8}, checkpointEvery: 100,
    backend: 'cpu', threads: 1,
  });
  spec.data.tokenizer = 'char';
  await page.fill('#spec', JSON.stringify(spec, null, 2));
  await page.click('#submit');
  await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
  runId = page.url().split('/').pop();

  // The loss curve draws while the run trains (several points before it is done), then the run finishes.
  // Drawn means on screen: the curve has a real size, not just an element.
  const drawn = id => {
    const line = document.querySelector(`#${id} polyline.series`);
    return line ? Math.round(line.getBoundingClientRect().width) : 0;
  };
  // The predicate is whole, not rebuilt from drawn's source: the page's Content-Security-Policy refuses eval.
  await page.waitForFunction(() => {
    const svg = document.querySelector('#loss-chart');
    const badge = document.querySelector('h1 .badge');
    const line = document.querySelector('#loss-chart polyline.series');
    return svg && Number(svg.dataset.points) >= 5 && badge && badge.dataset.status === 'RUNNING'
        && line && Math.round(line.getBoundingClientRect().width) > 100;
  }, null, {timeout: 120_000});
  await page.screenshot({path: join(screenshots, 'run-page-training.png'), fullPage: true});
  await page.waitForFunction(() => document.querySelector('h1 .badge')?.dataset.status === 'SUCCEEDED', null,
      {timeout: 240_000});
  await page.locator('#artifacts a').first().waitFor();
  const points = Number(await page.getAttribute('#loss-chart', 'data-points'));
  assert.equal(points, 400, 'one point per optimizer step');
  assert.equal(Number(await page.getAttribute('#lr-chart', 'data-points')), 400);
  assert.ok(await page.evaluate(drawn, 'loss-chart') > 300, 'the loss curve spans the chart');
  assert.ok(await page.evaluate(drawn, 'lr-chart') > 300, 'the learning-rate curve spans the chart');
  const stages = await page.$$eval('#timeline div', divs => divs.map(d => d.className));
  assert.deepEqual(new Set(stages), new Set(['done']));
  // The eval stage's four results, each once (val_loss_sparse is stored at two steps: the end of the sparse phase
  // and the eval stage's), and the validation losses measured during training apart from them.
  const finals = ['val_loss_sparse', 'val_loss_adapters', 'val_loss_merged', 'val_loss_inference_form'];
  assert.deepEqual(await page.$$eval('#evals tr[data-name]', rows => rows.map(r => r.dataset.name)), finals,
      'each evaluation once, in order');
  assert.deepEqual(await page.$$eval('#evals td:first-child', cells => cells.map(c => c.textContent)), finals);
  const during = await page.$$eval('#val-losses tr td:nth-child(2)', cells => cells.map(c => c.textContent));
  assert.ok(during.length >= 2, `validation losses during training are shown: ${during}`);
  assert.ok(during.every(name => !finals.includes(name)), `no final evaluation among them: ${during}`);
  const pageText = await page.locator('#main').innerText();
  assert.equal(pageText.split('val_loss_sparse').length - 1, 1, 'val_loss_sparse appears once on the page');
  assert.equal(await page.textContent('#ranks'), '1', 'the run\'s ranks are shown');
  assert.ok(await page.locator('#checkpoints tr').count() > 1, 'checkpoints are shown');
  const temporalLink = await page.getAttribute('#temporal-link', 'href');
  assert.equal(temporalLink, `${temporalUi}/namespaces/default/workflows/run-${runId}`);
  await page.screenshot({path: join(screenshots, 'run-page-succeeded.png'), fullPage: true});
  assert.deepEqual(blocked, [], 'the run page loads everything from the API itself');
});

test('the Temporal UI finds the run by its search attributes', {timeout: 120_000}, async () => {
  assert.ok(runId, 'the first test submitted a run');
  const page = await context.newPage();
  const query = `SlopeRunId="${runId}" AND SlopeStatus="SUCCEEDED" AND SlopeStage="finalize"`;
  await page.goto(`${temporalUi}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
  const link = page.locator(`a[href*="run-${runId}"]`).first();
  await link.waitFor({timeout: 60_000});
  await page.screenshot({path: join(screenshots, 'temporal-ui-search.png'), fullPage: true});
  // A query for another run finds nothing: the filter is real.
  await page.goto(`${temporalUi}/namespaces/default/workflows?query=${encodeURIComponent(
      'SlopeRunId="00000000-0000-0000-0000-000000000000"')}`);
  await page.waitForTimeout(3000);
  assert.equal(await page.locator(`a[href*="run-${runId}"]`).count(), 0);
  // The run's own page in the UI, as the run page links it.
  await page.goto(`${temporalUi}/namespaces/default/workflows/run-${runId}`);
  await page.getByText('SlopeRunWorkflow').first().waitFor({timeout: 60_000});
});
