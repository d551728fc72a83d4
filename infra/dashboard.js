// The CloudWatch dashboard's body, included by serverless.yml as
// `DashboardBody: ${file(./dashboard.js):body}`.
//
// The product's own EMF metrics (namespace `ServerlessChat`, dimension
// `Stage`) sit above API Gateway's and each Lambda function's. The body is a
// JSON string under Fn::Sub, so `${...}` below is filled in by CloudFormation:
// the region, the API id, function names (Ref) and alarm ARNs.
'use strict';

// The functions this deployment has (logical-id prefix -> name; the
// authorizer only with sign-in on), the values of the `kind` dimension on
// the fan-out metrics (chat messages from sendmessage, presence frames from
// stream-processor) and the alarms: one home, alarms.js.
const {
  deployedFunctions,
  DENIAL_REASONS,
  FANOUT_KINDS,
  MODERATION_ACTIONS,
  ROOM_REFUSALS,
  logicalIds,
} = require('./alarms.js');
// The tables (name -> { resource, ... }): one home, tables.json.
const TABLES = require('./tables.json');

const PERCENTILES = ['p50', 'p90', 'p99'];
const WIDTH = 8;
const HEIGHT = 6;

function graph(title, metrics, { stat = 'Sum', period = 60, yLabel } = {}) {
  const properties = {
    title,
    view: 'timeSeries',
    stacked: false,
    region: '${AWS::Region}',
    stat,
    period,
    metrics,
  };
  if (yLabel) properties.yAxis = { left: { label: yLabel, showUnits: false, min: 0 } };
  return { type: 'metric', width: WIDTH, height: HEIGHT, properties };
}

function text(markdown) {
  return { type: 'text', width: 24, height: 2, properties: { markdown } };
}

