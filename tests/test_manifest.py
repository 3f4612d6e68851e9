"""task.json and vss-extension.json: schema, the public contract, the connection types, one version.

task.json is validated with jsonschema against shared/schemas/tasks.schema.json (tfx only warns); the
connection types' validation patterns are run on good and bad values (the service evaluates them as
JavaScript regular expressions; these use only syntax that means the same in Python). tfx itself is
run on a broken task.json to show ``make package`` refuses its warnings.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.harness import ROOT, SCHEMAS

sys.path.append(str(ROOT / "packaging"))  # appended: nothing there may shadow an installed module

import icon
import make_package
import versioning

TASK = json.loads((ROOT / "task.json").read_text(encoding="utf-8"))
EXTENSION = json.loads((ROOT / "vss-extension.json").read_text(encoding="utf-8"))
TASKS_SCHEMA = SCHEMAS / "tasks.schema.json"


def inputs() -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in TASK["inputs"]}


def endpoint_types() -> dict[str, dict[str, Any]]:
    return {
        c["properties"]["name"]: c
        for c in EXTENSION["contributions"]
        if c["type"] == "ms.vss-endpoint.service-endpoint-type"
    }


# ------------------------------------------------------------------------------------------- task.json


def test_task_json_is_schema_valid() -> None:
    schema = json.loads(TASKS_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(TASK)]
    assert errors == []


def test_task_json_breakage_is_caught_by_the_schema() -> None:
    """The schema check above can fail: an underscore in an input name, an unknown handler."""
    schema = json.loads(TASKS_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    bad = json.loads(json.dumps(TASK))
    bad["inputs"][0]["name"] = "aws_region"
    bad["execution"]["Python3"] = {"target": "x.py"}
    assert len(list(validator.iter_errors(bad))) >= 2


def test_task_contract() -> None:
    assert TASK["name"] == "OidcCredentials" and TASK["version"]["Major"] == 1
    assert re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", TASK["id"])
    assert 1 <= len(TASK["friendlyName"]) <= 40  # tfx's limit
    assert set(TASK["execution"]) == {"Node20_1", "Node24"}
    for handler in TASK["execution"].values():
        assert handler["target"] == "task/launcher.js" and (ROOT / handler["target"]).is_file()
    assert re.fullmatch(r"\d+\.\d+\.\d+", TASK["minimumAgentVersion"])
    found = inputs()
    assert found["provider"]["type"] == "pickList" and list(found["provider"]["options"]) == [
        "aws",
        "azure",
        "keyvault",
        "gcp",
        "vault",
    ]
    assert found["awsConnection"]["type"] == "connectedService:OidcCredentialsAws"
    assert found["azureConnection"]["type"] == "connectedService:AzureRM"
    assert found["gcpConnection"]["type"] == "connectedService:OidcCredentialsGcp"
    assert found["vaultConnection"]["type"] == "connectedService:OidcCredentialsVault"
    for name in ("awsRoleArn", "awsRegion", "awsSessionName", "awsSessionDuration", "keyVault", "secretsFilter"):
        assert found[name]["type"] == "string", name
    assert (
        found["azureScopes"]["type"] == "multiLine"
        and found["azureScopes"]["defaultValue"] == "https://management.azure.com/.default"
    )
    assert found["secretsFilter"]["defaultValue"] == "*"
    for name, spec in found.items():
        assert spec.get("helpMarkDown"), f"input {name} has no help text"


def test_visible_rules_and_groups_refer_to_what_exists() -> None:
    found = inputs()
    groups = {g["name"] for g in TASK["groups"]}
    rules = [(i["name"], i["visibleRule"]) for i in TASK["inputs"] if "visibleRule" in i]
    rules += [(g["name"], g["visibleRule"]) for g in TASK["groups"] if "visibleRule" in g]
    for owner, rule in rules:
        for name, value in re.findall(r"(\w+)\s*(?:=|!=)\s*(\w+)", rule):
            assert name in found, f"{owner}: visibleRule names unknown input {name}"
            if "options" in found[name]:
                assert value in found[name]["options"], f"{owner}: {name} has no option {value}"
    for spec in TASK["inputs"]:
        assert spec.get("groupName", "aws") in groups


def _runtime_required() -> set[str]:
    """The inputs the task's code refuses to run without: ``.input("x", required=True)`` anywhere in the
    package, and each provider's connection input (``CONNECTION_INPUT``)."""
    found = {"provider"}
    for path in (ROOT / "task" / "oidc_credentials").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "input"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and any(k.arg == "required" and getattr(k.value, "value", False) is True for k in node.keywords)
            ):
                found.add(node.args[0].value)
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "CONNECTION_INPUT" for t in node.targets
            ):
                assert isinstance(node.value, ast.Constant)
                found.add(node.value.value)
    return found


