// The stack's CloudWatch alarms, included by serverless.yml as one element of
// its `resources` list (`- ${file(./alarms.js):resources}`) and read by
// dashboard.js for its alarm widget.
//
// Every alarm notifies AlarmTopic on ALARM and on OK. Each one has a runbook
// entry in docs/operations.md ("Alarms"), matched by the name suffix below;
// infra/tests/test_template.py checks both ways, and that the entry's
// "fires when" is what the template says.
'use strict';

const auth = require('./auth.js');

// Function logical-id prefix -> the function's name (its binary), for every
// function the stack always has.
const FUNCTIONS = {
  Connect: 'connect',
  Disconnect: 'disconnect',
  Sendmessage: 'sendmessage',
  History: 'history',
  Default: 'default',
  Moderate: 'moderate',
  StreamProcessor: 'stream-processor',
  Reconcile: 'reconcile',
  Fanout: 'fanout',
};
// And those it has only with sign-in on (infra/auth.js).
const SIGN_IN_FUNCTIONS = {
  Authorizer: 'authorizer',
};

// The functions this deployment has.
async function deployedFunctions(resolveVariable) {
  return (await auth.isOn(resolveVariable)) ? { ...FUNCTIONS, ...SIGN_IN_FUNCTIONS } : FUNCTIONS;
}

// Values of the `kind` dimension of the fan-out metrics (handlers/src/metric.rs).
const FANOUT_KINDS = ['message', 'presence'];
// Values of the `reason` dimension of `tokens_refused`, the authorizer's
// refusals (handlers/src/auth.rs, `Denial::as_str`; infra/tests compare).
const DENIAL_REASONS = [
  'missing',
  'malformed',
  'wrong_algorithm',
  'unknown_key',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'wrong_issuer',
  'wrong_audience',
  'missing_claim',
  'too_long_lived',
  'malformed_claim',
];

const FIVE_MINUTES = 300;

// Sum above zero in one five-minute period: anything at all is worth a look.
const anyInFiveMinutes = {
  Statistic: 'Sum',
  Period: FIVE_MINUTES,
  EvaluationPeriods: 1,
  Threshold: 0,
};

const capitalize = (word) => word[0].toUpperCase() + word.slice(1);

