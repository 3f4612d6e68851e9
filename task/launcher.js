// OidcCredentials launcher: the Node handler runs this; the work is done in Python.
// Dependency-free on purpose. It finds a Python >= 3.9, runs entry.py with the task's environment
// and stdio, and always exits 0: the agent treats a non-zero exit as an infrastructure failure, so a
// failure is reported with ##vso[task.complete result=Failed] instead.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const TOO_OLD = 87;
const WINDOWS_STUB = 9009;
const ENTRY = path.join(__dirname, 'entry.py');

function escapeData(text) {
  return String(text).replace(/%/g, '%AZP25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function fail(message) {
  process.stdout.write('##vso[task.logissue type=error]' + escapeData(message) + '\n');
  process.stdout.write('##vso[task.complete result=Failed;]' + escapeData(message) + '\n');
}

// Candidates in order: [command, leading args, how to name it].
function candidates(env, platform) {
  const chosen = (env.OIDC_CREDENTIALS_PYTHON || '').trim();
  if (chosen) return [[chosen, [], 'OIDC_CREDENTIALS_PYTHON=' + chosen]];
  const list = [['python3', [], 'python3'], ['python', [], 'python']];
  if (platform === 'win32') list.push(['py', ['-3'], 'py -3']);
  return list;
}

function run(env, platform) {
  const tried = [];
  for (const [command, args, label] of candidates(env, platform)) {
    const result = spawnSync(command, args.concat([ENTRY]), { stdio: 'inherit', env: env, windowsHide: true });
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
    if (result.status !== 0 && result.status !== 1) {
      fail('OidcCredentials: Python (' + label + ') stopped unexpectedly with exit code ' + result.status + '.');
    }
    return; // 0: done; 1: the Python side has reported the failure itself
  }
  fail('OidcCredentials needs Python 3.9 or newer on the agent, and found none: tried ' + tried.join(', ') +
    '. Add a UsePythonVersion@0 step before this task (versionSpec: 3.x), install Python 3 on the agent, ' +
    'or set the pipeline variable OIDC_CREDENTIALS_PYTHON to an interpreter\'s full path.');
}

if (require.main === module) {
  try {
    run(process.env, process.platform);
  } catch (err) {
    fail('OidcCredentials launcher failed: ' + (err && err.message ? err.message : err));
  }
  process.exit(0);
}

module.exports = { candidates, run, TOO_OLD };
