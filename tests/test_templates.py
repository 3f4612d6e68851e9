"""templates/*.yml: expanded the way Azure Pipelines expands step templates, then validated and run.

A small expander implements the template features the files use (typed parameters with defaults and
allowed values, ``${{ parameters.x }}``, ``${{ if }}`` / ``${{ else }}`` insertion, ``${{ each }}``
over mappings, and the eq/ne/and/or/not/coalesce functions); it refuses unknown parameters, missing
required ones and wrong types, as the service does. The expansion is validated against
shared/schemas/azure-pipelines.schema.json, patched so that ``OidcCredentials@1`` is a task whose inputs
are exactly task.json's. Then the expanded steps are run: the task step through the real launcher with
the inputs the agent would pass, and the script step with only the environment its ``env:`` maps (the
agent keeps secret variables out of scripts otherwise), against the local stand-ins.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.harness import ROOT, SCHEMAS, AgentJob, TaskRun
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.standins.server import LocalCA

TEMPLATES = ROOT / "templates"
SCHEMA = SCHEMAS / "azure-pipelines.schema.json"
TASK_JSON = json.loads((ROOT / "task.json").read_text(encoding="utf-8"))
ROLE = "arn:aws:iam::123456789012:role/ado-deploy"


class TemplateError(ValueError):
    pass


# ------------------------------------------------------------------------------------------ expressions

TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w.\-]*)|(?P<punct>[(),]))"
)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse expression {text!r} at {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        value: Any = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "num":
            value = float(value) if "." in value else int(value)
        out.append((kind, value))
    return out


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()  # the service compares strings ignoring case
    return bool(a == b)


FUNCTIONS = {
    "eq": lambda a, b: _equal(a, b),
    "ne": lambda a, b: not _equal(a, b),
    "and": lambda *xs: all(xs),
    "or": lambda *xs: any(xs),
    "not": lambda x: not x,
    "coalesce": lambda *xs: next((x for x in xs if x not in (None, "")), ""),
}


def evaluate(text: str, scope: dict[str, Any]) -> Any:
    tokens = _tokens(text)
    value, rest = _expr(tokens, scope)
    if rest:
        raise TemplateError(f"trailing tokens in {text!r}")
    return value


def _expr(tokens: list[tuple[str, Any]], scope: dict[str, Any]) -> tuple[Any, list[tuple[str, Any]]]:
    if not tokens:
        raise TemplateError("empty expression")
    (kind, value), rest = tokens[0], tokens[1:]
    if kind in ("str", "num"):
        return value, rest
    if kind == "name" and rest[:1] == [("punct", "(")]:
        if value not in FUNCTIONS:
            raise TemplateError(f"unknown function {value}")
        args: list[Any] = []
        rest = rest[1:]
        while rest[:1] != [("punct", ")")]:
            arg, rest = _expr(rest, scope)
            args.append(arg)
            if rest[:1] == [("punct", ",")]:
                rest = rest[1:]
        return FUNCTIONS[value](*args), rest[1:]
    if kind == "name":
        if value in ("true", "false"):
            return value == "true", rest
        if value == "null":
            return None, rest
        head, *path = value.split(".")
        if head not in scope:
            raise TemplateError(f"unknown name {head}")
        current = scope[head]
        for part in path:
            if not isinstance(current, dict) or part not in current:
                raise TemplateError(f"{value}: no {part!r}")
            current = current[part]
        return current, rest
    raise TemplateError(f"unexpected {value!r}")


# ------------------------------------------------------------------------------------------- expansion

WHOLE = re.compile(r"^\$\{\{(.*)\}\}$", re.DOTALL)
INLINE = re.compile(r"\$\{\{(.*?)\}\}")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # how the service renders a boolean inside a string
    return str(value)


def _scalar(value: Any, scope: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        return value
    whole = WHOLE.match(value.strip())
    if whole and "${{" not in whole[1]:
        return evaluate(whole[1], scope)
    return INLINE.sub(lambda m: _as_text(evaluate(m[1], scope)), value)


def _directive(key: Any) -> tuple[str, str] | None:
    if not isinstance(key, str):
        return None
    m = re.fullmatch(r"\$\{\{\s*(if|elseif|else|each)\b(.*?)\}\}", key.strip(), re.DOTALL)
    return (m[1], m[2].strip()) if m else None


def expand(node: Any, scope: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return _expand_mapping(node, scope)
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            if isinstance(item, dict) and len(item) == 1 and _directive(next(iter(item))):
                inserted = _expand_mapping(item, scope, into_sequence=True)
                out.extend(inserted)
            else:
                out.append(expand(item, scope))
        return out
    return _scalar(node, scope)


def _expand_mapping(node: dict[Any, Any], scope: dict[str, Any], into_sequence: bool = False) -> Any:
    result: Any = [] if into_sequence else {}
    previous: bool | None = None  # the last if/elseif's outcome, for else

    def merge(value: Any) -> None:
        expanded = expand(value, scope_now)
        if into_sequence:
            result.extend(expanded if isinstance(expanded, list) else [expanded])
        else:
            if not isinstance(expanded, dict):
                raise TemplateError(f"a conditional inside a mapping must hold a mapping, got {expanded!r}")
            for k, v in expanded.items():
                if k in result:
                    raise TemplateError(f"duplicate key {k}")
                result[k] = v

    for key, value in node.items():
        scope_now = scope
        directive = _directive(key)
        if directive is None:
            if into_sequence:
                raise TemplateError("a sequence insertion holds one directive")
            name = _scalar(key, scope)
            if name in result:
                raise TemplateError(f"duplicate key {name}")
            result[name] = expand(value, scope)
            previous = None
            continue
        kind, expr = directive
        if kind == "if":
            previous = bool(evaluate(expr, scope))
            if previous:
                merge(value)
        elif kind == "elseif":
            if previous is None:
                raise TemplateError("elseif without if")
            if not previous and evaluate(expr, scope):
                previous = True
                merge(value)
        elif kind == "else":
            if previous is None:
                raise TemplateError("else without if")
            if not previous:
                merge(value)
            previous = None
        else:  # each
            m = re.fullmatch(r"(\w+)\s+in\s+(.+)", expr)
            if not m:
                raise TemplateError(f"bad each: {expr}")
            collection = evaluate(m[2], scope)
            items = (
                [{"key": k, "value": v} for k, v in collection.items()]
                if isinstance(collection, dict)
                else list(collection)
            )
            for item in items:
                scope_now = dict(scope, **{m[1]: item})
                merge(value)
            previous = None
    return result


TYPES = {
    "string": str,
    "number": (int, float),
    "boolean": bool,
    "object": (dict, list, str, int, float, bool),
    "stepList": list,
}


def instantiate(template: Path, given: dict[str, Any]) -> list[Any]:
    """The steps a ``- template:`` reference with these parameters expands to."""
    doc = yaml.safe_load(template.read_text(encoding="utf-8"))
    declared = {p["name"]: p for p in doc["parameters"]}
    unknown = set(given) - set(declared)
    if unknown:
        raise TemplateError(f"Unexpected parameter(s): {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            raise TemplateError(f"A value for the '{name}' parameter must be provided.")
        kind = spec.get("type", "string")
        if kind == "number" and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            value = int(value)
        if not isinstance(value, TYPES[kind]) or (kind == "number" and isinstance(value, bool)):
            raise TemplateError(f"The '{name}' parameter is not a valid {kind}.")
        if "values" in spec and value not in spec["values"]:
            raise TemplateError(f"The '{name}' parameter value '{value}' is not a valid value.")
        values[name] = value
    steps: list[Any] = expand(doc["steps"], {"parameters": values})
    return steps


# --------------------------------------------------------------------------------------------- schema


def task_branch() -> dict[str, Any]:
    """OidcCredentials@1 in the schema's own style for tasks: its inputs and their types from task.json."""
    inputs: dict[str, Any] = {}
    for spec in TASK_JSON["inputs"]:
        kind = spec["type"]
        if kind == "boolean":
            prop: dict[str, Any] = {"type": "boolean"}
        elif kind in ("pickList", "radio") and "options" in spec:
            prop = {"enum": list(spec["options"])}
        else:
            prop = {"type": "string"}
        prop["description"] = spec.get("label", spec["name"])
        inputs[spec["name"]] = prop
    required = [s["name"] for s in TASK_JSON["inputs"] if s.get("required") and not s.get("visibleRule")]
    return {
        "properties": {
            "task": {"pattern": "^OidcCredentials@1$"},
            "inputs": {"properties": inputs, "additionalProperties": False, "required": required},
        },
        "required": ["task", "inputs"],
    }