// [logical id, name suffix, description, metric properties]. The suffix
// names the alarm `<service>-<stage>-<suffix>`.
function specs({ stage, namespace, functions }) {
  const api = (metric) => ({
    Namespace: 'AWS/ApiGateway',
    MetricName: metric,
    Dimensions: [
      { Name: 'ApiId', Value: { Ref: 'WebsocketsApi' } },
      { Name: 'Stage', Value: stage },
    ],
  });
  const lambda = (prefix, metric) => ({
    Namespace: 'AWS/Lambda',
    MetricName: metric,
    Dimensions: [{ Name: 'FunctionName', Value: { Ref: `${prefix}LambdaFunction` } }],
  });

  const list = [];
  for (const [prefix, name] of Object.entries(functions)) {
    list.push([
      `${prefix}ErrorsAlarm`,
      `${name}-errors`,
      `The ${name} function failed (crashed, timed out or could not start); see docs/operations.md, "Alarms".`,
      { ...lambda(prefix, 'Errors'), ...anyInFiveMinutes },
    ]);
    list.push([
      `${prefix}ThrottlesAlarm`,
      `${name}-throttles`,
      `Lambda refused to run the ${name} function (concurrency limit); see docs/operations.md, "Alarms".`,
      { ...lambda(prefix, 'Throttles'), ...anyInFiveMinutes },
    ]);
  }
  // API Gateway counts every 4XX or 5XX answer of a route function as an
  // IntegrationError, and `$connect` answers the client's own mistakes (a
  // bad ?room= or ?name=) with 400: those are refusals, counted by the
  // function itself (handshakes_refused), and subtracted here, so a client
  // cannot page anyone while a failure of ours still does.
  const sumOverFiveMinutes = (metric) => ({ Metric: metric, Period: FIVE_MINUTES, Stat: 'Sum' });
  list.push([
    'ApiIntegrationErrorAlarm',
    'api-integration-errors',
    'A route function failed: IntegrationError (4XX/5XX answers) beyond the handshakes $connect refused for the client (handshakes_refused); see docs/operations.md, "Alarms".',
    {
      Metrics: [
        {
          Id: 'integration',
          MetricStat: sumOverFiveMinutes({
            Namespace: 'AWS/ApiGateway',
            MetricName: 'IntegrationError',
            Dimensions: api('IntegrationError').Dimensions,
          }),
          ReturnData: false,
        },
        {
          Id: 'refused',
          MetricStat: sumOverFiveMinutes({
            Namespace: namespace,
            MetricName: 'handshakes_refused',
            Dimensions: [{ Name: 'Stage', Value: stage }],
          }),
          ReturnData: false,
        },
        {
          Id: 'failures',
          Expression: 'FILL(integration, 0) - FILL(refused, 0)',
          Label: 'IntegrationError that are not refusals',
          ReturnData: true,
        },
      ],
      EvaluationPeriods: 1,
      Threshold: 0,
    },
  ]);
  list.push([
    'ApiExecutionErrorAlarm',
    'api-execution-errors',
    'API Gateway could not invoke a route function (ExecutionError); see docs/operations.md, "Alarms".',
    { ...api('ExecutionError'), ...anyInFiveMinutes },
  ]);
  list.push([
    'ApiClientErrorAlarm',
    'api-client-errors',
    'API Gateway refused requests before invoking any function (ClientError), for 15 minutes; see docs/operations.md, "Alarms".',
    // Sustained only: one misbehaving client should not page anyone.
    { ...api('ClientError'), ...anyInFiveMinutes, EvaluationPeriods: 3, DatapointsToAlarm: 3 },
  ]);
  for (const kind of FANOUT_KINDS) {
    list.push([
      `FanoutFailures${capitalize(kind)}Alarm`,
      `fanout-failures-${kind}`,
      `Posts of ${kind} frames to connections failed other than with 410 Gone (fanout_failures); see docs/operations.md, "Alarms".`,
      {
        Namespace: namespace,
        MetricName: 'fanout_failures',
        Dimensions: [
          { Name: 'Stage', Value: stage },
          { Name: 'kind', Value: kind },
        ],
        ...anyInFiveMinutes,
      },
    ]);
  }
  if (functions.Authorizer) {
    // A Deny is not an error, so a key rotation the authorizer has not
    // caught up with raises nothing else: everyone is locked out quietly.
    list.push([
      'TokensUnknownKeyAlarm',
      'tokens-unknown-key',
      'The sign-in authorizer refused tokens signed with a key it does not have (tokens_refused, reason unknown_key): a key rotation it has not caught up with; see docs/operations.md, "Alarms".',
      {
        Namespace: namespace,
        MetricName: 'tokens_refused',
        Dimensions: [
          { Name: 'Stage', Value: stage },
          { Name: 'reason', Value: 'unknown_key' },
        ],
        ...anyInFiveMinutes,
      },
    ]);
  }
  list.push([
    'StreamIteratorAgeAlarm',
    'stream-iterator-age',
    'The stream processor is more than a minute behind the SessionHistory stream: presence frames and durations are late; see docs/operations.md, "Alarms".',
    {
      ...lambda('StreamProcessor', 'IteratorAge'),
      Statistic: 'Maximum',
      Period: 60,
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      Threshold: 60000,
    },
  ]);
  list.push([
    'StreamRecordsFailedAlarm',
    'stream-records-failed',
    'The stream processor reported records as failed (stream_records_failed); Lambda retries them, then sends them to the failures queue; see docs/operations.md, "Alarms".',
    {
      Namespace: namespace,
      MetricName: 'stream_records_failed',
      Dimensions: [{ Name: 'Stage', Value: stage }],
      ...anyInFiveMinutes,
    },
  ]);
  list.push([
    'StreamFailuresQueueAlarm',
    'stream-records-given-up',
    'Stream batches were given up on and sent to the failures queue: replay them from the stream within 24 h; see docs/operations.md, "Alarms".',
    {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        { Name: 'QueueName', Value: { 'Fn::GetAtt': ['StreamProcessorFailuresQueue', 'QueueName'] } },
      ],
      Statistic: 'Maximum',
      Period: FIVE_MINUTES,
      EvaluationPeriods: 1,
      Threshold: 0,
    },
  ]);
  return list;
}

// Logical ids of every alarm of a deployment with these functions, in order
// (dashboard.js draws them).
const logicalIds = (functions) => specs({ stage: '', namespace: '', functions }).map(([id]) => id);

module.exports.FUNCTIONS = FUNCTIONS;
module.exports.SIGN_IN_FUNCTIONS = SIGN_IN_FUNCTIONS;
module.exports.FANOUT_KINDS = FANOUT_KINDS;
module.exports.DENIAL_REASONS = DENIAL_REASONS;
// Values of the `reason` dimension of `rooms_refused` and of the `action`
// dimension of `moderation_actions` (handlers/src/routes/connect.rs and
// moderate.rs; infra/tests compare).
module.exports.ROOM_REFUSALS = ['not_a_member', 'banned'];
module.exports.MODERATION_ACTIONS = ['remove', 'ban', 'delete'];
module.exports.deployedFunctions = deployedFunctions;
module.exports.logicalIds = logicalIds;

module.exports.resources = async ({ resolveVariable }) => {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  const namespace = await resolveVariable('self:custom.metricsNamespace');
  const functions = await deployedFunctions(resolveVariable);

  const Resources = {};
  for (const [id, suffix, description, metric] of specs({ stage, namespace, functions })) {
    Resources[id] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        AlarmName: `${service}-${stage}-${suffix}`,
        AlarmDescription: description,
        ...metric,
        ComparisonOperator: 'GreaterThanThreshold',
        // No data (no traffic) is not a failure.
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: 'AlarmTopic' }],
        OKActions: [{ Ref: 'AlarmTopic' }],
      },
    };
  }
  return { Resources };
};
