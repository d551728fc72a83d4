// The stage's route throttling (API Gateway's per-route token buckets,
// across every connection), checked when the stack is packaged and set on
// the stage by serverless.yml (`resources.extensions`,
// WebsocketsDeploymentStage; docs/deploy.md, "Throttling"):
//
//   --param="routeRateLimit=1000"  --param="routeBurstLimit=2000"     every route
//   --param="historyRateLimit=200" --param="historyBurstLimit=400"    `history`
//
// `$connect` gets handlers::limits::CONNECT_ROUTE_THROTTLE, read from there
// (its one home): the account's new-connection quota bounds connects
// instead. The local stack applies the same three (local/src/gateway).
// A throttled frame is answered by API Gateway, not by a function; a
// throttled handshake is refused with 429.
'use strict';

const fs = require('fs');
const path = require('path');

const LIMITS = path.join(__dirname, '..', 'handlers', 'src', 'limits.rs');

// API Gateway's account-level throttle (requests a second, burst): a
// route's own cannot usefully exceed it.
const ACCOUNT = { rate: 10000, burst: 5000 };

function failure(message) {
  const error = new Error(message);
  error.stack = message;
  return error;
}

// `pub const NAME: RouteThrottle = RouteThrottle { rate_per_second: R, burst: B };`
// from handlers/src/limits.rs, as { rate, burst }.
function fromLimits(name, source = fs.readFileSync(LIMITS, 'utf8')) {
  const pattern = new RegExp(
    `pub const ${name}: RouteThrottle = RouteThrottle \\{\\s*rate_per_second: ([0-9_]+),\\s*burst: ([0-9_]+),?\\s*\\};`
  );
  const match = pattern.exec(source);
  if (!match) {
    throw failure(`infra/throttles.js: handlers/src/limits.rs has no \`pub const ${name}: RouteThrottle = ...\``);
  }
  const [rate, burst] = [match[1], match[2]].map((digits) => Number(digits.replace(/_/g, '')));
  return { rate, burst };
}

// A parameter's value as a whole number from `min` to `max`.
function whole(name, value, min, max) {
  const text = value == null ? '' : String(value).trim();
  if (/^[0-9]+$/.test(text)) {
    const number = Number(text);
    if (number >= min && number <= max) return number;
  }
  throw failure(
    `parameter ${name} is ${JSON.stringify(String(value))}: expected a whole number from ${min} to ${max} ` +
      '(docs/deploy.md, "Throttling")'
  );
}

const settings = ({ rate, burst }) => ({ ThrottlingRateLimit: rate, ThrottlingBurstLimit: burst });

async function parameterThrottle(resolveVariable, prefix) {
  return {
    rate: whole(`${prefix}RateLimit`, await resolveVariable(`param:${prefix}RateLimit`), 1, ACCOUNT.rate),
    burst: whole(`${prefix}BurstLimit`, await resolveVariable(`param:${prefix}BurstLimit`), 1, ACCOUNT.burst),
  };
}

// Lambda concurrency set aside for `$connect` and for `$disconnect`, each,
// so a fan-out storm (sendmessage, the stream processor) cannot take the
// whole account's concurrency from them; empty (the default): none. Off by
// default because a reservation is taken from the account's unreserved
// pool, which Lambda keeps at 100 or more: on an account with the default
// quota of 1,000 that is fine, on a new account whose quota is still 10
// the deployment would fail (docs/deploy.md, "Throttling").
function reservedConcurrency(value) {
  const text = value == null ? '' : String(value).trim();
  if (text === '') return null;
  return whole('reservedConcurrency', text, 1, 1000);
}

module.exports = {
  ACCOUNT,
  reservedConcurrency: async ({ resolveVariable }) =>
    reservedConcurrency(await resolveVariable('param:reservedConcurrency')),
  fromLimits,
  whole,
  defaultRouteSettings: async ({ resolveVariable }) => settings(await parameterThrottle(resolveVariable, 'route')),
  routeSettings: async ({ resolveVariable }) => ({
    history: settings(await parameterThrottle(resolveVariable, 'history')),
    $connect: settings(fromLimits('CONNECT_ROUTE_THROTTLE')),
  }),
};
