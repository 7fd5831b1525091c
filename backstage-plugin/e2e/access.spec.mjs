// The Backstage plugin in a real browser (issue 17): headless Debian Chromium, driven by
// playwright-core, against the plugin's dev app, the real control plane, Envoy with the meshgate
// filter and the fake Backstage auth backend. Run by scripts/plugin-e2e.sh, which starts all of
// them on 127.0.0.1 and passes where they are in the environment:
//
//   E2E_APP_URL          the dev app (http://127.0.0.1:PORT)
//   E2E_EDGE_URL         Envoy's listener (http://127.0.0.1:10000)
//   E2E_CAROL_TOKEN      carol's Backstage user token (ci-admins; does not own etl_daily)
//   E2E_ALICE_TOKEN      alice's Backstage user token (data-eng, which owns etl_daily)
//   E2E_EXPIRED_TOKEN    a token the control plane's providers trust, expired
//   E2E_AUDIT_FILE       the control plane's audit trail
//   E2E_MESHGATE         target/release/meshgate
//   E2E_CP_PID           the control plane's process id (killed for the fault case)
//   E2E_SCREENSHOTS      where backstage-access-*.png go (docs/images)
//   E2E_CHROMIUM         the browser (/usr/bin/chromium)
//
// Every step asserts what it expects and stops the run on the first failure (exit status 1).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`access.spec: ${name} is not set (run scripts/plugin-e2e.sh)\n`);
    process.exit(2);
  }
  return value;
}

const APP = need('E2E_APP_URL');
const EDGE = need('E2E_EDGE_URL');
const CAROL = need('E2E_CAROL_TOKEN');
const ALICE = need('E2E_ALICE_TOKEN');
const EXPIRED = need('E2E_EXPIRED_TOKEN');
const AUDIT_FILE = need('E2E_AUDIT_FILE');
const MESHGATE = need('E2E_MESHGATE');
const CP_PID = Number(need('E2E_CP_PID'));
const SHOTS = need('E2E_SCREENSHOTS');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';

const DAG = 'airflow.dag/etl_daily';
const REASON = 'Backfill for incident INC-4711: rerun the failed daily load';
/** How long one UI expectation may take (the dev app polls every 3 s). */
const UI_TIMEOUT_MS = 15_000;

const started = Date.now();
const timings = [];

async function step(name, body) {
  const t0 = Date.now();
  process.stdout.write(`access.spec: ${name} ...\n`);
  await body();
  const ms = Date.now() - t0;
  timings.push([name, ms]);
  process.stdout.write(`access.spec:   ok (${(ms / 1000).toFixed(1)} s)\n`);
}