@cache
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    patched = copy.deepcopy(schema)
    task = patched["definitions"]["task"]
    task["properties"]["task"]["anyOf"].append({"description": "OIDC credentials", "enum": ["OidcCredentials@1"]})
    task["anyOf"].append(task_branch())
    cls = jsonschema.validators.validator_for(patched)
    cls.check_schema(patched)
    return cls(patched)  # type: ignore[no-any-return]


def schema_errors(document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator().iter_errors(document)]


# ----------------------------------------------------------------------------------------- the checks


def test_the_patch_is_what_makes_our_task_valid() -> None:
    """Unpatched, the schema only knows built-in tasks; patched, it checks our inputs by name."""
    step = {"task": "OidcCredentials@1", "inputs": {"provider": "aws", "awsConnection": "c"}}
    plain = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(plain)
    assert list(cls(plain).iter_errors({"steps": [step]}))
    assert schema_errors({"steps": [step]}) == []
    assert schema_errors({"steps": [{"task": "OidcCredentials@1", "inputs": {"provider": "aws", "awsConection": "c"}}]})
    assert schema_errors({"steps": [{"task": "OidcCredentials@1", "inputs": {"provider": "s3"}}]})
    assert schema_errors({"steps": [{"task": "OidcCredentials@1", "inputs": {"awsConnection": "c"}}]})  # no provider


