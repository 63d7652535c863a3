"""Every command, option, call and setting on the cheatsheet exists in the pinned MLflow."""

import ast
import inspect
import re
import shlex

import click
import pytest

from book_fixtures import BOOK

PAGE = (BOOK / "appendix" / "cheatsheet.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", PAGE, re.S | re.M)


def command_lines() -> list[str]:
    return [line for block in blocks("shell") for line in block.splitlines()
            if line.startswith("mlflow ")]


def test_the_page_has_what_it_promises():
    assert len(command_lines()) >= 10 and len(blocks("python")) == 1


@pytest.mark.parametrize("line", command_lines())
def test_each_command_and_option_is_in_mlflows_help(line):
    from mlflow.cli import cli

    words = shlex.split(line.split(" #")[0])[1:]
    command, context = cli, click.Context(cli)
    while isinstance(command, click.Group):
        name = words.pop(0)
        command = command.get_command(context, name)
        assert command is not None, f"mlflow has no command {name!r}: {line}"
        assert not command.deprecated, f"deprecated: {line}"
    options = {opt for param in command.params for opt in param.opts}
    used = [word.split("=")[0] for word in words if word.startswith("-")]
    unknown = [opt for opt in used if opt not in options]
    assert not unknown, f"{line}: not options of this command: {unknown}"


def calls() -> list[ast.Call]:
    tree = ast.parse(blocks("python")[0])
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def dotted(node) -> str:
    return f"{dotted(node.value)}.{node.attr}" if isinstance(node, ast.Attribute) else getattr(
        node, "id", "")


def resolve(name: str):
    import mlflow
    import mlflow.genai  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    from mlflow import MlflowClient

    root, *parts = name.split(".")
    target = {"mlflow": mlflow, "client": MlflowClient, "span": mlflow.entities.LiveSpan}[root]
    for part in parts:
        target = getattr(target, part)
    return target


def test_each_call_exists_takes_its_keywords_and_is_not_deprecated():
    from mlflow.utils.annotations import is_marked_deprecated

    checked = []
    for call in calls():
        name = dotted(call.func)
        if name.split(".")[0] not in ("mlflow", "client", "span"):
            continue
        function = resolve(name)
        assert not is_marked_deprecated(function), f"{name} is deprecated"
        for keyword in call.keywords:  # MLflow's docstrings name a deprecated argument so
            assert f"``{keyword.arg}`` is deprecated" not in (function.__doc__ or ""), name
        parameters = inspect.signature(function).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            unknown = [k.arg for k in call.keywords if k.arg not in parameters]
            assert not unknown, f"{name} takes no {unknown}"
        checked.append(name)
    assert len(checked) >= 20, checked


def test_each_setting_is_one_mlflow_reads():
    from mlflow import environment_variables
    from mlflow.cli import cli

    context = click.Context(cli)
    read_by_commands = {param.envvar for name in cli.list_commands(context)
                        for param in getattr(cli.get_command(context, name), "params", [])
                        if isinstance(param.envvar, str)}
    settings = re.findall(r"^\| `(MLFLOW_\w+)`(?:, `(MLFLOW_\w+)`)?", PAGE, re.M)
    names = [name for row in settings for name in row if name]
    assert len(names) >= 5
    for name in names:
        assert hasattr(environment_variables, name) or name in read_by_commands, name
