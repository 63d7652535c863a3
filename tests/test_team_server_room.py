"""Chapter 9 in a workshop: a learner runs it against the room's sign-in server with their
own account (made by the roster, as the facilitator makes it), never the admin's."""

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from mlops_course import roster, services
from mlops_course.execute import execute_notebook
from mlops_course.testing import notebook_path, outputs_text

LEARNER, NEIGHBOUR = "ada", "grace"  # accounts on the room's server
PARTICIPANT = "ada"
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
SKIPPED = [  # what the chapter may not do without the admin, one line each
    ("skipped creating users alice and bob: only the room's admin can create users; "
     "your facilitator created yours"),
    "skipped granting EDIT on 09-team-ada: Alice and Bob are you, and you created it",
    "skipped granting bob READ on 09-wine-quality-ada: Bob is you, and you registered it",
    "skipped the exercise: only the room's admin can create the user carol",
    "skipped the exercise: Bob is you here, and it needs a second user",
]
Grants = dict[str, set[tuple[str, str, str]]]  # user -> {(resource type, resource, level)}


@dataclass
class Room:
    """The room's server, and what chapter 9 did on it as the learner."""

    url: str
    admin_password: str
    learner_password: str
    executed: Path
    laptop: Path
    before: Grants  # every account's grants before the chapter ran, and after
    after: Grants

    def admin_get(self, path: str, **params) -> dict:
        """GET one of the server's API paths as its admin."""
        reply = requests.get(f"{self.url}{path}", params=params, timeout=30,
                             auth=("admin", self.admin_password))
        reply.raise_for_status()
        return reply.json()

    def grants(self) -> Grants:
        """Every account on the server, with the permissions it holds."""
        users = self.admin_get("/api/2.0/mlflow/users/list")["users"]
        rows = {u["username"]: self.admin_get("/api/3.0/mlflow/users/permissions/list",
                                              username=u["username"])["permissions"]
                for u in users}
        return {user: {(r["resource_type"], r["resource_pattern"], r["permission"])
                       for r in found} for user, found in rows.items()}


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A sign-in server with two learners' accounts; the neighbour already used the book's
    own names. Then chapter 9 runs with the learner's card in the environment."""
    folder = tmp_path_factory.mktemp("room")
    admin_password = secrets.token_urlsafe(16)
    with services.start_sign_in_server(folder, admin_password) as server, \
            pytest.MonkeyPatch.context() as env:
        url = server.origin
        env.setenv(CREDENTIALS[0], "admin")
        env.setenv(CREDENTIALS[1], admin_password)
        cards = {card.username: card.password
                 for card in roster.create(url, [LEARNER, NEIGHBOUR])[0]}
        env.setenv(CREDENTIALS[0], NEIGHBOUR)
        env.setenv(CREDENTIALS[1], cards[NEIGHBOUR])
        neighbour = MlflowClient(tracking_uri=url)
        neighbour.create_experiment("09-team")
        neighbour.create_registered_model("09-wine-quality")
        room = Room(url, admin_password, cards[LEARNER], folder / "09-room.ipynb",
                    folder / "laptop", {}, {})
        room.before = room.grants()
        env.setenv(CREDENTIALS[0], LEARNER)
        env.setenv(CREDENTIALS[1], cards[LEARNER])
        execute_notebook(notebook_path("09_team_server"), room.executed,
                         scratch_dir=room.laptop,
                         parameters={"team_server_uri": url, "participant": PARTICIPANT})
        room.after = room.grants()
        yield room


@pytest.mark.slow
def test_learner_mode_says_what_it_skipped_and_why(room):
    shown = outputs_text(room.executed)
    skipped = [line for line in shown.splitlines() if line.startswith("skipped")]
    assert skipped == SKIPPED
    assert "you are the server's admin: False - the team: ada" in shown
    assert "you read the admin's account: 403 PERMISSION_DENIED" in shown
    assert "their levels on it: {'ada': 'MANAGE'}" in shown
    assert "signed in as ada; the run's mlflow.user: alice" in shown
    assert "each copy equals its original: True" in shown
    assert "already in use" in shown, "the port drill ran: the server is on this machine"


@pytest.mark.slow
def test_no_password_in_the_executed_notebook(room):
    text = room.executed.read_text()  # outputs, and everything else in the file
    assert room.admin_password not in text and room.learner_password not in text
    shown = outputs_text(room.executed)
    assert "Warning" not in shown and "/tmp/" not in shown


@pytest.mark.slow
def test_learners_experiments_and_model_carry_the_participant(room, monkeypatch):
    monkeypatch.setenv(CREDENTIALS[0], "admin")
    monkeypatch.setenv(CREDENTIALS[1], room.admin_password)
    server = MlflowClient(tracking_uri=room.url)
    experiments = {e.name: e.experiment_id for e in server.search_experiments()}
    assert set(experiments) == {"Default", "09-team", "09-team-ada", "09-alice-sandbox-ada"}
    runs = server.search_runs([experiments["09-team-ada"]])
    assert {"alice-baseline", "bob-less-regularised", "as-alice"} <= {
        r.info.run_name for r in runs}
    assert not server.search_runs([experiments["09-team"]]), "the neighbour's is untouched"
    models = {m.name for m in server.search_registered_models()}
    assert models == {"09-wine-quality", "09-wine-quality-ada"}
    assert not server.search_model_versions("name = '09-wine-quality'"), "neighbour's untouched"
    assert server.get_model_version_by_alias("09-wine-quality-ada", "champion")
    laptop = MlflowClient(tracking_uri=f"sqlite:///{room.laptop / 'mlflow.db'}")
    assert laptop.get_experiment_by_name("09-laptop-ada"), "the laptop's names carry it too"


@pytest.mark.slow
def test_learner_created_no_user_and_granted_nothing(room):
    assert set(room.after) == set(room.before) == {"admin", LEARNER, NEIGHBOUR}
    for user in ("admin", NEIGHBOUR):
        assert room.after[user] == room.before[user], f"{user}'s permissions changed"
    experiments = {e["experiment_id"]: e["name"] for e in room.admin_get(
        "/api/2.0/mlflow/experiments/search", max_results=100)["experiments"]}
    created = room.after[LEARNER] - room.before[LEARNER]
    # What the server grants a creator on what it created: MANAGE, and only that.
    assert {(kind, experiments.get(resource, resource), level)
            for kind, resource, level in created} == {
        ("experiment", "09-team-ada", "MANAGE"),
        ("experiment", "09-alice-sandbox-ada", "MANAGE"),
        ("registered_model", "09-wine-quality-ada", "MANAGE"),
    }
    signed_in = requests.get(f"{room.url}/api/2.0/mlflow/experiments/search", timeout=30,
                             params={"max_results": 1}, auth=(LEARNER, room.learner_password))
    assert signed_in.status_code == 200, "the learner's password is unchanged"