def test_inputs_required_at_run_time_are_required_in_the_editor() -> None:
    """The editor marks required exactly what the task fails without; a required input hidden by its
    visibleRule is not enforced while hidden, so each one but the provider is shown only where it applies."""
    required = {name for name, spec in inputs().items() if spec.get("required")}
    assert required == _runtime_required()
    assert "keyVault" in required
    for name in required - {"provider"}:
        assert "visibleRule" in inputs()[name], f"required input {name} must be hidden where it does not apply"


def test_every_input_help_says_its_default_and_gives_an_example() -> None:
    for name, spec in inputs().items():
        text = spec["helpMarkDown"]
        assert re.search(r"Example: `[^`]+`", text), f"input {name}: no example"
        if "defaultValue" in spec:
            assert f"Default: `{spec['defaultValue']}`" in text, f"input {name}: help does not name its default"
        elif spec.get("required"):
            assert "no default" in text, f"input {name}: help must say it has no default"
        else:
            assert re.search(r"Default: \S", text), f"input {name}: help does not say what happens when empty"
        if spec["type"] == "pickList":
            for option in spec["options"]:
                assert f"`{option}`" in text, f"input {name}: help does not explain option {option}"


def test_every_provider_offered_runs() -> None:
    """Each pick-list entry is a provider module with configure and exchange, and each connection type the
    extension contributes is the connection input of a provider offered."""
    import importlib

    from oidc_credentials.providers import PROVIDERS

    offered = list(inputs()["provider"]["options"])
    assert offered == list(PROVIDERS)
    connection_types = set()
    for name in offered:
        module = importlib.import_module(PROVIDERS[name])
        assert callable(module.configure) and callable(module.exchange), name
        spec = inputs()[module.CONNECTION_INPUT]
        assert re.search(rf"\bprovider = {name}\b", spec["visibleRule"]), (name, spec["visibleRule"])
        connection_types.add(spec["type"].split(":", 1)[1])
    assert set(endpoint_types()) <= connection_types


# ---------------------------------------------------------------------------------- vss-extension.json


def test_extension_contributes_the_task_from_the_packaged_folder() -> None:
    tasks = [c for c in EXTENSION["contributions"] if c["type"] == "ms.vss-distributed-task.task"]
    assert len(tasks) == 1 and tasks[0]["targets"] == ["ms.vss-distributed-task.tasks"]
    assert tasks[0]["properties"]["name"] == TASK["name"] == make_package.TASK_NAME
    assert [f["path"] for f in EXTENSION["files"]] == [make_package.TASK_NAME]
    assert EXTENSION["content"]["details"]["path"] == "overview.md" and (ROOT / "overview.md").is_file()
    assert "overview.md" in make_package.EXTENSION_FILES
    assert EXTENSION["targets"] == [{"id": "Microsoft.VisualStudio.Services"}]