module.exports.body = async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  const namespace = await resolveVariable('self:custom.metricsNamespace');
  const functions = await deployedFunctions(resolveVariable);

  // A metric row: namespace, name, dimension pairs, then rendering options if any.
  const row = (...parts) => {
    const options = parts[parts.length - 1];
    return Object.keys(options).length === 0 ? parts.slice(0, -1) : parts;
  };
  const product = (name, options = {}) => row(namespace, name, 'Stage', stage, options);
  const percentiles = (name) => PERCENTILES.map((stat) => product(name, { stat, label: `${name} ${stat}` }));
  // Fan-out metrics: dimensions Stage and kind, one line per kind.
  const fanout = (name, options = {}) =>
    FANOUT_KINDS.map((kind) =>
      row(namespace, name, 'Stage', stage, 'kind', kind, { label: `${name} ${kind}`, ...options })
    );
  const fanoutPercentiles = (name) =>
    PERCENTILES.flatMap((stat) =>
      fanout(name).map((line) => {
        const options = line[line.length - 1];
        return [...line.slice(0, -1), { ...options, stat, label: `${options.label} ${stat}` }];
      })
    );
  const api = (name, options = {}) =>
    row('AWS/ApiGateway', name, 'ApiId', '${WebsocketsApi}', 'Stage', stage, options);
  const eachFunction = (metric, options = {}) =>
    Object.entries(functions).map(([prefix, label]) => [
      'AWS/Lambda',
      metric,
      'FunctionName',
      `\${${prefix}LambdaFunction}`,
      { label, ...options },
    ]);

  const widgets = [
    text(
      `# Serverless chat: ${stage}\n` +
        `Product metrics (EMF, namespace \`${namespace}\`, dimension Stage=${stage}), then API Gateway, then each Lambda function.`
    ),
    // Product: sessions, messages, fan-out.
    graph('Sessions: connects, refusals, disconnects and repairs', [
      product('connects'),
      product('handshakes_refused'),
      product('disconnects'),
      product('sessions_repaired'),
    ]),
    graph('Session duration (s)', percentiles('session_duration'), {
      stat: 'p50',
      period: 300,
      yLabel: 'seconds',
    }),
    graph('Messages and presence frames', [
      product('messages_sent'),
      product('messages_rejected'),
      product('presence_frames_sent'),
    ]),
    graph(
      'Fan-out recipients per fan-out',
      [...fanoutPercentiles('fanout_recipients'), ...fanout('fanout_recipients', { stat: 'Maximum' })],
      { stat: 'p50', yLabel: 'connections' }
    ),
    graph('Fan-out latency (ms)', fanoutPercentiles('fanout_latency'), { stat: 'p50', yLabel: 'ms' }),
    // A large room's shards handed to the fan-out workers.
    graph('Fan-out hand-offs to workers', fanout('fanout_handoffs')),
    graph('Delivery problems', [
      ...fanout('fanout_failures'),
      ...fanout('fanout_throttled'),
      ...fanout('fanout_handoff_failures'),
      ...fanout('connections_pruned'),
      product('stream_records_failed'),
    ]),
    // With sign-in on: the authorizer's refusals, one line per reason.
    ...(functions.Authorizer
      ? [
          graph(
            'Sign-in refusals by reason',
            DENIAL_REASONS.map((reason) =>
              row(namespace, 'tokens_refused', 'Stage', stage, 'reason', reason, { label: reason })
            )
          ),
          // Members-only rooms and bans (docs/security.md).
          graph(
            'Rooms refused by reason',
            ROOM_REFUSALS.map((reason) =>
              row(namespace, 'rooms_refused', 'Stage', stage, 'reason', reason, { label: reason })
            )
          ),
        ]
      : []),
    // Moderators' actions (and members deleting their own messages).
    graph(
      'Moderation actions',
      MODERATION_ACTIONS.map((action) =>
        row(namespace, 'moderation_actions', 'Stage', stage, 'action', action, { label: action })
      )
    ),
    // API Gateway's view of the same traffic.
    graph('API Gateway: connects and messages', [api('ConnectCount'), api('MessageCount')]),
    graph('API Gateway: errors', [
      api('ClientError'),
      api('IntegrationError'),
      api('ExecutionError'),
    ]),
    graph(
      'API Gateway: integration latency (ms)',
      PERCENTILES.map((stat) => api('IntegrationLatency', { stat, label: `IntegrationLatency ${stat}` })),
      { stat: 'p50', yLabel: 'ms' }
    ),
    // Every function.
    graph('Lambda errors', eachFunction('Errors')),
    graph('Lambda throttles', eachFunction('Throttles')),
    graph('Lambda duration p99 (ms)', eachFunction('Duration', { stat: 'p99' }), {
      stat: 'p99',
      yLabel: 'ms',
    }),
    // The stream consumer.
    graph(
      'Stream processor iterator age (ms)',
      [['AWS/Lambda', 'IteratorAge', 'FunctionName', '${StreamProcessorLambdaFunction}', { stat: 'Maximum' }]],
      { stat: 'Maximum', yLabel: 'ms' }
    ),
    graph(
      'Stream batches given up on (failures queue)',
      [
        [
          'AWS/SQS',
          'ApproximateNumberOfMessagesVisible',
          'QueueName',
          '${StreamProcessorFailuresQueue.QueueName}',
          { stat: 'Maximum' },
        ],
      ],
      { stat: 'Maximum', period: 300 }
    ),
    // DynamoDB's TTL at work: ActiveConnections rows whose $disconnect never
    // came, and sessions and messages past their retention (none while the
    // retention parameters are off).
    graph(
      'DynamoDB: items deleted by TTL',
      Object.entries(TABLES).map(([name, { resource }]) => [
        'AWS/DynamoDB',
        'TimeToLiveDeletedItemCount',
        'TableName',
        `\${${resource}}`,
        { label: name },
      ]),
      { stat: 'Sum', period: 3600 }
    ),
    // Every alarm of the stack (docs/operations.md, "Alarms", says what to do).
    {
      type: 'alarm',
      width: 24,
      height: HEIGHT,
      properties: {
        title: 'Alarms',
        alarms: logicalIds(functions).map((logicalId) => `\${${logicalId}.Arn}`),
      },
    },
  ];

  // Lay the widgets out in rows of three under the full-width title.
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  for (const widget of widgets) {
    if (x + widget.width > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    widget.x = x;
    widget.y = y;
    x += widget.width;
    rowHeight = Math.max(rowHeight, widget.height);
  }

  return { 'Fn::Sub': JSON.stringify({ widgets }) };
};
