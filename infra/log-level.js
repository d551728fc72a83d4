// The `logLevel` parameter, checked when the stack is packaged and given to
// every function as its LoggingConfig's ApplicationLogLevel (serverless.yml,
// `resources.extensions`; infra/auth.js for the authorizer).
//
//   --param="logLevel=DEBUG"
//
// Only INFO (the default) and DEBUG are allowed:
// - above INFO (WARN, ERROR, FATAL) Lambda would drop the EMF metric lines,
//   which carry no level and count as INFO, and with them every product
//   metric and the alarms on them;
// - below DEBUG (TRACE) is where libraries log what passes through them:
//   lambda_runtime logs each raw event at TRACE, `$connect`'s `?token=`,
//   every chat message and `sourceIp` among them. The functions cap every
//   library at INFO and themselves at DEBUG whatever Lambda says
//   (handlers/src/lambda.rs, `log_filter`), and this refuses the setting
//   that would suggest otherwise.
'use strict';

const ALLOWED = ['INFO', 'DEBUG'];

// Serverless prints a JS resolver's error with its stack; this one's message
// says everything.
function failure(message) {
  const error = new Error(message);
  error.stack = message;
  return error;
}

// The ApplicationLogLevel for the parameter's `value` (any case).
function level(value) {
  const text = value == null ? '' : String(value).trim().toUpperCase();
  if (ALLOWED.includes(text)) return text;
  throw failure(
    `parameter logLevel is ${JSON.stringify(String(value))}: expected INFO or DEBUG ` +
      '(above INFO Lambda drops the metrics; below DEBUG libraries log raw events, tokens and messages; docs/deploy.md, "Logs")'
  );
}

module.exports = {
  ALLOWED,
  level,
  logLevel: async ({ resolveVariable }) => level(await resolveVariable('param:logLevel')),
};
