"""`mlops-course roster` against a running sign-in server: 30 accounts, cards that work,
no password anywhere but on the cards, a removed learner refused."""

import os
import re
import secrets

import pytest
import requests

from mlops_course import cli, roster, services

LEARNERS = [f"learner{number:02d}" for number in range(1, 31)]


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A basic-auth `mlflow server` on SQLite; its URL, with the admin signed in by env."""
    folder = tmp_path_factory.mktemp("room")
    admin_password = secrets.token_urlsafe(16)
    with services.start_sign_in_server(folder, admin_password) as server:
        saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_USERNAME",
                                                       "MLFLOW_TRACKING_PASSWORD")}
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin",
                          MLFLOW_TRACKING_PASSWORD=admin_password)
        yield server.origin, admin_password
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def status(url: str, user: str, password: str) -> int:
    """The HTTP status of one signed-in read of the tracking API."""
    return requests.get(f"{url}/api/2.0/mlflow/experiments/search",
                        params={"max_results": 1}, auth=(user, password), timeout=30).status_code


def cards_in(output: str) -> dict[str, str]:
    """username -> password of every card printed."""
    return dict(re.findall(r"user: +(\S+)\npassword: +(\S+)", output))


def test_roster_gives_each_learner_a_working_card(room, tmp_path, capsys):
    url, admin_password = room
    csv = tmp_path / "room.csv"
    csv.write_text("username,full name\n" + "".join(f"{n},Learner {n}\n" for n in LEARNERS))
    assert cli.main(["roster", "create", str(csv), "--server", url]) == 0
    output = capsys.readouterr().out
    cards = cards_in(output)
    assert sorted(cards) == LEARNERS and len(set(cards.values())) == 30
    assert admin_password not in output
    for password in cards.values():  # each password once, on its own card
        assert output.count(password) == 1
    assert all(status(url, name, password) == 200 for name, password in cards.items())
    assert status(url, "learner01", "a-guess") == 401

    assert cli.main(["roster", "create", str(csv), "--server", url]) == 0
    again = capsys.readouterr().out
    assert not cards_in(again) and "learner30" in again  # nothing reset by a second run

    assert cli.main(["roster", "reset", "learner02", "--server", url]) == 0
    new = cards_in(capsys.readouterr().out)["learner02"]
    assert status(url, "learner02", cards["learner02"]) == 401
    assert status(url, "learner02", new) == 200

    assert cli.main(["roster", "remove", "learner03", "--server", url]) == 0
    assert "learner03" in capsys.readouterr().out
    assert status(url, "learner03", cards["learner03"]) == 401


@pytest.mark.parametrize("text, message", [
    ("name\nann\n", "username"),
    ("username\nAnn Smith\n", "lower-case"),
    ("username\nann\nann\n", "twice"),
])
def test_a_bad_roster_is_refused_before_any_account(tmp_path, text, message):
    csv = tmp_path / "room.csv"
    csv.write_text(text)
    with pytest.raises(ValueError, match=message):
        roster.read_roster(csv)