/** A browser of its own for one user: a fresh profile directory, the flags Debian's Chromium needs headless. */
async function browserFor(user) {
  const profile = mkdtempSync(path.join(tmpdir(), `meshgate-e2e-${user}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  return {
    context,
    page: context.pages()[0] ?? (await context.newPage()),
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens PATH of the dev app signed in with TOKEN (the dev sign-in page's "Token" provider). */
async function openSignedIn(page, appPath, token) {
  // A fresh sign-in each time: the sign-in page remembers its provider in localStorage.
  if (page.url().startsWith(APP)) await page.evaluate(() => window.localStorage.clear());
  await page.goto(`${APP}${appPath}?meshgate_token=${encodeURIComponent(token)}`);
  // The dev app's sign-in page lists its providers; the Token provider reads the URL's token.
  const signIn = page.getByRole('button', { name: /sign in/i }).first();
  await signIn.waitFor();
  await signIn.click();
}

async function shot(page, name) {
  const file = path.join(SHOTS, `backstage-access-${name}.png`);
  await page.screenshot({ path: file });
  process.stdout.write(`access.spec:   screenshot ${file}\n`);
}

/**
 * carol's trigger of etl_daily through Envoy, as Backstage's proxy would forward her token; with
 * curl, because Node's fetch will not send a Host header of our choosing.
 */
function triggerStatusCurl(token) {
  const out = execFileSync(
    'curl',
    [
      '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '-X', 'POST',
      '-H', 'Host: airflow.internal',
      '-H', `Authorization: Bearer ${token}`,
      '-H', 'Content-Type: application/json',
      '-d', '{"conf": {}}',
      `${EDGE}/api/v1/dags/etl_daily/dagRuns`,
    ],
    { encoding: 'utf8' },
  );
  return Number(out.trim());
}

let carol;
let alice;
let requestId;

async function main() {
  carol = await browserFor('carol');
  alice = await browserFor('alice');
  const cp = carol.page;
  const ap = alice.page;
  const verdict = cp.getByTestId(`access-verdict-${DAG}`);

  await step('1. carol opens etl_daily: denied, and why', async () => {
    await openSignedIn(cp, '/etl_daily', CAROL);
    await verdict.waitFor();
    assert.equal(await verdict.getAttribute('data-allowed'), 'false');
    const why = await verdict.innerText();
    assert.match(why, /Denied/);
    assert.match(why, /data-eng/, `the reason names the owning group: ${why}`);
    const owners = await cp.getByTestId('access-owners').innerText();
    assert.match(owners, /data-eng/);
    process.stdout.write(`access.spec:   card says: ${why.replace(/\s+/g, ' ')}\n`);
    await shot(cp, 'denied');
  });

  await step('2. carol requests 15 minutes with a reason: pending', async () => {
    await cp.getByRole('button', { name: 'Request access to airflow.dag etl_daily' }).click();
    const duration = cp.getByTestId('request-duration');
    await duration.fill('15m');
    await cp.getByTestId('request-reason').fill(REASON);
    await cp.getByTestId('request-submit').click();
    const state = cp.getByTestId('request-state');
    await state.waitFor();
    assert.equal(await state.getAttribute('data-state'), 'pending');
    const text = await cp.getByRole('dialog').innerText();
    const found = /Request\s+(\S+)\s+for/.exec(text);
    assert.ok(found, `the dialog names the request: ${text}`);
    requestId = found[1];
    process.stdout.write(`access.spec:   request ${requestId} is pending\n`);
    await shot(cp, 'request-pending');
  });

  await step('3. carol triggers etl_daily through Envoy before approval: 403', async () => {
    assert.equal(triggerStatusCurl(CAROL), 403);
  });

  await step('4. alice approves carol\'s request on the Access requests page', async () => {
    await openSignedIn(ap, '/access-requests', ALICE);
    const row = ap.getByTestId(`pending-row-${requestId}`);
    await row.waitFor();
    const rowText = await row.innerText();
    assert.match(rowText, /carol/);
    assert.match(rowText, /INC-4711/, `the row shows carol's reason: ${rowText}`);
    await shot(ap, 'requests');
    await ap.getByRole('button', { name: `Approve ${requestId}` }).click();
    await ap.getByTestId('action-comment').fill('OK for the backfill, 15 minutes');
    await shot(ap, 'approve');
    await ap.getByTestId('action-confirm').click();
    await ap.getByTestId(`pending-row-${requestId}`).waitFor({ state: 'detached' });
    const notice = await ap.getByTestId('access-notice').innerText();
    process.stdout.write(`access.spec:   page says: ${notice}\n`);
  });

  await step('5. carol\'s trigger goes to 200; her page shows the grant', async () => {
    const t0 = Date.now();
    let status = 0;
    while (Date.now() - t0 < 20_000) {
      status = triggerStatusCurl(CAROL);
      if (status === 200) break;
      assert.equal(status, 403, `only 403 or 200 are expected while the grant reaches the edge, got ${status}`);
      await new Promise(resolve => setTimeout(resolve, 250));
    }
    assert.equal(status, 200, 'carol may trigger etl_daily within 20 s of the approval');
    process.stdout.write(`access.spec:   403 -> 200 took ${((Date.now() - t0) / 1000).toFixed(1)} s after the approval\n`);
    // The dialog follows the request (every 3 s) to "approved".
    const state = cp.getByTestId('request-state');
    await cp.waitForFunction(
      () => document.querySelector('[data-testid="request-state"]')?.getAttribute('data-state') === 'approved',
      undefined,
      { timeout: UI_TIMEOUT_MS },
    );
    assert.match(await state.innerText(), /Approved/);
    await cp.getByRole('button', { name: 'Close' }).click();
    await cp.waitForFunction(
      dag => document.querySelector(`[data-testid="access-verdict-${dag}"]`)?.getAttribute('data-allowed') === 'true',
      DAG,
      { timeout: UI_TIMEOUT_MS },
    );
    const grantRow = cp.locator('[data-testid^="access-grant-"]').first();
    await grantRow.waitFor();
    const grantText = await grantRow.innerText();
    assert.match(grantText, /carol/);
    assert.match(grantText, /\d+\s*min|\d+m/, `the grant shows the time left: ${grantText}`);
    process.stdout.write(`access.spec:   grant: ${grantText.replace(/\s+/g, ' ')}\n`);
    await shot(cp, 'granted');
  });

  await step('6. the audit trail verifies', async () => {
    const out = execFileSync(MESHGATE, ['audit', 'verify', AUDIT_FILE], { encoding: 'utf8' });
    process.stdout.write(`access.spec:   ${out.trim()}\n`);
  });

  await step('fault: an expired token -> "sign in again"', async () => {
    await openSignedIn(cp, '/etl_daily', EXPIRED);
    const error = cp.getByTestId('meshgate-error-unauthenticated');
    await error.waitFor();
    const text = await error.innerText();
    assert.match(text, /Sign in to Backstage again/);
    assert.match(text, /token_expired/, `the control plane refused the token as expired: ${text}`);
    await shot(cp, 'expired');
  });

  await step('fault: the control plane stopped -> "not reachable", no endless spinner', async () => {
    process.kill(CP_PID, 'SIGKILL');
    await openSignedIn(ap, '/etl_daily', ALICE);
    const t0 = Date.now();
    const error = ap.getByTestId('meshgate-error-unavailable');
    await error.waitFor({ timeout: 15_000 });
    assert.match(await error.innerText(), /not reachable/);
    assert.equal(await ap.getByRole('progressbar').count(), 0, 'no spinner left');
    process.stdout.write(`access.spec:   "unavailable" shown ${((Date.now() - t0) / 1000).toFixed(1)} s after loading\n`);
    await shot(ap, 'unavailable');
  });
}

let failed = false;
try {
  await main();
} catch (error) {
  failed = true;
  process.stderr.write(`access.spec: FAILED: ${error.stack || error}\n`);
  for (const [who, holder] of [['carol', carol], ['alice', alice]]) {
    if (!holder) continue;
    const file = path.join(tmpdir(), `meshgate-e2e-failure-${who}.png`);
    await holder.page.screenshot({ path: file }).catch(() => undefined);
    process.stderr.write(`access.spec: ${who}'s page at the failure: ${file}\n`);
  }
} finally {
  await carol?.close().catch(() => undefined);
  await alice?.close().catch(() => undefined);
}

process.stdout.write('access.spec: step timings\n');
for (const [name, ms] of timings) {
  process.stdout.write(`  ${(ms / 1000).toFixed(1).padStart(6)} s  ${name}\n`);
}
process.stdout.write(`access.spec: ${((Date.now() - started) / 1000).toFixed(1)} s in all\n`);
process.exit(failed ? 1 : 0);
