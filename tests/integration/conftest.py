"""Fixtures for the alfred integration tests (network-namespace meshes).

Environment:
  ALFRED_BIN     binary under test      (default /work/main/build/alfred)
  DEBIAN_ALFRED  reference binary       (default /usr/sbin/alfred)
  ALFRED_FLAGS   extra daemon flags for ALFRED_BIN only, shell-quoted (default none)
  ALFRED_LAB_KEEP_LOGS  directory to copy every lab's logs to

These tests never skip: if the machine cannot build namespaces/VDE links, or a
binary is missing, every test fails with the reason.
"""

from __future__ import annotations

import os

import pytest

from helpers import debian, ours  # also puts lab/ on sys.path

from alfredlab import Lab, LabError, cleanup_stale, preflight  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session", autouse=True)
def environment_ok():
    problems = []
    try:
        preflight("vde")
        preflight("veth")
    except LabError as e:
        problems.append(str(e))
    for what, b in (("ALFRED_BIN (binary under test)", ours()), ("DEBIAN_ALFRED (reference)", debian())):
        if not os.path.isfile(b) or not os.access(b, os.X_OK):
            problems.append(f"{what} not found or not executable: {b}"
                            + (" -- build it first (cmake -B build && cmake --build build)"
                               if b == ours() else " -- apt-get install alfred"))
    for tool in ("/usr/sbin/alfred-gpsd", "/usr/sbin/batadv-vis"):
        if not os.path.exists(tool):
            problems.append(f"{tool} missing -- apt-get install alfred")
    if problems:
        pytest.fail("integration test environment not usable:\n" + "\n".join(problems), pytrace=False)
    cleanup_stale(log=lambda s: print("alfred-lab:", s))
    print(f"\nALFRED_BIN={ours()} DEBIAN_ALFRED={debian()} ALFRED_FLAGS={os.environ.get('ALFRED_FLAGS', '')!r}")
    yield


class LabFactory:
    def __init__(self):
        self.labs: list[Lab] = []

    def __call__(self, n: int, **kw) -> Lab:
        kw.setdefault("keep_logs", os.environ.get("ALFRED_LAB_KEEP_LOGS"))
        lab = Lab(n, **kw)
        lab.up()
        self.labs.append(lab)
        return lab

    def logs(self) -> str:
        return "\n".join(lab.daemon_logs(60) for lab in self.labs)

    def close(self):
        errs = []
        for lab in reversed(self.labs):
            try:
                lab.close()
            except Exception as e:
                errs.append(str(e))
        self.labs = []
        if errs:
            raise LabError("; ".join(errs))


def _report_logs(request, factory: LabFactory):
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        print("\n========== daemon logs ==========")
        print(factory.logs())


@pytest.fixture
def make_lab(request):
    """make_lab(n, link="vde"|"veth", params=LinkParams(...), run_byte=...) -> running Lab.
    Labs are torn down after the test; daemon logs are printed if it failed."""
    f = LabFactory()
    yield f
    _report_logs(request, f)
    f.close()


@pytest.fixture(scope="module")
def module_lab_factory(request):
    f = LabFactory()
    yield f
    print("\n========== daemon logs (module) ==========")
    print(f.logs())
    f.close()