def test_one_template_per_provider() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.yml")) == [
        "aws.yml",
        "azure.yml",
        "gcp.yml",
        "keyvault.yml",
        "vault.yml",
    ]


class StringScalars(yaml.SafeLoader):
    """YAML as Azure Pipelines reads it: every scalar is a string (the schema is written for that)."""


StringScalars.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@pytest.mark.parametrize("name", ["aws", "azure", "keyvault", "gcp", "vault"])
def test_template_parameters_are_valid_and_all_used(name: str) -> None:
    text = (TEMPLATES / f"{name}.yml").read_text(encoding="utf-8")
    doc = yaml.load(text, Loader=StringScalars)  # noqa: S506 - a SafeLoader subclass
    parameters_schema = {
        "$ref": "#/definitions/templateParameters",
        "definitions": json.loads(SCHEMA.read_text(encoding="utf-8"))["definitions"],
    }
    errors = list(jsonschema.Draft7Validator(parameters_schema).iter_errors(doc["parameters"]))
    assert errors == []
    for spec in doc["parameters"]:
        assert f"parameters.{spec['name']}" in text, f"{name}.yml: parameter {spec['name']} is never used"
    assert next(p["name"] for p in doc["parameters"] if "default" not in p) == "connection"


MINIMAL = {
    "aws": {"connection": "aws-prod"},
    "azure": {"connection": "azure-prod"},
    "keyvault": {"connection": "azure-prod", "keyVault": "payments-kv"},
    "gcp": {"connection": "gcp-prod"},
    "vault": {"connection": "vault-prod"},
}
FULL: dict[str, dict[str, Any]] = {
    "aws": {
        "connection": "aws-prod",
        "roleArn": ROLE,
        "region": "eu-west-1",
        "sessionName": "deploy",
        "sessionDuration": "900",
        "sessionPolicy": '{"Version": "2012-10-17"}',
        "managedSessionPolicies": "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "allowedAccountIds": "123456789012",
        "publishOutputVariables": True,
        "name": "creds",
        "script": "aws sts get-caller-identity",
        "workingDirectory": "infra",
        "env": {"EXTRA": "1"},
    },
    "azure": {
        "connection": "azure-prod",
        "scopes": "https://graph.microsoft.com/.default",
        "name": "az",
        "script": "./deploy.sh",
        "shell": "bash",
        "env": {"AZURE_ACCESS_TOKEN_2": "$(AZURE_ACCESS_TOKEN_2)"},
    },
    "keyvault": {
        "connection": "azure-prod",
        "keyVault": "https://payments-kv.vault.azure.net",
        "secretsFilter": "db-password, api-*",
        "environmentAliases": True,
        "multilineSecrets": "file",
        "secretEnv": {"DB_PASSWORD": "db-password"},
        "script": "./migrate.sh",
        "shell": "pwsh",
    },
    "gcp": {
        "connection": "gcp-prod",
        "serviceAccount": "deployer@payments-prod.iam.gserviceaccount.com",
        "projectId": "payments-prod",
        "tokenLifetime": "1800",
        "scopes": "https://www.googleapis.com/auth/devstorage.read_only",
        "delegates": "hop@payments-prod.iam.gserviceaccount.com",
        "idTokenAudience": "https://api.example.test",
        "idTokenIncludeEmail": True,
        "universe": "googleapis.com",
        "publishOutputVariables": True,
        "name": "gcp",
        "script": "gcloud storage ls",
        "workingDirectory": "infra",
        "env": {"EXTRA": "1"},
    },
    "vault": {
        "connection": "vault-prod",
        "secrets": "secret/app db_password | DB_PASSWORD\n",
        "role": "ado-deploy",
        "mountPath": "azure-devops",
        "namespace": "admin/team",
        "multilineSecrets": "file",
        "caCertificate": "/etc/ssl/vault-ca.pem",
        "publishOutputVariables": True,
        "name": "vault",
        "secretEnv": {"DB_PASSWORD": "DB_PASSWORD"},
        "script": "./migrate.sh",
    },
}
PROVIDER_SECRETS = {
    "aws": set(),  # refresh (the default): the profile, not static keys, which would shadow it
    "azure": {"AZURE_ACCESS_TOKEN"},
    "keyvault": set(),
    "gcp": {"GOOGLE_ID_TOKEN"},  # refresh (the default): the credentials file, not the access token variables
    "vault": {"VAULT_TOKEN", "DB_PASSWORD"},
}
CONNECTION_INPUT = {"aws": "awsConnection", "gcp": "gcpConnection", "vault": "vaultConnection"}
AWS_STATIC = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
GCP_STATIC = {"GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN"}
ACCESS_TOKEN_MAPPING = {"SYSTEM_ACCESSTOKEN": "$(System.AccessToken)"}


