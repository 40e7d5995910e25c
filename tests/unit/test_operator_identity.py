"""The operator runs under a uid with no passwd entry (the chart's 65532)."""

from __future__ import annotations

import getpass
import os
import pwd
import socket

import pytest

from llm_rollout.controller.main import own_identity


def test_identity_needs_no_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in the image: no user name in the environment, no passwd entry for the uid.
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(var, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(KeyError):  # what kopf's default identity would have hit
        getpass.getuser()
    assert own_identity() == f"{socket.gethostname()}/{os.getpid()}"
