"""`mlops-course roster`: a room's accounts on its tracking server, from a CSV of learners.

The facilitator signs in as the server's admin (MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD in the environment); each learner gets an account of their own with
a random password, printed once on their login card and nowhere else. Learners never hold
the admin password.
"""

from __future__ import annotations

import csv
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")


@dataclass
class Card:
    """What one learner needs to sign in."""

    url: str
    username: str
    password: str

    def text(self) -> str:
        """The card as printed: cut along the dashes."""
        return (f"{'-' * 40}\nMLflow server: {self.url}\nuser:          {self.username}\n"
                f"password:      {self.password}\n")


def read_roster(path: Path) -> list[str]:
    """The usernames in a CSV with a `username` column; a clear error for a bad name."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if not rows or "username" not in rows[0]:
        raise ValueError(f"{path} needs a header row with a `username` column")
    names = [row["username"].strip() for row in rows]
    bad = [name for name in names if not NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"{path}: usernames must be lower-case letters, digits, '.', '_' or "
                         f"'-', starting with a letter; not {bad[:5]}")
    if len(set(names)) != len(names):
        raise ValueError(f"{path} names a learner twice")
    return names


def _client(url: str):
    """MLflow's client for the sign-in app's own API."""
    from mlflow.server.auth.client import AuthServiceClient

    return AuthServiceClient(url)


def create(url: str, names: list[str]) -> tuple[list[Card], list[str]]:
    """Create an account for each new name; (their cards, the names that already existed)."""
    client, cards, existing = _client(url), [], []
    for name in names:
        password = secrets.token_urlsafe(12)
        try:
            client.create_user(name, password)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            existing.append(name)
            continue
        cards.append(Card(url, name, password))
    return cards, existing


def reset(url: str, name: str) -> Card:
    """A new random password for one learner (the old one stops working)."""
    password = secrets.token_urlsafe(12)
    _client(url).update_user_password(name, password)
    return Card(url, name, password)


def remove(url: str, name: str) -> None:
    """Delete one learner's account: their password is refused from now on."""
    _client(url).delete_user(name)