@pytest.mark.parametrize("name", ["aws", "azure", "keyvault", "gcp", "vault"])
@pytest.mark.parametrize("variant", ["minimal", "full"])
def test_expansion_is_a_valid_pipeline(name: str, variant: str) -> None:
    params = MINIMAL[name] if variant == "minimal" else FULL[name]
    steps = instantiate(TEMPLATES / f"{name}.yml", params)
    assert schema_errors({"steps": steps}) == []
    task = steps[0]
    assert task["task"] == "OidcCredentials@1" and task["inputs"]["provider"] == name
    connection_input = CONNECTION_INPUT.get(name, "azureConnection")
    assert task["inputs"][connection_input] == params["connection"]
    if variant == "minimal":
        assert len(steps) == 1 and "name" not in task
        return
    script = steps[1]
    assert len(steps) == 2 and script[params.get("shell", "script")] == params["script"]
    env = script["env"]
    assert {k for k, v in env.items() if v == f"$({k})"} >= PROVIDER_SECRETS[name]  # every secret is mapped
    for key, value in params.get("env", {}).items():
        assert env[key] == value
    for key, value in params.get("secretEnv", {}).items():
        assert env[key] == f"$({value})"
    if name in ("aws", "azure", "gcp"):  # what a refreshing helper or a token-minting tool needs
        assert env.items() >= ACCESS_TOKEN_MAPPING.items()
    if name in ("aws", "gcp"):  # nothing that would shadow the refreshing profile or credentials file
        assert (AWS_STATIC | GCP_STATIC).isdisjoint(env)