FIELDS = {
    # connection type -> (URL default, {field: (required, good values, bad values)})
    "OidcCredentialsAws": (
        "https://sts.amazonaws.com",
        {
            "roleArn": (
                True,
                ["arn:aws:iam::123456789012:role/deploy", "arn:aws-us-gov:iam::123456789012:role/path/to/x"],
                ["arn:aws:iam::1234:role/x", "role/deploy", ""],
            ),
            "region": (False, ["eu-west-1", "us-gov-west-1", ""], ["EU-WEST-1", "eu-west"]),
        },
    ),
    "OidcCredentialsGcp": (
        "https://sts.googleapis.com",
        {
            "workloadIdentityProvider": (
                True,
                [
                    "projects/123456/locations/global/workloadIdentityPools/ado/providers/ado-fabrikam",
                    "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
                ],
                ["projects/my-project/locations/global/workloadIdentityPools/ado/providers/x", "ado-fabrikam"],
            ),
            "serviceAccount": (False, ["deployer@my-project.iam.gserviceaccount.com", ""], ["deployer", "a@b@c"]),
        },
    ),
    "OidcCredentialsVault": (
        None,
        {
            "role": (True, ["ado-deploy", "team.role@x"], ["", "has space", "a/b"]),
            "mountPath": (False, ["jwt", "azure-devops/jwt", ""], ["/jwt", "jwt/", "a//b"]),
            "namespace": (False, ["admin/team-a", "admin/", ""], ["/admin", "a b"]),
        },
    ),
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_connection_types(name: str) -> None:
    types = endpoint_types()
    assert set(types) == set(FIELDS)
    props = types[name]["properties"]
    assert types[name]["targets"] == ["ms.vss-endpoint.endpoint-types"]
    assert props["displayName"] and props["helpMarkDown"]
    url_default, fields = FIELDS[name]
    if url_default:
        assert props["url"]["value"] == url_default
    assert props["url"]["isVisible"] == "true" and props["url"]["displayName"]
    schemes = props["authenticationSchemes"]
    assert [s["type"] for s in schemes] == ["ms.vss-endpoint.endpoint-auth-scheme-none"]
    descriptors = {d["id"]: d for d in schemes[0]["inputDescriptors"]}
    assert set(descriptors) == set(fields)
    for field, (required, good, bad) in fields.items():
        spec = descriptors[field]
        assert spec["name"] and len(spec["description"]) > 20, f"{name}.{field}: help text"
        assert spec["isConfidential"] is False, "no connection field is a secret"
        validation = spec["validation"]
        assert validation["isRequired"] is required and validation["dataType"] == "string"
        assert validation["patternMismatchErrorMessage"]
        pattern = re.compile(validation["pattern"])
        for value in good:
            assert pattern.search(value), f"{name}.{field} should accept {value!r}"
        for value in bad:
            if value == "" and not required:
                continue
            assert not pattern.search(value), f"{name}.{field} should refuse {value!r}"


def test_no_stored_secret_anywhere() -> None:
    for contribution in endpoint_types().values():
        for scheme in contribution["properties"]["authenticationSchemes"]:
            assert all(
                not d.get("isConfidential") and d.get("inputMode") != "passwordbox" for d in scheme["inputDescriptors"]
            )


# ------------------------------------------------------------------------------------------- versions


def test_one_version_everywhere() -> None:
    version = versioning.read_version()
    assert versioning.versions_in() == dict.fromkeys(versioning.STAMPS, version)
    assert EXTENSION["version"] == version


def test_stamping_a_new_version(tmp_path: Path) -> None:
    for name in versioning.STAMPS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    before = {name: (tmp_path / name).read_text(encoding="utf-8") for name in versioning.STAMPS}
    changed = versioning.stamp(tmp_path, "2.13.7")
    assert sorted(changed) == sorted(versioning.STAMPS)
    assert versioning.versions_in(tmp_path) == dict.fromkeys(versioning.STAMPS, "2.13.7")
    task = json.loads((tmp_path / "task.json").read_text(encoding="utf-8"))
    assert task["version"] == {"Major": 2, "Minor": 13, "Patch": 7}
    for name, text in before.items():  # only the version line changed; formatting kept
        after = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        diff = [(a, b) for a, b in zip(text.splitlines(), after) if a != b]
        assert len(after) == len(text.splitlines()) and len(diff) == 1, (name, diff)
    assert versioning.stamp(tmp_path, "2.13.7") == []  # idempotent
    with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
        bad = tmp_path / "VERSION"
        bad.write_text("2.0\n")
        versioning.read_version(bad)


# ------------------------------------------------------------------------------------ tfx and warnings


def _mini_extension(root: Path, task: dict[str, Any]) -> Path:
    folder = root / make_package.TASK_NAME
    (folder / "task").mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps(task), encoding="utf-8")
    for name in make_package.TASK_FILES:  # every handler target (execution, postjobexecution)
        shutil.copy2(ROOT / "task" / name, folder / "task" / name)
    for name in make_package.EXTENSION_FILES:
        shutil.copy2(ROOT / name, root / name)
    icon.write(root / make_package.EXTENSION_ICON, folder / make_package.TASK_ICON)
    return root


@pytest.mark.skipif(not (ROOT / "node_modules" / ".bin" / "tfx").exists(), reason="run make setup (npm ci) first")
def test_tfx_accepts_the_task_and_its_warnings_fail_the_build(tmp_path: Path) -> None:
    good = _mini_extension(tmp_path / "good", TASK)
    vsix = make_package.tfx(tmp_path / "out-good", root=good)
    assert vsix.name == f"oidc-credentials.oidc-credentials-{versioning.read_version()}.vsix"
    broken = dict(TASK, name="Oidc_Credentials")  # tfx: a warning, exit code 0
    bad = _mini_extension(tmp_path / "bad", broken)
    with pytest.raises(make_package.PackageError, match=r"warning\(s\) treated as errors"):
        make_package.tfx(tmp_path / "out-bad", root=bad)


def test_post_job_step_is_the_launcher_in_post_mode() -> None:
    """postjobexecution has the same handlers as execution, and its target runs the launcher's post mode."""
    assert set(TASK["postjobexecution"]) == set(TASK["execution"]) == {"Node20_1", "Node24"}
    for handler in TASK["postjobexecution"].values():
        assert handler["target"] == "task/post.js" and (ROOT / handler["target"]).is_file()
    assert "require('./launcher').main(['post'])" in (ROOT / "task" / "post.js").read_text(encoding="utf-8")


def test_the_install_hint_names_the_runtime_dependencies() -> None:
    import bundle_deps
    import oidc_credentials

    project = versioning.load_toml(ROOT / "pyproject.toml")["project"]
    # the task's own dependencies: the project's less those only the CLI imports (not in the .vsix either)
    assert list(oidc_credentials.REQUIREMENTS) == bundle_deps.task_requirements()[0]
    assert set(project["dependencies"]) - set(oidc_credentials.REQUIREMENTS) == {"azure-devops>=7.1.0b4"}
    hint = oidc_credentials.install_hint("/opt/py/bin/python3")
    assert hint.startswith("/opt/py/bin/python3 -m pip install ") and '"requests>=2.31"' in hint
    assert project["scripts"]["oidc-credentials"] == "oidc_credentials.cli:main"


def test_packaging_stamps_the_staged_copies_not_the_tracked_files(tmp_path: Path) -> None:
    tracked = {name: (ROOT / name).read_text(encoding="utf-8") for name in versioning.STAMPS}
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "manifest.json").write_text(json.dumps({"targets": {}}))
    folder = make_package.stage(deps, dest=tmp_path / "extension" / make_package.TASK_NAME, version="9.8.7")
    staged = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    assert staged["version"] == {"Major": 9, "Minor": 8, "Patch": 7}
    assert json.loads((folder.parent / "vss-extension.json").read_text(encoding="utf-8"))["version"] == "9.8.7"
    assert '__version__ = "9.8.7"' in (folder / "task" / "oidc_credentials" / "__init__.py").read_text()
    assert (folder / "task" / "post.js").is_file()
    source = make_package.python_source("9.8.7", dest=tmp_path / "python-src")
    assert versioning.load_toml(source / "pyproject.toml")["project"]["version"] == "9.8.7"
    assert '__version__ = "9.8.7"' in (source / "task" / "oidc_credentials" / "__init__.py").read_text()
    assert {name: (ROOT / name).read_text(encoding="utf-8") for name in versioning.STAMPS} == tracked


