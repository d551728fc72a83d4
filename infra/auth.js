// Sign-in: the optional JWT REQUEST authorizer of `$connect`
// (handlers/src/bin/authorizer.rs), off by default: the tutorial's open chat.
// serverless.yml includes this file in three places, each resolving to
// nothing while the `auth` parameter is `off`:
//
//   functions.authorizer                  `authorizer`: the function, or null
//   the $connect event's `authorizer:`    `connectAuthorizer`: the wiring, or null
//   one element of `resources`            `resources`: role, invoke permission's
//                                         SourceArn, logging; or {}
//
// The wiring is the Serverless Framework's own `authorizer:` on the $connect
// event rather than resources of ours: the framework names the stage's
// deployment by a hash of the WebSocket resources it compiled, before it
// merges `resources`, so only its own authorizer and route changes make a new
// deployment when sign-in is turned on or off. With ours, the stage would go
// on serving the routes as they were.
//
//   --param="auth=hs256"        HS256; the secret from Secrets Manager
//   --param="auth=public-key"   RS256 or ES256; a PEM public key from Parameter Store
//   --param="auth=jwks"         RS256 or ES256; a JWKS document from Parameter Store
//
// with, optionally, authKey (the secret's or the parameter's name, default
// below), authKeyVersion (pin a version; a new one redeploys the function
// with the new key), authIssuer, authAudience and authNameClaim.
//
// The key never enters the template: the function's environment holds a
// CloudFormation dynamic reference, which CloudFormation resolves when it
// creates or updates the function. Lambda then keeps the resolved value in
// the function's configuration, where whoever may read that configuration
// sees it (docs/deploy.md, "Sign-in", says what that means and how to create
// the secret or parameter). Every value is checked here, when the stack is
// packaged, so a typo stops `serverless package` and `serverless deploy`
// rather than every handshake.
'use strict';

const { level } = require('./log-level.js');
// Every function's memory and timeout (serverless.yml reads the others').
const FUNCTIONS = require('./functions.json');

// Kind of key -> the variable the authorizer reads it from
// (handlers/src/config.rs, `AuthSettings::from_vars`), where it is stored,
// and the default name of the secret or parameter.
const KINDS = {
  hs256: {
    variable: 'AUTH_JWT_SECRET',
    store: 'secretsmanager',
    defaultKey: (service, stage) => `${service}/${stage}/auth-jwt-secret`,
  },
  'public-key': {
    variable: 'AUTH_JWT_PUBLIC_KEY',
    store: 'ssm',
    defaultKey: (service, stage) => `/${service}/${stage}/auth-jwt-public-key`,
  },
  jwks: {
    variable: 'AUTH_JWKS',
    store: 'ssm',
    defaultKey: (service, stage) => `/${service}/${stage}/auth-jwks`,
  },
};

const OFF = 'off';

// API Gateway refuses a handshake that lacks any identity source, with 401,
// before it invokes the authorizer. The one source is the `token` query
// parameter: the only thing a browser's WebSocket can send. Clients that
// send an `Authorization` header must send `?token=` too. (A WebSocket
// REQUEST authorizer may have none, and then every handshake invokes it; but
// the function's answer for "no token", the error "Unauthorized" that API
// Gateway turns into 401, counts as a Lambda error, and anyone could then
// set off the authorizer-errors alarm and run the function for free.)
const IDENTITY_SOURCE = ['route.request.querystring.token'];

// The other variables the authorizer reads, and their parameters.
const OPTIONAL = {
  AUTH_JWT_ISSUER: 'authIssuer',
  AUTH_JWT_AUDIENCE: 'authAudience',
  AUTH_NAME_CLAIM: 'authNameClaim',
  AUTH_ROOMS_CLAIM: 'authRoomsClaim',
  AUTH_ROLES_CLAIM: 'authRolesClaim',
  AUTH_JWKS_URL: 'authJwksUrl',
  AUTH_MAX_TOKEN_LIFETIME_SECS: 'authMaxTokenLifetime',
};

// Serverless prints a JS resolver's error with its stack; this one's message
// says everything.
function failure(message) {
  const error = new Error(message);
  error.stack = message;
  return error;
}

const text = (value) => (value == null ? '' : String(value).trim());

// Secrets Manager: a name (letters, digits, /_+=.@-) or a secret's ARN.
const SECRET_ID = /^(?:[A-Za-z0-9/_+=.@-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+)$/;
// Parameter Store, this account and region: a name (letters, digits, _.-/),
// starting with / when it has a path.
const SSM_NAME = /^(?:\/[A-Za-z0-9_.\-/]{1,2047}|[A-Za-z0-9_.-]{1,2048})$/;
// A secret's version id, or a parameter's version number.
const SECRET_VERSION = /^[A-Za-z0-9-]{32,64}$/;
const SSM_VERSION = /^[1-9][0-9]{0,9}$/;

// The checked sign-in settings for these parameter values, or null when off.
// `values` holds the raw parameters: auth, authKey, authKeyVersion,
// authIssuer, authAudience, authNameClaim.
function settings(values, { service, stage }) {
  // YAML reads an unquoted `off` (or `false`) as false.
  const kind = values.auth === false ? OFF : text(values.auth).toLowerCase();
  if (kind === '' || kind === OFF) return null;
  const spec = KINDS[kind];
  if (!spec) {
    throw failure(
      `parameter auth is ${JSON.stringify(String(values.auth))}: expected ${OFF} (the default), ` +
        `${Object.keys(KINDS).join(', ')} (docs/deploy.md, "Sign-in")`
    );
  }
  const key = text(values.authKey) || spec.defaultKey(service, stage);
  const [keyPattern, what] =
    spec.store === 'secretsmanager'
      ? [SECRET_ID, 'a Secrets Manager secret name or ARN']
      : [SSM_NAME, 'a Parameter Store parameter name of this account (letters, digits, _.-/)'];
  if (!keyPattern.test(key)) {
    throw failure(
      `parameter authKey is ${JSON.stringify(key)}: expected the name of ${what} ` +
        `holding the key, not the key itself (docs/deploy.md, "Sign-in")`
    );
  }
  const version = text(values.authKeyVersion);
  const versionPattern = spec.store === 'secretsmanager' ? SECRET_VERSION : SSM_VERSION;
  if (version !== '' && !versionPattern.test(version)) {
    throw failure(
      `parameter authKeyVersion is ${JSON.stringify(version)}: expected ` +
        (spec.store === 'secretsmanager' ? "the secret version's VersionId" : "the parameter's version number") +
        ', or nothing for the latest (docs/deploy.md, "Sign-in")'
    );
  }
  // The claims of the display name, the rooms one may join and the roles
  // (handlers::auth and handlers::access's defaults).
  const claim = (parameter, fallback) => {
    const name = text(values[parameter]) || fallback;
    if (/\s/.test(name)) {
      throw failure(
        `parameter ${parameter} is ${JSON.stringify(name)}: expected the name of a claim ` +
          '(docs/deploy.md, "Sign-in")'
      );
    }
    return name;
  };
  const nameClaim = claim('authNameClaim', 'name');
  const roomsClaim = claim('authRoomsClaim', 'rooms');
  const rolesClaim = claim('authRolesClaim', 'roles');
  // Where the identity provider publishes its current keys: fetched by the
  // authorizer at cold start and when a token names a key it lacks, the
  // deployed JWKS document its fallback. So with auth=jwks only, over HTTPS.
  const jwksUrl = text(values.authJwksUrl);
  if (jwksUrl !== '' && (kind !== 'jwks' || !/^https:\/\/[^\s/?#]+\/\S*$/.test(jwksUrl))) {
    throw failure(
      `parameter authJwksUrl is ${JSON.stringify(jwksUrl)}: expected the identity provider's ` +
        'https:// JWKS URL, with auth=jwks (the JWKS parameter is the fallback; docs/deploy.md, "Sign-in")'
    );
  }
  // Tokens valid for longer are refused (seconds, exp after iat); empty: no
  // limit. handlers::limits::TOKEN_LIFETIME_SECS_RANGE, as the authorizer
  // checks it at cold start.
  const maxLifetime = text(values.authMaxTokenLifetime);
  if (maxLifetime !== '' && !(/^[0-9]+$/.test(maxLifetime) && Number(maxLifetime) >= 60 && Number(maxLifetime) <= 31536000)) {
    throw failure(
      `parameter authMaxTokenLifetime is ${JSON.stringify(maxLifetime)}: expected a whole number of seconds ` +
        'from 60 to 31536000, or nothing for no limit (docs/deploy.md, "Sign-in")'
    );
  }
  return {
    kind,
    variable: spec.variable,
    reference: reference(spec.store, key, version),
    issuer: text(values.authIssuer),
    audience: text(values.authAudience),
    nameClaim,
    roomsClaim,
    rolesClaim,
    jwksUrl,
    maxLifetime,
  };
}

// The CloudFormation dynamic reference to the key: the whole secret string,
// or the parameter's value; the latest version unless one is pinned.
function reference(store, key, version) {
  if (store === 'secretsmanager') {
    // secret-id:SecretString:json-key:version-stage:version-id
    return version
      ? `{{resolve:secretsmanager:${key}:SecretString:::${version}}}`
      : `{{resolve:secretsmanager:${key}:SecretString}}`;
  }
  return version ? `{{resolve:ssm:${key}:${version}}}` : `{{resolve:ssm:${key}}}`;
}

// The authorizer's own variables (on top of provider.environment, which
// every function gets): the key's reference, and the three optional ones
// (empty when unset, which the code reads as unset).
function environment(signIn) {
  return {
    [signIn.variable]: signIn.reference,
    AUTH_JWT_ISSUER: signIn.issuer,
    AUTH_JWT_AUDIENCE: signIn.audience,
    AUTH_NAME_CLAIM: signIn.nameClaim,
    AUTH_ROOMS_CLAIM: signIn.roomsClaim,
    AUTH_ROLES_CLAIM: signIn.rolesClaim,
    AUTH_JWKS_URL: signIn.jwksUrl,
    AUTH_MAX_TOKEN_LIFETIME_SECS: signIn.maxLifetime,
  };
}

async function resolveSettings(resolveVariable) {
  const values = {};
  for (const name of ['auth', 'authKey', 'authKeyVersion', ...Object.values(OPTIONAL)]) {
    values[name] = await resolveVariable(`param:${name}`);
  }
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  return settings(values, { service, stage });
}

// The function, as under `functions:` in serverless.yml.
async function authorizer({ resolveVariable }) {
  const signIn = await resolveSettings(resolveVariable);
  if (!signIn) return null;
  return {
    description: '$connect authorizer: verifies the sign-in token (JWT)',
    handler: 'bootstrap',
    role: 'AuthorizerRole',
    // Verifies one signature per handshake and calls no AWS service (with
    // authJwksUrl, the provider's keys now and then): the least memory, and
    // a short timeout (infra/functions.json; docs/deploy.md, "Memory and
    // timeouts").
    memorySize: FUNCTIONS.authorizer.memorySize,
    timeout: FUNCTIONS.authorizer.timeout,
    package: { artifact: 'dist/authorizer.zip' },
    environment: environment(signIn),
  };
}

// The $connect event's `authorizer:`.
async function connectAuthorizer({ resolveVariable }) {
  const signIn = await resolveSettings(resolveVariable);
  if (!signIn) return null;
  return { name: 'authorizer', identitySource: IDENTITY_SOURCE };
}

// What the function needs besides: its role (its own log group, nothing
// else: it calls no AWS service), the SourceArn the framework leaves off its
// invoke permission, and the logging every function has.
async function resources({ resolveVariable }) {
  const signIn = await resolveSettings(resolveVariable);
  if (!signIn) return {};
  const stage = await resolveVariable('sls:stage');
  return {
    Resources: {
      AuthorizerRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          Description: `authorizer (${stage}) - logs only`,
          AssumeRolePolicyDocument: await resolveVariable('file(./iam/lambda-trust.yml)'),
          Policies: [
            {
              PolicyName: 'authorizer',
              PolicyDocument: {
                Version: '2012-10-17',
                Statement: [
                  {
                    Sid: 'OwnLogGroup',
                    Effect: 'Allow',
                    Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                    Resource: { 'Fn::GetAtt': ['AuthorizerLogGroup', 'Arn'] },
                  },
                ],
              },
            },
          ],
        },
      },
    },
    extensions: {
      // API Gateway may invoke it as an authorizer of this API only.
      AuthorizerLambdaPermissionWebsockets: {
        Properties: {
          SourceArn: {
            'Fn::Sub': 'arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketsApi}/authorizers/*',
          },
        },
      },
      AuthorizerLambdaFunction: {
        Properties: {
          LoggingConfig: {
            LogFormat: 'JSON',
            ApplicationLogLevel: level(await resolveVariable('param:logLevel')),
            SystemLogLevel: 'INFO',
          },
        },
      },
    },
  };
}

// A room name, or a prefix ending in `*` (handlers::access::RoomPattern).
const ROOM_PATTERN = /^(?:[A-Za-z0-9_-]{1,64}|[A-Za-z0-9_-]{0,63}\*)$/;

// Who of the signed-in users may join which room (ROOM_ACCESS and
// MEMBERS_ONLY_ROOMS, read by $connect): checked here, and refused without
// sign-in, where every room is open to anyone who knows its name.
function roomAccessSettings(values, signedIn) {
  const access = text(values.roomAccess) || 'open';
  if (access !== 'open' && access !== 'closed') {
    throw failure(
      `parameter roomAccess is ${JSON.stringify(access)}: expected open (the default) or closed ` +
        '(docs/deploy.md, "Members-only rooms")'
    );
  }
  const membersOnly = text(values.membersOnlyRooms)
    .split(/[\s,]+/)
    .filter((entry) => entry !== '');
  const bad = membersOnly.find((entry) => !ROOM_PATTERN.test(entry));
  if (bad !== undefined) {
    throw failure(
      `parameter membersOnlyRooms holds ${JSON.stringify(bad)}: expected room names or prefixes ` +
        'such as team-*, separated by commas (docs/deploy.md, "Members-only rooms")'
    );
  }
  if (!signedIn && (access !== 'open' || membersOnly.length > 0)) {
    throw failure(
      'parameters roomAccess and membersOnlyRooms need sign-in (the auth parameter): without it ' +
        'anyone may join any room (docs/deploy.md, "Members-only rooms")'
    );
  }
  return { access, membersOnly: membersOnly.join(',') };
}

async function resolveRoomAccess(resolveVariable) {
  const values = {
    roomAccess: await resolveVariable('param:roomAccess'),
    membersOnlyRooms: await resolveVariable('param:membersOnlyRooms'),
  };
  return roomAccessSettings(values, await isOn(resolveVariable));
}

// provider.environment's ROOM_ACCESS and MEMBERS_ONLY_ROOMS.
async function roomAccess({ resolveVariable }) {
  return (await resolveRoomAccess(resolveVariable)).access;
}

async function membersOnlyRooms({ resolveVariable }) {
  return (await resolveRoomAccess(resolveVariable)).membersOnly;
}

// Whether sign-in is on (alarms.js and dashboard.js ask).
async function isOn(resolveVariable) {
  return (await resolveSettings(resolveVariable)) !== null;
}

module.exports = {
  KINDS,
  IDENTITY_SOURCE,
  OPTIONAL,
  settings,
  environment,
  isOn,
  authorizer,
  connectAuthorizer,
  resources,
  roomAccessSettings,
  roomAccess,
  membersOnlyRooms,
};
