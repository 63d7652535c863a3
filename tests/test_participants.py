"""Names that never collide: each learner sets `participant`, and every experiment and
registered model a chapter creates carries it. Five learners run chapters at once against
one room server, each signed in with their own account (as the roster makes them)."""

import ast
import multiprocessing
import os
import re
import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
import requests
from IPython.core.inputtransformer2 import TransformerManager
from mlflow import MlflowClient

from mlops_course import roster, services
from mlops_course.execute import NotebookExecutionError, execute_notebook
from mlops_course.testing import notebook_path

# What each chapter creates, named as the book prints it (participant empty).
BOOK_NAMES = {
    "01_concepts": {"01-concepts", "wine-quality-concepts"},
    "02_setup": {"02-setup"},
    "03_tracking": {"03-tracking-by-hand", "03-scratchpad"},
    "04_training": {"04-wine-training", "04-logging-speed"},
    "05_models": {"05-models"},
    "06_projects": {"06-projects"},
    "07_serving": {"07-serving"},
    "08_registry": {"08-registry", "08-wine-quality", "08-wine-quality-scratch",
                    "08-wine-quality-renamed"},
    "09_team_server": {"09-team", "09-laptop", "09-alice-sandbox", "09-wine-quality"},
    "11_scaling": {"11-scaling", "11-wine-quality", "11-{team}-wine-r{region}",
                   "11-{team}-wine-r07"},
}
SUFFIX = 'suffix = f"-{participant}" if participant else ""'
# MLflow calls that name an experiment or a registered model: the argument's position.
NAME_ARGUMENT = {"set_experiment": 0, "create_experiment": 0, "get_experiment_by_name": 0,
                 "create_registered_model": 0, "register_model": 1}
NAME_KEYWORDS = {"experiment_name", "experiment_names", "registered_model_name"}
# A name written out in a string: a models:/ URI or a shell command's experiment.
LITERAL_NAME = re.compile(r"models:/[\w-]+[@/]|--experiment-name [\w-]")

LEARNERS = ("ana", "ben", "chloe", "dev", "eli")
# Chapters 1, 4 and 8 run against a shared server as they are. Chapter 3 never does: it
# teaches the local store itself (its mlruns/ folder, the rows of its mlflow.db, `mlflow ui`
# over that file).
ON_A_SERVER = ("01_concepts", "04_training", "08_registry")
EXPERIMENTS = ("01-concepts", "04-wine-training", "04-logging-speed", "08-registry")
# The registered models that outlive their chapter: model -> (experiment, @champion's run)
MODELS = {"wine-quality-concepts": ("01-concepts", "first-model"),
          "08-wine-quality": ("08-registry", "challenger")}
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def code_trees(name: str) -> list[ast.Module]:
    """Each code cell of a chapter as Python (shell lines such as `!mlflow` become calls)."""
    nb = nbformat.read(notebook_path(name), as_version=4)
    transform = TransformerManager().transform_cell
    return [ast.parse(transform(c.source)) for c in nb.cells if c.cell_type == "code"]


def names_with_suffix(trees: list[ast.Module]) -> set[str]:
    """Every name made in an f-string with `{suffix}`, as it reads with suffix empty
    (other variables in it kept as `{team}`); search filters, which hold spaces, left out."""
    found = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.JoinedStr):
            parts = [p.value if isinstance(p, ast.Constant) else f"{{{p.value.id}}}"
                     if isinstance(p.value, ast.Name) else None for p in node.values]
            if "{suffix}" in parts and None not in parts:
                name = "".join(p for p in parts if p != "{suffix}")
                if not re.search(r"\s", name):
                    found.add(name)
    return found