@pytest.mark.parametrize(("name", "static"), [("aws", AWS_STATIC), ("gcp", GCP_STATIC)])
def test_template_without_refresh_maps_the_static_values(name: str, static: set[str]) -> None:
    steps = instantiate(TEMPLATES / f"{name}.yml", dict(FULL[name], refresh=False))
    assert str(steps[0]["inputs"]["refreshCredentials"]).lower() == "false"
    env = steps[1]["env"]
    assert {k for k, v in env.items() if v == f"$({k})"} >= static and "SYSTEM_ACCESSTOKEN" not in env


@pytest.mark.parametrize("name", ["aws", "azure", "keyvault", "gcp", "vault"])
@pytest.mark.parametrize("shell", ["script", "bash", "pwsh"])
def test_the_script_runs_in_the_shell_picked(name: str, shell: str) -> None:
    params = dict(MINIMAL[name], script="echo hi", shell=shell)
    steps = instantiate(TEMPLATES / f"{name}.yml", params)
    assert schema_errors({"steps": steps}) == []
    assert [k for k in ("script", "bash", "pwsh") if k in steps[1]] == [shell]
    assert steps[1][shell] == "echo hi" and steps[1]["env"] is not None
    # the default is the agent's own shell (bash on Linux and macOS, cmd on Windows)
    assert "script" in instantiate(TEMPLATES / f"{name}.yml", dict(MINIMAL[name], script="echo hi"))[1]


def test_full_aws_inputs_map_one_to_one() -> None:
    inputs = instantiate(TEMPLATES / "aws.yml", FULL["aws"])[0]["inputs"]
    assert inputs == {
        "provider": "aws",
        "awsConnection": "aws-prod",
        "awsRoleArn": ROLE,
        "awsRegion": "eu-west-1",
        "awsSessionName": "deploy",
        "awsSessionDuration": "900",
        "awsSessionPolicy": '{"Version": "2012-10-17"}',
        "awsManagedSessionPolicies": "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "awsAllowedAccountIds": "123456789012",
        "publishOutputVariables": True,
    }


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("aws", {}, "A value for the 'connection' parameter must be provided."),
        ("keyvault", {"connection": "c"}, "A value for the 'keyVault' parameter must be provided."),
        ("aws", {"connection": "c", "regoin": "x"}, "Unexpected parameter(s): ['regoin']"),
        (
            "aws",
            {"connection": "c", "publishOutputVariables": "yes"},
            "'publishOutputVariables' parameter is not a valid boolean",
        ),
        (
            "keyvault",
            {"connection": "c", "keyVault": "v", "multilineSecrets": "zip"},
            "value 'zip' is not a valid value",
        ),
        ("azure", {"connection": "c", "script": "x", "shell": "zsh"}, "value 'zsh' is not a valid value"),
    ],
)
def test_parameter_mistakes_are_refused(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        instantiate(TEMPLATES / f"{name}.yml", params)


def readme_pipelines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "overview.md").read_text(encoding="utf-8")
    return [block for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "template: templates/" in block]


def test_documented_template_usage_is_valid() -> None:
    """The README/overview examples: resources.repositories + `- template: templates/<x>.yml@tools`."""
    blocks = readme_pipelines()
    assert blocks, "README.md shows how to use the templates"
    for block in blocks:
        doc = yaml.safe_load(block)
        assert schema_errors(doc) == [], block
        aliases = {r["repository"] for r in doc["resources"]["repositories"]}
        for step in doc["steps"]:
            path, _, alias = step["template"].partition("@")
            assert alias in aliases and (ROOT / path).is_file(), step
            steps = instantiate(ROOT / path, step.get("parameters", {}))
            assert schema_errors({"steps": steps}) == []


