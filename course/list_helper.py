"""A helper process that reads a list for a sync: `feed()` run in another interpreter.

A sync is a reading half (CSV parsing, addresses, names, zones: pure Python, row by row)
and a writing half (the inserts). In one process they share one interpreter lock, so a
large list takes the sum of both; with the reading in a helper process, it takes about the
longer of the two. The helper only reads the file: every change to the ledger stays in the
syncing process, inside the sync's one transaction.

The helper gets a pickled (path, options) on its stdin and answers on its stdout with
length-prefixed pickled frames: batches of feed items, then `done`, or the error that
stopped it. This module imports nothing of the ledger, so the helper starts quickly.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Generator
from enum import StrEnum
from pathlib import Path
from typing import IO, Final

from course.errors import CourseError, SubscribersError
from course.subscribers import ImportOptions
from course.subscribers.feed import FeedItem, feed

# Feed items per frame: large enough that pickling works per batch rather than per row,
# small enough that the helper is never more than a batch or two ahead.
_BATCH: Final = 2_000
_LENGTH: Final = struct.Struct("<Q")


class _Frame(StrEnum):
    """What one frame from the helper holds."""

    ITEMS = "items"  # a batch of feed items
    DONE = "done"  # every item was sent
    REFUSED = "refused"  # a CourseError's message, for the operator
    CRASHED = "crashed"  # a bug: its traceback


def feed_from_helper(path: Path, options: ImportOptions) -> Generator[FeedItem, None, None]:
    """feed(path, options), read by a helper process: the same items and the same errors.

    The helper ends with this generator, finished or not: closed early (the sync failed), it
    is killed rather than left reading a file nobody wants. If no helper can be started (no
    interpreter to run, no process or file to spare), the list is read here: slower, the same.
    """
    # The helper imports `course` from where this process did, installed or not.
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                # -P: the working directory is not put on the path, so an operator's folder
                # named `course` cannot stand in for this package.
                [sys.executable, "-P", "-m", "course.list_helper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        except OSError:
            yield from feed(path, options)
            return
        replies = process.stdout
        assert process.stdin is not None
        assert replies is not None
        try:
            with process.stdin:
                pickle.dump((path, options), process.stdin)
            while True:
                kind, value = _read_frame(replies)
                if kind is _Frame.ITEMS:
                    assert isinstance(value, list)
                    yield from value
                elif kind is _Frame.DONE:
                    return
                elif kind is _Frame.REFUSED:
                    raise SubscribersError(str(value))
                else:
                    raise RuntimeError(f"the process reading {path} failed:\n{value}")
        except (EOFError, BrokenPipeError):
            process.wait()
            stderr.seek(0)
            said = stderr.read().decode(errors="replace").strip().splitlines()
            raise SubscribersError(
                f"{path}: the process reading the list stopped ({_ending(process.returncode)})"
                + (f": {said[-1]}" if said else "")
            ) from None
        finally:
            replies.close()
            if process.poll() is None:
                process.kill()
            process.wait()


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The helper's side: one (path, options) request, answered with feed() in frames."""
    try:
        path, options = pickle.load(requests)  # noqa: S301 - from the process that started us
        batch: list[FeedItem] = []
        for item in feed(path, options):
            batch.append(item)
            if len(batch) >= _BATCH:
                _write_frame(replies, _Frame.ITEMS, batch)
                batch = []
        if batch:
            _write_frame(replies, _Frame.ITEMS, batch)
        _write_frame(replies, _Frame.DONE, None)
    except BrokenPipeError:
        return  # the sync ended without us: nobody left to tell
    except CourseError as error:
        _write_frame(replies, _Frame.REFUSED, str(error))
    except Exception:  # a bug: its traceback goes to the syncing process, which raises it
        _write_frame(replies, _Frame.CRASHED, traceback.format_exc())
    replies.flush()


def _ending(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _read_frame(stream: IO[bytes]) -> tuple[_Frame, object]:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    if len(body) < length:
        raise EOFError
    kind, value = pickle.loads(body)  # noqa: S301 - from the helper this process started
    return _Frame(kind), value


def _write_frame(stream: IO[bytes], kind: _Frame, value: object) -> None:
    body = pickle.dumps((kind.value, value), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)))
    stream.write(body)


def main() -> None:
    # The syncing process decides when this one stops: a Ctrl-C or a stop signal sent to
    # the whole process group reaches this one too, and the sync ends it when done with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Frames go to the original stdout; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Millions of short-lived objects, none in a cycle: no collection walks what is loaded.
    gc.freeze()
    with replies:
        serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