def literal_names(trees: list[ast.Module]) -> list[str]:
    """The places where a chapter names an experiment or model in a plain string."""
    found = []
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call):
            call = getattr(node.func, "attr", getattr(node.func, "id", ""))
            given = [k.value for k in node.keywords if k.arg in NAME_KEYWORDS]
            if call in NAME_ARGUMENT and len(node.args) > NAME_ARGUMENT[call]:
                given.append(node.args[NAME_ARGUMENT[call]])
            given += [e for g in given if isinstance(g, ast.List) for e in g.elts]
            found += [ast.unparse(g) for g in given
                      if isinstance(g, ast.Constant) and isinstance(g.value, str)]
        elif isinstance(node, ast.Dict):  # an environment for a child process
            found += [ast.unparse(v) for k, v in zip(node.keys, node.values)
                      if isinstance(k, ast.Constant) and k.value == "MLFLOW_EXPERIMENT_NAME"
                      and isinstance(v, ast.Constant)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += LITERAL_NAME.findall(node.value)
    return found


@pytest.mark.parametrize("name", sorted(BOOK_NAMES))
def test_participant_defaults_to_empty_and_leaves_the_book_names(name):
    nb = nbformat.read(notebook_path(name), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    (at,) = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    defaults = {s.targets[0].id: s.value for s in ast.parse(code[at].source).body}
    assert isinstance(defaults.get("participant"), ast.Constant), 'participant = ""'
    assert defaults["participant"].value == ""
    assert SUFFIX in code[at + 1].source.splitlines(), "the cell after the parameters"
    trees = code_trees(name)
    assert names_with_suffix(trees) == BOOK_NAMES[name]
    assert literal_names(trees) == [], "a name without the participant's suffix"


def learn(learner: str, password: str, server: str, folder: Path) -> list[str]:
    """One learner, signed in with their card, runs the chapters in order; what failed.

    Runs in a process of its own: the card is in its environment, as in a learner's shell.
    """
    os.environ.update(dict(zip(CREDENTIALS, (learner, password))))
    failures = []
    for chapter in ON_A_SERVER:
        try:
            execute_notebook(notebook_path(chapter), folder / f"{chapter}.ipynb",
                             timeout=1800, scratch_dir=folder / chapter,
                             parameters={"tracking_uri": server, "participant": learner})
        except NotebookExecutionError as error:
            failures.append(str(error))
    return failures


@pytest.mark.slow
def test_five_learners_in_parallel_on_one_server(tmp_path, monkeypatch):
    admin_password = secrets.token_urlsafe(16)
    # The password cache spares each request a slow hash: 1,000 calls in chapter 4 alone.
    with services.start_sign_in_server(
            tmp_path, admin_password, auth_settings="auth_cache_ttl_seconds = 60\n") as server:
        url = server.origin
        monkeypatch.setenv(CREDENTIALS[0], "admin")
        monkeypatch.setenv(CREDENTIALS[1], admin_password)
        cards = {card.username: card.password for card in roster.create(url, LEARNERS)[0]}
        for variable in CREDENTIALS:  # the learners never hold the admin's password
            monkeypatch.delenv(variable)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(LEARNERS), mp_context=spawn) as pool:
            futures = [pool.submit(learn, learner, cards[learner], url, tmp_path / learner)
                       for learner in LEARNERS]
            failures = [failure for future in futures for failure in future.result()]
        assert not failures, "\n\n".join(failures)

        for learner in LEARNERS:
            executed = sorted((tmp_path / learner).glob("*.ipynb"))
            assert [path.stem for path in executed] == list(ON_A_SERVER)
            for path in executed:
                text = path.read_text()  # outputs, and everything else in the file
                assert cards[learner] not in text and admin_password not in text

        monkeypatch.setenv(CREDENTIALS[0], "admin")  # who sees everything
        monkeypatch.setenv(CREDENTIALS[1], admin_password)
        client = MlflowClient(tracking_uri=url)
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        owners = {}  # experiment or model name -> the learners who may manage it
        for learner in LEARNERS:
            listed = requests.get(f"{url}/api/3.0/mlflow/users/permissions/list",
                                  params={"username": learner}, auth=("admin", admin_password),
                                  timeout=30)
            listed.raise_for_status()
            for grant in listed.json()["permissions"]:
                if grant["permission"] == "MANAGE":
                    resource = experiments.get(grant["resource_pattern"],
                                               grant["resource_pattern"])
                    owners.setdefault(resource, set()).add(learner)

        theirs = {f"{name}-{learner}": learner for learner in LEARNERS
                  for name in (*EXPERIMENTS, *MODELS)}
        models = {m.name for m in client.search_registered_models()}
        assert models == {f"{model}-{learner}" for learner in LEARNERS for model in MODELS}
        assert set(experiments.values()) == {"Default", *theirs} - models
        for name, learner in theirs.items():
            assert owners[name] == {learner}, f"{name} is {learner}'s alone"
        default = [i for i, name in experiments.items() if name == "Default"]
        assert not client.search_runs(default), "every run is in a learner's experiment"

        runs = {}  # learner -> the names of the runs in each of their experiments
        for learner in LEARNERS:
            ids = {name: client.get_experiment_by_name(f"{name}-{learner}").experiment_id
                   for name in EXPERIMENTS}
            logged = {name: client.search_runs([i], max_results=1000) for name, i in ids.items()}
            runs[learner] = {name: sorted(r.info.run_name for r in found)
                             for name, found in logged.items()}
            for model, (experiment, champion_run) in MODELS.items():
                trained = {r.info.run_id: r.info.run_name for r in logged[experiment]}
                model = f"{model}-{learner}"
                versions = client.search_model_versions(f"name = '{model}'")
                assert {v.run_id for v in versions} <= set(trained), f"{model}: their runs"
                champion = client.get_model_version_by_alias(model, "champion")
                assert trained[champion.run_id] == champion_run, f"{model}: their champion"
        assert runs["ana"]["01-concepts"] == ["first-model"]
        assert runs["ana"]["08-registry"] == ["baseline", "challenger", "weak-challenger"]
        assert all(found == runs["ana"] for found in runs.values()), (
            "every learner's experiments hold the same runs: their own, and only those")
