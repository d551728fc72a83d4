// The retention parameters, checked when the stack is packaged and given to
// every function as MESSAGE_RETENTION_DAYS and SESSION_RETENTION_DAYS
// (serverless.yml, `provider.environment`; docs/deploy.md, "Parameters";
// docs/operations.md, "Retention").
//
//   --param="messageRetentionDays=30"   chat messages expire 30 days after they were sent
//   --param="sessionRetentionDays=90"   sessions (with their source_ip) 90 days after they began
//
// Empty, the default, is off: the variable is set to '' and the code treats
// a blank variable as unset, so nothing expires, as in the tutorial.
// Anything else must be a whole number of days within RETENTION_DAYS_RANGE
// of handlers/src/limits.rs, read from there (its one home). The functions
// refuse to start with any other value, so a bad one would stop every
// function of the chat at its next cold start; checked here, it stops
// `serverless package` and `serverless deploy` before anything is deployed.
'use strict';

const fs = require('fs');
const path = require('path');

const LIMITS = path.join(__dirname, '..', 'handlers', 'src', 'limits.rs');

// `pub const RETENTION_DAYS_RANGE: std::ops::RangeInclusive<usize> = 1..=36_500;`
const RANGE = /^pub const RETENTION_DAYS_RANGE:[^=]*=\s*([0-9_]+)\s*\.\.=\s*([0-9_]+)\s*;/m;

// Serverless prints a JS resolver's error with its stack; this one's message
// says everything.
function failure(message) {
  const error = new Error(message);
  error.stack = message;
  return error;
}

// The allowed days, { min, max }, from the source of handlers/src/limits.rs.
function range(source = fs.readFileSync(LIMITS, 'utf8')) {
  const match = RANGE.exec(source);
  if (!match) {
    throw failure(
      'infra/retention.js: handlers/src/limits.rs has no ' +
        '`pub const RETENTION_DAYS_RANGE: ... = MIN..=MAX;` to check the retention parameters against'
    );
  }
  const [min, max] = [match[1], match[2]].map((digits) => Number(digits.replace(/_/g, '')));
  return { min, max };
}

// The variable's value for the parameter `name` set to `value`: '' when
// empty (off), else the number of days as a plain decimal string.
function days(name, value, allowed = range()) {
  const text = value == null ? '' : String(value).trim();
  if (text === '') return '';
  if (/^[0-9]+$/.test(text)) {
    const number = Number(text);
    if (number >= allowed.min && number <= allowed.max) return String(number);
  }
  throw failure(
    `parameter ${name} is ${JSON.stringify(String(value))}: expected a whole number of days ` +
      `from ${allowed.min} to ${allowed.max}, or empty to keep everything (docs/deploy.md, "Parameters")`
  );
}

const parameter = (name) => async ({ resolveVariable }) =>
  days(name, await resolveVariable(`param:${name}`));

module.exports = {
  range,
  days,
  messageRetentionDays: parameter('messageRetentionDays'),
  sessionRetentionDays: parameter('sessionRetentionDays'),
};