# ----------------------------------------------------------------------------------- running the steps


def agent_inputs(inputs: dict[str, Any], connection_ids: dict[str, str]) -> dict[str, str]:
    """Task inputs as the agent passes them: strings, connections resolved from name to id."""
    out = {}
    for key, value in inputs.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[key] = connection_ids.get(text, text) if key.endswith("Connection") else text
    return out


def macro(value: str, variables: dict[str, str]) -> str:
    """``$(name)`` as the agent expands it at run time; unknown names stay as they are."""
    return re.sub(r"\$\(([\w.\-]+)\)", lambda m: variables.get(m[1], m[0]), value)


def run_script(
    step: dict[str, Any], run: TaskRun, base_env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """A `script:` or `bash:` step: plain variables as environment, secret ones only through its env: mapping."""
    env = dict(base_env)
    env.update({k.upper().replace(".", "_"): v for k, v in run.variables.items() if k not in run.secret_names})
    env.update({k: macro(str(v), run.variables) for k, v in step.get("env", {}).items()})
    body = step["script"] if "script" in step else step["bash"]
    return subprocess.run(
        ["bash", "-c", body], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


CHECK_AWS = """
import os, sys, boto3
profile = os.environ.get("EXPECT") == "profile"
assert ("AWS_SECRET_ACCESS_KEY" in os.environ) != profile and ("AWS_PROFILE" in os.environ) == profile, "mapping"
assert os.environ.get("SYSTEM_ACCESSTOKEN", "") != "$(System.AccessToken)"
sts = boto3.client("sts", endpoint_url=os.environ["STS_URL"], region_name=os.environ["AWS_REGION"])
print(sts.get_caller_identity()["Arn"])
"""


@pytest.mark.parametrize("refresh", [True, False])
def test_aws_template_runs_task_then_script(
    ado: AzureDevOps, job: AgentJob, moto_url: str, tmp_path: Path, refresh: bool
) -> None:
    checker = tmp_path / "check_aws.py"
    checker.write_text(CHECK_AWS)
    steps = instantiate(
        TEMPLATES / "aws.yml",
        {
            "connection": "aws-prod",
            "region": "eu-west-1",
            "sessionDuration": "900",
            "refresh": refresh,
            "script": f'"$TEST_PYTHON" {checker}',
            "shell": "bash",
            "env": {"TEST_PYTHON": sys.executable, "STS_URL": moto_url, "EXPECT": "profile" if refresh else "static"},
        },
    )
    conn = ado.add_connection("aws-prod")
    job.inputs(**agent_inputs(steps[0]["inputs"], {"aws-prod": conn.id}))
    job.endpoint(conn.id, url=moto_url, scheme="None", params={"roleArn": ROLE})
    run = job.run()
    assert not run.failed, run.text
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    run.variables["System.AccessToken"] = ado.access_token  # what $(System.AccessToken) expands to
    done = run_script(steps[1], run, base, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1"
    # without the template's env: mapping the secret would not be there (the agent's rule)
    unmapped = dict(steps[1], env={k: v for k, v in steps[1]["env"].items() if k not in AWS_STATIC})
    assert (run_script(unmapped, run, base, tmp_path).returncode == 0) == refresh


CHECK_AZURE = """
import os, requests
r = requests.get(os.environ["ARM_URL"] + "/subscriptions?api-version=2022-12-01",
                 headers={"Authorization": "Bearer " + os.environ["AZURE_ACCESS_TOKEN"]}, verify=os.environ["CA"], timeout=10)
r.raise_for_status()
print(r.json()["value"][0]["subscriptionId"], os.environ["AZURE_SUBSCRIPTION_ID"])
"""


def test_azure_template_runs_task_then_script(job: AgentJob, world: AzureWorld, ca: LocalCA, tmp_path: Path) -> None:
    checker = tmp_path / "check_azure.py"
    checker.write_text(CHECK_AZURE)
    steps = instantiate(
        TEMPLATES / "azure.yml",
        {
            "connection": "azure-prod",
            "script": f'"$TEST_PYTHON" {checker}',
            "env": {"TEST_PYTHON": sys.executable, "ARM_URL": world.url, "CA": ca.bundle},
        },
    )
    world.endpoint(job.inputs(**agent_inputs(steps[0]["inputs"], {"azure-prod": world.connection_id})))
    run = job.run()
    assert not run.failed, run.text
    done = run_script(steps[1], run, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, tmp_path)
    assert done.returncode == 0, done.stderr
    subscription = world.tenant.subscriptions[0]
    assert done.stdout.split() == [subscription, subscription]  # the token works; plain variables arrive too


CHECK_GCP = """
import os, requests, google.auth, google.auth.transport.requests
creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
creds.refresh(google.auth.transport.requests.Request())
assert "GOOGLE_OAUTH_ACCESS_TOKEN" not in os.environ  # refresh: the file, and nothing that would shadow it
for token in (creds.token,):
    r = requests.get(os.environ["BUCKET"], headers={"Authorization": "Bearer " + token}, timeout=10)
    r.raise_for_status()
    print(r.json()["caller"], project)
"""


def test_gcp_template_runs_task_then_script(ado: AzureDevOps, ca: LocalCA, job: AgentJob, tmp_path: Path) -> None:
    from tests.test_gcp import SA, make_world

    checker = tmp_path / "check_gcp.py"
    checker.write_text(CHECK_GCP)
    for world in make_world(ado, ca):
        steps = instantiate(
            TEMPLATES / "gcp.yml",
            {
                "connection": "gcp-prod",
                "script": f'"$TEST_PYTHON" {checker}',
                "env": {
                    "TEST_PYTHON": sys.executable,
                    "BUCKET": world.url + "/storage/v1/b/artifacts/o",
                    "REQUESTS_CA_BUNDLE": ca.bundle,
                },
            },
        )
        inputs = agent_inputs(steps[0]["inputs"], {"gcp-prod": world.conn.id})
        job.inputs(**inputs, gcpIamCredentialsUrl=world.url)
        job.endpoint(
            world.conn.id,
            url=world.url,
            scheme="None",
            params={"workloadIdentityProvider": world.provider.name, "serviceAccount": SA},
        )
        run = job.run()
        assert not run.failed, run.text
        run.variables["System.AccessToken"] = ado.access_token  # what $(System.AccessToken) expands to
        done = run_script(steps[1], run, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [f"serviceAccount:{SA}", "payments-prod"]


CHECK_VAULT = """
import os, requests
r = requests.get(os.environ["VAULT_ADDR"] + "/v1/secret/data/ado/app", headers={"X-Vault-Token": os.environ["VAULT_TOKEN"]}, timeout=10)
r.raise_for_status()
print(r.json()["data"]["data"]["db_password"] == os.environ["DB_PASSWORD"])
"""


def test_vault_template_runs_task_then_script(openbao: Any, ado: AzureDevOps, job: AgentJob, tmp_path: Path) -> None:
    from tests.test_vault import make_world

    world = make_world(openbao, ado)
    checker = tmp_path / "check_vault.py"
    checker.write_text(CHECK_VAULT)
    steps = instantiate(
        TEMPLATES / "vault.yml",
        {
            "connection": "vault-prod",
            "role": "ado-pipeline",
            "secrets": "secret/ado/app db_password | DB_PASSWORD\n",
            "secretEnv": {"DB_PASSWORD": "DB_PASSWORD"},
            "script": f'"$TEST_PYTHON" {checker}',
            "env": {"TEST_PYTHON": sys.executable},
        },
    )
    job.inputs(**agent_inputs(steps[0]["inputs"], {"vault-prod": world.conn.id}))
    job.endpoint(world.conn.id, url=openbao.addr, scheme="None", params={"role": "someone-else"})
    run = job.run()
    assert not run.failed, run.text
    done = run_script(steps[1], run, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # VAULT_ADDR arrives as a plain variable, the rest through env:
