"""Alpine applications from an apk installed database written here.

Blocks follow apk's database format (apk-package(5): one ``letter:value`` per line, a blank
line after each package, file entries ``F``/``R``/``a``/``Z`` after the package fields).
The expected records follow libguestfs's rules: ``V`` splits into epoch (before a colon),
version and release (after the first hyphen, less apk's ``r``); ``T`` is the description
and the summary stays empty; ``o`` (origin) is not reported.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from inspect_support import app2 as app
from inspect_support import warnings_of
from planted_guests import plant

from vmcraft.inspect.applications import list_applications

INSTALLED = "/lib/apk/db/installed"

MUSL = """\
C:Q1yB3CVUFMOjnLOOEAUIUNbpQDGuM=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1698673853
c:0f4e7a1cd39b6f3a3ab4c7c3f5c2b1b8a9d0e1f2
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1t2kTFZT8xKYzYB3AsFyWyNPUJvA=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=
"""

BUSYBOX = """\
C:Q1lV7G1PULZbBTbXPJSQyG1HN2cXY=
P:busybox
V:1.36.1-r15
A:x86_64
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
D:so:libc.musl-x86_64.so.1
F:bin
R:busybox
"""

CA_BUNDLE = """\
P:ca-certificates-bundle
V:20230506-r0
A:x86_64
T:Pre generated bundle of Mozilla certificates
U:https://www.mozilla.org/en-US/about/governance/policies/security-group/certs/
o:ca-certificates
"""

PYTHON_RC = """\
P:python3
V:3.12.0_rc2-r1
A:aarch64
T:A high-level scripting language
U:https://www.python.org/
"""

NO_REVISION = """\
P:alpine-keys
V:2.4
A:noarch
T:Public keys for Alpine Linux packages
"""


def test_installed_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    content = "\n".join([MUSL, BUSYBOX, CA_BUNDLE, PYTHON_RC, NO_REVISION]) + "\n"
    tree = plant(tmp_path, {INSTALLED: content})

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "apk")

    assert apps == [
        app(
            "alpine-keys",
            version="2.4",
            arch="noarch",
            description="Public keys for Alpine Linux packages",
        ),
        app(
            "busybox",
            version="1.36.1",
            release="15",
            arch="x86_64",
            url="https://busybox.net/",
            description="Size optimized toolbox of many common UNIX utilities",
        ),
        app(
            "ca-certificates-bundle",
            version="20230506",
            release="0",
            arch="x86_64",
            url="https://www.mozilla.org/en-US/about/governance/policies/security-group/certs/",
            description="Pre generated bundle of Mozilla certificates",
        ),
        app(
            "musl",
            version="1.2.4",
            release="2",
            arch="x86_64",
            url="https://musl.libc.org/",
            description="the musl c library (libc) implementation",
        ),
        app(
            "python3",
            version="3.12.0_rc2",
            release="1",
            arch="aarch64",
            url="https://www.python.org/",
            description="A high-level scripting language",
        ),
    ]
    assert warnings_of(caplog) == []


def test_last_block_without_a_blank_line(tmp_path: Path) -> None:
    tree = plant(tmp_path, {INSTALLED: MUSL + "\n" + BUSYBOX})

    assert [a["app2_name"] for a in list_applications(tree, "apk")] == ["busybox", "musl"]


def test_epoch_before_a_colon(tmp_path: Path) -> None:
    tree = plant(tmp_path, {INSTALLED: "P:epoch-test\nV:2:1.0-r3\nA:x86_64\n\n"})

    (record,) = list_applications(tree, "apk")

    assert (record["app2_epoch"], record["app2_version"], record["app2_release"]) == (2, "1.0", "3")


def test_damaged_lines_and_blocks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    no_version = "P:no-version\nA:x86_64\n"
    garbage = "this line is no field\n"
    tree = plant(tmp_path, {INSTALLED: "\n".join([MUSL, garbage + no_version, BUSYBOX])})

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "apk")

    assert [a["app2_name"] for a in apps] == ["busybox", "musl"]
    (warning,) = warnings_of(caplog)
    assert INSTALLED in warning and "no-version" in warning and "no field" in warning


def test_missing_database_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = plant(tmp_path, folders=("/lib/apk/db",))

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "apk") == []

    (warning,) = warnings_of(caplog)
    assert INSTALLED in warning and "does not exist" in warning
