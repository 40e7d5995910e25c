"""How the operator process presents itself: its kopf identity (under a uid with no
passwd entry, as the chart runs it) and its logging."""

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


def test_per_request_logs_only_with_verbose() -> None:
    import logging

    from llm_rollout.controller.main import configure_logging

    # (basicConfig leaves pytest's root logger alone: the loggers' own levels are checked.)
    configure_logging(verbose=False)
    assert logging.getLogger("httpx").level == logging.WARNING  # not a line per query
    assert logging.getLogger("kopf.objects").level == logging.WARNING
    assert logging.getLogger("llm_rollout.operator").level == logging.NOTSET  # decisions: INFO
    configure_logging(verbose=True)
    assert logging.getLogger("httpx").level == logging.DEBUG
