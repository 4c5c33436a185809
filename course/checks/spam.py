"""SpamAssassin as an outside judge: the installed rules, local tests only, never the network.

One `spamassassin -L` run scores any number of messages (its start-up, loading the rule
set, is most of the cost). It runs with a private home folder, no Bayes and no
auto-learning, so scoring changes nothing on the machine and gives the same answer each
time. Each message's verdict comes back in a header whose name carries a random tag, so a
message cannot forge its own verdict.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from course.errors import CourseError

TARGET_SCORE = 0.5  # what a lesson should stay under; SpamAssassin's own spam line is 5.0
TIMEOUT_SECONDS = 300


class SpamAssassinError(CourseError):
    """spamassassin is installed but could not score the messages."""


@dataclass(frozen=True)
class SpamVerdict:
    """One message's score, the score SpamAssassin calls spam, and the rules that hit."""

    score: float
    required: float
    rules: tuple[tuple[str, float], ...]

    def scoring_rules(self) -> list[tuple[str, float]]:
        """The rules that moved the score (SpamAssassin lists 0.001-point ones too)."""
        return [(name, points) for name, points in self.rules if abs(points) >= 0.01]

    def describe(self) -> str:
        rules = ", ".join(f"{name} {points:+.1f}" for name, points in self.scoring_rules())
        return f"{self.score:.1f} points" + (f" ({rules})" if rules else " (no rule scores)")


class SpamAssassin:
    """The local `spamassassin` command."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    @classmethod
    def find(cls) -> SpamAssassin | None:
        """The installed spamassassin, or None when it is not installed."""
        binary = shutil.which("spamassassin")
        return cls(binary) if binary else None

    def score(self, messages: Sequence[bytes]) -> list[SpamVerdict]:
        """A verdict for each message, in order, from one run."""
        if not messages:
            return []
        tag = secrets.token_hex(6)
        header = f"X-Spam-Verdict-{tag}"
        with tempfile.TemporaryDirectory(prefix="dripcourse-spam-") as folder:
            home = Path(folder) / "home"
            home.mkdir()
            paths = []
            for number, data in enumerate(messages):
                path = Path(folder) / f"{number:06d}.eml"
                path.write_bytes(data)
                paths.append(str(path))
            command = [
                self.binary,
                "-L",  # local tests only: no DNS blocklists, no network
                "-x",  # create no user preferences file
                "--cf=use_bayes 0",
                "--cf=bayes_auto_learn 0",
                f"--cf=add_header all Verdict-{tag} _SCORE_ _REQD_ _TESTSSCORES(,)_",
                *paths,
            ]
            try:
                done = subprocess.run(  # noqa: S603 (a fixed command on our own temp files)
                    command,
                    capture_output=True,
                    timeout=TIMEOUT_SECONDS,
                    env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SpamAssassinError(f"spamassassin did not run: {exc}") from None
        try:
            verdicts = parse_verdicts(done.stdout, header)
        except ValueError as exc:
            raise SpamAssassinError(f"spamassassin's verdict could not be read: {exc}") from None
        if len(verdicts) != len(messages):
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SpamAssassinError(
                f"spamassassin scored {len(verdicts)} of {len(messages)} messages "
                f"(exit {done.returncode}){': ' + detail[-1] if detail else ''}"
            )
        return verdicts


def parse_verdicts(output: bytes, header: str) -> list[SpamVerdict]:
    """The verdict headers in `output`, in order; a folded header is unfolded first."""
    text = output.decode("utf-8", errors="replace").replace("\r\n", "\n")
    text = re.sub(r"\n[ \t]+", " ", text)
    verdicts = []
    pattern = re.compile(rf"^{re.escape(header)}:\s*(\S+)\s+(\S+)\s*(.*)$", re.M | re.I)
    for match in pattern.finditer(text):
        rules = []
        for item in match[3].replace(" ", "").split(","):
            name, _, points = item.partition("=")
            if name and points:
                rules.append((name, float(points)))
        verdicts.append(SpamVerdict(float(match[1]), float(match[2]), tuple(rules)))
    return verdicts