@pytest.mark.skipif(not (ROOT / "node_modules" / ".bin" / "tfx").exists(), reason="run make setup (npm ci) first")
def test_tfx_builds_for_another_publisher(tmp_path: Path) -> None:
    """`make package PUBLISHER=contoso-devops EXTENSION_ID=oidc-contoso`: the .vsix is that publisher's."""
    root = _mini_extension(tmp_path / "ext", TASK)
    vsix = make_package.tfx(tmp_path / "out", root=root, publisher="contoso-devops", extension_id="oidc-contoso")
    assert vsix.name == f"contoso-devops.oidc-contoso-{versioning.read_version()}.vsix"
    with zipfile.ZipFile(vsix) as archive:
        manifest = archive.read("extension.vsixmanifest").decode("utf-8")
        names = archive.namelist()
    assert '<Identity Language="en-US" Id="oidc-contoso" Version="' in manifest
    assert 'Publisher="contoso-devops"' in manifest and "oidc-credentials" not in manifest.split("<Identity")[1][:200]
    assert "images/icon.png" in names and f"{make_package.TASK_NAME}/icon.png" in names
    assert '"publisher": "oidc-credentials"' in (ROOT / "vss-extension.json").read_text(encoding="utf-8")  # untouched
    with pytest.raises(make_package.PackageError, match="not a marketplace id"):
        make_package.tfx(tmp_path / "bad", root=root, publisher="Contoso DevOps")


def test_package_options_come_from_make_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """make exports its command-line variables to the recipe, so PUBLISHER= and EXTENSION_ID= reach it."""
    seen: dict[str, Any] = {}

    def fake_tfx(output: Path, root: Path = make_package.EXTENSION, **kwargs: str) -> Path:
        seen.update(kwargs, output=output)
        raise make_package.PackageError("stop here")

    monkeypatch.setattr(make_package, "tfx", fake_tfx)
    monkeypatch.setattr(make_package.bundle_deps, "bundle", lambda build: build)
    monkeypatch.setattr(make_package, "stage", lambda deps, **_kwargs: make_package.STAGE)
    monkeypatch.setenv("PUBLISHER", "contoso-devops")
    monkeypatch.setenv("EXTENSION_ID", "oidc-contoso")
    assert make_package.main(["--skip-python"]) == 1
    assert seen == {"publisher": "contoso-devops", "extension_id": "oidc-contoso", "output": make_package.DIST}


def test_icon_is_a_drawn_128_pixel_png(tmp_path: Path) -> None:
    from PIL import Image

    extension_icon, task_icon = icon.write(tmp_path / "images" / "icon.png", tmp_path / "task" / "icon.png")
    assert EXTENSION["icons"] == {"default": make_package.EXTENSION_ICON}
    assert extension_icon.read_bytes() == task_icon.read_bytes()
    with Image.open(extension_icon) as image:
        assert image.format == "PNG" and image.size == (128, 128) and image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0  # rounded corners are transparent
        assert image.getpixel((64, 64))[3] == 255
        colours = image.getcolors(maxcolors=128 * 128)
        assert colours is not None and len(colours) > 50  # a drawing, not a flat square


def test_marketplace_listing_fields() -> None:
    assert EXTENSION["categories"] == ["Azure Pipelines"]  # one of the marketplace's Azure DevOps categories
    assert EXTENSION["public"] is False  # shared privately with an organisation, see the README
    tags = EXTENSION["tags"]
    assert tags and len(set(tags)) == len(tags) and all(t.strip() == t and "," not in t for t in tags)
