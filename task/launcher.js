// OidcCredentials launcher: the Node handler runs this; the work is done in Python.
// Dependency-free on purpose. It finds a Python >= 3.9 and runs entry.py with the task's environment
// and stdio, passing the mode: none for the task (execution in task.json), "post" for the post-job step
// (post.js, postjobexecution), "helper <format>" for a credential helper (node launcher.js helper aws).
// In the task and post modes it always exits 0: the agent treats a non-zero exit as an infrastructure
// failure, so a failure is reported with ##vso[task.complete result=Failed] instead. A helper answers
// an SDK, not the agent: it never prints ##vso, fails with one line on stderr and passes on the exit code.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const TOO_OLD = 87;
const WINDOWS_STUB = 9009;
const ENTRY = path.join(__dirname, 'entry.py');

function escapeData(text) {
  return String(text).replace(/%/g, '%AZP25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

const DEFAULT_MODE = 'task';

function failer(mode) {
  if (mode === 'helper') {
    return (message) => {
      process.stderr.write('oidc-credentials helper: error: ' + String(message).replace(/[\r\n]+/g, ' ') + '\n');
      process.exitCode = 1;
    };
  }
  return (message) => {
    process.stdout.write('##vso[task.logissue type=error]' + escapeData(message) + '\n');
    process.stdout.write('##vso[task.complete result=Failed;]' + escapeData(message) + '\n');
  };
}

// Candidates in order: [command, leading args, how to name it].
function candidates(env, platform) {
  const chosen = (env.OIDC_CREDENTIALS_PYTHON || '').trim();
  if (chosen) return [[chosen, [], 'OIDC_CREDENTIALS_PYTHON=' + chosen]];
  const list = [['python3', [], 'python3'], ['python', [], 'python']];
  if (platform === 'win32') list.push(['py', ['-3'], 'py -3']);
  return list;
}

// argv: the mode and its arguments ([] or ['task']: the task, passed to entry.py as no argument).
function run(env, platform, argv) {
  const modeArgs = (argv || []).length && argv[0] !== DEFAULT_MODE ? argv.slice() : [];
  const mode = modeArgs.length ? modeArgs[0] : DEFAULT_MODE;
  const fail = failer(mode);
  const tried = [];
  for (const [command, args, label] of candidates(env, platform)) {
    const result = spawnSync(command, args.concat([ENTRY], modeArgs), { stdio: 'inherit', env: env, windowsHide: true });
    if (result.error) {
      tried.push(label + ' (' + (result.error.code === 'ENOENT' ? 'not found' : result.error.message) + ')');
      continue;
    }
    if (result.signal) {
      fail('OidcCredentials: Python (' + label + ') was stopped by signal ' + result.signal +
        ' before the task finished. If the agent is short of memory, free some or use a larger agent.');
      return;
    }
    if (result.status === TOO_OLD) {
      tried.push(label + ' (older than 3.9)');
      continue;
    }
    // Windows' "App execution alias" stubs for python/python3 exit 9009 when no Python is installed.
    if (platform === 'win32' && result.status === WINDOWS_STUB) {
      tried.push(label + ' (a Microsoft Store alias, not an installed Python)');
      continue;
    }
    if (mode === 'helper') {
      if (result.status !== 0 && result.status !== 1 && result.status !== 2) {
        fail('OidcCredentials: Python (' + label + ') stopped unexpectedly with exit code ' + result.status + '.');
      } else {
        process.exitCode = result.status; // the helper has answered its SDK itself
      }
      return;
    }
    if (result.status !== 0 && result.status !== 1) {
      fail('OidcCredentials: Python (' + label + ') stopped unexpectedly with exit code ' + result.status + '.');
    }
    return; // 0: done; 1: the Python side has reported the failure itself
  }
  fail('OidcCredentials needs Python 3.9 or newer on the agent, and found none: tried ' + tried.join(', ') +
    '. Add a UsePythonVersion@0 step before this task (versionSpec: 3.x), install Python 3 on the agent, ' +
    'or set the pipeline variable OIDC_CREDENTIALS_PYTHON to an interpreter\'s full path.');
}

// The Node handler's entry: run the mode, then exit 0 (a helper: its own exit code).
function main(argv) {
  const mode = argv.length ? argv[0] : DEFAULT_MODE;
  try {
    run(process.env, process.platform, argv);
  } catch (err) {
    failer(mode)('OidcCredentials launcher failed: ' + (err && err.message ? err.message : err));
  }
  process.exit(mode === 'helper' ? process.exitCode || 0 : 0);
}

if (require.main === module) {
  main(process.argv.slice(2));
}

module.exports = { candidates, run, main, escapeData, TOO_OLD, DEFAULT_MODE };
