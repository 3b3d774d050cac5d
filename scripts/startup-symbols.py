#!/usr/bin/env python3
"""Regenerates agent/startup-symbols.txt, the order in which the release
build's linker lays out the functions that an idle `datascale run` executes,
followed by those that an idle standalone `datascale start` adds, for the
binaries of both `cargo build --release` and `cargo bench`.

Placing those functions side by side keeps the pages of machine code that an
idle agent maps into memory few (see agent/build.rs). The list names mangled
symbols, whose hashes change when dependencies change: rerun this after
`cargo update` or a new toolchain; `cargo bench --bench pipeline` prints how
much of the list the binary still matches.

Usage: scripts/startup-symbols.py   (needs valgrind; builds both binaries)
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "agent" / "startup-symbols.txt"
# The dataflow whose idle memory `cargo bench --bench pipeline` reports.
IDLE_DATAFLOW = ROOT / "agent" / "benches" / "idle-dataflow.json"


# `cargo bench` builds its own release-profile binary (dev-dependencies turn
# on other features of shared crates), whose symbols carry other hashes: the
# list holds the functions of both builds, and each build uses its own.
BUILDS = (
    ["cargo", "build", "--release", "--bin", "datascale"],
    ["cargo", "bench", "--bench", "pipeline", "--no-run"],
)


def target_dir() -> Path:
    metadata = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Path(json.loads(metadata)["target_directory"])


def executed_functions(profile: Path, object_suffix: str) -> list[str]:
    """The functions of one object in a callgrind profile, in the order the
    profile first names them (callgrind names compressed as `(id) name`)."""
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}

    def resolve(table: dict[str, str], text: str) -> str:
        match = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not match:
            return text
        key, name = match.groups()
        if name is not None:
            table[key] = name
        return table[key]

    current_object = called_object = None
    found: dict[str, None] = {}
    for line in profile.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ob":
            current_object, called_object = resolve(objects, value), None
        elif key == "cob":
            called_object = resolve(objects, value)
        elif key in ("fn", "cfn"):
            function = resolve(functions, value)
            owner = called_object if key == "cfn" and called_object else current_object
            if key == "fn":
                called_object = None
            if owner and owner.endswith(object_suffix) and not function.startswith("0x"):
                found.setdefault(function)
    return list(found)


def profile_of(binary: Path, work: Path, command: list[str], seconds: int) -> Path:
    """Runs `datascale COMMAND` in `work` under callgrind for `seconds`."""
    profile = work / f"callgrind.{command[0]}.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASCALE_")}
    env.update(
        DATASCALE_LOG_LEVEL="warn",
        DATASCALE_SERVICE_ADDRESS="127.0.0.1:0",
        DATASCALE_SERVICE_UI_ADDRESS="127.0.0.1:0",
    )
    subprocess.run(
        [
            "timeout", "--signal=TERM", str(seconds),
            "valgrind", "--quiet", "--tool=callgrind", "--demangle=no",
            f"--callgrind-out-file={profile}",
            str(binary), *command,
        ],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return profile


def main() -> int:
    # Both builds put their binary here, each over the other's.
    binary = target_dir() / "release" / "datascale"
    symbols: dict[str, None] = {}
    for build in BUILDS:
        subprocess.run(build, cwd=ROOT, check=True)
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            # Each idle command, with how long it runs under callgrind.
            for command, seconds in (
                (["run", "--dataflow", str(IDLE_DATAFLOW)], 8),
                (["start"], 15),
            ):
                profile = profile_of(binary, work, command, seconds)
                found = executed_functions(profile, "/" + binary.name)
                if not found:
                    print(f"error: `datascale {command[0]}` ran no function", file=sys.stderr)
                    return 1
                symbols.update(dict.fromkeys(found))
    OUTPUT.write_text("".join(f"{symbol}\n" for symbol in symbols))
    print(f"wrote {len(symbols)} symbols to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
